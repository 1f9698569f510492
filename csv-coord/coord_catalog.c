/* The catalog inside the coord plane. A control request is checked here (names, numbers), its
 * catalog requests are queued, and coord_catalog_flush() hands every request queued since the last
 * batch to the commit thread as one catalog_commit() (one fsync for all of them). What the target
 * must know follows the commit and comes before the answer: a new disk is exported (lun_add) and
 * given its access policy, an extend is followed by lun_resize, an ownership change by lun_access.
 * A delete goes the other way round: the LUN is removed first (so no host writes to a file that is
 * about to go) and the row after. Only one operation per disk is in flight at a time; a second one
 * is refused as busy rather than interleaved with the first.
 *
 * The group commit runs in a commit thread, not in the loop (commit thread below): the loop hands
 * it a batch and goes on parsing requests and relaying the target's answers; the thread wakes
 * the loop through an eventfd when the batch is durable, and the loop answers for it and hands
 * over the next batch, which gathered meanwhile. At most one batch is in flight. While it is,
 * the loop reads the catalog through its read-only connection (the last committed state) and
 * writes nothing: a write of the loop's own (a clone's steps, a pool, a host's path or portals,
 * taking back a disk the target did not export) first waits for the batch in flight.
 *
 * This file holds that core: the state, the operations, the syncs, the commit thread, request
 * parsing and dispatch, open, close and the tick. The rest is beside it, sharing
 * coord_catalog_int.h: block pools and their jobs (coord_pool.c), clone jobs (coord_clone.c),
 * access states and host paths (coord_access.c), and a host's requests through the agent
 * protocol (coord_catalog_host.c). */
#include "csv-coord/coord_catalog.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "csv-coord/catalog.h"
#include "csv-coord/coord_catalog_int.h"
#include "lib/log.h"

#define CC_RETRY_NS	 1000000000LL
#define CC_BLOCK_SIZE	 512
#define CC_SIG_MAX	 (COORD_HOSTS_MAX * AGENT_MAX_IQNS * (AGENT_IQN_MAX + 2) + 1)
#define CC_POOL_CHECK_NS 1000000000LL /* how often the pools' free space is looked at */

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

struct coord_catalog_state cc;

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

int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

bool quorate(void)
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

void reply_err(uint32_t id, int rc, const char *why)
{
	cc.env.reply(id, json_pack("{s:s, s:s}", "error", why, "code", code_of(rc)));
}

/* ---- what the target is told ---- */

const char *host_name(uint32_t id)
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
void send_target(json_t *req, coord_catalog_reply_fn cb, void *ctx)
{
	json_t *e;

	if (cc.env.relay(req, cb, ctx) == 0)
		return;
	e = json_pack("{s:s}", "error", "cannot send the request to the target");
	cb(ctx, e);
	json_decref(e);
}

const char *reply_error(json_t *r)
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

static struct sync *sync_find(const char *vid);

json_t *vdisk_json(const struct catalog_vdisk *v)
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

/* ---- syncs: exports and policies the target still has to take ---- */

static struct sync *sync_find(const char *vid)
{
	struct sync *s;

	for (s = cc.syncs; s; s = s->next)
		if (!strcmp(s->vid, vid))
			return s;
	return NULL;
}

void sync_add(const char *vid, bool add, bool resize)
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

struct op *op_new(uint32_t ctl_id, enum op_kind kind, const char *vid)
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

void op_queue(struct op *o)
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

bool lun_configured(const char *iqn, uint32_t lun)
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
void writer_wait(void)
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

const char *jstr(json_t *req, const char *key)
{
	return json_string_value(json_object_get(req, key));
}

/* A non-negative integer field; false when it is missing or bad. */
bool juint(json_t *req, const char *key, uint64_t *out)
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
int vdisk_arg(uint32_t id, json_t *req, struct catalog_vdisk *v, uint64_t *epoch)
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

void req_init(struct catalog_req *r, enum catalog_op op, const char *vid, uint64_t epoch)
{
	memset(r, 0, sizeof(*r));
	r->op = op;
	snprintf(r->vdisk_id, sizeof(r->vdisk_id), "%s", vid);
	r->expected_epoch = epoch;
}

/* ---- virtual disk requests ---- */

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
void do_vdisk_create(uint32_t id, json_t *req, uint32_t owner)
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

void do_vdisk_extend(uint32_t id, json_t *req)
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
void op_on_remove(void *ctx, json_t *r)
{
	struct op *o = ctx;
	const char *e = reply_error(r);

	if (e && !strstr(e, "no such") && !strstr(e, "has no LUN")) {
		op_fail(o, -EIO, "the target did not remove the LUN; the disk is kept: %s", e);
		return;
	}
	op_queue(o);
}

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
void do_vdisk_attach(uint32_t id, json_t *req, bool attach)
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

void do_vdisk_transfer(uint32_t id, json_t *req)
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
