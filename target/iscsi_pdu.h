/* The iSCSI PDU wire format (RFC 7143 section 11): the one place that decodes a Basic Header
 * Segment into fields and encodes the target's PDUs. Nothing else in Holdfast reads or
 * writes BHS bytes. */
#ifndef HOLDFAST_TARGET_ISCSI_PDU_H
#define HOLDFAST_TARGET_ISCSI_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISCSI_BHS_LEN     48
#define ISCSI_DIGEST_LEN  4
#define ISCSI_RSVD_TAG    0xffffffffu
#define ISCSI_MAX_AHS_LEN (255 * 4)

/* RFC 7143 11.1.1 */
enum iscsi_opcode {
	ISCSI_OP_NOP_OUT = 0x00,
	ISCSI_OP_SCSI_CMD = 0x01,
	ISCSI_OP_TMF_REQ = 0x02,
	ISCSI_OP_LOGIN_REQ = 0x03,
	ISCSI_OP_TEXT_REQ = 0x04,
	ISCSI_OP_DATA_OUT = 0x05,
	ISCSI_OP_LOGOUT_REQ = 0x06,
	ISCSI_OP_SNACK_REQ = 0x10,
	ISCSI_OP_NOP_IN = 0x20,
	ISCSI_OP_SCSI_RSP = 0x21,
	ISCSI_OP_TMF_RSP = 0x22,
	ISCSI_OP_LOGIN_RSP = 0x23,
	ISCSI_OP_TEXT_RSP = 0x24,
	ISCSI_OP_DATA_IN = 0x25,
	ISCSI_OP_LOGOUT_RSP = 0x26,
	ISCSI_OP_R2T = 0x31,
	ISCSI_OP_ASYNC_MSG = 0x32,
	ISCSI_OP_REJECT = 0x3f,
};

/* RFC 7143 11.17.1: Reject reasons */
enum iscsi_reject_reason {
	ISCSI_REJECT_DIGEST_ERROR = 0x02,
	ISCSI_REJECT_SNACK_REJECT = 0x03,
	ISCSI_REJECT_PROTOCOL_ERROR = 0x04,
	ISCSI_REJECT_CMD_NOT_SUPPORTED = 0x05,
	ISCSI_REJECT_IMM_CMD_REJECT = 0x06,
	ISCSI_REJECT_TASK_IN_PROGRESS = 0x07,
	ISCSI_REJECT_INVALID_DATA_ACK = 0x08,
	ISCSI_REJECT_INVALID_PDU_FIELD = 0x09,
	ISCSI_REJECT_LONG_OP_REJECT = 0x0a,
	ISCSI_REJECT_DEPRECATED = 0x0b,
	ISCSI_REJECT_WAITING_FOR_LOGOUT = 0x0c,
};

/* RFC 7143 11.5.1: Task management functions */
enum iscsi_tmf_func {
	ISCSI_TMF_ABORT_TASK = 1,
	ISCSI_TMF_ABORT_TASK_SET = 2,
	ISCSI_TMF_CLEAR_ACA = 3,
	ISCSI_TMF_CLEAR_TASK_SET = 4,
	ISCSI_TMF_LUN_RESET = 5,
	ISCSI_TMF_TARGET_WARM_RESET = 6,
	ISCSI_TMF_TARGET_COLD_RESET = 7,
	ISCSI_TMF_TASK_REASSIGN = 8,
};

/* RFC 7143 11.6.1: Task management responses */
enum iscsi_tmf_response {
	ISCSI_TMF_RSP_COMPLETE = 0,
	ISCSI_TMF_RSP_NO_TASK = 1,
	ISCSI_TMF_RSP_NO_LUN = 2,
	ISCSI_TMF_RSP_TASK_ALLEGIANT = 3,
	ISCSI_TMF_RSP_NO_REASSIGN = 4,
	ISCSI_TMF_RSP_NOT_SUPPORTED = 5,
	ISCSI_TMF_RSP_AUTH_FAILED = 6,
	ISCSI_TMF_RSP_REJECTED = 255,
};

