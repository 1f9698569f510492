/* The parts of the backstores every kind shares: the per-worker libaio context with its
 * eventfd, delayed (held) requests, argument checks, and the dispatch to a kind's operations. */
#include "target/backstore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "target/backstore_int.h"

/* Most events taken from the kernel per io_getevents() call. */
#define BS_REAP_BATCH 64u

/* When requests wait for io_submit() to stop returning -EAGAIN and nothing is in the kernel
 * to wake the eventfd, the worker must come back by itself after this long. */
#define BS_RETRY_MS 1

static uint64_t bs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bs_ctx_create(unsigned depth, struct bs_ctx **out)
{
	struct bs_ctx *ctx;
	unsigned i;
	int ret;

	if (depth == 0 || depth > 65536) {
		log_warnx("%s: depth %u out of range", __func__, depth);
		return -EINVAL;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->depth = depth;
	ctx->slots = calloc(depth, sizeof(*ctx->slots));
	ctx->events = calloc(BS_REAP_BATCH, sizeof(*ctx->events));
	if (!ctx->slots || !ctx->events) {
		ret = -ENOMEM;
		goto err_free_ctx;
	}
	for (i = 0; i < depth; i++) {
		ctx->slots[i].next = ctx->free_slots;
		ctx->free_slots = &ctx->slots[i];
	}
	pthread_mutex_init(&ctx->olock, NULL);
	ctx->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ctx->efd < 0) {
		ret = -errno;
		log_warn("%s: eventfd", __func__);
		goto err_free_ctx;
	}
	/* libaio returns a negative errno itself rather than setting errno. */
	ret = io_setup((int)depth, &ctx->aio);
	if (ret < 0) {
		log_warnx("%s: io_setup(%u): %s", __func__, depth, strerror(-ret));
		goto err_close_eventfd;
	}
	*out = ctx;
	return 0;

err_close_eventfd:
	close(ctx->efd);
err_free_ctx:
	free(ctx->events);
	free(ctx->slots);
	free(ctx);
	return ret;
}

/* Requests still held or waiting are dropped without a callback (their owner is going away
 * with the worker); io_destroy() waits for those the kernel already has. */
void bs_ctx_destroy(struct bs_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->inflight)
		log_warnx("%s: %u requests still in flight", __func__, ctx->inflight);
	io_destroy(ctx->aio);
	close(ctx->efd);
	free(ctx->events);
	free(ctx->slots);
	free(ctx);
}

int bs_ctx_fd(const struct bs_ctx *ctx)
{
	return ctx->efd;
}

unsigned bs_ctx_inflight(const struct bs_ctx *ctx)
{
	return ctx->inflight;
}

void bs_ctx_get_stats(const struct bs_ctx *ctx, struct bs_ctx_stats *out)
{
	*out = ctx->stats;
}

int bs_ctx_timeout_ms(const struct bs_ctx *ctx)
{
	uint64_t now, left;
	int retry = -1;

	/* Requests parked for -EAGAIN with nothing in the kernel get no eventfd wake-up. */
	if (ctx->retry_head || ctx->wait_head)
		retry = BS_RETRY_MS;
	if (!ctx->held)
		return retry;
	now = bs_now_ns();
	if (ctx->held->due_ns <= now)
		return 0;
	left = (ctx->held->due_ns - now + 999999) / 1000000;
	if (left > INT_MAX)
		left = INT_MAX;
	if (retry >= 0 && (uint64_t)retry < left)
		return retry;
	return (int)left;
}

void bs_complete(struct bs_ctx *ctx, struct bs_io *io, long res)
{
	ctx->inflight--;
	ctx->stats.completed++;
	io->state = BS_IO_IDLE;
	io->res = res;
	io->done(io, res);
}

struct bs_slot *bs_slot_get(struct bs_ctx *ctx)
{
	struct bs_slot *slot = ctx->free_slots;

	if (slot) {
		ctx->free_slots = slot->next;
		slot->next = NULL;
	}
	return slot;
}

void bs_slot_put(struct bs_ctx *ctx, struct bs_slot *slot)
{
	slot->io = NULL;
	slot->next = ctx->free_slots;
	ctx->free_slots = slot;
}

void bs_wait_push(struct bs_ctx *ctx, struct bs_io *io)
{
	io->state = BS_IO_WAITING;
	io->next = NULL;
	if (ctx->wait_tail)
		ctx->wait_tail->next = io;
	else
		ctx->wait_head = io;
	ctx->wait_tail = io;
}

static struct bs_io *bs_wait_pop(struct bs_ctx *ctx)
{
	struct bs_io *io = ctx->wait_head;

