/* The agent protocol's wire format (docs/agent-protocol.md). Each message type has a table of
 * its fields; one decoder and one encoder walk those tables, and both call the same check for a
 * field's value, so the encoder never writes a frame the decoder would refuse. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "csv-coord/agent_proto.h"
#include "lib/cursor.h"

/* agent-protocol.md, "Fields": tag numbers. Bit 15 of a tag on the wire marks the field
 * critical: a receiver that does not know it must refuse the message instead of skipping it. */
#define TAG_CRITICAL 0x8000u
#define TAG_MASK     0x7fffu

enum tag {
	T_VERSION_MIN = 0x0001,
	T_VERSION_MAX = 0x0002,
	T_CAPS = 0x0003,
	T_VERSION = 0x0004,
	T_AGREED_CAPS = 0x0005,
	T_SOFTWARE = 0x0006,
	T_ROLE = 0x0007,
	T_TOKEN_ID = 0x0010,
	T_TOKEN_SECRET = 0x0011,
	T_HOST_NAME = 0x0012,
	T_INITIATOR_IQN = 0x0013,
	T_CSR_PEM = 0x0014,
	T_CERT_PEM = 0x0015,
	T_CA_PEM = 0x0016,
	T_HOST_ID = 0x0020,
	T_EPOCH = 0x0021,
	T_SEQ = 0x0022,
	T_SEND_NS = 0x0023,
	T_LEASE_NS = 0x0024,
	T_LEASE_UNTIL_NS = 0x0025,
	T_BOX_TIME_NS = 0x0026,
	T_QUORATE = 0x0027,
	T_FENCED = 0x0028,
	T_NEW_EPOCH = 0x0029,
	T_REASON = 0x002a,
	T_HEARTBEAT_NS = 0x002b,
	T_MISS_THRESHOLD = 0x002c,
	T_LEASE_TIMEOUT_NS = 0x002d,
	T_SKEW_PPM = 0x002e,
	T_AGENT_PORT = 0x002f,
	T_ERROR_CODE = 0x0030,
	T_ERROR_TEXT = 0x0031,
	T_REF_TYPE = 0x0032,
	T_VDISK_ID = 0x0040,
	T_VDISK_NAME = 0x0041,
	T_POOL_NAME = 0x0042,
	T_SIZE = 0x0043,
	T_VDISK_EPOCH = 0x0044,
	T_TARGET_IQN = 0x0045,
	T_LUN = 0x0046,
	T_OWNER = 0x0047,
	T_VDISK_STATE = 0x0048,
	T_VM = 0x0049,
	T_ATTACHED = 0x004a,
	T_TO_HOST = 0x004b,
	T_COUNT = 0x004c,
	T_POOL_PATH = 0x004d,
	T_START_AFTER = 0x004e,
	T_LIMIT = 0x004f,
	T_MORE = 0x0050,
};

enum kind {
	K_U8,
	K_U16,
	K_U32,
	K_U64,
	K_NAME,	 /* printable ASCII without spaces, copied and NUL-terminated */
	K_TEXT,	 /* printable ASCII with spaces, copied and NUL-terminated */
	K_IQN,	 /* an iSCSI name; with F_REPEAT into an array, else like a name */
	K_BYTES, /* opaque bytes, copied, with a length */
	K_PEM,	 /* a PEM document, borrowed */
};

#define F_REQ	 0x1
#define F_REPEAT 0x2
/* Sent with the critical bit: a receiver that does not know the field must refuse the message.
 * An optional integer (no F_REQ) is absent when it is 0, so every optional one has min >= 1. */
#define F_CRIT 0x4

struct field {
	uint16_t tag;
	uint8_t kind;
	uint8_t flags;
	uint64_t min, max; /* the value for integers, the length for the others */
	size_t off;	   /* of the value in struct agent_msg */
	size_t aux;	   /* of the length (K_BYTES) or the count (F_REPEAT) */
	size_t cap;	   /* bytes of the destination, or of one element when repeated */
	unsigned max_count;
};

#define OFF(f)	offsetof(struct agent_msg, u.f)
#define SIZE(f) sizeof(((struct agent_msg *)0)->u.f)
#define INT(t, k, f, lo, hi)                                                                       \
	{                                                                                          \
		.tag = t, .kind = k, .flags = F_REQ, .min = lo, .max = hi, .off = OFF(f)           \
	}
#define OPT(t, k, f, lo, hi, fl)                                                                   \
	{                                                                                          \
		.tag = t, .kind = k, .flags = fl, .min = lo, .max = hi, .off = OFF(f)              \
	}
#define STR(t, k, f, lo, hi, fl)                                                                   \
	{                                                                                          \
		.tag = t, .kind = k, .flags = fl, .min = lo, .max = hi, .off = OFF(f),             \
		.cap = SIZE(f)                                                                     \
	}
