/* Unit tests for the persistent reservation engine (pr/): every PR OUT service action with its
 * success and error cases, PR IN, TransportIDs, unit attentions, PRgeneration and the SPC-4
 * conflict table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/cursor.h"
#include "pr/pr.h"
#include "target/scsi_cmd.h"
#include "target/scsi_sense.h"

#define N1  "iqn.2024-01.test:node1"
#define N2  "iqn.2024-01.test:node2"
#define N3  "iqn.2024-01.test:node3"
#define I1  N1 ",i,0x400000000001"
#define I2  N2 ",i,0x400000000002"
#define I3  N3 ",i,0x400000000003"
#define I1B N1 ",i,0x400000000011" /* node1 again, another session (new ISID) */

#define K1 0x1111111111111111ull
#define K2 0x2222222222222222ull
#define K3 0x3333333333333333ull

/* PR OUT parameter list flags (spc4r37 6.16.3). */
#define F_SPEC_I_PT 0x08
#define F_ALL_TG_PT 0x04
#define F_APTPL	    0x01

static struct pr_state S, N, OLD;
static struct pr_result R;
static const uint16_t PORTS[] = {1, 2};
static struct pr_nexus_ref KNOWN[8];
static size_t NKNOWN;
static bool PTPL = true;

static struct pr_ctx ctx_of(const char *port, uint16_t rel)
{
	struct pr_ctx c = {
		.self = {port, rel},
		.ports = PORTS,
		.nports = 2,
		.known = KNOWN,
		.nknown = NKNOWN,
		.ptpl_capable = PTPL,
	};
	return c;
}

static int setup(void **st)
{
	pr_state_init(&S);
	NKNOWN = 0;
	PTPL = true;
	return 0;
}

/* Run PR OUT with an arbitrary CDB and parameter list; a successful command becomes the
 * state. Returns the status. */
static uint8_t out_raw(const char *port, uint16_t rel, const uint8_t *cdb, const uint8_t *param,
		       size_t len)
{
	struct pr_ctx c = ctx_of(port, rel);

	memcpy(&OLD, &S, sizeof(S));
	pr_out(&S, &c, cdb, 10, param, len, &N, &R);
	if (R.status == SCSI_STATUS_GOOD)
		memcpy(&S, &N, sizeof(S));
	else
		/* A failed command must leave the next state equal to the current one. */
		assert_memory_equal(&N, &S, offsetof(struct pr_state, regs));
	return R.status;
}

static void cdb_out(uint8_t *cdb, uint8_t sa, uint8_t type, uint32_t pll)
{
	memset(cdb, 0, 10);
	cdb[0] = 0x5f;
	cdb[1] = sa;
	cdb[2] = type;
	put_be32(cdb + 5, pll);
}

static void param_basic(uint8_t *p, uint64_t rk, uint64_t sark, uint8_t flags)
{
	memset(p, 0, 24);
	put_be64(p, rk);
	put_be64(p + 8, sark);
	p[20] = flags;
}

static uint8_t out_f(const char *port, uint16_t rel, uint8_t sa, uint8_t type, uint64_t rk,
		     uint64_t sark, uint8_t flags)
{
	uint8_t cdb[10], p[24];

	cdb_out(cdb, sa, type, 24);
	param_basic(p, rk, sark, flags);
	return out_raw(port, rel, cdb, p, 24);
}

static uint8_t out(const char *port, uint8_t sa, uint8_t type, uint64_t rk, uint64_t sark)
{
	return out_f(port, 1, sa, type, rk, sark, 0);
}

#define GOOD	 SCSI_STATUS_GOOD
#define CHECK	 SCSI_STATUS_CHECK_CONDITION
#define CONFLICT SCSI_STATUS_RESERVATION_CONFLICT

static void assert_sense(const struct scsi_sense *s)
{
	assert_int_equal(R.status, CHECK);
	assert_int_equal(R.sense.key, s->key);
	assert_int_equal(R.sense.asc, s->asc);
	assert_int_equal(R.sense.ascq, s->ascq);
}

static void assert_field(bool cdb, uint16_t byte, int bit)
{
	assert_sense(cdb ? &SENSE_INVALID_FIELD_IN_CDB : &SENSE_INVALID_FIELD_IN_PARAM_LIST);
	assert_true(R.sense.sks_valid);
	assert_int_equal(R.sense.sks_cd, cdb);
	assert_int_equal(R.sense.sks_field, byte);
	assert_int_equal(R.sense.sks_bit, bit < 0 ? 0xff : bit);
}

static const struct pr_reg *reg(const char *port, uint16_t rel)
{
	return pr_find(&S, port, rel);
}

/* Is a unit attention with this ASCQ (ASC 2Ah) queued for the nexus? */
static bool has_ua(const char *port, uint16_t rel, uint8_t ascq)
{
	for (size_t i = 0; i < R.nua; i++)
		if (R.ua[i].itn.rel_port == rel && strcmp(R.ua[i].itn.port, port) == 0 &&
		    R.ua[i].ua.key == SENSE_KEY_UNIT_ATTENTION && R.ua[i].ua.asc == 0x2a &&
		    R.ua[i].ua.ascq == ascq)
			return true;
	return false;
}

static bool in_abort(const char *port, uint16_t rel)
{
	for (size_t i = 0; i < R.nabort; i++)
		if (R.abort[i].rel_port == rel && strcmp(R.abort[i].port, port) == 0)
			return true;
	return false;
}

#define UA_RES_PREEMPTED 0x03
#define UA_RES_RELEASED	 0x04
#define UA_REG_PREEMPTED 0x05

/* Register I1, I2 (and I3) with K1, K2 (K3), all through port 1. */
static void reg3(void)
{
	assert_int_equal(out(I1, PR_OUT_REGISTER, 0, 0, K1), GOOD);
	assert_int_equal(out(I2, PR_OUT_REGISTER, 0, 0, K2), GOOD);
	assert_int_equal(out(I3, PR_OUT_REGISTER, 0, 0, K3), GOOD);
}

/* ---- REGISTER and REGISTER AND IGNORE EXISTING KEY ---- */

static void test_register_new_nexus_adds_key_and_bumps_generation(void **st)
{
	assert_int_equal(out(I1, PR_OUT_REGISTER, 0, 0, K1), GOOD);
	assert_non_null(reg(I1, 1));
	assert_int_equal(reg(I1, 1)->key, K1);
	assert_null(reg(I1, 2));
	assert_int_equal(S.generation, 1);
	assert_true(R.changed);
}

static void test_register_unregistered_with_nonzero_key_conflicts(void **st)
{
	assert_int_equal(out(I1, PR_OUT_REGISTER, 0, K2, K1), CONFLICT);
	assert_int_equal(S.nregs, 0);
	assert_int_equal(S.generation, 0);
}

static void test_register_wrong_key_conflicts(void **st)
{
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	assert_int_equal(out(I1, PR_OUT_REGISTER, 0, K2, K3), CONFLICT);
	assert_int_equal(reg(I1, 1)->key, K1);
	assert_int_equal(S.generation, 1);
}

static void test_register_with_right_key_replaces_it(void **st)
{
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	assert_int_equal(out(I1, PR_OUT_REGISTER, 0, K1, K3), GOOD);
	assert_int_equal(reg(I1, 1)->key, K3);
	assert_int_equal(S.generation, 2);
}

static void test_register_zero_key_unregisters(void **st)
{
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	assert_int_equal(out(I1, PR_OUT_REGISTER, 0, K1, 0), GOOD);
	assert_null(reg(I1, 1));
	assert_int_equal(S.generation, 2);
}

