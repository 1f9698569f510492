/* The login state machine (RFC 7143 sections 6, 12, 13) and full-feature text requests. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/log.h"
#include "target/iscsi_chap.h"
#include "target/iscsi_login.h"
#include "target/iscsi_text.h"

#define GOOD_INI   "iqn.1994-05.com.example:good"
#define OPEN_TGT   "iqn.2024-01.org.holdfast:open"
#define SECURE_TGT "iqn.2024-01.org.holdfast:secure"
#define OTHER_TGT  "iqn.2024-01.org.holdfast:other"

static struct hf_portal portals[] = {
	{.name = "p4", .address = "127.0.0.1", .port = 3260, .tpgt = 1},
	{.name = "p6", .address = "::1", .port = 3260, .tpgt = 1},
	{.name = "px", .address = "10.0.0.1", .port = 3261, .tpgt = 2},
};
static int open_portals[] = {0, 1};
static int secure_portals[] = {0};
static int other_portals[] = {2};
static char acl[][HF_IQN_MAX] = {GOOD_INI};
static struct hf_chap users[] = {{.user = "alice", .secret = "alicesecret12"}};
static struct hf_chap disc_users[] = {{.user = "disc", .secret = "discsecret123"}};
static struct hf_target targets[] = {
	{.iqn = OPEN_TGT, .alias = "open disk", .portals = open_portals, .nportals = 2},
	{.iqn = SECURE_TGT,
	 .portals = secure_portals,
	 .nportals = 1,
	 .acl = acl,
	 .nacl = 1,
	 .chap = users,
	 .nchap = 1,
	 .mutual = {.user = "tgt", .secret = "targetsecret1"},
	 .has_mutual = 1},
	{.iqn = OTHER_TGT, .portals = other_portals, .nportals = 1},
};
static struct hf_config cfg = {
	.portals = portals, .nportals = 3, .targets = targets, .ntargets = 3};

struct fx {
	struct iscsi_login_state *lg;
	struct iscsi_login_rsp rsp;
	uint16_t tsih;
	char text[16384];
};

static int setup(void **state)
{
	static struct fx f;

	memset(&f, 0, sizeof(f));
	cfg.discovery_chap = NULL;
	cfg.ndiscovery_chap = 0;
	if (iscsi_login_create(&cfg, 1, &f.lg) != 0)
		return -1;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	iscsi_login_destroy(f->lg);
	return 0;
}

/* Send one login PDU; text is given with '|' for each NUL separator. */
static struct iscsi_login_rsp *step(struct fx *f, bool t, bool c, int csg, int nsg,
				    const char *text)
{
	struct iscsi_pdu req = {.opcode = ISCSI_OP_LOGIN_REQ, .immediate = true};
	size_t len = strlen(text);

	assert_true(len < sizeof(f->text));
	memcpy(f->text, text, len);
	for (size_t i = 0; i < len; i++)
		if (f->text[i] == '|')
			f->text[i] = '\0';
	req.final = t;
	req.cont = c;
	req.csg = csg;
	req.nsg = nsg;
	req.tsih = f->tsih;
	req.isid[0] = 0x80;
	assert_int_equal(iscsi_login_step(f->lg, &req, (uint8_t *)f->text, len, &f->rsp), 0);
	return &f->rsp;
}

/* The value of key in a response, or NULL. */
static const char *rsp_value(const struct iscsi_login_rsp *r, const char *key)
{
	static char val[ISCSI_TEXT_BIG_VALUE_MAX + 1];
	struct iscsi_kv kv[ISCSI_TEXT_MAX_PAIRS];
	size_t n;

	if (iscsi_text_parse(r->data, r->data_len, kv, ISCSI_TEXT_MAX_PAIRS, &n) != 0)
		fail_msg("response text does not parse");
	for (size_t i = 0; i < n; i++)
		if (iscsi_kv_key_is(&kv[i], key)) {
			iscsi_kv_value_copy(&kv[i], val, sizeof(val));
			return val;
		}
	return NULL;
}

#define assert_rsp_value(r, key, want)                                                             \
	do {                                                                                       \
		const char *v_ = rsp_value(r, key);                                                \
		if (v_ == NULL)                                                                    \
			fail_msg("%s missing from response", key);                                 \
		assert_string_equal(v_, want);                                                     \
	} while (0)

static void assert_failed(const struct iscsi_login_rsp *r, uint16_t status)
{
	assert_int_equal(r->status, status);
	assert_true(r->close);
	assert_false(r->to_ffp);
}

