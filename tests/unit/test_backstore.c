/* Unit tests of the backing stores: memory and file (libaio, O_DIRECT), completions through
 * the bs_ctx eventfd, delayed requests and their cancellation. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libaio.h>
#include <linux/fs.h>

#include "target/backstore.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* What a test learns from done callbacks: how many ran, their results and order. */
struct rec {
	int calls;
	long res[16];
	struct bs_io *order[16];
};

struct tio {
	struct bs_io io;
	struct iovec iov;
	struct rec *rec;
};

static void rec_done(struct bs_io *io, long res)
{
	struct tio *t = io->priv;
	struct rec *r = t->rec;

	if (r->calls < 16) {
		r->res[r->calls] = res;
		r->order[r->calls] = io;
	}
	r->calls++;
}

static void tio_init(struct tio *t, struct rec *r, enum bs_op op, uint64_t off, void *buf,
		     size_t len)
{
	memset(t, 0, sizeof(*t));
	t->iov.iov_base = buf;
	t->iov.iov_len = len;
	t->rec = r;
	t->io.op = op;
	t->io.offset = off;
	t->io.iov = &t->iov;
	t->io.iovcnt = op == BS_OP_FLUSH ? 0 : 1;
	t->io.len = op == BS_OP_FLUSH ? 0 : len;
	t->io.done = rec_done;
	t->io.priv = t;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A worker's loop: sleep in epoll on the context's eventfd, no longer than the context
 * allows, and reap on every wake-up. Returns once nothing is in flight, or fails after 5 s. */
static void run_epoll(struct bs_ctx *ctx)
{
	struct epoll_event ev = {.events = EPOLLIN};
	uint64_t start = now_ms();
	int ep = epoll_create1(EPOLL_CLOEXEC);

	assert_true(ep >= 0);
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, bs_ctx_fd(ctx), &ev), 0);
	while (bs_ctx_inflight(ctx)) {
		int t = bs_ctx_timeout_ms(ctx);
		struct epoll_event got;

		assert_true(now_ms() - start < 5000);
		if (t < 0 || t > 1000)
			t = 1000;
		assert_true(epoll_wait(ep, &got, 1, t) >= 0);
		bs_ctx_reap(ctx);
	}
	close(ep);
}

static struct hf_backstore mem_cfg(uint64_t size, uint32_t delay_ms)
{
	struct hf_backstore cfg;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.name, sizeof(cfg.name), "mem0");
	cfg.type = HF_BS_MEMORY;
	cfg.size = size;
	cfg.block_size = 512;
	cfg.delay_ms = delay_ms;
	return cfg;
}

static struct backstore *open_mem(uint64_t size, uint32_t delay_ms)
{
	struct hf_backstore cfg = mem_cfg(size, delay_ms);
	struct backstore *bs = NULL;

	assert_int_equal(bs_open(&cfg, &bs), 0);
	return bs;
}

static struct bs_ctx *new_ctx(unsigned depth)
{
	struct bs_ctx *ctx = NULL;

	assert_int_equal(bs_ctx_create(depth, &ctx), 0);
	return ctx;
}

static uint8_t *pattern_buf(size_t len, uint8_t seed)
{
	uint8_t *b = bs_buf_alloc(len);
	size_t i;

	assert_non_null(b);
	for (i = 0; i < len; i++)
		b[i] = (uint8_t)(seed + i * 7);
	return b;
}