static void test_register_zero_key_from_unregistered_is_good_noop(void **st)
{
	assert_int_equal(out(I1, PR_OUT_REGISTER, 0, 0, 0), GOOD);
	assert_int_equal(S.nregs, 0);
	/* spc4r37 6.15.2: it completed successfully, so it counts. */
	assert_int_equal(S.generation, 1);
}

static void test_register_and_ignore_replaces_any_key(void **st)
{
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	assert_int_equal(out(I1, PR_OUT_REGISTER_AND_IGNORE, 0, K3 /* wrong */, K2), GOOD);
	assert_int_equal(reg(I1, 1)->key, K2);
	assert_int_equal(out(I2, PR_OUT_REGISTER_AND_IGNORE, 0, K3, K3), GOOD);
	assert_int_equal(reg(I2, 1)->key, K3);
}

static void test_register_and_ignore_zero_key_unregisters(void **st)
{
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	assert_int_equal(out(I1, PR_OUT_REGISTER_AND_IGNORE, 0, 0, 0), GOOD);
	assert_int_equal(S.nregs, 0);
}

static void test_registration_is_per_nexus_isid_and_port(void **st)
{
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	/* The same initiator through another session or another target port is another
	 * I_T nexus, not registered. */
	assert_null(reg(I1B, 1));
	assert_null(reg(I1, 2));
	assert_int_equal(out_f(I1, 2, PR_OUT_REGISTER, 0, K1, K2, 0), CONFLICT);
	assert_int_equal(out_f(I1, 2, PR_OUT_REGISTER, 0, 0, K2, 0), GOOD);
	assert_int_equal(reg(I1, 1)->key, K1);
	assert_int_equal(reg(I1, 2)->key, K2);
}

static void test_register_all_tg_pt_registers_every_target_port(void **st)
{
	assert_int_equal(out_f(I1, 1, PR_OUT_REGISTER, 0, 0, K1, F_ALL_TG_PT), GOOD);
	assert_non_null(reg(I1, 1));
	assert_non_null(reg(I1, 2));
	assert_true(reg(I1, 2)->all_tg_pt);
	assert_int_equal(reg(I1, 2)->key, K1);
	assert_int_equal(S.generation, 1);
}

static void test_register_aptpl_sets_and_clears_persist(void **st)
{
	assert_int_equal(out_f(I1, 1, PR_OUT_REGISTER, 0, 0, K1, F_APTPL), GOOD);
	assert_true(S.aptpl);
	assert_true(R.persist);
	/* A later change while APTPL is on must be persisted too... */
	assert_int_equal(out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0), GOOD);
	assert_true(R.persist);
	/* ...and so must turning it off. */
	assert_int_equal(out_f(I1, 1, PR_OUT_REGISTER, 0, K1, K1, 0), GOOD);
	assert_false(S.aptpl);
	assert_true(R.persist);
	assert_int_equal(out(I1, PR_OUT_RELEASE, PR_TYPE_WE, K1, 0), GOOD);
	assert_false(R.persist);
}

static void test_register_aptpl_refused_without_store(void **st)
{
	PTPL = false;
	assert_int_equal(out_f(I1, 1, PR_OUT_REGISTER, 0, 0, K1, F_APTPL), CHECK);
	assert_field(false, 20, 0);
	assert_int_equal(S.nregs, 0);
}

static void test_register_table_full_reports_insufficient_resources(void **st)
{
	char port[PR_PORT_MAX];

	for (unsigned i = 0; i < PR_MAX_REGS; i++) {
		snprintf(port, sizeof(port), "iqn.2024-01.test:n%u,i,0x%012x", i, i);
		assert_int_equal(out(port, PR_OUT_REGISTER, 0, 0, i + 1), GOOD);
	}
	assert_int_equal(out(I1, PR_OUT_REGISTER, 0, 0, K1), CHECK);
	assert_sense(&SENSE_INSUFFICIENT_REGISTRATION_RESOURCES);
	assert_int_equal(S.nregs, PR_MAX_REGS);
}

/* ---- parameter list lengths ---- */

static void test_param_list_must_be_24_bytes(void **st)
{
	uint8_t cdb[10], p[32] = {0};
	static const uint32_t bad[] = {0, 23, 25, 32};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cdb_out(cdb, PR_OUT_REGISTER, 0, bad[i]);
		param_basic(p, 0, K1, 0);
		assert_int_equal(out_raw(I1, 1, cdb, p, bad[i]), CHECK);
		assert_sense(&SENSE_PARAM_LIST_LENGTH_ERROR);
	}
	assert_int_equal(S.nregs, 0);
}

static void test_param_list_shorter_than_announced_is_rejected(void **st)
{
	uint8_t cdb[10], p[24];

	cdb_out(cdb, PR_OUT_REGISTER, 0, 24);
	param_basic(p, 0, K1, 0);
	assert_int_equal(out_raw(I1, 1, cdb, p, 20), CHECK);
	assert_sense(&SENSE_PARAM_LIST_LENGTH_ERROR);
	assert_int_equal(S.nregs, 0);
}

/* ---- SPEC_I_PT and TransportIDs ---- */

/* Append an iSCSI TransportID for text (format 01b when it has an ISID) at p; returns its
 * length. */
static size_t tid(uint8_t *p, const char *text, bool port_fmt)
{
	size_t n = strlen(text), addl = (n + 1 + 3) & ~(size_t)3;

	if (addl < 20)
		addl = 20;
	memset(p, 0, 4 + addl);
	p[0] = (port_fmt ? 0x40 : 0x00) | 0x05;
	put_be16(p + 2, (uint16_t)addl);
	memcpy(p + 4, text, n);
	return 4 + addl;
}

/* REGISTER with SPEC_I_PT and the given TransportIDs (already laid out in tids). */
static uint8_t register_spec(const char *port, uint64_t sark, uint8_t flags, const uint8_t *tids,
			     size_t tlen)
{
	uint8_t cdb[10], p[1024];

	param_basic(p, 0, sark, F_SPEC_I_PT | flags);
	put_be32(p + 24, (uint32_t)tlen);
	memcpy(p + 28, tids, tlen);
	cdb_out(cdb, PR_OUT_REGISTER, 0, (uint32_t)(28 + tlen));
	return out_raw(port, 1, cdb, p, 28 + tlen);
}

static void test_spec_i_pt_registers_named_initiator_ports(void **st)
{
	uint8_t t[512];
	size_t n = 0;

	n += tid(t + n, I2, true);
	n += tid(t + n, N3 ",I,0X400000000003", true); /* upper case is the same port */
	assert_int_equal(register_spec(I1, K1, 0, t, n), GOOD);
	assert_int_equal(S.nregs, 3);
	assert_int_equal(reg(I1, 1)->key, K1);
	assert_int_equal(reg(I2, 1)->key, K1);
	assert_non_null(reg(I3, 1));
	assert_int_equal(S.generation, 1);
}

static void test_spec_i_pt_device_name_registers_known_ports(void **st)
{
	uint8_t t[512];
	size_t n;

	KNOWN[0] = (struct pr_nexus_ref){I2, 1};
	KNOWN[1] = (struct pr_nexus_ref){N2 ",i,0x400000000022", 1};
	KNOWN[2] = (struct pr_nexus_ref){N2 ",i,0x400000000023", 2}; /* other target port */
	KNOWN[3] = (struct pr_nexus_ref){I3, 1};
	NKNOWN = 4;
	n = tid(t, N2, false);
	assert_int_equal(register_spec(I1, K1, 0, t, n), GOOD);
	assert_non_null(reg(I2, 1));
	assert_non_null(reg(N2 ",i,0x400000000022", 1));
	assert_null(reg(N2 ",i,0x400000000023", 2));
	assert_null(reg(I3, 1));
	assert_int_equal(S.nregs, 3);
}

