/* The coord plane: one epoll loop over the parent channel, a timer, the join and agent
 * listeners and every agent connection (each a non-blocking TLS connection with its own
 * buffers, so one slow agent never holds up another). Leases and quorum are decided by the pure
 * modules (lease.h, quorum.h); the coord files do the I/O around them: frames in and out through
 * agent_proto.h, the host table's file, and the target's fence and unfence commands, which go
 * through the parent's relay (MSG_CTL_RELAY_REQUEST) and come back asynchronously.
 * docs/coordinator.md describes the message flows. This file holds the loop's state, the parent
 * channel (control replies, the relay to the target and its answers, the catalog part's
 * requests and answers), the timer and the start; coord_agents.c the agent connections, their
 * frames, heartbeats and rejoins; coord_join.c joins; coord_fence.c fencing at the target and a
 * target that (re)starts; coord_ctl.c the cluster control commands. They share coord_int.h. */
#include "csv-coord/coord.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "csv-coord/agent_catalog.h"
#include "csv-coord/agent_proto.h"
#include "csv-coord/ca.h"
#include "csv-coord/coord_catalog.h"
#include "csv-coord/coord_event.h"
#include "csv-coord/coord_hosts.h"
#include "csv-coord/coord_int.h"
#include "csv-coord/join_token.h"
#include "csv-coord/lease.h"
#include "csv-coord/quorum.h"
#include "lib/log.h"
#include "lib/msg.h"
#include "lib/proc.h"
#include "lib/tls.h"

struct coord_state co;

static char tag_parent, tag_timer, tag_join, tag_agent, tag_catalog;

int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * LEASE_NS_PER_S + ts.tv_nsec;
}

int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double ms(int64_t ns)
{
	return (double)ns / LEASE_NS_PER_MS;
}

/* Record an event in the ring and say it in the log, with the same words. */
void event(enum coord_event_kind kind, const char *host, const char *fmt, ...)
{
	char text[COORD_EVENT_TEXT];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	coord_events_add(&co.ev, now_ns(), wall_ms(), kind, host, text);
	if (kind == COORD_EV_REFUSED || kind == COORD_EV_FENCE_FAILED || kind == COORD_EV_LOST ||
	    kind == COORD_EV_POOL_ALERT)
		log_warnx("coord: %s%s%s: %s", coord_event_kind_name(kind), host ? " " : "",
			  host ? host : "", text);
	else
		log_info("coord: %s%s%s: %s", coord_event_kind_name(kind), host ? " " : "",
			 host ? host : "", text);
}

/* After every quorum change: log the moment quorum was gained or lost. */
void quorum_note(void)
{
	bool now = quorum_is_quorate(&co.q);

	if (now == co.quorate)
		return;
	co.quorate = now;
	event(now ? COORD_EV_QUORUM_GAINED : COORD_EV_QUORUM_LOST, NULL,
	      "%u of %u votes present, %u needed%s", quorum_votes_present(&co.q),
	      quorum_votes_total(&co.q), quorum_votes_needed(&co.q),
	      co.q.wfa_met ? "" : " (waiting for every host to join once)");
}

int hosts_save(void)
{
	int err = coord_hosts_save(&co.hosts, co.hosts_path);

	if (err)
		log_warnx("%s: %s: %s", __func__, co.hosts_path, strerror(-err));
	return err;
}

/* ---- the parent channel ---- */

static void parent_send(uint32_t type, uint32_t id, const char *text)
{
	int err = msg_send(&co.ch, type, id, text, strlen(text), -1);

	if (err == -EMSGSIZE) {
		static const char too_big[] = "{\"error\":\"reply too large\"}";

		err = msg_send(&co.ch, type, id, too_big, sizeof(too_big) - 1, -1);
	}
	if (err)
		log_warnx("%s: %s", __func__, strerror(-err));
}

