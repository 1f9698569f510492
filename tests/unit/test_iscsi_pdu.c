/* The BHS decoder and the target PDU encoders (RFC 7143 section 11), and LUN addressing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/cursor.h"
#include "target/iscsi_pdu.h"

static const struct iscsi_sn sn = {
	.statsn = 0x11111111, .expcmdsn = 0x22222222, .maxcmdsn = 0x33333333};

static void test_parse_scsi_read_command(void **state)
{
	/* The RFC 3720 B.4 READ(10) PDU. */
	static const uint8_t bhs[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	struct iscsi_pdu p;
	uint8_t reason;

	assert_int_equal(iscsi_pdu_parse(bhs, sizeof(bhs), &p, &reason), 0);
	assert_int_equal(p.opcode, ISCSI_OP_SCSI_CMD);
	assert_false(p.immediate);
	assert_true(p.final);
	assert_true(p.read);
	assert_false(p.write);
	assert_int_equal(p.itt, 0x14000000);
	assert_int_equal(p.edtl, 0x400);
	assert_int_equal(p.cmdsn, 0x14);
	assert_int_equal(p.expstatsn, 0x18);
	assert_int_equal(p.cdb[0], 0x28);
	assert_int_equal(p.cdb[8], 0x02);
}

static void test_parse_login_request_fields(void **state)
{
	uint8_t bhs[48] = {0};
	struct iscsi_pdu p;
	uint8_t reason;

	bhs[0] = 0x40 | ISCSI_OP_LOGIN_REQ;
	bhs[1] = 0x80 | (1 << 2) | 3; /* T, CSG=1, NSG=3 */
	bhs[2] = 0;
	bhs[3] = 0;
	put_be24(bhs + 5, 300);
	memcpy(bhs + 8, "\x80\x12\x34\x56\x78\x9a", 6);
	put_be16(bhs + 14, 0x0102);
	put_be32(bhs + 16, 7);
	put_be16(bhs + 20, 9);
	put_be32(bhs + 24, 100);
	put_be32(bhs + 28, 200);
	assert_int_equal(iscsi_pdu_parse(bhs, 48, &p, &reason), 0);
	assert_true(p.immediate);
	assert_true(p.final);
	assert_false(p.cont);
	assert_int_equal(p.csg, 1);
	assert_int_equal(p.nsg, 3);
	assert_int_equal(p.data_len, 300);
	assert_memory_equal(p.isid, "\x80\x12\x34\x56\x78\x9a", 6);
	assert_int_equal(p.tsih, 0x0102);
	assert_int_equal(p.itt, 7);
	assert_int_equal(p.cid, 9);
	assert_int_equal(p.cmdsn, 100);
	assert_int_equal(p.expstatsn, 200);
	assert_int_equal(p.lun, 0);
}

static void test_parse_text_continue_bit(void **state)
{
	uint8_t bhs[48] = {0};
	struct iscsi_pdu p;
	uint8_t reason;

	bhs[0] = ISCSI_OP_TEXT_REQ;
	bhs[1] = 0x40;
	put_be32(bhs + 20, 0xabcd);
	assert_int_equal(iscsi_pdu_parse(bhs, 48, &p, &reason), 0);
	assert_true(p.cont);
	assert_false(p.final);
	assert_int_equal(p.ttt, 0xabcd);
}