	if (io) {
		ctx->wait_head = io->next;
		if (!ctx->wait_head)
			ctx->wait_tail = NULL;
		io->next = NULL;
	}
	return io;
}

/* One io_submit() of a prepared slot: 0, -EAGAIN when the kernel is out of request
 * resources for now, or another negative errno. */
static int bs_slot_try(struct bs_ctx *ctx, struct bs_slot *slot)
{
	struct iocb *cbs[1] = {&slot->cb};
	int ret;

	slot->cb.data = slot;
	io_set_eventfd(&slot->cb, ctx->efd);
	ret = io_submit(ctx->aio, 1, cbs);
	if (ret == 1)
		return 0;
	return ret == 0 ? -EAGAIN : ret;
}

int bs_slot_submit(struct bs_ctx *ctx, struct bs_slot *slot)
{
	int ret = bs_slot_try(ctx, slot);

	if (ret != -EAGAIN)
		return ret;
	/* Park the slot: reaping completions frees kernel resources, and bs_ctx_timeout_ms()
	 * brings the worker back when nothing is in the kernel to raise the eventfd. */
	slot->next = NULL;
	if (ctx->retry_tail)
		ctx->retry_tail->next = slot;
	else
		ctx->retry_head = slot;
	ctx->retry_tail = slot;
	return 0;
}

/* Start what io_submit() refused with -EAGAIN, then what waited for a slot, oldest first. */
static void bs_ctx_restart(struct bs_ctx *ctx)
{
	struct bs_slot *slot;
	struct bs_io *io;
	int ret;

	while ((slot = ctx->retry_head)) {
		ret = bs_slot_try(ctx, slot);
		if (ret == -EAGAIN)
			return; /* still full: keep the order and try on the next reap */
		ctx->retry_head = slot->next;
		if (!ctx->retry_head)
			ctx->retry_tail = NULL;
		slot->next = NULL;
		if (ret < 0)
			slot->io->bs->ops->refused(slot->io->bs, ctx, slot, ret);
	}
	while (ctx->free_slots && (io = bs_wait_pop(ctx))) {
		io->state = BS_IO_ACTIVE;
		io->bs->ops->start(io->bs, ctx, io);
	}
}

static void bs_ctx_events(struct bs_ctx *ctx)
{
	struct timespec zero = {0, 0};
	struct bs_slot *slot;
	int n, i;

	do {
		n = io_getevents(ctx->aio, 0, BS_REAP_BATCH, ctx->events, &zero);
		if (n < 0) {
			if (n != -EINTR)
				log_warnx("%s: io_getevents: %s", __func__, strerror(-n));
			return;
		}
		for (i = 0; i < n; i++) {
			slot = ctx->events[i].data;
			slot->io->bs->ops->event(slot->io->bs, ctx, slot, (long)ctx->events[i].res);
		}
	} while (n == (int)BS_REAP_BATCH);
}

/* Start held requests whose time has come. One at a time from the head, because a done
 * callback may submit (and so insert into the list) while we walk it. */
static void bs_ctx_release_due(struct bs_ctx *ctx)
{
	uint64_t now = bs_now_ns();
	struct bs_io *io;

	while ((io = ctx->held) && io->due_ns <= now) {
		ctx->held = io->next;
		io->next = NULL;
		if (ctx->wait_head) {
			bs_wait_push(ctx, io);
			continue;
		}
		io->state = BS_IO_ACTIVE;
		io->bs->ops->start(io->bs, ctx, io);
	}
}

