/* Unit tests for sense data building (target/scsi_sense.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "target/scsi_cmd.h"
#include "target/scsi_sense.h"

static void test_fixed_format_carries_key_asc_ascq(void **state)
{
	uint8_t b[32];
	size_t n = scsi_sense_build(&SENSE_LBA_OUT_OF_RANGE, b, sizeof(b));

	assert_int_equal(n, 18);
	assert_int_equal(b[0], 0x70); /* current, VALID clear */
	assert_int_equal(b[2], 0x05);
	assert_int_equal(b[7], 10);
	assert_int_equal(b[12], 0x21);
	assert_int_equal(b[13], 0x00);
	assert_int_equal(b[15], 0x00); /* no SKSV */
}

static void test_fixed_format_field_pointer_in_cdb_with_bit(void **state)
{
	struct scsi_sense s = scsi_sense_field(&SENSE_INVALID_FIELD_IN_CDB, true, 1, 4);
	uint8_t b[18];

	scsi_sense_build(&s, b, sizeof(b));
	/* SKSV | C/D | BPV | bit 4 */
	assert_int_equal(b[15], 0x80 | 0x40 | 0x08 | 0x04);
	assert_int_equal(b[16], 0x00);
	assert_int_equal(b[17], 0x01);
}

static void test_fixed_format_field_pointer_in_param_list_without_bit(void **state)
{
	struct scsi_sense s =
		scsi_sense_field(&SENSE_INVALID_FIELD_IN_PARAM_LIST, false, 0x1234, -1);
	uint8_t b[18];

	scsi_sense_build(&s, b, sizeof(b));
	assert_int_equal(b[15], 0x80); /* SKSV only: parameter list, no bit pointer */
	assert_int_equal(b[16], 0x12);
	assert_int_equal(b[17], 0x34);
	assert_int_equal(b[12], 0x26);
}

static void test_fixed_format_information_sets_valid(void **state)
{
	struct scsi_sense s = scsi_sense_info(&SENSE_MISCOMPARE, 0x01020304);
	uint8_t b[18];

	scsi_sense_build(&s, b, sizeof(b));
	assert_int_equal(b[0], 0xf0);
	assert_int_equal(b[2], 0x0e);
	assert_int_equal(b[3], 0x01);
	assert_int_equal(b[6], 0x04);
}

static void test_fixed_format_information_over_32_bits_clears_valid(void **state)
{
	struct scsi_sense s = scsi_sense_info(&SENSE_LBA_OUT_OF_RANGE, 1ull << 40);
	uint8_t b[18];

	scsi_sense_build(&s, b, sizeof(b));
	assert_int_equal(b[0], 0x70);
	assert_int_equal(b[3] | b[4] | b[5] | b[6], 0);
}

static void test_build_truncates_to_buffer(void **state)
{
	uint8_t b[20];

	memset(b, 0xaa, sizeof(b));
	assert_int_equal(scsi_sense_build(&SENSE_POWER_ON_RESET, b, 8), 8);
	assert_int_equal(b[0], 0x70);
	assert_int_equal(b[2], 0x06);
	assert_int_equal(b[8], 0xaa);
}

static void test_descriptor_format_with_info_and_field_pointer(void **state)
{
	struct scsi_sense s = scsi_sense_field(&SENSE_INVALID_FIELD_IN_CDB, true, 2, -1);
	uint8_t b[SCSI_SENSE_DESC_MAX];
	size_t n;

	s = scsi_sense_info(&s, 0x1122334455667788ull);
	n = scsi_sense_build_desc(&s, b, sizeof(b));
	assert_int_equal(n, 8 + 12 + 8);
	assert_int_equal(b[0], 0x72);
	assert_int_equal(b[1], 0x05);
	assert_int_equal(b[2], 0x24);
	assert_int_equal(b[7], 20);
	assert_int_equal(b[8], 0x00); /* information descriptor */
	assert_int_equal(b[10], 0x80);
	assert_int_equal(b[12], 0x11);
	assert_int_equal(b[19], 0x88);
	assert_int_equal(b[20], 0x02); /* sense key specific descriptor */
	assert_int_equal(b[24], 0xc0);
	assert_int_equal(b[26], 0x02);
}

static void test_descriptor_format_plain_is_header_only(void **state)
{
	uint8_t b[SCSI_SENSE_DESC_MAX];

	assert_int_equal(scsi_sense_build_desc(&SENSE_NO_SENSE, b, sizeof(b)), 8);
	assert_int_equal(b[0], 0x72);
	assert_int_equal(b[7], 0);
}

static void test_reset_conditions_are_asc_29_unit_attentions(void **state)
{
	assert_true(scsi_sense_is_reset(&SENSE_POWER_ON_RESET));
	assert_true(scsi_sense_is_reset(&SENSE_BUS_DEVICE_RESET));
	assert_false(scsi_sense_is_reset(&SENSE_MODE_PARAMS_CHANGED));
	assert_false(scsi_sense_is_reset(&SENSE_INVALID_FIELD_IN_CDB));
}

static int done_calls;

static void on_done(struct scsi_task *t)
{
	done_calls++;
}

static void test_task_check_cdb_field_completes_once_with_pointer(void **state)
{
	struct scsi_task t;

	memset(&t, 0, sizeof(t));
	t.done = on_done;
	t.in_len = 99;
	done_calls = 0;
	scsi_task_check_cdb_field(&t, 4, 7);
	assert_int_equal(done_calls, 1);
	assert_int_equal(t.status, SCSI_STATUS_CHECK_CONDITION);
	assert_int_equal(t.in_len, 0);
	assert_int_equal(t.sense.asc, 0x24);
	assert_true(t.sense.sks_valid && t.sense.sks_cd);
	assert_int_equal(t.sense.sks_field, 4);
	assert_int_equal(t.sense.sks_bit, 7);
}

static void test_set_sense_from_transport_does_not_complete(void **state)
{
	struct scsi_task t;

	memset(&t, 0, sizeof(t));
	t.done = on_done;
	done_calls = 0;
	scsi_task_set_sense(&t, 0x0b, 0x47, 0x03);
	assert_int_equal(done_calls, 0);
	assert_int_equal(t.status, SCSI_STATUS_CHECK_CONDITION);
	assert_int_equal(t.sense.key, 0x0b);
	assert_int_equal(t.sense.asc, 0x47);
	assert_int_equal(t.sense.ascq, 0x03);
	assert_false(t.sense.sks_valid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed_format_carries_key_asc_ascq),
		cmocka_unit_test(test_fixed_format_field_pointer_in_cdb_with_bit),
		cmocka_unit_test(test_fixed_format_field_pointer_in_param_list_without_bit),
		cmocka_unit_test(test_fixed_format_information_sets_valid),
		cmocka_unit_test(test_fixed_format_information_over_32_bits_clears_valid),
		cmocka_unit_test(test_build_truncates_to_buffer),
		cmocka_unit_test(test_descriptor_format_with_info_and_field_pointer),
		cmocka_unit_test(test_descriptor_format_plain_is_header_only),
		cmocka_unit_test(test_reset_conditions_are_asc_29_unit_attentions),
		cmocka_unit_test(test_task_check_cdb_field_completes_once_with_pointer),
		cmocka_unit_test(test_set_sense_from_transport_does_not_complete),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