static int all_zero(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

/* A stand-in for libaio's io_submit() that the program's definition puts in front of the
 * library's, so tests can play an old or overloaded kernel. It passes through to the system
 * call, which is all libaio's does. */
static struct {
	int refuse_rw_flags; /* -EINVAL for an iocb with aio_rw_flags (kernel < 4.13) */
	int refuse_fdsync;   /* -EINVAL for IOCB_CMD_FDSYNC (kernel < 4.18) */
	int eagain;	     /* this many calls return -EAGAIN first */
	int ops[16];	     /* opcodes that reached the kernel, in order */
	int rw_flags[16];    /* and their RWF_* flags */
	int nops;
} aio_fake;

int io_submit(io_context_t ctx, long nr, struct iocb *ios[])
{
	long i, ret;

	if (aio_fake.eagain > 0) {
		aio_fake.eagain--;
		return -EAGAIN;
	}
	for (i = 0; i < nr; i++) {
		if (aio_fake.refuse_rw_flags && ios[i]->aio_rw_flags)
			return i ? (int)i : -EINVAL;
		if (aio_fake.refuse_fdsync && ios[i]->aio_lio_opcode == IO_CMD_FDSYNC)
			return i ? (int)i : -EINVAL;
	}
	ret = syscall(__NR_io_submit, ctx, nr, ios);
	if (ret < 0)
		return -errno;
	for (i = 0; i < ret && aio_fake.nops < 16; i++) {
		aio_fake.rw_flags[aio_fake.nops] = (int)ios[i]->aio_rw_flags;
		aio_fake.ops[aio_fake.nops++] = ios[i]->aio_lio_opcode;
	}
	return (int)ret;
}

static int reset_aio_fake(void **state)
{
	memset(&aio_fake, 0, sizeof(aio_fake));
	return 0;
}

/* ---- common ---- */

static void test_ctx_create_rejects_zero_depth(void **state)
{
	struct bs_ctx *ctx = NULL;

	assert_int_equal(bs_ctx_create(0, &ctx), -EINVAL);
	assert_null(ctx);
}

static void test_buf_alloc_is_aligned(void **state)
{
	void *p = bs_buf_alloc(100);

	assert_non_null(p);
	assert_int_equal((uintptr_t)p % BS_ALIGN, 0);
	bs_buf_free(p);
}

static void test_open_rejects_bad_block_size(void **state)
{
	struct hf_backstore cfg = mem_cfg(MiB, 0);
	struct backstore *bs = NULL;

	cfg.block_size = 1024;
	assert_int_equal(bs_open(&cfg, &bs), -EINVAL);
	assert_null(bs);
}

static void test_open_rejects_zero_size(void **state)
{
	struct hf_backstore cfg = mem_cfg(0, 0);
	struct backstore *bs = NULL;

	assert_int_equal(bs_open(&cfg, &bs), -EINVAL);
}

/* ---- memory store ---- */

static void test_mem_reports_size_block_and_name(void **state)
{
	struct backstore *bs = open_mem(GiB, 0);

	assert_int_equal(bs_size(bs), GiB);
	assert_int_equal(bs_block_size(bs), 512);
	assert_string_equal(bs_name(bs), "mem0");
	bs_close(bs);
}

static void test_mem_write_then_read_round_trips_before_submit_returns(void **state)
{
	struct backstore *bs = open_mem(GiB, 0);
	struct bs_ctx *ctx = new_ctx(8);
	uint8_t *w = pattern_buf(8192, 3), *r = bs_buf_alloc(8192);
	struct rec rec = {0};
	struct tio t;

	tio_init(&t, &rec, BS_OP_WRITE, 512 * MiB + 512, w, 8192);
	assert_int_equal(bs_submit(bs, ctx, &t.io), 0);
	assert_int_equal(rec.calls, 1);
	assert_int_equal(rec.res[0], 8192);
	memset(r, 0xee, 8192);
	tio_init(&t, &rec, BS_OP_READ, 512 * MiB + 512, r, 8192);
	assert_int_equal(bs_submit(bs, ctx, &t.io), 0);
	assert_int_equal(rec.calls, 2);
	assert_int_equal(rec.res[1], 8192);
	assert_memory_equal(r, w, 8192);
	assert_int_equal(bs_ctx_inflight(ctx), 0);
	bs_buf_free(w);
	bs_buf_free(r);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

static void test_mem_scatter_gather_write_lands_contiguously(void **state)
{
	struct backstore *bs = open_mem(MiB, 0);
	struct bs_ctx *ctx = new_ctx(8);
	uint8_t *a = pattern_buf(512, 1), *b = pattern_buf(1024, 2);
	struct iovec iov[2] = {{a, 512}, {b, 1024}};
	struct rec rec = {0};
	struct tio t;
	uint8_t *p;

	tio_init(&t, &rec, BS_OP_WRITE, 4096, NULL, 0);
	t.io.iov = iov;
	t.io.iovcnt = 2;
	t.io.len = 1536;
	assert_int_equal(bs_submit(bs, ctx, &t.io), 0);
	assert_int_equal(rec.res[0], 1536);
	p = bs_map(bs, 4096, 1536);
	assert_non_null(p);
	assert_memory_equal(p, a, 512);
	assert_memory_equal(p + 512, b, 1024);
	bs_buf_free(a);
	bs_buf_free(b);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

static void test_mem_untouched_store_reads_zeros_and_is_unmapped(void **state)
{
	struct backstore *bs = open_mem(GiB, 0);
	struct bs_ctx *ctx = new_ctx(8);
	uint8_t *r = pattern_buf(4096, 9);
	struct rec rec = {0};
	uint64_t run = 0;
	int mapped = -1;
	struct tio t;

	tio_init(&t, &rec, BS_OP_READ, GiB - 4096, r, 4096);
	assert_int_equal(bs_submit(bs, ctx, &t.io), 0);
	assert_true(all_zero(r, 4096));
	assert_int_equal(bs_lba_status(bs, 0, GiB, &mapped, &run), 0);
	assert_int_equal(mapped, 0);
	assert_int_equal(run, GiB);
	bs_buf_free(r);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

static void test_mem_submit_beyond_size_is_refused_without_callback(void **state)
{
	struct backstore *bs = open_mem(MiB, 0);
	struct bs_ctx *ctx = new_ctx(8);
	uint8_t *w = pattern_buf(4096, 1);
	struct rec rec = {0};
	struct tio t;

	tio_init(&t, &rec, BS_OP_WRITE, MiB - 512, w, 1024);
	assert_int_equal(bs_submit(bs, ctx, &t.io), -EINVAL);
	tio_init(&t, &rec, BS_OP_READ, MiB, w, 512);
	assert_int_equal(bs_submit(bs, ctx, &t.io), -EINVAL);
	/* An offset so large that offset + len wraps around. */
	tio_init(&t, &rec, BS_OP_READ, UINT64_MAX - 511, w, 1024);
	assert_int_equal(bs_submit(bs, ctx, &t.io), -EINVAL);
	assert_int_equal(rec.calls, 0);
	assert_int_equal(bs_ctx_inflight(ctx), 0);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

static void test_mem_submit_unaligned_or_inconsistent_is_refused(void **state)
{
	struct backstore *bs = open_mem(MiB, 0);
	struct bs_ctx *ctx = new_ctx(8);
	uint8_t *w = pattern_buf(4096, 1);
	struct rec rec = {0};
	struct tio t;

	tio_init(&t, &rec, BS_OP_WRITE, 100, w, 512);
	assert_int_equal(bs_submit(bs, ctx, &t.io), -EINVAL);
	tio_init(&t, &rec, BS_OP_WRITE, 0, w, 500);
	assert_int_equal(bs_submit(bs, ctx, &t.io), -EINVAL);
	tio_init(&t, &rec, BS_OP_WRITE, 0, w, 512);
	t.io.len = 1024; /* disagrees with the iovec */
	assert_int_equal(bs_submit(bs, ctx, &t.io), -EINVAL);
	tio_init(&t, &rec, BS_OP_WRITE, 0, w, 512);
	t.io.op = (enum bs_op)42;
	assert_int_equal(bs_submit(bs, ctx, &t.io), -EINVAL);
	assert_int_equal(rec.calls, 0);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

static void test_mem_write_marks_pages_mapped_with_exact_run(void **state)
{
	struct backstore *bs = open_mem(MiB, 0);
	struct bs_ctx *ctx = new_ctx(8);
	uint8_t *w = pattern_buf(8192, 1);
	struct rec rec = {0};
	uint64_t run = 0;
	int mapped = -1;
	struct tio t;

	tio_init(&t, &rec, BS_OP_WRITE, 16384, w, 8192);
	assert_int_equal(bs_submit(bs, ctx, &t.io), 0);
	assert_int_equal(bs_lba_status(bs, 0, MiB, &mapped, &run), 0);
	assert_int_equal(mapped, 0);
	assert_int_equal(run, 16384);
	assert_int_equal(bs_lba_status(bs, 16384 + 512, MiB - 16384 - 512, &mapped, &run), 0);
	assert_int_equal(mapped, 1);
	assert_int_equal(run, 8192 - 512);
	/* The run never exceeds the length asked about. */
	assert_int_equal(bs_lba_status(bs, 16384, 1024, &mapped, &run), 0);
	assert_int_equal(mapped, 1);
	assert_int_equal(run, 1024);
	assert_int_equal(bs_lba_status(bs, 0, MiB + 512, &mapped, &run), -EINVAL);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

static void test_mem_discard_reads_zeros_and_reports_unmapped(void **state)
{
	struct backstore *bs = open_mem(MiB, 0);
	struct bs_ctx *ctx = new_ctx(8);
	uint8_t *w = pattern_buf(65536, 5);
	struct rec rec = {0};
	uint64_t run = 0;
	int mapped = -1;
	struct tio t;

	tio_init(&t, &rec, BS_OP_WRITE, 0, w, 65536);
	assert_int_equal(bs_submit(bs, ctx, &t.io), 0);
	assert_int_equal(bs_discard(bs, 8192, 16384), 0);
	assert_int_equal(bs_lba_status(bs, 8192, 65536 - 8192, &mapped, &run), 0);
	assert_int_equal(mapped, 0);
	assert_int_equal(run, 16384);
	assert_true(all_zero(bs_map(bs, 8192, 16384), 16384));
	/* The neighbours keep their data. */
	assert_memory_equal(bs_map(bs, 0, 8192), w, 8192);
	assert_memory_equal(bs_map(bs, 24576, 65536 - 24576), w + 24576, 65536 - 24576);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

static void test_mem_discard_of_partial_pages_zeroes_only_the_range(void **state)
{
	struct backstore *bs = open_mem(MiB, 0);
	struct bs_ctx *ctx = new_ctx(8);
	uint8_t *w = pattern_buf(16384, 5);
	struct rec rec = {0};
	uint64_t run = 0;
	int mapped = -1;
	struct tio t;

	tio_init(&t, &rec, BS_OP_WRITE, 0, w, 16384);
	assert_int_equal(bs_submit(bs, ctx, &t.io), 0);
	/* From the middle of page 0 to the middle of page 2: page 1 is dropped, the edges
	 * zeroed in place. */
	assert_int_equal(bs_discard(bs, 2048, 8192), 0);
	assert_memory_equal(bs_map(bs, 0, 2048), w, 2048);
	assert_true(all_zero(bs_map(bs, 2048, 8192), 8192));
	assert_memory_equal(bs_map(bs, 10240, 6144), w + 10240, 6144);
	assert_int_equal(bs_lba_status(bs, 0, 16384, &mapped, &run), 0);
	assert_int_equal(mapped, 1);
	assert_int_equal(run, 4096);
	assert_int_equal(bs_lba_status(bs, 4096, 16384 - 4096, &mapped, &run), 0);
	assert_int_equal(mapped, 0);
	assert_int_equal(run, 4096);
	/* Inside a single page. */
	assert_int_equal(bs_discard(bs, 12288 + 512, 1024), 0);
	assert_true(all_zero(bs_map(bs, 12288 + 512, 1024), 1024));
	assert_memory_equal(bs_map(bs, 12288 + 1536, 2560), w + 12288 + 1536, 2560);
	assert_int_equal(bs_discard(bs, MiB - 512, 1024), -EINVAL);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

static void test_mem_map_refuses_range_beyond_size(void **state)
{
	struct backstore *bs = open_mem(MiB, 0);

	assert_non_null(bs_map(bs, MiB - 512, 512));
	assert_null(bs_map(bs, MiB - 512, 1024));
	bs_close(bs);
}

static void test_mem_resize_grows_keeping_data_and_mappings(void **state)
{
	struct backstore *bs = open_mem(MiB, 0);
	struct bs_ctx *ctx = new_ctx(8);
	uint8_t *w = pattern_buf(4096, 5);
	struct rec rec = {0};
	struct tio t;
	uint8_t *before;

	tio_init(&t, &rec, BS_OP_WRITE, MiB - 4096, w, 4096);
	assert_int_equal(bs_submit(bs, ctx, &t.io), 0);
	before = bs_map(bs, MiB - 4096, 4096);
	assert_int_equal(bs_resize(bs, 64 * MiB), 0);
	assert_int_equal(bs_size(bs), 64 * MiB);
	assert_ptr_equal(bs_map(bs, MiB - 4096, 4096), before);
	assert_memory_equal(before, w, 4096);
	tio_init(&t, &rec, BS_OP_WRITE, 64 * MiB - 4096, w, 4096);
	assert_int_equal(bs_submit(bs, ctx, &t.io), 0);
	assert_int_equal(rec.res[1], 4096);
	assert_memory_equal(bs_map(bs, 64 * MiB - 4096, 4096), w, 4096);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

static void test_mem_resize_refuses_shrink_and_unaligned(void **state)
{
	struct backstore *bs = open_mem(MiB, 0);

	assert_int_equal(bs_resize(bs, MiB / 2), -EINVAL);
	assert_int_equal(bs_resize(bs, MiB + 100), -EINVAL);
	assert_int_equal(bs_size(bs), MiB);
	bs_close(bs);
}

static void test_mem_flush_completes_with_zero(void **state)
{
	struct backstore *bs = open_mem(MiB, 0);
	struct bs_ctx *ctx = new_ctx(8);
	struct rec rec = {0};
	struct tio t;

	tio_init(&t, &rec, BS_OP_FLUSH, 0, NULL, 0);
	assert_int_equal(bs_submit(bs, ctx, &t.io), 0);
	assert_int_equal(rec.calls, 1);
	assert_int_equal(rec.res[0], 0);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

/* ---- delayed stores (either kind) ---- */

static void delay_holds_write_off_the_medium(struct backstore *bs, struct bs_ctx *ctx,
					     uint32_t delay_ms)
{
	uint8_t *w = pattern_buf(4096, 7), *r = bs_buf_alloc(4096);
	struct rec rec = {0};
	uint64_t start = now_ms();
	struct tio t, rt;
	int to;

	tio_init(&t, &rec, BS_OP_WRITE, 0, w, 4096);
	assert_int_equal(bs_submit(bs, ctx, &t.io), 0);
	assert_int_equal(rec.calls, 0);
	assert_int_equal(bs_ctx_inflight(ctx), 1);
	to = bs_ctx_timeout_ms(ctx);
	assert_true(to > 0 && to <= (int)delay_ms);
	bs_ctx_reap(ctx);
	assert_int_equal(rec.calls, 0);
	run_epoll(ctx);
	assert_int_equal(rec.calls, 1);
	assert_int_equal(rec.res[0], 4096);
	assert_true(now_ms() - start >= delay_ms);
	assert_int_equal(bs_ctx_timeout_ms(ctx), -1);
	tio_init(&rt, &rec, BS_OP_READ, 0, r, 4096);
	assert_int_equal(bs_submit(bs, ctx, &rt.io), 0);
	run_epoll(ctx);
	assert_int_equal(rec.res[1], 4096);
	assert_memory_equal(r, w, 4096);
	bs_buf_free(w);
	bs_buf_free(r);
}

static void test_mem_delay_holds_completion_until_due_via_epoll(void **state)
{
	struct backstore *bs = open_mem(MiB, 50);
	struct bs_ctx *ctx = new_ctx(8);

	delay_holds_write_off_the_medium(bs, ctx, 50);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

static void test_mem_delayed_write_is_not_on_medium_before_due(void **state)
{
	struct backstore *bs = open_mem(MiB, 50);
	struct bs_ctx *ctx = new_ctx(8);
	uint8_t *w = pattern_buf(4096, 7);
	struct rec rec = {0};
	struct tio t;

	tio_init(&t, &rec, BS_OP_WRITE, 0, w, 4096);
	assert_int_equal(bs_submit(bs, ctx, &t.io), 0);
	assert_true(all_zero(bs_map(bs, 0, 4096), 4096));
	run_epoll(ctx);
	assert_memory_equal(bs_map(bs, 0, 4096), w, 4096);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

static void test_delayed_completions_run_in_due_order_across_stores(void **state)
{
	struct backstore *slow = open_mem(MiB, 80), *fast = open_mem(MiB, 20);
	struct bs_ctx *ctx = new_ctx(8);
	uint8_t *w = pattern_buf(4096, 7);
	struct rec rec = {0};
	struct tio a, b, c;

	tio_init(&a, &rec, BS_OP_WRITE, 0, w, 4096);
	tio_init(&b, &rec, BS_OP_WRITE, 0, w, 4096);
	tio_init(&c, &rec, BS_OP_WRITE, 4096, w, 4096);
	assert_int_equal(bs_submit(slow, ctx, &a.io), 0);
	assert_int_equal(bs_submit(fast, ctx, &b.io), 0);
	assert_int_equal(bs_submit(fast, ctx, &c.io), 0);
	assert_true(bs_ctx_timeout_ms(ctx) <= 20);
	run_epoll(ctx);
	assert_int_equal(rec.calls, 3);
	assert_ptr_equal(rec.order[0], &b.io);
	assert_ptr_equal(rec.order[1], &c.io);
	assert_ptr_equal(rec.order[2], &a.io);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(slow);
	bs_close(fast);
}

static void test_cancel_of_held_write_keeps_it_off_the_medium(void **state)
{
	struct backstore *bs = open_mem(MiB, 30);
	struct bs_ctx *ctx = new_ctx(8);
	uint8_t *w = pattern_buf(4096, 7);
	struct rec rec = {0};
	struct tio a, b;

	tio_init(&a, &rec, BS_OP_WRITE, 0, w, 4096);
	tio_init(&b, &rec, BS_OP_WRITE, 8192, w, 4096);
	assert_int_equal(bs_submit(bs, ctx, &a.io), 0);
	assert_int_equal(bs_submit(bs, ctx, &b.io), 0);
	assert_int_equal(bs_cancel(ctx, &a.io), 0);
	assert_int_equal(bs_ctx_inflight(ctx), 1);
	run_epoll(ctx);
	/* Only b ran; a never reached the store and its done was never called. */
	assert_int_equal(rec.calls, 1);
	assert_ptr_equal(rec.order[0], &b.io);
	assert_true(all_zero(bs_map(bs, 0, 4096), 4096));
	assert_memory_equal(bs_map(bs, 8192, 4096), w, 4096);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

static void test_cancel_after_completion_is_busy(void **state)
{
	struct backstore *bs = open_mem(MiB, 0);
	struct bs_ctx *ctx = new_ctx(8);
	uint8_t *w = pattern_buf(4096, 7);
	struct rec rec = {0};
	struct tio t;

	tio_init(&t, &rec, BS_OP_WRITE, 0, w, 4096);
	assert_int_equal(bs_submit(bs, ctx, &t.io), 0);
	assert_int_equal(bs_cancel(ctx, &t.io), -EBUSY);
	assert_int_equal(rec.calls, 1);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
}

/* A done callback that submits the next request, as the SCSI layer does for a multi-step
 * command, while the context is walking its held list. */
struct chain {
	struct tio t[3];
	struct backstore *bs;
	struct bs_ctx *ctx;
	int next;
	struct rec rec;
	uint8_t *buf;
};

static void chain_done(struct bs_io *io, long res)
{
	struct chain *c = io->priv;

	c->rec.res[c->rec.calls++] = res;
	if (c->next < 3) {
		struct tio *t = &c->t[c->next];

		tio_init(t, &c->rec, BS_OP_WRITE, (uint64_t)c->next * 4096, c->buf, 4096);
		t->io.done = chain_done;
		t->io.priv = c;
		c->next++;
		assert_int_equal(bs_submit(c->bs, c->ctx, &t->io), 0);
	}
}

static void test_done_callback_may_submit_again_on_delayed_store(void **state)
{
	struct chain c;

	memset(&c, 0, sizeof(c));
	c.bs = open_mem(MiB, 10);
	c.ctx = new_ctx(4);
	c.buf = pattern_buf(4096, 1);
	tio_init(&c.t[0], &c.rec, BS_OP_WRITE, 0, c.buf, 4096);
	c.t[0].io.done = chain_done;
	c.t[0].io.priv = &c;
	c.next = 1;
	assert_int_equal(bs_submit(c.bs, c.ctx, &c.t[0].io), 0);
	run_epoll(c.ctx);
	assert_int_equal(c.rec.calls, 3);
	assert_memory_equal(bs_map(c.bs, 8192, 4096), c.buf, 4096);
	bs_buf_free(c.buf);
	bs_ctx_destroy(c.ctx);
	bs_close(c.bs);
}

/* ---- file store ---- */

struct tmp {
	char dir[64];
	char path[128];
};

static void tmp_make(struct tmp *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/test_backstore.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/lun0.img", t->dir);
}

static void tmp_remove(struct tmp *t)
{
	unlink(t->path);
	assert_int_equal(rmdir(t->dir), 0);
}

static struct hf_backstore file_cfg(const char *path, uint64_t size, uint32_t delay_ms)
{
	struct hf_backstore cfg;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.name, sizeof(cfg.name), "file0");
	snprintf(cfg.path, sizeof(cfg.path), "%s", path);
	cfg.type = HF_BS_FILE;
	cfg.size = size;
	cfg.block_size = 512;
	cfg.delay_ms = delay_ms;
	return cfg;
}

static struct backstore *open_file(const char *path, uint64_t size, uint32_t delay_ms)
{
	struct hf_backstore cfg = file_cfg(path, size, delay_ms);
	struct backstore *bs = NULL;

	assert_int_equal(bs_open(&cfg, &bs), 0);
	return bs;
}

/* What is in the file, read behind the store's back. */
static void file_peek(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void test_file_open_creates_sparse_file_owner_only(void **state)
{
	struct backstore *bs;
	struct stat st;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, GiB, 0);
	assert_int_equal(bs_size(bs), GiB);
	assert_int_equal(stat(t.path, &st), 0);
	assert_int_equal(st.st_size, GiB);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true((uint64_t)st.st_blocks * 512 < MiB);
	assert_int_equal(bs_discard_zeroes(bs), 1);
	assert_null(bs_map(bs, 0, 4096));
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_open_without_parent_folder_fails(void **state)
{
	struct hf_backstore cfg = file_cfg("/tmp/test_backstore.none/sub/lun.img", MiB, 0);
	struct backstore *bs = NULL;

	assert_int_equal(bs_open(&cfg, &bs), -ENOENT);
	assert_null(bs);
}

static void test_file_open_rejects_a_folder(void **state)
{
	struct hf_backstore cfg;
	struct backstore *bs = NULL;
	struct tmp t;

	tmp_make(&t);
	cfg = file_cfg(t.dir, MiB, 0);
	assert_int_equal(bs_open(&cfg, &bs), -EINVAL);
	tmp_remove(&t);
}

static void test_file_open_extends_smaller_file_keeping_its_data(void **state)
{
	uint8_t head[512], got[512];
	struct backstore *bs;
	struct stat st;
	struct tmp t;
	int fd;

	tmp_make(&t);
	memset(head, 0x5a, sizeof(head));
	fd = open(t.path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, head, sizeof(head)), sizeof(head));
	close(fd);
	bs = open_file(t.path, 4 * MiB, 0);
	assert_int_equal(bs_size(bs), 4 * MiB);
	assert_int_equal(stat(t.path, &st), 0);
	assert_int_equal(st.st_size, 4 * MiB);
	file_peek(t.path, 0, got, sizeof(got));
	assert_memory_equal(got, head, sizeof(head));
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_open_keeps_size_of_larger_file(void **state)
{
	struct backstore *bs;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, 8 * MiB, 0);
	bs_close(bs);
	bs = open_file(t.path, MiB, 0);
	assert_int_equal(bs_size(bs), 8 * MiB);
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_write_read_round_trip_through_epoll(void **state)
{
	uint8_t *w = pattern_buf(65536, 11), *r = bs_buf_alloc(65536), *peek = malloc(65536);
	struct bs_ctx *ctx = new_ctx(8);
	struct rec rec = {0};
	struct backstore *bs;
	struct tio a, b;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, GiB, 0);
	tio_init(&a, &rec, BS_OP_WRITE, GiB - 65536, w, 65536);
	assert_int_equal(bs_submit(bs, ctx, &a.io), 0);
	assert_int_equal(bs_ctx_inflight(ctx), 1);
	run_epoll(ctx);
	assert_int_equal(rec.calls, 1);
	assert_int_equal(rec.res[0], 65536);
	file_peek(t.path, GiB - 65536, peek, 65536);
	assert_memory_equal(peek, w, 65536);
	tio_init(&b, &rec, BS_OP_READ, GiB - 65536, r, 65536);
	assert_int_equal(bs_submit(bs, ctx, &b.io), 0);
	run_epoll(ctx);
	assert_int_equal(rec.res[1], 65536);
	assert_memory_equal(r, w, 65536);
	bs_buf_free(w);
	bs_buf_free(r);
	free(peek);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_fua_write_completes_with_data_in_file(void **state)
{
	uint8_t *w = pattern_buf(4096, 13), peek[4096];
	struct bs_ctx *ctx = new_ctx(8);
	struct bs_ctx_stats stats;
	struct rec rec = {0};
	struct backstore *bs;
	struct tio a;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, MiB, 0);
	tio_init(&a, &rec, BS_OP_WRITE, 8192, w, 4096);
	a.io.flags = BS_F_FUA;
	assert_int_equal(bs_submit(bs, ctx, &a.io), 0);
	run_epoll(ctx);
	assert_int_equal(rec.calls, 1);
	assert_int_equal(rec.res[0], 4096);
	file_peek(t.path, 8192, peek, 4096);
	assert_memory_equal(peek, w, 4096);
	bs_ctx_get_stats(ctx, &stats);
	assert_int_equal(stats.submitted, 1);
	assert_int_equal(stats.completed, 1);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_flush_completes_with_zero(void **state)
{
	uint8_t *w = pattern_buf(4096, 13);
	struct bs_ctx *ctx = new_ctx(8);
	struct rec rec = {0};
	struct backstore *bs;
	struct tio a, f;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, MiB, 0);
	tio_init(&a, &rec, BS_OP_WRITE, 0, w, 4096);
	assert_int_equal(bs_submit(bs, ctx, &a.io), 0);
	run_epoll(ctx);
	tio_init(&f, &rec, BS_OP_FLUSH, 0, NULL, 0);
	assert_int_equal(bs_submit(bs, ctx, &f.io), 0);
	run_epoll(ctx);
	assert_int_equal(rec.calls, 2);
	assert_int_equal(rec.res[1], 0);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_discard_reads_zeros_and_reports_unmapped(void **state)
{
	uint8_t *w = pattern_buf(65536, 17), *r = pattern_buf(65536, 1);
	struct bs_ctx *ctx = new_ctx(8);
	struct rec rec = {0};
	struct backstore *bs;
	uint64_t run = 0;
	int mapped = -1;
	struct tio a, b;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, 4 * MiB, 0);
	tio_init(&a, &rec, BS_OP_WRITE, MiB, w, 65536);
	assert_int_equal(bs_submit(bs, ctx, &a.io), 0);
	run_epoll(ctx);
	assert_int_equal(bs_lba_status(bs, MiB, 65536, &mapped, &run), 0);
	assert_int_equal(mapped, 1);
	assert_int_equal(run, 65536);
	assert_int_equal(bs_discard(bs, MiB, 65536), 0);
	assert_int_equal(bs_lba_status(bs, MiB, 65536, &mapped, &run), 0);
	assert_int_equal(mapped, 0);
	assert_int_equal(run, 65536);
	tio_init(&b, &rec, BS_OP_READ, MiB, r, 65536);
	assert_int_equal(bs_submit(bs, ctx, &b.io), 0);
	run_epoll(ctx);
	assert_int_equal(rec.res[1], 65536);
	assert_true(all_zero(r, 65536));
	assert_int_equal(bs_size(bs), 4 * MiB);
	assert_int_equal(bs_discard(bs, 4 * MiB - 512, 1024), -EINVAL);
	bs_buf_free(w);
	bs_buf_free(r);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_lba_status_runs_stop_where_data_starts_and_ends(void **state)
{
	uint8_t *w = pattern_buf(65536, 17);
	struct bs_ctx *ctx = new_ctx(8);
	struct rec rec = {0};
	struct backstore *bs;
	uint64_t run = 0;
	int mapped = -1;
	struct tio a;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, 4 * MiB, 0);
	tio_init(&a, &rec, BS_OP_WRITE, MiB, w, 65536);
	assert_int_equal(bs_submit(bs, ctx, &a.io), 0);
	run_epoll(ctx);
	assert_int_equal(bs_lba_status(bs, 0, 4 * MiB, &mapped, &run), 0);
	assert_int_equal(mapped, 0);
	assert_int_equal(run, MiB);
	assert_int_equal(bs_lba_status(bs, MiB, 3 * MiB, &mapped, &run), 0);
	assert_int_equal(mapped, 1);
	assert_int_equal(run, 65536);
	assert_int_equal(bs_lba_status(bs, MiB + 65536, 3 * MiB - 65536, &mapped, &run), 0);
	assert_int_equal(mapped, 0);
	assert_int_equal(run, 3 * MiB - 65536);
	assert_int_equal(bs_lba_status(bs, 4 * MiB, 512, &mapped, &run), -EINVAL);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_resize_grows_file_sparsely(void **state)
{
	uint8_t *w = pattern_buf(4096, 19);
	struct bs_ctx *ctx = new_ctx(8);
	struct rec rec = {0};
	struct backstore *bs;
	struct stat st;
	struct tio a;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, MiB, 0);
	tio_init(&a, &rec, BS_OP_WRITE, GiB - 4096, w, 4096);
	assert_int_equal(bs_submit(bs, ctx, &a.io), -EINVAL);
	assert_int_equal(bs_resize(bs, GiB), 0);
	assert_int_equal(bs_size(bs), GiB);
	assert_int_equal(stat(t.path, &st), 0);
	assert_int_equal(st.st_size, GiB);
	assert_true((uint64_t)st.st_blocks * 512 < MiB);
	assert_int_equal(bs_submit(bs, ctx, &a.io), 0);
	run_epoll(ctx);
	assert_int_equal(rec.res[0], 4096);
	assert_int_equal(bs_resize(bs, MiB), -EINVAL);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_submit_beyond_size_is_refused(void **state)
{
	uint8_t *w = pattern_buf(4096, 19);
	struct bs_ctx *ctx = new_ctx(8);
	struct rec rec = {0};
	struct backstore *bs;
	struct tio a;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, MiB, 0);
	tio_init(&a, &rec, BS_OP_WRITE, MiB - 2048, w, 4096);
	assert_int_equal(bs_submit(bs, ctx, &a.io), -EINVAL);
	tio_init(&a, &rec, BS_OP_READ, MiB, w, 512);
	assert_int_equal(bs_submit(bs, ctx, &a.io), -EINVAL);
	assert_int_equal(bs_ctx_inflight(ctx), 0);
	assert_int_equal(rec.calls, 0);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

/* More requests than libaio slots: the rest wait in the context and all complete. */
static void test_file_more_requests_than_depth_all_complete(void **state)
{
	enum { N = 12 };
	uint8_t *bufs[N], *r = bs_buf_alloc(4096);
	struct bs_ctx *ctx = new_ctx(2);
	struct rec rec = {0};
	struct backstore *bs;
	struct tio io[N], rd;
	struct tmp t;
	int i;

	tmp_make(&t);
	bs = open_file(t.path, MiB, 0);
	for (i = 0; i < N; i++) {
		bufs[i] = pattern_buf(4096, (uint8_t)(i + 1));
		tio_init(&io[i], &rec, BS_OP_WRITE, (uint64_t)i * 4096, bufs[i], 4096);
		assert_int_equal(bs_submit(bs, ctx, &io[i].io), 0);
	}
	assert_int_equal(bs_ctx_inflight(ctx), N);
	run_epoll(ctx);
	assert_int_equal(rec.calls, N);
	for (i = 0; i < N; i++) {
		assert_int_equal(rec.res[i], 4096);
		tio_init(&rd, &rec, BS_OP_READ, (uint64_t)i * 4096, r, 4096);
		assert_int_equal(bs_submit(bs, ctx, &rd.io), 0);
		run_epoll(ctx);
		assert_memory_equal(r, bufs[i], 4096);
		bs_buf_free(bufs[i]);
	}
	bs_buf_free(r);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_cancel_of_request_waiting_for_slot(void **state)
{
	uint8_t *w = pattern_buf(4096, 23), peek[4096];
	struct bs_ctx *ctx = new_ctx(1);
	struct rec rec = {0};
	struct backstore *bs;
	struct tio a, b;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, MiB, 0);
	tio_init(&a, &rec, BS_OP_WRITE, 0, w, 4096);
	tio_init(&b, &rec, BS_OP_WRITE, 8192, w, 4096);
	assert_int_equal(bs_submit(bs, ctx, &a.io), 0);
	assert_int_equal(bs_submit(bs, ctx, &b.io), 0);
	/* a is in the kernel, b still waits for the only slot. */
	assert_int_equal(bs_cancel(ctx, &a.io), -EBUSY);
	assert_int_equal(bs_cancel(ctx, &b.io), 0);
	run_epoll(ctx);
	assert_int_equal(rec.calls, 1);
	assert_ptr_equal(rec.order[0], &a.io);
	file_peek(t.path, 8192, peek, 4096);
	assert_true(all_zero(peek, 4096));
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_delay_holds_write_off_the_medium(void **state)
{
	struct bs_ctx *ctx = new_ctx(8);
	struct backstore *bs;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, MiB, 40);
	delay_holds_write_off_the_medium(bs, ctx, 40);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_cancelled_delayed_write_never_reaches_file(void **state)
{
	uint8_t *w = pattern_buf(4096, 29), peek[4096];
	struct bs_ctx *ctx = new_ctx(8);
	struct rec rec = {0};
	struct backstore *bs;
	struct tio a, b;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, MiB, 40);
	tio_init(&a, &rec, BS_OP_WRITE, 0, w, 4096);
	tio_init(&b, &rec, BS_OP_WRITE, 4096, w, 4096);
	assert_int_equal(bs_submit(bs, ctx, &a.io), 0);
	assert_int_equal(bs_submit(bs, ctx, &b.io), 0);
	file_peek(t.path, 4096, peek, 4096);
	assert_true(all_zero(peek, 4096));
	assert_int_equal(bs_cancel(ctx, &a.io), 0);
	assert_int_equal(bs_cancel(ctx, &a.io), -EBUSY);
	run_epoll(ctx);
	assert_int_equal(rec.calls, 1);
	assert_ptr_equal(rec.order[0], &b.io);
	file_peek(t.path, 0, peek, 4096);
	assert_true(all_zero(peek, 4096));
	file_peek(t.path, 4096, peek, 4096);
	assert_memory_equal(peek, w, 4096);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

static void fua_write_and_check(int refuse_rw_flags, int refuse_fdsync)
{
	uint8_t *w = pattern_buf(4096, 31), peek[4096];
	struct bs_ctx *ctx = new_ctx(8);
	struct rec rec = {0};
	struct backstore *bs;
	struct tio a, b;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, MiB, 0);
	aio_fake.refuse_rw_flags = refuse_rw_flags;
	aio_fake.refuse_fdsync = refuse_fdsync;
	/* Twice: the first meets the refusal, the second takes the fallback straight away. */
	tio_init(&a, &rec, BS_OP_WRITE, 0, w, 4096);
	a.io.flags = BS_F_FUA;
	tio_init(&b, &rec, BS_OP_WRITE, 4096, w, 4096);
	b.io.flags = BS_F_FUA;
	assert_int_equal(bs_submit(bs, ctx, &a.io), 0);
	run_epoll(ctx);
	assert_int_equal(bs_submit(bs, ctx, &b.io), 0);
	run_epoll(ctx);
	assert_int_equal(rec.calls, 2);
	assert_int_equal(rec.res[0], 4096);
	assert_int_equal(rec.res[1], 4096);
	file_peek(t.path, 4096, peek, 4096);
	assert_memory_equal(peek, w, 4096);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_fua_uses_rwf_dsync_alone_when_kernel_has_it(void **state)
{
	fua_write_and_check(0, 0);
	assert_int_equal(aio_fake.nops, 2);
	assert_int_equal(aio_fake.ops[0], IO_CMD_PWRITEV);
	assert_int_equal(aio_fake.rw_flags[0], RWF_DSYNC);
	assert_int_equal(aio_fake.ops[1], IO_CMD_PWRITEV);
	assert_int_equal(aio_fake.rw_flags[1], RWF_DSYNC);
}

static void test_file_fua_falls_back_to_write_then_fdsync(void **state)
{
	fua_write_and_check(1, 0);
	assert_int_equal(aio_fake.nops, 4);
	assert_int_equal(aio_fake.ops[0], IO_CMD_PWRITEV);
	assert_int_equal(aio_fake.ops[1], IO_CMD_FDSYNC);
	assert_int_equal(aio_fake.ops[2], IO_CMD_PWRITEV);
	assert_int_equal(aio_fake.ops[3], IO_CMD_FDSYNC);
}

static void test_file_fua_falls_back_to_synchronous_fdatasync(void **state)
{
	/* Only the writes reach the kernel; the syncs are done by the worker itself. */
	fua_write_and_check(1, 1);
	assert_int_equal(aio_fake.nops, 2);
	assert_int_equal(aio_fake.ops[0], IO_CMD_PWRITEV);
	assert_int_equal(aio_fake.ops[1], IO_CMD_PWRITEV);
}

static void test_file_flush_falls_back_to_synchronous_fdatasync(void **state)
{
	struct bs_ctx *ctx = new_ctx(8);
	struct rec rec = {0};
	struct backstore *bs;
	struct tio f;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, MiB, 0);
	aio_fake.refuse_fdsync = 1;
	tio_init(&f, &rec, BS_OP_FLUSH, 0, NULL, 0);
	assert_int_equal(bs_submit(bs, ctx, &f.io), 0);
	/* The refusal is known at submission, so the flush is already done. */
	assert_int_equal(rec.calls, 1);
	assert_int_equal(rec.res[0], 0);
	assert_int_equal(aio_fake.nops, 0);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

static void test_file_eagain_from_kernel_is_retried_on_reap(void **state)
{
	uint8_t *w = pattern_buf(4096, 37), peek[4096];
	struct bs_ctx *ctx = new_ctx(8);
	struct rec rec = {0};
	struct backstore *bs;
	struct tio a, b;
	struct tmp t;

	tmp_make(&t);
	bs = open_file(t.path, MiB, 0);
	aio_fake.eagain = 3;
	tio_init(&a, &rec, BS_OP_WRITE, 0, w, 4096);
	tio_init(&b, &rec, BS_OP_WRITE, 4096, w, 4096);
	assert_int_equal(bs_submit(bs, ctx, &a.io), 0);
	assert_int_equal(bs_submit(bs, ctx, &b.io), 0);
	assert_int_equal(aio_fake.nops, 0);
	/* Nothing is in the kernel to raise the eventfd, so the worker must be told to come
	 * back by itself. */
	assert_true(bs_ctx_timeout_ms(ctx) >= 0);
	run_epoll(ctx);
	assert_int_equal(rec.calls, 2);
	assert_ptr_equal(rec.order[0], &a.io);
	assert_int_equal(rec.res[0], 4096);
	assert_int_equal(rec.res[1], 4096);
	file_peek(t.path, 4096, peek, 4096);
	assert_memory_equal(peek, w, 4096);
	assert_int_equal(bs_ctx_timeout_ms(ctx), -1);
	bs_buf_free(w);
	bs_ctx_destroy(ctx);
	bs_close(bs);
	tmp_remove(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctx_create_rejects_zero_depth),
		cmocka_unit_test(test_buf_alloc_is_aligned),
		cmocka_unit_test(test_open_rejects_bad_block_size),
		cmocka_unit_test(test_open_rejects_zero_size),
		cmocka_unit_test(test_mem_reports_size_block_and_name),
		cmocka_unit_test(test_mem_write_then_read_round_trips_before_submit_returns),
		cmocka_unit_test(test_mem_scatter_gather_write_lands_contiguously),
		cmocka_unit_test(test_mem_untouched_store_reads_zeros_and_is_unmapped),
		cmocka_unit_test(test_mem_submit_beyond_size_is_refused_without_callback),
		cmocka_unit_test(test_mem_submit_unaligned_or_inconsistent_is_refused),
		cmocka_unit_test(test_mem_write_marks_pages_mapped_with_exact_run),
		cmocka_unit_test(test_mem_discard_reads_zeros_and_reports_unmapped),
		cmocka_unit_test(test_mem_discard_of_partial_pages_zeroes_only_the_range),
		cmocka_unit_test(test_mem_map_refuses_range_beyond_size),
		cmocka_unit_test(test_mem_resize_grows_keeping_data_and_mappings),
		cmocka_unit_test(test_mem_resize_refuses_shrink_and_unaligned),
		cmocka_unit_test(test_mem_flush_completes_with_zero),
		cmocka_unit_test(test_mem_delay_holds_completion_until_due_via_epoll),
		cmocka_unit_test(test_mem_delayed_write_is_not_on_medium_before_due),
		cmocka_unit_test(test_delayed_completions_run_in_due_order_across_stores),
		cmocka_unit_test(test_cancel_of_held_write_keeps_it_off_the_medium),
		cmocka_unit_test(test_cancel_after_completion_is_busy),
		cmocka_unit_test(test_done_callback_may_submit_again_on_delayed_store),
		cmocka_unit_test(test_file_open_creates_sparse_file_owner_only),
		cmocka_unit_test(test_file_open_without_parent_folder_fails),
		cmocka_unit_test(test_file_open_rejects_a_folder),
		cmocka_unit_test(test_file_open_extends_smaller_file_keeping_its_data),
		cmocka_unit_test(test_file_open_keeps_size_of_larger_file),
		cmocka_unit_test(test_file_write_read_round_trip_through_epoll),
		cmocka_unit_test(test_file_fua_write_completes_with_data_in_file),
		cmocka_unit_test(test_file_flush_completes_with_zero),
		cmocka_unit_test(test_file_discard_reads_zeros_and_reports_unmapped),
		cmocka_unit_test(test_file_lba_status_runs_stop_where_data_starts_and_ends),
		cmocka_unit_test(test_file_resize_grows_file_sparsely),
		cmocka_unit_test(test_file_submit_beyond_size_is_refused),
		cmocka_unit_test(test_file_more_requests_than_depth_all_complete),
		cmocka_unit_test(test_file_cancel_of_request_waiting_for_slot),
		cmocka_unit_test(test_file_delay_holds_write_off_the_medium),
		cmocka_unit_test(test_file_cancelled_delayed_write_never_reaches_file),
		cmocka_unit_test_setup(test_file_fua_uses_rwf_dsync_alone_when_kernel_has_it,
				       reset_aio_fake),
		cmocka_unit_test_setup(test_file_fua_falls_back_to_write_then_fdsync,
				       reset_aio_fake),
		cmocka_unit_test_setup(test_file_fua_falls_back_to_synchronous_fdatasync,
				       reset_aio_fake),
		cmocka_unit_test_setup(test_file_flush_falls_back_to_synchronous_fdatasync,
				       reset_aio_fake),
		cmocka_unit_test_setup(test_file_eagain_from_kernel_is_retried_on_reap,
				       reset_aio_fake),
	};

	return cmocka_run_group_tests(tests, reset_aio_fake, NULL);
}
