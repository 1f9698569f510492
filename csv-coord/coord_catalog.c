/* The catalog inside the coord plane. A control request is checked here (names, numbers), its
 * catalog requests are queued, and coord_catalog_flush() hands every request queued since the
 * last batch to the commit thread as one catalog_commit() (one fsync for all of them). What the target must
 * know follows the commit and comes before the answer: a new disk is exported (lun_add) and
 * given its access policy, an extend is followed by lun_resize, an ownership change by
 * lun_access. A delete goes the other way round: the LUN is removed first (so no host writes
 * to a file that is about to go) and the row after. Only one operation per disk is in flight
 * at a time; a second one is refused as busy rather than interleaved with the first.
 *
 * A clone copies data, which may take minutes: its intent (the new disk's row, state cloning)
 * is committed here, the answer goes out at once, and a worker thread copies the bytes (clone
 * jobs below). The thread never touches the catalog: it reports progress through atomics and
 * its end through a flag that coord_catalog_tick() looks at, and the loop commits the result.
 * So a clone never holds up leases, quorum or fencing, which run in the same loop. A block
 * pool's probe, mkfs, mount and unmount run on a worker thread the same way (pool jobs below).
 *
 * The group commit runs in a commit thread, not in the loop (commit thread below): the loop hands
 * it a batch and goes on parsing requests and relaying the target's answers; the thread wakes
 * the loop through an eventfd when the batch is durable, and the loop answers for it and hands
 * over the next batch, which gathered meanwhile. At most one batch is in flight. While it is,
 * the loop reads the catalog through its read-only connection (the last committed state) and
 * writes nothing: a write of the loop's own (a clone's steps, a pool, a host's path or portals,
 * taking back a disk the target did not export) first waits for the batch in flight. */
#include "csv-coord/coord_catalog.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csv-coord/catalog.h"
#include "csv-coord/catalog_portal.h"
#include "csv-coord/pool_device.h"
#include "lib/log.h"

#define CC_RETRY_NS	 1000000000LL
#define CC_BLOCK_SIZE	 512
#define CC_LIST_MAX	 4096
#define CC_POOLS_MAX	 256
#define CC_ATTACHED_MAX	 64
#define CC_SIG_MAX	 (COORD_HOSTS_MAX * AGENT_MAX_IQNS * (AGENT_IQN_MAX + 2) + 1)
#define CC_POOL_CHECK_NS 1000000000LL /* how often the pools' free space is looked at */
#define CC_FAILED_MAX	 16	      /* clone failures remembered for vdisk_show */
#define CC_RATE_SLICE_NS 50000000LL   /* a rate-limited worker checks for cancel this often */

enum op_kind {
	OP_CREATE,
	OP_EXTEND,
	OP_DELETE,
	OP_ATTACH,
	OP_DETACH,
	OP_TRANSFER,
	OP_MAINTENANCE,
};

/* One control request on a disk, from its arrival to its answer. */
struct op {
	struct op *next;
	bool queued; /* its catalog requests wait for the next flush */
	uint32_t ctl_id;
	enum op_kind kind;
	char vid[CATALOG_ID_LEN + 1]; /* "" for a create until it is committed */
	struct catalog_req req[3]; /* a host's delete: release, detach, delete */
	unsigned nreq;
	uint64_t old_size;
	char err[CATALOG_ERR_MAX + 64]; /* the answer's error, when there is one */
	int rc;
};

/* A disk whose export or access policy the target has not confirmed yet. */
struct sync {
	struct sync *next;
	char vid[CATALOG_ID_LEN + 1];
	bool add;    /* lun_add first */
	bool resize; /* lun_resize first (an extend the target did not take) */
	bool inflight;
	bool again; /* asked once more while in flight */
	int64_t retry_ns;
	unsigned failures;
};

/* A clone whose bytes a worker thread copies. The loop owns everything but the atomics and,
 * until `finished` is set, rc, reflinked and err, which the worker writes last. */
struct clone_job {
	struct clone_job *next;
	char vid[CATALOG_ID_LEN + 1];
	char src_vid[CATALOG_ID_LEN + 1];
	char src_path[CATALOG_PATH_MAX];
	char dst_path[CATALOG_PATH_MAX];
	uint64_t size;
	uint64_t rate; /* bytes per second at most; 0: as fast as the disks go */
	int64_t started_ns;
	pthread_t thread;
	_Atomic uint64_t done;
	atomic_bool cancel;
	atomic_bool finished;
	int rc;
	bool reflinked;
	char err[CATALOG_ERR_MAX];
	uint32_t delete_ctl; /* a vdisk_delete waiting for the cancelled copy to stop; 0: none */
};

/* A clone that failed or was cancelled, for vdisk_show of its (now gone) id. */
struct clone_failure {
	char vid[CATALOG_ID_LEN + 1];
	char why[CATALOG_ERR_MAX + 64];
};

static struct {
	struct coord_catalog_env env;
	struct catalog *cat;
	char open_err[CATALOG_ERR_MAX];
	struct op *ops;
	struct sync *syncs;
	struct clone_job *jobs;
	struct clone_failure failed[CC_FAILED_MAX];
	unsigned nfailed;
	char *sig; /* the member initiators the last policies were made with */
	struct catalog_req batch[CATALOG_BATCH_MAX];
	/* The free-space alert of each pool as last seen, so that an event is logged only when
	 * it turns on or off, not at every look. */
	struct {
		int64_t id;
		bool alert;
	} alerts[CC_POOLS_MAX];
	unsigned nalerts;
	int64_t pool_check_ns; /* the next periodic look */
	/* Each block pool as the box found it at start or add: its state, the device that
	 * holds it now, and why it is not online. */
	struct pool_seen {
		int64_t id;
		enum pool_state state;
		char device[POOL_DEVICE_PATH_MAX + 1];
		char why[POOL_DEVICE_ERR_MAX];
	} seen[CC_POOLS_MAX];
	unsigned nseen;
} cc;

/* The commit thread. The loop owns everything here but what mu guards; while a batch is in
 * flight (busy), the thread alone uses the catalog's writer connection and batch[]. */
static struct {
	pthread_t thread;
	bool started;
	int fd;	   /* eventfd: the thread wakes the loop when a batch is done */
	bool busy; /* a batch was handed over and its answers are not sent yet */
	struct op *ops[CATALOG_BATCH_MAX];
	size_t nops, n;
	int rc;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool pending; /* under mu: batch[0..n) waits for the thread */
	bool done;    /* under mu: the thread committed it; rc holds catalog_commit's result */
	bool stop;    /* under mu */
} ct = {.fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void writer_wait(void);

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static bool quorate(void)
{
	return quorum_is_quorate(cc.env.q);
}

/* A short name for each refusal, so that scripts need not parse sentences. */
static const char *code_of(int rc)
{
	switch (-rc) {
	case EPERM:
		return "no_quorum";
	case ESTALE:
		return "stale_epoch";
	case EACCES:
		return "not_owner";
	case EBUSY:
		return "busy";
	case ENOENT:
		return "not_found";
	case EEXIST:
		return "exists";
	case EINVAL:
		return "invalid";
	case ENOSPC:
		return "no_space";
	case EIO:
		return "io";
	case EINPROGRESS:
		/* The catalog changed; the target has not taken it yet and it is retried. */
		return "not_applied";
	case ECANCELED:
		return "cancelled";
	case ENODEV:
		return "unavailable";
	case ENOTBLK:
		return "invalid";
	default:
		return "error";
	}
}

static void reply_err(uint32_t id, int rc, const char *why)
{
	cc.env.reply(id, json_pack("{s:s, s:s}", "error", why, "code", code_of(rc)));
}

/* ---- what the target is told ---- */

static const char *host_name(uint32_t id)
{
	struct coord_host *h = id ? coord_hosts_by_id(cc.env.hosts, id) : NULL;

	return h ? h->name : NULL;
}

/* The initiators of every host of the cluster: they may read every disk. Removed hosts are
 * not members; fenced ones are, because the target's fence already stops them. */
static json_t *members_json(void)
{
	json_t *a = json_array();
	unsigned i, k;

	for (i = 0; i < cc.env.hosts->n; i++) {
		const struct coord_host *h = &cc.env.hosts->h[i];

		if (!h->enrolled || h->removed)
			continue;
		for (k = 0; k < h->n_iqn; k++)
			json_array_append_new(a, json_string(h->iqn[k]));
	}
	return a;
}

static char *members_sig(void)
{
	json_t *a = members_json();
	char *s = json_dumps(a, JSON_COMPACT);

	json_decref(a);
	return s;
}

static json_t *access_req(const struct catalog_vdisk *v)
{
	struct coord_host *h = v->owner ? coord_hosts_by_id(cc.env.hosts, v->owner) : NULL;
	json_t *owners = json_array();
	unsigned k;

	if (h && !h->removed)
		for (k = 0; k < h->n_iqn; k++)
			json_array_append_new(owners, json_string(h->iqn[k]));
	/* "paused": the disk's maintenance, held at the target (docs/target.md). */
	return json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:b}", "cmd", "lun_access", "target",
			 v->target_iqn, "lun", (json_int_t)v->lun, "epoch", (json_int_t)v->epoch,
			 "owners", owners, "members", members_json(), "paused", v->maintenance);
}

/* The export carries the disk's policy, so the LUN never exists at the target without it. */
static json_t *add_req(const struct catalog_vdisk *v)
{
	json_t *req = access_req(v);

	json_object_set_new(req, "cmd", json_string("lun_add"));
	json_object_set_new(req, "name", json_string(v->id));
	json_object_set_new(req, "path", json_string(v->path));
	json_object_set_new(req, "size", json_integer((json_int_t)v->size));
	json_object_set_new(req, "block_size", json_integer(CC_BLOCK_SIZE));
	return req;
}

/* Relay req; when nothing could be sent, the callback gets an error answer at once. Call it
 * last: the callback may free ctx. */
static void send_target(json_t *req, coord_catalog_reply_fn cb, void *ctx)
{
	json_t *e;

	if (cc.env.relay(req, cb, ctx) == 0)
		return;
	e = json_pack("{s:s}", "error", "cannot send the request to the target");
	cb(ctx, e);
	json_decref(e);
}

