#include "lib/crc32c.h"

#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

/* The reflected Castagnoli polynomial 0x1EDC6F41 (RFC 3720 B.4). */
#define CRC32C_POLY_REFLECTED 0x82f63b78u

/* Slicing-by-8 tables, computed once; 8 KiB. The table path is used on machines without
 * SSE4.2 and as the reference the hardware path is tested against. */
static uint32_t crc32c_table[8][256];
static int crc32c_table_ready;

static void crc32c_init_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY_REFLECTED : c >> 1;
		crc32c_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = crc32c_table[0][i];

		for (int t = 1; t < 8; t++) {
			c = crc32c_table[0][c & 0xff] ^ (c >> 8);
			crc32c_table[t][i] = c;
		}
	}
	__atomic_store_n(&crc32c_table_ready, 1, __ATOMIC_RELEASE);
}

/* Built before main() so that worker threads never race on the first call. */
__attribute__((constructor)) static void crc32c_ctor(void)
{
	crc32c_init_table();
}

static uint32_t crc32c_sw_raw(uint32_t c, const uint8_t *p, size_t len)
{
	if (!__atomic_load_n(&crc32c_table_ready, __ATOMIC_ACQUIRE))
		crc32c_init_table();
	while (len && ((uintptr_t)p & 7)) {
		c = crc32c_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
		len--;
	}
	while (len >= 8) {
		uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
				   (uint32_t)p[3] << 24);
		uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
			      (uint32_t)p[7] << 24;

		c = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^
		    crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
		    crc32c_table[3][hi & 0xff] ^ crc32c_table[2][(hi >> 8) & 0xff] ^
		    crc32c_table[1][(hi >> 16) & 0xff] ^ crc32c_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = crc32c_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
	return c;
}

uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
	return ~crc32c_sw_raw(~crc, buf, len);
}

#if defined(__x86_64__)
/* The SSE4.2 CRC32 instruction implements exactly the Castagnoli polynomial in reflected
 * form, so it continues the same running value the table path keeps. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw_raw(uint32_t c, const uint8_t *p,
								size_t len)
{
	uint64_t c64;

	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8(c, *p++);
		len--;
	}
	c64 = c;
	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c64 = _mm_crc32_u64(c64, v);
		p += 8;
		len -= 8;
	}
	c = (uint32_t)c64;
	while (len--)
		c = _mm_crc32_u8(c, *p++);
	return c;
}

bool crc32c_hw_available(void)
{
	static int have = -1;
	int h = __atomic_load_n(&have, __ATOMIC_RELAXED);

	if (h < 0) {
		__builtin_cpu_init();
		h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
		__atomic_store_n(&have, h, __ATOMIC_RELAXED);
	}
	return h;
}

static uint32_t crc32c_raw(uint32_t c, const uint8_t *p, size_t len)
{
	if (crc32c_hw_available())
		return crc32c_hw_raw(c, p, len);
	return crc32c_sw_raw(c, p, len);
}
#else
bool crc32c_hw_available(void)
{
	return false;
}

static uint32_t crc32c_raw(uint32_t c, const uint8_t *p, size_t len)
{
	return crc32c_sw_raw(c, p, len);
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	return ~crc32c_raw(~crc, buf, len);
}

uint32_t crc32c_iov(uint32_t crc, const struct iovec *iov, int iovcnt)
{
	uint32_t c = ~crc;

	for (int i = 0; i < iovcnt; i++)
		c = crc32c_raw(c, iov[i].iov_base, iov[i].iov_len);
	return ~c;
}
