/* The catalog inside the coord plane. A control request is checked here (names, numbers), its
 * catalog requests are queued, and coord_catalog_flush() commits every request queued in one
 * loop iteration with one catalog_commit() (one fsync for all of them). What the target must
 * know follows the commit and comes before the answer: a new disk is exported (lun_add) and
 * given its access policy, an extend is followed by lun_resize, an ownership change by
 * lun_access. A delete goes the other way round: the LUN is removed first (so no host writes
 * to a file that is about to go) and the row after. Only one operation per disk is in flight
 * at a time; a second one is refused as busy rather than interleaved with the first. */
#include "csv-coord/coord_catalog.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csv-coord/catalog.h"
#include "lib/log.h"

#define CC_RETRY_NS	 1000000000LL
#define CC_BLOCK_SIZE	 512
#define CC_LIST_MAX	 4096
#define CC_POOLS_MAX	 256
#define CC_ATTACHED_MAX	 64
#define CC_SIG_MAX	 (COORD_HOSTS_MAX * AGENT_MAX_IQNS * (AGENT_IQN_MAX + 2) + 1)
#define CC_POOL_CHECK_NS 1000000000LL /* how often the pools' free space is looked at */

enum op_kind {
	OP_CREATE,
	OP_EXTEND,
	OP_DELETE,
	OP_ATTACH,
	OP_DETACH,
	OP_TRANSFER,
	OP_CLONE,
};

/* One control request on a disk, from its arrival to its answer. */
struct op {
	struct op *next;
	bool queued; /* its catalog requests wait for the next flush */
	uint32_t ctl_id;
	enum op_kind kind;
	char vid[CATALOG_ID_LEN + 1]; /* "" for a create until it is committed */
	struct catalog_req req[2];
	unsigned nreq;
	uint64_t old_size;
	bool reflinked;
	char err[CATALOG_ERR_MAX + 64]; /* the answer's error, when there is one */
	int rc;
};

/* A disk whose export or access policy the target has not confirmed yet. */
struct sync {
	struct sync *next;
	char vid[CATALOG_ID_LEN + 1];
	bool add; /* lun_add first */
	bool inflight;
	bool again; /* asked once more while in flight */
	int64_t retry_ns;
	unsigned failures;
};

static struct {
	struct coord_catalog_env env;
	struct catalog *cat;
	char open_err[CATALOG_ERR_MAX];
	struct op *ops;
	struct sync *syncs;
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
} cc;

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
	return json_pack("{s:s, s:s, s:I, s:I, s:o, s:o}", "cmd", "lun_access", "target",
			 v->target_iqn, "lun", (json_int_t)v->lun, "epoch", (json_int_t)v->epoch,
			 "owners", owners, "members", members_json());
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
	if (!cc.cat || catalog_pool_get(cc.cat, v->pool_id, &p) < 0)
		snprintf(p.name, sizeof(p.name), "%s", "?");
	o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:I, s:o, s:I, s:I, s:s, s:b, s:s, "
		      "s:o, s:I, s:I}",
		      "id", v->id, "name", v->name, "pool", p.name, "pool_id",
		      (json_int_t)v->pool_id, "size", (json_int_t)v->size, "path", v->path,
		      "target", v->target_iqn, "lun", (json_int_t)v->lun, "owner",
		      owner ? json_string(owner) : json_null(), "owner_id", (json_int_t)v->owner,
		      "epoch", (json_int_t)v->epoch, "state", catalog_vdisk_state_name(v->state),
		      "maintenance", v->maintenance, "vm", v->vm, "hosts", ah, "created",
		      (json_int_t)v->created, "updated", (json_int_t)v->updated);
	return o;
}

