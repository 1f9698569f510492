/* The agent protocol's wire format: the one place that encodes and decodes the messages between
 * holdfast-agent and the box's coord plane (docs/agent-protocol.md). A frame is a fixed 16-byte
 * header and a payload of typed TLV fields; the decoder reads every byte through lib/cursor.h
 * and checks every length, count and range, the encoder writes into a bounded buffer and refuses
 * to write what the decoder would refuse. No sockets, no TLS, no state: the session code around
 * it keeps the negotiated version and matches replies to request ids. */
#ifndef HOLDFAST_CSV_COORD_AGENT_PROTO_H
#define HOLDFAST_CSV_COORD_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Frame header: magic "HFAG", version, type, flags, request id, payload length (big endian). */
#define AGENT_PROTO_MAGIC	0x48464147u
#define AGENT_PROTO_HDR_LEN	16
#define AGENT_PROTO_MAX_PAYLOAD (64 * 1024)
#define AGENT_PROTO_MAX_FRAME	(AGENT_PROTO_HDR_LEN + AGENT_PROTO_MAX_PAYLOAD)

/* The versions this build speaks. HELLO, HELLO_ACK and ERROR keep their layout in every version,
 * so they are decoded whatever version their header carries. */
#define AGENT_PROTO_VERSION_MIN 1
#define AGENT_PROTO_VERSION_MAX 1

/* Capability bits, negotiated at HELLO (the AND of both sides). Unknown bits are ignored. */
#define AGENT_CAP_LEASE	    (1ull << 0) /* heartbeats, leases, FENCED, REJOIN */
#define AGENT_CAP_WATCHDOG  (1ull << 1) /* the agent can arm the Linux watchdog as its fence */
#define AGENT_CAP_CATALOG   (1ull << 2) /* shared-volume catalog messages 0x40-0x5f */
#define AGENT_CAP_MIGRATION (1ull << 3) /* reserved: migration messages 0x60-0x7f */

/* Field limits. */
#define AGENT_SOFTWARE_MAX  64
#define AGENT_TOKEN_ID_MAX  64
#define AGENT_SECRET_MIN    16
#define AGENT_SECRET_MAX    64
#define AGENT_HOST_NAME_MAX 253 /* RFC 1035 2.3.4: a full domain name */
#define AGENT_IQN_MAX	    223 /* RFC 7143 4.2.7.1: iSCSI names are at most 223 bytes */
#define AGENT_MAX_IQNS	    8
#define AGENT_PEM_MAX	    8192
#define AGENT_TEXT_MAX	    256
#define AGENT_VDISK_ID_MAX  36	   /* CATALOG_ID_LEN: a UUID in text */
#define AGENT_CAT_NAME_MAX  63	   /* CATALOG_NAME_MAX: pool, disk and host names */
#define AGENT_VM_MAX	    127	   /* CATALOG_VM_MAX */
#define AGENT_PATH_MAX	    1023   /* a pool's folder */
#define AGENT_LUN_MAX	    16383  /* sam5r21 4.7.7: flat space addressing */
#define AGENT_SKEW_PPM_MAX  999999 /* a clock rate error must stay below 100% */
/* A VDISK_LIST page: at most this many VDISK_INFO answer one request, whatever its limit. A
 * disk's frame is a few hundred bytes, so a page stays well under the box's per-connection
 * output limit (1 MiB). */
#define AGENT_LIST_PAGE_MAX 1000