static void test_spec_i_pt_unknown_device_name_is_rejected(void **st)
{
	uint8_t t[64];
	size_t n = tid(t, N2, false);

	assert_int_equal(register_spec(I1, K1, 0, t, n), CHECK);
	assert_field(false, 28, -1);
	assert_int_equal(S.nregs, 0);
}

static void test_spec_i_pt_is_all_or_nothing(void **st)
{
	uint8_t t[512];
	size_t n = 0;

	n += tid(t + n, I2, true);
	n += tid(t + n, N3 ",i,0x4000", true); /* ISID too short */
	assert_int_equal(register_spec(I1, K1, 0, t, n), CHECK);
	assert_field(false, (uint16_t)(28 + tid(t, I2, true)), -1);
	assert_int_equal(S.nregs, 0);
	assert_int_equal(S.generation, 0);
}

static void test_spec_i_pt_duplicate_nexus_is_rejected(void **st)
{
	uint8_t t[512];
	size_t n = 0;

	n += tid(t + n, I2, true);
	n += tid(t + n, I2, true);
	assert_int_equal(register_spec(I1, K1, 0, t, n), CHECK);
	assert_int_equal(S.nregs, 0);
}

static void test_spec_i_pt_truncated_transport_id_is_rejected(void **st)
{
	uint8_t t[512];
	size_t n = tid(t, I2, true);

	/* The TransportID says more than the TransportID data holds. */
	assert_int_equal(register_spec(I1, K1, 0, t, n - 4), CHECK);
	assert_field(false, 28, -1);
	assert_int_equal(S.nregs, 0);
}

static void test_spec_i_pt_length_mismatch_is_length_error(void **st)
{
	uint8_t cdb[10], p[128];
	size_t n;

	param_basic(p, 0, K1, F_SPEC_I_PT);
	n = tid(p + 28, I2, true);
	put_be32(p + 24, (uint32_t)n + 4); /* claims 4 bytes more than the list has */
	cdb_out(cdb, PR_OUT_REGISTER, 0, (uint32_t)(28 + n));
	assert_int_equal(out_raw(I1, 1, cdb, p, 28 + n), CHECK);
	assert_sense(&SENSE_PARAM_LIST_LENGTH_ERROR);
	assert_int_equal(S.nregs, 0);
}

static void test_spec_i_pt_from_registered_nexus_is_invalid(void **st)
{
	uint8_t cdb[10], p[128];
	size_t n;

	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	param_basic(p, K1, K2, F_SPEC_I_PT);
	n = tid(p + 28, I2, true);
	put_be32(p + 24, (uint32_t)n);
	cdb_out(cdb, PR_OUT_REGISTER, 0, (uint32_t)(28 + n));
	assert_int_equal(out_raw(I1, 1, cdb, p, 28 + n), CHECK);
	assert_field(false, 20, 3);
	assert_null(reg(I2, 1));
}

static void test_spec_i_pt_with_register_and_ignore_is_invalid(void **st)
{
	uint8_t cdb[10], p[128];
	size_t n;

	param_basic(p, 0, K1, F_SPEC_I_PT);
	n = tid(p + 28, I2, true);
	put_be32(p + 24, (uint32_t)n);
	cdb_out(cdb, PR_OUT_REGISTER_AND_IGNORE, 0, (uint32_t)(28 + n));
	assert_int_equal(out_raw(I1, 1, cdb, p, 28 + n), CHECK);
	assert_field(false, 20, 3);
	assert_int_equal(S.nregs, 0);
}

static void test_spec_i_pt_with_all_tg_pt_registers_on_every_port(void **st)
{
	uint8_t t[128];
	size_t n = tid(t, I2, true);

	assert_int_equal(register_spec(I1, K1, F_ALL_TG_PT, t, n), GOOD);
	assert_non_null(reg(I1, 1));
	assert_non_null(reg(I1, 2));
	assert_non_null(reg(I2, 1));
	assert_non_null(reg(I2, 2));
}

static void test_tid_parse_formats_and_bounds(void **st)
{
	uint8_t b[300];
	struct pr_tid t;
	struct cursor c;
	size_t n;

	n = tid(b, N1 ",i,0x40000000ABCD", true);
	cur_init(&c, b, n);
	assert_int_equal(pr_tid_parse(&c, &t), 0);
	assert_true(t.has_isid);
	assert_string_equal(t.name, N1);
	assert_string_equal(t.port, N1 ",i,0x40000000abcd");
	assert_int_equal(c.pos, n);

	n = tid(b, N1, false);
	cur_init(&c, b, n);
	assert_int_equal(pr_tid_parse(&c, &t), 0);
	assert_false(t.has_isid);
	assert_string_equal(t.name, N1);

	/* Truncated: header says more than there is. */
	cur_init(&c, b, n - 1);
	assert_int_equal(pr_tid_parse(&c, &t), -EBADMSG);
	assert_int_equal(c.pos, 0);
	/* Not iSCSI (FCP). */
	b[0] = 0x00;
	cur_init(&c, b, n);
	assert_int_equal(pr_tid_parse(&c, &t), -EPROTONOSUPPORT);
	/* No NUL inside ADDITIONAL LENGTH. */
	n = tid(b, N1, false);
	memset(b + 4, 'a', n - 4);
	cur_init(&c, b, n);
	assert_int_equal(pr_tid_parse(&c, &t), -EBADMSG);
	/* ADDITIONAL LENGTH not a multiple of four. */
	n = tid(b, N1, false);
	put_be16(b + 2, (uint16_t)(n - 4 - 1));
	cur_init(&c, b, n);
	assert_int_equal(pr_tid_parse(&c, &t), -EBADMSG);
	/* Format 01b without a separator, and with a non-hex ISID. */
	n = tid(b, N1, true);
	cur_init(&c, b, n);
	assert_int_equal(pr_tid_parse(&c, &t), -EBADMSG);
	n = tid(b, N1 ",i,0x40000000zzzz", true);
	cur_init(&c, b, n);
	assert_int_equal(pr_tid_parse(&c, &t), -EBADMSG);
	/* Reserved format 10b. */
	n = tid(b, I1, true);
	b[0] = 0x85;
	cur_init(&c, b, n);
	assert_int_equal(pr_tid_parse(&c, &t), -EBADMSG);
}

static void test_tid_build_round_trips(void **st)
{
	uint8_t b[300];
	struct pr_tid t;
	struct cursor c;
	size_t n = pr_tid_build(I1, b, sizeof(b));

	assert_true(n >= 24);
	assert_int_equal(n % 4, 0);
	assert_int_equal(b[0], 0x45);
	cur_init(&c, b, n);
	assert_int_equal(pr_tid_parse(&c, &t), 0);
	assert_string_equal(t.port, I1);
	assert_int_equal(pr_tid_build(I1, b, 10), 0);
	assert_int_equal(pr_tid_build("no-separator", b, sizeof(b)), 0);
}

/* ---- RESERVE ---- */