static void test_security_none_jumps_to_ffp(void **state)
{
	struct fx *f = *state;
	struct iscsi_login_rsp *r;

	r = step(f, true, false, 0, 3,
		 "InitiatorName=" GOOD_INI "|TargetName=" OPEN_TGT "|AuthMethod=None|");
	assert_int_equal(r->status, ISCSI_LOGIN_SUCCESS);
	assert_true(r->transit);
	assert_true(r->to_ffp);
	assert_int_equal(r->csg, 0);
	assert_int_equal(r->nsg, 3);
	assert_rsp_value(r, "AuthMethod", "None");
	assert_rsp_value(r, "TargetPortalGroupTag", "1");
	assert_rsp_value(r, "TargetAlias", "open disk");
	assert_rsp_value(r, "MaxRecvDataSegmentLength", "262144");
	assert_int_equal(iscsi_login_session_type(f->lg), ISCSI_SESSION_NORMAL);
	assert_int_equal(iscsi_login_target_index(f->lg), 0);
	assert_string_equal(iscsi_login_initiator_name(f->lg), GOOD_INI);
	assert_int_equal(iscsi_login_params(f->lg)->target_max_recv_dsl, 262144);
}

static void test_operational_results_follow_rfc_functions(void **state)
{
	struct fx *f = *state;
	const struct iscsi_params *p = iscsi_login_params(f->lg);
	struct iscsi_login_rsp *r;

	r = step(f, true, false, 1, 3,
		 "InitiatorName=" GOOD_INI "|InitiatorAlias=host1|TargetName=" OPEN_TGT
		 "|HeaderDigest=CRC32C,None|DataDigest=None,CRC32C|FirstBurstLength=262144"
		 "|MaxBurstLength=65536|InitialR2T=No|ImmediateData=Yes"
		 "|MaxRecvDataSegmentLength=131072|DefaultTime2Wait=0|DefaultTime2Retain=0"
		 "|ErrorRecoveryLevel=2|MaxOutstandingR2T=100|MaxConnections=4"
		 "|DataPDUInOrder=No|IFMarker=Yes|OFMarkInt=2048|X-com.example.k=1|Foo=bar|");
	assert_int_equal(r->status, ISCSI_LOGIN_SUCCESS);
	assert_true(r->to_ffp);
	assert_rsp_value(r, "HeaderDigest", "CRC32C");
	assert_rsp_value(r, "DataDigest", "None");
	assert_rsp_value(r, "MaxBurstLength", "65536");
	assert_rsp_value(r, "FirstBurstLength", "65536"); /* <= MaxBurstLength */
	assert_rsp_value(r, "InitialR2T", "No");
	assert_rsp_value(r, "ImmediateData", "Yes");
	assert_rsp_value(r, "DefaultTime2Wait", "2");	/* max */
	assert_rsp_value(r, "DefaultTime2Retain", "0"); /* min */
	assert_rsp_value(r, "ErrorRecoveryLevel", "0");
	assert_rsp_value(r, "MaxOutstandingR2T", "8");
	assert_rsp_value(r, "MaxConnections", "4");
	assert_rsp_value(r, "DataPDUInOrder", "Yes"); /* OR with our Yes */
	assert_rsp_value(r, "IFMarker", "No");
	assert_rsp_value(r, "OFMarkInt", "Reject");
	assert_rsp_value(r, "X-com.example.k", "NotUnderstood");
	assert_rsp_value(r, "Foo", "NotUnderstood");
	assert_null(rsp_value(r, "InitiatorAlias"));
	assert_true(p->header_digest);
	assert_false(p->data_digest);
	assert_int_equal(p->max_burst, 65536);
	assert_int_equal(p->first_burst, 65536);
	assert_false(p->initial_r2t);
	assert_true(p->immediate_data);
	assert_int_equal(p->initiator_max_recv_dsl, 131072);
	assert_int_equal(p->default_time2wait, 2);
	assert_int_equal(p->default_time2retain, 0);
	assert_int_equal(p->max_outstanding_r2t, 8);
	assert_int_equal(p->max_connections, 4);
	assert_string_equal(iscsi_login_initiator_alias(f->lg), "host1");
}

static void test_defaults_when_initiator_offers_nothing(void **state)
{
	struct fx *f = *state;
	const struct iscsi_params *p = iscsi_login_params(f->lg);

	step(f, true, false, 1, 3, "InitiatorName=" GOOD_INI "|TargetName=" OPEN_TGT "|");
	assert_true(f->rsp.to_ffp);
	assert_int_equal(p->initiator_max_recv_dsl, 8192);
	assert_int_equal(p->max_burst, 262144);
	assert_int_equal(p->first_burst, 65536);
	assert_true(p->initial_r2t);
	assert_true(p->immediate_data);
	assert_false(p->header_digest);
	assert_int_equal(p->max_outstanding_r2t, 1);
}

