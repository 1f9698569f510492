#include "target/iscsi_login.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "target/iscsi_chap.h"
#include "target/iscsi_text.h"

/* What we offer in the "min"/"max"/boolean negotiations of RFC 7143 section 13. */
#define OUR_MAX_CONNECTIONS	8
#define OUR_MAX_BURST		1048576
#define OUR_FIRST_BURST		1048576
#define OUR_MAX_OUTSTANDING_R2T 8
#define OUR_TIME2WAIT		2
#define OUR_TIME2RETAIN		20
#define OUR_ERL			0
#define OUR_PROTOCOL_LEVEL	1

/* RFC 7143 13.12: a login PDU's data segment is at most 8192 bytes in each direction until
 * MaxRecvDataSegmentLength takes effect in full feature phase. */
#define LOGIN_PDU_DSL 8192
#define LOGIN_RSP_CAP 32768
#define TEXT_RSP_MAX  (16u << 20)
#define DSL_MIN	      512
#define DSL_MAX	      16777215

void iscsi_params_default(struct iscsi_params *p)
{
	/* RFC 7143 section 13: the defaults of every operational key. */
	memset(p, 0, sizeof(*p));
	p->initiator_max_recv_dsl = 8192;
	p->target_max_recv_dsl = 8192;
	p->max_burst = 262144;
	p->first_burst = 65536;
	p->max_connections = 1;
	p->max_outstanding_r2t = 1;
	p->default_time2wait = 2;
	p->default_time2retain = 20;
	p->error_recovery_level = 0;
	p->initial_r2t = true;
	p->immediate_data = true;
	p->data_pdu_in_order = true;
	p->data_seq_in_order = true;
	p->header_digest = false;
	p->data_digest = false;
}

/* ---- Key table ---------------------------------------------------------------------- */

enum key_kind {
	KK_NUM_MIN,  /* numerical, result = min(offer, ours) */
	KK_NUM_MAX,  /* numerical, result = max(offer, ours) */
	KK_BOOL_OR,  /* boolean, result = offer OR ours */
	KK_BOOL_AND, /* boolean, result = offer AND ours */
	KK_DIGEST,   /* list of CRC32C and None */
	KK_MRDSL,    /* MaxRecvDataSegmentLength, declarative */
	KK_MARKER,   /* RFC 7143 13.25: obsolete IFMarker/OFMarker, answered No */
	KK_MARKINT,  /* RFC 7143 13.25: obsolete IFMarkInt/OFMarkInt, answered Reject */
	KK_TASK_REPORTING,
	KK_DECL_IGNORED, /* declarative keys we note and do not answer (InitiatorAlias) */
	KK_IDENTITY,	 /* InitiatorName, TargetName, SessionType: handled up front */
	KK_TARGET_ONLY,	 /* keys only a target may send */
	KK_SECURITY,	 /* AuthMethod and CHAP_* */
	KK_SEND_TARGETS, /* full feature phase only */
};

enum key_id {
	K_HEADER_DIGEST,
	K_DATA_DIGEST,
	K_MAX_CONNECTIONS,
	K_INITIAL_R2T,
	K_IMMEDIATE_DATA,
	K_MAX_RECV_DSL,
	K_MAX_BURST,
	K_FIRST_BURST,
	K_TIME2WAIT,
	K_TIME2RETAIN,
	K_MAX_OUTSTANDING_R2T,
	K_DATA_PDU_IN_ORDER,
	K_DATA_SEQ_IN_ORDER,
	K_ERL,
	K_IFMARKER,
	K_OFMARKER,
	K_IFMARKINT,
	K_OFMARKINT,
	K_TASK_REPORTING,
	K_PROTOCOL_LEVEL,
	K_INITIATOR_NAME,
	K_INITIATOR_ALIAS,
	K_TARGET_NAME,
	K_SESSION_TYPE,
	K_TARGET_ALIAS,
	K_TARGET_ADDRESS,
	K_TPGT,
	K_AUTH_METHOD,
	K_CHAP_A,
	K_CHAP_I,
	K_CHAP_C,
	K_CHAP_N,
	K_CHAP_R,
	K_SEND_TARGETS,
	K_COUNT,
};

struct key_def {
	const char *name;
	enum key_kind kind;
	bool leading_only;  /* RFC 7143 13: "LO" */
	bool discovery_irr; /* RFC 7143 13: "Irrelevant when: SessionType=Discovery" */
	uint32_t min, max;  /* numerical range */
	uint32_t ours;	    /* our value (numbers, booleans as 0/1) */
};

static const struct key_def keys[K_COUNT] = {
	[K_HEADER_DIGEST] = {"HeaderDigest", KK_DIGEST},
	[K_DATA_DIGEST] = {"DataDigest", KK_DIGEST},
	[K_MAX_CONNECTIONS] = {"MaxConnections", KK_NUM_MIN, true, false, 1, 65535,
			       OUR_MAX_CONNECTIONS},
	[K_INITIAL_R2T] = {"InitialR2T", KK_BOOL_OR, true, true, 0, 1, 0},
	[K_IMMEDIATE_DATA] = {"ImmediateData", KK_BOOL_AND, true, true, 0, 1, 1},
	[K_MAX_RECV_DSL] = {"MaxRecvDataSegmentLength", KK_MRDSL, false, false, DSL_MIN, DSL_MAX,
			    ISCSI_TARGET_MAX_RECV_DSL},
	[K_MAX_BURST] = {"MaxBurstLength", KK_NUM_MIN, true, true, 512, DSL_MAX, OUR_MAX_BURST},
	[K_FIRST_BURST] = {"FirstBurstLength", KK_NUM_MIN, true, true, 512, DSL_MAX,
			   OUR_FIRST_BURST},
	[K_TIME2WAIT] = {"DefaultTime2Wait", KK_NUM_MAX, true, false, 0, 3600, OUR_TIME2WAIT},
	[K_TIME2RETAIN] = {"DefaultTime2Retain", KK_NUM_MIN, true, false, 0, 3600, OUR_TIME2RETAIN},
	[K_MAX_OUTSTANDING_R2T] = {"MaxOutstandingR2T", KK_NUM_MIN, true, true, 1, 65535,
				   OUR_MAX_OUTSTANDING_R2T},
	[K_DATA_PDU_IN_ORDER] = {"DataPDUInOrder", KK_BOOL_OR, true, true, 0, 1, 1},
	[K_DATA_SEQ_IN_ORDER] = {"DataSequenceInOrder", KK_BOOL_OR, true, true, 0, 1, 1},
	[K_ERL] = {"ErrorRecoveryLevel", KK_NUM_MIN, true, false, 0, 2, OUR_ERL},
	[K_IFMARKER] = {"IFMarker", KK_MARKER},
	[K_OFMARKER] = {"OFMarker", KK_MARKER},
	[K_IFMARKINT] = {"IFMarkInt", KK_MARKINT},
	[K_OFMARKINT] = {"OFMarkInt", KK_MARKINT},
	[K_TASK_REPORTING] = {"TaskReporting", KK_TASK_REPORTING, true},
	[K_PROTOCOL_LEVEL] = {"iSCSIProtocolLevel", KK_NUM_MIN, true, false, 0, 31,
			      OUR_PROTOCOL_LEVEL},
	[K_INITIATOR_NAME] = {"InitiatorName", KK_IDENTITY},
	[K_INITIATOR_ALIAS] = {"InitiatorAlias", KK_DECL_IGNORED},
	[K_TARGET_NAME] = {"TargetName", KK_IDENTITY},
	[K_SESSION_TYPE] = {"SessionType", KK_IDENTITY},
	[K_TARGET_ALIAS] = {"TargetAlias", KK_TARGET_ONLY},
	[K_TARGET_ADDRESS] = {"TargetAddress", KK_TARGET_ONLY},
	[K_TPGT] = {"TargetPortalGroupTag", KK_TARGET_ONLY},
	[K_AUTH_METHOD] = {"AuthMethod", KK_SECURITY},
	[K_CHAP_A] = {"CHAP_A", KK_SECURITY},
	[K_CHAP_I] = {"CHAP_I", KK_SECURITY},
	[K_CHAP_C] = {"CHAP_C", KK_SECURITY},
	[K_CHAP_N] = {"CHAP_N", KK_SECURITY},
	[K_CHAP_R] = {"CHAP_R", KK_SECURITY},
	[K_SEND_TARGETS] = {"SendTargets", KK_SEND_TARGETS},
};