static const char *reply_error(json_t *r)
{
	json_t *e = json_object_get(r, "error");

	if (!e)
		return NULL;
	return json_is_string(e) ? json_string_value(e) : "the target answered an error";
}

/* lun_add of a LUN the target already exports (coord restarted, the target did not) is fine. */
static bool add_ok(json_t *r)
{
	const char *e = reply_error(r);

	return !e || strstr(e, "exist") || strstr(e, "already") || strstr(e, "in use");
}

/* ---- JSON of the catalog's objects ---- */

static json_t *access_map_json(const struct catalog_vdisk *v);
static struct sync *sync_find(const char *vid);

static struct clone_job *job_find(const char *vid)
{
	struct clone_job *j;

	for (j = cc.jobs; j; j = j->next)
		if (!strcmp(j->vid, vid))
			return j;
	return NULL;
}

/* How far a clone is: the copy's position in the file (holes count as done). */
static json_t *progress_json(struct clone_job *j)
{
	uint64_t done = atomic_load(&j->done);

	return json_pack("{s:s, s:I, s:I, s:f, s:I, s:I, s:b}", "source", j->src_vid, "done",
			 (json_int_t)done, "total", (json_int_t)j->size, "percent",
			 j->size ? (double)done * 100.0 / (double)j->size : 100.0, "rate",
			 (json_int_t)j->rate, "elapsed_ms",
			 (json_int_t)((mono_ns() - j->started_ns) / 1000000), "cancelling",
			 atomic_load(&j->cancel));
}

static json_t *vdisk_json(const struct catalog_vdisk *v)
{
	struct catalog_pool p;
	uint32_t hosts[CC_ATTACHED_MAX];
	json_t *ah = json_array(), *o;
	const char *owner = host_name(v->owner);
	int n, i;

	n = cc.cat ? catalog_vdisk_hosts(cc.cat, v->id, hosts, CC_ATTACHED_MAX) : 0;
	for (i = 0; i < n && i < CC_ATTACHED_MAX; i++) {
		const char *name = host_name(hosts[i]);

		json_array_append_new(ah, name ? json_string(name) : json_integer(hosts[i]));
	}
	if (!cc.cat || catalog_pool_get(cc.cat, v->pool_id, &p) < 0) {
		snprintf(p.name, sizeof(p.name), "%s", "?");
		p.online = false;
	}
	o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:I, s:o, s:I, s:I, s:s, s:b, s:s, "
		      "s:o, s:I, s:I}",
		      "id", v->id, "name", v->name, "pool", p.name, "pool_id",
		      (json_int_t)v->pool_id, "size", (json_int_t)v->size, "path", v->path,
		      "target", v->target_iqn, "lun", (json_int_t)v->lun, "owner",
		      owner ? json_string(owner) : json_null(), "owner_id", (json_int_t)v->owner,
		      "epoch", (json_int_t)v->epoch, "state", catalog_vdisk_state_name(v->state),
		      "maintenance", v->maintenance, "vm", v->vm, "hosts", ah, "created",
		      (json_int_t)v->created, "updated", (json_int_t)v->updated);
	json_object_set_new(o, "access", access_map_json(v));
	/* Exported: the target has taken the disk's LUN and policy as the catalog has them. */
	if (o)
		json_object_set_new(
			o, "exported",
			json_boolean(v->state == CATALOG_VDISK_READY && !sync_find(v->id) &&
				     p.online));
	if (o && v->state == CATALOG_VDISK_CLONING && job_find(v->id))
		json_object_set_new(o, "progress", progress_json(job_find(v->id)));
	return o;
}

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
static bool pool_attach(void *arg, const struct catalog_pool *p)
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

/* ---- syncs: exports and policies the target still has to take ---- */

static struct sync *sync_find(const char *vid)
{
	struct sync *s;

	for (s = cc.syncs; s; s = s->next)
		if (!strcmp(s->vid, vid))
			return s;
	return NULL;
}

static void sync_add(const char *vid, bool add, bool resize)
{
	struct sync *s = sync_find(vid);

	if (s) {
		s->add = s->add || add;
		s->resize = s->resize || resize;
		s->again = s->inflight;
		s->retry_ns = 0;
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		log_warnx("%s: out of memory", __func__);
		return;
	}
	snprintf(s->vid, sizeof(s->vid), "%s", vid);
	s->add = add;
	s->resize = resize;
	s->next = cc.syncs;
	cc.syncs = s;
}

static void sync_drop(struct sync *d)
{
	struct sync **pp;

	if (d->failures)
		log_info("coord: vdisk %s: the target took what the catalog holds after %u "
			 "failed attempt(s)",
			 d->vid, d->failures);
	for (pp = &cc.syncs; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			free(d);
			return;
		}
}

static void sync_failed(struct sync *s, const char *what, const char *why)
{
	s->inflight = false;
	s->retry_ns = mono_ns() + CC_RETRY_NS;
	if (s->failures++ % 30 == 0)
		log_warnx("coord: vdisk %s: %s: %s (retrying every second)", s->vid, what, why);
}

static void sync_run(struct sync *s);
static void jobs_tick(void);

static void sync_on_access(void *ctx, json_t *r)
{
	struct sync *s = ctx;
	const char *e = reply_error(r);

	/* "stale epoch": a newer policy is already in force at the target. */
	if (e && !strstr(e, "stale")) {
		sync_failed(s, "lun_access", e);
		return;
	}
	s->inflight = false;
	if (s->again) {
		s->again = false;
		sync_run(s);
		return;
	}
	sync_drop(s);
}

static void sync_on_add(void *ctx, json_t *r)
{
	struct sync *s = ctx;
	struct catalog_vdisk v;

	if (!add_ok(r)) {
		sync_failed(s, "lun_add", reply_error(r));
		return;
	}
	s->add = false;
	/* A fresh export has the catalog's size: nothing left to resize. */
	s->resize = false;
	if (catalog_vdisk_get(cc.cat, s->vid, &v) < 0) {
		sync_drop(s);
		return;
	}
	send_target(access_req(&v), sync_on_access, s);
}

static json_t *resize_req(const struct catalog_vdisk *v)
{
	return json_pack("{s:s, s:s, s:I, s:I}", "cmd", "lun_resize", "target", v->target_iqn,
			 "lun", (json_int_t)v->lun, "size", (json_int_t)v->size);
}

static void sync_on_resize(void *ctx, json_t *r)
{
	struct sync *s = ctx;
	struct catalog_vdisk v;
	const char *e = reply_error(r);

	if (e) {
		sync_failed(s, "lun_resize", e);
		return;
	}
	s->resize = false;
	if (catalog_vdisk_get(cc.cat, s->vid, &v) < 0) {
		sync_drop(s);
		return;
	}
	send_target(access_req(&v), sync_on_access, s);
}

static void sync_run(struct sync *s)
{
	struct catalog_vdisk v;

	if (catalog_vdisk_get(cc.cat, s->vid, &v) < 0 || v.state != CATALOG_VDISK_READY) {
		sync_drop(s);
		return;
	}
	s->inflight = true;
	s->again = false;
	if (s->add)
		send_target(add_req(&v), sync_on_add, s);
	else if (s->resize)
		send_target(resize_req(&v), sync_on_resize, s);
	else
		send_target(access_req(&v), sync_on_access, s);
}

