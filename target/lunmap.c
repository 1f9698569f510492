/* Run-time LUNs: see lunmap.h. Writers (the control plane, on the target's main thread) are
 * serialized by tgt_global.lock; readers on the workers use scsi_target_nluns() and
 * scsi_lun_entry_dev(). A slot is published by storing its dev after its number, then the
 * count; a removed LUN's slot keeps its number with a NULL dev and is reused only by the same
 * number, so a reader can never pair a number with another LUN's device. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "target/backstore.h"
#include "target/lun.h"
#include "target/lunmap.h"
#include "target/scsi_pr.h"
#include "target/scsi_sense.h"
#include "target/transport.h"

static struct tgt_target *lunmap_target(const char *iqn)
{
	for (size_t i = 0; i < tgt_global.ntargets; i++)
		if (strcmp(tgt_global.targets[i].cfg->iqn, iqn) == 0)
			return &tgt_global.targets[i];
	return NULL;
}

/* The slot holding LUN number lun, or -1. */
static long lunmap_slot(const struct tgt_target *tt, uint64_t lun)
{
	for (size_t i = 0, n = scsi_target_nluns(&tt->info); i < n; i++)
		if (tt->luns[i].lun == lun)
			return (long)i;
	return -1;
}

/* spc4r37 6.33 / sam5r21 5.14: the LUN inventory changed; every nexus of every other LUN of
 * the target hears it (it then rescans with REPORT LUNS). */
static void lunmap_inventory_changed(struct tgt_target *tt, const struct scsi_lun *except)
{
	for (size_t i = 0, n = scsi_target_nluns(&tt->info); i < n; i++) {
		struct scsi_lun *dev = scsi_lun_entry_dev(&tt->luns[i]);

		if (dev && dev != except)
			scsi_lun_ua_all(dev, NULL, &SENSE_REPORTED_LUNS_CHANGED);
	}
}

/* Tell the LUN about the nexuses already logged in to the target (their unit attentions). */
static void lunmap_announce(struct tgt_target *tt, struct scsi_lun *dev)
{
	for (struct session *s = tgt_global.sessions; s; s = s->next)
		if (s->target == tt && !s->dying && s->type == ISCSI_SESSION_NORMAL)
			scsi_lun_nexus_login(dev, &s->nexus);
}

int tgt_lun_add(const char *iqn, uint64_t lun, const char *name, const char *path, uint64_t size,
		uint32_t block_size, const struct tgt_lun_policy *policy)
{
	struct hf_backstore cfg = {0};
	struct tgt_target *tt;
	struct tgt_rt_lun *rt;
	struct scsi_lun *dev;
	long slot;
	int rc;

	if (lun >= TGT_LUN_SLOTS || !name || !*name || !path || path[0] != '/')
		return -EINVAL;
	cfg.type = HF_BS_FILE;
	cfg.size = size;
	cfg.block_size = block_size ? block_size : 512;
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	snprintf(cfg.path, sizeof(cfg.path), "%s", path);
	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	snprintf(rt->path, sizeof(rt->path), "%s", path);
	pthread_mutex_lock(&tgt_global.lock);
	tt = lunmap_target(iqn);
	if (!tt) {
		rc = -ENOENT;
		goto err_unlock;
	}
	slot = lunmap_slot(tt, lun);
	if (slot >= 0 && scsi_lun_entry_dev(&tt->luns[slot])) {
		rc = -EEXIST;
		goto err_unlock;
	}
	rc = bs_open(&cfg, &rt->bs);
	if (rc < 0)
		goto err_unlock;
	rc = scsi_lun_create(rt->bs, tgt_global.cfg->box_id, name, &dev);
	if (rc < 0)
		goto err_close;
	if (policy) {
		rc = scsi_lun_set_access(dev, policy->owners, policy->nowners, policy->members,
					 policy->nmembers, policy->epoch, policy->paused);
		if (rc < 0)
			goto err_destroy;
	}
	lunmap_announce(tt, dev);
	if (slot < 0) {
		slot = (long)tt->info.nluns;
		tt->luns[slot].lun = lun;
		tt->rt[slot] = rt;
		__atomic_store_n(&tt->luns[slot].dev, dev, __ATOMIC_RELEASE);
		__atomic_store_n(&tt->info.nluns, (size_t)slot + 1, __ATOMIC_RELEASE);
	} else {
		tt->rt[slot] = rt;
		__atomic_store_n(&tt->luns[slot].dev, dev, __ATOMIC_RELEASE);
	}
	lunmap_inventory_changed(tt, dev);
	pthread_mutex_unlock(&tgt_global.lock);
	log_info("%s: %s: LUN %llu is %s (%s, %llu bytes)", __func__, iqn, (unsigned long long)lun,
		 name, path, (unsigned long long)size);
	return 0;

err_destroy:
	scsi_lun_destroy(dev);
err_close:
	bs_close(rt->bs);
err_unlock:
	pthread_mutex_unlock(&tgt_global.lock);
	free(rt);
	log_warnx("%s: %s: LUN %llu (%s): %s", __func__, iqn, (unsigned long long)lun, path,
		  strerror(-rc));
	return rc;
}