#define PEM(t, f)                                                                                  \
	{                                                                                          \
		.tag = t, .kind = K_PEM, .flags = F_REQ, .min = 1, .max = AGENT_PEM_MAX,           \
		.off = OFF(f)                                                                      \
	}
#define U64MAX UINT64_MAX

/* agent-protocol.md, "Lease timing": optional, so an older agent skips them. Only >= 1 is
 * checked here; the agent decides whether it can keep a lease under them. */
#define TIMING(f)                                                                                  \
	OPT(T_HEARTBEAT_NS, K_U64, f.heartbeat_ns, 1, U64MAX, 0),                                  \
		OPT(T_MISS_THRESHOLD, K_U16, f.miss, 1, 0xffff, 0),                                \
		OPT(T_LEASE_TIMEOUT_NS, K_U64, f.lease_timeout_ns, 1, U64MAX, 0),                  \
		OPT(T_SKEW_PPM, K_U32, f.skew_ppm, 1, AGENT_SKEW_PPM_MAX, 0)

static const struct field f_hello[] = {
	INT(T_VERSION_MIN, K_U8, hello.version_min, 1, 255),
	INT(T_VERSION_MAX, K_U8, hello.version_max, 1, 255),
	INT(T_CAPS, K_U64, hello.caps, 0, U64MAX),
	INT(T_ROLE, K_U8, hello.role, AGENT_ROLE_AGENT, AGENT_ROLE_BOX),
	STR(T_SOFTWARE, K_TEXT, hello.software, 0, AGENT_SOFTWARE_MAX, 0),
};

static const struct field f_hello_ack[] = {
	INT(T_VERSION_MIN, K_U8, hello_ack.version_min, 1, 255),
	INT(T_VERSION_MAX, K_U8, hello_ack.version_max, 1, 255),
	INT(T_CAPS, K_U64, hello_ack.caps, 0, U64MAX),
	INT(T_VERSION, K_U8, hello_ack.version, 1, 255),
	INT(T_AGREED_CAPS, K_U64, hello_ack.agreed_caps, 0, U64MAX),
	STR(T_SOFTWARE, K_TEXT, hello_ack.software, 0, AGENT_SOFTWARE_MAX, 0),
	TIMING(hello_ack.timing),
};

static const struct field f_error[] = {
	INT(T_ERROR_CODE, K_U16, error.code, 1, 0xffff),
	INT(T_REF_TYPE, K_U8, error.ref_type, 0, 255),
	STR(T_ERROR_TEXT, K_TEXT, error.text, 0, AGENT_TEXT_MAX, 0),
};

static const struct field f_join_req[] = {
	STR(T_TOKEN_ID, K_NAME, join_req.token_id, 1, AGENT_TOKEN_ID_MAX, F_REQ),
	{.tag = T_TOKEN_SECRET,
	 .kind = K_BYTES,
	 .flags = F_REQ,
	 .min = AGENT_SECRET_MIN,
	 .max = AGENT_SECRET_MAX,
	 .off = OFF(join_req.secret),
	 .aux = OFF(join_req.secret_len),
	 .cap = SIZE(join_req.secret)},
	STR(T_HOST_NAME, K_NAME, join_req.host_name, 1, AGENT_HOST_NAME_MAX, F_REQ),
	{.tag = T_INITIATOR_IQN,
	 .kind = K_IQN,
	 .flags = F_REQ | F_REPEAT,
	 .min = 5,
	 .max = AGENT_IQN_MAX,
	 .off = OFF(join_req.iqn),
	 .aux = OFF(join_req.n_iqn),
	 .cap = SIZE(join_req.iqn[0]),
	 .max_count = AGENT_MAX_IQNS},
	PEM(T_CSR_PEM, join_req.csr_pem),
};

static const struct field f_join_resp[] = {
	INT(T_HOST_ID, K_U32, join_resp.host_id, 1, UINT32_MAX),
	INT(T_EPOCH, K_U64, join_resp.epoch, 1, U64MAX),
	PEM(T_CERT_PEM, join_resp.cert_pem),
	PEM(T_CA_PEM, join_resp.ca_pem),
	TIMING(join_resp.timing),
	OPT(T_AGENT_PORT, K_U16, join_resp.agent_port, 1, 0xffff, 0),
};

static const struct field f_hb[] = {
	INT(T_HOST_ID, K_U32, hb.host_id, 1, UINT32_MAX),
	INT(T_EPOCH, K_U64, hb.epoch, 1, U64MAX),
	INT(T_SEQ, K_U64, hb.seq, 1, U64MAX),
	INT(T_SEND_NS, K_U64, hb.send_ns, 0, U64MAX),
	INT(T_LEASE_NS, K_U64, hb.lease_ns, 0, U64MAX),
};

