/* The key=value segment parser (RFC 7143 6.1) and the bounded builder. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "target/iscsi_text.h"

#define SEG(s) (const uint8_t *)(s), sizeof(s) - 1

static void test_parse_two_pairs(void **state)
{
	struct iscsi_kv kv[4];
	size_t n;

	assert_int_equal(
		iscsi_text_parse(SEG("InitiatorName=iqn.x\0SessionType=Normal\0"), kv, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_true(iscsi_kv_key_is(&kv[0], "InitiatorName"));
	assert_true(iscsi_kv_value_is(&kv[0], "iqn.x"));
	assert_true(iscsi_kv_key_is(&kv[1], "SessionType"));
	assert_true(iscsi_kv_value_is(&kv[1], "Normal"));
}

static void test_parse_empty_value_and_padding_nuls(void **state)
{
	struct iscsi_kv kv[4];
	size_t n;

	assert_int_equal(iscsi_text_parse(SEG("SendTargets=\0\0\0"), kv, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(kv[0].value_len, 0);
}

static void test_parse_missing_final_nul_fails(void **state)
{
	struct iscsi_kv kv[4];
	size_t n;

	assert_int_equal(iscsi_text_parse(SEG("A=1\0B=2"), kv, 4, &n), -EBADMSG);
}

static void test_parse_key_without_equals_fails(void **state)
{
	struct iscsi_kv kv[4];
	size_t n;

	assert_int_equal(iscsi_text_parse(SEG("InitiatorName\0"), kv, 4, &n), -EBADMSG);
	assert_int_equal(iscsi_text_parse(SEG("=value\0"), kv, 4, &n), -EBADMSG);
}

static void test_parse_bad_key_character_fails(void **state)
{
	struct iscsi_kv kv[4];
	size_t n;

	assert_int_equal(iscsi_text_parse(SEG("Bad Key=1\0"), kv, 4, &n), -EBADMSG);
}

static void test_parse_oversized_key_fails(void **state)
{
	uint8_t buf[128];
	struct iscsi_kv kv[4];
	size_t n;

	memset(buf, 'K', 64);
	memcpy(buf + 64, "=1", 3); /* includes the NUL */
	assert_int_equal(iscsi_text_parse(buf, 67, kv, 4, &n), -E2BIG);
	/* 63 bytes is the limit and is fine. */
	assert_int_equal(iscsi_text_parse(buf + 1, 66, kv, 4, &n), 0);
}

static void test_parse_oversized_value_fails_but_chap_may_be_long(void **state)
{
	static uint8_t buf[20000];
	struct iscsi_kv kv[4];
	size_t n;

	memcpy(buf, "TargetAlias=", 12);
	memset(buf + 12, 'a', 256);
	buf[12 + 256] = 0;
	assert_int_equal(iscsi_text_parse(buf, 12 + 257, kv, 4, &n), -E2BIG);

	memcpy(buf, "CHAP_C=0x", 9);
	memset(buf + 9, 'a', 16384);
	buf[9 + 16384] = 0;
	assert_int_equal(iscsi_text_parse(buf, 9 + 16385, kv, 4, &n), 0);
	assert_int_equal(kv[0].value_len, 16386);
	buf[9 + 16384] = 'a';
	buf[9 + 16385] = 0;
	assert_int_equal(iscsi_text_parse(buf, 9 + 16386, kv, 4, &n), -E2BIG);
}

static void test_parse_duplicate_key_fails(void **state)
{
	struct iscsi_kv kv[4];
	size_t n;

	assert_int_equal(iscsi_text_parse(SEG("A=1\0B=2\0A=3\0"), kv, 4, &n), -EEXIST);
}

static void test_parse_too_many_pairs_fails(void **state)
{
	struct iscsi_kv kv[2];
	size_t n;

	assert_int_equal(iscsi_text_parse(SEG("A=1\0B=2\0C=3\0"), kv, 2, &n), -E2BIG);
}

static void test_parse_value_may_contain_equals(void **state)
{
	struct iscsi_kv kv[2];
	size_t n;

	assert_int_equal(iscsi_text_parse(SEG("X-a=b=c\0"), kv, 2, &n), 0);
	assert_true(iscsi_kv_value_is(&kv[0], "b=c"));
}

static void test_value_number_decimal_hex_and_garbage(void **state)
{
	struct iscsi_kv kv = {.key = "K", .key_len = 1};
	uint64_t v;

	kv.value = "262144";
	kv.value_len = 6;
	assert_int_equal(iscsi_kv_value_u64(&kv, &v), 0);
	assert_int_equal(v, 262144);
	kv.value = "0x100";
	kv.value_len = 5;
	assert_int_equal(iscsi_kv_value_u64(&kv, &v), 0);
	assert_int_equal(v, 256);
	kv.value = "12a";
	kv.value_len = 3;
	assert_int_equal(iscsi_kv_value_u64(&kv, &v), -EINVAL);
	kv.value = "";
	kv.value_len = 0;
	assert_int_equal(iscsi_kv_value_u64(&kv, &v), -EINVAL);
	kv.value = "99999999999999999999999";
	kv.value_len = 23;
	assert_int_equal(iscsi_kv_value_u64(&kv, &v), -EINVAL);
}

static void test_builder_appends_and_stops_at_capacity(void **state)
{
	uint8_t buf[16];
	struct iscsi_text_buf b;

	iscsi_text_buf_init(&b, buf, sizeof(buf));
	assert_int_equal(iscsi_text_add(&b, "A", "Yes"), 0);
	assert_int_equal(b.len, 6);
	assert_memory_equal(buf, "A=Yes\0", 6);
	assert_int_equal(iscsi_text_addf(&b, "Num", "%u", 1234), 0); /* 9 bytes: 15 total */
	assert_int_equal(iscsi_text_add(&b, "B", "x"), -ENOSPC);
	assert_int_equal(b.len, 15);
	assert_true(b.overflow);
	/* Once overflowed, even a pair that would fit is refused. */
	assert_int_equal(iscsi_text_add(&b, "", ""), -ENOSPC);
}

static void test_builder_output_parses_back(void **state)
{
	uint8_t buf[64];
	struct iscsi_text_buf b;
	struct iscsi_kv kv[4];
	size_t n;

	iscsi_text_buf_init(&b, buf, sizeof(buf));
	iscsi_text_add(&b, "HeaderDigest", "None");
	iscsi_text_addf(&b, "MaxBurstLength", "%u", 65536);
	assert_int_equal(iscsi_text_parse(buf, b.len, kv, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_true(iscsi_kv_value_is(&kv[1], "65536"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_two_pairs),
		cmocka_unit_test(test_parse_empty_value_and_padding_nuls),
		cmocka_unit_test(test_parse_missing_final_nul_fails),
		cmocka_unit_test(test_parse_key_without_equals_fails),
		cmocka_unit_test(test_parse_bad_key_character_fails),
		cmocka_unit_test(test_parse_oversized_key_fails),
		cmocka_unit_test(test_parse_oversized_value_fails_but_chap_may_be_long),
		cmocka_unit_test(test_parse_duplicate_key_fails),
		cmocka_unit_test(test_parse_too_many_pairs_fails),
		cmocka_unit_test(test_parse_value_may_contain_equals),
		cmocka_unit_test(test_value_number_decimal_hex_and_garbage),
		cmocka_unit_test(test_builder_appends_and_stops_at_capacity),
		cmocka_unit_test(test_builder_output_parses_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
