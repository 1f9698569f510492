/* The target process: it turns the configuration into LUNs, targets and listening portals,
 * runs the worker threads, accepts connections and hands them to the workers, and answers
 * the parent's control requests. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/msg.h"
#include "lib/proc.h"
#include "target/backstore.h"
#include "target/fence.h"
#include "target/lun.h"
#include "target/lunmap.h"
#include "target/scsi_pr.h"
#include "target/target.h"
#include "target/transport.h"

struct tgt tgt_global;

static int tgt_open_luns(const struct hf_config *cfg)
{
	tgt_global.stores = calloc(cfg->nbackstores, sizeof(*tgt_global.stores));
	tgt_global.luns = calloc(cfg->nbackstores, sizeof(*tgt_global.luns));
	if (!tgt_global.stores || !tgt_global.luns)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->nbackstores; i++) {
		const struct hf_backstore *b = &cfg->backstores[i];
		int rc = bs_open(b, &tgt_global.stores[i]);

		if (rc < 0) {
			log_warnx("%s: backstore %s: %s", __func__, b->name, strerror(-rc));
			return rc;
		}
		rc = scsi_lun_create(tgt_global.stores[i], cfg->box_id, b->name,
				     &tgt_global.luns[i]);
		if (rc < 0) {
			log_warnx("%s: lun %s: %s", __func__, b->name, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int tgt_build_targets(const struct hf_config *cfg)
{
	tgt_global.targets = calloc(cfg->ntargets, sizeof(*tgt_global.targets));
	if (!tgt_global.targets)
		return -ENOMEM;
	tgt_global.ntargets = cfg->ntargets;
	for (size_t i = 0; i < cfg->ntargets; i++) {
		const struct hf_target *ht = &cfg->targets[i];
		struct tgt_target *tt = &tgt_global.targets[i];

		tt->cfg = ht;
		tt->index = i;
		/* Room for every LUN number, so LUNs added at run time never move the
		 * array under a reader; untouched pages cost nothing. */
		tt->luns = calloc(TGT_LUN_SLOTS, sizeof(*tt->luns));
		tt->rt = calloc(TGT_LUN_SLOTS, sizeof(*tt->rt));
		tt->ports = calloc(ht->nportals ? ht->nportals : 1, sizeof(*tt->ports));
		if (!tt->luns || !tt->rt || !tt->ports)
			return -ENOMEM;
		for (size_t l = 0; l < ht->nluns; l++) {
			tt->luns[l].lun = ht->luns[l].id;
			tt->luns[l].dev = tgt_global.luns[ht->luns[l].backstore];
		}
		/* One SCSI target port per portal group; its relative port id is the
		 * group's tag, so every portal of the group answers the same. */
		for (size_t p = 0; p < ht->nportals; p++) {
			const struct hf_portal *po = &cfg->portals[ht->portals[p]];

			tt->ports[p].rel_port_id = po->tpgt;
			tt->ports[p].tpg_id = po->tpgt;
		}
		tt->info.name = ht->iqn;
		tt->info.luns = tt->luns;
		tt->info.nluns = ht->nluns;
		tt->info.ports = tt->ports;
		tt->info.nports = ht->nportals;
	}
	return 0;
}

static int tgt_listen(const struct hf_portal *p, int *out)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	int fd, one = 1;

	if (strchr(p->address, ':')) {
		struct sockaddr_in6 *sin6 = (void *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(p->port);
		if (inet_pton(AF_INET6, p->address, &sin6->sin6_addr) != 1)
			return -EINVAL;
		sl = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (void *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(p->port);
		if (inet_pton(AF_INET, p->address, &sin->sin_addr) != 1)
			return -EINVAL;
		sl = sizeof(*sin);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 128) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

static void tgt_accept(struct tgt_listener *l)
{
	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct worker_msg *m;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("%s: portal %s", __func__, l->portal->name);
			return;
		}
		m = calloc(1, sizeof(*m));
		if (!m) {
			close(fd);
			continue;
		}
		m->type = WORKER_MSG_NEW_CONN;
		m->fd = fd;
		m->listener = l;
		worker_post(worker_pick(), m);
	}
}