static void test_reserve_by_registrant_establishes_reservation(void **st)
{
	reg3();
	assert_int_equal(out(I1, PR_OUT_RESERVE, PR_TYPE_EA, K1, 0), GOOD);
	assert_int_equal(S.type, PR_TYPE_EA);
	assert_true(reg(I1, 1)->holder);
	/* spc4r37 6.15.2: RESERVE does not count for PRgeneration. */
	assert_int_equal(S.generation, 3);
}

static void test_reserve_unregistered_or_wrong_key_conflicts(void **st)
{
	assert_int_equal(out(I1, PR_OUT_RESERVE, PR_TYPE_WE, 0, 0), CONFLICT);
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	assert_int_equal(out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K2, 0), CONFLICT);
	assert_int_equal(S.type, PR_TYPE_NONE);
}

static void test_reserve_invalid_type_is_invalid_field_in_cdb(void **st)
{
	static const uint8_t bad[] = {0x0, 0x2, 0x4, 0x9, 0xf};

	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	for (size_t i = 0; i < sizeof(bad); i++) {
		assert_int_equal(out(I1, PR_OUT_RESERVE, bad[i], K1, 0), CHECK);
		assert_field(true, 2, 3);
	}
	assert_int_equal(S.type, PR_TYPE_NONE);
}

static void test_reserve_invalid_scope_is_invalid_field_in_cdb(void **st)
{
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	assert_int_equal(out(I1, PR_OUT_RESERVE, 0x10 | PR_TYPE_WE, K1, 0), CHECK);
	assert_field(true, 2, 7);
	assert_int_equal(out(I1, PR_OUT_RESERVE, 0x20 | PR_TYPE_WE, K1, 0), CHECK);
	assert_field(true, 2, 7);
	assert_int_equal(S.type, PR_TYPE_NONE);
}

static void test_reserve_again_by_holder_same_type_is_noop(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0), GOOD);
	assert_false(R.changed);
	/* A different type from the holder conflicts. */
	assert_int_equal(out(I1, PR_OUT_RESERVE, PR_TYPE_EA, K1, 0), CONFLICT);
	assert_int_equal(S.type, PR_TYPE_WE);
}

static void test_reserve_by_other_registrant_conflicts(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I2, PR_OUT_RESERVE, PR_TYPE_WE, K2, 0), CONFLICT);
	assert_true(reg(I1, 1)->holder);
	assert_false(reg(I2, 1)->holder);
}

static void test_reserve_all_registrants_is_held_by_every_registrant(void **st)
{
	reg3();
	assert_int_equal(out(I1, PR_OUT_RESERVE, PR_TYPE_WE_AR, K1, 0), GOOD);
	/* Another registrant asking for the same AR reservation already holds it. */
	assert_int_equal(out(I2, PR_OUT_RESERVE, PR_TYPE_WE_AR, K2, 0), GOOD);
	assert_int_equal(pr_check_conflict(&S, I2, 1, PR_CLASS_WRITE), PR_PASS);
}

/* ---- RELEASE ---- */

static void test_release_by_holder_releases(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I1, PR_OUT_RELEASE, PR_TYPE_WE, K1, 0), GOOD);
	assert_int_equal(S.type, PR_TYPE_NONE);
	assert_false(reg(I1, 1)->holder);
	assert_int_equal(S.generation, 3);
	/* spc4r37 5.13.11 (releasing): Write Exclusive tells nobody. */
	assert_int_equal(R.nua, 0);
}

static void test_release_with_wrong_type_is_invalid_release(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I1, PR_OUT_RELEASE, PR_TYPE_EA, K1, 0), CHECK);
	assert_sense(&SENSE_INVALID_RELEASE_OF_PR);
	assert_int_equal(S.type, PR_TYPE_WE);
}

static void test_release_by_non_holder_is_good_noop(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I2, PR_OUT_RELEASE, PR_TYPE_WE, K2, 0), GOOD);
	assert_false(R.changed);
	assert_int_equal(S.type, PR_TYPE_WE);
	/* And with no reservation at all. */
	out(I1, PR_OUT_RELEASE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I2, PR_OUT_RELEASE, PR_TYPE_WE, K2, 0), GOOD);
}

static void test_release_unregistered_or_wrong_key_conflicts(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I1, PR_OUT_RELEASE, PR_TYPE_WE, K2, 0), CONFLICT);
	assert_int_equal(out(I1B, PR_OUT_RELEASE, PR_TYPE_WE, K1, 0), CONFLICT);
	assert_int_equal(S.type, PR_TYPE_WE);
}

static void test_release_registrants_only_tells_other_registrants(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_EA_RO, K1, 0);
	assert_int_equal(out(I1, PR_OUT_RELEASE, PR_TYPE_EA_RO, K1, 0), GOOD);
	assert_int_equal(R.nua, 2);
	assert_true(has_ua(I2, 1, UA_RES_RELEASED));
	assert_true(has_ua(I3, 1, UA_RES_RELEASED));
	assert_false(has_ua(I1, 1, UA_RES_RELEASED));
}

static void test_release_all_registrants_by_any_registrant(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE_AR, K1, 0);
	assert_int_equal(out(I3, PR_OUT_RELEASE, PR_TYPE_WE_AR, K3, 0), GOOD);
	assert_int_equal(S.type, PR_TYPE_NONE);
	assert_true(has_ua(I1, 1, UA_RES_RELEASED));
	assert_true(has_ua(I2, 1, UA_RES_RELEASED));
	assert_false(has_ua(I3, 1, UA_RES_RELEASED));
}

/* ---- unregistering while reserved ---- */

static void test_holder_unregister_releases_ro_and_tells_registrants(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE_RO, K1, 0);
	assert_int_equal(out(I1, PR_OUT_REGISTER, 0, K1, 0), GOOD);
	assert_int_equal(S.type, PR_TYPE_NONE);
	assert_true(has_ua(I2, 1, UA_RES_RELEASED));
	assert_true(has_ua(I3, 1, UA_RES_RELEASED));
}

static void test_holder_unregister_releases_we_silently(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I1, PR_OUT_REGISTER, 0, K1, 0), GOOD);
	assert_int_equal(S.type, PR_TYPE_NONE);
	assert_int_equal(R.nua, 0);
}

static void test_all_registrants_reservation_lasts_until_last_registrant(void **st)
{
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	out(I2, PR_OUT_REGISTER, 0, 0, K2);
	out(I1, PR_OUT_RESERVE, PR_TYPE_EA_AR, K1, 0);
	assert_int_equal(out(I1, PR_OUT_REGISTER, 0, K1, 0), GOOD);
	assert_int_equal(S.type, PR_TYPE_EA_AR);
	assert_int_equal(out(I2, PR_OUT_REGISTER, 0, K2, 0), GOOD);
	assert_int_equal(S.type, PR_TYPE_NONE);
}

/* ---- CLEAR ---- */

static void test_clear_removes_everything_and_tells_others(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I2, PR_OUT_CLEAR, 0, K2, 0), GOOD);
	assert_int_equal(S.nregs, 0);
	assert_int_equal(S.type, PR_TYPE_NONE);
	assert_int_equal(S.generation, 4);
	assert_true(has_ua(I1, 1, UA_RES_PREEMPTED));
	assert_true(has_ua(I3, 1, UA_RES_PREEMPTED));
	assert_false(has_ua(I2, 1, UA_RES_PREEMPTED));
}

static void test_clear_wrong_key_conflicts(void **st)
{
	reg3();
	assert_int_equal(out(I2, PR_OUT_CLEAR, 0, K1, 0), CONFLICT);
	assert_int_equal(out(I1B, PR_OUT_CLEAR, 0, K1, 0), CONFLICT);
	assert_int_equal(S.nregs, 3);
}