static void test_out_of_range_values_are_rejected_and_keep_default(void **state)
{
	struct fx *f = *state;
	const struct iscsi_params *p = iscsi_login_params(f->lg);
	struct iscsi_login_rsp *r;

	r = step(f, true, false, 1, 3,
		 "InitiatorName=" GOOD_INI "|TargetName=" OPEN_TGT
		 "|MaxRecvDataSegmentLength=511|MaxBurstLength=16777216|InitialR2T=Maybe"
		 "|HeaderDigest=MD5|ErrorRecoveryLevel=abc|");
	assert_int_equal(r->status, ISCSI_LOGIN_SUCCESS);
	assert_rsp_value(r, "MaxRecvDataSegmentLength", "Reject");
	assert_rsp_value(r, "MaxBurstLength", "Reject");
	assert_rsp_value(r, "InitialR2T", "Reject");
	assert_rsp_value(r, "HeaderDigest", "Reject");
	assert_rsp_value(r, "ErrorRecoveryLevel", "Reject");
	assert_int_equal(p->initiator_max_recv_dsl, 8192);
	assert_int_equal(p->max_burst, 262144);
	assert_true(p->initial_r2t);
}

static void test_missing_initiator_name(void **state)
{
	struct fx *f = *state;

	assert_failed(step(f, true, false, 0, 3, "TargetName=" OPEN_TGT "|AuthMethod=None|"),
		      ISCSI_LOGIN_MISSING_PARAMETER);
}

static void test_missing_target_name_in_normal_session(void **state)
{
	struct fx *f = *state;

	assert_failed(step(f, true, false, 0, 3, "InitiatorName=" GOOD_INI "|AuthMethod=None|"),
		      ISCSI_LOGIN_MISSING_PARAMETER);
}

static void test_unknown_target_not_found(void **state)
{
	struct fx *f = *state;

	assert_failed(step(f, true, false, 0, 3,
			   "InitiatorName=" GOOD_INI "|TargetName=iqn.2024-01.org.nope:x|"),
		      ISCSI_LOGIN_NOT_FOUND);
}

static void test_target_of_another_portal_group_not_found(void **state)
{
	struct fx *f = *state;

	assert_failed(
		step(f, true, false, 0, 3, "InitiatorName=" GOOD_INI "|TargetName=" OTHER_TGT "|"),
		ISCSI_LOGIN_NOT_FOUND);
}

static void test_acl_refuses_other_initiator(void **state)
{
	struct fx *f = *state;

	assert_failed(step(f, false, false, 0, 1,
			   "InitiatorName=iqn.1994-05.com.example:bad|TargetName=" SECURE_TGT
			   "|AuthMethod=CHAP|"),
		      ISCSI_LOGIN_FORBIDDEN);
}

static void test_version_min_above_zero_unsupported(void **state)
{
	struct fx *f = *state;
	struct iscsi_pdu req = {.opcode = ISCSI_OP_LOGIN_REQ,
				.final = true,
				.nsg = 3,
				.version_min = 1,
				.version_max = 1};

	assert_int_equal(iscsi_login_step(f->lg, &req, NULL, 0, &f->rsp), 0);
	assert_failed(&f->rsp, ISCSI_LOGIN_UNSUPPORTED_VERSION);
}

static void test_illegal_stage_transitions(void **state)
{
	struct fx *f = *state;

	/* Operational to operational is not a transition. */
	assert_failed(
		step(f, true, false, 1, 1, "InitiatorName=" GOOD_INI "|TargetName=" OPEN_TGT "|"),
		ISCSI_LOGIN_INITIATOR_ERROR);
}

static void test_reserved_next_stage_is_an_error(void **state)
{
	struct fx *f = *state;

	assert_failed(
		step(f, true, false, 0, 2, "InitiatorName=" GOOD_INI "|TargetName=" OPEN_TGT "|"),
		ISCSI_LOGIN_INITIATOR_ERROR);
}

static void test_csg_must_follow_previous_transit(void **state)
{
	struct fx *f = *state;

	step(f, false, false, 0, 0, "InitiatorName=" GOOD_INI "|TargetName=" OPEN_TGT "|");
	assert_int_equal(f->rsp.status, 0);
	/* Still in security stage: a request claiming the operational stage is illegal. */
	assert_failed(step(f, true, false, 1, 3, "MaxBurstLength=65536|"),
		      ISCSI_LOGIN_INITIATOR_ERROR);
}

static void test_transit_and_continue_together_is_an_error(void **state)
{
	struct fx *f = *state;

	assert_failed(step(f, true, true, 0, 3, "InitiatorName=" GOOD_INI),
		      ISCSI_LOGIN_INITIATOR_ERROR);
}

static void test_duplicate_key_in_request_is_initiator_error(void **state)
{
	struct fx *f = *state;

	assert_failed(step(f, true, false, 1, 3,
			   "InitiatorName=" GOOD_INI "|TargetName=" OPEN_TGT
			   "|MaxBurstLength=512|MaxBurstLength=1024|"),
		      ISCSI_LOGIN_INITIATOR_ERROR);
}

