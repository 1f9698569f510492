/* Catalog messages to the catalog part's JSON and back (agent_catalog.h). */
#include "csv-coord/agent_catalog.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv-coord/catalog.h"

static json_t *vdisk_ref(const struct agent_vdisk_op *op)
{
	return json_pack("{s:s, s:I}", "id", op->id, "epoch", (json_int_t)op->epoch);
}

enum agent_err agent_catalog_request(const struct agent_msg *m, const char **cmd, json_t **req)
{
	const struct agent_vdisk_op *op = &m->u.vd_op;
	json_t *r = NULL;

	/* Epochs and sizes above INT64_MAX cannot be a disk's: JSON integers are signed, so they
	 * would arrive negative and be refused as bad arguments, which is what they are. */
	switch (m->type) {
	case AGENT_MSG_VDISK_LIST:
		*cmd = "vdisk_list";
		r = json_object();
		if (m->u.vd_list.pool[0])
			json_object_set_new(r, "pool", json_string(m->u.vd_list.pool));
		break;
	case AGENT_MSG_VDISK_CREATE:
		*cmd = "vdisk_create";
		r = json_pack("{s:s, s:s, s:I}", "pool", m->u.vd_create.pool, "name",
			      m->u.vd_create.name, "size", (json_int_t)m->u.vd_create.size);
		if (r && m->u.vd_create.vm[0])
			json_object_set_new(r, "vm", json_string(m->u.vd_create.vm));
		break;
	case AGENT_MSG_VDISK_EXTEND:
		*cmd = "vdisk_extend";
		r = vdisk_ref(op);
		if (r)
			json_object_set_new(r, "size", json_integer((json_int_t)op->size));
		break;
	case AGENT_MSG_VDISK_ATTACH:
		*cmd = "vdisk_attach";
		r = vdisk_ref(op);
		break;
	case AGENT_MSG_VDISK_DETACH:
		*cmd = "vdisk_detach";
		r = vdisk_ref(op);
		break;
	case AGENT_MSG_VDISK_TRANSFER:
		*cmd = "vdisk_transfer";
		r = vdisk_ref(op);
		if (r)
			json_object_set_new(r, "to", json_string(op->to_host));
		break;
	case AGENT_MSG_VDISK_DELETE:
		*cmd = "vdisk_delete";
		r = vdisk_ref(op);
		break;
	case AGENT_MSG_VDISK_CLONE:
		*cmd = "vdisk_clone";
		r = vdisk_ref(op);
		if (r)
			json_object_set_new(r, "name", json_string(op->name));
		break;
	case AGENT_MSG_POOL_ADD:
		*cmd = "pool_add";
		r = json_pack("{s:s, s:s}", "name", m->u.pool.name, "path", m->u.pool.path);
		break;
	case AGENT_MSG_POOL_REMOVE:
		*cmd = "pool_remove";
		r = json_pack("{s:s}", "name", m->u.pool.name);
		break;
	default:
		/* VDISK_INFO, VDISK_LIST_END, VDISK_DELETED go the other way. */
		return AGENT_E_UNEXPECTED;
	}
	if (!r)
		return AGENT_E_INTERNAL;
	*req = r;
	return AGENT_E_NONE;
}

enum agent_err agent_catalog_code(const char *code)
{
	static const struct {
		const char *name;
		enum agent_err code;
	} map[] = {
		{"no_quorum", AGENT_E_NO_QUORUM}, {"stale_epoch", AGENT_E_STALE_EPOCH},
		{"not_owner", AGENT_E_FORBIDDEN}, {"forbidden", AGENT_E_FORBIDDEN},
		{"busy", AGENT_E_BUSY},		  {"not_found", AGENT_E_NOT_FOUND},
		{"exists", AGENT_E_EXISTS},	  {"invalid", AGENT_E_INVALID},
		{"no_space", AGENT_E_NO_SPACE},	  {"in_use", AGENT_E_IN_USE},
		{"fenced", AGENT_E_FENCED},
	};

