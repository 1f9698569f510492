/* iSCSI text key=value segments (RFC 7143 section 6.1): a bounds-checked parser that never
 * trusts NUL termination, and a bounded builder for the responses. */
#ifndef HOLDFAST_TARGET_ISCSI_TEXT_H
#define HOLDFAST_TARGET_ISCSI_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 7143 6.1: a key name is at most 63 bytes, a value at most 255, except the CHAP
 * binaries (CHAP_C, CHAP_R) which may carry 8192 bytes hex-encoded behind "0x". */
#define ISCSI_TEXT_KEY_MAX	 63
#define ISCSI_TEXT_VALUE_MAX	 255
#define ISCSI_TEXT_BIG_VALUE_MAX (8192 * 2 + 2)
/* How many pairs one request may carry; far above what any initiator sends. */
#define ISCSI_TEXT_MAX_PAIRS 128

/* One pair, borrowed from the segment it was parsed from: neither string is NUL-terminated
 * by the parser (the segment's own NUL follows each value, but do not rely on it). */
struct iscsi_kv {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
};

/* Split a data segment into pairs. Every pair must end with a NUL inside the segment; empty
 * entries (consecutive NULs, as some initiators pad) are skipped. Errors:
 *	-EBADMSG  a pair without '=', an empty or malformed key, no NUL at the end
 *	-E2BIG    a key or value over its limit, or more than max pairs
 *	-EEXIST   the same key twice (RFC 7143 6.2: a key is negotiated once)
 * On error *n says how many pairs were parsed before the fault. */
int iscsi_text_parse(const uint8_t *data, size_t len, struct iscsi_kv *kv, size_t max, size_t *n);

/* Compare a parsed key with a C string (exact, case-sensitive as RFC 7143 6.1 requires). */
bool iscsi_kv_key_is(const struct iscsi_kv *kv, const char *key);
bool iscsi_kv_value_is(const struct iscsi_kv *kv, const char *value);

/* Copy a value into a NUL-terminated buffer; -E2BIG if it does not fit. */
int iscsi_kv_value_copy(const struct iscsi_kv *kv, char *out, size_t outlen);

/* A decimal number of at most 20 digits (RFC 7143 5.1 numerical values may also be hex
 * "0x..."). -EINVAL if the value is not one number or exceeds UINT64_MAX. */
int iscsi_kv_value_u64(const struct iscsi_kv *kv, uint64_t *v);

/* The builder writes into a caller-owned buffer and never past cap. Once an add fails the
 * buffer is marked overflowed and later adds fail too, so a caller may add a series of
 * pairs and check once. */
struct iscsi_text_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	bool overflow;
};

void iscsi_text_buf_init(struct iscsi_text_buf *b, uint8_t *data, size_t cap);
/* Append key=value\0; -ENOSPC when it does not fit (nothing is appended). */
int iscsi_text_add(struct iscsi_text_buf *b, const char *key, const char *value);
int iscsi_text_add_n(struct iscsi_text_buf *b, const char *key, const char *value,
		     size_t value_len);
int iscsi_text_addf(struct iscsi_text_buf *b, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