static void test_key_negotiated_twice_across_pdus_is_initiator_error(void **state)
{
	struct fx *f = *state;

	step(f, false, false, 1, 0,
	     "InitiatorName=" GOOD_INI "|TargetName=" OPEN_TGT "|MaxBurstLength=512|");
	assert_int_equal(f->rsp.status, 0);
	assert_failed(step(f, true, false, 1, 3, "MaxBurstLength=1024|"),
		      ISCSI_LOGIN_INITIATOR_ERROR);
}

static void test_malformed_text_is_initiator_error(void **state)
{
	struct fx *f = *state;

	assert_failed(step(f, true, false, 1, 3, "InitiatorName=" GOOD_INI "|TargetName"),
		      ISCSI_LOGIN_INITIATOR_ERROR);
}

static void test_chap_required_and_initiator_offers_none(void **state)
{
	struct fx *f = *state;

	assert_failed(step(f, false, false, 0, 1,
			   "InitiatorName=" GOOD_INI "|TargetName=" SECURE_TGT "|AuthMethod=None|"),
		      ISCSI_LOGIN_AUTH_FAILED);
}

static void test_chap_required_and_security_stage_skipped(void **state)
{
	struct fx *f = *state;

	assert_failed(
		step(f, true, false, 1, 3, "InitiatorName=" GOOD_INI "|TargetName=" SECURE_TGT "|"),
		ISCSI_LOGIN_AUTH_FAILED);
}

static void test_chap_required_and_transit_without_auth_method(void **state)
{
	struct fx *f = *state;

	assert_failed(
		step(f, true, false, 0, 3, "InitiatorName=" GOOD_INI "|TargetName=" SECURE_TGT "|"),
		ISCSI_LOGIN_AUTH_FAILED);
}

/* Run AuthMethod and CHAP_A, and return the target's identifier and challenge. */
static void chap_begin(struct fx *f, uint8_t *id, uint8_t *chal, size_t *clen)
{
	struct iscsi_login_rsp *r;
	const char *v;

	r = step(f, false, false, 0, 1,
		 "InitiatorName=" GOOD_INI "|TargetName=" SECURE_TGT "|AuthMethod=CHAP,None|");
	assert_int_equal(r->status, 0);
	assert_false(r->transit);
	assert_rsp_value(r, "AuthMethod", "CHAP");
	r = step(f, false, false, 0, 1, "CHAP_A=7,5|");
	assert_int_equal(r->status, 0);
	assert_rsp_value(r, "CHAP_A", "5");
	*id = (uint8_t)atoi(rsp_value(r, "CHAP_I"));
	v = rsp_value(r, "CHAP_C");
	assert_non_null(v);
	assert_int_equal(iscsi_chap_decode(v, strlen(v), chal, 64, clen), 0);
	assert_int_equal(*clen, ISCSI_CHAP_CHALLENGE_LEN);
}

static void chap_answer(uint8_t id, const char *secret, const uint8_t *chal, size_t clen, char *hex)
{
	uint8_t md[16];

	iscsi_chap_md5(id, secret, strlen(secret), chal, clen, md);
	iscsi_chap_encode_hex(md, 16, hex, 35);
}

static void test_chap_one_way_success(void **state)
{
	struct fx *f = *state;
	uint8_t id, chal[64];
	size_t clen;
	char hex[35], text[128];
	struct iscsi_login_rsp *r;

	chap_begin(f, &id, chal, &clen);
	chap_answer(id, "alicesecret12", chal, clen, hex);
	snprintf(text, sizeof(text), "CHAP_N=alice|CHAP_R=%s|", hex);
	r = step(f, true, false, 0, 1, text);
	assert_int_equal(r->status, ISCSI_LOGIN_SUCCESS);
	assert_true(r->transit);
	assert_int_equal(r->nsg, 1);
	assert_null(rsp_value(r, "CHAP_R"));
	r = step(f, true, false, 1, 3, "ImmediateData=No|");
	assert_int_equal(r->status, 0);
	assert_true(r->to_ffp);
	assert_int_equal(iscsi_login_target_index(f->lg), 1);
}

static void test_chap_wrong_response_fails(void **state)
{
	struct fx *f = *state;
	uint8_t id, chal[64];
	size_t clen;
	char hex[35], text[128];

	chap_begin(f, &id, chal, &clen);
	chap_answer(id, "wrongsecret12", chal, clen, hex);
	snprintf(text, sizeof(text), "CHAP_N=alice|CHAP_R=%s|", hex);
	assert_failed(step(f, true, false, 0, 1, text), ISCSI_LOGIN_AUTH_FAILED);
}