void ctl_reply(uint32_t id, json_t *o)
{
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	parent_send(MSG_CTL_REPLY, id, text ? text : "{\"error\":\"out of memory\"}");
	free(text);
	json_decref(o);
}

void ctl_error(uint32_t id, const char *why)
{
	ctl_reply(id, json_pack("{s:s}", "error", why));
}

/* Ask the target (through the parent) and remember what to do with the answer. */
struct pending *relay(json_t *req, enum pend_kind kind, uint32_t host_id, uint64_t epoch)
{
	struct pending *p;
	char *text;
	int err;

	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	p = calloc(1, sizeof(*p));
	if (!text || !p) {
		free(text);
		free(p);
		return NULL;
	}
	if (++co.next_rid == 0)
		co.next_rid = 1;
	p->rid = co.next_rid;
	p->kind = kind;
	p->host_id = host_id;
	p->epoch = epoch;
	p->sent_ns = now_ns();
	err = msg_send(&co.ch, MSG_CTL_RELAY_REQUEST, p->rid, text, strlen(text), -1);
	free(text);
	if (err) {
		log_warnx("%s: %s", __func__, strerror(-err));
		free(p);
		return NULL;
	}
	p->next = co.pend;
	co.pend = p;
	return p;
}

/* The catalog part's events (a pool's free-space alert) go to the same log as ours. */
static void catalog_event(enum coord_event_kind kind, const char *host, const char *text)
{
	event(kind, host, "%s", text);
}

/* The catalog part's requests to the target (csv-coord/coord_catalog.h). */
static int catalog_relay(json_t *req, coord_catalog_reply_fn cb, void *ctx)
{
	struct pending *p = relay(req, PEND_CATALOG, 0, 0);

	if (!p)
		return -EIO;
	p->cb = cb;
	p->cb_ctx = ctx;
	return 0;
}

struct catreq *catreq_new(void)
{
	struct catreq *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	do {
		if (++co.next_catid == 0)
			co.next_catid = 1;
		r->id = co.next_catid;
		/* Skip an id still in flight after a wrap-around. */
		for (struct catreq *o = co.catreqs; o; o = o->next)
			if (o->id == r->id)
				r->id = 0;
	} while (!r->id);
	r->next = co.catreqs;
	co.catreqs = r;
	return r;
}

void catalog_ctl_request(uint32_t ctl_id, const char *cmd, json_t *req)
{
	struct catreq *r = catreq_new();

	if (!r) {
		ctl_error(ctl_id, "out of memory");
		return;
	}
	r->ctl_id = ctl_id;
	coord_catalog_request(r->id, cmd, req);
}

static void catalog_emit(void *ctx, struct agent_msg *m)
{
	conn_send(ctx, m);
}

/* The catalog part's answers (coord_catalog_env.reply): to the control client or the agent. */
static void catalog_reply(uint32_t id, json_t *o)
{
	struct catreq **pp, *r;
	struct conn *c;

	for (pp = &co.catreqs; (r = *pp); pp = &r->next)
		if (r->id == id)
			break;
	if (!r) {
		log_warnx("%s: an answer to catalog request %u nobody asked", __func__, id);
		json_decref(o);
		return;
	}
	*pp = r->next;
	if (!r->agent) {
		ctl_reply(r->ctl_id, o);
		free(r);
		return;
	}
	c = conn_by_cid(r->cid);
	if (c)
		agent_catalog_reply(r->type, r->areq,
				    r->type == AGENT_MSG_VDISK_LIST ? &r->list : NULL, r->host, o,
				    catalog_emit, c);
	else
		log_info("coord: %s: the agent left before the answer to its %s; dropped: %s",
			 r->host, agent_proto_type_name(r->type),
			 json_string_value(json_object_get(o, "error"))
				 ? json_string_value(json_object_get(o, "error"))
				 : "done");
	json_decref(o);
	free(r);
}

static void pending_free(struct pending *p)
{
	if (p->join) {
		free(p->join->cert_pem);
		free(p->join);
	}
	free(p);
}