static int key_lookup(const struct iscsi_kv *kv)
{
	for (int i = 0; i < K_COUNT; i++)
		if (iscsi_kv_key_is(kv, keys[i].name))
			return i;
	return -1;
}

/* Walk a comma-separated list value: returns the next element in *el and *el_len. */
static bool list_next(const struct iscsi_kv *kv, size_t *pos, const char **el, size_t *el_len)
{
	size_t start = *pos, end;

	if (start > kv->value_len)
		return false;
	end = start;
	while (end < kv->value_len && kv->value[end] != ',')
		end++;
	*el = kv->value + start;
	*el_len = end - start;
	*pos = end + 1;
	return true;
}

static bool el_is(const char *el, size_t len, const char *s)
{
	return strlen(s) == len && memcmp(el, s, len) == 0;
}

/* ---- Login state -------------------------------------------------------------------- */

enum chap_phase {
	CHAP_IDLE,   /* no CHAP selected */
	CHAP_WAIT_A, /* AuthMethod=CHAP answered; waiting for CHAP_A */
	CHAP_WAIT_R, /* challenge sent; waiting for CHAP_N and CHAP_R */
	CHAP_DONE,
};

struct iscsi_login_state {
	const struct hf_config *cfg;
	uint16_t tpgt;
	bool have_ids; /* ISID, TSIH and CID were taken from the first PDU */
	bool started;  /* the first complete request text has been processed */
	bool failed;
	bool in_ffp;
	uint8_t stage; /* the current stage (CSG of the next request) */
	uint8_t isid[6];
	uint16_t tsih;
	uint16_t cid;

	/* The request text being assembled from PDUs with the C bit. */
	uint8_t *req;
	size_t req_len;

	/* The response text, sent in pieces of LOGIN_PDU_DSL with the C bit. */
	uint8_t *rsp;
	size_t rsp_len, rsp_off;
	bool rsp_pending;     /* more of rsp is owed to the initiator */
	bool pending_transit; /* the last piece carries T */
	uint8_t pending_nsg;

	/* Identity. */
	char initiator_name[HF_IQN_MAX];
	char initiator_alias[256];
	enum iscsi_session_type type;
	int target_index;

	/* Security. */
	bool auth_required;
	bool authenticated;
	bool auth_method_seen;
	enum chap_phase chap;
	struct iscsi_chap chap_ex;

	/* Negotiation. */
	uint64_t seen;	     /* keys the initiator has sent, by enum key_id */
	bool mrdsl_declared; /* we have declared our MaxRecvDataSegmentLength */
	struct iscsi_params params;
};

int iscsi_login_create(const struct hf_config *cfg, uint16_t tpgt, struct iscsi_login_state **out)
{
	struct iscsi_login_state *lg = calloc(1, sizeof(*lg));

	if (lg == NULL)
		return -ENOMEM;
	lg->rsp = malloc(LOGIN_RSP_CAP);
	if (lg->rsp == NULL) {
		free(lg);
		return -ENOMEM;
	}
	lg->cfg = cfg;
	lg->tpgt = tpgt;
	lg->target_index = -1;
	iscsi_params_default(&lg->params);
	*out = lg;
	return 0;
}

void iscsi_login_destroy(struct iscsi_login_state *lg)
{
	if (lg == NULL)
		return;
	/* The challenge must not be reused; do not leave it lying around either. */
	memset(&lg->chap_ex, 0, sizeof(lg->chap_ex));
	free(lg->req);
	free(lg->rsp);
	free(lg);
}

const struct iscsi_params *iscsi_login_params(const struct iscsi_login_state *lg)
{
	return &lg->params;
}

enum iscsi_session_type iscsi_login_session_type(const struct iscsi_login_state *lg)
{
	return lg->type;
}

const char *iscsi_login_initiator_name(const struct iscsi_login_state *lg)
{
	return lg->initiator_name;
}

const char *iscsi_login_initiator_alias(const struct iscsi_login_state *lg)
{
	return lg->initiator_alias;
}

int iscsi_login_target_index(const struct iscsi_login_state *lg)
{
	return lg->type == ISCSI_SESSION_NORMAL ? lg->target_index : -1;
}

/* ---- Helpers shared with the text (full feature phase) code -------------------------- */

static bool target_on_tpgt(const struct hf_config *cfg, const struct hf_target *t, uint16_t tpgt)
{
	for (size_t i = 0; i < t->nportals; i++) {
		int pi = t->portals[i];

		if (pi >= 0 && (size_t)pi < cfg->nportals && cfg->portals[pi].tpgt == tpgt)
			return true;
	}
	return false;
}

/* RFC 7143 4.2.7.1: iSCSI names are case-insensitive in practice (they are normalized to
 * lower case by stringprep); compare ASCII without case so an admin's spelling still matches. */
static int find_target(const struct hf_config *cfg, uint16_t tpgt, const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->ntargets; i++) {
		const struct hf_target *t = &cfg->targets[i];

		if (strlen(t->iqn) == len && strncasecmp(t->iqn, name, len) == 0 &&
		    target_on_tpgt(cfg, t, tpgt))
			return (int)i;
	}
	return -1;
}