enum agent_msg_type {
	AGENT_MSG_HELLO = 0x01,
	AGENT_MSG_HELLO_ACK = 0x02,
	AGENT_MSG_ERROR = 0x03,
	AGENT_MSG_JOIN_REQUEST = 0x10,
	AGENT_MSG_JOIN_RESPONSE = 0x11,
	AGENT_MSG_HEARTBEAT = 0x20,
	AGENT_MSG_HEARTBEAT_ACK = 0x21,
	AGENT_MSG_FENCED = 0x22,
	AGENT_MSG_REJOIN = 0x23,
	AGENT_MSG_REJOIN_ACK = 0x24,
	/* Reserved ranges (docs/agent-protocol.md, "Message types"). */
	AGENT_MSG_LEASE_RESERVED_FIRST = 0x25,
	AGENT_MSG_LEASE_RESERVED_LAST = 0x3f,
	/* The shared-volume catalog (AGENT_CAP_CATALOG), acting as the certificate's host. */
	AGENT_MSG_CATALOG_FIRST = 0x40,
	AGENT_MSG_VDISK_LIST = 0x40,	 /* agent -> box */
	AGENT_MSG_VDISK_INFO = 0x41,	 /* box -> agent: one disk (list entry or result) */
	AGENT_MSG_VDISK_LIST_END = 0x42, /* box -> agent: the last answer to a VDISK_LIST */
	AGENT_MSG_VDISK_CREATE = 0x43,
	AGENT_MSG_VDISK_EXTEND = 0x44,
	AGENT_MSG_VDISK_ATTACH = 0x45,
	AGENT_MSG_VDISK_DETACH = 0x46,
	AGENT_MSG_VDISK_TRANSFER = 0x47,
	AGENT_MSG_VDISK_DELETE = 0x48,
	AGENT_MSG_VDISK_DELETED = 0x49, /* box -> agent: the answer to a VDISK_DELETE */
	AGENT_MSG_VDISK_CLONE = 0x4a,	/* refused (FORBIDDEN) by this box: the admin's */
	AGENT_MSG_POOL_ADD = 0x50,	/* refused (FORBIDDEN) by this box: the admin's */
	AGENT_MSG_POOL_REMOVE = 0x51,	/* refused (FORBIDDEN) by this box: the admin's */
	AGENT_MSG_CATALOG_LAST = 0x5f,
	AGENT_MSG_MIGRATION_FIRST = 0x60,
	AGENT_MSG_MIGRATION_LAST = 0x7f,
};

/* Error codes, carried by ERROR (and FENCED's reason). One table gives each its text. */
enum agent_err {
	AGENT_E_NONE = 0,
	/* The frame. */
	AGENT_E_MALFORMED = 1,	   /* bad magic, truncated field, bad TLV, duplicate field */
	AGENT_E_UNKNOWN_TYPE = 2,  /* a message type this side does not implement */
	AGENT_E_VERSION = 3,	   /* no common version, or a frame of an unsupported version */
	AGENT_E_TOO_BIG = 4,	   /* payload above 64 KiB */
	AGENT_E_MISSING_FIELD = 5, /* a required field is absent */
	AGENT_E_BAD_FIELD = 6, /* a field's length, count, characters or value is out of range */
	AGENT_E_UNKNOWN_CRITICAL = 7, /* an unknown field marked critical */
	AGENT_E_UNEXPECTED = 8,	      /* a valid message at the wrong time (e.g. before HELLO) */
	AGENT_E_CAPABILITY = 9,	      /* the message needs a capability that was not negotiated */
	/* Enrolment. */
	AGENT_E_TOKEN_INVALID = 16, /* unknown or forged join token */
	AGENT_E_TOKEN_EXPIRED = 17,
	AGENT_E_TOKEN_USED = 18,
	AGENT_E_CSR_INVALID = 19,
	AGENT_E_NOT_ENROLLED = 20, /* the client certificate names no known host */
	/* Leases. */
	AGENT_E_STALE_EPOCH = 32,
	AGENT_E_STALE_SEQ = 33,
	AGENT_E_FENCED = 34, /* the host is fenced: stop, then REJOIN */
	AGENT_E_UNKNOWN_HOST = 35,
	AGENT_E_NO_QUORUM = 36,
	AGENT_E_NOT_FENCED = 37,    /* REJOIN from a host that is not fenced */
	AGENT_E_FENCE_PENDING = 38, /* REJOIN while the target is still fencing the host */
	AGENT_E_LEASE_EXPIRED = 39, /* FENCED reason: the lease ran out */
	AGENT_E_ADMIN_REMOVED = 40, /* FENCED reason: the admin removed or fenced the host */
	/* The box. */
	AGENT_E_INTERNAL = 48,
	AGENT_E_BUSY = 49,
	/* The catalog. */
	AGENT_E_FORBIDDEN = 64, /* the host may not do this (not the owner, admin only) */
	AGENT_E_NOT_FOUND = 65, /* no such disk, pool or host */
	AGENT_E_EXISTS = 66,	/* the name is taken */
	AGENT_E_INVALID = 67,	/* a value the catalog refuses (a smaller size, a bad name) */
	AGENT_E_NO_SPACE = 68,	/* no space or LUN number left */
	AGENT_E_IN_USE = 69,	/* another host is attached to the disk */
};

const char *agent_proto_strerror(unsigned code);
const char *agent_proto_type_name(unsigned type);

/* A PEM document borrowed from the decoded frame (not NUL-terminated; use len) or, when
 * encoding, from the caller. */
struct agent_blob {
	const uint8_t *p;
	size_t len;
};

enum agent_role { AGENT_ROLE_AGENT = 1, AGENT_ROLE_BOX = 2 };

