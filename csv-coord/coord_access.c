/* Access states of the coord plane's catalog (docs/coordinator.md, "Access states"): a disk's
 * maintenance (vdisk_maintenance), each host's path as the target's sessions show it (fenced,
 * or reaching the box only over portals it does not prefer) recorded in the catalog, a host's
 * preferred portals (host_portals), and the per-host view of a disk (vdisk_access). Shares
 * coord_catalog_int.h with coord_catalog.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv-coord/catalog.h"
#include "csv-coord/catalog_portal.h"
#include "csv-coord/coord_catalog_int.h"
#include "lib/log.h"

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

void paths_tick(int64_t now_ns)
{
	if (paths.inflight || now_ns < paths.next_ns)
		return;
	paths.next_ns = now_ns + CC_PATHS_POLL_NS;
	paths.inflight = true;
	send_target(json_pack("{s:s}", "cmd", "sessions"), paths_on_sessions, NULL);
}

/* {host: state} of the disk's attached hosts, for vdisk list and show. */
json_t *access_map_json(const struct catalog_vdisk *v)
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

void do_vdisk_maintenance(uint32_t id, json_t *req)
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

void do_vdisk_access(uint32_t id, json_t *req)
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
void do_host_portals(uint32_t id, json_t *req)
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