static bool acl_allows(const struct hf_target *t, const char *initiator)
{
	if (t->nacl == 0)
		return true;
	for (size_t i = 0; i < t->nacl; i++)
		if (strcasecmp(t->acl[i], initiator) == 0)
			return true;
	return false;
}

/* A name as the initiator sends it: printable, no separators, at most 223 bytes. */
static bool name_ok(const struct iscsi_kv *kv)
{
	if (kv->value_len == 0 || kv->value_len >= HF_IQN_MAX)
		return false;
	for (size_t i = 0; i < kv->value_len; i++) {
		uint8_t ch = (uint8_t)kv->value[i];

		if (ch <= 0x20 || ch >= 0x7f || ch == ',')
			return false;
	}
	return true;
}

/* ---- Operational keys ---------------------------------------------------------------- */

struct negotiation {
	struct iscsi_params *params;
	bool leading;	/* false on a connection added to an existing session */
	bool discovery; /* a discovery session */
	bool *mrdsl_declared;
	struct iscsi_text_buf *out;
};

static int add_irrelevant(struct iscsi_text_buf *out, const struct iscsi_kv *kv)
{
	return iscsi_text_add_n(out, keys[key_lookup(kv)].name, "Irrelevant", 10);
}

/* RFC 7143 6.2.1: an unacceptable value is answered with key=Reject and the key keeps its
 * current value. */
static int add_reject(struct iscsi_text_buf *out, const char *name)
{
	return iscsi_text_add(out, name, "Reject");
}

static void apply_num(struct iscsi_params *p, int id, uint32_t v)
{
	switch (id) {
	case K_MAX_CONNECTIONS:
		p->max_connections = (uint16_t)v;
		break;
	case K_MAX_BURST:
		p->max_burst = v;
		/* RFC 7143 13.14: FirstBurstLength MUST NOT exceed MaxBurstLength. */
		if (p->first_burst > v)
			p->first_burst = v;
		break;
	case K_FIRST_BURST:
		p->first_burst = v < p->max_burst ? v : p->max_burst;
		break;
	case K_TIME2WAIT:
		p->default_time2wait = (uint16_t)v;
		break;
	case K_TIME2RETAIN:
		p->default_time2retain = (uint16_t)v;
		break;
	case K_MAX_OUTSTANDING_R2T:
		p->max_outstanding_r2t = (uint16_t)v;
		break;
	case K_ERL:
		p->error_recovery_level = (uint8_t)v;
		break;
	default:
		break;
	}
}

static void apply_bool(struct iscsi_params *p, int id, bool v)
{
	switch (id) {
	case K_INITIAL_R2T:
		p->initial_r2t = v;
		break;
	case K_IMMEDIATE_DATA:
		p->immediate_data = v;
		break;
	case K_DATA_PDU_IN_ORDER:
		p->data_pdu_in_order = v;
		break;
	case K_DATA_SEQ_IN_ORDER:
		p->data_seq_in_order = v;
		break;
	default:
		break;
	}
}

/* Negotiate one operational key; writes the answer (if one is due) into n->out. */
static int negotiate_key(struct negotiation *n, int id, const struct iscsi_kv *kv)
{
	const struct key_def *d = &keys[id];
	struct iscsi_params *p = n->params;
	uint64_t v;

	if (d->leading_only && !n->leading)
		return add_irrelevant(n->out, kv);
	if (d->discovery_irr && n->discovery)
		return add_irrelevant(n->out, kv);

	switch (d->kind) {
	case KK_NUM_MIN:
	case KK_NUM_MAX: {
		uint32_t r;

		if (iscsi_kv_value_u64(kv, &v) || v < d->min || v > d->max)
			return add_reject(n->out, d->name);
		if (d->kind == KK_NUM_MIN)
			r = v < d->ours ? (uint32_t)v : d->ours;
		else
			r = v > d->ours ? (uint32_t)v : d->ours;
		/* FirstBurstLength answered after MaxBurstLength must respect it. */
		if (id == K_FIRST_BURST && r > p->max_burst)
			r = p->max_burst;
		apply_num(p, id, r);
		return iscsi_text_addf(n->out, d->name, "%u", r);
	}
	case KK_BOOL_OR:
	case KK_BOOL_AND: {
		bool b, r;

		if (iscsi_kv_value_is(kv, "Yes"))
			b = true;
		else if (iscsi_kv_value_is(kv, "No"))
			b = false;
		else
			return add_reject(n->out, d->name);
		r = d->kind == KK_BOOL_OR ? (b || d->ours) : (b && d->ours);
		apply_bool(p, id, r);
		return iscsi_text_add(n->out, d->name, r ? "Yes" : "No");
	}
	case KK_DIGEST: {
		/* RFC 7143 13.1: the responder picks the first value of the offer it supports. */
		const char *el;
		size_t el_len, pos = 0;

		while (list_next(kv, &pos, &el, &el_len)) {
			bool crc = el_is(el, el_len, "CRC32C");

			if (!crc && !el_is(el, el_len, "None"))
				continue;
			if (id == K_HEADER_DIGEST)
				p->header_digest = crc;
			else
				p->data_digest = crc;
			return iscsi_text_add(n->out, d->name, crc ? "CRC32C" : "None");
		}
		return add_reject(n->out, d->name);
	}
	case KK_MRDSL:
		/* RFC 7143 13.12: declarative; each side states what it can receive. */
		if (iscsi_kv_value_u64(kv, &v) || v < DSL_MIN || v > DSL_MAX) {
			/* The key was answered (with Reject); declaring ours later in the same
			 * login would repeat it, so our side keeps the 8192 default. */
			*n->mrdsl_declared = true;
			return add_reject(n->out, d->name);
		}
		p->initiator_max_recv_dsl = (uint32_t)v;
		if (*n->mrdsl_declared)
			return 0;
		*n->mrdsl_declared = true;
		p->target_max_recv_dsl = ISCSI_TARGET_MAX_RECV_DSL;
		return iscsi_text_addf(n->out, d->name, "%u", ISCSI_TARGET_MAX_RECV_DSL);
	case KK_MARKER:
		/* RFC 7143 13.25: obsolete; a responder MAY answer No. */
		return iscsi_text_add(n->out, d->name, "No");
	case KK_MARKINT:
		return add_reject(n->out, d->name);
	case KK_TASK_REPORTING: {
		/* RFC 7143 13.23: we do only the RFC 3720 behaviour; it is the mandatory value. */
		const char *el;
		size_t el_len, pos = 0;

		while (list_next(kv, &pos, &el, &el_len))
			if (el_is(el, el_len, "RFC3720"))
				return iscsi_text_add(n->out, d->name, "RFC3720");
		return add_reject(n->out, d->name);
	}
	case KK_DECL_IGNORED:
	case KK_IDENTITY:
	case KK_TARGET_ONLY:
	case KK_SECURITY:
	case KK_SEND_TARGETS:
	default:
		return -EINVAL;
	}
}