static void test_parse_data_out_and_tmf_and_snack(void **state)
{
	uint8_t bhs[48] = {0};
	struct iscsi_pdu p;
	uint8_t reason;

	bhs[0] = ISCSI_OP_DATA_OUT;
	bhs[1] = 0x80;
	put_be32(bhs + 20, 5);
	put_be32(bhs + 36, 3);
	put_be32(bhs + 40, 8192);
	assert_int_equal(iscsi_pdu_parse(bhs, 48, &p, &reason), 0);
	assert_int_equal(p.ttt, 5);
	assert_int_equal(p.datasn, 3);
	assert_int_equal(p.buffer_offset, 8192);
	assert_int_equal(p.cmdsn, 0);

	memset(bhs, 0, 48);
	bhs[0] = 0x40 | ISCSI_OP_TMF_REQ;
	bhs[1] = 0x80 | ISCSI_TMF_LUN_RESET;
	put_be32(bhs + 20, 77);
	put_be32(bhs + 32, 88);
	put_be32(bhs + 36, 99);
	assert_int_equal(iscsi_pdu_parse(bhs, 48, &p, &reason), 0);
	assert_int_equal(p.tmf_func, ISCSI_TMF_LUN_RESET);
	assert_int_equal(p.rtt, 77);
	assert_int_equal(p.refcmdsn, 88);
	assert_int_equal(p.expdatasn, 99);

	memset(bhs, 0, 48);
	bhs[0] = ISCSI_OP_SNACK_REQ;
	bhs[1] = 0x80 | 1;
	put_be32(bhs + 40, 4);
	put_be32(bhs + 44, 2);
	assert_int_equal(iscsi_pdu_parse(bhs, 48, &p, &reason), 0);
	assert_int_equal(p.snack_type, 1);
	assert_int_equal(p.begrun, 4);
	assert_int_equal(p.runlength, 2);
}

static void test_parse_logout_reason_and_cid(void **state)
{
	uint8_t bhs[48] = {0};
	struct iscsi_pdu p;
	uint8_t reason;

	bhs[0] = 0x40 | ISCSI_OP_LOGOUT_REQ;
	bhs[1] = 0x80 | ISCSI_LOGOUT_CLOSE_CONNECTION;
	put_be16(bhs + 20, 3);
	assert_int_equal(iscsi_pdu_parse(bhs, 48, &p, &reason), 0);
	assert_int_equal(p.logout_reason, ISCSI_LOGOUT_CLOSE_CONNECTION);
	assert_int_equal(p.cid, 3);
}

static void test_parse_truncated_bhs_fails(void **state)
{
	uint8_t bhs[48] = {0};
	struct iscsi_pdu p;
	uint8_t reason;

	assert_int_equal(iscsi_pdu_parse(bhs, 47, &p, &reason), -EBADMSG);
	assert_int_equal(reason, ISCSI_REJECT_PROTOCOL_ERROR);
	assert_int_equal(iscsi_pdu_parse(NULL, 48, &p, &reason), -EBADMSG);
}

static void test_parse_target_and_unknown_opcodes_not_supported(void **state)
{
	static const uint8_t ops[] = {
		ISCSI_OP_SCSI_RSP, ISCSI_OP_LOGIN_RSP, ISCSI_OP_REJECT, 0x07, 0x1c, 0x3c};
	uint8_t bhs[48] = {0};
	struct iscsi_pdu p;
	uint8_t reason;

	for (size_t i = 0; i < sizeof(ops); i++) {
		bhs[0] = ops[i];
		assert_int_equal(iscsi_pdu_parse(bhs, 48, &p, &reason), -EBADMSG);
		assert_int_equal(reason, ISCSI_REJECT_CMD_NOT_SUPPORTED);
	}
}

static void test_parse_ahs_only_on_scsi_command(void **state)
{
	uint8_t bhs[48] = {0};
	struct iscsi_pdu p;
	uint8_t reason;

	bhs[0] = ISCSI_OP_SCSI_CMD;
	bhs[4] = 2;
	assert_int_equal(iscsi_pdu_parse(bhs, 48, &p, &reason), 0);
	assert_int_equal(p.ahs_len, 8);

	bhs[4] = 255; /* the largest AHS, 1020 bytes, must not wrap */
	assert_int_equal(iscsi_pdu_parse(bhs, 48, &p, &reason), 0);
	assert_int_equal(p.ahs_len, ISCSI_MAX_AHS_LEN);

	bhs[0] = ISCSI_OP_NOP_OUT;
	assert_int_equal(iscsi_pdu_parse(bhs, 48, &p, &reason), -EBADMSG);
	assert_int_equal(reason, ISCSI_REJECT_PROTOCOL_ERROR);
}

