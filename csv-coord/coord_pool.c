/* Block and folder pools of the coord plane's catalog: their JSON, the block pools' devices
 * found and mounted at start (pool_attach) and stray mounts swept (pools_sweep), the
 * free-space alert, and the pool_add, pool_list and pool_remove requests. A block pool's
 * probe, mkfs, mount and unmount run on a worker thread, like a clone's copy, so that they
 * never hold up leases, quorum or fencing in the loop (pool jobs below). Shares
 * coord_catalog_int.h with coord_catalog.c. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "csv-coord/catalog.h"
#include "csv-coord/coord_catalog_int.h"
#include "csv-coord/pool_device.h"
#include "lib/log.h"

/* ---- block pools (csv-coord/pool_device.h) ---- */

static struct pool_seen *seen_find(int64_t id)
{
	for (unsigned i = 0; i < cc.nseen; i++)
		if (cc.seen[i].id == id)
			return &cc.seen[i];
	return NULL;
}

static void seen_set(int64_t id, enum pool_state state, const char *device, const char *why)
{
	struct pool_seen *s = seen_find(id);

	if (!s && cc.nseen < CC_POOLS_MAX)
		s = &cc.seen[cc.nseen++];
	if (!s)
		return;
	s->id = id;
	s->state = state;
	snprintf(s->device, sizeof(s->device), "%s", device ? device : "");
	snprintf(s->why, sizeof(s->why), "%s", why ? why : "");
}

static void seen_forget(int64_t id)
{
	struct pool_seen *s = seen_find(id);

	if (s)
		*s = cc.seen[--cc.nseen];
}

static void pool_block_json(json_t *o, const struct catalog_pool *p)
{
	const struct pool_seen *s = seen_find(p->id);
	enum pool_state st = p->online ? POOL_STATE_ONLINE
				       : (s ? s->state : POOL_STATE_UNAVAILABLE);

	json_object_set_new(o, "device", json_string(s && s->device[0] ? s->device : p->device));
	json_object_set_new(o, "fs_type", json_string(p->fs_type));
	json_object_set_new(o, "fs_uuid", json_string(p->fs_uuid));
	json_object_set_new(o, "mountpoint", json_string(p->path));
	json_object_set_new(o, "state", json_string(pool_state_name(st)));
	if (!p->online && s && s->why[0])
		json_object_set_new(o, "state_reason", json_string(s->why));
}

/* catalog_pool_attach_fn: at start, before reconciliation, find a block pool's device by its
 * file system's UUID and mount it again. A pool that stays offline is reported; its disks are
 * neither served nor touched until a later start finds the device. */
bool pool_attach(void *arg, const struct catalog_pool *p)
{
	char dev[POOL_DEVICE_PATH_MAX + 1] = "", uuid[POOL_DEVICE_UUID_MAX + 1],
					     type[POOL_DEVICE_FS_MAX + 1];
	char why[POOL_DEVICE_ERR_MAX] = "", text[COORD_EVENT_TEXT];
	int frc, mrc = 0;

	(void)arg;
	frc = pool_device_find(p->fs_uuid, dev, why, sizeof(why));
	if (frc == 0 && (pool_device_fs_id(dev, uuid, type, why, sizeof(why)) < 0 ||
			 strcmp(type, p->fs_type) != 0)) {
		if (!why[0] || strcmp(type, p->fs_type) != 0)
			snprintf(why, sizeof(why), "%s holds file system %s as %s, not %s", dev,
				 p->fs_uuid, type, p->fs_type);
		frc = -EIO;
	}
	if (frc == 0)
		mrc = pool_device_mount(dev, p->fs_type, p->path, why, sizeof(why));
	seen_set(p->id, pool_state_decide(frc, mrc), dev, why);
	if (frc == 0 && mrc == 0) {
		log_info("coord: pool %s: %s (%s %s) mounted at %s", p->name, dev, p->fs_type,
			 p->fs_uuid, p->path);
		return true;
	}
	snprintf(text, sizeof(text), "pool %s is %s: %s; its disks are not served", p->name,
		 pool_state_name(pool_state_decide(frc, mrc)), why);
	log_warnx("coord: %s", text);
	if (cc.env.event)
		cc.env.event(COORD_EV_POOL_OFFLINE, NULL, text);
	return false;
}