static int add_not_understood(struct iscsi_text_buf *out, const struct iscsi_kv *kv)
{
	char name[ISCSI_TEXT_KEY_MAX + 1];

	memcpy(name, kv->key, kv->key_len);
	name[kv->key_len] = '\0';
	return iscsi_text_add(out, name, "NotUnderstood");
}

/* ---- Login step ---------------------------------------------------------------------- */

struct step {
	struct iscsi_login_rsp *rsp;
	struct iscsi_text_buf out;
	uint16_t status;
};

static int fail(struct iscsi_login_state *lg, struct iscsi_login_rsp *rsp, uint16_t status,
		const char *why)
{
	log_info("%s: %s: %s: status 0x%04x", __func__,
		 lg->initiator_name[0] ? lg->initiator_name : "(unnamed initiator)", why, status);
	lg->failed = true;
	rsp->status = status;
	rsp->transit = false;
	rsp->cont = false;
	rsp->nsg = 0;
	rsp->data = NULL;
	rsp->data_len = 0;
	rsp->close = true;
	rsp->to_ffp = false;
	return 0;
}

/* Hand out the next piece of the response text. */
static void emit(struct iscsi_login_state *lg, struct iscsi_login_rsp *rsp)
{
	size_t left = lg->rsp_len - lg->rsp_off;
	size_t n = left > LOGIN_PDU_DSL ? LOGIN_PDU_DSL : left;

	rsp->data = n ? lg->rsp + lg->rsp_off : NULL;
	rsp->data_len = (uint32_t)n;
	lg->rsp_off += n;
	rsp->csg = lg->stage;
	rsp->status = ISCSI_LOGIN_SUCCESS;
	rsp->close = false;
	if (lg->rsp_off < lg->rsp_len) {
		/* RFC 7143 11.13.2: more text follows; no transit with C set. */
		lg->rsp_pending = true;
		rsp->cont = true;
		rsp->transit = false;
		rsp->nsg = 0;
		rsp->to_ffp = false;
		return;
	}
	lg->rsp_pending = false;
	rsp->cont = false;
	rsp->transit = lg->pending_transit;
	rsp->nsg = lg->pending_transit ? lg->pending_nsg : 0;
	rsp->to_ffp = false;
	if (lg->pending_transit) {
		lg->stage = lg->pending_nsg;
		if (lg->stage == ISCSI_STAGE_FULL_FEATURE) {
			lg->in_ffp = true;
			rsp->to_ffp = true;
		}
	}
	lg->pending_transit = false;
}

static const struct hf_chap *chap_users(const struct iscsi_login_state *lg, size_t *n)
{
	if (lg->type == ISCSI_SESSION_DISCOVERY) {
		*n = lg->cfg->ndiscovery_chap;
		return lg->cfg->discovery_chap;
	}
	if (lg->target_index >= 0) {
		*n = lg->cfg->targets[lg->target_index].nchap;
		return lg->cfg->targets[lg->target_index].chap;
	}
	*n = 0;
	return NULL;
}

/* The keys of the first request that decide who is logging in to what (RFC 7143 13.4-13.6,
 * 13.21). Returns a login status. */
static uint16_t take_identity(struct iscsi_login_state *lg, const struct iscsi_kv *kv, size_t n,
			      struct iscsi_text_buf *out)
{
	const struct iscsi_kv *iname = NULL, *tname = NULL, *stype = NULL, *alias = NULL;
	const struct hf_target *t;

	for (size_t i = 0; i < n; i++) {
		if (iscsi_kv_key_is(&kv[i], "InitiatorName"))
			iname = &kv[i];
		else if (iscsi_kv_key_is(&kv[i], "TargetName"))
			tname = &kv[i];
		else if (iscsi_kv_key_is(&kv[i], "SessionType"))
			stype = &kv[i];
		else if (iscsi_kv_key_is(&kv[i], "InitiatorAlias"))
			alias = &kv[i];
	}
	/* RFC 7143 13.5: InitiatorName MUST be in the first Login Request. */
	if (iname == NULL)
		return ISCSI_LOGIN_MISSING_PARAMETER;
	if (!name_ok(iname))
		return ISCSI_LOGIN_INITIATOR_ERROR;
	iscsi_kv_value_copy(iname, lg->initiator_name, sizeof(lg->initiator_name));
	if (alias != NULL &&
	    iscsi_kv_value_copy(alias, lg->initiator_alias, sizeof(lg->initiator_alias)) != 0)
		lg->initiator_alias[0] = '\0';

	/* RFC 7143 13.21: SessionType defaults to Normal. */
	if (stype == NULL || iscsi_kv_value_is(stype, "Normal"))
		lg->type = ISCSI_SESSION_NORMAL;
	else if (iscsi_kv_value_is(stype, "Discovery"))
		lg->type = ISCSI_SESSION_DISCOVERY;
	else
		return ISCSI_LOGIN_SESSION_TYPE_UNSUPPORTED;

	if (lg->type == ISCSI_SESSION_DISCOVERY) {
		lg->auth_required = lg->cfg->ndiscovery_chap > 0;
		return ISCSI_LOGIN_SUCCESS;
	}

	/* RFC 7143 13.4: TargetName MUST be in the first Login Request of a normal session. */
	if (tname == NULL)
		return ISCSI_LOGIN_MISSING_PARAMETER;
	lg->target_index = find_target(lg->cfg, lg->tpgt, tname->value, tname->value_len);
	if (lg->target_index < 0)
		return ISCSI_LOGIN_NOT_FOUND;
	t = &lg->cfg->targets[lg->target_index];
	/* RFC 7143 11.13.5: 0x0202, the initiator is not allowed access to this target. */
	if (!acl_allows(t, lg->initiator_name))
		return ISCSI_LOGIN_FORBIDDEN;
	lg->auth_required = t->nchap > 0;

	/* RFC 7143 13.9: the tag goes in the first Login Response of a normal session. */
	iscsi_text_addf(out, "TargetPortalGroupTag", "%u", lg->tpgt);
	if (t->alias[0])
		iscsi_text_add(out, "TargetAlias", t->alias);
	return ISCSI_LOGIN_SUCCESS;
}

/* RFC 7143 13.x (AuthMethod): pick the first offered method we accept. CHAP is possible only
 * when there are credentials to check it against; None only when none are required. */
static uint16_t do_auth_method(struct iscsi_login_state *lg, const struct iscsi_kv *kv,
			       struct iscsi_text_buf *out)
{
	size_t nusers, el_len, pos = 0;
	const char *el;

