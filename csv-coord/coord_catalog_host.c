/* Requests of a host to the coord plane's catalog, through the agent protocol
 * (coord_catalog_host_request; docs/agent-protocol.md). Shares coord_catalog_int.h with
 * coord_catalog.c, whose checks, group commit and relay to the target they go through. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "csv-coord/catalog.h"
#include "csv-coord/coord_catalog.h"
#include "csv-coord/coord_catalog_int.h"

/* ---- requests of a host, through the agent protocol ----
 *
 * A host acts only as itself (the host its certificate names, passed in by coord), within
 * what the table in docs/agent-protocol.md ("Catalog permissions") allows; the rest is refused
 * as "forbidden" before anything is queued. What is allowed then goes the admin's way
 * (coord_catalog.c): the same quorum and epoch checks, the same group commit, the target told
 * before the answer. */

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