static const struct field f_hb_ack[] = {
	INT(T_HOST_ID, K_U32, hb_ack.host_id, 1, UINT32_MAX),
	INT(T_EPOCH, K_U64, hb_ack.epoch, 1, U64MAX),
	INT(T_SEQ, K_U64, hb_ack.seq, 1, U64MAX),
	INT(T_LEASE_UNTIL_NS, K_U64, hb_ack.lease_until_ns, 0, U64MAX),
	INT(T_BOX_TIME_NS, K_U64, hb_ack.box_time_ns, 0, U64MAX),
	INT(T_QUORATE, K_U8, hb_ack.quorate, 0, 1),
	INT(T_FENCED, K_U8, hb_ack.fenced, 0, 1),
};

static const struct field f_fenced[] = {
	INT(T_HOST_ID, K_U32, fenced.host_id, 1, UINT32_MAX),
	INT(T_EPOCH, K_U64, fenced.epoch, 1, U64MAX),
	INT(T_REASON, K_U16, fenced.reason, 1, 0xffff),
	STR(T_ERROR_TEXT, K_TEXT, fenced.text, 0, AGENT_TEXT_MAX, 0),
};

static const struct field f_rejoin[] = {
	INT(T_HOST_ID, K_U32, rejoin.host_id, 1, UINT32_MAX),
	INT(T_EPOCH, K_U64, rejoin.epoch, 1, U64MAX),
	INT(T_NEW_EPOCH, K_U64, rejoin.new_epoch, 2, U64MAX),
};

static const struct field f_rejoin_ack[] = {
	INT(T_HOST_ID, K_U32, rejoin_ack.host_id, 1, UINT32_MAX),
	INT(T_EPOCH, K_U64, rejoin_ack.epoch, 1, U64MAX),
};

/* agent-protocol.md, "Catalog". */
static const struct field f_vd_list[] = {
	STR(T_POOL_NAME, K_NAME, vd_list.pool, 1, AGENT_CAT_NAME_MAX, 0),
	STR(T_START_AFTER, K_NAME, vd_list.start_after, 1, AGENT_VDISK_ID_MAX, 0),
	OPT(T_LIMIT, K_U32, vd_list.limit, 1, UINT32_MAX, 0),
};

static const struct field f_vd_info[] = {
	STR(T_VDISK_ID, K_NAME, vd_info.id, 1, AGENT_VDISK_ID_MAX, F_REQ),
	STR(T_VDISK_NAME, K_NAME, vd_info.name, 1, AGENT_CAT_NAME_MAX, F_REQ),
	STR(T_POOL_NAME, K_NAME, vd_info.pool, 1, AGENT_CAT_NAME_MAX, F_REQ),
	INT(T_SIZE, K_U64, vd_info.size, 1, U64MAX),
	STR(T_TARGET_IQN, K_IQN, vd_info.target_iqn, 5, AGENT_IQN_MAX, F_REQ),
	INT(T_LUN, K_U32, vd_info.lun, 0, AGENT_LUN_MAX),
	INT(T_VDISK_EPOCH, K_U64, vd_info.epoch, 1, U64MAX),
	INT(T_VDISK_STATE, K_U8, vd_info.state, 1, 255),
	INT(T_ATTACHED, K_U8, vd_info.attached, 0, 1),
	STR(T_OWNER, K_NAME, vd_info.owner, 1, AGENT_CAT_NAME_MAX, 0),
	STR(T_VM, K_TEXT, vd_info.vm, 1, AGENT_VM_MAX, 0),
};

/* more is critical: an agent that does not know it would take a first page for the list. */
static const struct field f_vd_end[] = {
	INT(T_COUNT, K_U32, vd_end.count, 0, UINT32_MAX),
	OPT(T_MORE, K_U8, vd_end.more, 1, 1, F_CRIT),
	STR(T_START_AFTER, K_NAME, vd_end.start_after, 1, AGENT_VDISK_ID_MAX, 0),
};

static const struct field f_vd_create[] = {
	STR(T_POOL_NAME, K_NAME, vd_create.pool, 1, AGENT_CAT_NAME_MAX, F_REQ),
	STR(T_VDISK_NAME, K_NAME, vd_create.name, 1, AGENT_CAT_NAME_MAX, F_REQ),
	INT(T_SIZE, K_U64, vd_create.size, 1, U64MAX),
	STR(T_VM, K_TEXT, vd_create.vm, 1, AGENT_VM_MAX, 0),
};

#define VD_ID	 STR(T_VDISK_ID, K_NAME, vd_op.id, 1, AGENT_VDISK_ID_MAX, F_REQ)
#define VD_EPOCH INT(T_VDISK_EPOCH, K_U64, vd_op.epoch, 1, U64MAX)

