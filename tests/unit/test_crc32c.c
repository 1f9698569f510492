/* CRC32C against the RFC 3720 B.4 vectors (repeated in RFC 7143), in both implementations,
 * and the wire byte order the transport must use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/crc32c.h"

/* RFC 3720 B.4: the CRC as it appears on the wire, byte by byte. */
static void check_vector(const uint8_t *buf, size_t len, const uint8_t wire[4], uint32_t value)
{
	uint8_t out[4];

	assert_int_equal(crc32c(0, buf, len), value);
	assert_int_equal(crc32c_portable(0, buf, len), value);
	crc32c_put_le(out, crc32c(0, buf, len));
	assert_memory_equal(out, wire, 4);
	assert_int_equal(crc32c_get_le(wire), value);
}

static void test_rfc_32_zero_bytes(void **state)
{
	uint8_t buf[32] = {0};
	static const uint8_t wire[4] = {0xaa, 0x36, 0x91, 0x8a};

	check_vector(buf, sizeof(buf), wire, 0x8a9136aa);
}

static void test_rfc_32_ff_bytes(void **state)
{
	uint8_t buf[32];
	static const uint8_t wire[4] = {0x43, 0xab, 0xa8, 0x62};

	memset(buf, 0xff, sizeof(buf));
	check_vector(buf, sizeof(buf), wire, 0x62a8ab43);
}

static void test_rfc_32_incrementing_bytes(void **state)
{
	uint8_t buf[32];
	static const uint8_t wire[4] = {0x4e, 0x79, 0xdd, 0x46};

	for (int i = 0; i < 32; i++)
		buf[i] = i;
	check_vector(buf, sizeof(buf), wire, 0x46dd794e);
}

static void test_rfc_32_decrementing_bytes(void **state)
{
	uint8_t buf[32];
	static const uint8_t wire[4] = {0x5c, 0xdb, 0x3f, 0x11};

	for (int i = 0; i < 32; i++)
		buf[i] = 31 - i;
	check_vector(buf, sizeof(buf), wire, 0x113fdb5c);
}

static void test_rfc_scsi_read_command_pdu(void **state)
{
	static const uint8_t pdu[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	static const uint8_t wire[4] = {0x56, 0x3a, 0x96, 0xd9};

	check_vector(pdu, sizeof(pdu), wire, 0xd9963a56);
}

static void test_known_check_value_123456789(void **state)
{
	/* The catalogue check value of CRC-32C. */
	assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283);
}

static void test_empty_buffer_keeps_value(void **state)
{
	assert_int_equal(crc32c(0, "", 0), 0);
	assert_int_equal(crc32c(0x12345678, "", 0), 0x12345678);
}

static void test_chained_equals_one_shot_at_every_split(void **state)
{
	uint8_t buf[300];
	uint32_t whole;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	whole = crc32c(0, buf, sizeof(buf));
	for (size_t cut = 0; cut <= sizeof(buf); cut++) {
		uint32_t c = crc32c(0, buf, cut);

		assert_int_equal(crc32c(c, buf + cut, sizeof(buf) - cut), whole);
	}
}

static void test_hardware_matches_table_on_unaligned_lengths(void **state)
{
	uint8_t *buf = malloc(4099);

	assert_non_null(buf);
	srand(42);
	for (size_t i = 0; i < 4099; i++)
		buf[i] = rand();
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len + off <= 4099; len += 37)
			assert_int_equal(crc32c(0, buf + off, len),
					 crc32c_portable(0, buf + off, len));
	free(buf);
}

static void test_iov_equals_contiguous(void **state)
{
	uint8_t buf[100];
	struct iovec iov[3];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = i ^ 0x5a;
	iov[0] = (struct iovec){buf, 3};
	iov[1] = (struct iovec){buf + 3, 0};
	iov[2] = (struct iovec){buf + 3, 97};
	assert_int_equal(crc32c_iov(0, iov, 3), crc32c(0, buf, sizeof(buf)));
}

static void test_single_bit_flip_changes_digest(void **state)
{
	uint8_t buf[48] = {0};
	uint32_t d = crc32c(0, buf, sizeof(buf));

	buf[47] ^= 1;
	assert_int_not_equal(crc32c(0, buf, sizeof(buf)), d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_32_zero_bytes),
		cmocka_unit_test(test_rfc_32_ff_bytes),
		cmocka_unit_test(test_rfc_32_incrementing_bytes),
		cmocka_unit_test(test_rfc_32_decrementing_bytes),
		cmocka_unit_test(test_rfc_scsi_read_command_pdu),
		cmocka_unit_test(test_known_check_value_123456789),
		cmocka_unit_test(test_empty_buffer_keeps_value),
		cmocka_unit_test(test_chained_equals_one_shot_at_every_split),
		cmocka_unit_test(test_hardware_matches_table_on_unaligned_lengths),
		cmocka_unit_test(test_iov_equals_contiguous),
		cmocka_unit_test(test_single_bit_flip_changes_digest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