/* A new policy for every ready disk: the member initiators changed. */
static void sync_all(bool add)
{
	static struct catalog_vdisk list[CC_LIST_MAX];
	static struct catalog_pool pools[CC_POOLS_MAX];
	int n, i, np, k;

	n = catalog_vdisk_list(cc.cat, 0, list, CC_LIST_MAX);
	if (n > CC_LIST_MAX) {
		log_warnx("coord: %d disks; only the first %d are exported", n, CC_LIST_MAX);
		n = CC_LIST_MAX;
	}
	np = catalog_pool_list(cc.cat, pools, CC_POOLS_MAX);
	if (np > CC_POOLS_MAX)
		np = CC_POOLS_MAX;
	for (i = 0; i < n; i++) {
		if (list[i].state != CATALOG_VDISK_READY)
			continue;
		/* A disk of an offline block pool is not exported: its file is not there. */
		for (k = 0; k < np && pools[k].id != list[i].pool_id; k++)
			;
		if (k < np && !pools[k].online)
			continue;
		sync_add(list[i].id, add, false);
	}
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
static void pools_check(void)
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

static void paths_tick(int64_t now_ns);
static void pool_jobs_tick(void);

void coord_catalog_tick(int64_t now_ns)
{
	struct sync *s, *next;
	char *sig;

	if (!cc.cat)
		return;
	jobs_tick();
	pool_jobs_tick();
	sig = members_sig();
	if (sig && cc.sig && strcmp(sig, cc.sig)) {
		log_info("coord: the cluster's initiators changed; new access policies for every "
			 "virtual disk");
		sync_all(false);
	}
	if (sig) {
		free(cc.sig);
		cc.sig = sig;
	}
	for (s = cc.syncs; s; s = next) {
		next = s->next;
		if (!s->inflight && now_ns >= s->retry_ns)
			sync_run(s);
	}
	paths_tick(now_ns);
	/* Hosts fill a pool by writing, which the catalog never sees, so this is periodic. */
	if (now_ns >= cc.pool_check_ns) {
		cc.pool_check_ns = now_ns + CC_POOL_CHECK_NS;
		pools_check();
	}
}

void coord_catalog_start_exports(void)
{
	if (!cc.cat)
		return;
	free(cc.sig);
	cc.sig = members_sig();
	sync_all(true);
	coord_catalog_tick(mono_ns());
}

void coord_catalog_target_restarted(void)
{
	if (!cc.cat)
		return;
	log_info("coord: a new run of the target: exporting every ready virtual disk to it");
	sync_all(true);
	coord_catalog_tick(mono_ns());
}

bool coord_catalog_exports_settled(void)
{
	struct sync *s;

	for (s = cc.syncs; s; s = s->next)
		if (s->inflight || !s->failures)
			return false;
	return true;
}

/* ---- operations ---- */

static struct op *op_new(uint32_t ctl_id, enum op_kind kind, const char *vid)
{
	struct op *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->ctl_id = ctl_id;
	o->kind = kind;
	if (vid)
		snprintf(o->vid, sizeof(o->vid), "%s", vid);
	o->next = cc.ops;
	cc.ops = o;
	return o;
}

static bool op_busy(const char *vid)
{
	struct op *o;

	for (o = cc.ops; o; o = o->next)
		if (!strcmp(o->vid, vid))
			return true;
	return false;
}

static void op_free(struct op *d)
{
	struct op **pp;

	for (pp = &cc.ops; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	free(d);
}

/* Answer with the disk as it is now (or the error) and forget the operation. */
static void op_done(struct op *o, json_t *extra)
{
	struct catalog_vdisk v;
	json_t *out;

	if (o->rc) {
		json_decref(extra);
		reply_err(o->ctl_id, o->rc, o->err);
	} else {
		if (catalog_vdisk_get(cc.cat, o->vid, &v) == 0)
			out = json_pack("{s:o}", "vdisk", vdisk_json(&v));
		else
			out = json_object();
		if (extra)
			json_object_update(out, extra);
		json_decref(extra);
		cc.env.reply(o->ctl_id, out);
	}
	op_free(o);
}

static void op_fail(struct op *o, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void op_fail(struct op *o, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->err, sizeof(o->err), fmt, ap);
	va_end(ap);
	o->rc = rc;
	op_done(o, NULL);
}

static void op_queue(struct op *o)
{
	unsigned i;

	for (i = 0; i < o->nreq; i++)
		o->req[i].quorate = quorate();
	o->queued = true;
}

/* The catalog has the change and the target has not taken it (it refused, or did not answer in
 * time). The change stands and is retried every second until the target takes it, so the
 * answer is not a failure: code not_applied, the epoch the catalog is at, and the disk as the
 * catalog has it (docs/control-protocol.md). */
static void op_not_applied(struct op *o, const char *what, const char *why)
{
	struct catalog_vdisk v;
	json_t *out;

	if (catalog_vdisk_get(cc.cat, o->vid, &v) < 0) {
		op_fail(o, -EIO, "%s: %s", what, why);
		return;
	}
	snprintf(o->err, sizeof(o->err),
		 "committed in the catalog at epoch %llu; not yet applied at the target (%s: "
		 "%.120s), retrying",
		 (unsigned long long)v.epoch, what, why);
	log_warnx("coord: vdisk %s: %s", o->vid, o->err);
	out = json_pack("{s:s, s:s, s:I, s:o}", "error", o->err, "code", code_of(-EINPROGRESS),
			"epoch", (json_int_t)v.epoch, "vdisk", vdisk_json(&v));
	cc.env.reply(o->ctl_id, out);
	op_free(o);
}

/* After an ownership change: the target gets the new policy before the answer. */
static void op_on_access(void *ctx, json_t *r)
{
	struct op *o = ctx;
	const char *e = reply_error(r);

	if (e && !strstr(e, "stale")) {
		/* The catalog has the change; the target must follow, so it is retried. */
		sync_add(o->vid, false, false);
		if (!o->rc)
			op_not_applied(o, "lun_access", e);
		else
			op_done(o, NULL);
		return;
	}
	op_done(o, NULL);
}

static void op_send_access(struct op *o)
{
	struct catalog_vdisk v;

	if (catalog_vdisk_get(cc.cat, o->vid, &v) < 0) {
		op_done(o, NULL);
		return;
	}
	send_target(access_req(&v), op_on_access, o);
}

/* Take back a disk just made (never exported, never answered). A host's create made it owned;
 * the catalog deletes only unowned disks, so the owner is released first. */
static int drop_new_disk(const struct catalog_vdisk *v, char *err, size_t errlen)
{
	uint64_t epoch = v->epoch;
	int rc = 0;

	writer_wait();
	if (v->owner != CATALOG_NO_HOST)
		rc = catalog_vdisk_transfer(cc.cat, v->id, v->owner, CATALOG_NO_HOST, v->epoch,
					    true, &epoch, err, errlen);
	if (!rc)
		rc = catalog_vdisk_delete(cc.cat, v->id, epoch, true, err, errlen);
	return rc;
}

static void ignore_reply(void *ctx, json_t *r)
{
	(void)ctx;
	(void)r;
}

/* A new disk (create or clone) at the target: lun_add, which carries its policy. When the target
 * does not export it, the disk is deleted again: an answer of failure must leave nothing
 * behind. */
static void op_on_add(void *ctx, json_t *r)
{
	struct op *o = ctx;
	const char *e = reply_error(r);
	char err[CATALOG_ERR_MAX];
	struct catalog_vdisk v;

	if (e) {
		if (catalog_vdisk_get(cc.cat, o->vid, &v) == 0 &&
		    drop_new_disk(&v, err, sizeof(err)) < 0)
			log_warnx("coord: vdisk %s: cannot delete it after the failed export: %s",
				  o->vid, err);
		/* A target that did not answer in time may still export it later: take it back.
		 * The LUN number is never given again (the catalog's high-water mark only
		 * rises), so this cannot remove another disk's LUN. */
		if (catalog_vdisk_get(cc.cat, o->vid, &v) < 0 && o->nreq)
			send_target(json_pack("{s:s, s:s, s:I}", "cmd", "lun_remove", "target",
					      o->req[0].vdisk.target_iqn, "lun",
					      (json_int_t)o->req[0].vdisk.lun),
				    ignore_reply, NULL);
		op_fail(o, -EIO, "the target did not export the disk: %s", e);
		return;
	}
	/* The export carried the disk's policy (add_req): no lun_access is needed after it. */
	op_done(o, NULL);
}

static bool lun_configured(const char *iqn, uint32_t lun)
{
	const struct hf_config *cfg = cc.env.cfg;
	size_t i, k;

	for (i = 0; i < cfg->ntargets; i++) {
		if (strcmp(cfg->targets[i].iqn, iqn))
			continue;
		for (k = 0; k < cfg->targets[i].nluns; k++)
			if (cfg->targets[i].luns[k].id == lun)
				return true;
	}
	return false;
}

/* The catalog numbers a target's LUNs from 0 and knows nothing of the LUNs the configuration
 * gives the same target. A new disk that got one of those numbers is made again: the catalog's
 * high-water mark only rises, so the next number is taken, and this happens only for the
 * first few disks of a target. */
static int skip_configured_luns(struct op *o)
{
	struct catalog_vdisk *v = &o->req[0].vdisk;
	struct catalog_vdisk_spec spec = o->req[0].spec;
	char err[CATALOG_ERR_MAX];
	int rc;

	while (lun_configured(v->target_iqn, v->lun)) {
		rc = drop_new_disk(v, err, sizeof(err)); /* waits for the writer */
		if (!rc)
			rc = catalog_vdisk_create(cc.cat, &spec, true, v, err, sizeof(err));
		if (rc) {
			snprintf(o->err, sizeof(o->err), "%s", err);
			return rc;
		}
	}
	snprintf(o->vid, sizeof(o->vid), "%s", v->id);
	return 0;
}

static void op_on_resize(void *ctx, json_t *r)
{
	struct op *o = ctx;
	const char *e = reply_error(r);

	if (e) {
		sync_add(o->vid, false, true);
		op_not_applied(o, "lun_resize", e);
		return;
	}
	op_done(o, json_pack("{s:I}", "old_size", (json_int_t)o->old_size));
}

/* The catalog answered the op's requests. */
static void op_committed(struct op *o)
{
	bool owner_changed = false;
	unsigned i;

	o->rc = 0;
	for (i = 0; i < o->nreq; i++) {
		if (o->req[i].rc == 0 && o->req[i].op == CATALOG_OP_TRANSFER)
			owner_changed = true;
		if (o->req[i].rc && !o->rc) {
			o->rc = o->req[i].rc;
			snprintf(o->err, sizeof(o->err), "%s", o->req[i].err);
		}
	}
	switch (o->kind) {
	case OP_CREATE:
		if (!o->rc)
			o->rc = skip_configured_luns(o);
		if (o->rc) {
			op_done(o, NULL);
			return;
		}
		send_target(add_req(&o->req[0].vdisk), op_on_add, o);
		return;
	case OP_EXTEND:
		if (o->rc || o->req[0].vdisk.size == o->old_size) {
			op_done(o, NULL);
			return;
		}
		/* sbc3r36 4.8: the target raises CAPACITY DATA HAS CHANGED for every nexus. */
		send_target(json_pack("{s:s, s:s, s:I, s:I}", "cmd", "lun_resize", "target",
				      o->req[0].vdisk.target_iqn, "lun",
				      (json_int_t)o->req[0].vdisk.lun, "size",
				      (json_int_t)o->req[0].vdisk.size),
			    op_on_resize, o);
		return;
	case OP_DELETE:
		if (o->rc) {
			/* The LUN is gone already: export it again. */
			sync_add(o->vid, true, false);
			op_done(o, NULL);
			return;
		}
		op_done(o, json_pack("{s:s, s:I}", "deleted", o->vid, "lun",
				     (json_int_t)o->req[0].vdisk.lun));
		return;
	case OP_MAINTENANCE:
		/* The pause is in force at the target before the answer. */
		if (o->rc) {
			op_done(o, NULL);
			return;
		}
		op_send_access(o);
		return;
	case OP_ATTACH:
	case OP_DETACH:
	case OP_TRANSFER:
		if (!owner_changed) {
			op_done(o, NULL);
			return;
		}
		op_send_access(o);
		return;
	default:
		o->rc = -EINVAL;
		snprintf(o->err, sizeof(o->err), "internal: operation %d in a batch", o->kind);
		op_done(o, NULL);
		return;
	}
}

/* ---- the commit thread ---- */

static void *commit_main(void *arg)
{
	uint64_t one = 1;
	ssize_t k;

	(void)arg;
	pthread_mutex_lock(&ct.mu);
	for (;;) {
		while (!ct.pending && !ct.stop)
			pthread_cond_wait(&ct.cv, &ct.mu);
		if (ct.stop)
			break;
		pthread_mutex_unlock(&ct.mu);
		ct.rc = catalog_commit(cc.cat, cc.batch, ct.n);
		pthread_mutex_lock(&ct.mu);
		ct.pending = false;
		ct.done = true;
		pthread_cond_broadcast(&ct.cv);
		/* An eventfd counter cannot overflow at one a batch; EINTR aside, this cannot
		 * fail. */
		do
			k = write(ct.fd, &one, sizeof(one));
		while (k < 0 && errno == EINTR);
	}
	pthread_mutex_unlock(&ct.mu);
	return NULL;
}

static void commit_thread_start(void)
{
	int rc;

	ct.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ct.fd < 0) {
		log_warn("coord: eventfd for the commit thread; committing in the loop");
		return;
	}
	ct.stop = ct.pending = ct.done = ct.busy = false;
	rc = pthread_create(&ct.thread, NULL, commit_main, NULL);
	if (rc) {
		log_warnx("coord: no commit thread (%s); committing in the loop", strerror(rc));
		close(ct.fd);
		ct.fd = -1;
		return;
	}
	ct.started = true;
}

/* Wait until the batch in flight (if any) is committed, so that the loop may use the writer
 * connection. Its answers are left to coord_catalog_committed(), which the eventfd still
 * calls. */
static void writer_wait(void)
{
	if (!ct.busy)
		return;
	pthread_mutex_lock(&ct.mu);
	while (!ct.done)
		pthread_cond_wait(&ct.cv, &ct.mu);
	pthread_mutex_unlock(&ct.mu);
}

static void commit_thread_stop(void)
{
	if (!ct.started)
		return;
	writer_wait();
	pthread_mutex_lock(&ct.mu);
	ct.stop = true;
	pthread_cond_broadcast(&ct.cv);
	pthread_mutex_unlock(&ct.mu);
	pthread_join(ct.thread, NULL);
	close(ct.fd);
	ct.fd = -1;
	ct.started = ct.busy = ct.done = false;
}

/* The batch came back: copy each op's results, then answer (or go on to the target). */
static void batch_answer(void)
{
	size_t i, k, n;

	if (ct.rc)
		log_warnx("coord: catalog commit of %zu request(s): %s", ct.n, strerror(-ct.rc));
	else if (ct.nops > 1)
		log_debug("coord: %zu request(s) of %zu operations in one commit", ct.n, ct.nops);
	for (i = n = 0; i < ct.nops; i++)
		for (k = 0; k < ct.ops[i]->nreq; k++)
			ct.ops[i]->req[k] = cc.batch[n++];
	ct.busy = false;
	/* Answers may free ops and queue none: ops[] holds what this batch took. */
	for (i = 0; i < ct.nops; i++)
		op_committed(ct.ops[i]);
	ct.nops = 0;
	/* Creates and extends take space (or promise it): look at once. */
	pools_check();
}

/* Gather the queued ops into cc.batch (up to CATALOG_BATCH_MAX requests); false: none. */
static bool batch_gather(void)
{
	struct op *o;
	size_t k;

	ct.n = ct.nops = 0;
	for (o = cc.ops; o; o = o->next) {
		if (!o->queued)
			continue;
		if (ct.n + o->nreq > CATALOG_BATCH_MAX)
			break;
		o->queued = false;
		ct.ops[ct.nops++] = o;
		for (k = 0; k < o->nreq; k++)
			cc.batch[ct.n++] = o->req[k];
	}
	return ct.nops > 0;
}

void coord_catalog_flush(void)
{
	if (!cc.cat || ct.busy)
		return;
	while (batch_gather()) {
		ct.busy = true;
		if (ct.started) {
			pthread_mutex_lock(&ct.mu);
			ct.done = false;
			ct.pending = true;
			pthread_cond_signal(&ct.cv);
			pthread_mutex_unlock(&ct.mu);
			return;
		}
		/* No thread: in the loop, as before. */
		ct.rc = catalog_commit(cc.cat, cc.batch, ct.n);
		batch_answer();
	}
}

int coord_catalog_fd(void)
{
	return ct.fd;
}

void coord_catalog_committed(void)
{
	uint64_t x;
	bool done;

	if (ct.fd < 0 || read(ct.fd, &x, sizeof(x)) < 0)
		return;
	pthread_mutex_lock(&ct.mu);
	done = ct.done;
	ct.done = false;
	pthread_mutex_unlock(&ct.mu);
	if (!done || !ct.busy)
		return;
	batch_answer();
	/* What gathered while this batch was committed goes at once. */
	coord_catalog_flush();
}

/* ---- request parsing ---- */

static const char *jstr(json_t *req, const char *key)
{
	return json_string_value(json_object_get(req, key));
}

/* A non-negative integer field; false when it is missing or bad. */
static bool juint(json_t *req, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(req, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

/* A host by name; "", "-" and "none" (or a missing field) are nobody. */
static int host_arg(json_t *req, const char *key, uint32_t *id, char *why, size_t len)
{
	const char *name = jstr(req, key);
	struct coord_host *h;

	*id = CATALOG_NO_HOST;
	if (!name || !*name || !strcmp(name, "-") || !strcmp(name, "none"))
		return 0;
	h = coord_hosts_by_name(cc.env.hosts, name);
	if (!h || !h->enrolled || h->removed) {
		snprintf(why, len, "no host '%s' in the cluster", name);
		return -ENOENT;
	}
	*id = h->id;
	return 0;
}

/* The disk of an "id" field, not busy, with "epoch". */
static int vdisk_arg(uint32_t id, json_t *req, struct catalog_vdisk *v, uint64_t *epoch)
{
	const char *vid = jstr(req, "id");

	if (!vid) {
		reply_err(id, -EINVAL, "the request needs \"id\"");
		return -EINVAL;
	}
	if (epoch && !juint(req, "epoch", epoch)) {
		reply_err(id, -EINVAL, "the request needs the expected \"epoch\"");
		return -EINVAL;
	}
	if (catalog_vdisk_get(cc.cat, vid, v) < 0) {
		char why[128];

		snprintf(why, sizeof(why), "no virtual disk %s", vid);
		reply_err(id, -ENOENT, why);
		return -ENOENT;
	}
	if (op_busy(v->id)) {
		reply_err(id, -EBUSY, "another operation on this disk is in progress; try again");
		return -EBUSY;
	}
	return 0;
}

static void req_init(struct catalog_req *r, enum catalog_op op, const char *vid, uint64_t epoch)
{
	memset(r, 0, sizeof(*r));
	r->op = op;
	snprintf(r->vdisk_id, sizeof(r->vdisk_id), "%s", vid);
	r->expected_epoch = epoch;
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

static struct pool_job *pool_job_by_pool(int64_t id)
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

static void pool_jobs_tick(void)
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
static void pool_jobs_stop(void)
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

static void do_pool_add(uint32_t id, json_t *req)
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

static void do_pool_list(uint32_t id)
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

static void do_pool_remove(uint32_t id, json_t *req)
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

static void do_vdisk_list(uint32_t id, json_t *req)
{
	static struct catalog_vdisk list[CC_LIST_MAX];
	const char *pool = jstr(req, "pool");
	struct catalog_pool p = {.id = 0};
	json_t *a;
	int n, i;

	if (pool && *pool && catalog_pool_by_name(cc.cat, pool, &p) < 0) {
		char why[128];

		snprintf(why, sizeof(why), "no pool '%s'", pool);
		reply_err(id, -ENOENT, why);
		return;
	}
	n = catalog_vdisk_list(cc.cat, p.id, list, CC_LIST_MAX);
	if (n < 0) {
		reply_err(id, n, "cannot read the virtual disks");
		return;
	}
	a = json_array();
	for (i = 0; i < n && i < CC_LIST_MAX; i++)
		json_array_append_new(a, vdisk_json(&list[i]));
	cc.env.reply(id, json_pack("{s:o}", "vdisks", a));
}

/* owner: CATALOG_NO_HOST for the admin's create, the requesting host for an agent's. */
static void do_vdisk_create(uint32_t id, json_t *req, uint32_t owner)
{
	const char *pool = jstr(req, "pool"), *name = jstr(req, "name"), *vm = jstr(req, "vm");
	const char *iqn = cc.env.cfg->cluster.target;
	struct catalog_vdisk_spec *s;
	struct catalog_pool p;
	uint64_t size;
	struct op *o;

	if (!pool || !name || !juint(req, "size", &size)) {
		reply_err(id, -EINVAL,
			  "vdisk_create needs \"pool\", \"name\" and \"size\" (bytes)");
		return;
	}
	if (!*iqn) {
		reply_err(id, -EINVAL,
			  "the configuration names no cluster target (cluster.target) to export "
			  "virtual disks on");
		return;
	}
	if (catalog_pool_by_name(cc.cat, pool, &p) < 0) {
		char why[128];

		snprintf(why, sizeof(why), "no pool '%s'", pool);
		reply_err(id, -ENOENT, why);
		return;
	}
	if (pool_job_by_pool(p.id)) {
		reply_err(id, -EBUSY, "the pool is being removed");
		return;
	}
	o = op_new(id, OP_CREATE, NULL);
	if (!o) {
		reply_err(id, -ENOMEM, "out of memory");
		return;
	}
	o->nreq = 1;
	req_init(&o->req[0], CATALOG_OP_CREATE, "", 0);
	s = &o->req[0].spec;
	s->pool_id = p.id;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->size = size;
	snprintf(s->target_iqn, sizeof(s->target_iqn), "%s", iqn);
	s->owner = owner;
	snprintf(s->vm, sizeof(s->vm), "%s", vm ? vm : "");
	op_queue(o);
}

static void do_vdisk_extend(uint32_t id, json_t *req)
{
	struct catalog_vdisk v;
	uint64_t epoch, size;
	struct op *o;

	if (vdisk_arg(id, req, &v, &epoch))
		return;
	if (!juint(req, "size", &size)) {
		reply_err(id, -EINVAL, "vdisk_extend needs \"size\" (bytes)");
		return;
	}
	o = op_new(id, OP_EXTEND, v.id);
	if (!o) {
		reply_err(id, -ENOMEM, "out of memory");
		return;
	}
	o->old_size = v.size;
	o->nreq = 1;
	req_init(&o->req[0], CATALOG_OP_EXTEND, v.id, epoch);
	o->req[0].new_size = size;
	op_queue(o);
}

/* The LUN is gone from the target: now the row and the file. */
static void op_on_remove(void *ctx, json_t *r)
{
	struct op *o = ctx;
	const char *e = reply_error(r);

	if (e && !strstr(e, "no such") && !strstr(e, "has no LUN")) {
		op_fail(o, -EIO, "the target did not remove the LUN; the disk is kept: %s", e);
		return;
	}
	op_queue(o);
}

static void cancel_clone(uint32_t id, const struct catalog_vdisk *v, uint64_t epoch);

static void do_vdisk_delete(uint32_t id, json_t *req)
{
	struct catalog_vdisk v;
	uint64_t epoch;
	struct op *o;
	char why[CATALOG_ERR_MAX];
	int n;

	if (vdisk_arg(id, req, &v, &epoch))
		return;
	/* The catalog checks these again at commit; checking first keeps the LUN exported
	 * when the delete is refused anyway. */
	if (!quorate()) {
		reply_err(id, -EPERM, "no quorum: the catalog cannot be changed");
		return;
	}
	if (v.state == CATALOG_VDISK_CLONING) {
		cancel_clone(id, &v, epoch);
		return;
	}
	for (struct clone_job *j = cc.jobs; j; j = j->next)
		if (!strcmp(j->src_vid, v.id)) {
			snprintf(why, sizeof(why),
				 "virtual disk %s is being cloned from it: wait for the clone or "
				 "delete the clone to cancel it",
				 j->vid);
			reply_err(id, -EBUSY, why);
			return;
		}
	if (epoch != v.epoch) {
		snprintf(why, sizeof(why),
			 "stale epoch: the request expects %llu, the disk is at %llu",
			 (unsigned long long)epoch, (unsigned long long)v.epoch);
		reply_err(id, -ESTALE, why);
		return;
	}
	n = catalog_vdisk_hosts(cc.cat, v.id, NULL, 0);
	if (v.owner || n > 0) {
		snprintf(why, sizeof(why),
			 "the disk is %s%s%s: detach it and transfer it to nobody first",
			 v.owner ? "owned by " : "", v.owner ? host_name(v.owner) : "",
			 n > 0 ? (v.owner ? " and attached" : "attached") : "");
		reply_err(id, -EBUSY, why);
		return;
	}
	o = op_new(id, OP_DELETE, v.id);
	if (!o) {
		reply_err(id, -ENOMEM, "out of memory");
		return;
	}
	o->nreq = 1;
	req_init(&o->req[0], CATALOG_OP_DELETE, v.id, epoch);
	if (v.state != CATALOG_VDISK_READY) {
		/* Never exported (a missing file): nothing to take from the target. */
		op_queue(o);
		return;
	}
	send_target(json_pack("{s:s, s:s, s:I}", "cmd", "lun_remove", "target", v.target_iqn, "lun",
			      (json_int_t)v.lun),
		    op_on_remove, o);
}

/* attach HOST: the host may use the disk. Attaching to a disk nobody owns also makes the host
 * its owner (epoch + 1), because a disk is attached to be written; attaching a disk somebody
 * owns gives read access only (the migration destination), and the ownership moves with an
 * explicit transfer. detach HOST: when the host owns the disk it gives it up first (epoch + 1),
 * so that a detached host never keeps write access. */
static void do_vdisk_attach(uint32_t id, json_t *req, bool attach)
{
	char why[CATALOG_ERR_MAX];
	struct catalog_vdisk v;
	uint32_t host;
	uint64_t epoch;
	struct op *o;
	int rc;

	if (vdisk_arg(id, req, &v, &epoch))
		return;
	rc = host_arg(req, "host", &host, why, sizeof(why));
	if (!rc && host == CATALOG_NO_HOST) {
		rc = -EINVAL;
		snprintf(why, sizeof(why), "the request needs \"host\"");
	}
	if (rc) {
		reply_err(id, rc, why);
		return;
	}
	o = op_new(id, attach ? OP_ATTACH : OP_DETACH, v.id);
	if (!o) {
		reply_err(id, -ENOMEM, "out of memory");
		return;
	}
	if (attach && v.owner == CATALOG_NO_HOST) {
		if (!quorum_allows_ownership_change(cc.env.q, host)) {
			op_fail(o, -EPERM,
				"the disk has no owner and %s cannot become it: no quorum, or the "
				"host holds no lease",
				host_name(host));
			return;
		}
		req_init(&o->req[o->nreq], CATALOG_OP_TRANSFER, v.id, epoch);
		o->req[o->nreq].old_owner = CATALOG_NO_HOST;
		o->req[o->nreq++].new_owner = host;
		epoch++;
	} else if (!attach && v.owner == host) {
		req_init(&o->req[o->nreq], CATALOG_OP_TRANSFER, v.id, epoch);
		o->req[o->nreq].old_owner = host;
		o->req[o->nreq++].new_owner = CATALOG_NO_HOST;
		epoch++;
	}
	req_init(&o->req[o->nreq], attach ? CATALOG_OP_ATTACH : CATALOG_OP_DETACH, v.id, epoch);
	o->req[o->nreq++].host_id = host;
	op_queue(o);
}

static void do_vdisk_transfer(uint32_t id, json_t *req)
{
	char why[CATALOG_ERR_MAX];
	struct catalog_vdisk v;
	uint32_t from, to;
	uint64_t epoch;
	struct op *o;
	int rc;

	if (vdisk_arg(id, req, &v, &epoch))
		return;
	rc = host_arg(req, "from", &from, why, sizeof(why));
	if (!rc)
		rc = host_arg(req, "to", &to, why, sizeof(why));
	if (rc) {
		reply_err(id, rc, why);
		return;
	}
	/* quorum.h: nothing moves disk ownership without quorum, nor to a host without a lease. */
	if (!quorum_allows_ownership_change(cc.env.q, to)) {
		snprintf(why, sizeof(why), "%s",
			 !quorate() ? "no quorum: ownership cannot change"
				    : "the new owner holds no lease");
		reply_err(id, -EPERM, why);
		return;
	}
	o = op_new(id, OP_TRANSFER, v.id);
	if (!o) {
		reply_err(id, -ENOMEM, "out of memory");
		return;
	}
	o->nreq = 1;
	req_init(&o->req[0], CATALOG_OP_TRANSFER, v.id, epoch);
	o->req[0].old_owner = from;
	o->req[0].new_owner = to;
	op_queue(o);
}

/* ---- clone jobs ---- */

/* The worker's progress callback: publish the position, keep to the rate, stop when asked. */
static int job_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct clone_job *j = ctx;
	int64_t due, now;

	(void)total;
	atomic_store(&j->done, done);
	if (!j->rate)
		return atomic_load(&j->cancel) ? -1 : 0;
	/* Sleep until done bytes are due at the rate, in slices so that a cancel is quick. */
	due = j->started_ns + (int64_t)((double)done * 1e9 / (double)j->rate);
	while (!atomic_load(&j->cancel) && (now = mono_ns()) < due) {
		int64_t ns = due - now < CC_RATE_SLICE_NS ? due - now : CC_RATE_SLICE_NS;
		struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};

		nanosleep(&ts, NULL);
	}
	return atomic_load(&j->cancel) ? -1 : 0;
}

/* The worker thread: files only, never the catalog (catalog.h, catalog_clone_copy). */
static void *job_main(void *arg)
{
	struct clone_job *j = arg;

	j->rc = catalog_clone_copy(j->src_path, j->dst_path, j->size, job_progress, j,
				   &j->reflinked, j->err, sizeof(j->err));
	atomic_store(&j->finished, true);
	return NULL;
}

static void failure_note(const char *vid, const char *why)
{
	struct clone_failure *f;

	if (cc.nfailed == CC_FAILED_MAX) {
		memmove(&cc.failed[0], &cc.failed[1], sizeof(cc.failed[0]) * (CC_FAILED_MAX - 1));
		cc.nfailed--;
	}
	f = &cc.failed[cc.nfailed++];
	snprintf(f->vid, sizeof(f->vid), "%s", vid);
	snprintf(f->why, sizeof(f->why), "%s", why);
}

static const char *failure_find(const char *vid)
{
	unsigned i;

	for (i = cc.nfailed; i-- > 0;)
		if (!strcmp(cc.failed[i].vid, vid))
			return cc.failed[i].why;
	return NULL;
}

static void job_unlink(struct clone_job *d)
{
	struct clone_job **pp;

	for (pp = &cc.jobs; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			return;
		}
}

/* The loop's side of a copy that ended: the result is committed (ready, then exported like a
 * new disk) or the clone is rolled back (its file and its row removed). */
static void job_end(struct clone_job *j, bool stopping)
{
	char err[CATALOG_ERR_MAX], why[CATALOG_ERR_MAX + 64];
	double secs;
	struct catalog_vdisk v;
	int rc;

	pthread_join(j->thread, NULL);
	writer_wait();
	secs = (double)(mono_ns() - j->started_ns) / 1e9;
	rc = j->rc;
	if (stopping) {
		rc = -ECANCELED;
		snprintf(j->err, sizeof(j->err), "coord stopped");
	}
	job_unlink(j);
	if (rc == 0 && !j->delete_ctl) {
		rc = catalog_vdisk_clone_finish(cc.cat, j->vid, &v, err, sizeof(err));
		if (rc == 0) {
			log_info("coord: vdisk %s: clone of %s ready (%llu bytes, %s, %.1f s); "
				 "exporting it",
				 j->vid, j->src_vid, (unsigned long long)j->size,
				 j->reflinked ? "reflinked" : "copied", secs);
			sync_add(j->vid, true, false);
			free(j);
			return;
		}
		snprintf(j->err, sizeof(j->err), "%s", err);
	}
	if (j->delete_ctl)
		snprintf(why, sizeof(why), "cancelled by a delete after %.1f s", secs);
	else
		snprintf(why, sizeof(why), "the clone failed after %.1f s: %s", secs, j->err);
	if (catalog_vdisk_clone_abort(cc.cat, j->vid, err, sizeof(err)) < 0)
		log_warnx("coord: vdisk %s: cannot roll the clone back (%s); the next start does",
			  j->vid, err);
	failure_note(j->vid, why);
	if (j->delete_ctl) {
		log_info("coord: vdisk %s: clone of %s %s", j->vid, j->src_vid, why);
		cc.env.reply(j->delete_ctl,
			     json_pack("{s:s, s:b}", "deleted", j->vid, "cancelled", true));
	} else {
		log_warnx("coord: vdisk %s: clone of %s: %s", j->vid, j->src_vid, why);
	}
	free(j);
}

static void jobs_tick(void)
{
	struct clone_job *j, *next;

	for (j = cc.jobs; j; j = next) {
		next = j->next;
		if (atomic_load(&j->finished))
			job_end(j, false);
	}
}

/* A clone is not batched (catalog.h): its intent is committed here, the answer (the new disk in
 * state cloning, with its progress) goes out at once, and a worker thread copies. The new disk
 * is exported when the copy has ended and the loop has made it ready (jobs_tick). */
static void do_vdisk_clone(uint32_t id, json_t *req)
{
	const char *name = jstr(req, "name");
	char err[CATALOG_ERR_MAX];
	struct catalog_vdisk src, v;
	struct clone_job *j;
	uint64_t epoch, rate = 0;
	int rc;

	if (vdisk_arg(id, req, &src, NULL))
		return;
	if (!name || (json_object_get(req, "rate") && !juint(req, "rate", &rate))) {
		reply_err(id, -EINVAL, "vdisk_clone needs \"name\" (and \"rate\" is bytes/s)");
		return;
	}
	if (!juint(req, "epoch", &epoch))
		epoch = src.epoch;
	j = calloc(1, sizeof(*j));
	if (!j) {
		reply_err(id, -ENOMEM, "out of memory");
		return;
	}
	writer_wait();
	rc = catalog_vdisk_clone_begin(cc.cat, src.id, epoch, name, "", quorate(), &src, &v, err,
				       sizeof(err));
	/* As for a create: a LUN number the configuration uses is skipped (the catalog's
	 * high-water mark only rises, so a second try gets the next one). */
	while (rc == 0 && lun_configured(v.target_iqn, v.lun)) {
		rc = catalog_vdisk_clone_abort(cc.cat, v.id, err, sizeof(err));
		if (rc == 0)
			rc = catalog_vdisk_clone_begin(cc.cat, src.id, epoch, name, "", quorate(),
						       &src, &v, err, sizeof(err));
	}
	if (rc) {
		free(j);
		reply_err(id, rc, err);
		return;
	}
	snprintf(j->vid, sizeof(j->vid), "%s", v.id);
	snprintf(j->src_vid, sizeof(j->src_vid), "%s", src.id);
	snprintf(j->src_path, sizeof(j->src_path), "%s", src.path);
	snprintf(j->dst_path, sizeof(j->dst_path), "%s", v.path);
	j->size = v.size;
	j->rate = rate;
	j->started_ns = mono_ns();
	rc = -pthread_create(&j->thread, NULL, job_main, j);
	if (rc) {
		if (catalog_vdisk_clone_abort(cc.cat, v.id, err, sizeof(err)) < 0)
			log_warnx("coord: vdisk %s: %s", v.id, err);
		free(j);
		reply_err(id, -EIO, "cannot start the copy (no thread)");
		return;
	}
	j->next = cc.jobs;
	cc.jobs = j;
	log_info("coord: vdisk %s: cloning %s (%llu bytes%s)", v.id, src.id,
		 (unsigned long long)v.size, rate ? ", rate-limited" : "");
	cc.env.reply(id, json_pack("{s:o}", "vdisk", vdisk_json(&v)));
}

/* A delete of a disk being cloned cancels the clone: the copy stops, the partial file and the
 * row go, and the delete is answered then. */
static void cancel_clone(uint32_t id, const struct catalog_vdisk *v, uint64_t epoch)
{
	struct clone_job *j = job_find(v->id);
	char why[160];

	if (!j) {
		reply_err(id, -EBUSY,
			  "the disk is being cloned by nobody; restart coord to roll "
			  "it back");
		return;
	}
	if (epoch != v->epoch) {
		snprintf(why, sizeof(why),
			 "stale epoch: the request expects %llu, the disk is at %llu",
			 (unsigned long long)epoch, (unsigned long long)v->epoch);
		reply_err(id, -ESTALE, why);
		return;
	}
	if (j->delete_ctl) {
		reply_err(id, -EBUSY, "the clone is being cancelled already");
		return;
	}
	j->delete_ctl = id;
	atomic_store(&j->cancel, true);
}

static void do_vdisk_show(uint32_t id, json_t *req)
{
	const char *vid = jstr(req, "id"), *why;
	struct catalog_vdisk v;
	char msg[CATALOG_ERR_MAX + 128];

	if (!vid) {
		reply_err(id, -EINVAL, "vdisk_show needs \"id\"");
		return;
	}
	if (catalog_vdisk_get(cc.cat, vid, &v) == 0) {
		cc.env.reply(id, json_pack("{s:o}", "vdisk", vdisk_json(&v)));
		return;
	}
	why = failure_find(vid);
	if (why) {
		snprintf(msg, sizeof(msg), "no virtual disk %s: %s", vid, why);
		cc.env.reply(id, json_pack("{s:s, s:s}", "error", msg, "code", "clone_failed"));
		return;
	}
	snprintf(msg, sizeof(msg), "no virtual disk %s", vid);
	reply_err(id, -ENOENT, msg);
}

/* ---- access states: maintenance, host paths (docs/coordinator.md, "Access states") ---- */

#define CC_PATHS_POLL_NS 2000000000LL /* how often the target's sessions are looked at */

/* What was last recorded per host (catalog_host_set_path), so that only changes are written;
 * and the target's sessions as last seen, for the portals each host uses. */
static struct {
	struct {
		uint32_t id;
		bool fenced, nonpreferred;
	} rec[COORD_HOSTS_MAX];
	unsigned nrec;
	bool inflight;
	int64_t next_ns;
} paths;

/* Does one of the host's initiators own this session? */
static bool host_has_initiator(const struct coord_host *h, const char *iqn)
{
	for (unsigned k = 0; iqn && k < h->n_iqn; k++)
		if (!strcmp(h->iqn[k], iqn))
			return true;
	return false;
}

/* The local (box) addresses of the host's connections, as the target's "sessions" lists
 * them; a JSON array of distinct strings. */
static json_t *host_portals_in_use(const struct coord_host *h, json_t *sessions)
{
	json_t *out = json_array(), *s, *c, *x;
	size_t i, k, m;

	json_array_foreach(sessions, i, s)
	{
		const char *type = jstr(s, "type");

		if ((type && strcmp(type, "normal")) ||
		    !host_has_initiator(h, jstr(s, "initiator")))
			continue;
		json_array_foreach(json_object_get(s, "connections"), k, c)
		{
			const char *local = jstr(c, "local");
			bool dup = false;

			if (!local)
				continue;
			json_array_foreach(out, m, x) dup =
				dup || !strcmp(json_string_value(x), local);
			if (!dup)
				json_array_append_new(out, json_string(local));
		}
	}
	return out;
}

/* Reaches the host the box only over portals it does not prefer? Only a connected host with
 * preferred portals configured can: one without any prefers every portal. */
static bool host_nonpreferred_only(const struct coord_host *h, json_t *in_use)
{
	char pref[CATALOG_PORTALS_MAX][CATALOG_PORTAL_MAX];
	struct catalog_portal p;
	json_t *x;
	size_t i;
	int n, k;

	n = catalog_host_portals(cc.cat, h->id, pref, CATALOG_PORTALS_MAX);
	if (n <= 0 || json_array_size(in_use) == 0)
		return false;
	if (n > CATALOG_PORTALS_MAX)
		n = CATALOG_PORTALS_MAX;
	json_array_foreach(
		in_use, i,
		x) for (k = 0; k < n;
			k++) if (catalog_portal_parse(pref[k], &p) == 0 &&
				 catalog_portal_match(&p, json_string_value(x))) return false;
	return true;
}

/* Record each host's path state (fenced by the coordinator, non-preferred portals only) in
 * the catalog where it changed; sessions is the target's answer. */
static void paths_apply(json_t *sessions)
{
	char err[CATALOG_ERR_MAX];
	unsigned i, r;

	for (i = 0; i < cc.env.hosts->n; i++) {
		const struct coord_host *h = &cc.env.hosts->h[i];
		json_t *in_use;
		bool np;

		/* A removed host stays: it is fenced, and its disks must say so. */
		if (!h->enrolled)
			continue;
		in_use = host_portals_in_use(h, sessions);
		np = host_nonpreferred_only(h, in_use);
		json_decref(in_use);
		for (r = 0; r < paths.nrec && paths.rec[r].id != h->id; r++)
			;
		if (r < paths.nrec && paths.rec[r].fenced == h->fenced &&
		    paths.rec[r].nonpreferred == np)
			continue;
		writer_wait();
		if (catalog_host_set_path(cc.cat, h->id, h->fenced, np, err, sizeof(err)) < 0) {
			log_warnx("coord: host %s: cannot record its path: %s", h->name, err);
			continue;
		}
		if (r == paths.nrec) {
			if (r == COORD_HOSTS_MAX)
				continue;
			paths.nrec++;
		}
		paths.rec[r].id = h->id;
		paths.rec[r].fenced = h->fenced;
		paths.rec[r].nonpreferred = np;
		log_info("coord: host %s: %s%s", h->name, h->fenced ? "fenced" : "not fenced",
			 np ? ", reaches the box only over non-preferred portals (redirected)"
			    : "");
	}
}

static json_t *reply_sessions(json_t *r)
{
	json_t *s = json_object_get(r, "sessions");

	return json_is_array(s) ? s : NULL;
}

static void paths_on_sessions(void *ctx, json_t *r)
{
	json_t *s = reply_sessions(r);

	(void)ctx;
	paths.inflight = false;
	if (s && cc.cat)
		paths_apply(s);
}

static void paths_tick(int64_t now_ns)
{
	if (paths.inflight || now_ns < paths.next_ns)
		return;
	paths.next_ns = now_ns + CC_PATHS_POLL_NS;
	paths.inflight = true;
	send_target(json_pack("{s:s}", "cmd", "sessions"), paths_on_sessions, NULL);
}

/* {host: state} of the disk's attached hosts, for vdisk list and show. */
static json_t *access_map_json(const struct catalog_vdisk *v)
{
	uint32_t hosts[CC_ATTACHED_MAX];
	enum catalog_access a;
	json_t *o = json_object();
	char key[16];
	int n, i;

	n = cc.cat ? catalog_vdisk_hosts(cc.cat, v->id, hosts, CC_ATTACHED_MAX) : 0;
	for (i = 0; i < n && i < CC_ATTACHED_MAX; i++) {
		const char *name = host_name(hosts[i]);

		if (catalog_access_get(cc.cat, hosts[i], v->id, &a) < 0)
			continue;
		snprintf(key, sizeof(key), "%u", hosts[i]);
		json_object_set_new(o, name ? name : key, json_string(catalog_access_name(a)));
	}
	return o;
}

static void do_vdisk_maintenance(uint32_t id, json_t *req)
{
	struct catalog_vdisk v;
	uint64_t epoch;
	json_t *on = json_object_get(req, "on");
	struct op *o;

	if (vdisk_arg(id, req, &v, &epoch))
		return;
	if (!json_is_boolean(on)) {
		reply_err(id, -EINVAL, "vdisk_maintenance needs \"on\": true or false");
		return;
	}
	if (v.state != CATALOG_VDISK_READY) {
		reply_err(id, -EBUSY, "the disk is not ready (not exported)");
		return;
	}
	o = op_new(id, OP_MAINTENANCE, v.id);
	if (!o) {
		reply_err(id, -ENOMEM, "out of memory");
		return;
	}
	o->nreq = 1;
	req_init(&o->req[0], CATALOG_OP_MAINTENANCE, v.id, epoch);
	o->req[0].maintenance = json_is_true(on);
	op_queue(o);
}

struct access_ask {
	uint32_t ctl_id;
	char vid[CATALOG_ID_LEN + 1];
};

/* One member host of a disk: its role, its access state, whether it has a session and the
 * box portals it uses. */
static json_t *access_host_json(const struct catalog_vdisk *v, uint32_t hid, bool attached,
				json_t *sessions)
{
	char pref[CATALOG_PORTALS_MAX][CATALOG_PORTAL_MAX];
	struct coord_host *h = coord_hosts_by_id(cc.env.hosts, hid);
	json_t *in_use = h ? host_portals_in_use(h, sessions) : json_array(), *pj = json_array();
	bool fenced = false, np = false, connected = json_array_size(in_use) > 0;
	enum catalog_access a;
	int n, k;

	if (!attached || catalog_access_get(cc.cat, hid, v->id, &a) < 0) {
		catalog_host_path(cc.cat, hid, &fenced, &np);
		a = catalog_access_effective(fenced, v->maintenance, np);
	}
	n = catalog_host_portals(cc.cat, hid, pref, CATALOG_PORTALS_MAX);
	for (k = 0; k < n && k < CATALOG_PORTALS_MAX; k++)
		json_array_append_new(pj, json_string(pref[k]));
	/* A fenced host is shown fenced whether or not it still has a session; any other host
	 * without a session is not connected, whatever its catalog state. */
	return json_pack("{s:s?, s:I, s:s, s:b, s:s, s:b, s:s, s:o, s:o}", "host",
			 h ? h->name : NULL, "host_id", (json_int_t)hid, "role",
			 v->owner == hid ? "owner" : "reader", "attached", attached, "state",
			 catalog_access_name(a), "connected", connected, "shown",
			 a == CATALOG_ACCESS_FENCED || connected ? catalog_access_name(a)
								 : "not connected",
			 "portals", in_use, "preferred", pj);
}

static void access_on_sessions(void *ctx, json_t *r)
{
	struct access_ask *ask = ctx;
	uint32_t hosts[CC_ATTACHED_MAX];
	json_t *s = reply_sessions(r), *list;
	struct catalog_vdisk v;
	bool owner_listed = false;
	int n, i;

	if (!s) {
		const char *e = reply_error(r);
		char why[CATALOG_ERR_MAX];

		snprintf(why, sizeof(why), "the target did not list its sessions: %s",
			 e ? e : "no answer");
		reply_err(ask->ctl_id, -EIO, why);
		free(ask);
		return;
	}
	/* The answer is fresh: record the paths first, so the states below are current. */
	paths_apply(s);
	if (catalog_vdisk_get(cc.cat, ask->vid, &v) < 0) {
		reply_err(ask->ctl_id, -ENOENT, "the virtual disk is gone");
		free(ask);
		return;
	}
	list = json_array();
	n = catalog_vdisk_hosts(cc.cat, v.id, hosts, CC_ATTACHED_MAX);
	for (i = 0; i < n && i < CC_ATTACHED_MAX; i++) {
		owner_listed = owner_listed || hosts[i] == v.owner;
		json_array_append_new(list, access_host_json(&v, hosts[i], true, s));
	}
	if (v.owner && !owner_listed)
		json_array_append_new(list, access_host_json(&v, v.owner, false, s));
	cc.env.reply(ask->ctl_id,
		     json_pack("{s:s, s:s, s:I, s:b, s:o}", "vdisk", v.id, "name", v.name, "epoch",
			       (json_int_t)v.epoch, "maintenance", v.maintenance, "hosts", list));
	free(ask);
}

static void do_vdisk_access(uint32_t id, json_t *req)
{
	struct catalog_vdisk v;
	struct access_ask *ask;
	const char *vid = jstr(req, "id");

	if (!vid || catalog_vdisk_get(cc.cat, vid, &v) < 0) {
		reply_err(id, vid ? -ENOENT : -EINVAL,
			  vid ? "no such virtual disk" : "the request needs \"id\"");
		return;
	}
	ask = calloc(1, sizeof(*ask));
	if (!ask) {
		reply_err(id, -ENOMEM, "out of memory");
		return;
	}
	ask->ctl_id = id;
	snprintf(ask->vid, sizeof(ask->vid), "%s", v.id);
	send_target(json_pack("{s:s}", "cmd", "sessions"), access_on_sessions, ask);
}

/* {"cmd":"host_portals","host":H[,"portals":[SPEC...]]}: set (an empty list clears) or show
 * a host's preferred portals. */
static void do_host_portals(uint32_t id, json_t *req)
{
	char pref[CATALOG_PORTALS_MAX][CATALOG_PORTAL_MAX], why[CATALOG_ERR_MAX];
	const char *specs[CATALOG_PORTALS_MAX + 1];
	json_t *list = json_object_get(req, "portals"), *x, *out;
	const char *name = jstr(req, "host");
	struct coord_host *h = name ? coord_hosts_by_name(cc.env.hosts, name) : NULL;
	size_t i, n = 0;
	int rc, k;

	if (!h || !h->enrolled || h->removed) {
		snprintf(why, sizeof(why), "no host '%s' in the cluster", name ? name : "");
		reply_err(id, -ENOENT, why);
		return;
	}
	if (list) {
		if (!json_is_array(list) || json_array_size(list) > CATALOG_PORTALS_MAX) {
			snprintf(why, sizeof(why), "\"portals\" is a list of at most %d portals",
				 CATALOG_PORTALS_MAX);
			reply_err(id, -EINVAL, why);
			return;
		}
		json_array_foreach(list, i, x)
		{
			if (!json_is_string(x)) {
				reply_err(id, -EINVAL, "each portal is a string");
				return;
			}
			specs[n++] = json_string_value(x);
		}
		writer_wait();
		rc = catalog_host_set_portals(cc.cat, h->id, specs, n, quorate(), why, sizeof(why));
		if (rc) {
			reply_err(id, rc, why);
			return;
		}
		/* Look at the paths again soon, with the new preference. */
		paths.next_ns = 0;
		paths.nrec = 0;
	}
	rc = catalog_host_portals(cc.cat, h->id, pref, CATALOG_PORTALS_MAX);
	if (rc < 0) {
		reply_err(id, rc, "cannot read the host's portals");
		return;
	}
	out = json_array();
	for (k = 0; k < rc && k < CATALOG_PORTALS_MAX; k++)
		json_array_append_new(out, json_string(pref[k]));
	cc.env.reply(id, json_pack("{s:s, s:o}", "host", h->name, "portals", out));
}

static const char *const commands[] = {
	"pool_add",	"pool_list",	"pool_remove",	"vdisk_list",	"vdisk_create",
	"vdisk_extend", "vdisk_delete", "vdisk_attach", "vdisk_detach", "vdisk_transfer",
	"vdisk_clone",	"vdisk_show",	"vdisk_maintenance", "vdisk_access", "host_portals",
	NULL,
};

bool coord_catalog_handles(const char *cmd)
{
	unsigned i;

	for (i = 0; commands[i]; i++)
		if (!strcmp(commands[i], cmd))
			return true;
	return false;
}

void coord_catalog_request(uint32_t id, const char *cmd, json_t *req)
{
	if (!cc.cat) {
		char why[CATALOG_ERR_MAX + 64];

		snprintf(why, sizeof(why), "the catalog is not open: %s", cc.open_err);
		reply_err(id, -EIO, why);
	} else if (!strcmp(cmd, "pool_add")) {
		do_pool_add(id, req);
	} else if (!strcmp(cmd, "pool_list")) {
		do_pool_list(id);
	} else if (!strcmp(cmd, "pool_remove")) {
		do_pool_remove(id, req);
	} else if (!strcmp(cmd, "vdisk_list")) {
		do_vdisk_list(id, req);
	} else if (!strcmp(cmd, "vdisk_create")) {
		do_vdisk_create(id, req, CATALOG_NO_HOST);
	} else if (!strcmp(cmd, "vdisk_extend")) {
		do_vdisk_extend(id, req);
	} else if (!strcmp(cmd, "vdisk_delete")) {
		do_vdisk_delete(id, req);
	} else if (!strcmp(cmd, "vdisk_attach")) {
		do_vdisk_attach(id, req, true);
	} else if (!strcmp(cmd, "vdisk_detach")) {
		do_vdisk_attach(id, req, false);
	} else if (!strcmp(cmd, "vdisk_transfer")) {
		do_vdisk_transfer(id, req);
	} else if (!strcmp(cmd, "vdisk_clone")) {
		do_vdisk_clone(id, req);
	} else if (!strcmp(cmd, "vdisk_show")) {
		do_vdisk_show(id, req);
	} else if (!strcmp(cmd, "vdisk_maintenance")) {
		do_vdisk_maintenance(id, req);
	} else if (!strcmp(cmd, "vdisk_access")) {
		do_vdisk_access(id, req);
	} else if (!strcmp(cmd, "host_portals")) {
		do_host_portals(id, req);
	} else {
		reply_err(id, -EINVAL, "unknown command");
	}
}

/* ---- requests of a host, through the agent protocol ----
 *
 * A host acts only as itself (the host its certificate names, passed in by coord), within
 * what the table in docs/agent-protocol.md ("Catalog permissions") allows; the rest is refused
 * as "forbidden" before anything is queued. What is allowed then goes the admin's way above:
 * the same quorum and epoch checks, the same group commit, the target told before the answer. */

static void reply_code(uint32_t id, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_code(uint32_t id, const char *code, const char *fmt, ...)
{
	char why[CATALOG_ERR_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	cc.env.reply(id, json_pack("{s:s, s:s}", "error", why, "code", code));
}

/* The disk of the request's "id", or an answer saying why there is none. */
static bool host_vdisk(uint32_t id, json_t *req, struct catalog_vdisk *v)
{
	const char *vid = jstr(req, "id");

	if (!vid) {
		reply_err(id, -EINVAL, "the request needs \"id\"");
		return false;
	}
	if (catalog_vdisk_get(cc.cat, vid, v) < 0) {
		reply_code(id, "not_found", "no virtual disk %s", vid);
		return false;
	}
	return true;
}

static bool host_owns(uint32_t id, uint32_t host, const struct catalog_vdisk *v, const char *what)
{
	if (v->owner == host)
		return true;
	reply_code(id, "forbidden", "this host may not %s disk %s: %s", what, v->id,
		   v->owner ? "another host owns it" : "nobody owns it");
	return false;
}

/* Owned, attached, or readable as a member of the cluster (which every enrolled host that
 * was not removed is: coord_catalog's access policy lets members read every disk). */
static bool host_sees(const struct coord_host *h, const struct catalog_vdisk *v)
{
	uint32_t hosts[CC_ATTACHED_MAX];
	int n, i;

	if (v->owner == h->id || (h->enrolled && !h->removed))
		return true;
	n = catalog_vdisk_hosts(cc.cat, v->id, hosts, CC_ATTACHED_MAX);
	for (i = 0; i < n && i < CC_ATTACHED_MAX; i++)
		if (hosts[i] == h->id)
			return true;
	return false;
}

static void host_list(uint32_t id, const struct coord_host *h, json_t *req)
{
	static struct catalog_vdisk list[CC_LIST_MAX];
	const char *pool = jstr(req, "pool");
	struct catalog_pool p = {.id = 0};
	json_t *a;
	int n, i;

	if (pool && *pool && catalog_pool_by_name(cc.cat, pool, &p) < 0) {
		reply_code(id, "not_found", "no pool '%s'", pool);
		return;
	}
	n = catalog_vdisk_list(cc.cat, p.id, list, CC_LIST_MAX);
	if (n < 0) {
		reply_err(id, n, "cannot read the virtual disks");
		return;
	}
	a = json_array();
	for (i = 0; i < n && i < CC_LIST_MAX; i++)
		if (host_sees(h, &list[i]))
			json_array_append_new(a, vdisk_json(&list[i]));
	cc.env.reply(id, json_pack("{s:o}", "vdisks", a));
}

/* A host deletes a disk it owns, or one nobody owns (which it could take by attaching), when
 * no other host is attached. Its own attachment and ownership end in the same commit: the
 * requests are [transfer to nobody], [detach], delete, after the LUN is gone from the target. */
static void host_delete(uint32_t id, uint32_t host, json_t *req)
{
	uint32_t hosts[CC_ATTACHED_MAX];
	struct catalog_vdisk v;
	bool self = false, others = false;
	uint64_t epoch;
	struct op *o;
	int n, i;

	if (vdisk_arg(id, req, &v, &epoch))
		return;
	if (v.owner != CATALOG_NO_HOST && v.owner != host) {
		reply_code(id, "forbidden", "this host may not delete disk %s: %s owns it", v.id,
			   host_name(v.owner) ? host_name(v.owner) : "another host");
		return;
	}
	if (!quorate()) {
		reply_err(id, -EPERM, "no quorum: the catalog cannot be changed");
		return;
	}
	if (epoch != v.epoch) {
		reply_code(id, "stale_epoch",
			   "stale epoch: the request expects %llu, the disk is at %llu",
			   (unsigned long long)epoch, (unsigned long long)v.epoch);
		return;
	}
	n = catalog_vdisk_hosts(cc.cat, v.id, hosts, CC_ATTACHED_MAX);
	if (n < 0) {
		reply_err(id, n, "cannot read the disk's attachments");
		return;
	}
	others = n > CC_ATTACHED_MAX;
	for (i = 0; i < n && i < CC_ATTACHED_MAX; i++) {
		if (hosts[i] == host)
			self = true;
		else
			others = true;
	}
	if (others) {
		reply_code(id, "in_use", "another host is attached to disk %s", v.id);
		return;
	}
	o = op_new(id, OP_DELETE, v.id);
	if (!o) {
		reply_err(id, -ENOMEM, "out of memory");
		return;
	}
	if (v.owner == host) {
		req_init(&o->req[o->nreq], CATALOG_OP_TRANSFER, v.id, epoch++);
		o->req[o->nreq].old_owner = host;
		o->req[o->nreq++].new_owner = CATALOG_NO_HOST;
	}
	if (self) {
		req_init(&o->req[o->nreq], CATALOG_OP_DETACH, v.id, epoch);
		o->req[o->nreq++].host_id = host;
	}
	req_init(&o->req[o->nreq++], CATALOG_OP_DELETE, v.id, epoch);
	if (v.state != CATALOG_VDISK_READY) {
		op_queue(o);
		return;
	}
	send_target(json_pack("{s:s, s:s, s:I}", "cmd", "lun_remove", "target", v.target_iqn, "lun",
			      (json_int_t)v.lun),
		    op_on_remove, o);
}

void coord_catalog_host_request(uint32_t id, uint32_t host, const char *cmd, json_t *req)
{
	struct coord_host *h = coord_hosts_by_id(cc.env.hosts, host);
	struct catalog_vdisk v;
	const char *to;

	if (!cc.cat) {
		reply_code(id, "io", "the catalog is not open: %s", cc.open_err);
		return;
	}
	if (!h || !h->enrolled || h->removed) {
		reply_code(id, "forbidden", "this host is not a member of the cluster");
		return;
	}
	if (!strcmp(cmd, "vdisk_list")) {
		host_list(id, h, req);
		return;
	}
	if (h->fenced) {
		reply_code(id, "fenced", "this host is fenced: it changes nothing until it rejoins");
		return;
	}
	if (!strcmp(cmd, "vdisk_create")) {
		if (!quorum_allows_ownership_change(cc.env.q, host)) {
			reply_code(id, "no_quorum", "%s",
				   !quorate() ? "no quorum: the catalog cannot be changed"
					      : "this host holds no lease: run holdfast-agent first");
			return;
		}
		do_vdisk_create(id, req, host);
	} else if (!strcmp(cmd, "vdisk_extend")) {
		if (host_vdisk(id, req, &v) && host_owns(id, host, &v, "extend"))
			do_vdisk_extend(id, req);
	} else if (!strcmp(cmd, "vdisk_attach") || !strcmp(cmd, "vdisk_detach")) {
		json_object_set_new(req, "host", json_string(h->name));
		do_vdisk_attach(id, req, !strcmp(cmd, "vdisk_attach"));
	} else if (!strcmp(cmd, "vdisk_transfer")) {
		to = jstr(req, "to");
		if (!host_vdisk(id, req, &v) || !host_owns(id, host, &v, "transfer"))
			return;
		if (!to || !*to || !strcmp(to, h->name) || !strcmp(to, "-") || !strcmp(to, "none")) {
			reply_err(id, -EINVAL, "a transfer names another host of the cluster");
			return;
		}
		json_object_set_new(req, "from", json_string(h->name));
		do_vdisk_transfer(id, req);
	} else if (!strcmp(cmd, "vdisk_delete")) {
		host_delete(id, host, req);
	} else if (coord_catalog_handles(cmd)) {
		/* pool_add, pool_remove, pool_list, vdisk_clone: the administrator's. */
		reply_code(id, "forbidden", "%s is for the administrator (holdfastctl)", cmd);
	} else {
		reply_err(id, -EINVAL, "unknown command");
	}
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
static void pools_sweep(void)
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

int coord_catalog_open(const struct coord_catalog_env *env)
{
	struct catalog_reconcile rec;
	int rc;

	cc.env = *env;
	cc.nseen = 0;
	rc = catalog_open_with(&cc.cat, env->cfg->data_dir, pool_attach, NULL, &rec, cc.open_err,
			       sizeof(cc.open_err));
	if (rc) {
		cc.cat = NULL;
		log_warnx("coord: catalog in %s: %s", env->cfg->data_dir, cc.open_err);
		return rc;
	}
	log_info("coord: catalog open (schema %d); reconciled: %u create(s) and %u clone(s) rolled "
		 "back, %u delete(s) finished, %u size(s) fixed, %u orphan(s) removed, %u "
		 "quarantined, %u missing; %u block pool(s) offline and left alone",
		 catalog_schema_version(cc.cat), rec.creates_rolled_back, rec.clones_rolled_back,
		 rec.deletes_finished, rec.sizes_fixed, rec.orphans_removed,
		 rec.orphans_quarantined, rec.missing, rec.pools_offline);
	pools_sweep();
	commit_thread_start();
	return 0;
}

void coord_catalog_close(void)
{
	struct clone_job *j;
	struct sync *s;
	struct op *o;

	/* The batch in flight is durable before the catalog closes; its operations, like every
	 * other one still waiting, go unanswered (their connections close with coord). */
	commit_thread_stop();
	/* A clone in progress is cancelled and rolled back now rather than at the next start. */
	for (j = cc.jobs; j; j = j->next)
		atomic_store(&j->cancel, true);
	while ((j = cc.jobs)) {
		j->delete_ctl = 0;
		job_end(j, true);
	}
	/* A pool add or remove in progress is waited for and settled (pool jobs). */
	pool_jobs_stop();
	while ((o = cc.ops)) {
		cc.ops = o->next;
		free(o);
	}
	while ((s = cc.syncs)) {
		cc.syncs = s->next;
		free(s);
	}
	free(cc.sig);
	cc.sig = NULL;
	if (cc.cat)
		catalog_close(cc.cat);
	cc.cat = NULL;
}