static void test_parse_ignores_reserved_bits(void **state)
{
	uint8_t bhs[48];
	struct iscsi_pdu p;
	uint8_t reason;

	memset(bhs, 0xff, sizeof(bhs));
	bhs[0] = 0x80 | ISCSI_OP_NOP_OUT; /* bit 7 of byte 0 is reserved */
	bhs[4] = 0;
	assert_int_equal(iscsi_pdu_parse(bhs, 48, &p, &reason), 0);
	assert_int_equal(p.opcode, ISCSI_OP_NOP_OUT);
	assert_int_equal(p.tmf_func, 0); /* fields of other opcodes stay zero */
	assert_int_equal(p.edtl, 0);
}

static void test_build_scsi_rsp_underflow_and_overflow(void **state)
{
	uint8_t b[48];
	struct cursor c;
	uint32_t v;

	iscsi_build_scsi_rsp(b, 0x1234, ISCSI_RSP_COMPLETED, 0x02, 512, &sn, 5, 18);
	assert_int_equal(b[0], ISCSI_OP_SCSI_RSP);
	assert_int_equal(b[1], 0x80 | 0x02);
	assert_int_equal(b[3], 0x02);
	cur_init(&c, b, 48);
	cur_seek(&c, 5);
	cur_be24(&c, &v);
	assert_int_equal(v, 18);
	cur_seek(&c, 16);
	cur_be32(&c, &v);
	assert_int_equal(v, 0x1234);
	cur_seek(&c, 24);
	cur_be32(&c, &v);
	assert_int_equal(v, sn.statsn);
	cur_seek(&c, 36);
	cur_be32(&c, &v);
	assert_int_equal(v, 5);
	cur_seek(&c, 44);
	cur_be32(&c, &v);
	assert_int_equal(v, 512);

	iscsi_build_scsi_rsp(b, 1, 0, 0, -100, &sn, 0, 0);
	assert_int_equal(b[1], 0x80 | 0x04);
	cur_seek(&c, 44);
	cur_be32(&c, &v);
	assert_int_equal(v, 100);
}

/* RFC 7143 11.4.5: the residual count is unsigned 32-bit; an underflow of 2 GiB or more is
 * still an underflow. */
static void test_build_scsi_rsp_residual_beyond_2gib_is_underflow(void **state)
{
	struct iscsi_sn seq = {1, 2, 3};
	uint8_t b[48];
	struct cursor c;
	uint32_t v;

	iscsi_build_scsi_rsp(b, 1, 0, 0, (int64_t)0xffffffffu - 512, &seq, 0, 0);
	assert_int_equal(b[1], 0x80 | 0x02);
	cur_init(&c, b, sizeof(b));
	cur_seek(&c, 44);
	cur_be32(&c, &v);
	assert_int_equal(v, 0xffffffffu - 512);
	iscsi_build_scsi_rsp(b, 1, 0, 0, -(int64_t)0x80000000u, &seq, 0, 0);
	assert_int_equal(b[1], 0x80 | 0x04);
	cur_seek(&c, 44);
	cur_be32(&c, &v);
	assert_int_equal(v, 0x80000000u);
}

static void test_build_data_in_status_only_with_final(void **state)
{
	uint8_t b[48];

	iscsi_build_data_in(b, 1, 0, ISCSI_RSVD_TAG, false, false, true, 0, 0, &sn, 0, 0, 512);
	assert_int_equal(b[1], 0);
	assert_memory_equal(b + 24, "\0\0\0\0", 4); /* StatSN reserved without S */

	iscsi_build_data_in(b, 1, 0, ISCSI_RSVD_TAG, true, false, true, 0, 4, &sn, 1, 512, 508);
	assert_int_equal(b[1], 0x80 | 0x02 | 0x01);
	assert_int_equal(b[27], 0x11);
	assert_int_equal(b[47], 4);
	assert_int_equal(b[41], 0);
	assert_int_equal(b[42], 2);
}