static void test_chap_wrong_name_fails(void **state)
{
	struct fx *f = *state;
	uint8_t id, chal[64];
	size_t clen;
	char hex[35], text[128];

	chap_begin(f, &id, chal, &clen);
	chap_answer(id, "alicesecret12", chal, clen, hex);
	snprintf(text, sizeof(text), "CHAP_N=mallory|CHAP_R=%s|", hex);
	assert_failed(step(f, true, false, 0, 1, text), ISCSI_LOGIN_AUTH_FAILED);
}

static void test_chap_unsupported_algorithm_fails(void **state)
{
	struct fx *f = *state;

	step(f, false, false, 0, 1,
	     "InitiatorName=" GOOD_INI "|TargetName=" SECURE_TGT "|AuthMethod=CHAP|");
	assert_failed(step(f, false, false, 0, 1, "CHAP_A=6,7|"), ISCSI_LOGIN_AUTH_FAILED);
}

static void test_chap_transit_held_until_authenticated(void **state)
{
	struct fx *f = *state;
	struct iscsi_login_rsp *r;

	r = step(f, true, false, 0, 1,
		 "InitiatorName=" GOOD_INI "|TargetName=" SECURE_TGT "|AuthMethod=CHAP|");
	assert_int_equal(r->status, 0);
	assert_false(r->transit);
	assert_int_equal(r->csg, 0);
}

static void test_mutual_chap_success(void **state)
{
	struct fx *f = *state;
	uint8_t id, chal[64], mine[16], got[16];
	size_t clen, glen;
	char hex[35], text[256];
	struct iscsi_login_rsp *r;
	const char *v;

	for (int i = 0; i < 16; i++)
		mine[i] = 0xa0 + i;
	chap_begin(f, &id, chal, &clen);
	chap_answer(id, "alicesecret12", chal, clen, hex);
	snprintf(text, sizeof(text),
		 "CHAP_N=alice|CHAP_R=%s|CHAP_I=77|CHAP_C=0xa0a1a2a3a4a5a6a7a8a9aaabacadaeaf|",
		 hex);
	r = step(f, true, false, 0, 3, text);
	assert_int_equal(r->status, ISCSI_LOGIN_SUCCESS);
	assert_true(r->to_ffp);
	assert_rsp_value(r, "CHAP_N", "tgt");
	v = rsp_value(r, "CHAP_R");
	assert_non_null(v);
	assert_int_equal(iscsi_chap_decode(v, strlen(v), got, sizeof(got), &glen), 0);
	assert_int_equal(glen, 16);
	chap_answer(77, "targetsecret1", mine, 16, hex);
	assert_string_equal(v, hex);
}

static void test_mutual_chap_reflected_challenge_fails(void **state)
{
	struct fx *f = *state;
	uint8_t id, chal[64];
	size_t clen;
	char hex[35], chex[35], text[256];

	chap_begin(f, &id, chal, &clen);
	chap_answer(id, "alicesecret12", chal, clen, hex);
	iscsi_chap_encode_hex(chal, clen, chex, sizeof(chex));
	snprintf(text, sizeof(text), "CHAP_N=alice|CHAP_R=%s|CHAP_I=%u|CHAP_C=%s|", hex, id, chex);
	assert_failed(step(f, true, false, 0, 3, text), ISCSI_LOGIN_AUTH_FAILED);
}

static void test_mutual_chap_without_target_credentials_fails(void **state)
{
	struct fx *f = *state;
	uint8_t id, chal[64];
	size_t clen;
	char hex[35], text[256];

	targets[1].has_mutual = 0;
	chap_begin(f, &id, chal, &clen);
	chap_answer(id, "alicesecret12", chal, clen, hex);
	snprintf(text, sizeof(text), "CHAP_N=alice|CHAP_R=%s|CHAP_I=1|CHAP_C=0x0102030405|", hex);
	step(f, true, false, 0, 3, text);
	targets[1].has_mutual = 1;
	assert_failed(&f->rsp, ISCSI_LOGIN_AUTH_FAILED);
}

static void test_discovery_requires_chap_when_configured(void **state)
{
	struct fx *f = *state;

	cfg.discovery_chap = disc_users;
	cfg.ndiscovery_chap = 1;
	assert_failed(step(f, true, false, 0, 3,
			   "InitiatorName=" GOOD_INI "|SessionType=Discovery|AuthMethod=None|"),
		      ISCSI_LOGIN_AUTH_FAILED);
}

