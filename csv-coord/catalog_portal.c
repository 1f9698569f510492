/* Preferred portals: parsing, canonical text and matching (catalog_portal.h). */
#include "csv-coord/catalog_portal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* An address without port or prefix. */
static int parse_addr(const char *s, struct catalog_portal *p)
{
	memset(p->addr, 0, sizeof(p->addr));
	if (inet_pton(AF_INET, s, p->addr) == 1) {
		p->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, p->addr) == 1) {
		p->family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (!*s || *s < '0' || *s > '9' || strlen(s) > 6)
		return -EINVAL;
	*out = strtoul(s, &end, 10);
	return *end || *out > max ? -EINVAL : 0;
}

static unsigned full_bits(int family)
{
	return family == AF_INET ? 32 : 128;
}

/* Are the bits of a past the first `bits` zero? */
static bool host_bits_clear(const uint8_t *a, unsigned bits, unsigned total)
{
	for (unsigned i = bits; i < total; i++)
		if (a[i / 8] & (0x80 >> (i % 8)))
			return false;
	return true;
}

int catalog_portal_parse(const char *spec, struct catalog_portal *out)
{
	char buf[CATALOG_PORTAL_MAX];
	struct catalog_portal p = {0};
	unsigned long n;
	char *slash, *colon;

	if (!spec || strlen(spec) >= sizeof(buf))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", spec);
	slash = strchr(buf, '/');
	if (slash) { /* NET/LEN */
		*slash = '\0';
		if (parse_addr(buf, &p) < 0 || parse_uint(slash + 1, full_bits(p.family), &n) < 0 ||
		    !host_bits_clear(p.addr, (unsigned)n, full_bits(p.family)))
			return -EINVAL;
		p.prefix = (unsigned)n;
	} else if (buf[0] == '[') { /* [ADDR6]:PORT */
		char *close = strchr(buf, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		*close = '\0';
		if (parse_addr(buf + 1, &p) < 0 || p.family != AF_INET6 ||
		    parse_uint(close + 2, 65535, &n) < 0 || n == 0)
			return -EINVAL;
		p.port = (uint16_t)n;
		p.prefix = 128;
	} else if ((colon = strchr(buf, ':')) && !strchr(colon + 1, ':')) { /* ADDR4:PORT */
		*colon = '\0';
		if (parse_addr(buf, &p) < 0 || p.family != AF_INET ||
		    parse_uint(colon + 1, 65535, &n) < 0 || n == 0)
			return -EINVAL;
		p.port = (uint16_t)n;
		p.prefix = 32;
	} else { /* ADDR */
		if (parse_addr(buf, &p) < 0)
			return -EINVAL;
		p.prefix = full_bits(p.family);
	}
	*out = p;
	return 0;
}

void catalog_portal_format(const struct catalog_portal *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(p->family, p->addr, a, sizeof(a));
	if (p->prefix != full_bits(p->family))
		snprintf(buf, len, "%s/%u", a, p->prefix);
	else if (p->port && p->family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", a, p->port);
	else if (p->port)
		snprintf(buf, len, "%s:%u", a, p->port);
	else
		snprintf(buf, len, "%s", a);
}

/* "ADDR:PORT" or "[ADDR6]:PORT" into an address and a port. */
static int parse_local(const char *local, struct catalog_portal *out)
{
	char buf[CATALOG_PORTAL_MAX];
	unsigned long n;
	char *port;

	if (!local || strlen(local) >= sizeof(buf))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", local);
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		*close = '\0';
		port = close + 2;
		if (parse_addr(buf + 1, out) < 0)
			return -EINVAL;
	} else {
		port = strrchr(buf, ':');
		if (!port)
			return -EINVAL;
		*port++ = '\0';
		if (parse_addr(buf, out) < 0 || out->family != AF_INET)
			return -EINVAL;
	}
	if (parse_uint(port, 65535, &n) < 0)
		return -EINVAL;
	out->port = (uint16_t)n;
	/* ::ffff:a.b.c.d, a dual-stack socket's view of an IPv4 peer. */
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (out->family == AF_INET6 && !memcmp(out->addr, mapped, sizeof(mapped))) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = AF_INET;
	}
	return 0;
}

bool catalog_portal_match(const struct catalog_portal *p, const char *local)
{
	struct catalog_portal l;
	unsigned full, rest;

	if (parse_local(local, &l) < 0 || l.family != p->family)
		return false;
	if (p->port && p->port != l.port)
		return false;
	full = p->prefix / 8;
	rest = p->prefix % 8;
	if (memcmp(p->addr, l.addr, full))
		return false;
	if (rest && ((p->addr[full] ^ l.addr[full]) & (uint8_t)(0xff << (8 - rest))))
		return false;
	return true;
}
