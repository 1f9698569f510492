#include "target/iscsi_chap.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/md5.h>

int iscsi_chap_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int hex_val(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int b64_val(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

static int decode_hex(const char *s, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
	size_t nbytes = (len + 1) / 2, o = 0, i = 0;

	if (nbytes > cap)
		return -E2BIG;
	/* An odd number of digits: the first byte has only its low nibble written. */
	if (len & 1) {
		int v = hex_val(s[0]);

		if (v < 0)
			return -EINVAL;
		out[o++] = (uint8_t)v;
		i = 1;
	}
	for (; i < len; i += 2) {
		int hi = hex_val(s[i]), lo = hex_val(s[i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[o++] = (uint8_t)(hi << 4 | lo);
	}
	*outlen = o;
	return 0;
}

/* RFC 7143 5.1 refers to RFC 4648 base64 with padding; a length that is not a multiple of
 * four or a pad anywhere but at the end is malformed. */
static int decode_b64(const char *s, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
	size_t o = 0, pad = 0;

	if (len == 0 || len % 4)
		return -EINVAL;
	if (s[len - 1] == '=') {
		pad++;
		if (s[len - 2] == '=')
			pad++;
	}
	if (len / 4 * 3 - pad > cap)
		return -E2BIG;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		bool last = i + 4 == len;

		for (int k = 0; k < 4; k++) {
			if (last && s[i + k] == '=' && k >= 4 - (int)pad) {
				v[k] = 0;
				continue;
			}
			v[k] = b64_val(s[i + k]);
			if (v[k] < 0)
				return -EINVAL;
		}
		out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (!last || pad < 2)
			out[o++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
		if (!last || pad < 1)
			out[o++] = (uint8_t)(v[2] << 6 | v[3]);
	}
	*outlen = o;
	return 0;
}

int iscsi_chap_decode(const char *s, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
	int r;

	*outlen = 0;
	if (len < 3 || s[0] != '0')
		return -EINVAL;
	if (s[1] == 'x' || s[1] == 'X')
		r = decode_hex(s + 2, len - 2, out, cap, outlen);
	else if (s[1] == 'b' || s[1] == 'B')
		r = decode_b64(s + 2, len - 2, out, cap, outlen);
	else
		return -EINVAL;
	if (r == 0 && *outlen == 0)
		return -EINVAL;
	return r;
}

int iscsi_chap_encode_hex(const uint8_t *bin, size_t len, char *out, size_t outlen)
{
	static const char digits[] = "0123456789abcdef";

	if (outlen < 3 || (outlen - 3) / 2 < len)
		return -ENOSPC;
	out[0] = '0';
	out[1] = 'x';
	for (size_t i = 0; i < len; i++) {
		out[2 + 2 * i] = digits[bin[i] >> 4];
		out[3 + 2 * i] = digits[bin[i] & 15];
	}
	out[2 + 2 * len] = '\0';
	return 0;
}

int iscsi_chap_md5(uint8_t id, const char *secret, size_t secret_len, const uint8_t *challenge,
		   size_t challenge_len, uint8_t out[ISCSI_CHAP_MD5_LEN])
{
	mbedtls_md5_context ctx;
	int r;

	mbedtls_md5_init(&ctx);
	r = mbedtls_md5_starts_ret(&ctx);
	if (r == 0)
		r = mbedtls_md5_update_ret(&ctx, &id, 1);
	if (r == 0)
		r = mbedtls_md5_update_ret(&ctx, (const uint8_t *)secret, secret_len);
	if (r == 0)
		r = mbedtls_md5_update_ret(&ctx, challenge, challenge_len);
	if (r == 0)
		r = mbedtls_md5_finish_ret(&ctx, out);
	mbedtls_md5_free(&ctx);
	return r == 0 ? 0 : -EIO;
}

bool iscsi_chap_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t d = 0;

	for (size_t i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

int iscsi_chap_start(struct iscsi_chap *c)
{
	return iscsi_chap_random(c, sizeof(*c));
}

bool iscsi_chap_verify(const struct iscsi_chap *c, const char *secret, const uint8_t *rsp,
		       size_t rsp_len)
{
	uint8_t want[ISCSI_CHAP_MD5_LEN];
	bool ok;

	/* An empty secret would let anyone who knows the challenge answer; never accept. */
	if (secret == NULL || secret[0] == '\0' || rsp_len != ISCSI_CHAP_MD5_LEN)
		return false;
	if (iscsi_chap_md5(c->id, secret, strlen(secret), c->challenge, sizeof(c->challenge), want))
		return false;
	ok = iscsi_chap_equal(want, rsp, ISCSI_CHAP_MD5_LEN);
	memset(want, 0, sizeof(want));
	return ok;
}

bool iscsi_chap_is_reflection(const struct iscsi_chap *c, const uint8_t *challenge, size_t len)
{
	return len == sizeof(c->challenge) && memcmp(c->challenge, challenge, len) == 0;
}