static void test_discovery_session_irrelevant_keys(void **state)
{
	struct fx *f = *state;
	struct iscsi_login_rsp *r;

	r = step(f, true, false, 1, 3,
		 "InitiatorName=" GOOD_INI "|SessionType=Discovery|InitialR2T=No"
		 "|MaxBurstLength=512|HeaderDigest=None|");
	assert_int_equal(r->status, 0);
	assert_true(r->to_ffp);
	assert_rsp_value(r, "InitialR2T", "Irrelevant");
	assert_rsp_value(r, "MaxBurstLength", "Irrelevant");
	assert_rsp_value(r, "HeaderDigest", "None");
	assert_null(rsp_value(r, "TargetPortalGroupTag"));
	assert_int_equal(iscsi_login_session_type(f->lg), ISCSI_SESSION_DISCOVERY);
	assert_int_equal(iscsi_login_target_index(f->lg), -1);
}

static void test_unknown_session_type(void **state)
{
	struct fx *f = *state;

	assert_failed(step(f, true, false, 1, 3, "InitiatorName=" GOOD_INI "|SessionType=Other|"),
		      ISCSI_LOGIN_SESSION_TYPE_UNSUPPORTED);
}

static void test_non_leading_connection_leading_only_keys_irrelevant(void **state)
{
	struct fx *f = *state;
	struct iscsi_login_rsp *r;

	f->tsih = 5;
	r = step(f, true, false, 1, 3,
		 "InitiatorName=" GOOD_INI "|TargetName=" OPEN_TGT
		 "|MaxBurstLength=512|MaxRecvDataSegmentLength=65536|HeaderDigest=CRC32C|");
	assert_int_equal(r->status, 0);
	assert_rsp_value(r, "MaxBurstLength", "Irrelevant");
	assert_rsp_value(r, "MaxRecvDataSegmentLength", "262144");
	assert_rsp_value(r, "HeaderDigest", "CRC32C");
}

static void test_continued_request_text_is_reassembled(void **state)
{
	struct fx *f = *state;
	struct iscsi_login_rsp *r;

	r = step(f, false, true, 1, 0, "InitiatorName=iqn.1994-05.com.exa");
	assert_int_equal(r->status, 0);
	assert_int_equal(r->data_len, 0);
	assert_false(r->transit);
	r = step(f, true, false, 1, 3, "mple:good|TargetName=" OPEN_TGT "|");
	assert_int_equal(r->status, 0);
	assert_true(r->to_ffp);
	assert_string_equal(iscsi_login_initiator_name(f->lg), GOOD_INI);
}

static void test_long_response_is_continued(void **state)
{
	struct fx *f = *state;
	static char text[16384];
	struct iscsi_login_rsp *r;
	size_t off, total;

	off = (size_t)snprintf(text, sizeof(text),
			       "InitiatorName=" GOOD_INI "|TargetName=" OPEN_TGT "|");
	/* 120 unknown 60-byte keys: each answered NotUnderstood, about 9 KB in all. */
	for (int i = 0; i < 120; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "X-%058d=1|", i);
	r = step(f, true, false, 1, 3, text);
	assert_int_equal(r->status, 0);
	total = r->data_len;
	assert_true(f->rsp.cont);
	assert_false(f->rsp.transit);
	assert_int_equal(f->rsp.data_len, 8192);
	r = step(f, true, false, 1, 3, "");
	assert_int_equal(r->status, 0);
	assert_false(r->cont);
	assert_true(r->transit);
	assert_true(r->to_ffp);
	total += r->data_len;
	assert_true(total > 8192);
}

static void test_text_while_response_pending_is_error(void **state)
{
	struct fx *f = *state;
	static char text[16384];
	size_t off;

	off = (size_t)snprintf(text, sizeof(text),
			       "InitiatorName=" GOOD_INI "|TargetName=" OPEN_TGT "|");
	for (int i = 0; i < 110; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "X-%060d=1|", i);
	step(f, true, false, 1, 3, text);
	assert_true(f->rsp.cont);
	assert_failed(step(f, true, false, 1, 3, "ImmediateData=No|"), ISCSI_LOGIN_INITIATOR_ERROR);
}

static void test_target_only_key_from_initiator_is_error(void **state)
{
	struct fx *f = *state;

	assert_failed(step(f, true, false, 1, 3,
			   "InitiatorName=" GOOD_INI "|TargetName=" OPEN_TGT
			   "|TargetPortalGroupTag=1|"),
		      ISCSI_LOGIN_INITIATOR_ERROR);
}

static void test_failed_login_stays_failed(void **state)
{
	struct fx *f = *state;

	step(f, true, false, 1, 3, "TargetName=" OPEN_TGT "|");
	assert_failed(
		step(f, true, false, 1, 3, "InitiatorName=" GOOD_INI "|TargetName=" OPEN_TGT "|"),
		ISCSI_LOGIN_INITIATOR_ERROR);
}

/* ---- Text requests in full feature phase ---- */

struct tfx {
	struct iscsi_text_state *ts;
	struct iscsi_params params;
	struct iscsi_text_rsp rsp;
	char buf[4096];
};

