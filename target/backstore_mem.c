/* The memory store: one anonymous private mapping whose pages the kernel allocates only when
 * they are first written, so a large store costs nothing until used. Reads and writes are
 * memcpy and complete before bs_submit() returns (or, delayed, from bs_ctx_reap()).
 *
 * Mapped-ness is tracked in a bitmap with one bit per page (BS_MEM_PAGE): a bit is set by any
 * write touching the page and cleared when a discard drops the whole page. mincore() would
 * also count pages that were only read (the zero page) or miss swapped-out ones, so it does
 * not answer "was this written"; the bitmap does, at the granularity discard works at. */
#include <errno.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/log.h"
#include "target/backstore_int.h"

#define BS_MEM_PAGE 4096ull

/* Address space reserved beyond the configured size so that bs_resize() can grow the store
 * in place, keeping every pointer bs_map() lent valid until bs_close(). */
#define BS_MEM_GROW_MIN (1ull << 30)

struct bs_mem {
	struct backstore bs;
	uint8_t *base;
	uint64_t reserve;  /* bytes of address space mapped, PROT_NONE beyond the size */
	uint64_t *mapped;  /* one bit per page of the reserve */
	uint64_t rw_bytes; /* prefix of the reserve that is readable and writable */
};

static struct bs_mem *to_mem(struct backstore *bs)
{
	return (struct bs_mem *)bs;
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static void mark_pages(struct bs_mem *m, uint64_t offset, uint64_t len)
{
	uint64_t p, last;

	if (!len)
		return;
	last = (offset + len - 1) / BS_MEM_PAGE;
	for (p = offset / BS_MEM_PAGE; p <= last; p++) {
		uint64_t bit = 1ull << (p % 64);

		/* Stores are shared by workers: skip the locked write when already set. */
		if (!(__atomic_load_n(&m->mapped[p / 64], __ATOMIC_RELAXED) & bit))
			__atomic_fetch_or(&m->mapped[p / 64], bit, __ATOMIC_RELAXED);
	}
}

static int page_mapped(const struct bs_mem *m, uint64_t p)
{
	return !!(__atomic_load_n(&m->mapped[p / 64], __ATOMIC_RELAXED) & (1ull << (p % 64)));
}

/* Large writes are copied into the store by a copier thread, as a disk's DMA would run beside
 * the CPU: the worker goes back to its sockets while the bytes move. One thread suffices; a
 * box has few cores and the worker threads need the rest. */
#define MEM_OFFLOAD_MIN (128u << 10)

static struct {
	pthread_once_t once;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct bs_io *head, *tail;
	bool running;
} copier = {.once = PTHREAD_ONCE_INIT,
	    .lock = PTHREAD_MUTEX_INITIALIZER,
	    .cond = PTHREAD_COND_INITIALIZER};

static void mem_write_now(struct bs_mem *m, struct bs_io *io)
{
	uint8_t *p = m->base + io->offset;

	for (int i = 0; i < io->iovcnt; i++) {
		memcpy(p, io->iov[i].iov_base, io->iov[i].iov_len);
		p += io->iov[i].iov_len;
	}
	mark_pages(m, io->offset, io->len);
}

static void *copier_run(void *arg)
{
	pthread_setname_np(pthread_self(), "hf-memcopy");
	for (;;) {
		struct bs_io *io;

		pthread_mutex_lock(&copier.lock);
		while (!copier.head)
			pthread_cond_wait(&copier.cond, &copier.lock);
		io = copier.head;
		copier.head = io->next;
		if (!copier.head)
			copier.tail = NULL;
		pthread_mutex_unlock(&copier.lock);
		mem_write_now(to_mem(io->bs), io);
		bs_ctx_hand_back(io->ctx, io, (long)io->len);
	}
	return NULL;
}

static void copier_start(void)
{
	pthread_t t;

	copier.running = pthread_create(&t, NULL, copier_run, NULL) == 0;
	if (copier.running)
		pthread_detach(t);
	else
		log_warnx("%s: no copier thread; large writes are copied inline", __func__);
}

static bool mem_offload(struct bs_ctx *ctx, struct bs_io *io)
{
	if (io->len < MEM_OFFLOAD_MIN)
		return false;
	pthread_once(&copier.once, copier_start);
	if (!copier.running)
		return false;
	io->ctx = ctx;
	io->next = NULL;
	pthread_mutex_lock(&copier.lock);
	if (copier.tail)
		copier.tail->next = io;
	else
		copier.head = io;
	copier.tail = io;
	pthread_cond_signal(&copier.cond);
	pthread_mutex_unlock(&copier.lock);
	return true;
}

static void mem_start(struct backstore *bs, struct bs_ctx *ctx, struct bs_io *io)
{
	struct bs_mem *m = to_mem(bs);
	uint8_t *p = m->base + io->offset;
	int i;

	switch (io->op) {
	case BS_OP_READ:
		for (i = 0; i < io->iovcnt; i++) {
			memcpy(io->iov[i].iov_base, p, io->iov[i].iov_len);
			p += io->iov[i].iov_len;
		}
		break;
	case BS_OP_WRITE:
		/* Memory is as durable as it gets here, so FUA needs nothing more. */
		if (mem_offload(ctx, io))
			return;
		mem_write_now(m, io);
		break;
	case BS_OP_FLUSH:
		bs_complete(ctx, io, 0);
		return;
	default:
		bs_complete(ctx, io, -EINVAL);
		return;
	}
	bs_complete(ctx, io, (long)io->len);
}

static void mem_event(struct backstore *bs, struct bs_ctx *ctx, struct bs_slot *slot, long res)
{
	/* The memory store never submits to libaio. */
	log_warnx("%s: %s: unexpected libaio event", __func__, bs->name);
}

static void mem_refused(struct backstore *bs, struct bs_ctx *ctx, struct bs_slot *slot, int err)
{
	log_warnx("%s: %s: unexpected libaio refusal", __func__, bs->name);
}

static void mem_close(struct backstore *bs)
{
	struct bs_mem *m = to_mem(bs);

	munmap(m->base, m->reserve);
	free(m->mapped);
	free(m);
}

static void *mem_map(struct backstore *bs, uint64_t offset, size_t len)
{
	return to_mem(bs)->base + offset;
}

static int mem_discard(struct backstore *bs, uint64_t offset, uint64_t len)
{
	struct bs_mem *m = to_mem(bs);
	uint64_t end = offset + len;
	uint64_t first = round_up(offset, BS_MEM_PAGE);
	uint64_t last = end / BS_MEM_PAGE * BS_MEM_PAGE;
	uint64_t p;

	if (first >= last) {
		/* Inside one page, or straddling two without covering either. */
		memset(m->base + offset, 0, len);
		return 0;
	}
	memset(m->base + offset, 0, first - offset);
	memset(m->base + last, 0, end - last);
	/* Dropping private anonymous pages makes them read back as zeros and frees them. */
	if (madvise(m->base + first, last - first, MADV_DONTNEED) < 0) {
		/* The range still has to read back as zeros; it just stays allocated. */
		log_warn("%s: %s: madvise", __func__, bs->name);
		memset(m->base + first, 0, last - first);
		return 0;
	}
	for (p = first / BS_MEM_PAGE; p < last / BS_MEM_PAGE; p++)
		__atomic_fetch_and(&m->mapped[p / 64], ~(1ull << (p % 64)), __ATOMIC_RELAXED);
	return 0;
}

static int mem_lba_status(struct backstore *bs, uint64_t offset, uint64_t len, int *mapped,
			  uint64_t *run)
{
	struct bs_mem *m = to_mem(bs);
	uint64_t end = offset + len;
	uint64_t p = offset / BS_MEM_PAGE;
	int state = page_mapped(m, p);
	uint64_t stop;

	for (p++; p * BS_MEM_PAGE < end && page_mapped(m, p) == state; p++)
		;
	stop = p * BS_MEM_PAGE;
	*mapped = state;
	*run = (stop < end ? stop : end) - offset;
	return 0;
}

static int mem_resize(struct backstore *bs, uint64_t new_size)
{
	struct bs_mem *m = to_mem(bs);
	uint64_t want = round_up(new_size, BS_MEM_PAGE);

	if (want > m->reserve) {
		log_warnx("%s: %s: %llu bytes exceed the %llu reserved", __func__, bs->name,
			  (unsigned long long)new_size, (unsigned long long)m->reserve);
		return -ENOSPC;
	}
	if (want > m->rw_bytes) {
		if (mprotect(m->base + m->rw_bytes, want - m->rw_bytes, PROT_READ | PROT_WRITE)) {
			int ret = -errno;

			log_warn("%s: %s: mprotect", __func__, bs->name);
			return ret;
		}
		m->rw_bytes = want;
	}
	bs_size_store(bs, new_size);
	return 0;
}

static const struct bs_ops bs_mem_ops = {
	.start = mem_start,
	.event = mem_event,
	.refused = mem_refused,
	.close = mem_close,
	.map = mem_map,
	.discard = mem_discard,
	.lba_status = mem_lba_status,
	.resize = mem_resize,
};

int bs_mem_open(const struct hf_backstore *cfg, struct backstore **out)
{
	uint64_t size = cfg->size / cfg->block_size * cfg->block_size;
	uint64_t grow, pages;
	struct bs_mem *m;
	int ret;

	if (size == 0 || size > (1ull << 46)) {
		log_warnx("%s: %s: size %llu out of range", __func__, cfg->name,
			  (unsigned long long)cfg->size);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->bs.ops = &bs_mem_ops;
	m->bs.discard_zeroes = 1;
	m->rw_bytes = round_up(size, BS_MEM_PAGE);
	grow = m->rw_bytes > BS_MEM_GROW_MIN ? m->rw_bytes : BS_MEM_GROW_MIN;
	m->reserve = m->rw_bytes + grow;
	pages = m->reserve / BS_MEM_PAGE;
	/* Large callocs come from fresh anonymous memory, so the bitmap is lazy as well. */
	m->mapped = calloc((pages + 63) / 64, sizeof(uint64_t));
	if (!m->mapped) {
		ret = -ENOMEM;
		goto err_free;
	}
	m->base = mmap(NULL, m->reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
		       0);
	if (m->base == MAP_FAILED) {
		ret = -errno;
		log_warn("%s: %s: mmap %llu bytes", __func__, cfg->name,
			 (unsigned long long)m->reserve);
		goto err_free_bitmap;
	}
	if (mprotect(m->base, m->rw_bytes, PROT_READ | PROT_WRITE)) {
		ret = -errno;
		log_warn("%s: %s: mprotect", __func__, cfg->name);
		goto err_unmap;
	}
	bs_size_store(&m->bs, size);
	*out = &m->bs;
	return 0;

err_unmap:
	munmap(m->base, m->reserve);
err_free_bitmap:
	free(m->mapped);
err_free:
	free(m);
	return ret;
}