static void on_relay_reply(struct msg *m)
{
	struct pending **pp, *p;
	json_t *r;

	for (pp = &co.pend; (p = *pp); pp = &p->next)
		if (p->rid == m->id)
			break;
	if (!p) {
		log_warnx("%s: an answer to request %u nobody asked", __func__, m->id);
		return;
	}
	*pp = p->next;
	r = json_loadb((const char *)m->data, m->len, 0, NULL);
	if (!json_is_object(r)) {
		json_decref(r);
		r = json_pack("{s:s}", "error", "the target's answer is not a JSON object");
	}
	switch (p->kind) {
	case PEND_FENCE:
		on_fence_reply(p, r);
		break;
	case PEND_UNFENCE_REJOIN:
		on_unfence_rejoin_reply(p, r);
		break;
	case PEND_UNFENCE_JOIN:
		on_unfence_join_reply(p, r);
		break;
	case PEND_CATALOG:
		p->cb(p->cb_ctx, r);
		break;
	case PEND_LOGINS_OPEN:
		on_logins_open_reply(p, r);
		break;
	case PEND_STATUS_SESSIONS: {
		json_t *s = json_object_get(r, "sessions"), *e = json_object_get(r, "error");

		ctl_reply(p->ctl_id, status_json(json_is_array(s) ? s : NULL,
						 json_is_string(e)  ? json_string_value(e)
						 : json_is_array(s) ? NULL
								    : "no sessions in the answer"));
		break;
	}
	default:
		fatalx("%s: pending kind %d", __func__, p->kind);
	}
	json_decref(r);
	pending_free(p);
}

/* Returns 1 when coord must exit. */
static int parent_cb(void)
{
	struct msg m;
	int err;

	for (;;) {
		err = msg_recv(&co.ch, &m);
		if (err == -EAGAIN)
			break;
		if (err == -EPIPE)
			return 1;
		if (err)
			return 1;
		switch (m.type) {
		case MSG_SHUTDOWN:
			msg_free(&m);
			return 1;
		case MSG_CTL_REQUEST:
			on_ctl_request(&m);
			break;
		case MSG_CTL_RELAY_REPLY:
			on_relay_reply(&m);
			break;
		case MSG_PLANE_UP:
			on_plane_up(&m);
			break;
		default:
			fatalx("%s: message %s (%u) has no handler", __func__,
			       msg_type_name(m.type), m.type);
		}
		msg_free(&m);
	}
	err = msg_flush(&co.ch);
	return err && err != -EAGAIN ? 1 : 0;
}

/* ---- the timer ---- */

static void tick(void)
{
	int64_t now = now_ns();
	struct conn *c, *next;
	unsigned i;

	for (i = 0; i < co.hosts.n; i++) {
		struct coord_host *h = &co.hosts.h[i];

		if (!h->enrolled)
			continue;
		if (!h->removed && lease_tick(&h->lease, &co.lc, now))
			host_declared_lost(h, now);
		/* A fence that failed, or one from before a restart, is sent again. */
		if (h->fenced && !h->fence_confirmed && !h->fence_inflight &&
		    !h->unfence_inflight && h->n_iqn && now >= h->fence_retry_ns)
			send_fence(h, 0);
	}
	coord_catalog_tick(now);
	target_logins_maybe_open(now);
	for (c = co.conns; c; c = next) {
		next = c->next;
		if (c->deadline_ns && now > c->deadline_ns) {
			log_warnx("%s: %s: %s took too long; closing", __func__, c->label,
				  c->join ? "the join" : "the handshake");
			coord_conn_close(c);
		}
	}
}

/* ---- start ---- */