static struct iscsi_text_rsp *tstep(struct tfx *t, bool final, bool cont, uint32_t ttt,
				    const char *text)
{
	struct iscsi_pdu req = {
		.opcode = ISCSI_OP_TEXT_REQ, .final = final, .cont = cont, .itt = 9, .ttt = ttt};
	size_t len = strlen(text);

	memcpy(t->buf, text, len);
	for (size_t i = 0; i < len; i++)
		if (t->buf[i] == '|')
			t->buf[i] = '\0';
	assert_int_equal(iscsi_text_step(t->ts, &req, (uint8_t *)t->buf, len, &t->rsp), 0);
	return &t->rsp;
}

static void text_setup(struct tfx *t, int target_index)
{
	memset(t, 0, sizeof(*t));
	iscsi_params_default(&t->params);
	assert_int_equal(iscsi_text_create(&cfg, 1, target_index, &t->params, &t->ts), 0);
}

static bool contains(const uint8_t *data, size_t len, const char *s)
{
	return memmem(data, len, s, strlen(s) + 1) != NULL; /* with its NUL */
}

static void test_send_targets_all_lists_portal_group_targets(void **state)
{
	struct tfx t;
	struct iscsi_text_rsp *r;

	text_setup(&t, -1);
	r = tstep(&t, true, false, ISCSI_RSVD_TAG, "SendTargets=All|");
	assert_false(r->reject);
	assert_true(r->final);
	assert_int_equal(r->ttt, ISCSI_RSVD_TAG);
	assert_true(contains(r->data, r->data_len, "TargetName=" OPEN_TGT));
	assert_true(contains(r->data, r->data_len, "TargetAddress=127.0.0.1:3260,1"));
	assert_true(contains(r->data, r->data_len, "TargetAddress=[::1]:3260,1"));
	assert_true(contains(r->data, r->data_len, "TargetName=" SECURE_TGT));
	assert_false(contains(r->data, r->data_len, "TargetName=" OTHER_TGT));
	iscsi_text_destroy(t.ts);
}

static void test_send_targets_empty_in_normal_session_gives_own_target(void **state)
{
	struct tfx t;
	struct iscsi_text_rsp *r;

	text_setup(&t, 1);
	r = tstep(&t, true, false, ISCSI_RSVD_TAG, "SendTargets=|");
	assert_true(contains(r->data, r->data_len, "TargetName=" SECURE_TGT));
	assert_false(contains(r->data, r->data_len, "TargetName=" OPEN_TGT));
	r = tstep(&t, true, false, ISCSI_RSVD_TAG, "SendTargets=All|");
	assert_true(contains(r->data, r->data_len, "SendTargets=Reject"));
	iscsi_text_destroy(t.ts);
}

static void test_send_targets_by_name(void **state)
{
	struct tfx t;
	struct iscsi_text_rsp *r;

	text_setup(&t, -1);
	r = tstep(&t, true, false, ISCSI_RSVD_TAG, "SendTargets=" OPEN_TGT "|");
	assert_true(contains(r->data, r->data_len, "TargetName=" OPEN_TGT));
	assert_false(contains(r->data, r->data_len, "TargetName=" SECURE_TGT));
	r = tstep(&t, true, false, ISCSI_RSVD_TAG, "SendTargets=" OTHER_TGT "|");
	assert_int_equal(r->data_len, 0);
	iscsi_text_destroy(t.ts);
}

static void test_send_targets_long_response_is_continued(void **state)
{
	struct tfx t;
	struct iscsi_text_rsp *r;
	uint8_t whole[1024];
	size_t got = 0;
	int rounds = 0;

	text_setup(&t, -1);
	t.params.initiator_max_recv_dsl = 64; /* force pieces */
	r = tstep(&t, true, false, ISCSI_RSVD_TAG, "SendTargets=All|");
	for (;;) {
		assert_false(r->reject);
		assert_true(r->data_len <= 64);
		memcpy(whole + got, r->data, r->data_len);
		got += r->data_len;
		if (!r->cont)
			break;
		assert_false(r->final);
		assert_int_not_equal(r->ttt, ISCSI_RSVD_TAG);
		r = tstep(&t, true, false, r->ttt, "");
		assert_true(++rounds < 50);
	}
	assert_true(r->final);
	assert_true(rounds > 1);
	assert_true(contains(whole, got, "TargetAddress=[::1]:3260,1"));
	assert_true(contains(whole, got, "TargetName=" SECURE_TGT));
	iscsi_text_destroy(t.ts);
}

