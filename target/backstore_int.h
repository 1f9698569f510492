/* Private to the backstore files: the per-worker I/O context, the common part of a store and
 * the table of operations each kind of store (file, memory) implements. */
#ifndef HOLDFAST_TARGET_BACKSTORE_INT_H
#define HOLDFAST_TARGET_BACKSTORE_INT_H

#include <libaio.h>
#include <pthread.h>
#include <stdint.h>

#include "target/backstore.h"

/* Where a bs_io is in its life; kept in bs_io.state. */
enum bs_io_state {
	BS_IO_IDLE = 0, /* not submitted, or completed */
	BS_IO_HELD,	/* waiting in ctx->held for its due time (delay_ms) */
	BS_IO_WAITING,	/* waiting in ctx->wait_head for a free libaio slot */
	BS_IO_ACTIVE,	/* on the medium: its done callback will run */
};

/* What a libaio slot is doing for its request; a FUA write on a kernel without RWF_DSYNC
 * takes two steps (the write, then an fdatasync). */
enum bs_slot_stage {
	BS_SLOT_RW,	   /* a read, a write, or a FUA write with RWF_DSYNC */
	BS_SLOT_FUA_WRITE, /* the write half of an emulated FUA write */
	BS_SLOT_SYNC,	   /* an fdatasync: a flush, or the second half of an emulated FUA */
};

struct bs_slot {
	struct iocb cb;
	struct bs_io *io;
	struct bs_slot *next; /* free list or retry queue */
	int stage;
	long saved_res; /* the write's result while its emulated-FUA fdatasync runs */
};

struct bs_ctx {
	io_context_t aio;
	int efd;
	unsigned depth;
	unsigned inflight; /* accepted by bs_submit() and done not yet called */
	struct bs_slot *slots;
	struct bs_slot *free_slots;
	/* Slots whose io_submit() returned -EAGAIN, retried by bs_ctx_reap(). */
	struct bs_slot *retry_head, *retry_tail;
	/* Requests that found no free slot, started by bs_ctx_reap() in order. */
	struct bs_io *wait_head, *wait_tail;
	/* Delayed requests ordered by due_ns (CLOCK_MONOTONIC), equal times in arrival order. */
	struct bs_io *held;
	struct io_event *events;
	struct bs_ctx_stats stats;
	/* Requests finished by another thread (the memory store's copier), handed back under
	 * olock and completed by bs_ctx_reap() on the worker. */
	pthread_mutex_t olock;
	struct bs_io *odone_head, *odone_tail;
};

struct bs_ops {
	/* Put the request on the medium now. It ends by bs_complete(), possibly before this
	 * returns. */
	void (*start)(struct backstore *bs, struct bs_ctx *ctx, struct bs_io *io);
	/* A libaio event for a slot this store submitted. */
	void (*event)(struct backstore *bs, struct bs_ctx *ctx, struct bs_slot *slot, long res);
	/* io_submit() refused a slot this store prepared, with err (not -EAGAIN). */
	void (*refused)(struct backstore *bs, struct bs_ctx *ctx, struct bs_slot *slot, int err);
	void (*close)(struct backstore *bs);
	void *(*map)(struct backstore *bs, uint64_t offset, size_t len);
	int (*discard)(struct backstore *bs, uint64_t offset, uint64_t len);
	int (*lba_status)(struct backstore *bs, uint64_t offset, uint64_t len, int *mapped,
			  uint64_t *run);
	int (*resize)(struct backstore *bs, uint64_t new_size);
};

struct backstore {
	const struct bs_ops *ops;
	char name[HF_NAME_MAX];
	/* Read by every worker, changed by bs_resize(): accessed with __atomic builtins. */
	uint64_t size;
	uint32_t block_size;
	uint32_t delay_ms;
	int discard_zeroes; /* set by the kind's constructor */
};

static inline uint64_t bs_size_load(const struct backstore *bs)
{
	return __atomic_load_n(&bs->size, __ATOMIC_ACQUIRE);
}

static inline void bs_size_store(struct backstore *bs, uint64_t size)
{
	__atomic_store_n(&bs->size, size, __ATOMIC_RELEASE);
}

/* From any thread: a request finished elsewhere; the worker completes it on its next reap. */
void bs_ctx_hand_back(struct bs_ctx *ctx, struct bs_io *io, long res);

/* Finish a request: account for it and call its done callback. */
void bs_complete(struct bs_ctx *ctx, struct bs_io *io, long res);

/* Slots for libaio requests. bs_slot_get() returns NULL when all are busy; the caller then
 * parks the request with bs_wait_push() and bs_ctx_reap() starts it again later. */
struct bs_slot *bs_slot_get(struct bs_ctx *ctx);
void bs_slot_put(struct bs_ctx *ctx, struct bs_slot *slot);
void bs_wait_push(struct bs_ctx *ctx, struct bs_io *io);
/* Submit a prepared slot (its eventfd is set here). Returns 0, or the io_submit() error
 * other than -EAGAIN; on -EAGAIN the slot is queued and retried by bs_ctx_reap(). */
int bs_slot_submit(struct bs_ctx *ctx, struct bs_slot *slot);

/* Constructors of each kind; they fill *out with a store whose common part is set up. */
int bs_mem_open(const struct hf_backstore *cfg, struct backstore **out);
int bs_file_open(const struct hf_backstore *cfg, struct backstore **out);

#endif