static json_t *pool_json(const struct catalog_pool *p)
{
	struct catalog_pool_usage u;
	char err[CATALOG_ERR_MAX];
	json_t *o;

	o = json_pack("{s:I, s:s, s:s, s:s, s:I}", "id", (json_int_t)p->id, "name", p->name, "path",
		      p->path, "kind", p->kind == CATALOG_POOL_BLOCK ? "block" : "folder",
		      "alert_pct", (json_int_t)p->alert_pct);
	if (p->kind == CATALOG_POOL_BLOCK)
		pool_block_json(o, p);
	else
		json_object_set_new(o, "state", json_string(pool_state_name(POOL_STATE_ONLINE)));
	if (catalog_pool_usage(cc.cat, p->id, &u, err, sizeof(err)) == 0) {
		json_object_set_new(o, "capacity", json_integer((json_int_t)u.capacity));
		json_object_set_new(o, "used", json_integer((json_int_t)u.used));
		json_object_set_new(o, "free", json_integer((json_int_t)u.free));
		json_object_set_new(o, "allocated", json_integer((json_int_t)u.allocated));
		json_object_set_new(o, "provisioned", json_integer((json_int_t)u.provisioned));
		json_object_set_new(o, "vdisks", json_integer(u.n_vdisks));
		json_object_set_new(o, "alert", json_boolean(u.alert));
	} else {
		json_object_set_new(o, "usage_error", json_string(err));
	}
	return o;
}

/* ---- the free-space alert ---- */

static void pool_alert_event(const struct catalog_pool *p, const struct catalog_pool_usage *u)
{
	enum coord_event_kind kind = u->alert ? COORD_EV_POOL_ALERT : COORD_EV_POOL_ALERT_CLEARED;
	double pct = u->capacity ? (double)u->free * 100.0 / (double)u->capacity : 0.0;
	char text[COORD_EVENT_TEXT];

	snprintf(text, sizeof(text),
		 "pool %s: %llu bytes free of %llu (%.1f%%), %s the alert "
		 "threshold of %u%%",
		 p->name, (unsigned long long)u->free, (unsigned long long)u->capacity, pct,
		 u->alert ? "at or below" : "back above", p->alert_pct);
	if (cc.env.event)
		cc.env.event(kind, NULL, text);
	else if (u->alert)
		log_warnx("coord: %s: %s", coord_event_kind_name(kind), text);
	else
		log_info("coord: %s: %s", coord_event_kind_name(kind), text);
}

/* Look at every pool's free space and report each alert that turned on or off since the last
 * look. A pool seen for the first time counts as not alerting before, so a pool that is
 * already short of space reports it once. Pools that are gone are forgotten. */
void pools_check(void)
{
	static struct catalog_pool pools[CC_POOLS_MAX];
	struct catalog_pool_usage u;
	char err[CATALOG_ERR_MAX];
	unsigned nalerts = 0, i, k;
	bool was;
	int n;

	n = catalog_pool_list(cc.cat, pools, CC_POOLS_MAX);
	if (n < 0)
		return;
	for (i = 0; i < (unsigned)n && i < CC_POOLS_MAX; i++) {
		was = false;
		for (k = 0; k < cc.nalerts; k++)
			if (cc.alerts[k].id == pools[i].id)
				was = cc.alerts[k].alert;
		/* A pool whose usage cannot be read keeps its last state. */
		if (catalog_pool_space(cc.cat, pools[i].id, &u, err, sizeof(err)) < 0)
			u.alert = was;
		else if (u.alert != was)
			pool_alert_event(&pools[i], &u);
		/* In list order, which is by id, so the table is rebuilt in place. */
		cc.alerts[nalerts].id = pools[i].id;
		cc.alerts[nalerts++].alert = u.alert;
	}
	cc.nalerts = nalerts;
}

/* ---- pool jobs: a block pool's slow steps on a worker thread ---- */