	chap_users(lg, &nusers);
	while (list_next(kv, &pos, &el, &el_len)) {
		if (el_is(el, el_len, "CHAP") && nusers > 0) {
			lg->chap = CHAP_WAIT_A;
			iscsi_text_add(out, "AuthMethod", "CHAP");
			return ISCSI_LOGIN_SUCCESS;
		}
		if (el_is(el, el_len, "None") && !lg->auth_required) {
			lg->authenticated = true;
			iscsi_text_add(out, "AuthMethod", "None");
			return ISCSI_LOGIN_SUCCESS;
		}
	}
	return ISCSI_LOGIN_AUTH_FAILED;
}

/* RFC 1994 / RFC 7143 12.1.3: CHAP_A lists algorithms; we do MD5 only. */
static uint16_t do_chap_a(struct iscsi_login_state *lg, const struct iscsi_kv *kv,
			  struct iscsi_text_buf *out)
{
	char hex[2 * ISCSI_CHAP_CHALLENGE_LEN + 3];
	size_t el_len, pos = 0;
	const char *el;

	if (lg->chap != CHAP_WAIT_A)
		return ISCSI_LOGIN_AUTH_FAILED;
	while (list_next(kv, &pos, &el, &el_len)) {
		if (!el_is(el, el_len, "5"))
			continue;
		if (iscsi_chap_start(&lg->chap_ex) != 0)
			return ISCSI_LOGIN_TARGET_ERROR;
		iscsi_chap_encode_hex(lg->chap_ex.challenge, sizeof(lg->chap_ex.challenge), hex,
				      sizeof(hex));
		iscsi_text_add(out, "CHAP_A", "5");
		iscsi_text_addf(out, "CHAP_I", "%u", lg->chap_ex.id);
		iscsi_text_add(out, "CHAP_C", hex);
		lg->chap = CHAP_WAIT_R;
		return ISCSI_LOGIN_SUCCESS;
	}
	return ISCSI_LOGIN_AUTH_FAILED;
}

/* The initiator's answer, and in mutual CHAP its own challenge to us. */
static uint16_t do_chap_response(struct iscsi_login_state *lg, const struct iscsi_kv *cn,
				 const struct iscsi_kv *cr, const struct iscsi_kv *ci,
				 const struct iscsi_kv *cc, struct iscsi_text_buf *out)
{
	uint8_t resp[ISCSI_CHAP_MD5_LEN], *chal = NULL;
	const struct hf_chap *users, *user = NULL;
	size_t nusers, rlen, clen;
	uint16_t st = ISCSI_LOGIN_AUTH_FAILED;

	if (lg->chap != CHAP_WAIT_R || cn == NULL || cr == NULL || (ci == NULL) != (cc == NULL))
		return ISCSI_LOGIN_AUTH_FAILED;
	users = chap_users(lg, &nusers);
	for (size_t i = 0; i < nusers; i++)
		if (strlen(users[i].user) == cn->value_len &&
		    memcmp(users[i].user, cn->value, cn->value_len) == 0)
			user = &users[i];
	/* A wrong name and a wrong response look the same to the initiator (0x0201). */
	if (iscsi_chap_decode(cr->value, cr->value_len, resp, sizeof(resp), &rlen) != 0 ||
	    user == NULL || !iscsi_chap_verify(&lg->chap_ex, user->secret, resp, rlen))
		goto out;

	if (ci != NULL) {
		const struct hf_target *t =
			lg->target_index >= 0 ? &lg->cfg->targets[lg->target_index] : NULL;
		char hex[2 * ISCSI_CHAP_MD5_LEN + 3];
		uint64_t id;

		/* Mutual CHAP needs our own credentials; discovery has none in the config. */
		if (lg->type != ISCSI_SESSION_NORMAL || t == NULL || !t->has_mutual ||
		    t->mutual.secret[0] == '\0')
			goto out;
		if (iscsi_kv_value_u64(ci, &id) || id > 255)
			goto out;
		chal = malloc(ISCSI_CHAP_CHALLENGE_MAX);
		if (chal == NULL) {
			st = ISCSI_LOGIN_OUT_OF_RESOURCES;
			goto out;
		}
		if (iscsi_chap_decode(cc->value, cc->value_len, chal, ISCSI_CHAP_CHALLENGE_MAX,
				      &clen) != 0)
			goto out;
		/* RFC 7143 12.1.3: a challenge equal to ours is a reflection attempt. */
		if (iscsi_chap_is_reflection(&lg->chap_ex, chal, clen))
			goto out;
		/* The same secret both ways would let a reflection succeed across sessions. */
		if (strcmp(t->mutual.secret, user->secret) == 0)
			goto out;
		if (iscsi_chap_md5((uint8_t)id, t->mutual.secret, strlen(t->mutual.secret), chal,
				   clen, resp) != 0) {
			st = ISCSI_LOGIN_TARGET_ERROR;
			goto out;
		}
		iscsi_chap_encode_hex(resp, sizeof(resp), hex, sizeof(hex));
		iscsi_text_add(out, "CHAP_N", t->mutual.user);
		iscsi_text_add(out, "CHAP_R", hex);
	}
	lg->chap = CHAP_DONE;
	lg->authenticated = true;
	st = ISCSI_LOGIN_SUCCESS;
out:
	free(chal);
	memset(resp, 0, sizeof(resp));
	return st;
}