struct agent_hello {
	uint8_t version_min, version_max;
	uint64_t caps;
	uint8_t role;			       /* enum agent_role */
	char software[AGENT_SOFTWARE_MAX + 1]; /* optional, "" when absent */
};

/* The box's lease timing (docs/agent-protocol.md, "Lease timing"), announced in HELLO_ACK and
 * JOIN_RESPONSE. Optional on the wire: all zero when the box did not send it (an older box).
 * The decoder only checks that each value is >= 1; whether the agent can live with them is the
 * agent's decision (agent/agent_timing.h). */
struct agent_lease_timing {
	uint64_t heartbeat_ns;	   /* H */
	uint16_t miss;		   /* M */
	uint64_t lease_timeout_ns; /* L: the box declares a host lost L after its last heartbeat */
	uint32_t skew_ppm;	   /* rho: the clock rate error the box's derivation assumes */
};

struct agent_hello_ack {
	uint8_t version_min, version_max; /* the box's range */
	uint64_t caps;			  /* the box's capabilities */
	uint8_t version;		  /* the chosen version: the highest common one */
	uint64_t agreed_caps;		  /* caps of both sides ANDed */
	char software[AGENT_SOFTWARE_MAX + 1];
	struct agent_lease_timing timing; /* optional */
};

struct agent_error {
	uint16_t code;	  /* enum agent_err */
	uint8_t ref_type; /* the message type refused, 0 when none */
	char text[AGENT_TEXT_MAX + 1];
};

struct agent_join_request {
	char token_id[AGENT_TOKEN_ID_MAX + 1];
	uint8_t secret[AGENT_SECRET_MAX];
	size_t secret_len;
	char host_name[AGENT_HOST_NAME_MAX + 1];
	char iqn[AGENT_MAX_IQNS][AGENT_IQN_MAX + 1];
	unsigned n_iqn;
	struct agent_blob csr_pem;
};

struct agent_join_response {
	uint32_t host_id;
	uint64_t epoch;
	struct agent_blob cert_pem;
	struct agent_blob ca_pem;
	struct agent_lease_timing timing; /* optional */
	uint16_t agent_port;		  /* optional, 0: not sent; the box's agent port */
};

struct agent_heartbeat {
	uint32_t host_id;
	uint64_t epoch;
	uint64_t seq;
	uint64_t send_ns;  /* the agent's monotonic clock when it sent this heartbeat */
	uint64_t lease_ns; /* how long the agent believes its lease still runs, from send_ns */
};

struct agent_heartbeat_ack {
	uint32_t host_id;
	uint64_t epoch;
	uint64_t seq;		 /* the heartbeat this answers */
	uint64_t lease_until_ns; /* box clock */
	uint64_t box_time_ns;	 /* box clock when the ACK was made */
	uint8_t quorate;	 /* 0 or 1 */
	uint8_t fenced;		 /* 0 or 1: stop now and REJOIN */
};

struct agent_fenced {
	uint32_t host_id;
	uint64_t epoch;	 /* the epoch that was fenced */
	uint16_t reason; /* enum agent_err */
	char text[AGENT_TEXT_MAX + 1];
};

struct agent_rejoin {
	uint32_t host_id;
	uint64_t epoch;	    /* the fenced epoch */
	uint64_t new_epoch; /* epoch + 1 */
};

struct agent_rejoin_ack {
	uint32_t host_id;
	uint64_t epoch; /* granted */
};

/* Catalog messages (docs/agent-protocol.md, "Catalog"). The requesting host is the one the
 * connection's certificate names, never a field. */
struct agent_vdisk_list {
	char pool[AGENT_CAT_NAME_MAX + 1];	  /* optional filter, "" for every pool */
	char start_after[AGENT_VDISK_ID_MAX + 1]; /* optional: the page starts after this id */
	uint32_t limit; /* optional, 0: not sent; at most this many disks (box: <= page max) */
};

struct agent_vdisk_info {
	char id[AGENT_VDISK_ID_MAX + 1];
	char name[AGENT_CAT_NAME_MAX + 1];
	char pool[AGENT_CAT_NAME_MAX + 1];
	uint64_t size; /* bytes */
	char target_iqn[AGENT_IQN_MAX + 1];
	uint32_t lun;
	uint64_t epoch;			    /* the disk's epoch */
	uint8_t state;			    /* enum catalog_vdisk_state: 1 creating .. 5 missing */
	uint8_t attached;		    /* 0 or 1: the requesting host is attached */
	char owner[AGENT_CAT_NAME_MAX + 1]; /* "" when nobody owns it */
	char vm[AGENT_VM_MAX + 1];	    /* "" when none */
};