/* ---- PREEMPT and PREEMPT AND ABORT ---- */

static void test_preempt_holder_key_takes_reservation(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I2, PR_OUT_PREEMPT, PR_TYPE_WE, K2, K1), GOOD);
	assert_null(reg(I1, 1));
	assert_true(reg(I2, 1)->holder);
	assert_int_equal(S.type, PR_TYPE_WE);
	assert_int_equal(S.generation, 4);
	assert_true(has_ua(I1, 1, UA_REG_PREEMPTED));
	/* Same type and scope: the remaining registrant is not told. */
	assert_false(has_ua(I3, 1, UA_RES_RELEASED));
	assert_int_equal(R.nabort, 0);
}

static void test_preempt_changing_type_tells_remaining_registrants(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I2, PR_OUT_PREEMPT, PR_TYPE_EA_RO, K2, K1), GOOD);
	assert_int_equal(S.type, PR_TYPE_EA_RO);
	assert_true(has_ua(I1, 1, UA_REG_PREEMPTED));
	assert_true(has_ua(I3, 1, UA_RES_RELEASED));
	assert_false(has_ua(I2, 1, UA_RES_RELEASED));
}

static void test_preempt_without_reservation_removes_registrations(void **st)
{
	reg3();
	assert_int_equal(out(I2, PR_OUT_PREEMPT, PR_TYPE_EA, K2, K1), GOOD);
	assert_null(reg(I1, 1));
	assert_int_equal(S.nregs, 2);
	assert_int_equal(S.type, PR_TYPE_NONE);
	assert_int_equal(S.generation, 4);
	assert_true(has_ua(I1, 1, UA_REG_PREEMPTED));
}

static void test_preempt_non_holder_key_only_removes_registrations(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I2, PR_OUT_PREEMPT, PR_TYPE_WE, K2, K3), GOOD);
	assert_null(reg(I3, 1));
	assert_true(reg(I1, 1)->holder);
	assert_false(reg(I2, 1)->holder);
}

static void test_preempt_unknown_key_conflicts(void **st)
{
	reg3();
	assert_int_equal(out(I2, PR_OUT_PREEMPT, PR_TYPE_WE, K2, 0x9999), CONFLICT);
	assert_int_equal(R.nua, 0);
	assert_int_equal(S.nregs, 3);
	assert_int_equal(S.generation, 3);
}

static void test_preempt_wrong_own_key_conflicts(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I2, PR_OUT_PREEMPT, PR_TYPE_WE, K3, K1), CONFLICT);
	assert_int_equal(out(I1B, PR_OUT_PREEMPT, PR_TYPE_WE, K1, K1), CONFLICT);
	assert_true(reg(I1, 1)->holder);
}

static void test_preempt_zero_key_without_ar_is_invalid(void **st)
{
	reg3();
	assert_int_equal(out(I2, PR_OUT_PREEMPT, PR_TYPE_WE, K2, 0), CHECK);
	assert_field(false, 8, -1);
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(out(I2, PR_OUT_PREEMPT, PR_TYPE_WE, K2, 0), CHECK);
	assert_field(false, 8, -1);
}

static void test_preempt_invalid_type_is_invalid_field_in_cdb(void **st)
{
	reg3();
	assert_int_equal(out(I2, PR_OUT_PREEMPT, 0x2, K2, K1), CHECK);
	assert_field(true, 2, 3);
	assert_non_null(reg(I1, 1));
}

static void test_preempt_all_registrants_with_zero_key(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE_AR, K1, 0);
	assert_int_equal(out(I2, PR_OUT_PREEMPT, PR_TYPE_WE, K2, 0), GOOD);
	assert_int_equal(S.nregs, 1);
	assert_non_null(reg(I2, 1));
	assert_true(reg(I2, 1)->holder);
	assert_int_equal(S.type, PR_TYPE_WE);
	assert_true(has_ua(I1, 1, UA_REG_PREEMPTED));
	assert_true(has_ua(I3, 1, UA_REG_PREEMPTED));
}

static void test_preempt_all_registrants_with_key_removes_only_that_key(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_EA_AR, K1, 0);
	assert_int_equal(out(I2, PR_OUT_PREEMPT, PR_TYPE_EA_AR, K2, K3), GOOD);
	assert_null(reg(I3, 1));
	assert_non_null(reg(I1, 1));
	assert_int_equal(S.type, PR_TYPE_EA_AR);
}

static void test_self_preempt_keeps_issuer_and_drops_stale_isids(void **st)
{
	/* fence_scsi's unfence: the node re-registers with a new ISID and preempts its own
	 * key to remove the stale registration of its previous session. */
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	out(I2, PR_OUT_REGISTER, 0, 0, K2);
	assert_int_equal(out(I1B, PR_OUT_REGISTER_AND_IGNORE, 0, 0, K1), GOOD);
	assert_int_equal(out(I1B, PR_OUT_PREEMPT, PR_TYPE_WE_RO, K1, K1), GOOD);
	assert_null(reg(I1, 1));
	assert_non_null(reg(I1B, 1));
	assert_non_null(reg(I2, 1));
	assert_true(has_ua(I1, 1, UA_REG_PREEMPTED));
	assert_false(has_ua(I1B, 1, UA_REG_PREEMPTED));
	/* Then it reserves. */
	assert_int_equal(out(I1B, PR_OUT_RESERVE, PR_TYPE_WE_RO, K1, 0), GOOD);
}

static void test_preempt_and_abort_aborts_only_preempted_nexuses(void **st)
{
	reg3();
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	assert_int_equal(out_f(I1, 2, PR_OUT_REGISTER, 0, 0, K1, 0), GOOD);
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE_RO, K1, 0);
	assert_int_equal(out(I2, PR_OUT_PREEMPT_AND_ABORT, PR_TYPE_WE_RO, K2, K1), GOOD);
	assert_int_equal(R.nabort, 2);
	assert_true(in_abort(I1, 1));
	assert_true(in_abort(I1, 2));
	assert_false(in_abort(I2, 1));
	assert_false(in_abort(I3, 1));
	assert_true(reg(I2, 1)->holder);
	assert_int_equal(pr_check_conflict(&S, I1, 1, PR_CLASS_WRITE), PR_CONFLICT);
}

static void test_plain_preempt_aborts_nothing(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE_RO, K1, 0);
	assert_int_equal(out(I2, PR_OUT_PREEMPT, PR_TYPE_WE_RO, K2, K1), GOOD);
	assert_int_equal(R.nabort, 0);
}

static void test_failed_preempt_and_abort_aborts_nothing(void **st)
{
	reg3();
	assert_int_equal(out(I2, PR_OUT_PREEMPT_AND_ABORT, PR_TYPE_WE, K1, K3), CONFLICT);
	assert_int_equal(R.nabort, 0);
	assert_int_equal(R.nua, 0);
}

/* ---- REGISTER AND MOVE ---- */

static uint8_t move(const char *port, uint8_t type, uint64_t rk, uint64_t sark, uint8_t flags,
		    uint16_t rel, const char *dest, bool port_fmt)
{
	uint8_t cdb[10], p[512];
	size_t n;

	memset(p, 0, 24);
	put_be64(p, rk);
	put_be64(p + 8, sark);
	p[17] = flags;
	put_be16(p + 18, rel);
	n = tid(p + 24, dest, port_fmt);
	put_be32(p + 20, (uint32_t)n);
	cdb_out(cdb, PR_OUT_REGISTER_AND_MOVE, type, (uint32_t)(24 + n));
	return out_raw(port, 1, cdb, p, 24 + n);
}