	for (size_t i = 0; code && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(code, map[i].name))
			return map[i].code;
	return AGENT_E_INTERNAL;
}

static bool copy_str(char *dst, size_t cap, json_t *v, bool required)
{
	const char *s = json_string_value(v);

	if (!s) {
		dst[0] = '\0';
		return !required && (!v || json_is_null(v));
	}
	return (size_t)snprintf(dst, cap, "%s", s) < cap;
}

static bool get_uint(json_t *o, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static uint8_t state_of(const char *name)
{
	for (unsigned s = CATALOG_VDISK_CREATING; s <= CATALOG_VDISK_MISSING; s++)
		if (name && !strcmp(name, catalog_vdisk_state_name(s)))
			return (uint8_t)s;
	return 0;
}

/* The catalog's JSON of a disk (coord_catalog.c, vdisk_json) as VDISK_INFO. */
static bool info_of(json_t *v, const char *host_name, struct agent_vdisk_info *i)
{
	json_t *hosts = json_object_get(v, "hosts"), *h;
	uint64_t lun;
	size_t k;

	memset(i, 0, sizeof(*i));
	if (!json_is_object(v) || !copy_str(i->id, sizeof(i->id), json_object_get(v, "id"), true) ||
	    !copy_str(i->name, sizeof(i->name), json_object_get(v, "name"), true) ||
	    !copy_str(i->pool, sizeof(i->pool), json_object_get(v, "pool"), true) ||
	    !copy_str(i->target_iqn, sizeof(i->target_iqn), json_object_get(v, "target"), true) ||
	    !copy_str(i->owner, sizeof(i->owner), json_object_get(v, "owner"), false) ||
	    !copy_str(i->vm, sizeof(i->vm), json_object_get(v, "vm"), false) ||
	    !get_uint(v, "size", &i->size) || !get_uint(v, "epoch", &i->epoch) ||
	    !get_uint(v, "lun", &lun) || lun > UINT32_MAX)
		return false;
	i->lun = (uint32_t)lun;
	i->state = state_of(json_string_value(json_object_get(v, "state")));
	json_array_foreach(hosts, k, h) if (json_is_string(h) && host_name &&
					    !strcmp(json_string_value(h), host_name)) i->attached =
		1;
	return i->state != 0;
}

/* Does the encoder take m? What it refuses must not be sent half-way through an answer. */
static bool encodes(struct agent_msg *m)
{
	static uint8_t scratch[AGENT_PROTO_MAX_FRAME];
	size_t len;

	m->version = AGENT_PROTO_VERSION_MAX;
	return agent_proto_encode(m, scratch, sizeof(scratch), &len) == 0;
}

/* Give m to emit if the encoder takes it; else an ERROR INTERNAL in its place, so that the
 * agent always gets an answer it can read. */
static void emit_checked(struct agent_msg *m, uint8_t req_type, agent_catalog_emit_fn emit,
			 void *ctx)
{
	if (!encodes(m))
		agent_proto_make_error(m, m->request_id, AGENT_E_INTERNAL, req_type,
				       "the box's answer does not fit the agent protocol");
	emit(ctx, m);
}

static void emit_error(uint8_t req_type, uint32_t req_id, enum agent_err code, const char *text,
		       agent_catalog_emit_fn emit, void *ctx)
{
	struct agent_msg m;

	agent_proto_make_error(&m, req_id, code, req_type, text);
	emit(ctx, &m);
}

/* A disk's id, when it is one the protocol can carry (a start_after must be). */
static const char *list_id(json_t *v)
{
	const char *id = json_string_value(json_object_get(v, "id"));
	size_t n = id ? strlen(id) : 0;

	if (n == 0 || n > AGENT_VDISK_ID_MAX)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (id[i] <= 0x20 || id[i] >= 0x7f)
			return NULL;
	return id;
}

static int by_id(const void *a, const void *b)
{
	return strcmp(list_id(*(json_t *const *)a), list_id(*(json_t *const *)b));
}

/* One page of the list (agent_catalog.h): the disks after start_after in id order. */
static unsigned list_page(uint32_t req_id, const struct agent_vdisk_list *q, const char *host_name,
			  json_t *list, agent_catalog_emit_fn emit, void *ctx)
{
	uint32_t limit =
		q && q->limit && q->limit < AGENT_LIST_PAGE_MAX ? q->limit : AGENT_LIST_PAGE_MAX;
	const char *after = q && q->start_after[0] ? q->start_after : NULL;
	json_t **page, *v;
	struct agent_msg m;
	size_t k, n = 0, i;
	unsigned sent = 0;

	page = calloc(json_array_size(list) + 1, sizeof(*page));
	if (!page) {
		emit_error(AGENT_MSG_VDISK_LIST, req_id, AGENT_E_INTERNAL, "out of memory", emit,
			   ctx);
		return 1;
	}
	json_array_foreach(list, k, v)
	{
		const char *id = list_id(v);

		if (id && (!after || strcmp(id, after) > 0))
			page[n++] = v;
	}
	qsort(page, n, sizeof(*page), by_id);
	for (i = 0; i < n && i < limit; i++) {
		memset(&m, 0, sizeof(m));
		m.type = AGENT_MSG_VDISK_INFO;
		m.request_id = req_id;
		/* A disk the protocol cannot carry is left out, and counted out: VDISK_LIST_END
		 * says how many came. */
		if (!info_of(page[i], host_name, &m.u.vd_info) || !encodes(&m))
			continue;
		emit(ctx, &m);
		sent++;
	}
	memset(&m, 0, sizeof(m));
	m.type = AGENT_MSG_VDISK_LIST_END;
	m.request_id = req_id;
	m.u.vd_end.count = sent;
	if (i < n) {
		/* The last disk of this page, carried or not: the next page starts after it. */
		m.u.vd_end.more = 1;
		snprintf(m.u.vd_end.start_after, sizeof(m.u.vd_end.start_after), "%s",
			 list_id(page[i - 1]));
	}
	free(page);
	emit_checked(&m, AGENT_MSG_VDISK_LIST, emit, ctx);
	return sent + 1;
}

unsigned agent_catalog_reply(uint8_t req_type, uint32_t req_id,
			     const struct agent_vdisk_list *list_req, const char *host_name,
			     json_t *r, agent_catalog_emit_fn emit, void *ctx)
{
	json_t *e = json_object_get(r, "error");
	struct agent_msg m;

	if (!json_is_object(r)) {
		emit_error(req_type, req_id, AGENT_E_INTERNAL, "no answer from the catalog", emit,
			   ctx);
		return 1;
	}
	if (e) {
		emit_error(req_type, req_id,
			   agent_catalog_code(json_string_value(json_object_get(r, "code"))),
			   json_is_string(e) ? json_string_value(e) : "refused", emit, ctx);
		return 1;
	}
	memset(&m, 0, sizeof(m));
	m.request_id = req_id;
	switch (req_type) {
	case AGENT_MSG_VDISK_LIST:
		return list_page(req_id, list_req, host_name, json_object_get(r, "vdisks"), emit,
				 ctx);
	case AGENT_MSG_VDISK_DELETE:
		m.type = AGENT_MSG_VDISK_DELETED;
		if (!copy_str(m.u.vd_op.id, sizeof(m.u.vd_op.id), json_object_get(r, "deleted"),
			      true))
			break;
		emit_checked(&m, req_type, emit, ctx);
		return 1;
	default:
		m.type = AGENT_MSG_VDISK_INFO;
		if (!info_of(json_object_get(r, "vdisk"), host_name, &m.u.vd_info))
			break;
		emit_checked(&m, req_type, emit, ctx);
		return 1;
	}
	emit_error(req_type, req_id, AGENT_E_INTERNAL, "the catalog's answer lacks the disk", emit,
		   ctx);
	return 1;
}
