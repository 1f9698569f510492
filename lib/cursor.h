/* A bounds-checked reader over bytes that came from the network: every field of a PDU, a
 * CDB, a parameter list or a text segment is read through one of these, and a read past the
 * end fails instead of overrunning. */
#ifndef HOLDFAST_LIB_CURSOR_H
#define HOLDFAST_LIB_CURSOR_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct cursor {
	const uint8_t *data;
	size_t len;
	size_t pos;
};

static inline void cur_init(struct cursor *c, const void *data, size_t len)
{
	c->data = data;
	c->len = len;
	c->pos = 0;
}

static inline size_t cur_left(const struct cursor *c)
{
	return c->len - c->pos;
}

/* Each getter returns 0, or -EBADMSG when fewer bytes are left than the field needs; on
 * failure the cursor does not move. */
static inline int cur_u8(struct cursor *c, uint8_t *v)
{
	if (cur_left(c) < 1)
		return -EBADMSG;
	*v = c->data[c->pos++];
	return 0;
}

static inline int cur_be16(struct cursor *c, uint16_t *v)
{
	if (cur_left(c) < 2)
		return -EBADMSG;
	*v = (uint16_t)c->data[c->pos] << 8 | c->data[c->pos + 1];
	c->pos += 2;
	return 0;
}

static inline int cur_be24(struct cursor *c, uint32_t *v)
{
	if (cur_left(c) < 3)
		return -EBADMSG;
	*v = (uint32_t)c->data[c->pos] << 16 | (uint32_t)c->data[c->pos + 1] << 8 |
	     c->data[c->pos + 2];
	c->pos += 3;
	return 0;
}

static inline int cur_be32(struct cursor *c, uint32_t *v)
{
	if (cur_left(c) < 4)
		return -EBADMSG;
	*v = (uint32_t)c->data[c->pos] << 24 | (uint32_t)c->data[c->pos + 1] << 16 |
	     (uint32_t)c->data[c->pos + 2] << 8 | c->data[c->pos + 3];
	c->pos += 4;
	return 0;
}

static inline int cur_be64(struct cursor *c, uint64_t *v)
{
	const uint8_t *p;
	uint64_t r = 0;

	if (cur_left(c) < 8)
		return -EBADMSG;
	p = c->data + c->pos;
	for (int i = 0; i < 8; i++)
		r = r << 8 | p[i];
	*v = r;
	c->pos += 8;
	return 0;
}

static inline int cur_bytes(struct cursor *c, void *out, size_t n)
{
	if (cur_left(c) < n)
		return -EBADMSG;
	memcpy(out, c->data + c->pos, n);
	c->pos += n;
	return 0;
}

/* Borrow n bytes in place, without copying. */
static inline int cur_ptr(struct cursor *c, size_t n, const uint8_t **p)
{
	if (cur_left(c) < n)
		return -EBADMSG;
	*p = c->data + c->pos;
	c->pos += n;
	return 0;
}

static inline int cur_skip(struct cursor *c, size_t n)
{
	if (cur_left(c) < n)
		return -EBADMSG;
	c->pos += n;
	return 0;
}

/* Move to an absolute offset (for fixed-layout structures such as a BHS or a CDB). */
static inline int cur_seek(struct cursor *c, size_t pos)
{
	if (pos > c->len)
		return -EBADMSG;
	c->pos = pos;
	return 0;
}

/* Writers for the fixed-layout headers we build; the caller owns a big enough buffer. */
static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static inline void put_be24(uint8_t *p, uint32_t v)
{
	p[0] = v >> 16;
	p[1] = v >> 8;
	p[2] = v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, v >> 32);
	put_be32(p + 4, (uint32_t)v);
}

#endif
