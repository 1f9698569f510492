/* iSCSI TransportIDs (spc4r37 7.6.4.6): the way SPEC_I_PT, REGISTER AND MOVE and READ FULL
 * STATUS name an initiator port. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/cursor.h"
#include "pr/pr.h"

/* spc4r37 7.6.1, table 442: PROTOCOL IDENTIFIER 5h is iSCSI. */
#define TID_PROTO_ISCSI 0x5
/* spc4r37 7.6.4.6: FORMAT CODE 00b names the initiator device, 01b the initiator port. */
#define TID_FMT_DEVICE 0x0
#define TID_FMT_PORT   0x1
/* spc4r37 7.6.4.6: the separator between the name and the ISID in format 01b. */
#define TID_SEP	    ",i,0x"
#define TID_SEP_LEN 5
#define ISID_HEX    12

static bool is_hex(uint8_t ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* RFC 7143 6.1: an iSCSI name is made of printable characters; a control character or a
 * space here means the field is garbage. */
static bool name_ok(const uint8_t *p, size_t n)
{
	if (n == 0 || n >= PR_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f || p[i] == ',')
			return false;
	return true;
}

/* Find the first occurrence of the separator in p[0..n). */
static long find_sep(const uint8_t *p, size_t n)
{
	if (n < TID_SEP_LEN)
		return -1;
	for (size_t i = 0; i + TID_SEP_LEN <= n; i++) {
		if ((p[i] == ',') && (p[i + 1] == 'i' || p[i + 1] == 'I') && p[i + 2] == ',' &&
		    p[i + 3] == '0' && (p[i + 4] == 'x' || p[i + 4] == 'X'))
			return (long)i;
	}
	return -1;
}

int pr_tid_parse(struct cursor *c, struct pr_tid *tid)
{
	size_t start = c->pos, text_len;
	const uint8_t *text, *nul;
	uint8_t b0, b1;
	uint16_t addl;
	long sep;

	memset(tid, 0, sizeof(*tid));
	if (cur_u8(c, &b0) || cur_u8(c, &b1) || cur_be16(c, &addl))
		goto bad;
	if ((b0 & 0x0f) != TID_PROTO_ISCSI) {
		cur_seek(c, start);
		return -EPROTONOSUPPORT;
	}
	/* spc4r37 7.6.4.6: ADDITIONAL LENGTH is a multiple of four; it covers the name and its
	 * padding. */
	if (addl == 0 || addl % 4 || cur_ptr(c, addl, &text))
		goto bad;
	/* The name field is NUL-terminated inside ADDITIONAL LENGTH. */
	nul = memchr(text, 0, addl);
	if (!nul)
		goto bad;
	text_len = (size_t)(nul - text);

	switch (b0 >> 6) {
	case TID_FMT_DEVICE:
		if (!name_ok(text, text_len))
			goto bad;
		memcpy(tid->name, text, text_len);
		tid->has_isid = false;
		return 0;
	case TID_FMT_PORT:
		sep = find_sep(text, text_len);
		if (sep < 0 || !name_ok(text, (size_t)sep) ||
		    text_len != (size_t)sep + TID_SEP_LEN + ISID_HEX)
			goto bad;
		for (size_t i = 0; i < ISID_HEX; i++)
			if (!is_hex(text[sep + TID_SEP_LEN + i]))
				goto bad;
		memcpy(tid->name, text, (size_t)sep);
		/* The nexus names its port with lowercase hex (target/iscsi_session.c), so the
		 * ISID is normalized to compare equal. */
		memcpy(tid->port, text, (size_t)sep);
		memcpy(tid->port + sep, TID_SEP, TID_SEP_LEN);
		for (size_t i = 0; i < ISID_HEX; i++) {
			uint8_t ch = text[sep + TID_SEP_LEN + i];

			tid->port[sep + TID_SEP_LEN + i] = (ch >= 'A' && ch <= 'F') ? ch + 32 : ch;
		}
		tid->has_isid = true;
		return 0;
	default:
		goto bad;
	}
bad:
	cur_seek(c, start);
	return -EBADMSG;
}

int pr_port_name(const char *port, char *name, size_t namesz)
{
	size_t n = strnlen(port, PR_PORT_MAX);
	long sep = find_sep((const uint8_t *)port, n);

	if (sep <= 0 || (size_t)sep >= namesz)
		return -EINVAL;
	memcpy(name, port, (size_t)sep);
	name[sep] = '\0';
	return 0;
}

size_t pr_tid_build(const char *port, uint8_t *buf, size_t cap)
{
	size_t n = strnlen(port, PR_PORT_MAX), addl;

	if (n == PR_PORT_MAX || find_sep((const uint8_t *)port, n) <= 0)
		return 0;
	/* The name, its NUL, padded to a multiple of four; spc4r37 7.6.4.6 asks for an
	 * ADDITIONAL LENGTH of at least 20. */
	addl = (n + 1 + 3) & ~(size_t)3;
	if (addl < 20)
		addl = 20;
	if (4 + addl > cap)
		return 0;
	memset(buf, 0, 4 + addl);
	buf[0] = TID_FMT_PORT << 6 | TID_PROTO_ISCSI;
	put_be16(buf + 2, (uint16_t)addl);
	memcpy(buf + 4, port, n);
	return 4 + addl;
}