/* RFC 7143 11.4.1 / 11.4.3: SCSI Response "Response" field */
enum iscsi_cmd_response {
	ISCSI_RSP_COMPLETED = 0x00,
	ISCSI_RSP_TARGET_FAILURE = 0x01,
};

/* RFC 7143 11.14.1 logout reasons and 11.15.1 logout responses */
enum iscsi_logout_reason {
	ISCSI_LOGOUT_CLOSE_SESSION = 0,
	ISCSI_LOGOUT_CLOSE_CONNECTION = 1,
	ISCSI_LOGOUT_REMOVE_FOR_RECOVERY = 2,
};

enum iscsi_logout_response {
	ISCSI_LOGOUT_RSP_OK = 0,
	ISCSI_LOGOUT_RSP_CID_NOT_FOUND = 1,
	ISCSI_LOGOUT_RSP_RECOVERY_UNSUPPORTED = 2,
	ISCSI_LOGOUT_RSP_CLEANUP_FAILED = 3,
};

/* RFC 7143 11.13.5: login status classes and details */
enum iscsi_login_status {
	ISCSI_LOGIN_SUCCESS = 0x0000,
	ISCSI_LOGIN_REDIRECT_TEMP = 0x0101,
	ISCSI_LOGIN_REDIRECT_PERM = 0x0102,
	ISCSI_LOGIN_INITIATOR_ERROR = 0x0200,
	ISCSI_LOGIN_AUTH_FAILED = 0x0201,
	ISCSI_LOGIN_FORBIDDEN = 0x0202,
	ISCSI_LOGIN_NOT_FOUND = 0x0203,
	ISCSI_LOGIN_TARGET_REMOVED = 0x0204,
	ISCSI_LOGIN_UNSUPPORTED_VERSION = 0x0205,
	ISCSI_LOGIN_TOO_MANY_CONNECTIONS = 0x0206,
	ISCSI_LOGIN_MISSING_PARAMETER = 0x0207,
	ISCSI_LOGIN_CANT_INCLUDE_IN_SESSION = 0x0208,
	ISCSI_LOGIN_SESSION_TYPE_UNSUPPORTED = 0x0209,
	ISCSI_LOGIN_SESSION_DOES_NOT_EXIST = 0x020a,
	ISCSI_LOGIN_INVALID_REQUEST_DURING_LOGIN = 0x020b,
	ISCSI_LOGIN_TARGET_ERROR = 0x0300,
	ISCSI_LOGIN_SERVICE_UNAVAILABLE = 0x0301,
	ISCSI_LOGIN_OUT_OF_RESOURCES = 0x0302,
};

/* Login stages (CSG/NSG) */
enum iscsi_login_stage {
	ISCSI_STAGE_SECURITY = 0,
	ISCSI_STAGE_OPERATIONAL = 1,
	ISCSI_STAGE_FULL_FEATURE = 3,
};

/* A decoded initiator PDU header. Fields not defined for the opcode are zero. */
struct iscsi_pdu {
	uint8_t opcode;
	bool immediate;
	bool final;        /* F bit (T bit for login) */
	bool cont;         /* C bit: text and login */
	uint8_t flags;     /* byte 1 below the F bit, raw */
	uint16_t ahs_len;  /* TotalAHSLength in bytes (already multiplied by 4, at most 1020) */
	uint32_t data_len; /* DataSegmentLength */
	uint64_t lun;      /* raw 8-byte LUN field */
	uint32_t itt;
	uint32_t ttt;      /* Target Transfer Tag (NOP-Out, Data-Out, Text, SNACK) */
	uint32_t cmdsn;
	uint32_t expstatsn;

	/* SCSI Command */
	bool read, write;
	uint8_t attr;
	uint32_t edtl;
	uint8_t cdb[16];

	/* Data-Out */
	uint32_t datasn;
	uint32_t buffer_offset;

	/* Task management */
	uint8_t tmf_func;
	uint32_t rtt;
	uint32_t refcmdsn;
	uint32_t expdatasn;

	/* Login */
	uint8_t csg, nsg;
	uint8_t version_max, version_min;
	uint8_t isid[6];
	uint16_t tsih;
	uint16_t cid; /* login and logout */

	/* Logout */
	uint8_t logout_reason;