/* pool_add --device and pool_remove of a block pool probe, mkfs, mount and unmount a device,
 * which takes seconds on a large or slow one (and longer when its I/O stalls). The loop runs
 * leases, quorum and fencing, so like a clone these run on a worker thread: the loop checks
 * what it can without touching the device, notes the job (a second add of the name or the
 * device, a remove of the pool, a new disk in it are refused as busy meanwhile), and when the
 * worker is done it writes or removes the pool's row through the single writer and answers.
 * The worker never touches the catalog or the log; the loop owns the job but, until
 * `finished` is set, the worker's results (rc, err, mounted, probe, uuid, type). */
enum pool_step {
	PJ_ADD,	    /* probe, admit, mkfs, mount; then the loop inserts the row */
	PJ_UNDO,    /* the row could not be inserted: unmount what the add mounted */
	PJ_REMOVE,  /* unmount; then the loop removes the row */
	PJ_REMOUNT, /* the row could not be removed: mount the pool again */
};

struct pool_job {
	struct pool_job *next;
	enum pool_step step;
	uint32_t ctl_id; /* the admin's request, answered at the end */
	char name[CATALOG_NAME_MAX + 1];
	char device[POOL_DEVICE_PATH_MAX + 1];
	dev_t rdev; /* the device's number when the loop could stat it; 0: unknown */
	char mnt[CATALOG_PATH_MAX];
	enum pool_fs fs;
	unsigned alert;
	int64_t pool_id; /* a remove's pool */
	bool was_online; /* a remove's pool was mounted: mounted again if its row stays */
	char fs_type[POOL_DEVICE_FS_MAX + 1];
	int64_t started_ns;
	pthread_t thread;
	bool joinable;
	atomic_bool finished;
	/* The worker's. */
	int rc;
	bool mounted;
	struct pool_device_probe probe;
	char uuid[POOL_DEVICE_UUID_MAX + 1], type[POOL_DEVICE_FS_MAX + 1];
	char err[POOL_DEVICE_ERR_MAX];
	/* The answer an undo or a remount goes on to give once it is done. */
	int ans_rc;
	char ans_err[POOL_DEVICE_ERR_MAX];
};

static struct pool_job *pool_jobs;

static struct pool_job *pool_job_by_name(const char *name)
{
	struct pool_job *j;

	for (j = pool_jobs; j; j = j->next)
		if (!strcmp(j->name, name))
			return j;
	return NULL;
}

/* The add that is taking this device (by its path, or by its number under another name). */
static struct pool_job *pool_job_by_device(const char *device, dev_t rdev)
{
	struct pool_job *j;

	for (j = pool_jobs; j; j = j->next)
		if ((j->step == PJ_ADD || j->step == PJ_UNDO) &&
		    (!strcmp(j->device, device) || (rdev && j->rdev == rdev)))
			return j;
	return NULL;
}

struct pool_job *pool_job_by_pool(int64_t id)
{
	struct pool_job *j;

	for (j = pool_jobs; j; j = j->next)
		if (j->pool_id && j->pool_id == id)
			return j;
	return NULL;
}

static void *pool_job_main(void *arg)
{
	struct pool_job *j = arg;

	j->err[0] = '\0';
	switch (j->step) {
	case PJ_ADD:
		j->mounted = false;
		j->rc = pool_device_probe(j->device, &j->probe, j->err, sizeof(j->err));
		if (j->rc == 0)
			j->rc = pool_device_admit(j->device, &j->probe, j->fs, j->err,
						  sizeof(j->err));
		if (j->rc == 0)
			j->rc = pool_device_mkfs(j->device, j->fs, j->err, sizeof(j->err));
		if (j->rc == 0)
			j->rc = pool_device_fs_id(j->device, j->uuid, j->type, j->err,
						  sizeof(j->err));
		if (j->rc == 0) {
			j->rc = pool_device_mount(j->device, j->type, j->mnt, j->err,
						  sizeof(j->err));
			j->mounted = j->rc == 0;
		}
		break;
	case PJ_UNDO:
	case PJ_REMOVE:
		j->rc = pool_device_umount(j->mnt, j->err, sizeof(j->err));
		break;
	case PJ_REMOUNT:
		j->rc = pool_device_mount(j->device, j->fs_type, j->mnt, j->err, sizeof(j->err));
		break;
	}
	atomic_store(&j->finished, true);
	return NULL;
}