static const struct field f_vd_extend[] = {VD_ID, VD_EPOCH,
					   INT(T_SIZE, K_U64, vd_op.size, 1, U64MAX)};
static const struct field f_vd_id_epoch[] = {VD_ID, VD_EPOCH};
static const struct field f_vd_transfer[] = {
	VD_ID,
	VD_EPOCH,
	STR(T_TO_HOST, K_NAME, vd_op.to_host, 1, AGENT_CAT_NAME_MAX, F_REQ),
};
static const struct field f_vd_deleted[] = {VD_ID};
static const struct field f_vd_clone[] = {
	VD_ID,
	VD_EPOCH,
	STR(T_VDISK_NAME, K_NAME, vd_op.name, 1, AGENT_CAT_NAME_MAX, F_REQ),
};

static const struct field f_pool_add[] = {
	STR(T_POOL_NAME, K_NAME, pool.name, 1, AGENT_CAT_NAME_MAX, F_REQ),
	STR(T_POOL_PATH, K_TEXT, pool.path, 1, AGENT_PATH_MAX, F_REQ),
};
static const struct field f_pool_remove[] = {
	STR(T_POOL_NAME, K_NAME, pool.name, 1, AGENT_CAT_NAME_MAX, F_REQ),
};

struct schema {
	uint8_t type;
	const char *name;
	const struct field *f;
	unsigned n;
	/* agent-protocol.md, "Versions": these keep their layout in every version. */
	bool frozen;
};

#define SCHEMA(t, nm, tbl, fz)                                                                     \
	{                                                                                          \
		.type = t, .name = nm, .f = tbl, .n = sizeof(tbl) / sizeof(tbl[0]), .frozen = fz   \
	}

static const struct schema schemas[] = {
	SCHEMA(AGENT_MSG_HELLO, "HELLO", f_hello, true),
	SCHEMA(AGENT_MSG_HELLO_ACK, "HELLO_ACK", f_hello_ack, true),
	SCHEMA(AGENT_MSG_ERROR, "ERROR", f_error, true),
	SCHEMA(AGENT_MSG_JOIN_REQUEST, "JOIN_REQUEST", f_join_req, false),
	SCHEMA(AGENT_MSG_JOIN_RESPONSE, "JOIN_RESPONSE", f_join_resp, false),
	SCHEMA(AGENT_MSG_HEARTBEAT, "HEARTBEAT", f_hb, false),
	SCHEMA(AGENT_MSG_HEARTBEAT_ACK, "HEARTBEAT_ACK", f_hb_ack, false),
	SCHEMA(AGENT_MSG_FENCED, "FENCED", f_fenced, false),
	SCHEMA(AGENT_MSG_REJOIN, "REJOIN", f_rejoin, false),
	SCHEMA(AGENT_MSG_REJOIN_ACK, "REJOIN_ACK", f_rejoin_ack, false),
	SCHEMA(AGENT_MSG_VDISK_LIST, "VDISK_LIST", f_vd_list, false),
	SCHEMA(AGENT_MSG_VDISK_INFO, "VDISK_INFO", f_vd_info, false),
	SCHEMA(AGENT_MSG_VDISK_LIST_END, "VDISK_LIST_END", f_vd_end, false),
	SCHEMA(AGENT_MSG_VDISK_CREATE, "VDISK_CREATE", f_vd_create, false),
	SCHEMA(AGENT_MSG_VDISK_EXTEND, "VDISK_EXTEND", f_vd_extend, false),
	SCHEMA(AGENT_MSG_VDISK_ATTACH, "VDISK_ATTACH", f_vd_id_epoch, false),
	SCHEMA(AGENT_MSG_VDISK_DETACH, "VDISK_DETACH", f_vd_id_epoch, false),
	SCHEMA(AGENT_MSG_VDISK_TRANSFER, "VDISK_TRANSFER", f_vd_transfer, false),
	SCHEMA(AGENT_MSG_VDISK_DELETE, "VDISK_DELETE", f_vd_id_epoch, false),
	SCHEMA(AGENT_MSG_VDISK_DELETED, "VDISK_DELETED", f_vd_deleted, false),
	SCHEMA(AGENT_MSG_VDISK_CLONE, "VDISK_CLONE", f_vd_clone, false),
	SCHEMA(AGENT_MSG_POOL_ADD, "POOL_ADD", f_pool_add, false),
	SCHEMA(AGENT_MSG_POOL_REMOVE, "POOL_REMOVE", f_pool_remove, false),
};

/* A schema has at most 32 fields, one bit each in the decoder's "seen" mask. */
_Static_assert(sizeof(f_hb_ack) / sizeof(f_hb_ack[0]) <= 32, "seen mask");
_Static_assert(sizeof(f_vd_info) / sizeof(f_vd_info[0]) <= 32, "seen mask");