struct agent_vdisk_list_end {
	uint32_t count; /* VDISK_INFO messages sent before this one */
	uint8_t more;	/* 1: more disks follow; ask again with start_after (sent critical) */
	char start_after[AGENT_VDISK_ID_MAX + 1]; /* with more: where the next page starts */
};

struct agent_vdisk_create {
	char pool[AGENT_CAT_NAME_MAX + 1];
	char name[AGENT_CAT_NAME_MAX + 1];
	uint64_t size;		   /* bytes */
	char vm[AGENT_VM_MAX + 1]; /* optional */
};

/* EXTEND (size), ATTACH, DETACH, TRANSFER (to_host), DELETE, DELETED (id only), CLONE (name). */
struct agent_vdisk_op {
	char id[AGENT_VDISK_ID_MAX + 1];
	uint64_t epoch; /* the disk's epoch the request expects */
	uint64_t size;
	char to_host[AGENT_CAT_NAME_MAX + 1];
	char name[AGENT_CAT_NAME_MAX + 1];
};

struct agent_pool_op {
	char name[AGENT_CAT_NAME_MAX + 1];
	char path[AGENT_PATH_MAX + 1]; /* POOL_ADD */
};

struct agent_msg {
	uint8_t version;
	uint8_t type;	/* enum agent_msg_type */
	uint16_t flags; /* reserved: sent as 0, ignored on receipt */
	uint32_t request_id;
	union {
		struct agent_hello hello;
		struct agent_hello_ack hello_ack;
		struct agent_error error;
		struct agent_join_request join_req;
		struct agent_join_response join_resp;
		struct agent_heartbeat hb;
		struct agent_heartbeat_ack hb_ack;
		struct agent_fenced fenced;
		struct agent_rejoin rejoin;
		struct agent_rejoin_ack rejoin_ack;
		struct agent_vdisk_list vd_list;
		struct agent_vdisk_info vd_info;
		struct agent_vdisk_list_end vd_end;
		struct agent_vdisk_create vd_create;
		struct agent_vdisk_op vd_op; /* EXTEND .. DELETE, DELETED, CLONE */
		struct agent_pool_op pool;   /* POOL_ADD, POOL_REMOVE */
	} u;
};

/* Stream framing: how long the frame starting at buf is. 0 and *frame_len once the header is
 * complete; -EAGAIN with fewer than AGENT_PROTO_HDR_LEN bytes; -EBADMSG on a bad magic and
 * -EMSGSIZE on a payload above the limit, after which the stream cannot be resynchronized: reply
 * ERROR (request id 0) and close. */
int agent_proto_frame_len(const uint8_t *buf, size_t len, size_t *frame_len);

/* Decode exactly one frame of len bytes. Returns 0, or a negative errno with *err set to the
 * code to reply with in an ERROR:
 *	-EBADMSG	  AGENT_E_MALFORMED, AGENT_E_MISSING_FIELD, AGENT_E_BAD_FIELD,
 *			  AGENT_E_UNKNOWN_CRITICAL
 *	-EMSGSIZE	  AGENT_E_TOO_BIG
 *	-EPROTONOSUPPORT  AGENT_E_VERSION
 *	-EOPNOTSUPP	  AGENT_E_UNKNOWN_TYPE
 * Once the header has been read, m's version, type and request_id are set even on failure, so
 * the reply can name the request. Blobs in m point into buf. */
int agent_proto_decode(const uint8_t *buf, size_t len, struct agent_msg *m, enum agent_err *err);

/* Encode m into buf (cap bytes) and give the frame length. -EINVAL when a field breaks a limit
 * the decoder enforces or the type is unknown; -EMSGSIZE when buf is too small. */
int agent_proto_encode(const struct agent_msg *m, uint8_t *buf, size_t cap, size_t *len);

/* Is type a catalog message (it needs AGENT_CAP_CATALOG)? */
bool agent_proto_is_catalog(unsigned type);

/* Fill m as an ERROR answering request_id (text may be NULL; it is cut at AGENT_TEXT_MAX). */
void agent_proto_make_error(struct agent_msg *m, uint32_t request_id, enum agent_err code,
			    uint8_t ref_type, const char *text);

/* Negotiation at HELLO: the highest version in both ranges and the AND of the capabilities.
 * -EPROTONOSUPPORT when the ranges do not meet (reply AGENT_E_VERSION). */
int agent_proto_negotiate(uint8_t a_min, uint8_t a_max, uint64_t a_caps, uint8_t b_min,
			  uint8_t b_max, uint64_t b_caps, uint8_t *version, uint64_t *caps);

#endif