static json_t *pool_json(const struct catalog_pool *p)
{
	struct catalog_pool_usage u;
	char err[CATALOG_ERR_MAX];
	json_t *o;

	o = json_pack("{s:I, s:s, s:s, s:s, s:I}", "id", (json_int_t)p->id, "name", p->name, "path",
		      p->path, "kind", p->kind == CATALOG_POOL_BLOCK ? "block" : "folder",
		      "alert_pct", (json_int_t)p->alert_pct);
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

static void sync_add(const char *vid, bool add)
{
	struct sync *s = sync_find(vid);

	if (s) {
		s->add = s->add || add;
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
	s->next = cc.syncs;
	cc.syncs = s;
}

static void sync_drop(struct sync *d)
{
	struct sync **pp;

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
	else
		send_target(access_req(&v), sync_on_access, s);
}

/* A new policy for every ready disk: the member initiators changed. */
static void sync_all(bool add)
{
	static struct catalog_vdisk list[CC_LIST_MAX];
	int n, i;

	n = catalog_vdisk_list(cc.cat, 0, list, CC_LIST_MAX);
	if (n > CC_LIST_MAX) {
		log_warnx("coord: %d disks; only the first %d are exported", n, CC_LIST_MAX);
		n = CC_LIST_MAX;
	}
	for (i = 0; i < n; i++)
		if (list[i].state == CATALOG_VDISK_READY)
			sync_add(list[i].id, add);
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

void coord_catalog_tick(int64_t now_ns)
{
	struct sync *s, *next;
	char *sig;

	if (!cc.cat)
		return;
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

/* After an ownership change: the target gets the new policy before the answer. */
static void op_on_access(void *ctx, json_t *r)
{
	struct op *o = ctx;
	const char *e = reply_error(r);

	if (e && !strstr(e, "stale")) {
		/* The catalog has the change; the target must follow, so it is retried. */
		sync_add(o->vid, false);
		if (!o->rc)
			op_fail(o, -EIO,
				"the catalog committed the change but the target did not take the "
				"access policy yet (%s); it is retried every second",
				e);
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
		    catalog_vdisk_delete(cc.cat, o->vid, v.epoch, true, err, sizeof(err)) < 0)
			log_warnx("coord: vdisk %s: cannot delete it after the failed export: %s",
				  o->vid, err);
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
		rc = catalog_vdisk_delete(cc.cat, v->id, v->epoch, true, err, sizeof(err));
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
		op_fail(o, -EIO,
			"the catalog has the new size but the target did not resize the LUN: %s",
			e);
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
			sync_add(o->vid, true);
			op_done(o, NULL);
			return;
		}
		op_done(o, json_pack("{s:s, s:I}", "deleted", o->vid, "lun",
				     (json_int_t)o->req[0].vdisk.lun));
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
	case OP_CLONE:
	default:
		o->rc = -EINVAL;
		snprintf(o->err, sizeof(o->err), "internal: operation %d in a batch", o->kind);
		op_done(o, NULL);
		return;
	}
}

void coord_catalog_flush(void)
{
	struct op *o, *list[CATALOG_BATCH_MAX];
	size_t n, nops, i, k;
	int rc;

	if (!cc.cat)
		return;
	for (;;) {
		n = nops = 0;
		for (o = cc.ops; o; o = o->next) {
			if (!o->queued)
				continue;
			if (n + o->nreq > CATALOG_BATCH_MAX)
				break;
			list[nops++] = o;
			for (k = 0; k < o->nreq; k++)
				cc.batch[n++] = o->req[k];
		}
		if (!nops)
			return;
		rc = catalog_commit(cc.cat, cc.batch, n);
		if (rc)
			log_warnx("coord: catalog commit of %zu request(s): %s", n, strerror(-rc));
		else if (nops > 1)
			log_debug("coord: %zu request(s) of %zu operations in one commit", n, nops);
		for (i = n = 0; i < nops; i++) {
			list[i]->queued = false;
			for (k = 0; k < list[i]->nreq; k++)
				list[i]->req[k] = cc.batch[n++];
		}
		/* Answers may free ops and queue none: list[] holds what this batch took. */
		for (i = 0; i < nops; i++)
			op_committed(list[i]);
		/* Creates and extends take space (or promise it): look at once. */
		pools_check();
	}
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

static void do_pool_add(uint32_t id, json_t *req)
{
	const char *name = jstr(req, "name"), *path = jstr(req, "path");
	char err[CATALOG_ERR_MAX];
	struct catalog_pool p;
	uint64_t alert = 0;
	int64_t pid;
	int rc;

	if (!name || !path || (json_object_get(req, "alert") && !juint(req, "alert", &alert)) ||
	    alert > 100) {
		reply_err(id, -EINVAL, "pool_add needs \"name\", \"path\" and an \"alert\" 0..100");
		return;
	}
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
	char err[CATALOG_ERR_MAX];
	struct catalog_pool p;
	int rc;

	if (!name) {
		reply_err(id, -EINVAL, "pool_remove needs \"name\"");
		return;
	}
	if (catalog_pool_by_name(cc.cat, name, &p) < 0) {
		snprintf(err, sizeof(err), "no pool '%s'", name);
		reply_err(id, -ENOENT, err);
		return;
	}
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

static void do_vdisk_create(uint32_t id, json_t *req)
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
	s->owner = CATALOG_NO_HOST;
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

/* A clone is not batched (catalog.h): it runs here, in the loop, and is exported like a new
 * disk. A long copy holds up the loop; a reflink or a sparse copy is quick. */
static void do_vdisk_clone(uint32_t id, json_t *req)
{
	const char *name = jstr(req, "name");
	char err[CATALOG_ERR_MAX];
	struct catalog_vdisk v;
	uint64_t epoch;
	struct op *o;
	int rc;

	if (vdisk_arg(id, req, &v, NULL))
		return;
	if (!name) {
		reply_err(id, -EINVAL, "vdisk_clone needs \"name\"");
		return;
	}
	if (!juint(req, "epoch", &epoch))
		epoch = v.epoch;
	o = op_new(id, OP_CLONE, v.id);
	if (!o) {
		reply_err(id, -ENOMEM, "out of memory");
		return;
	}
	rc = catalog_vdisk_clone(cc.cat, v.id, epoch, name, "", quorate(), NULL, NULL,
				 &o->req[0].vdisk, &o->reflinked, err, sizeof(err));
	if (rc) {
		op_fail(o, rc, "%s", err);
		return;
	}
	snprintf(o->vid, sizeof(o->vid), "%s", o->req[0].vdisk.id);
	send_target(add_req(&o->req[0].vdisk), op_on_add, o);
}

static const char *const commands[] = {
	"pool_add",	"pool_list",	  "pool_remove",  "vdisk_list",
	"vdisk_create", "vdisk_extend",	  "vdisk_delete", "vdisk_attach",
	"vdisk_detach", "vdisk_transfer", "vdisk_clone",  NULL,
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
		do_vdisk_create(id, req);
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
	} else {
		reply_err(id, -EINVAL, "unknown command");
	}
}

int coord_catalog_open(const struct coord_catalog_env *env)
{
	struct catalog_reconcile rec;
	int rc;

	cc.env = *env;
	rc = catalog_open(&cc.cat, env->cfg->data_dir, &rec, cc.open_err, sizeof(cc.open_err));
	if (rc) {
		cc.cat = NULL;
		log_warnx("coord: catalog in %s: %s", env->cfg->data_dir, cc.open_err);
		return rc;
	}
	log_info("coord: catalog open (schema %d); reconciled: %u create(s) and %u clone(s) rolled "
		 "back, %u delete(s) finished, %u size(s) fixed, %u orphan(s) removed, %u "
		 "quarantined, %u missing",
		 catalog_schema_version(cc.cat), rec.creates_rolled_back, rec.clones_rolled_back,
		 rec.deletes_finished, rec.sizes_fixed, rec.orphans_removed,
		 rec.orphans_quarantined, rec.missing);
	return 0;
}

void coord_catalog_close(void)
{
	struct sync *s;
	struct op *o;

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