/* Run the job's step on a worker; without a thread, in the loop (as the box did before), so
 * that the step and its end still happen. pool_jobs_tick() sees the end either way. */
static void pool_job_run(struct pool_job *j, enum pool_step step)
{
	int rc;

	j->step = step;
	atomic_store(&j->finished, false);
	rc = pthread_create(&j->thread, NULL, pool_job_main, j);
	j->joinable = rc == 0;
	if (rc) {
		log_warnx("coord: pool %s: no worker thread (%s); in the loop", j->name,
			  strerror(rc));
		pool_job_main(j);
	}
}

static void pool_job_free(struct pool_job *d)
{
	struct pool_job **pp;

	for (pp = &pool_jobs; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	free(d);
}

/* Answer with an error, unless coord is stopping (the admin's connection closes with it). */
static void pool_job_fail(struct pool_job *j, int rc, const char *why, bool stopping)
{
	if (!stopping)
		reply_err(j->ctl_id, rc, why);
	pool_job_free(j);
}

static double pool_job_secs(const struct pool_job *j)
{
	return (double)(mono_ns() - j->started_ns) / 1e9;
}

/* The add's worker is done: the row goes in (or the mount is undone) and the admin is
 * answered. Stopping: no row; what was mounted is unmounted here, coord is going anyway. */
static void pool_add_end(struct pool_job *j, bool stopping)
{
	char err[CATALOG_ERR_MAX], uerr[POOL_DEVICE_ERR_MAX];
	struct catalog_pool p;
	int64_t pid = 0;
	int rc = j->rc;

	if (rc) {
		log_warnx("coord: pool %s: %s not taken after %.1f s: %s", j->name, j->device,
			  pool_job_secs(j), j->err);
		pool_job_fail(j, rc, j->err, stopping);
		return;
	}
	if (stopping) {
		rc = -ECANCELED;
		snprintf(err, sizeof(err), "coord stopped");
	} else {
		writer_wait();
		rc = catalog_pool_add_block(cc.cat, j->name, j->mnt, j->device, j->uuid, j->type,
					    j->alert, quorate(), &pid, err, sizeof(err));
	}
	if (rc) {
		log_warnx("coord: pool %s: %s made and mounted but not recorded (%s); unmounting "
			  "it",
			  j->name, j->device, err);
		if (stopping) {
			if (pool_device_umount(j->mnt, uerr, sizeof(uerr)) < 0)
				log_warnx("coord: pool %s: %s", j->name, uerr);
			pool_job_free(j);
			return;
		}
		j->ans_rc = rc;
		snprintf(j->ans_err, sizeof(j->ans_err), "%s", err);
		pool_job_run(j, PJ_UNDO);
		return;
	}
	seen_set(pid, POOL_STATE_ONLINE, j->device, "");
	log_info("coord: pool %s: %s made on %s%s%s%s, mounted at %s (%s, %.1f s)", j->name,
		 j->type, j->device, j->probe.has_signature ? " (it held " : "",
		 j->probe.has_signature ? j->probe.sig_type : "", j->probe.has_signature ? ")" : "",
		 j->mnt, j->uuid, pool_job_secs(j));
	if (catalog_pool_get(cc.cat, pid, &p) < 0)
		reply_err(j->ctl_id, -EIO, "the pool was added but cannot be read back");
	else
		cc.env.reply(j->ctl_id, json_pack("{s:o}", "pool", pool_json(&p)));
	pool_job_free(j);
}

/* The remove's unmount is done: the row goes (or the pool is mounted again). Stopping and the
 * row refused: the pool stays unmounted; the next start mounts it again (pool_attach). */
static void pool_remove_end(struct pool_job *j, bool stopping)
{
	char err[CATALOG_ERR_MAX];
	int rc = j->rc;

	if (rc) {
		log_warnx("coord: pool %s: not removed: %s", j->name, j->err);
		pool_job_fail(j, rc, j->err, stopping);
		return;
	}
	writer_wait();
	rc = catalog_pool_remove(cc.cat, j->pool_id, true, err, sizeof(err));
	if (rc == 0) {
		seen_forget(j->pool_id);
		log_info("coord: pool %s: unmounted from %s and forgotten (file system kept; "
			 "%.1f s)",
			 j->name, j->mnt, pool_job_secs(j));
		if (!stopping)
			cc.env.reply(j->ctl_id, json_pack("{s:s}", "removed", j->name));
		pool_job_free(j);
		return;
	}
	if (stopping || !j->was_online) {
		log_warnx("coord: pool %s: not removed (%s)%s", j->name, err,
			  j->was_online ? "; the next start mounts it again" : "");
		pool_job_fail(j, rc, err, stopping);
		return;
	}
	log_warnx("coord: pool %s: unmounted but not removed (%s); mounting it again", j->name,
		  err);
	j->ans_rc = rc;
	snprintf(j->ans_err, sizeof(j->ans_err), "%s", err);
	pool_job_run(j, PJ_REMOUNT);
}

/* An undo or a remount is done: the answer is the error that called for it. */
static void pool_redo_end(struct pool_job *j, bool stopping)
{
	if (j->rc && j->step == PJ_UNDO)
		log_warnx("coord: pool %s: %s", j->name, j->err);
	if (j->rc && j->step == PJ_REMOUNT) {
		log_warnx("coord: pool %s: not removed, and not mounted again either: %s", j->name,
			  j->err);
		seen_set(j->pool_id, POOL_STATE_UNAVAILABLE, j->device, j->err);
	}
	pool_job_fail(j, j->ans_rc, j->ans_err, stopping);
}

static void pool_job_end(struct pool_job *j, bool stopping)
{
	if (j->joinable)
		pthread_join(j->thread, NULL);
	j->joinable = false;
	switch (j->step) {
	case PJ_ADD:
		pool_add_end(j, stopping);
		break;
	case PJ_REMOVE:
		pool_remove_end(j, stopping);
		break;
	case PJ_UNDO:
	case PJ_REMOUNT:
		pool_redo_end(j, stopping);
		break;
	}
}

void pool_jobs_tick(void)
{
	struct pool_job *j, *next;

	for (j = pool_jobs; j; j = next) {
		next = j->next;
		if (atomic_load(&j->finished))
			pool_job_end(j, false);
	}
}

/* At close: every worker is waited for (mkfs cannot be stopped halfway with any use), and
 * what it leaves is settled without answers. An undo or remount it starts runs in turn. */
void pool_jobs_stop(void)
{
	struct pool_job *j;

	while ((j = pool_jobs)) {
		if (j->joinable)
			pthread_join(j->thread, NULL);
		j->joinable = false;
		if (j->step == PJ_ADD)
			pool_add_end(j, true);
		else if (j->step == PJ_REMOVE)
			pool_remove_end(j, true);
		else
			pool_redo_end(j, true);
	}
}

/* pool_add with "device": take a block device as a pool. The loop checks what needs no device
 * I/O (quorum, the name, the path, nothing else taking the name or the device); a worker
 * probes the device, refuses it unless pool_device_admit() takes it, makes the file system
 * and mounts it; the loop then records the pool and answers (pool jobs above). */
static void pool_add_block(uint32_t id, const char *name, const char *device, const char *format,
			   unsigned alert)
{
	char err[POOL_DEVICE_ERR_MAX];
	enum pool_fs fs = POOL_FS_NONE;
	struct catalog_pool p;
	struct pool_job *j;
	struct stat sb;

	if (!quorate()) {
		reply_err(id, -EPERM, "no quorum: pools change only with quorum");
		return;
	}
	if (!catalog_name_valid(name)) {
		reply_err(id, -EINVAL, "a pool name is 1 to 63 characters of A-Z a-z 0-9 . _ -");
		return;
	}
	if (!pool_device_path_valid(device)) {
		reply_err(id, -EINVAL, "the device is a path under /dev/ (e.g. /dev/sdb)");
		return;
	}
	if (format && *format && pool_fs_parse(format, &fs) < 0) {
		reply_err(id, -EINVAL, "--format is ext4 or xfs");
		return;
	}
	if (catalog_pool_by_name(cc.cat, name, &p) == 0) {
		snprintf(err, sizeof(err), "a pool named %s exists", name);
		reply_err(id, -EEXIST, err);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		reply_err(id, -ENOMEM, "out of memory");
		return;
	}
	/* A /dev node's inode: devtmpfs, no I/O to the device. */
	if (stat(device, &sb) == 0 && S_ISBLK(sb.st_mode))
		j->rdev = sb.st_rdev;
	if (pool_job_by_name(name) || pool_job_by_device(device, j->rdev)) {
		free(j);
		snprintf(err, sizeof(err), "pool %s or device %s is being added already; try again",
			 name, device);
		reply_err(id, -EBUSY, err);
		return;
	}
	if (snprintf(j->mnt, sizeof(j->mnt), "%s/pools/%s", cc.env.cfg->data_dir, name) >=
	    CATALOG_PATH_MAX - CATALOG_ID_LEN - 8) {
		free(j);
		reply_err(id, -ENAMETOOLONG,
			  "the data folder's path is too long for a mount point");
		return;
	}
	j->ctl_id = id;
	snprintf(j->name, sizeof(j->name), "%s", name);
	snprintf(j->device, sizeof(j->device), "%s", device);
	j->fs = fs;
	j->alert = alert;
	j->started_ns = mono_ns();
	j->next = pool_jobs;
	pool_jobs = j;
	log_info("coord: pool %s: taking %s%s%s (on a worker; the answer follows)", name, device,
		 fs != POOL_FS_NONE ? " as " : "", pool_fs_name(fs));
	pool_job_run(j, PJ_ADD);
}

/* A create not yet answered in pool id: queued, in the commit, or at the target. */
static bool pool_creating(int64_t id)
{
	struct op *o;

	for (o = cc.ops; o; o = o->next)
		if (o->kind == OP_CREATE && o->req[0].spec.pool_id == id)
			return true;
	return false;
}

/* A block pool is unmounted before its row goes, and mounted again if the row cannot go; its
 * device is never wiped. The unmount (which writes back what the file system holds) runs on a
 * worker; meanwhile no disk can be made in the pool. */
static void pool_remove_block(uint32_t id, const struct catalog_pool *p)
{
	const struct pool_seen *s = seen_find(p->id);
	char err[POOL_DEVICE_ERR_MAX];
	struct catalog_vdisk one;
	struct pool_job *j;
	int n;

	if (!quorate()) {
		reply_err(id, -EPERM, "no quorum: pools change only with quorum");
		return;
	}
	n = catalog_vdisk_list(cc.cat, p->id, &one, 1);
	if (n != 0) {
		snprintf(err, sizeof(err),
			 n < 0 ? "cannot list the pool's disks"
			       : "pool %s still holds %d virtual disk(s)",
			 p->name, n);
		reply_err(id, n < 0 ? -EIO : -EBUSY, err);
		return;
	}
	if (pool_creating(p->id)) {
		snprintf(err, sizeof(err), "a virtual disk is being created in pool %s", p->name);
		reply_err(id, -EBUSY, err);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		reply_err(id, -ENOMEM, "out of memory");
		return;
	}
	j->ctl_id = id;
	j->pool_id = p->id;
	j->was_online = p->online;
	snprintf(j->name, sizeof(j->name), "%s", p->name);
	snprintf(j->device, sizeof(j->device), "%s", s && s->device[0] ? s->device : p->device);
	snprintf(j->mnt, sizeof(j->mnt), "%s", p->path);
	snprintf(j->fs_type, sizeof(j->fs_type), "%s", p->fs_type);
	j->started_ns = mono_ns();
	j->next = pool_jobs;
	pool_jobs = j;
	pool_job_run(j, PJ_REMOVE);
}

void do_pool_add(uint32_t id, json_t *req)
{
	const char *name = jstr(req, "name"), *path = jstr(req, "path"),
		   *device = jstr(req, "device"), *format = jstr(req, "format");
	char err[CATALOG_ERR_MAX];
	struct catalog_pool p;
	uint64_t alert = 0;
	int64_t pid;
	int rc;

	if (!name || !path == !device ||
	    (json_object_get(req, "alert") && !juint(req, "alert", &alert)) || alert > 100) {
		reply_err(id, -EINVAL,
			  "pool_add needs \"name\", either \"path\" or \"device\", and an "
			  "\"alert\" 0..100");
		return;
	}
	if (pool_job_by_name(name)) {
		snprintf(err, sizeof(err), "pool %s is being added or removed; try again", name);
		reply_err(id, -EBUSY, err);
		return;
	}
	if (device) {
		pool_add_block(id, name, device, format, (unsigned)alert);
		return;
	}
	if (format) {
		reply_err(id, -EINVAL, "\"format\" is for a block device (\"device\")");
		return;
	}
	writer_wait();
	rc = catalog_pool_add(cc.cat, name, path, CATALOG_POOL_FOLDER, (unsigned)alert, quorate(),
			      &pid, err, sizeof(err));
	if (rc) {
		reply_err(id, rc, err);
		return;
	}
	if (catalog_pool_get(cc.cat, pid, &p) < 0) {
		reply_err(id, -EIO, "the pool was added but cannot be read back");
		return;
	}
	cc.env.reply(id, json_pack("{s:o}", "pool", pool_json(&p)));
}

void do_pool_list(uint32_t id)
{
	static struct catalog_pool pools[CC_POOLS_MAX];
	json_t *a = json_array();
	int n, i;

	n = catalog_pool_list(cc.cat, pools, CC_POOLS_MAX);
	if (n < 0) {
		json_decref(a);
		reply_err(id, n, "cannot read the pools");
		return;
	}
	for (i = 0; i < n && i < CC_POOLS_MAX; i++)
		json_array_append_new(a, pool_json(&pools[i]));
	cc.env.reply(id, json_pack("{s:o}", "pools", a));
}

void do_pool_remove(uint32_t id, json_t *req)
{
	const char *name = jstr(req, "name");
	char err[POOL_DEVICE_ERR_MAX];
	struct catalog_pool p;
	int rc;

	if (!name) {
		reply_err(id, -EINVAL, "pool_remove needs \"name\"");
		return;
	}
	if (pool_job_by_name(name)) {
		snprintf(err, sizeof(err), "pool %s is being added or removed; try again", name);
		reply_err(id, -EBUSY, err);
		return;
	}
	if (catalog_pool_by_name(cc.cat, name, &p) < 0) {
		snprintf(err, sizeof(err), "no pool '%s'", name);
		reply_err(id, -ENOENT, err);
		return;
	}
	if (p.kind == CATALOG_POOL_BLOCK) {
		pool_remove_block(id, &p);
		return;
	}
	writer_wait();
	rc = catalog_pool_remove(cc.cat, p.id, quorate(), err, sizeof(err));
	if (rc)
		reply_err(id, rc, err);
	else
		cc.env.reply(id, json_pack("{s:s}", "removed", p.name));
}

static void sweep_report(const char *mnt, int rc, const char *why)
{
	if (rc == 0)
		log_warnx("coord: %s was mounted but is no pool's (a pool add cut short between its "
			  "mount and its row): unmounted; the device is left as it is", mnt);
	else
		log_warnx("coord: %s is mounted but is no pool's, and cannot be unmounted: %s", mnt,
			  why);
}

/* A pool add that died between its mount and its catalog row left a file system mounted
 * under data/pools that no pool names; it would keep a new add of that device refused as
 * "mounted". Unmount it (pool_device_sweep); the pools' own mount points are kept. */
void pools_sweep(void)
{
	static struct catalog_pool pools[CC_POOLS_MAX];
	const char *keep[CC_POOLS_MAX];
	char dir[CATALOG_PATH_MAX];
	size_t nkeep = 0;
	int np, rc;

	np = catalog_pool_list(cc.cat, pools, CC_POOLS_MAX);
	if (np < 0 || np > CC_POOLS_MAX) {
		log_warnx("coord: pools not listed: stray mounts under the pools folder are left");
		return;
	}
	for (int i = 0; i < np; i++)
		keep[nkeep++] = pools[i].path;
	if (snprintf(dir, sizeof(dir), "%s/pools", cc.env.cfg->data_dir) >= (int)sizeof(dir))
		return;
	rc = pool_device_sweep(dir, keep, nkeep, sweep_report);
	if (rc < 0)
		log_warnx("coord: %s: %s", dir, strerror(-rc));
}