static const struct schema *find_schema(unsigned type)
{
	for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++)
		if (schemas[i].type == type)
			return &schemas[i];
	return NULL;
}

const char *agent_proto_type_name(unsigned type)
{
	const struct schema *s = find_schema(type);

	if (s)
		return s->name;
	if (type >= AGENT_MSG_CATALOG_FIRST && type <= AGENT_MSG_CATALOG_LAST)
		return "catalog (unknown)";
	if (type >= AGENT_MSG_MIGRATION_FIRST && type <= AGENT_MSG_MIGRATION_LAST)
		return "migration (reserved)";
	return "unknown";
}

bool agent_proto_is_catalog(unsigned type)
{
	return type >= AGENT_MSG_CATALOG_FIRST && type <= AGENT_MSG_CATALOG_LAST;
}

const char *agent_proto_strerror(unsigned code)
{
	switch (code) {
	case AGENT_E_NONE:
		return "no error";
	case AGENT_E_MALFORMED:
		return "malformed message";
	case AGENT_E_UNKNOWN_TYPE:
		return "unknown message type";
	case AGENT_E_VERSION:
		return "unsupported protocol version";
	case AGENT_E_TOO_BIG:
		return "message too big";
	case AGENT_E_MISSING_FIELD:
		return "required field missing";
	case AGENT_E_BAD_FIELD:
		return "field out of range";
	case AGENT_E_UNKNOWN_CRITICAL:
		return "unknown critical field";
	case AGENT_E_UNEXPECTED:
		return "message not expected now";
	case AGENT_E_CAPABILITY:
		return "capability not negotiated";
	case AGENT_E_TOKEN_INVALID:
		return "join token invalid";
	case AGENT_E_TOKEN_EXPIRED:
		return "join token expired";
	case AGENT_E_TOKEN_USED:
		return "join token already used";
	case AGENT_E_CSR_INVALID:
		return "certificate request invalid";
	case AGENT_E_NOT_ENROLLED:
		return "host not enrolled";
	case AGENT_E_STALE_EPOCH:
		return "stale epoch";
	case AGENT_E_STALE_SEQ:
		return "stale heartbeat sequence";
	case AGENT_E_FENCED:
		return "host fenced";
	case AGENT_E_UNKNOWN_HOST:
		return "unknown host";
	case AGENT_E_NO_QUORUM:
		return "cluster not quorate";
	case AGENT_E_NOT_FENCED:
		return "host not fenced";
	case AGENT_E_FENCE_PENDING:
		return "fence in progress";
	case AGENT_E_LEASE_EXPIRED:
		return "lease expired";
	case AGENT_E_ADMIN_REMOVED:
		return "removed by the administrator";
	case AGENT_E_INTERNAL:
		return "internal error";
	case AGENT_E_BUSY:
		return "busy";
	case AGENT_E_FORBIDDEN:
		return "forbidden for this host";
	case AGENT_E_NOT_FOUND:
		return "not found";
	case AGENT_E_EXISTS:
		return "already exists";
	case AGENT_E_INVALID:
		return "invalid value";
	case AGENT_E_NO_SPACE:
		return "no space left";
	case AGENT_E_IN_USE:
		return "in use by another host";
	default:
		return "unknown error";
	}
}

static unsigned int_width(enum kind k)
{
	switch (k) {
	case K_U8:
		return 1;
	case K_U16:
		return 2;
	case K_U32:
		return 4;
	case K_U64:
		return 8;
	default:
		return 0;
	}
}

static bool name_char(uint8_t ch)
{
	return ch > 0x20 && ch < 0x7f;
}

static bool text_char(uint8_t ch)
{
	return ch >= 0x20 && ch < 0x7f;
}

static bool pem_char(uint8_t ch)
{
	return text_char(ch) || ch == '\n' || ch == '\r' || ch == '\t';
}

/* The value of one field, as it is on the wire, against the field's rules. Shared by the
 * decoder and the encoder. *v is set for integers. */