static void test_register_and_move_hands_reservation_over(void **st)
{
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(move(I1, PR_TYPE_EA, K1, K2, 0, 2, I2, true), GOOD);
	assert_non_null(reg(I2, 2));
	assert_int_equal(reg(I2, 2)->key, K2);
	assert_true(reg(I2, 2)->holder);
	assert_false(reg(I1, 1)->holder);
	assert_int_equal(S.type, PR_TYPE_EA);
	assert_int_equal(S.generation, 2);
}

static void test_register_and_move_unreg_drops_issuer(void **st)
{
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(move(I1, PR_TYPE_WE, K1, K2, 0x02, 1, I2, true), GOOD);
	assert_null(reg(I1, 1));
	assert_true(reg(I2, 1)->holder);
}

static void test_register_and_move_needs_single_holder(void **st)
{
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	out(I3, PR_OUT_REGISTER, 0, 0, K3);
	/* No reservation. */
	assert_int_equal(move(I1, PR_TYPE_WE, K1, K2, 0, 1, I2, true), CONFLICT);
	/* Not the holder. */
	out(I3, PR_OUT_RESERVE, PR_TYPE_WE, K3, 0);
	assert_int_equal(move(I1, PR_TYPE_WE, K1, K2, 0, 1, I2, true), CONFLICT);
	/* Wrong key. */
	assert_int_equal(move(I3, PR_TYPE_WE, K1, K2, 0, 1, I2, true), CONFLICT);
	/* All registrants. */
	out(I3, PR_OUT_RELEASE, PR_TYPE_WE, K3, 0);
	out(I3, PR_OUT_RESERVE, PR_TYPE_WE_AR, K3, 0);
	assert_int_equal(move(I3, PR_TYPE_WE, K3, K2, 0, 1, I2, true), CONFLICT);
	assert_null(reg(I2, 1));
}

static void test_register_and_move_rejects_bad_destination(void **st)
{
	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(move(I1, PR_TYPE_WE, K1, 0, 0, 1, I2, true), CHECK);
	assert_field(false, 8, -1);
	assert_int_equal(move(I1, PR_TYPE_WE, K1, K2, 0, 1, I1, true), CHECK);
	assert_field(false, 24, -1);
	assert_int_equal(move(I1, PR_TYPE_WE, K1, K2, 0, 9, I2, true), CHECK);
	assert_field(false, 18, -1);
	assert_int_equal(move(I1, PR_TYPE_WE, K1, K2, 0, 1, N2, false), CHECK);
	assert_field(false, 24, -1);
	assert_int_equal(move(I1, 0x4, K1, K2, 0, 1, I2, true), CHECK);
	assert_field(true, 2, 3);
	assert_true(reg(I1, 1)->holder);
	assert_int_equal(S.nregs, 1);
}

static void test_register_and_move_short_list_is_length_error(void **st)
{
	uint8_t cdb[10], p[24] = {0};

	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	cdb_out(cdb, PR_OUT_REGISTER_AND_MOVE, PR_TYPE_WE, 20);
	assert_int_equal(out_raw(I1, 1, cdb, p, 20), CHECK);
	assert_sense(&SENSE_PARAM_LIST_LENGTH_ERROR);
}

static void test_unknown_service_action_is_invalid_field_in_cdb(void **st)
{
	uint8_t cdb[10], p[24];

	for (uint8_t sa = 0x08; sa <= 0x1f; sa++) {
		cdb_out(cdb, sa, 0, 24);
		param_basic(p, 0, K1, 0);
		assert_int_equal(out_raw(I1, 1, cdb, p, 24), CHECK);
		assert_field(true, 1, 4);
	}
}

/* ---- PR IN ---- */

static uint8_t in_buf[65536];
static size_t in_len;

static uint8_t in(uint8_t sa, uint16_t alloc)
{
	uint8_t cdb[10] = {0x5e, sa};
	struct pr_ctx c = ctx_of(I1, 1);

	put_be16(cdb + 7, alloc);
	memset(in_buf, 0xee, sizeof(in_buf));
	return pr_in(&S, &c, cdb, 10, in_buf, sizeof(in_buf), &in_len, &R.sense);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static void test_read_keys_lists_keys_and_generation(void **st)
{
	reg3();
	assert_int_equal(in(PR_IN_READ_KEYS, 4096), GOOD);
	assert_int_equal(in_len, 8 + 24);
	assert_int_equal(be32(in_buf), 3);
	assert_int_equal(be32(in_buf + 4), 24);
	assert_true(be64(in_buf + 8) == K1);
	assert_true(be64(in_buf + 16) == K2);
	assert_true(be64(in_buf + 24) == K3);
}

static void test_read_keys_truncates_to_allocation_length(void **st)
{
	reg3();
	assert_int_equal(in(PR_IN_READ_KEYS, 12), GOOD);
	assert_int_equal(in_len, 12);
	/* The length field still tells the whole story. */
	assert_int_equal(be32(in_buf + 4), 24);
	assert_int_equal(in_buf[12], 0xee);
	assert_int_equal(in(PR_IN_READ_KEYS, 0), GOOD);
	assert_int_equal(in_len, 0);
}

static void test_read_reservation_reports_holder_type_and_key(void **st)
{
	reg3();
	assert_int_equal(in(PR_IN_READ_RESERVATION, 100), GOOD);
	assert_int_equal(in_len, 8);
	assert_int_equal(be32(in_buf + 4), 0);
	out(I2, PR_OUT_RESERVE, PR_TYPE_EA_RO, K2, 0);
	assert_int_equal(in(PR_IN_READ_RESERVATION, 100), GOOD);
	assert_int_equal(in_len, 24);
	assert_int_equal(be32(in_buf + 4), 16);
	assert_true(be64(in_buf + 8) == K2);
	assert_int_equal(in_buf[21], PR_TYPE_EA_RO);
}

static void test_read_reservation_all_registrants_reports_key_zero(void **st)
{
	reg3();
	out(I2, PR_OUT_RESERVE, PR_TYPE_WE_AR, K2, 0);
	assert_int_equal(in(PR_IN_READ_RESERVATION, 100), GOOD);
	assert_true(be64(in_buf + 8) == 0);
	assert_int_equal(in_buf[21], PR_TYPE_WE_AR);
}

static void test_report_capabilities_bits(void **st)
{
	assert_int_equal(in(PR_IN_REPORT_CAPABILITIES, 100), GOOD);
	assert_int_equal(in_len, 8);
	assert_int_equal(in_buf[0] << 8 | in_buf[1], 8);
	/* CRH, SIP_C, ATP_C, PTPL_C; RLR_C clear. */
	assert_int_equal(in_buf[2], 0x1d);
	/* TMV, ALLOW COMMANDS 010b, PTPL_A clear. */
	assert_int_equal(in_buf[3], 0xa0);
	/* All six types. */
	assert_int_equal(in_buf[4], 0xea);
	assert_int_equal(in_buf[5], 0x01);
	out_f(I1, 1, PR_OUT_REGISTER, 0, 0, K1, F_APTPL);
	in(PR_IN_REPORT_CAPABILITIES, 100);
	assert_int_equal(in_buf[3] & 0x01, 1);
	PTPL = false;
	in(PR_IN_REPORT_CAPABILITIES, 100);
	assert_int_equal(in_buf[2] & 0x01, 0);
}

static void test_read_full_status_describes_each_nexus(void **st)
{
	struct pr_tid t;
	struct cursor c;
	size_t off;

	out(I1, PR_OUT_REGISTER, 0, 0, K1);
	out_f(I2, 2, PR_OUT_REGISTER, 0, 0, K2, 0);
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE_RO, K1, 0);
	assert_int_equal(in(PR_IN_READ_FULL_STATUS, 4096), GOOD);
	assert_int_equal(be32(in_buf), 2);
	assert_int_equal(be32(in_buf + 4), in_len - 8);

	off = 8;
	assert_true(be64(in_buf + off) == K1);
	assert_int_equal(in_buf[off + 12], 0x01); /* R_HOLDER */
	assert_int_equal(in_buf[off + 13], PR_TYPE_WE_RO);
	assert_int_equal(in_buf[off + 18] << 8 | in_buf[off + 19], 1);
	cur_init(&c, in_buf + off + 24, be32(in_buf + off + 20));
	assert_int_equal(pr_tid_parse(&c, &t), 0);
	assert_string_equal(t.port, I1);

	off += 24 + be32(in_buf + off + 20);
	assert_true(be64(in_buf + off) == K2);
	assert_int_equal(in_buf[off + 12], 0x00);
	assert_int_equal(in_buf[off + 18] << 8 | in_buf[off + 19], 2);
	cur_init(&c, in_buf + off + 24, be32(in_buf + off + 20));
	assert_int_equal(pr_tid_parse(&c, &t), 0);
	assert_string_equal(t.port, I2);
	assert_int_equal(off + 24 + be32(in_buf + off + 20), in_len);

	/* Truncated, the ADDITIONAL LENGTH is still whole. */
	assert_int_equal(in(PR_IN_READ_FULL_STATUS, 6), GOOD);
	assert_int_equal(in_len, 6);
	assert_int_equal(in_buf[6], 0xee);
}