int target_main(const struct hf_config *cfg, int parent_fd)
{
	struct msg_chan ch;
	struct epoll_event ev, evs[16];
	int epfd, rc, exit_code = 0;
	static char tag_parent;

	log_procname("target");
	tgt_global.cfg = cfg;
	scsi_pr_set_data_dir(cfg->data_dir);
	scsi_pr_abort_hook = tgt_pr_abort;
	pthread_mutex_init(&tgt_global.lock, NULL);
	if (msg_chan_init(&ch, parent_fd, PROC_TARGET, PROC_PARENT) < 0)
		fatalx("%s: message channel", __func__);
	rc = tgt_open_luns(cfg);
	if (rc == 0)
		rc = tgt_build_targets(cfg);
	if (rc < 0) {
		log_warnx("%s: cannot open the LUNs: %s", __func__, strerror(-rc));
		return PROC_EXIT_FATAL;
	}
	/* fence.h: in a cluster, logins wait for coord to give this run its fences again. */
	if (cfg->cluster.enabled)
		tgt_fence_hold_logins();
	tgt_global.listeners = calloc(cfg->nportals, sizeof(*tgt_global.listeners));
	if (!tgt_global.listeners)
		fatal("%s", __func__);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		fatal("%s: epoll", __func__);
	for (size_t i = 0; i < cfg->nportals; i++) {
		struct tgt_listener *l = &tgt_global.listeners[i];

		l->portal = &cfg->portals[i];
		rc = tgt_listen(l->portal, &l->fd);
		if (rc < 0) {
			log_warnx("%s: portal %s (%s port %u): %s", __func__, l->portal->name,
				  l->portal->address, l->portal->port, strerror(-rc));
			return PROC_EXIT_FATAL;
		}
		ev.events = EPOLLIN;
		ev.data.ptr = l;
		epoll_ctl(epfd, EPOLL_CTL_ADD, l->fd, &ev);
		tgt_global.nlisteners++;
		log_info("%s: listening on %s port %u (portal group %u)", __func__,
			 l->portal->address, l->portal->port, l->portal->tpgt);
	}
	tgt_global.nworkers = cfg->workers > 0 ? cfg->workers : 1;
	tgt_global.workers = calloc(tgt_global.nworkers, sizeof(*tgt_global.workers));
	if (!tgt_global.workers)
		fatal("%s", __func__);
	for (int i = 0; i < tgt_global.nworkers; i++) {
		rc = worker_start(&tgt_global.workers[i], i);
		if (rc < 0) {
			log_warnx("%s: worker %d: %s", __func__, i, strerror(-rc));
			return PROC_EXIT_FATAL;
		}
	}
	/* A replaced shared-volume access policy is freed once no worker can read it. */
	scsi_lun_retire = tgt_retire;
	ev.events = EPOLLIN;
	ev.data.ptr = &tag_parent;
	epoll_ctl(epfd, EPOLL_CTL_ADD, parent_fd, &ev);
	for (;;) {
		int n = epoll_wait(epfd, evs, 16, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("%s: epoll_wait", __func__);
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr != &tag_parent) {
				tgt_accept(evs[i].data.ptr);
				continue;
			}
			rc = proc_child_handle(&ch, target_ctl);
			if (rc != 0)
				goto out;
		}
	}
out:
	/* The parent asked us to stop, or is gone. In-flight writes already reached the
	 * kernel; what was acknowledged is durable as its command required. */
	log_info("%s: stopping", __func__);
	for (int i = 0; i < tgt_global.nworkers; i++)
		worker_stop(tgt_global.workers[i]);
	tgt_lun_close_all();
	return exit_code;
}
