/* CHAP for iSCSI login (RFC 7143 section 12.1.3, RFC 1994) with MD5 (CHAP_A=5): our random
 * challenge, the response computation and check, and the binary encodings iSCSI uses for
 * CHAP_C and CHAP_R (hex "0x..." and base64 "0b..."). */
#ifndef HOLDFAST_TARGET_ISCSI_CHAP_H
#define HOLDFAST_TARGET_ISCSI_CHAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISCSI_CHAP_ALG_MD5	 5
#define ISCSI_CHAP_MD5_LEN	 16
#define ISCSI_CHAP_CHALLENGE_LEN 16 /* the challenge we send */
/* RFC 7143 12.1.3: a challenge the initiator sends us is at most 1024 bytes. */
#define ISCSI_CHAP_CHALLENGE_MAX 1024
/* The longest binary any CHAP value may decode to (RFC 7143 6.1, large binary items). */
#define ISCSI_CHAP_BINARY_MAX 8192

/* Fill buf with unpredictable bytes (getrandom). Returns 0 or -errno. */
int iscsi_chap_random(void *buf, size_t len);

/* Decode a binary value: "0x"/"0X" followed by hex digits (an odd count means a leading 0
 * nibble) or "0b"/"0B" followed by base64 with padding. Returns -EINVAL for anything else
 * or an empty binary, -E2BIG if it exceeds cap. */
int iscsi_chap_decode(const char *s, size_t len, uint8_t *out, size_t cap, size_t *outlen);

/* Encode as "0x" + lowercase hex, NUL-terminated. Returns -ENOSPC if out is too small
 * (needs 2 * len + 3 bytes). */
int iscsi_chap_encode_hex(const uint8_t *bin, size_t len, char *out, size_t outlen);

/* RFC 1994 4.1: MD5 over the identifier, the secret and the challenge. */
int iscsi_chap_md5(uint8_t id, const char *secret, size_t secret_len, const uint8_t *challenge,
		   size_t challenge_len, uint8_t out[ISCSI_CHAP_MD5_LEN]);

/* Compare without leaking where the first difference is. */
bool iscsi_chap_equal(const uint8_t *a, const uint8_t *b, size_t n);

/* The target's side of one exchange. */
struct iscsi_chap {
	uint8_t id;
	uint8_t challenge[ISCSI_CHAP_CHALLENGE_LEN];
};

/* Pick a fresh identifier and challenge. */
int iscsi_chap_start(struct iscsi_chap *c);

/* Check the initiator's CHAP_R (already decoded) against secret. True only for an exact
 * 16-byte match. */
bool iscsi_chap_verify(const struct iscsi_chap *c, const char *secret, const uint8_t *rsp,
		       size_t rsp_len);

/* RFC 7143 12.1.3: refuse an initiator challenge equal to ours (a reflection attack would
 * make us compute the answer the initiator owes us). */
bool iscsi_chap_is_reflection(const struct iscsi_chap *c, const uint8_t *challenge, size_t len);

#endif