void bs_ctx_hand_back(struct bs_ctx *ctx, struct bs_io *io, long res)
{
	uint64_t one = 1;

	io->res = res;
	io->next = NULL;
	pthread_mutex_lock(&ctx->olock);
	if (ctx->odone_tail)
		ctx->odone_tail->next = io;
	else
		ctx->odone_head = io;
	ctx->odone_tail = io;
	pthread_mutex_unlock(&ctx->olock);
	if (write(ctx->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("%s: eventfd write", __func__);
}

static void bs_ctx_handed_back(struct bs_ctx *ctx)
{
	struct bs_io *io, *next;

	if (!__atomic_load_n(&ctx->odone_head, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&ctx->olock);
	io = ctx->odone_head;
	ctx->odone_head = ctx->odone_tail = NULL;
	pthread_mutex_unlock(&ctx->olock);
	for (; io; io = next) {
		next = io->next;
		bs_complete(ctx, io, io->res);
	}
}

void bs_ctx_reap(struct bs_ctx *ctx)
{
	uint64_t count;

	/* Drain first: an event arriving after this read raises the eventfd again. */
	if (read(ctx->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("%s: eventfd read", __func__);
	bs_ctx_handed_back(ctx);
	bs_ctx_events(ctx);
	bs_ctx_restart(ctx);
	bs_ctx_release_due(ctx);
}

static int bs_check_io(const struct backstore *bs, const struct bs_io *io)
{
	uint64_t size = bs_size_load(bs);
	size_t sum = 0;
	int i;

	if (!io->done)
		return -EINVAL;
	switch (io->op) {
	case BS_OP_FLUSH:
		return 0;
	case BS_OP_READ:
	case BS_OP_WRITE:
		break;
	default:
		return -EINVAL;
	}
	if (io->iovcnt < 0 || io->iovcnt > IOV_MAX || (io->iovcnt && !io->iov))
		return -EINVAL;
	for (i = 0; i < io->iovcnt; i++)
		sum += io->iov[i].iov_len;
	if (sum != io->len)
		return -EINVAL;
	if ((io->offset | io->len) & (bs->block_size - 1))
		return -EINVAL;
	if (io->offset > size || io->len > size - io->offset)
		return -EINVAL;
	return 0;
}

static void bs_hold(struct bs_ctx *ctx, struct bs_io *io)
{
	struct bs_io **pp = &ctx->held;

	io->due_ns = bs_now_ns() + (uint64_t)io->bs->delay_ms * 1000000ull;
	while (*pp && (*pp)->due_ns <= io->due_ns)
		pp = &(*pp)->next;
	io->next = *pp;
	*pp = io;
	io->state = BS_IO_HELD;
}

int bs_submit(struct backstore *bs, struct bs_ctx *ctx, struct bs_io *io)
{
	int ret = bs_check_io(bs, io);

	if (ret < 0) {
		log_warnx("%s: %s: op %d offset %llu len %zu refused", __func__, bs->name,
			  (int)io->op, (unsigned long long)io->offset, io->len);
		return ret;
	}
	io->bs = bs;
	io->next = NULL;
	io->res = 0;
	ctx->inflight++;
	ctx->stats.submitted++;
	if (bs->delay_ms) {
		/* Test hook: the request does not touch the medium before it is due, so a
		 * cancelled (aborted) write provably never lands. */
		bs_hold(ctx, io);
		return 0;
	}
	if (ctx->wait_head) {
		/* Keep arrival order behind requests already waiting for a slot. */
		bs_wait_push(ctx, io);
		return 0;
	}
	io->state = BS_IO_ACTIVE;
	bs->ops->start(bs, ctx, io);
	return 0;
}

static int bs_unlink(struct bs_io **head, struct bs_io **tail, struct bs_io *io)
{
	struct bs_io *prev = NULL, *cur;

	for (cur = *head; cur; prev = cur, cur = cur->next) {
		if (cur != io)
			continue;
		if (prev)
			prev->next = cur->next;
		else
			*head = cur->next;
		if (tail && *tail == cur)
			*tail = prev;
		cur->next = NULL;
		return 0;
	}
	return -ENOENT;
}

int bs_cancel(struct bs_ctx *ctx, struct bs_io *io)
{
	int ret;

	switch (io->state) {
	case BS_IO_HELD:
		ret = bs_unlink(&ctx->held, NULL, io);
		break;
	case BS_IO_WAITING:
		ret = bs_unlink(&ctx->wait_head, &ctx->wait_tail, io);
		break;
	default:
		return -EBUSY;
	}
	if (ret < 0) {
		log_warnx("%s: request not found on this context", __func__);
		return -EBUSY;
	}
	io->state = BS_IO_IDLE;
	ctx->inflight--;
	return 0;
}

int bs_open(const struct hf_backstore *cfg, struct backstore **out)
{
	struct backstore *bs = NULL;
	int ret;

	if (cfg->block_size != 512 && cfg->block_size != 4096) {
		log_warnx("%s: %s: block size %u is not 512 or 4096", __func__, cfg->name,
			  cfg->block_size);
		return -EINVAL;
	}
	switch (cfg->type) {
	case HF_BS_MEMORY:
		ret = bs_mem_open(cfg, &bs);
		break;
	case HF_BS_FILE:
		ret = bs_file_open(cfg, &bs);
		break;
	default:
		log_warnx("%s: %s: unknown store type %d", __func__, cfg->name, (int)cfg->type);
		return -EINVAL;
	}
	if (ret < 0)
		return ret;
	snprintf(bs->name, sizeof(bs->name), "%s", cfg->name);
	bs->block_size = cfg->block_size;
	bs->delay_ms = cfg->delay_ms;
	*out = bs;
	return 0;
}

void bs_close(struct backstore *bs)
{
	if (bs)
		bs->ops->close(bs);
}

uint64_t bs_size(const struct backstore *bs)
{
	return bs_size_load(bs);
}

int bs_discard_zeroes(const struct backstore *bs)
{
	return bs->discard_zeroes;
}

uint32_t bs_block_size(const struct backstore *bs)
{
	return bs->block_size;
}

const char *bs_name(const struct backstore *bs)
{
	return bs->name;
}

void *bs_map(struct backstore *bs, uint64_t offset, size_t len)
{
	uint64_t size = bs_size_load(bs);

	if (offset > size || len > size - offset)
		return NULL;
	return bs->ops->map(bs, offset, len);
}

int bs_discard(struct backstore *bs, uint64_t offset, uint64_t len)
{
	uint64_t size = bs_size_load(bs);

	if (offset > size || len > size - offset) {
		log_warnx("%s: %s: range %llu+%llu beyond %llu", __func__, bs->name,
			  (unsigned long long)offset, (unsigned long long)len,
			  (unsigned long long)size);
		return -EINVAL;
	}
	if (len == 0)
		return 0;
	return bs->ops->discard(bs, offset, len);
}

int bs_lba_status(struct backstore *bs, uint64_t offset, uint64_t len, int *mapped, uint64_t *run)
{
	uint64_t size = bs_size_load(bs);

	if (len == 0 || offset >= size || len > size - offset)
		return -EINVAL;
	return bs->ops->lba_status(bs, offset, len, mapped, run);
}

/* Growing only: shrinking a LUN under initiators that may still address the tail would lose
 * their data, so it is refused. */
int bs_resize(struct backstore *bs, uint64_t new_size)
{
	uint64_t size = bs_size_load(bs);

	if (new_size < size || new_size % bs->block_size) {
		log_warnx("%s: %s: cannot resize %llu to %llu", __func__, bs->name,
			  (unsigned long long)size, (unsigned long long)new_size);
		return -EINVAL;
	}
	if (new_size == size)
		return 0;
	return bs->ops->resize(bs, new_size);
}

/* I/O buffers are recycled per thread in power-of-two classes from 4 KiB to 16 MiB. Fresh
 * large allocations come from mmap and fault in every page on first touch; at 1 MiB per
 * command that fault cost dominated the write path. A thread keeps at most BUF_CACHE_MAX
 * bytes; the rest goes back to the allocator. */
#define BUF_MIN_SHIFT 12
#define BUF_CLASSES   13
#define BUF_CACHE_MAX (64u << 20)

struct buf_cache {
	void *head[BUF_CLASSES];
	size_t bytes;
};

static __thread struct buf_cache buf_cache;

static int buf_class(size_t len)
{
	int c = 0;

	while (c < BUF_CLASSES && ((size_t)1 << (BUF_MIN_SHIFT + c)) < len)
		c++;
	return c; /* BUF_CLASSES: too big to cache */
}

void *bs_buf_alloc(size_t len)
{
	int c = buf_class(len ? len : 1);
	void *p = NULL;

	if (c < BUF_CLASSES && buf_cache.head[c]) {
		p = buf_cache.head[c];
		buf_cache.head[c] = *(void **)p;
		buf_cache.bytes -= (size_t)1 << (BUF_MIN_SHIFT + c);
		return p;
	}
	if (c < BUF_CLASSES)
		len = (size_t)1 << (BUF_MIN_SHIFT + c);
	if (posix_memalign(&p, BS_ALIGN, len ? len : BS_ALIGN))
		return NULL;
	return p;
}

void bs_buf_free(void *p)
{
	size_t usable, size;
	int c;

	if (!p)
		return;
	usable = malloc_usable_size(p);
	c = buf_class(usable);
	/* Only whole classes that came from bs_buf_alloc() are kept: aligned, and at least
	 * the class size (usable may exceed it by the allocator's slack). */
	if (c > 0 && ((size_t)1 << (BUF_MIN_SHIFT + c)) > usable)
		c--;
	size = (size_t)1 << (BUF_MIN_SHIFT + c);
	if (c >= BUF_CLASSES || ((uintptr_t)p & (BS_ALIGN - 1)) || usable < size ||
	    buf_cache.bytes + size > BUF_CACHE_MAX) {
		free(p);
		return;
	}
	*(void **)p = buf_cache.head[c];
	buf_cache.head[c] = p;
	buf_cache.bytes += size;
}