/* Process the keys of one complete request text. Returns a login status. */
static uint16_t process_text(struct iscsi_login_state *lg, const struct iscsi_pdu *req,
			     const struct iscsi_kv *kv, size_t n, struct iscsi_text_buf *out)
{
	const struct iscsi_kv *cn = NULL, *cr = NULL, *ci = NULL, *cc = NULL;
	struct negotiation neg = {
		.params = &lg->params,
		.leading = lg->tsih == 0,
		.discovery = lg->type == ISCSI_SESSION_DISCOVERY,
		.mrdsl_declared = &lg->mrdsl_declared,
		.out = out,
	};
	int max_burst_at = -1;
	uint16_t st;

	/* MaxBurstLength first, so a FirstBurstLength answered in the same text respects it
	 * whatever the order the initiator wrote them in (RFC 7143 13.14). */
	for (size_t i = 0; i < n; i++)
		if (iscsi_kv_key_is(&kv[i], "MaxBurstLength"))
			max_burst_at = (int)i;

	for (size_t pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			int id;

			if ((pass == 0) != ((int)i == max_burst_at))
				continue;
			id = key_lookup(&kv[i]);
			if (id < 0) {
				/* RFC 7143 6.2.1: unknown keys, private (X-) and
				 * registered (X#) extensions alike, are answered NotUnderstood. */
				add_not_understood(out, &kv[i]);
				continue;
			}
			/* RFC 7143 6.2: a key is negotiated at most once during login. */
			if (lg->seen & (1ull << id))
				return ISCSI_LOGIN_INITIATOR_ERROR;
			lg->seen |= 1ull << id;

			switch (keys[id].kind) {
			case KK_IDENTITY:
				/* Only valid in the first request, which took them already. */
				if (lg->started)
					return ISCSI_LOGIN_INITIATOR_ERROR;
				break;
			case KK_DECL_IGNORED:
				break;
			case KK_TARGET_ONLY:
				/* RFC 7143 13.7-13.9: sent by targets only. */
				return ISCSI_LOGIN_INITIATOR_ERROR;
			case KK_SEND_TARGETS:
				/* RFC 7143 13.3: full feature phase only. */
				return ISCSI_LOGIN_INITIATOR_ERROR;
			case KK_SECURITY:
				/* RFC 7143 6.3: security keys only in the security stage. */
				if (req->csg != ISCSI_STAGE_SECURITY)
					return ISCSI_LOGIN_INITIATOR_ERROR;
				if (id == K_AUTH_METHOD) {
					lg->auth_method_seen = true;
					st = do_auth_method(lg, &kv[i], out);
					if (st != ISCSI_LOGIN_SUCCESS)
						return st;
				} else if (id == K_CHAP_A) {
					st = do_chap_a(lg, &kv[i], out);
					if (st != ISCSI_LOGIN_SUCCESS)
						return st;
				} else if (id == K_CHAP_N) {
					cn = &kv[i];
				} else if (id == K_CHAP_R) {
					cr = &kv[i];
				} else if (id == K_CHAP_I) {
					ci = &kv[i];
				} else {
					cc = &kv[i];
				}
				break;
			default:
				if (negotiate_key(&neg, id, &kv[i]) != 0)
					return ISCSI_LOGIN_TARGET_ERROR;
				break;
			}
		}
	}
	if (cn || cr || ci || cc) {
		st = do_chap_response(lg, cn, cr, ci, cc, out);
		if (st != ISCSI_LOGIN_SUCCESS)
			return st;
	}
	if (out->overflow)
		return ISCSI_LOGIN_OUT_OF_RESOURCES;
	return ISCSI_LOGIN_SUCCESS;
}

/* RFC 7143 6.3 and 11.12.3: CSG/NSG rules. */
static bool stages_valid(const struct iscsi_login_state *lg, const struct iscsi_pdu *req)
{
	if (req->csg != ISCSI_STAGE_SECURITY && req->csg != ISCSI_STAGE_OPERATIONAL)
		return false;
	if (req->csg != lg->stage)
		return false;
	/* RFC 7143 11.12.2: T and C are never set together. */
	if (req->final && req->cont)
		return false;
	if (!req->final)
		return true;
	switch (req->nsg) {
	case ISCSI_STAGE_OPERATIONAL:
		return req->csg == ISCSI_STAGE_SECURITY;
	case ISCSI_STAGE_FULL_FEATURE:
		return true;
	default:
		return false;
	}
}

int iscsi_login_step(struct iscsi_login_state *lg, const struct iscsi_pdu *req, const uint8_t *data,
		     uint32_t data_len, struct iscsi_login_rsp *rsp)
{
	struct iscsi_kv *kv = NULL;
	struct iscsi_text_buf out;
	size_t n;
	uint16_t st;
	int r;

	memset(rsp, 0, sizeof(*rsp));
	if (lg->in_ffp)
		return -EINVAL;
	if (lg->failed)
		return fail(lg, rsp, ISCSI_LOGIN_INITIATOR_ERROR, "login already failed");
	if (req->opcode != ISCSI_OP_LOGIN_REQ)
		return fail(lg, rsp, ISCSI_LOGIN_INVALID_REQUEST_DURING_LOGIN, "not a login PDU");
	if (data == NULL)
		data_len = 0;

	/* RFC 7143 11.12.4: we speak version 0 only. */
	if (req->version_min > 0)
		return fail(lg, rsp, ISCSI_LOGIN_UNSUPPORTED_VERSION, "version");

	if (!lg->have_ids) {
		/* The first PDU fixes the connection's identity and starting stage: an initiator
		 * without security needs may begin in the operational stage (RFC 7143 6.3). */
		lg->have_ids = true;
		memcpy(lg->isid, req->isid, 6);
		lg->tsih = req->tsih;
		lg->cid = req->cid;
		if (req->csg == ISCSI_STAGE_OPERATIONAL)
			lg->stage = ISCSI_STAGE_OPERATIONAL;
	}
	/* RFC 7143 6.3: ISID, TSIH and CID stay the same through a login. */
	if (memcmp(lg->isid, req->isid, 6) != 0 || lg->tsih != req->tsih || lg->cid != req->cid)
		return fail(lg, rsp, ISCSI_LOGIN_INITIATOR_ERROR, "ISID/TSIH/CID changed");
	if (!stages_valid(lg, req))
		return fail(lg, rsp, ISCSI_LOGIN_INITIATOR_ERROR, "illegal stage transition");

	/* We owe the rest of a long response: the initiator asks for it with empty requests. */
	if (lg->rsp_pending) {
		if (data_len != 0 || req->cont)
			return fail(lg, rsp, ISCSI_LOGIN_INITIATOR_ERROR,
				    "text while a response is pending");
		emit(lg, rsp);
		return 0;
	}

	/* RFC 7143 6.1: a text split with the C bit is reassembled before it is parsed. */
	if (data_len > 0) {
		uint8_t *nb;

		if (data_len > ISCSI_LOGIN_TEXT_MAX - lg->req_len)
			return fail(lg, rsp, ISCSI_LOGIN_OUT_OF_RESOURCES, "login text too long");
		nb = realloc(lg->req, lg->req_len + data_len);
		if (nb == NULL)
			return -ENOMEM;
		lg->req = nb;
		memcpy(lg->req + lg->req_len, data, data_len);
		lg->req_len += data_len;
	}
	if (req->cont) {
		/* RFC 7143 11.13.2: acknowledge with an empty response, no transit. */
		rsp->csg = lg->stage;
		rsp->status = ISCSI_LOGIN_SUCCESS;
		return 0;
	}

	kv = calloc(ISCSI_TEXT_MAX_PAIRS, sizeof(*kv));
	if (kv == NULL)
		return -ENOMEM;
	r = iscsi_text_parse(lg->req, lg->req_len, kv, ISCSI_TEXT_MAX_PAIRS, &n);
	if (r != 0) {
		free(kv);
		return fail(lg, rsp, ISCSI_LOGIN_INITIATOR_ERROR, "malformed login text");
	}

	iscsi_text_buf_init(&out, lg->rsp, LOGIN_RSP_CAP);
	lg->rsp_len = lg->rsp_off = 0;
	if (!lg->started) {
		st = take_identity(lg, kv, n, &out);
		if (st != ISCSI_LOGIN_SUCCESS) {
			free(kv);
			return fail(lg, rsp, st, "identity");
		}
		/* RFC 7143 6.3: skipping the security stage is only allowed without CHAP. */
		if (req->csg == ISCSI_STAGE_OPERATIONAL) {
			if (lg->auth_required) {
				free(kv);
				return fail(lg, rsp, ISCSI_LOGIN_AUTH_FAILED,
					    "security stage skipped");
			}
			lg->authenticated = true;
		}
	}
	st = process_text(lg, req, kv, n, &out);
	lg->started = true;
	free(kv);
	lg->req_len = 0;
	if (st != ISCSI_LOGIN_SUCCESS)
		return fail(lg, rsp, st, "negotiation");

	lg->pending_transit = false;
	if (req->final) {
		if (req->csg == ISCSI_STAGE_SECURITY && !lg->authenticated) {
			/* Transit asked for but authentication is not complete: if it never
			 * started and is required, the initiator refused to authenticate. */
			if (lg->auth_required && lg->chap == CHAP_IDLE)
				return fail(lg, rsp, ISCSI_LOGIN_AUTH_FAILED, "no authentication");
			if (!lg->auth_required && !lg->auth_method_seen)
				lg->authenticated = true;
		}
		if (req->csg == ISCSI_STAGE_OPERATIONAL || lg->authenticated) {
			lg->pending_transit = true;
			lg->pending_nsg = req->nsg;
		}
	}
	/* Declare what we can receive before full feature phase if nobody asked. */
	if (lg->pending_transit && lg->pending_nsg == ISCSI_STAGE_FULL_FEATURE &&
	    !lg->mrdsl_declared) {
		lg->mrdsl_declared = true;
		lg->params.target_max_recv_dsl = ISCSI_TARGET_MAX_RECV_DSL;
		iscsi_text_addf(&out, "MaxRecvDataSegmentLength", "%u", ISCSI_TARGET_MAX_RECV_DSL);
	}
	if (out.overflow)
		return fail(lg, rsp, ISCSI_LOGIN_OUT_OF_RESOURCES, "response too long");
	lg->rsp_len = out.len;
	emit(lg, rsp);
	return 0;
}