static void test_pr_in_unknown_service_action_is_invalid_field(void **st)
{
	for (uint8_t sa = 0x04; sa <= 0x1f; sa++) {
		assert_int_equal(in(sa, 100), CHECK);
		assert_int_equal(R.sense.asc, 0x24);
		assert_int_equal(R.sense.sks_field, 1);
		assert_int_equal(R.sense.sks_bit, 4);
	}
}

/* ---- the conflict table ---- */

enum who { HOLDER, REGISTRANT, OTHER };

/* spc4r37 5.13.1 and SBC-3's table: 1 = conflict. Rows are the six types, columns are
 * {holder, registrant, not registered} x {read, write}. */
static const struct {
	uint8_t type;
	bool conflict[3][2];
} TABLE[] = {
	{PR_TYPE_WE, {{0, 0}, {0, 1}, {0, 1}}},	   {PR_TYPE_EA, {{0, 0}, {1, 1}, {1, 1}}},
	{PR_TYPE_WE_RO, {{0, 0}, {0, 0}, {0, 1}}}, {PR_TYPE_EA_RO, {{0, 0}, {0, 0}, {1, 1}}},
	{PR_TYPE_WE_AR, {{0, 0}, {0, 0}, {0, 1}}}, {PR_TYPE_EA_AR, {{0, 0}, {0, 0}, {1, 1}}},
};

static void test_conflict_table_every_type_and_nexus(void **st)
{
	static const char *who[] = {I1, I2, I3};

	for (size_t i = 0; i < sizeof(TABLE) / sizeof(TABLE[0]); i++) {
		pr_state_init(&S);
		out(I1, PR_OUT_REGISTER, 0, 0, K1);
		out(I2, PR_OUT_REGISTER, 0, 0, K2);
		assert_int_equal(out(I1, PR_OUT_RESERVE, TABLE[i].type, K1, 0), GOOD);
		for (int w = HOLDER; w <= OTHER; w++) {
			enum pr_verdict rd = pr_check_conflict(&S, who[w], 1, PR_CLASS_READ);
			enum pr_verdict wr = pr_check_conflict(&S, who[w], 1, PR_CLASS_WRITE);

			if ((rd == PR_CONFLICT) != TABLE[i].conflict[w][0] ||
			    (wr == PR_CONFLICT) != TABLE[i].conflict[w][1])
				fail_msg("type %u nexus %d: read %d write %d", TABLE[i].type, w, rd,
					 wr);
			assert_int_equal(pr_check_conflict(&S, who[w], 1, PR_CLASS_ALLOWED),
					 PR_PASS);
		}
		/* The holder through another target port is another nexus. */
		if (TABLE[i].type == PR_TYPE_EA)
			assert_int_equal(pr_check_conflict(&S, I1, 2, PR_CLASS_READ), PR_CONFLICT);
	}
}

static void test_registrations_without_reservation_restrict_nothing(void **st)
{
	reg3();
	assert_int_equal(pr_check_conflict(&S, "iqn.x:y,i,0x000000000001", 1, PR_CLASS_WRITE),
			 PR_PASS);
	assert_int_equal(pr_check_conflict(&S, I1, 1, PR_CLASS_READ), PR_PASS);
}

static void test_scsi2_reserve_release_under_persistent_reservations(void **st)
{
	const char *stranger = "iqn.x:y,i,0x000000000001";

	/* No registrations: SPC-2 rules apply. */
	assert_int_equal(pr_check_conflict(&S, I1, 1, PR_CLASS_RESERVE_RELEASE), PR_PASS);
	/* Registrations, no reservation: conflict for everyone. */
	reg3();
	assert_int_equal(pr_check_conflict(&S, I1, 1, PR_CLASS_RESERVE_RELEASE), PR_CONFLICT);
	assert_int_equal(pr_check_conflict(&S, stranger, 1, PR_CLASS_RESERVE_RELEASE), PR_CONFLICT);
	/* CRH: the holder gets GOOD without effect; so does a registrant of RO/AR. */
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	assert_int_equal(pr_check_conflict(&S, I1, 1, PR_CLASS_RESERVE_RELEASE), PR_GOOD);
	assert_int_equal(pr_check_conflict(&S, I2, 1, PR_CLASS_RESERVE_RELEASE), PR_CONFLICT);
	out(I1, PR_OUT_RELEASE, PR_TYPE_WE, K1, 0);
	out(I1, PR_OUT_RESERVE, PR_TYPE_EA_RO, K1, 0);
	assert_int_equal(pr_check_conflict(&S, I2, 1, PR_CLASS_RESERVE_RELEASE), PR_GOOD);
	assert_int_equal(pr_check_conflict(&S, stranger, 1, PR_CLASS_RESERVE_RELEASE), PR_CONFLICT);
}