static bool field_ok(const struct field *f, const uint8_t *p, size_t n, uint64_t *v)
{
	struct cursor c;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;

	switch (f->kind) {
	case K_U8:
	case K_U16:
	case K_U32:
	case K_U64:
		/* Integers have exactly their width: a longer or shorter one is a different field,
		 * which needs a new tag. */
		if (n != int_width(f->kind))
			return false;
		cur_init(&c, p, n);
		if (f->kind == K_U8 && cur_u8(&c, &u8) == 0)
			*v = u8;
		else if (f->kind == K_U16 && cur_be16(&c, &u16) == 0)
			*v = u16;
		else if (f->kind == K_U32 && cur_be32(&c, &u32) == 0)
			*v = u32;
		else if (f->kind == K_U64 && cur_be64(&c, v) == 0)
			;
		else
			return false;
		return *v >= f->min && *v <= f->max;
	case K_NAME:
	case K_IQN:
		if (n < f->min || n > f->max)
			return false;
		for (size_t i = 0; i < n; i++)
			if (!name_char(p[i]))
				return false;
		/* RFC 7143 4.2.7.1: the three iSCSI name formats. */
		if (f->kind == K_IQN && memcmp(p, "iqn.", 4) != 0 && memcmp(p, "eui.", 4) != 0 &&
		    memcmp(p, "naa.", 4) != 0)
			return false;
		return true;
	case K_TEXT:
		if (n < f->min || n > f->max)
			return false;
		for (size_t i = 0; i < n; i++)
			if (!text_char(p[i]))
				return false;
		return true;
	case K_BYTES:
		return n >= f->min && n <= f->max;
	case K_PEM:
		/* RFC 7468 2: a PEM document is ASCII and starts with its encapsulation boundary;
		 * X.509 parsing itself is for mbedTLS, over the borrowed bytes. */
		if (n < f->min || n > f->max || n < 11 || memcmp(p, "-----BEGIN ", 11) != 0)
			return false;
		for (size_t i = 0; i < n; i++)
			if (!pem_char(p[i]))
				return false;
		return true;
	default:
		return false;
	}
}

static void store_int(const struct field *f, struct agent_msg *m, uint64_t v)
{
	uint8_t *dst = (uint8_t *)m + f->off;
	uint8_t u8 = v;
	uint16_t u16 = v;
	uint32_t u32 = v;

	switch (f->kind) {
	case K_U8:
		memcpy(dst, &u8, 1);
		break;
	case K_U16:
		memcpy(dst, &u16, 2);
		break;
	case K_U32:
		memcpy(dst, &u32, 4);
		break;
	default:
		memcpy(dst, &v, 8);
		break;
	}
}

static uint64_t load_int(const struct field *f, const struct agent_msg *m)
{
	const uint8_t *src = (const uint8_t *)m + f->off;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	switch (f->kind) {
	case K_U8:
		memcpy(&u8, src, 1);
		return u8;
	case K_U16:
		memcpy(&u16, src, 2);
		return u16;
	case K_U32:
		memcpy(&u32, src, 4);
		return u32;
	default:
		memcpy(&u64, src, 8);
		return u64;
	}
}

/* Store a checked value into m. -EBADMSG when a repeated field is over its count. */
static int store(const struct field *f, struct agent_msg *m, const uint8_t *p, size_t n, uint64_t v)
{
	uint8_t *base = (uint8_t *)m;
	struct agent_blob blob;
	unsigned count;

	switch (f->kind) {
	case K_U8:
	case K_U16:
	case K_U32:
	case K_U64:
		store_int(f, m, v);
		return 0;
	case K_NAME:
	case K_TEXT:
		memcpy(base + f->off, p, n);
		base[f->off + n] = '\0';
		return 0;
	case K_IQN:
		if (!(f->flags & F_REPEAT)) {
			/* One IQN: stored like a name. */
			memcpy(base + f->off, p, n);
			base[f->off + n] = '\0';
			return 0;
		}
		memcpy(&count, base + f->aux, sizeof(count));
		if (count >= f->max_count)
			return -EBADMSG;
		memcpy(base + f->off + count * f->cap, p, n);
		base[f->off + count * f->cap + n] = '\0';
		count++;
		memcpy(base + f->aux, &count, sizeof(count));
		return 0;
	case K_BYTES:
		memcpy(base + f->off, p, n);
		memcpy(base + f->aux, &n, sizeof(n));
		return 0;
	case K_PEM:
		blob.p = p;
		blob.len = n;
		memcpy(base + f->off, &blob, sizeof(blob));
		return 0;
	default:
		return -EBADMSG;
	}
}

/* Checks across fields that the tables cannot state. */
static enum agent_err cross_check(const struct agent_msg *m)
{
	switch (m->type) {
	case AGENT_MSG_HELLO:
		if (m->u.hello.version_min > m->u.hello.version_max)
			return AGENT_E_BAD_FIELD;
		return AGENT_E_NONE;
	case AGENT_MSG_HELLO_ACK:
		if (m->u.hello_ack.version_min > m->u.hello_ack.version_max ||
		    m->u.hello_ack.version < m->u.hello_ack.version_min ||
		    m->u.hello_ack.version > m->u.hello_ack.version_max)
			return AGENT_E_BAD_FIELD;
		return AGENT_E_NONE;
	case AGENT_MSG_VDISK_LIST_END:
		/* The next page needs a place to start. */
		if (m->u.vd_end.more && !m->u.vd_end.start_after[0])
			return AGENT_E_MISSING_FIELD;
		return AGENT_E_NONE;
	default:
		return AGENT_E_NONE;
	}
}

