/* Unit tests for target/scsi_cdb.c: every CDB format decodes its fields from the right bytes,
 * and a CDB shorter than its opcode's group is refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "target/scsi_cdb.h"
#include "target/scsi_cmd.h"

static void test_read10_decodes_lba_length_flags_group_control(void **state)
{
	const uint8_t cdb[10] = {0x28, 0x18, 0x12, 0x34, 0x56, 0x78, 0x05, 0x01, 0x02, 0x04};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_int_equal(c.opcode, 0x28);
	assert_int_equal(c.sa, SCSI_NO_SA);
	assert_int_equal(c.len, 10);
	assert_int_equal(c.lba, 0x12345678);
	assert_int_equal(c.xfer_len, 0x102);
	assert_true(c.flags & SCSI_CDB_FUA);
	assert_true(c.flags & SCSI_CDB_DPO);
	assert_int_equal(c.protect, 0);
	assert_int_equal(c.group, 5);
	assert_int_equal(c.control, 0x04);
}

static void test_read10_rdprotect_is_decoded(void **state)
{
	const uint8_t cdb[10] = {0x28, 0xa0, 0, 0, 0, 1, 0, 0, 1, 0};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_int_equal(c.protect, 5);
	assert_false(c.flags & SCSI_CDB_FUA);
}

static void test_read6_uses_21_bit_lba_and_zero_length_means_256(void **state)
{
	const uint8_t cdb[6] = {0x08, 0xff, 0x12, 0x34, 0x00, 0x00};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_int_equal(c.lba, 0x1f1234);
	assert_int_equal(c.xfer_len, 256);
}

static void test_write16_decodes_64_bit_lba(void **state)
{
	const uint8_t cdb[16] = {0x8a, 0x08, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
				 0x07, 0x08, 0x00, 0x00, 0x10, 0x00, 0x03, 0x00};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_int_equal(c.lba, 0x0102030405060708ull);
	assert_int_equal(c.xfer_len, 0x1000);
	assert_true(c.flags & SCSI_CDB_FUA);
	assert_int_equal(c.group, 3);
}

static void test_write12_decodes_32_bit_length(void **state)
{
	const uint8_t cdb[12] = {0xaa, 0, 0, 0, 0, 9, 0x00, 0x01, 0x00, 0x00, 0, 0};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_int_equal(c.lba, 9);
	assert_int_equal(c.xfer_len, 0x10000);
}

static void test_cdb_shorter_than_its_group_is_refused(void **state)
{
	const uint8_t cdb[16] = {0x28};
	const uint8_t cdb16[16] = {0x88};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, 9, &c), -EBADMSG);
	assert_int_equal(scsi_cdb_decode(cdb16, 15, &c), -EBADMSG);
	assert_int_equal(scsi_cdb_decode(cdb, 0, &c), -EBADMSG);
	assert_int_equal(scsi_cdb_decode(cdb, 10, &c), 0);
}

static void test_padding_after_the_cdb_does_not_shift_fields(void **state)
{
	/* iSCSI carries 16 bytes; a 10-byte CDB is followed by garbage. */
	const uint8_t cdb[16] = {0x2a, 0, 0,	0,    0,    7,	  0,	0,
				 3,    0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_int_equal(c.len, 10);
	assert_int_equal(c.lba, 7);
	assert_int_equal(c.xfer_len, 3);
	assert_int_equal(c.control, 0);
}

static void test_vendor_and_reserved_groups_are_refused(void **state)
{
	uint8_t cdb[16] = {0xc0};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), -EINVAL);
	cdb[0] = 0xe5;
	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), -EINVAL);
	cdb[0] = 0x60;
	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), -EINVAL);
	assert_int_equal(scsi_cdb_group_len(0x7f), 8);
	assert_int_equal(scsi_cdb_group_len(0xa0), 12);
}

static void test_service_action_in_16_decodes_sa_and_allocation_length(void **state)
{
	const uint8_t cdb[16] = {0x9e, 0x12, 0,	   0,	 0,    0,    0, 0,
				 0x10, 0x00, 0x00, 0x00, 0x02, 0x00, 0, 0};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_int_equal(c.sa, 0x12);
	assert_int_equal(c.lba, 0x1000);
	assert_int_equal(c.alloc_len, 0x200);
	assert_int_equal(c.xfer_len, 0);
}