/* ---- Full feature phase text requests (RFC 7143 11.10, 11.11) ------------------------- */

struct iscsi_text_state {
	const struct hf_config *cfg;
	uint16_t tpgt;
	int target_index;
	struct iscsi_params *params;
	uint32_t next_ttt;
	uint32_t ttt; /* the tag of the exchange in progress, or ISCSI_RSVD_TAG */
	uint32_t itt;
	uint8_t *req; /* request text assembled from PDUs with the C bit */
	size_t req_len;
	uint8_t *rsp; /* response text, sent in pieces */
	size_t rsp_len, rsp_off, rsp_cap;
	bool rsp_final;		/* the request that produced rsp had F set */
	uint32_t pending_mrdsl; /* a MaxRecvDataSegmentLength to apply after the response */
};

int iscsi_text_create(const struct hf_config *cfg, uint16_t tpgt, int target_index,
		      struct iscsi_params *params, struct iscsi_text_state **out)
{
	struct iscsi_text_state *ts = calloc(1, sizeof(*ts));

	if (ts == NULL)
		return -ENOMEM;
	ts->cfg = cfg;
	ts->tpgt = tpgt;
	ts->target_index = target_index;
	ts->params = params;
	ts->next_ttt = 1;
	ts->ttt = ISCSI_RSVD_TAG;
	*out = ts;
	return 0;
}

void iscsi_text_destroy(struct iscsi_text_state *ts)
{
	if (ts == NULL)
		return;
	free(ts->req);
	free(ts->rsp);
	free(ts);
}

static uint32_t text_new_ttt(struct iscsi_text_state *ts)
{
	uint32_t t = ts->next_ttt++;

	if (ts->next_ttt == ISCSI_RSVD_TAG)
		ts->next_ttt = 1;
	return t;
}

static void text_reset(struct iscsi_text_state *ts)
{
	ts->ttt = ISCSI_RSVD_TAG;
	ts->pending_mrdsl = 0;
	ts->req_len = 0;
	ts->rsp_len = ts->rsp_off = 0;
}

/* RFC 7143 Appendix C (SendTargets): TargetName, then one TargetAddress per portal of the
 * target as address:port,tpgt; an IPv6 address goes in brackets. */
static int add_target_record(struct iscsi_text_state *ts, struct iscsi_text_buf *out,
			     const struct hf_target *t)
{
	iscsi_text_add(out, "TargetName", t->iqn);
	for (size_t i = 0; i < t->nportals; i++) {
		int pi = t->portals[i];
		const struct hf_portal *p;

		if (pi < 0 || (size_t)pi >= ts->cfg->nportals)
			continue;
		p = &ts->cfg->portals[pi];
		if (strchr(p->address, ':'))
			iscsi_text_addf(out, "TargetAddress", "[%s]:%u,%u", p->address, p->port,
					p->tpgt);
		else
			iscsi_text_addf(out, "TargetAddress", "%s:%u,%u", p->address, p->port,
					p->tpgt);
	}
	return out->overflow ? -ENOSPC : 0;
}

static int send_targets(struct iscsi_text_state *ts, const struct iscsi_kv *kv,
			struct iscsi_text_buf *out)
{
	bool discovery = ts->target_index < 0;

	if (iscsi_kv_value_is(kv, "All")) {
		/* RFC 7143 Appendix C: "All" belongs to discovery sessions. */
		if (!discovery)
			return add_reject(out, "SendTargets");
		for (size_t i = 0; i < ts->cfg->ntargets; i++)
			if (target_on_tpgt(ts->cfg, &ts->cfg->targets[i], ts->tpgt))
				add_target_record(ts, out, &ts->cfg->targets[i]);
		return out->overflow ? -ENOSPC : 0;
	}
	if (kv->value_len == 0) {
		/* An empty value asks about the session's own target. */
		if (discovery)
			return add_reject(out, "SendTargets");
		return add_target_record(ts, out, &ts->cfg->targets[ts->target_index]);
	}
	/* A single name: report it if this portal group serves it, else report nothing. */
	{
		int ti = find_target(ts->cfg, ts->tpgt, kv->value, kv->value_len);

		if (ti >= 0 && (discovery || ti == ts->target_index))
			return add_target_record(ts, out, &ts->cfg->targets[ti]);
	}
	return 0;
}

/* Build the whole answer to one request text into ts->rsp, growing it when needed. Returns
 * 0, -EBADMSG for a malformed text, or -ENOMEM. */