int agent_proto_frame_len(const uint8_t *buf, size_t len, size_t *frame_len)
{
	struct cursor c;
	uint32_t magic, plen;

	if (len < AGENT_PROTO_HDR_LEN)
		return -EAGAIN;
	cur_init(&c, buf, len);
	if (cur_be32(&c, &magic) || magic != AGENT_PROTO_MAGIC)
		return -EBADMSG;
	if (cur_seek(&c, 12) || cur_be32(&c, &plen))
		return -EBADMSG;
	if (plen > AGENT_PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	*frame_len = AGENT_PROTO_HDR_LEN + (size_t)plen;
	return 0;
}

static int fail(enum agent_err *err, enum agent_err code, int rc)
{
	*err = code;
	return rc;
}

int agent_proto_decode(const uint8_t *buf, size_t len, struct agent_msg *m, enum agent_err *err)
{
	const struct schema *s;
	struct cursor c;
	uint32_t magic, plen, seen = 0;
	enum agent_err cross;

	memset(m, 0, sizeof(*m));
	*err = AGENT_E_NONE;
	cur_init(&c, buf, len);
	/* agent-protocol.md, "Framing". */
	if (cur_be32(&c, &magic) || magic != AGENT_PROTO_MAGIC)
		return fail(err, AGENT_E_MALFORMED, -EBADMSG);
	if (cur_u8(&c, &m->version) || cur_u8(&c, &m->type) || cur_be16(&c, &m->flags) ||
	    cur_be32(&c, &m->request_id) || cur_be32(&c, &plen))
		return fail(err, AGENT_E_MALFORMED, -EBADMSG);
	if (plen > AGENT_PROTO_MAX_PAYLOAD)
		return fail(err, AGENT_E_TOO_BIG, -EMSGSIZE);
	if (plen != cur_left(&c))
		return fail(err, AGENT_E_MALFORMED, -EBADMSG);
	if (m->version == 0)
		return fail(err, AGENT_E_VERSION, -EPROTONOSUPPORT);
	s = find_schema(m->type);
	if (!s)
		return fail(err, AGENT_E_UNKNOWN_TYPE, -EOPNOTSUPP);
	/* agent-protocol.md, "Versions": only HELLO, HELLO_ACK and ERROR are read in any version.
	 */
	if (!s->frozen &&
	    (m->version < AGENT_PROTO_VERSION_MIN || m->version > AGENT_PROTO_VERSION_MAX))
		return fail(err, AGENT_E_VERSION, -EPROTONOSUPPORT);

	while (cur_left(&c) > 0) {
		const struct field *f = NULL;
		const uint8_t *p;
		uint16_t tag, n;
		uint64_t v = 0;
		unsigned i;

		if (cur_be16(&c, &tag) || cur_be16(&c, &n) || cur_ptr(&c, n, &p))
			return fail(err, AGENT_E_MALFORMED, -EBADMSG);
		for (i = 0; i < s->n; i++) {
			if (s->f[i].tag == (tag & TAG_MASK)) {
				f = &s->f[i];
				break;
			}
		}
		/* agent-protocol.md, "Evolution": unknown fields are skipped unless critical. */
		if (!f) {
			if (tag & TAG_CRITICAL)
				return fail(err, AGENT_E_UNKNOWN_CRITICAL, -EBADMSG);
			continue;
		}
		if ((seen & 1u << i) && !(f->flags & F_REPEAT))
			return fail(err, AGENT_E_MALFORMED, -EBADMSG);
		seen |= 1u << i;
		if (!field_ok(f, p, n, &v) || store(f, m, p, n, v))
			return fail(err, AGENT_E_BAD_FIELD, -EBADMSG);
	}
	for (unsigned i = 0; i < s->n; i++)
		if ((s->f[i].flags & F_REQ) && !(seen & 1u << i))
			return fail(err, AGENT_E_MISSING_FIELD, -EBADMSG);
	cross = cross_check(m);
	if (cross != AGENT_E_NONE)
		return fail(err, cross, -EBADMSG);
	return 0;
}

/* One TLV into buf at *pos, after checking the value with the decoder's rules. */
static int put_field(const struct field *f, const uint8_t *p, size_t n, uint8_t *buf, size_t cap,
		     size_t *pos)
{
	uint64_t v;

	if (!field_ok(f, p, n, &v))
		return -EINVAL;
	if (cap - *pos < 4 + n || *pos - AGENT_PROTO_HDR_LEN + 4 + n > AGENT_PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	put_be16(buf + *pos, f->tag | (f->flags & F_CRIT ? TAG_CRITICAL : 0));
	put_be16(buf + *pos + 2, n);
	memcpy(buf + *pos + 4, p, n);
	*pos += 4 + n;
	return 0;
}

static int encode_field(const struct field *f, const struct agent_msg *m, uint8_t *buf, size_t cap,
			size_t *pos)
{
	const uint8_t *base = (const uint8_t *)m;
	struct agent_blob blob;
	uint8_t tmp[8];
	uint64_t v;
	unsigned count;
	size_t n;
	int r;

	switch (f->kind) {
	case K_U8:
	case K_U16:
	case K_U32:
	case K_U64:
		v = load_int(f, m);
		if (v == 0 && !(f->flags & F_REQ))
			return 0; /* an optional integer: 0 is "absent" */
		n = int_width(f->kind);
		for (size_t i = 0; i < n; i++)
			tmp[i] = v >> (8 * (n - 1 - i));
		return put_field(f, tmp, n, buf, cap, pos);
	case K_NAME:
	case K_TEXT:
	single:
		n = strnlen((const char *)base + f->off, f->cap);
		if (n == f->cap)
			return -EINVAL;
		if (n == 0 && !(f->flags & F_REQ))
			return 0;
		return put_field(f, base + f->off, n, buf, cap, pos);
	case K_IQN:
		if (!(f->flags & F_REPEAT))
			goto single;
		memcpy(&count, base + f->aux, sizeof(count));
		if (count > f->max_count || (count == 0 && (f->flags & F_REQ)))
			return -EINVAL;
		for (unsigned i = 0; i < count; i++) {
			const uint8_t *p = base + f->off + i * f->cap;

			n = strnlen((const char *)p, f->cap);
			if (n == f->cap)
				return -EINVAL;
			r = put_field(f, p, n, buf, cap, pos);
			if (r)
				return r;
		}
		return 0;
	case K_BYTES:
		memcpy(&n, base + f->aux, sizeof(n));
		if (n > f->cap)
			return -EINVAL;
		return put_field(f, base + f->off, n, buf, cap, pos);
	case K_PEM:
		memcpy(&blob, base + f->off, sizeof(blob));
		if (!blob.p)
			return -EINVAL;
		return put_field(f, blob.p, blob.len, buf, cap, pos);
	default:
		return -EINVAL;
	}
}

int agent_proto_encode(const struct agent_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
	const struct schema *s = find_schema(m->type);
	size_t pos = AGENT_PROTO_HDR_LEN;
	int r;

	if (!s || m->version == 0)
		return -EINVAL;
	if (!s->frozen &&
	    (m->version < AGENT_PROTO_VERSION_MIN || m->version > AGENT_PROTO_VERSION_MAX))
		return -EINVAL;
	if (cross_check(m) != AGENT_E_NONE)
		return -EINVAL;
	if (cap < AGENT_PROTO_HDR_LEN)
		return -EMSGSIZE;
	for (unsigned i = 0; i < s->n; i++) {
		r = encode_field(&s->f[i], m, buf, cap, &pos);
		if (r)
			return r;
	}
	put_be32(buf, AGENT_PROTO_MAGIC);
	buf[4] = m->version;
	buf[5] = m->type;
	/* agent-protocol.md, "Framing": no flag is defined yet; they are sent as zero. */
	put_be16(buf + 6, 0);
	put_be32(buf + 8, m->request_id);
	put_be32(buf + 12, (uint32_t)(pos - AGENT_PROTO_HDR_LEN));
	*len = pos;
	return 0;
}

void agent_proto_make_error(struct agent_msg *m, uint32_t request_id, enum agent_err code,
			    uint8_t ref_type, const char *text)
{
	size_t i;

	memset(m, 0, sizeof(*m));
	m->version = AGENT_PROTO_VERSION_MAX;
	m->type = AGENT_MSG_ERROR;
	m->request_id = request_id;
	m->u.error.code = code;
	m->u.error.ref_type = ref_type;
	/* The text goes to a peer's log: keep it printable so that it always encodes. */
	for (i = 0; text && text[i] && i < AGENT_TEXT_MAX; i++)
		m->u.error.text[i] = text_char((uint8_t)text[i]) ? text[i] : '?';
	m->u.error.text[i] = '\0';
}

int agent_proto_negotiate(uint8_t a_min, uint8_t a_max, uint64_t a_caps, uint8_t b_min,
			  uint8_t b_max, uint64_t b_caps, uint8_t *version, uint64_t *caps)
{
	uint8_t lo = a_min > b_min ? a_min : b_min;
	uint8_t hi = a_max < b_max ? a_max : b_max;

	if (a_min == 0 || b_min == 0 || a_min > a_max || b_min > b_max || lo > hi)
		return -EPROTONOSUPPORT;
	*version = hi;
	*caps = a_caps & b_caps;
	return 0;
}