static void test_write_same16_decodes_unmap_anchor_ndob(void **state)
{
	const uint8_t cdb[16] = {0x93, 0x19, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_true(c.flags & SCSI_CDB_UNMAP);
	assert_true(c.flags & SCSI_CDB_ANCHOR);
	assert_true(c.flags & SCSI_CDB_NDOB);
	assert_false(c.flags & SCSI_CDB_LBDATA);
	assert_int_equal(c.lba, 4);
	assert_int_equal(c.xfer_len, 8);
}

static void test_write_same10_bit0_is_not_ndob_and_lbdata_pbdata_decode(void **state)
{
	const uint8_t cdb[10] = {0x41, 0x07, 0, 0, 0, 1, 0, 0, 1, 0};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_false(c.flags & SCSI_CDB_NDOB);
	assert_true(c.flags & SCSI_CDB_LBDATA);
	assert_true(c.flags & SCSI_CDB_PBDATA);
}

static void test_compare_and_write_length_is_byte_13(void **state)
{
	const uint8_t cdb[16] = {0x89, 0x08, 0, 0, 0, 0, 0, 0, 0, 5, 0xaa, 0xbb, 0xcc, 2, 0, 0};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_int_equal(c.lba, 5);
	assert_int_equal(c.xfer_len, 2);
	assert_true(c.flags & SCSI_CDB_FUA);
}

static void test_write_atomic16_length_is_bytes_12_13(void **state)
{
	const uint8_t cdb[16] = {0x9c, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0x12, 0x34, 0x00, 0x08, 0, 0};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_int_equal(c.xfer_len, 8);
}

static void test_verify_bytchk_and_sync_cache_immed(void **state)
{
	const uint8_t v[10] = {0x2f, 0x06, 0, 0, 0, 0, 0, 0, 1, 0};
	const uint8_t s[10] = {0x35, 0x02, 0, 0, 0, 0, 0, 0, 0, 0};
	const uint8_t s0[10] = {0x35, 0x00, 0, 0, 0, 0, 0, 0, 0, 0};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(v, sizeof(v), &c), 0);
	assert_int_equal(c.bytchk, 3);
	assert_int_equal(scsi_cdb_decode(s, sizeof(s), &c), 0);
	assert_true(c.flags & SCSI_CDB_IMMED);
	assert_int_equal(scsi_cdb_decode(s0, sizeof(s0), &c), 0);
	assert_false(c.flags & SCSI_CDB_IMMED);
}

static void test_unmap_decodes_anchor_and_parameter_list_length(void **state)
{
	const uint8_t cdb[10] = {0x42, 0x01, 0, 0, 0, 0, 0, 0x01, 0x18, 0};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_true(c.flags & SCSI_CDB_ANCHOR);
	assert_int_equal(c.alloc_len, 0x118);
}

static void test_inquiry_allocation_length_is_two_bytes(void **state)
{
	const uint8_t cdb[6] = {0x12, 0x01, 0x83, 0x01, 0x00, 0x00};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_int_equal(c.alloc_len, 0x100);
	assert_int_equal(c.byte1, 0x01);
}

static void test_persistent_reserve_in_decodes_sa(void **state)
{
	const uint8_t cdb[10] = {0x5e, 0x01, 0, 0, 0, 0, 0, 0x20, 0x00, 0};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_int_equal(c.sa, 1);
	assert_int_equal(c.alloc_len, 0x2000);
}

static void test_variable_length_read32_decodes_sa_lba_length(void **state)
{
	uint8_t cdb[32] = {0x7f, 0x00, 0, 0, 0, 0, 0x02, 0x18, 0x00, 0x09, 0x08, 0};

	cdb[12] = 0x11; /* LBA bytes 12-19 */
	cdb[19] = 0x22;
	cdb[31] = 0x04; /* TRANSFER LENGTH bytes 28-31 */
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, sizeof(cdb), &c), 0);
	assert_int_equal(c.len, 32);
	assert_int_equal(c.sa, 0x0009);
	assert_int_equal(c.lba, 0x1100000000000022ull);
	assert_int_equal(c.xfer_len, 4);
	assert_true(c.flags & SCSI_CDB_FUA);
	assert_int_equal(c.group, 2);
}

static void test_variable_length_cdb_shorter_than_its_additional_length_is_refused(void **state)
{
	uint8_t cdb[32] = {0x7f, 0, 0, 0, 0, 0, 0, 0x18, 0x00, 0x09};
	struct scsi_cdb c;

	assert_int_equal(scsi_cdb_decode(cdb, 31, &c), -EBADMSG);
	assert_int_equal(scsi_cdb_decode(cdb, 7, &c), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read10_decodes_lba_length_flags_group_control),
		cmocka_unit_test(test_read10_rdprotect_is_decoded),
		cmocka_unit_test(test_read6_uses_21_bit_lba_and_zero_length_means_256),
		cmocka_unit_test(test_write16_decodes_64_bit_lba),
		cmocka_unit_test(test_write12_decodes_32_bit_length),
		cmocka_unit_test(test_cdb_shorter_than_its_group_is_refused),
		cmocka_unit_test(test_padding_after_the_cdb_does_not_shift_fields),
		cmocka_unit_test(test_vendor_and_reserved_groups_are_refused),
		cmocka_unit_test(test_service_action_in_16_decodes_sa_and_allocation_length),
		cmocka_unit_test(test_write_same16_decodes_unmap_anchor_ndob),
		cmocka_unit_test(test_write_same10_bit0_is_not_ndob_and_lbdata_pbdata_decode),
		cmocka_unit_test(test_compare_and_write_length_is_byte_13),
		cmocka_unit_test(test_write_atomic16_length_is_bytes_12_13),
		cmocka_unit_test(test_verify_bytchk_and_sync_cache_immed),
		cmocka_unit_test(test_unmap_decodes_anchor_and_parameter_list_length),
		cmocka_unit_test(test_inquiry_allocation_length_is_two_bytes),
		cmocka_unit_test(test_persistent_reserve_in_decodes_sa),
		cmocka_unit_test(test_variable_length_read32_decodes_sa_lba_length),
		cmocka_unit_test(
			test_variable_length_cdb_shorter_than_its_additional_length_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