static void test_continuation_with_wrong_ttt_is_rejected(void **state)
{
	struct tfx t;
	struct iscsi_text_rsp *r;

	text_setup(&t, -1);
	t.params.initiator_max_recv_dsl = 64;
	r = tstep(&t, true, false, ISCSI_RSVD_TAG, "SendTargets=All|");
	assert_true(r->cont);
	r = tstep(&t, true, false, r->ttt + 1, "");
	assert_true(r->reject);
	iscsi_text_destroy(t.ts);
}

static void test_mrdsl_renegotiated_after_response(void **state)
{
	struct tfx t;
	struct iscsi_text_rsp *r;

	text_setup(&t, 0);
	t.params.target_max_recv_dsl = ISCSI_TARGET_MAX_RECV_DSL;
	r = tstep(&t, true, false, ISCSI_RSVD_TAG, "MaxRecvDataSegmentLength=16384|");
	assert_true(contains(r->data, r->data_len, "MaxRecvDataSegmentLength=262144"));
	assert_int_equal(t.params.initiator_max_recv_dsl, 16384);
	r = tstep(&t, true, false, ISCSI_RSVD_TAG, "MaxRecvDataSegmentLength=100|");
	assert_true(contains(r->data, r->data_len, "MaxRecvDataSegmentLength=Reject"));
	assert_int_equal(t.params.initiator_max_recv_dsl, 16384);
	r = tstep(&t, true, false, ISCSI_RSVD_TAG, "MaxBurstLength=512|X-foo=1|");
	assert_true(contains(r->data, r->data_len, "MaxBurstLength=Reject"));
	assert_true(contains(r->data, r->data_len, "X-foo=NotUnderstood"));
	iscsi_text_destroy(t.ts);
}

static void test_text_continued_request_and_malformed_text(void **state)
{
	struct tfx t;
	struct iscsi_text_rsp *r;

	text_setup(&t, -1);
	r = tstep(&t, false, true, ISCSI_RSVD_TAG, "SendTarg");
	assert_false(r->final);
	assert_int_equal(r->data_len, 0);
	assert_int_not_equal(r->ttt, ISCSI_RSVD_TAG);
	r = tstep(&t, true, false, r->ttt, "ets=All|");
	assert_true(contains(r->data, r->data_len, "TargetName=" OPEN_TGT));
	r = tstep(&t, true, false, ISCSI_RSVD_TAG, "SendTargets");
	assert_true(r->reject);
	iscsi_text_destroy(t.ts);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_security_none_jumps_to_ffp),
		T(test_operational_results_follow_rfc_functions),
		T(test_defaults_when_initiator_offers_nothing),
		T(test_out_of_range_values_are_rejected_and_keep_default),
		T(test_missing_initiator_name),
		T(test_missing_target_name_in_normal_session),
		T(test_unknown_target_not_found),
		T(test_target_of_another_portal_group_not_found),
		T(test_acl_refuses_other_initiator),
		T(test_version_min_above_zero_unsupported),
		T(test_illegal_stage_transitions),
		T(test_reserved_next_stage_is_an_error),
		T(test_csg_must_follow_previous_transit),
		T(test_transit_and_continue_together_is_an_error),
		T(test_duplicate_key_in_request_is_initiator_error),
		T(test_key_negotiated_twice_across_pdus_is_initiator_error),
		T(test_malformed_text_is_initiator_error),
		T(test_chap_required_and_initiator_offers_none),
		T(test_chap_required_and_security_stage_skipped),
		T(test_chap_required_and_transit_without_auth_method),
		T(test_chap_one_way_success),
		T(test_chap_wrong_response_fails),
		T(test_chap_wrong_name_fails),
		T(test_chap_unsupported_algorithm_fails),
		T(test_chap_transit_held_until_authenticated),
		T(test_mutual_chap_success),
		T(test_mutual_chap_reflected_challenge_fails),
		T(test_mutual_chap_without_target_credentials_fails),
		T(test_discovery_requires_chap_when_configured),
		T(test_discovery_session_irrelevant_keys),
		T(test_unknown_session_type),
		T(test_non_leading_connection_leading_only_keys_irrelevant),
		T(test_continued_request_text_is_reassembled),
		T(test_long_response_is_continued),
		T(test_text_while_response_pending_is_error),
		T(test_target_only_key_from_initiator_is_error),
		T(test_failed_login_stays_failed),
		cmocka_unit_test(test_send_targets_all_lists_portal_group_targets),
		cmocka_unit_test(test_send_targets_empty_in_normal_session_gives_own_target),
		cmocka_unit_test(test_send_targets_by_name),
		cmocka_unit_test(test_send_targets_long_response_is_continued),
		cmocka_unit_test(test_continuation_with_wrong_ttt_is_rejected),
		cmocka_unit_test(test_mrdsl_renegotiated_after_response),
		cmocka_unit_test(test_text_continued_request_and_malformed_text),
	};

	log_init("test", LOG_LVL_WARN, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