static int text_answer(struct iscsi_text_state *ts, const struct iscsi_kv *kv, size_t n,
		       uint32_t *new_mrdsl)
{
	size_t cap = ts->rsp_cap ? ts->rsp_cap : 8192;

	for (;;) {
		struct iscsi_text_buf out;

		if (cap > ts->rsp_cap) {
			uint8_t *nb = realloc(ts->rsp, cap);

			if (nb == NULL)
				return -ENOMEM;
			ts->rsp = nb;
			ts->rsp_cap = cap;
		}
		iscsi_text_buf_init(&out, ts->rsp, ts->rsp_cap);
		*new_mrdsl = 0;
		for (size_t i = 0; i < n; i++) {
			int id = key_lookup(&kv[i]);
			uint64_t v;

			if (id < 0) {
				add_not_understood(&out, &kv[i]);
				continue;
			}
			switch (keys[id].kind) {
			case KK_SEND_TARGETS:
				send_targets(ts, &kv[i], &out);
				break;
			case KK_MRDSL:
				/* RFC 7143 13.12: the one key an initiator may declare again in
				 * full feature phase; it applies after this exchange. */
				if (iscsi_kv_value_u64(&kv[i], &v) || v < DSL_MIN || v > DSL_MAX) {
					add_reject(&out, keys[id].name);
					break;
				}
				*new_mrdsl = (uint32_t)v;
				iscsi_text_addf(&out, keys[id].name, "%u",
						ts->params->target_max_recv_dsl);
				break;
			case KK_DECL_IGNORED:
			case KK_NUM_MIN:
			case KK_NUM_MAX:
			case KK_BOOL_OR:
			case KK_BOOL_AND:
			case KK_DIGEST:
			case KK_MARKER:
			case KK_MARKINT:
			case KK_TASK_REPORTING:
			case KK_IDENTITY:
			case KK_TARGET_ONLY:
			case KK_SECURITY:
			default:
				/* Login-only keys cannot be renegotiated in full feature phase. */
				add_reject(&out, keys[id].name);
				break;
			}
		}
		if (!out.overflow) {
			ts->rsp_len = out.len;
			ts->rsp_off = 0;
			return 0;
		}
		if (cap >= TEXT_RSP_MAX)
			return -ENOMEM;
		cap *= 2;
	}
}

static void text_emit(struct iscsi_text_state *ts, struct iscsi_text_rsp *rsp)
{
	uint32_t chunk =
		ts->params->initiator_max_recv_dsl ? ts->params->initiator_max_recv_dsl : 8192;
	size_t left = ts->rsp_len - ts->rsp_off;
	size_t len = left > chunk ? chunk : left;

	rsp->data = len ? ts->rsp + ts->rsp_off : NULL;
	rsp->data_len = (uint32_t)len;
	ts->rsp_off += len;
	if (ts->rsp_off < ts->rsp_len) {
		/* RFC 7143 11.11.2: C set, F clear; the initiator asks for the rest with empty
		 * requests carrying our Target Transfer Tag. */
		rsp->cont = true;
		rsp->final = false;
		if (ts->ttt == ISCSI_RSVD_TAG)
			ts->ttt = text_new_ttt(ts);
		rsp->ttt = ts->ttt;
		return;
	}
	rsp->cont = false;
	/* A new MaxRecvDataSegmentLength governs the PDUs after this response (RFC 7143
	 * 13.12), not the pieces of the response that declared it. */
	if (ts->pending_mrdsl) {
		ts->params->initiator_max_recv_dsl = ts->pending_mrdsl;
		ts->pending_mrdsl = 0;
	}
	if (ts->rsp_final) {
		rsp->final = true;
		rsp->ttt = ISCSI_RSVD_TAG;
		text_reset(ts);
	} else {
		/* The initiator said more negotiation follows: keep the exchange open. */
		rsp->final = false;
		if (ts->ttt == ISCSI_RSVD_TAG)
			ts->ttt = text_new_ttt(ts);
		rsp->ttt = ts->ttt;
		ts->rsp_len = ts->rsp_off = 0;
	}
}

int iscsi_text_step(struct iscsi_text_state *ts, const struct iscsi_pdu *req, const uint8_t *data,
		    uint32_t data_len, struct iscsi_text_rsp *rsp)
{
	struct iscsi_kv *kv;
	uint32_t new_mrdsl = 0;
	size_t n;
	int r;

	memset(rsp, 0, sizeof(*rsp));
	rsp->ttt = ISCSI_RSVD_TAG;
	if (data == NULL)
		data_len = 0;
	if (req->opcode != ISCSI_OP_TEXT_REQ || (req->final && req->cont)) {
		rsp->reject = true;
		return 0;
	}
	/* RFC 7143 11.10.4: a reserved tag starts a new exchange and drops an old one; any
	 * other tag must be the one we handed out, for the same task. */
	if (req->ttt == ISCSI_RSVD_TAG) {
		text_reset(ts);
		ts->itt = req->itt;
	} else if (req->ttt != ts->ttt || req->itt != ts->itt) {
		rsp->reject = true;
		return 0;
	}

	if (ts->rsp_off < ts->rsp_len) {
		/* The initiator asks for the next piece; it may not add text meanwhile. */
		if (data_len != 0 || req->cont) {
			text_reset(ts);
			rsp->reject = true;
			return 0;
		}
		text_emit(ts, rsp);
		return 0;
	}

	if (data_len > 0) {
		uint8_t *nb;

		if (data_len > ISCSI_LOGIN_TEXT_MAX - ts->req_len) {
			text_reset(ts);
			rsp->reject = true;
			return 0;
		}
		nb = realloc(ts->req, ts->req_len + data_len);
		if (nb == NULL)
			return -ENOMEM;
		ts->req = nb;
		memcpy(ts->req + ts->req_len, data, data_len);
		ts->req_len += data_len;
	}
	if (req->cont) {
		/* RFC 7143 11.11.2: an empty answer with a tag to continue on. */
		if (ts->ttt == ISCSI_RSVD_TAG)
			ts->ttt = text_new_ttt(ts);
		rsp->ttt = ts->ttt;
		return 0;
	}

	kv = calloc(ISCSI_TEXT_MAX_PAIRS, sizeof(*kv));
	if (kv == NULL)
		return -ENOMEM;
	r = iscsi_text_parse(ts->req, ts->req_len, kv, ISCSI_TEXT_MAX_PAIRS, &n);
	ts->req_len = 0;
	if (r != 0) {
		free(kv);
		text_reset(ts);
		rsp->reject = true;
		return 0;
	}
	r = text_answer(ts, kv, n, &new_mrdsl);
	free(kv);
	if (r != 0) {
		text_reset(ts);
		return r;
	}
	ts->rsp_final = req->final;
	ts->pending_mrdsl = new_mrdsl;
	text_emit(ts, rsp);
	return 0;
}
