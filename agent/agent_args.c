#include "agent/agent_args.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define TOKEN_PREFIX	 "hfj1."
#define TOKEN_ID_HEX	 16
#define TOKEN_SECRET_HEX 32

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int agent_args_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	size_t i;

	if (!s || !s[0] || strlen(s) > 19)
		return -EINVAL;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int agent_args_hostport(const char *s, char host[AGENT_ARGS_HOST_MAX + 1], uint16_t *port)
{
	const char *colon, *h;
	unsigned long p;
	size_t hlen;

	if (!s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		h = s;
		hlen = (size_t)(colon - s);
		/* An IPv6 address must come in brackets, or the port cannot be told apart. */
		if (memchr(h, ':', hlen))
			return -EINVAL;
	}
	if (hlen == 0 || hlen > AGENT_ARGS_HOST_MAX)
		return -EINVAL;
	if (agent_args_uint(colon + 1, 1, 65535, &p))
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (uint16_t)p;
	return 0;
}

int agent_args_token(const char *s, char id[AGENT_TOKEN_ID_MAX + 1], uint8_t *secret,
		     size_t *secret_len)
{
	const char *p;
	size_t i;

	if (!s || strlen(s) != sizeof(TOKEN_PREFIX) - 1 + TOKEN_ID_HEX + 1 + TOKEN_SECRET_HEX)
		return -EINVAL;
	if (strncmp(s, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1))
		return -EINVAL;
	p = s + sizeof(TOKEN_PREFIX) - 1;
	for (i = 0; i < TOKEN_ID_HEX; i++)
		if (hexval(p[i]) < 0)
			return -EINVAL;
	if (p[TOKEN_ID_HEX] != '.')
		return -EINVAL;
	memcpy(id, p, TOKEN_ID_HEX);
	id[TOKEN_ID_HEX] = '\0';
	p += TOKEN_ID_HEX + 1;
	for (i = 0; i < TOKEN_SECRET_HEX / 2; i++) {
		int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		secret[i] = (uint8_t)(hi << 4 | lo);
	}
	*secret_len = TOKEN_SECRET_HEX / 2;
	return 0;
}

int agent_args_fingerprint(const char *s, uint8_t out[32])
{
	size_t i = 0, n = 0;

	if (!s)
		return -EINVAL;
	while (s[i]) {
		int hi, lo;

		if (n > 0 && s[i] == ':')
			i++;
		hi = hexval(s[i]);
		lo = hi < 0 ? -1 : hexval(s[i + 1]);
		if (hi < 0 || lo < 0 || n == 32)
			return -EINVAL;
		out[n++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	return n == 32 ? 0 : -EINVAL;
}

int agent_args_fence(const char *s, struct agent_fence_spec *out)
{
	memset(out, 0, sizeof(*out));
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "kill-qemu")) {
		out->kind = AGENT_FENCE_KILL_QEMU;
		return 0;
	}
	if (!strncmp(s, "exec:", 5)) {
		if (!s[5] || strlen(s + 5) >= sizeof(out->arg))
			return -EINVAL;
		out->kind = AGENT_FENCE_EXEC;
		strcpy(out->arg, s + 5);
		return 0;
	}
	if (!strcmp(s, "watchdog")) {
		out->kind = AGENT_FENCE_WATCHDOG;
		strcpy(out->arg, AGENT_WATCHDOG_DEFAULT);
		return 0;
	}
	if (!strncmp(s, "watchdog:", 9)) {
		if (!s[9] || strlen(s + 9) >= sizeof(out->arg))
			return -EINVAL;
		out->kind = AGENT_FENCE_WATCHDOG;
		strcpy(out->arg, s + 9);
		return 0;
	}
	return -EINVAL;
}