static const struct abort_answer lun_gone = {SCSI_STATUS_CHECK_CONDITION, &SENSE_LUN_NOT_SUPPORTED};

/* The removal's rendezvous with the workers' abort sweep. */
struct lunmap_sweep {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void lunmap_sweep_done(struct tmf_wait *w)
{
	struct lunmap_sweep *ls = w->arg;

	pthread_mutex_lock(&ls->lock);
	ls->done = true;
	pthread_cond_signal(&ls->cond);
	pthread_mutex_unlock(&ls->lock);
}

int tgt_lun_remove(const char *iqn, uint64_t lun)
{
	struct lunmap_sweep ls = {.lock = PTHREAD_MUTEX_INITIALIZER,
				  .cond = PTHREAD_COND_INITIALIZER};
	struct tgt_target *tt;
	struct tgt_rt_lun *rt;
	struct scsi_lun *dev;
	struct tmf_wait *w;
	long slot;

	pthread_mutex_lock(&tgt_global.lock);
	tt = lunmap_target(iqn);
	slot = tt ? lunmap_slot(tt, lun) : -1;
	dev = slot >= 0 ? scsi_lun_entry_dev(&tt->luns[slot]) : NULL;
	if (!dev) {
		pthread_mutex_unlock(&tgt_global.lock);
		return -ENOENT;
	}
	rt = tt->rt[slot];
	if (!rt) {
		pthread_mutex_unlock(&tgt_global.lock);
		return -EPERM;
	}
	/* From here no new command finds the LUN. */
	__atomic_store_n(&tt->luns[slot].dev, NULL, __ATOMIC_RELEASE);
	tt->rt[slot] = NULL;
	lunmap_inventory_changed(tt, NULL);
	pthread_mutex_unlock(&tgt_global.lock);

	/* A command that found it just before is a task on some worker: abort them all and
	 * wait, after which nothing refers to the LUN. */
	w = tmf_wait_alloc(NULL, NULL);
	w->arg = &ls;
	w->lun = dev;
	w->finish = lunmap_sweep_done;
	/* The initiators' commands on it end with the answer every later command gets. */
	w->answer = &lun_gone;
	tmf_abort_everywhere(NULL, dev, w);
	tmf_wait_put(w);
	pthread_mutex_lock(&ls.lock);
	while (!ls.done)
		pthread_cond_wait(&ls.cond, &ls.lock);
	pthread_mutex_unlock(&ls.lock);

	scsi_pr_lun_gone(dev);
	scsi_lun_destroy(dev);
	bs_close(rt->bs);
	log_info("%s: %s: LUN %llu (%s) removed", __func__, iqn, (unsigned long long)lun, rt->path);
	free(rt);
	return 0;
}

int tgt_lun_resize(const char *iqn, uint64_t lun, uint64_t size)
{
	struct tgt_target *tt;
	struct scsi_lun *dev;
	long slot;
	int rc;

	pthread_mutex_lock(&tgt_global.lock);
	tt = lunmap_target(iqn);
	slot = tt ? lunmap_slot(tt, lun) : -1;
	dev = slot >= 0 ? scsi_lun_entry_dev(&tt->luns[slot]) : NULL;
	if (!dev) {
		pthread_mutex_unlock(&tgt_global.lock);
		return -ENOENT;
	}
	rc = bs_resize(scsi_lun_bs(dev), size);
	if (rc == 0)
		scsi_lun_capacity_changed(dev);
	pthread_mutex_unlock(&tgt_global.lock);
	if (rc == 0)
		log_info("%s: %s: LUN %llu grown to %llu bytes", __func__, iqn,
			 (unsigned long long)lun, (unsigned long long)size);
	return rc;
}

void tgt_lun_close_all(void)
{
	for (size_t i = 0; i < tgt_global.ntargets; i++) {
		struct tgt_target *tt = &tgt_global.targets[i];

		for (size_t l = 0, n = scsi_target_nluns(&tt->info); l < n; l++)
			if (tt->rt[l]) {
				bs_close(tt->rt[l]->bs);
				free(tt->rt[l]);
				tt->rt[l] = NULL;
			}
	}
}