static void test_command_classes(void **st)
{
	const unsigned RD = SCSI_CMD_F_MEDIUM_READ, WR = SCSI_CMD_F_MEDIUM_WRITE;
	const unsigned NC = SCSI_CMD_F_NO_CONFLICT;
	struct {
		uint8_t cdb[6];
		unsigned flags;
		enum pr_class cls;
	} cases[] = {
		{{0x00}, 0, PR_CLASS_ALLOWED},	/* TEST UNIT READY */
		{{0x12}, NC, PR_CLASS_ALLOWED}, /* INQUIRY */
		{{0xa0}, NC, PR_CLASS_ALLOWED}, /* REPORT LUNS */
		{{0x03}, NC, PR_CLASS_ALLOWED}, /* REQUEST SENSE */
		{{0x25}, NC, PR_CLASS_ALLOWED}, /* READ CAPACITY(10) */
		{{0x5e}, 0, PR_CLASS_ALLOWED},	/* PERSISTENT RESERVE IN */
		{{0x5f}, SCSI_CMD_F_DATA_OUT, PR_CLASS_ALLOWED},
		{{0x28}, RD, PR_CLASS_READ},		       /* READ(10) */
		{{0x2f}, RD, PR_CLASS_READ},		       /* VERIFY(10) */
		{{0x2a}, WR, PR_CLASS_WRITE},		       /* WRITE(10) */
		{{0x35}, WR, PR_CLASS_WRITE},		       /* SYNCHRONIZE CACHE(10) */
		{{0x1a}, 0, PR_CLASS_READ},		       /* MODE SENSE(6) */
		{{0x5a}, 0, PR_CLASS_READ},		       /* MODE SENSE(10) */
		{{0x15}, SCSI_CMD_F_DATA_OUT, PR_CLASS_WRITE}, /* MODE SELECT(6) */
		{{0x1d}, SCSI_CMD_F_DATA_OUT, PR_CLASS_WRITE}, /* SEND DIAGNOSTIC */
		{{0x1b, 0, 0, 0, 0x01}, 0, PR_CLASS_ALLOWED},  /* START STOP UNIT, START=1 */
		{{0x1b, 0, 0, 0, 0x00}, 0, PR_CLASS_WRITE},    /* STOP */
		{{0x1b, 0, 0, 0, 0x11}, 0, PR_CLASS_WRITE},    /* power condition */
		{{0x16}, 0, PR_CLASS_RESERVE_RELEASE},
		{{0x17}, NC, PR_CLASS_RESERVE_RELEASE},
		{{0x56}, 0, PR_CLASS_RESERVE_RELEASE},
		{{0x57}, NC, PR_CLASS_RESERVE_RELEASE},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (pr_cmd_class(cases[i].cdb, 6, cases[i].flags) != cases[i].cls)
			fail_msg("opcode %02x: class %d, want %d", cases[i].cdb[0],
				 pr_cmd_class(cases[i].cdb, 6, cases[i].flags), cases[i].cls);
	/* An empty CDB is treated as the most restricted class. */
	assert_int_equal(pr_cmd_class(cases[0].cdb, 0, 0), PR_CLASS_WRITE);
}

static void test_admin_clear_drops_everything_and_tells_registrants(void **st)
{
	reg3();
	out(I1, PR_OUT_RESERVE, PR_TYPE_WE, K1, 0);
	pr_admin_clear(&S, &N, &R);
	assert_int_equal(N.nregs, 0);
	assert_int_equal(N.type, PR_TYPE_NONE);
	assert_int_equal(N.generation, S.generation + 1);
	assert_true(has_ua(I1, 1, UA_RES_PREEMPTED));
	assert_true(has_ua(I2, 1, UA_RES_PREEMPTED));
	assert_true(R.changed);
}

#define T(f) cmocka_unit_test_setup(f, setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_register_new_nexus_adds_key_and_bumps_generation),
		T(test_register_unregistered_with_nonzero_key_conflicts),
		T(test_register_wrong_key_conflicts),
		T(test_register_with_right_key_replaces_it),
		T(test_register_zero_key_unregisters),
		T(test_register_zero_key_from_unregistered_is_good_noop),
		T(test_register_and_ignore_replaces_any_key),
		T(test_register_and_ignore_zero_key_unregisters),
		T(test_registration_is_per_nexus_isid_and_port),
		T(test_register_all_tg_pt_registers_every_target_port),
		T(test_register_aptpl_sets_and_clears_persist),
		T(test_register_aptpl_refused_without_store),
		T(test_register_table_full_reports_insufficient_resources),
		T(test_param_list_must_be_24_bytes),
		T(test_param_list_shorter_than_announced_is_rejected),
		T(test_spec_i_pt_registers_named_initiator_ports),
		T(test_spec_i_pt_device_name_registers_known_ports),
		T(test_spec_i_pt_unknown_device_name_is_rejected),
		T(test_spec_i_pt_is_all_or_nothing),
		T(test_spec_i_pt_duplicate_nexus_is_rejected),
		T(test_spec_i_pt_truncated_transport_id_is_rejected),
		T(test_spec_i_pt_length_mismatch_is_length_error),
		T(test_spec_i_pt_from_registered_nexus_is_invalid),
		T(test_spec_i_pt_with_register_and_ignore_is_invalid),
		T(test_spec_i_pt_with_all_tg_pt_registers_on_every_port),
		T(test_tid_parse_formats_and_bounds),
		T(test_tid_build_round_trips),
		T(test_reserve_by_registrant_establishes_reservation),
		T(test_reserve_unregistered_or_wrong_key_conflicts),
		T(test_reserve_invalid_type_is_invalid_field_in_cdb),
		T(test_reserve_invalid_scope_is_invalid_field_in_cdb),
		T(test_reserve_again_by_holder_same_type_is_noop),
		T(test_reserve_by_other_registrant_conflicts),
		T(test_reserve_all_registrants_is_held_by_every_registrant),
		T(test_release_by_holder_releases),
		T(test_release_with_wrong_type_is_invalid_release),
		T(test_release_by_non_holder_is_good_noop),
		T(test_release_unregistered_or_wrong_key_conflicts),
		T(test_release_registrants_only_tells_other_registrants),
		T(test_release_all_registrants_by_any_registrant),
		T(test_holder_unregister_releases_ro_and_tells_registrants),
		T(test_holder_unregister_releases_we_silently),
		T(test_all_registrants_reservation_lasts_until_last_registrant),
		T(test_clear_removes_everything_and_tells_others),
		T(test_clear_wrong_key_conflicts),
		T(test_preempt_holder_key_takes_reservation),
		T(test_preempt_changing_type_tells_remaining_registrants),
		T(test_preempt_without_reservation_removes_registrations),
		T(test_preempt_non_holder_key_only_removes_registrations),
		T(test_preempt_unknown_key_conflicts),
		T(test_preempt_wrong_own_key_conflicts),
		T(test_preempt_zero_key_without_ar_is_invalid),
		T(test_preempt_invalid_type_is_invalid_field_in_cdb),
		T(test_preempt_all_registrants_with_zero_key),
		T(test_preempt_all_registrants_with_key_removes_only_that_key),
		T(test_self_preempt_keeps_issuer_and_drops_stale_isids),
		T(test_preempt_and_abort_aborts_only_preempted_nexuses),
		T(test_plain_preempt_aborts_nothing),
		T(test_failed_preempt_and_abort_aborts_nothing),
		T(test_register_and_move_hands_reservation_over),
		T(test_register_and_move_unreg_drops_issuer),
		T(test_register_and_move_needs_single_holder),
		T(test_register_and_move_rejects_bad_destination),
		T(test_register_and_move_short_list_is_length_error),
		T(test_unknown_service_action_is_invalid_field_in_cdb),
		T(test_read_keys_lists_keys_and_generation),
		T(test_read_keys_truncates_to_allocation_length),
		T(test_read_reservation_reports_holder_type_and_key),
		T(test_read_reservation_all_registrants_reports_key_zero),
		T(test_report_capabilities_bits),
		T(test_read_full_status_describes_each_nexus),
		T(test_pr_in_unknown_service_action_is_invalid_field),
		T(test_conflict_table_every_type_and_nexus),
		T(test_registrations_without_reservation_restrict_nothing),
		T(test_scsi2_reserve_release_under_persistent_reservations),
		T(test_command_classes),
		T(test_admin_clear_drops_everything_and_tells_registrants),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
