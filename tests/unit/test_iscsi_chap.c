/* CHAP-MD5 primitives (RFC 1994, RFC 7143 12.1.3) and the binary encodings. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "target/iscsi_chap.h"

static void test_md5_matches_rfc1321_vector(void **state)
{
	/* MD5("abc") split as id 'a', secret "b", challenge "c". */
	static const uint8_t want[16] = {0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0,
					 0xd6, 0x96, 0x3f, 0x7d, 0x28, 0xe1, 0x7f, 0x72};
	uint8_t out[16];

	assert_int_equal(iscsi_chap_md5('a', "b", 1, (const uint8_t *)"c", 1, out), 0);
	assert_memory_equal(out, want, 16);
}

static void test_decode_hex_even_odd_and_case(void **state)
{
	uint8_t out[8];
	size_t n;

	assert_int_equal(iscsi_chap_decode("0x0aFf", 6, out, sizeof(out), &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0], 0x0a);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(iscsi_chap_decode("0Xabc", 5, out, sizeof(out), &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0], 0x0a);
	assert_int_equal(out[1], 0xbc);
}

static void test_decode_base64_with_padding(void **state)
{
	uint8_t out[8];
	size_t n;

	assert_int_equal(iscsi_chap_decode("0bAQID", 6, out, sizeof(out), &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "\x01\x02\x03", 3);
	assert_int_equal(iscsi_chap_decode("0bAQ==", 6, out, sizeof(out), &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 1);
	assert_int_equal(iscsi_chap_decode("0bAQI=", 6, out, sizeof(out), &n), 0);
	assert_int_equal(n, 2);
}

static void test_decode_rejects_malformed(void **state)
{
	uint8_t out[4];
	size_t n;

	assert_int_equal(iscsi_chap_decode("1234", 4, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(iscsi_chap_decode("0x", 2, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(iscsi_chap_decode("0xzz", 4, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(iscsi_chap_decode("0bAQ=I", 6, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(iscsi_chap_decode("0bAQI", 5, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(iscsi_chap_decode("0x0102030405", 12, out, sizeof(out), &n), -E2BIG);
}

static void test_encode_hex_and_bounds(void **state)
{
	char out[7];

	assert_int_equal(iscsi_chap_encode_hex((const uint8_t *)"\x01\xab", 2, out, 7), 0);
	assert_string_equal(out, "0x01ab");
	assert_int_equal(iscsi_chap_encode_hex((const uint8_t *)"\x01\xab", 2, out, 6), -ENOSPC);
}

static void test_verify_accepts_right_and_refuses_wrong_secret(void **state)
{
	struct iscsi_chap c;
	uint8_t rsp[16];

	assert_int_equal(iscsi_chap_start(&c), 0);
	iscsi_chap_md5(c.id, "secret123456", 12, c.challenge, sizeof(c.challenge), rsp);
	assert_true(iscsi_chap_verify(&c, "secret123456", rsp, 16));
	assert_false(iscsi_chap_verify(&c, "secret123457", rsp, 16));
	assert_false(iscsi_chap_verify(&c, "secret123456", rsp, 15));
	assert_false(iscsi_chap_verify(&c, "", rsp, 16));
	rsp[15] ^= 1;
	assert_false(iscsi_chap_verify(&c, "secret123456", rsp, 16));
}

static void test_verify_depends_on_identifier(void **state)
{
	struct iscsi_chap c;
	uint8_t rsp[16];

	assert_int_equal(iscsi_chap_start(&c), 0);
	iscsi_chap_md5(c.id + 1, "s3cret", 6, c.challenge, sizeof(c.challenge), rsp);
	assert_false(iscsi_chap_verify(&c, "s3cret", rsp, 16));
}

static void test_challenges_are_fresh(void **state)
{
	struct iscsi_chap a, b;

	iscsi_chap_start(&a);
	iscsi_chap_start(&b);
	assert_memory_not_equal(a.challenge, b.challenge, sizeof(a.challenge));
}

static void test_reflection_detected(void **state)
{
	struct iscsi_chap c;
	uint8_t other[16];

	iscsi_chap_start(&c);
	assert_true(iscsi_chap_is_reflection(&c, c.challenge, sizeof(c.challenge)));
	memcpy(other, c.challenge, 16);
	other[0] ^= 1;
	assert_false(iscsi_chap_is_reflection(&c, other, 16));
}

static void test_equal_compares_all_bytes(void **state)
{
	assert_true(iscsi_chap_equal((const uint8_t *)"abcd", (const uint8_t *)"abcd", 4));
	assert_false(iscsi_chap_equal((const uint8_t *)"abcd", (const uint8_t *)"abce", 4));
	assert_false(iscsi_chap_equal((const uint8_t *)"xbcd", (const uint8_t *)"abcd", 4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_md5_matches_rfc1321_vector),
		cmocka_unit_test(test_decode_hex_even_odd_and_case),
		cmocka_unit_test(test_decode_base64_with_padding),
		cmocka_unit_test(test_decode_rejects_malformed),
		cmocka_unit_test(test_encode_hex_and_bounds),
		cmocka_unit_test(test_verify_accepts_right_and_refuses_wrong_secret),
		cmocka_unit_test(test_verify_depends_on_identifier),
		cmocka_unit_test(test_challenges_are_fresh),
		cmocka_unit_test(test_reflection_detected),
		cmocka_unit_test(test_equal_compares_all_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
