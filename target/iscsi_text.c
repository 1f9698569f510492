#include "target/iscsi_text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/cursor.h"

/* RFC 7143 6.1: key names are made of letters, digits, '.', '-', '+', '@' and '_'. */
static bool key_char_ok(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '-' || ch == '+' || ch == '@' || ch == '_';
}

/* The keys whose values may be long binaries (RFC 7143 12.1.3). */
static bool key_allows_big_value(const uint8_t *key, size_t len)
{
	return (len == 6 && (memcmp(key, "CHAP_C", 6) == 0 || memcmp(key, "CHAP_R", 6) == 0));
}

int iscsi_text_parse(const uint8_t *data, size_t len, struct iscsi_kv *kv, size_t max, size_t *n)
{
	struct cursor c;

	*n = 0;
	cur_init(&c, data, data ? len : 0);
	while (cur_left(&c) > 0) {
		const uint8_t *start = c.data + c.pos, *eq, *nul;
		size_t left = cur_left(&c), klen, vlen, vmax;
		const uint8_t *entry;

		nul = memchr(start, '\0', left);
		if (nul == NULL)
			return -EBADMSG; /* the last pair is not terminated */
		if (nul == start) {
			cur_skip(&c, 1);
			continue;
		}
		if (cur_ptr(&c, (size_t)(nul - start) + 1, &entry) != 0)
			return -EBADMSG;
		eq = memchr(entry, '=', (size_t)(nul - entry));
		if (eq == NULL)
			return -EBADMSG;
		klen = (size_t)(eq - entry);
		vlen = (size_t)(nul - eq - 1);
		if (klen == 0)
			return -EBADMSG;
		if (klen > ISCSI_TEXT_KEY_MAX)
			return -E2BIG;
		for (size_t i = 0; i < klen; i++)
			if (!key_char_ok(entry[i]))
				return -EBADMSG;
		vmax = key_allows_big_value(entry, klen) ? ISCSI_TEXT_BIG_VALUE_MAX
							 : ISCSI_TEXT_VALUE_MAX;
		if (vlen > vmax)
			return -E2BIG;
		for (size_t i = 0; i < *n; i++)
			if (kv[i].key_len == klen && memcmp(kv[i].key, entry, klen) == 0)
				return -EEXIST;
		if (*n >= max)
			return -E2BIG;
		kv[*n].key = (const char *)entry;
		kv[*n].key_len = klen;
		kv[*n].value = (const char *)eq + 1;
		kv[*n].value_len = vlen;
		(*n)++;
	}
	return 0;
}

bool iscsi_kv_key_is(const struct iscsi_kv *kv, const char *key)
{
	size_t l = strlen(key);

	return kv->key_len == l && memcmp(kv->key, key, l) == 0;
}

bool iscsi_kv_value_is(const struct iscsi_kv *kv, const char *value)
{
	size_t l = strlen(value);

	return kv->value_len == l && memcmp(kv->value, value, l) == 0;
}

int iscsi_kv_value_copy(const struct iscsi_kv *kv, char *out, size_t outlen)
{
	if (outlen == 0 || kv->value_len >= outlen)
		return -E2BIG;
	memcpy(out, kv->value, kv->value_len);
	out[kv->value_len] = '\0';
	return 0;
}

int iscsi_kv_value_u64(const struct iscsi_kv *kv, uint64_t *v)
{
	const char *s = kv->value;
	size_t len = kv->value_len, i = 0;
	unsigned base = 10;
	uint64_t r = 0;

	/* RFC 7143 5.1: numerical values are decimal, or hex with a 0x prefix. */
	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (i >= len)
		return -EINVAL;
	for (; i < len; i++) {
		unsigned d;
		char ch = s[i];

		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if (base == 16 && ch >= 'a' && ch <= 'f')
			d = ch - 'a' + 10;
		else if (base == 16 && ch >= 'A' && ch <= 'F')
			d = ch - 'A' + 10;
		else
			return -EINVAL;
		if (r > (UINT64_MAX - d) / base)
			return -EINVAL;
		r = r * base + d;
	}
	*v = r;
	return 0;
}

void iscsi_text_buf_init(struct iscsi_text_buf *b, uint8_t *data, size_t cap)
{
	b->data = data;
	b->len = 0;
	b->cap = cap;
	b->overflow = false;
}

int iscsi_text_add_n(struct iscsi_text_buf *b, const char *key, const char *value, size_t value_len)
{
	size_t klen = strlen(key), need = klen + 1 + value_len + 1;

	if (b->overflow || need > b->cap - b->len) {
		b->overflow = true;
		return -ENOSPC;
	}
	memcpy(b->data + b->len, key, klen);
	b->data[b->len + klen] = '=';
	memcpy(b->data + b->len + klen + 1, value, value_len);
	b->data[b->len + need - 1] = '\0';
	b->len += need;
	return 0;
}

int iscsi_text_add(struct iscsi_text_buf *b, const char *key, const char *value)
{
	return iscsi_text_add_n(b, key, value, strlen(value));
}

int iscsi_text_addf(struct iscsi_text_buf *b, const char *key, const char *fmt, ...)
{
	char v[ISCSI_TEXT_VALUE_MAX + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(v, sizeof(v), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(v)) {
		b->overflow = true;
		return -ENOSPC;
	}
	return iscsi_text_add_n(b, key, v, (size_t)n);
}