static void test_build_login_rsp_flags_and_status(void **state)
{
	uint8_t b[48];
	static const uint8_t isid[6] = {1, 2, 3, 4, 5, 6};

	iscsi_build_login_rsp(b, true, false, 1, 3, 0, isid, 0x0005, 9, &sn, 0x0201, 0);
	assert_int_equal(b[0], ISCSI_OP_LOGIN_RSP);
	assert_int_equal(b[1], 0x80 | (1 << 2) | 3);
	assert_memory_equal(b + 8, isid, 6);
	assert_int_equal(b[15], 5);
	assert_int_equal(b[36], 0x02);
	assert_int_equal(b[37], 0x01);

	/* With C set, T and NSG must be clear. */
	iscsi_build_login_rsp(b, true, true, 0, 1, 0, isid, 0, 9, &sn, 0, 100);
	assert_int_equal(b[1], 0x40);
}

static void test_build_reject_and_r2t_and_logout(void **state)
{
	uint8_t b[48];

	iscsi_build_reject(b, ISCSI_REJECT_PROTOCOL_ERROR, 0, &sn, 48);
	assert_int_equal(b[0], ISCSI_OP_REJECT);
	assert_int_equal(b[2], ISCSI_REJECT_PROTOCOL_ERROR);
	assert_memory_equal(b + 16, "\xff\xff\xff\xff", 4);
	assert_int_equal(b[7], 48);

	iscsi_build_r2t(b, 2, iscsi_lun_encode(1), 3, &sn, 4, 65536, 8192);
	assert_int_equal(b[0], ISCSI_OP_R2T);
	assert_int_equal(b[9], 1);
	assert_int_equal(b[39], 4);
	assert_int_equal(b[41], 1);
	assert_int_equal(b[46], 0x20);

	iscsi_build_logout_rsp(b, 5, ISCSI_LOGOUT_RSP_OK, 2, 20, &sn);
	assert_int_equal(b[0], ISCSI_OP_LOGOUT_RSP);
	assert_int_equal(b[41], 2);
	assert_int_equal(b[43], 20);
}

static void test_lun_peripheral_and_flat_roundtrip(void **state)
{
	uint64_t lun;

	for (uint64_t l = 0; l < 16384; l += 97) {
		assert_int_equal(iscsi_lun_decode(iscsi_lun_encode(l), &lun), 0);
		assert_int_equal(lun, l);
	}
	assert_int_equal(iscsi_lun_encode(5), 0x0005000000000000ull);
	assert_int_equal(iscsi_lun_encode(300), 0x412c000000000000ull);
	/* Flat addressing of a small LUN is accepted too. */
	assert_int_equal(iscsi_lun_decode(0x4005000000000000ull, &lun), 0);
	assert_int_equal(lun, 5);
}

static void test_lun_other_methods_rejected(void **state)
{
	uint64_t lun;

	assert_int_equal(iscsi_lun_decode(0x0105000000000000ull, &lun), -EINVAL); /* bus 1 */
	assert_int_equal(iscsi_lun_decode(0x8005000000000000ull, &lun), -EINVAL);
	assert_int_equal(iscsi_lun_decode(0xc101000000000000ull, &lun), -EINVAL); /* W-LUN */
	assert_int_equal(iscsi_lun_decode(0x0005000000000001ull, &lun), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_scsi_read_command),
		cmocka_unit_test(test_parse_login_request_fields),
		cmocka_unit_test(test_parse_text_continue_bit),
		cmocka_unit_test(test_parse_data_out_and_tmf_and_snack),
		cmocka_unit_test(test_parse_logout_reason_and_cid),
		cmocka_unit_test(test_parse_truncated_bhs_fails),
		cmocka_unit_test(test_parse_target_and_unknown_opcodes_not_supported),
		cmocka_unit_test(test_parse_ahs_only_on_scsi_command),
		cmocka_unit_test(test_parse_ignores_reserved_bits),
		cmocka_unit_test(test_build_scsi_rsp_underflow_and_overflow),
		cmocka_unit_test(test_build_scsi_rsp_residual_beyond_2gib_is_underflow),
		cmocka_unit_test(test_build_data_in_status_only_with_final),
		cmocka_unit_test(test_build_login_rsp_flags_and_status),
		cmocka_unit_test(test_build_reject_and_r2t_and_logout),
		cmocka_unit_test(test_lun_peripheral_and_flat_roundtrip),
		cmocka_unit_test(test_lun_other_methods_rejected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
