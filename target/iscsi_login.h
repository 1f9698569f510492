/* The iSCSI login phase and text negotiation as pure logic (RFC 7143 sections 6, 12, 13):
 * login PDUs and their text go in, the response fields and text come out. It decides
 * security (CHAP, mutual CHAP), ACLs and every operational key; it never touches a socket.
 * Binding the connection to a session (TSIH, reinstatement) is the transport's job: it may
 * overwrite the status of the final response. */
#ifndef HOLDFAST_TARGET_ISCSI_LOGIN_H
#define HOLDFAST_TARGET_ISCSI_LOGIN_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/config.h"
#include "target/iscsi_pdu.h"

/* Limits we declare and accept. */
#define ISCSI_TARGET_MAX_RECV_DSL  262144 /* what we announce as MaxRecvDataSegmentLength */
#define ISCSI_LOGIN_TEXT_MAX       65536  /* total login/text request text we accept */

enum iscsi_session_type {
	ISCSI_SESSION_NONE = 0,
	ISCSI_SESSION_NORMAL,
	ISCSI_SESSION_DISCOVERY,
};

/* Negotiated values (RFC 7143 section 13). Defaults are the RFC's until negotiated. */
struct iscsi_params {
	uint32_t initiator_max_recv_dsl; /* the largest data segment we may send */
	uint32_t target_max_recv_dsl;    /* the largest data segment we accept */
	uint32_t max_burst;
	uint32_t first_burst;
	uint16_t max_connections;
	uint16_t max_outstanding_r2t;
	uint16_t default_time2wait;
	uint16_t default_time2retain;
	uint8_t error_recovery_level;
	bool initial_r2t;
	bool immediate_data;
	bool data_pdu_in_order;
	bool data_seq_in_order;
	bool header_digest; /* CRC32C */
	bool data_digest;   /* CRC32C */
};

void iscsi_params_default(struct iscsi_params *p);

struct iscsi_login_rsp {
	bool transit;
	bool cont;
	uint8_t csg, nsg;
	uint16_t status;  /* enum iscsi_login_status */
	const uint8_t *data; /* response text, owned by the login state */
	uint32_t data_len;
	bool close;  /* the connection must close after this response (any failure) */
	bool to_ffp; /* after this response the connection is in full feature phase */
};

struct iscsi_login_state; /* opaque; one per connection in login */

/* cfg must outlive the state. tpgt is the portal group the connection arrived on; only
 * targets served on that portal group are visible to it. */
int iscsi_login_create(const struct hf_config *cfg, uint16_t tpgt,
		       struct iscsi_login_state **out);
void iscsi_login_destroy(struct iscsi_login_state *lg);

/* Process one Login Request PDU (header already decoded, data is its data segment).
 * Returns 0 and fills rsp, or a negative errno on an internal failure. Protocol errors are
 * returned as a response with rsp->status set and rsp->close true. */
int iscsi_login_step(struct iscsi_login_state *lg, const struct iscsi_pdu *req,
		     const uint8_t *data, uint32_t data_len, struct iscsi_login_rsp *rsp);

/* What the login established; valid once a response had to_ffp set. */
const struct iscsi_params *iscsi_login_params(const struct iscsi_login_state *lg);
enum iscsi_session_type iscsi_login_session_type(const struct iscsi_login_state *lg);
const char *iscsi_login_initiator_name(const struct iscsi_login_state *lg);
const char *iscsi_login_initiator_alias(const struct iscsi_login_state *lg);
/* Index into cfg->targets, or -1 for a discovery session. */
int iscsi_login_target_index(const struct iscsi_login_state *lg);

/* Full-feature-phase text requests (RFC 7143 11.10): SendTargets, and keys an initiator may
 * renegotiate. One per connection; it keeps the continuation state of long responses. */
struct iscsi_text_state;

int iscsi_text_create(const struct hf_config *cfg, uint16_t tpgt, int target_index,
		      struct iscsi_params *params, struct iscsi_text_state **out);
void iscsi_text_destroy(struct iscsi_text_state *ts);

struct iscsi_text_rsp {
	bool final;
	bool cont;
	uint32_t ttt; /* ISCSI_RSVD_TAG when the exchange is over */
	const uint8_t *data;
	uint32_t data_len;
	bool reject; /* answer with a Reject (protocol error) instead of a Text Response */
};

int iscsi_text_step(struct iscsi_text_state *ts, const struct iscsi_pdu *req, const uint8_t *data,
		    uint32_t data_len, struct iscsi_text_rsp *rsp);

#endif