static int listen_on(const char *addr, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
		sl = sizeof(struct sockaddr_in6);
	} else {
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int setup_tls(void)
{
	const char *crt, *key, *capem;
	size_t crt_len, key_len, ca_len;
	int err;

	crt = ca_server_cert_pem(co.ca, &crt_len);
	key = ca_server_key_pem(co.ca, &key_len);
	capem = ca_cert_pem(co.ca, &ca_len);
	err = tls_config_new(&co.tls_agent, TLS_ROLE_SERVER);
	if (!err)
		err = tls_config_set_ca_pem(co.tls_agent, capem, ca_len);
	if (!err)
		err = tls_config_set_own_pem(co.tls_agent, crt, crt_len, key, key_len);
	if (!err)
		err = tls_config_new(&co.tls_join, TLS_ROLE_SERVER);
	if (!err)
		err = tls_config_set_ca_pem(co.tls_join, capem, ca_len);
	if (!err)
		err = tls_config_set_own_pem(co.tls_join, crt, crt_len, key, key_len);
	if (!err)
		err = tls_config_set_client_cert_optional(co.tls_join);
	return err;
}

/* Load the host table, add configured hosts that never joined, and rebuild quorum. After a
 * restart no host holds a lease in quorum's eyes until it heartbeats, but each is granted one
 * from now, so a host that never comes back is still declared lost and fenced on time. */
static int setup_hosts(void)
{
	const struct hf_cluster *cl = &co.cfg->cluster;
	int64_t now = now_ns();
	bool changed = false, all = true;
	unsigned i;
	size_t k;
	int err;

	err = coord_hosts_load(&co.hosts, co.hosts_path);
	if (err == -ENOENT)
		err = 0;
	if (err) {
		log_warnx("%s: %s: %s (refusing to start with a damaged host table)", __func__,
			  co.hosts_path, strerror(-err));
		return err;
	}
	for (k = 0; k < cl->nhosts; k++) {
		struct coord_host *h = coord_hosts_by_name(&co.hosts, cl->hosts[k].name);

		if (!h) {
			err = coord_hosts_add(&co.hosts, cl->hosts[k].name, cl->hosts[k].votes, &h);
			if (err)
				return err;
			changed = true;
		} else if (h->votes != cl->hosts[k].votes) {
			h->votes = cl->hosts[k].votes;
			changed = true;
		}
	}
	if (changed && (err = hosts_save()))
		return err;
	err = quorum_init(&co.q, 1, cl->wait_for_all);
	if (err)
		return err;
	for (i = 0; i < co.hosts.n; i++) {
		struct coord_host *h = &co.hosts.h[i];

		if (h->removed) {
			h->lease.state = LEASE_FENCED;
			continue;
		}
		err = quorum_add_host(&co.q, h->id, h->votes, now);
		if (err)
			return err;
		if (!h->enrolled)
			continue;
		/* Enrolled hosts have joined once: wait_for_all is about the cluster's creation,
		 * not about every restart of the box. */
		co.q.hosts[co.q.n_hosts - 1].joined_once = true;
		/* A host that has run may be running: it gets a lease from now, and is declared
		 * lost if it does not heartbeat. One that never ran has nothing to fence. */
		if (h->started || h->fenced)
			lease_host_join(&h->lease, h->id, h->epoch, now);
		else
			lease_host_enrol(&h->lease, h->id, h->epoch, now);
		if (h->fenced) {
			lease_admin_fence(&h->lease, now);
			h->fence_reason = AGENT_E_LEASE_EXPIRED;
		}
	}
	for (i = 0; i < co.q.n_hosts; i++)
		all = all && co.q.hosts[i].joined_once;
	if (co.q.n_hosts && all)
		co.q.wfa_met = true;
	co.quorate = quorum_is_quorate(&co.q);
	return 0;
}

static void cleanup(void)
{
	struct conn *c;
	struct pending *p;

	while (co.conns)
		coord_conn_close(co.conns);
	while ((c = co.dead)) {
		co.dead = c->next;
		free(c->out);
		free(c);
	}
	while ((p = co.pend)) {
		co.pend = p->next;
		pending_free(p);
	}
	coord_catalog_close();
	while (co.catreqs) {
		struct catreq *r = co.catreqs;

		co.catreqs = r->next;
		free(r);
	}
	tls_config_free(co.tls_agent);
	tls_config_free(co.tls_join);
	join_store_close(co.tokens);
	ca_close(co.ca);
	if (co.join_fd >= 0)
		close(co.join_fd);
	if (co.agent_fd >= 0)
		close(co.agent_fd);
	if (co.tfd >= 0)
		close(co.tfd);
	if (co.epfd >= 0)
		close(co.epfd);
	msg_chan_close(&co.ch);
}

int coord_main(const struct hf_config *cfg, int parent_fd)
{
	const struct hf_cluster *cl = &cfg->cluster;
	char dir[4096 + 16], path[4096 + 32];
	struct epoll_event ev, evs[32];
	struct itimerspec its = {0};
	int64_t period;
	int n, i, err, rc = 1;

	log_procname("coord");
	memset(&co, 0, sizeof(co));
	co.cfg = cfg;
	co.epfd = co.tfd = co.join_fd = co.agent_fd = -1;
	co.started_ns = now_ns();
	coord_events_init(&co.ev);
	if (msg_chan_init(&co.ch, parent_fd, PROC_COORD, PROC_PARENT) < 0)
		fatalx("%s: out of memory", __func__);
	co.lc.heartbeat_ns = (int64_t)cl->heartbeat_ms * LEASE_NS_PER_MS;
	co.lc.miss = cl->miss_threshold;
	if (lease_config_check(&co.lc)) {
		log_warnx("%s: heartbeat %u ms, %u misses: out of bounds", __func__,
			  cl->heartbeat_ms, cl->miss_threshold);
		rc = PROC_EXIT_FATAL;
		goto out;
	}

	snprintf(dir, sizeof(dir), "%s/coord", cfg->data_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_warn("%s: %s", __func__, dir);
		rc = PROC_EXIT_FATAL;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/ca", dir);
	err = ca_open(&co.ca, path, cl->name, time(NULL));
	if (err) {
		log_warnx("%s: cluster CA in %s: %s", __func__, path, strerror(-err));
		rc = PROC_EXIT_FATAL;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/join-tokens", dir);
	err = join_store_open(&co.tokens, path);
	if (err) {
		log_warnx("%s: join tokens %s: %s", __func__, path, strerror(-err));
		rc = PROC_EXIT_FATAL;
		goto out;
	}
	snprintf(co.hosts_path, sizeof(co.hosts_path), "%s/hosts.json", dir);
	if (setup_hosts() || setup_tls()) {
		rc = PROC_EXIT_FATAL;
		goto out;
	}
	{
		/* The catalog is opened (and reconciled) before any request; a catalog that
		 * cannot be opened leaves the pool and vdisk commands answering an error. */
		struct coord_catalog_env env = {
			.cfg = cfg, .hosts = &co.hosts, .q = &co.q, .relay = catalog_relay,
			.reply = catalog_reply, .event = catalog_event};

		coord_catalog_open(&env);
	}
	co.join_fd = listen_on(cl->address, cl->join_port);
	co.agent_fd = co.join_fd < 0 ? -1 : listen_on(cl->address, cl->agent_port);
	if (co.join_fd < 0 || co.agent_fd < 0) {
		log_warnx("%s: cannot listen on %s port %u: %s", __func__, cl->address,
			  co.join_fd < 0 ? cl->join_port : cl->agent_port,
			  strerror(-(co.join_fd < 0 ? co.join_fd : co.agent_fd)));
		rc = PROC_EXIT_FATAL;
		goto out;
	}
	co.epfd = epoll_create1(EPOLL_CLOEXEC);
	co.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (co.epfd < 0 || co.tfd < 0)
		fatal("%s: epoll/timerfd", __func__);
	/* The tick decides how late past L a lost host is declared: H/10, like the grace. */
	period = co.lc.heartbeat_ns / 10;
	if (period < LEASE_NS_PER_MS)
		period = LEASE_NS_PER_MS;
	its.it_interval.tv_sec = period / LEASE_NS_PER_S;
	its.it_interval.tv_nsec = period % LEASE_NS_PER_S;
	its.it_value = its.it_interval;
	timerfd_settime(co.tfd, 0, &its, NULL);
	ev.events = EPOLLIN;
	ev.data.ptr = &tag_parent;
	epoll_ctl(co.epfd, EPOLL_CTL_ADD, parent_fd, &ev);
	ev.data.ptr = &tag_timer;
	epoll_ctl(co.epfd, EPOLL_CTL_ADD, co.tfd, &ev);
	ev.data.ptr = &tag_join;
	epoll_ctl(co.epfd, EPOLL_CTL_ADD, co.join_fd, &ev);
	ev.data.ptr = &tag_agent;
	epoll_ctl(co.epfd, EPOLL_CTL_ADD, co.agent_fd, &ev);
	/* The catalog's commit thread says a batch is durable (csv-coord/coord_catalog.h). */
	if (coord_catalog_fd() >= 0) {
		ev.data.ptr = &tag_catalog;
		if (epoll_ctl(co.epfd, EPOLL_CTL_ADD, coord_catalog_fd(), &ev) < 0)
			fatal("%s: epoll of the catalog's commit thread", __func__);
	}

	{
		char fp[2 * TLS_FINGERPRINT_LEN + 1];

		tls_fingerprint_hex(ca_fingerprint(co.ca), fp);
		log_info("%s: cluster %s: agents on %s port %u, joins on port %u, CA sha256 %s; "
			 "heartbeat %u ms, %u misses: lease %.0f ms, agent fences after %.0f ms; "
			 "%u host(s) known",
			 __func__, cl->name, cl->address, cl->agent_port, cl->join_port, fp,
			 cl->heartbeat_ms, cl->miss_threshold, ms(lease_box_timeout_ns(&co.lc)),
			 ms(lease_agent_fence_after_ns(&co.lc)), co.hosts.n);
	}

	coord_catalog_start_exports();
	for (;;) {
		bool again = false;
		struct conn *c;

		for (c = co.conns; c; c = c->next)
			again = again || c->again;
		n = epoll_wait(co.epfd, evs, 32, again ? 0 : -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fatal("%s: epoll_wait", __func__);
		for (i = 0; i < n; i++) {
			void *tag = evs[i].data.ptr;

			if (tag == &tag_parent) {
				if (parent_cb()) {
					rc = 0;
					goto out;
				}
			} else if (tag == &tag_timer) {
				uint64_t x;

				if (read(co.tfd, &x, sizeof(x)) > 0)
					tick();
			} else if (tag == &tag_join) {
				accept_cb(co.join_fd, true);
			} else if (tag == &tag_agent) {
				accept_cb(co.agent_fd, false);
			} else if (tag == &tag_catalog) {
				coord_catalog_committed();
			} else {
				conn_drive(tag);
			}
		}
		for (c = co.conns; c; c = c->next)
			if (c->again && !c->dead)
				conn_drive(c);
		/* The catalog requests of this iteration share one commit (with those that
		 * gathered while the previous batch was in flight). */
		coord_catalog_flush();
		/* Decrypted bytes the fd will not announce. */
		for (c = co.conns; c; c = c->next)
			if (!c->dead && c->handshaken && !c->closing && tls_conn_pending(c->tls))
				c->again = true;
		while ((c = co.dead)) {
			co.dead = c->next;
			free(c->out);
			free(c);
		}
		ev.events = EPOLLIN | (msg_chan_pending(&co.ch) ? EPOLLOUT : 0);
		ev.data.ptr = &tag_parent;
		epoll_ctl(co.epfd, EPOLL_CTL_MOD, parent_fd, &ev);
	}
out:
	cleanup();
	return rc;
}
