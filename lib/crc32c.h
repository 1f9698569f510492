/* CRC32C (Castagnoli, RFC 3720 B.4 / RFC 7143 section 12.1 digests): the header and data
 * digests of iSCSI PDUs, with an SSE4.2 path chosen at run time and a portable table.
 *
 * Semantics follow zlib's crc32(): pass 0 to start, pass the previous result to continue
 * over more bytes; the pre- and post-inversion are done inside. So crc32c(0, buf, len) is
 * the finished digest, and crc32c(crc32c(0, a, n), b, m) equals the digest of a||b.
 *
 * On the wire (RFC 7143 section 11.1 and RFC 3720 B.4), the 4 digest bytes are the finished
 * value in LITTLE-endian order: the transport writes
 *	uint32_t d = crc32c(0, bhs, 48);
 *	out[0] = d; out[1] = d >> 8; out[2] = d >> 16; out[3] = d >> 24;
 * (crc32c_put_le() does exactly this). For 32 zero bytes the value is 0x8a9136aa and the wire
 * bytes are aa 36 91 8a. The data digest covers the data segment AND its padding bytes. */
#ifndef HOLDFAST_LIB_CRC32C_H
#define HOLDFAST_LIB_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The same over a scatter-gather list (as the data path sends and receives them). */
uint32_t crc32c_iov(uint32_t crc, const struct iovec *iov, int iovcnt);

/* The table implementation alone, and whether the SSE4.2 path is in use; for tests. */
uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len);
bool crc32c_hw_available(void);

/* Store / load a digest in wire order. */
static inline void crc32c_put_le(uint8_t *p, uint32_t d)
{
	p[0] = (uint8_t)d;
	p[1] = (uint8_t)(d >> 8);
	p[2] = (uint8_t)(d >> 16);
	p[3] = (uint8_t)(d >> 24);
}

static inline uint32_t crc32c_get_le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