	/* SNACK */
	uint8_t snack_type;
	uint32_t begrun;
	uint32_t runlength;
};

/* Decode a 48-byte BHS. Returns 0, or -EBADMSG for a header no valid initiator sends
 * (a target opcode, a reserved opcode, a non-zero AHS length on an opcode that takes none);
 * *reason tells which reject reason applies. */
int iscsi_pdu_parse(const uint8_t *bhs, size_t len, struct iscsi_pdu *p, uint8_t *reason);

/* Sequence numbers compare in serial arithmetic (RFC 1982, RFC 7143 4.2.2.1). */
static inline bool iscsi_sn_lt(uint32_t a, uint32_t b)
{
	return a != b && (int32_t)(a - b) < 0;
}

static inline bool iscsi_sn_le(uint32_t a, uint32_t b)
{
	return a == b || (int32_t)(a - b) < 0;
}

/* The sequence numbers every target PDU carries. */
struct iscsi_sn {
	uint32_t statsn;
	uint32_t expcmdsn;
	uint32_t maxcmdsn;
};

/* Encoders: each writes exactly ISCSI_BHS_LEN bytes into bhs. data_len is the length of the
 * data segment that follows (without padding and digest). */
void iscsi_build_scsi_rsp(uint8_t *bhs, uint32_t itt, uint8_t response, uint8_t status,
			  int64_t residual, const struct iscsi_sn *sn, uint32_t expdatasn,
			  uint32_t data_len);
/* residual: positive for underflow, negative for overflow (both directions span the whole
 * 32-bit range, hence 64 bits). status_valid sets the S bit and
 * then status and StatSN are meaningful. */
void iscsi_build_data_in(uint8_t *bhs, uint32_t itt, uint64_t lun, uint32_t ttt, bool final,
			 bool ack, bool status_valid, uint8_t status, int64_t residual,
			 const struct iscsi_sn *sn, uint32_t datasn, uint32_t offset,
			 uint32_t data_len);
void iscsi_build_r2t(uint8_t *bhs, uint32_t itt, uint64_t lun, uint32_t ttt,
		     const struct iscsi_sn *sn, uint32_t r2tsn, uint32_t offset, uint32_t len);
void iscsi_build_nop_in(uint8_t *bhs, uint32_t itt, uint32_t ttt, uint64_t lun,
			const struct iscsi_sn *sn, uint32_t data_len);
void iscsi_build_tmf_rsp(uint8_t *bhs, uint32_t itt, uint8_t response, const struct iscsi_sn *sn);
void iscsi_build_login_rsp(uint8_t *bhs, bool transit, bool cont, uint8_t csg, uint8_t nsg,
			   uint8_t version_active, const uint8_t isid[6], uint16_t tsih,
			   uint32_t itt, const struct iscsi_sn *sn, uint16_t status,
			   uint32_t data_len);
void iscsi_build_text_rsp(uint8_t *bhs, bool final, bool cont, uint64_t lun, uint32_t itt,
			  uint32_t ttt, const struct iscsi_sn *sn, uint32_t data_len);
void iscsi_build_logout_rsp(uint8_t *bhs, uint32_t itt, uint8_t response, uint16_t time2wait,
			    uint16_t time2retain, const struct iscsi_sn *sn);
void iscsi_build_reject(uint8_t *bhs, uint8_t reason, uint32_t datasn_r2tsn,
			const struct iscsi_sn *sn, uint32_t data_len);
void iscsi_build_async(uint8_t *bhs, uint64_t lun, uint8_t event, uint8_t vcode, uint16_t p1,
		       uint16_t p2, uint16_t p3, const struct iscsi_sn *sn, uint32_t data_len);

/* The 8-byte LUN field (SAM-5 4.6): flat and peripheral addressing to a LUN number, and
 * back. Returns -EINVAL for an address method we do not serve. */
int iscsi_lun_decode(uint64_t raw, uint64_t *lun);
uint64_t iscsi_lun_encode(uint64_t lun);

/* Padding of a data segment to a 4-byte boundary. */
static inline uint32_t iscsi_pad(uint32_t len)
{
	return (4 - (len & 3)) & 3;
}

#endif
