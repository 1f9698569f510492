/* Backing stores for LUNs: files and block devices through libaio with O_DIRECT, and memory.
 * I/O is asynchronous: a request is submitted on the calling worker's bs_ctx and its done
 * callback runs later on that same worker thread, from bs_ctx_reap(). */
#ifndef HOLDFAST_TARGET_BACKSTORE_H
#define HOLDFAST_TARGET_BACKSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "lib/config.h"

/* All data buffers handed to a backstore are aligned to this (O_DIRECT needs it). */
#define BS_ALIGN 4096

enum bs_op {
	BS_OP_READ,
	BS_OP_WRITE,
	BS_OP_FLUSH, /* make every completed write durable (fdatasync) */
};

enum bs_flags {
	BS_F_FUA = 1 << 0, /* BS_OP_WRITE: durable before completion (RWF_DSYNC) */
};

struct bs_ctx; /* per worker thread: libaio context and its completion eventfd */
struct backstore;

struct bs_io {
	enum bs_op op;
	unsigned flags;
	uint64_t offset; /* bytes */
	struct iovec *iov;
	int iovcnt;
	size_t len; /* sum of iov lengths */
	/* Called exactly once, on the submitting worker thread, with the number of bytes done
	 * or a negative errno. It may be called before bs_submit() returns (memory store). */
	void (*done)(struct bs_io *io, long res);
	void *priv;
	/* Private to the backstore. */
	struct bs_io *next;
	uint64_t due_ns;
	long res;
	struct backstore *bs;
	int state;
	struct bs_ctx *ctx;
};

struct bs_ctx_stats {
	uint64_t submitted, completed;
};

/* Per-worker I/O context. bs_ctx_fd() is an eventfd to add to the worker's epoll set; when
 * it is readable call bs_ctx_reap(), which runs done callbacks. bs_ctx_timeout_ms() tells
 * the worker how long it may sleep (delayed completions), -1 for no limit. */
int bs_ctx_create(unsigned depth, struct bs_ctx **out);
void bs_ctx_destroy(struct bs_ctx *ctx);
int bs_ctx_fd(const struct bs_ctx *ctx);
void bs_ctx_reap(struct bs_ctx *ctx);
int bs_ctx_timeout_ms(const struct bs_ctx *ctx);
unsigned bs_ctx_inflight(const struct bs_ctx *ctx);
void bs_ctx_get_stats(const struct bs_ctx *ctx, struct bs_ctx_stats *out);

/* Open (and for a file, create sparse and extend to cfg->size if smaller) a store.
 * cfg->block_size must be 512 or 4096. A regular file larger than cfg->size keeps its size;
 * a block device's size is its own (BLKGETSIZE64). */
int bs_open(const struct hf_backstore *cfg, struct backstore **out);
void bs_close(struct backstore *bs);

uint64_t bs_size(const struct backstore *bs); /* bytes */
uint32_t bs_block_size(const struct backstore *bs);
const char *bs_name(const struct backstore *bs);

/* Submit an I/O. Returns 0 (done will be called) or a negative errno (it will not).
 * -EINVAL: a range beyond bs_size(), offset or len not a multiple of bs_block_size(), or
 * len different from the sum of the iov lengths. */
int bs_submit(struct backstore *bs, struct bs_ctx *ctx, struct bs_io *io);

/* Withdraw an I/O that has not reached the medium yet (held by delay_ms, or queued for a
 * free libaio slot). Returns 0 when it was withdrawn (done will NOT be called), -EBUSY when
 * it is already on the medium or finished (done runs or ran as usual). ctx must be the one
 * the I/O was submitted on. */
int bs_cancel(struct bs_ctx *ctx, struct bs_io *io);

/* Zero-copy read: a pointer to len bytes at offset inside the store, or NULL when the
 * store cannot lend its memory (files). Valid until bs_close(). */
void *bs_map(struct backstore *bs, uint64_t offset, size_t len);

/* Synchronous metadata operations (cheap, no data transfer). */
int bs_discard(struct backstore *bs, uint64_t offset, uint64_t len); /* punch a hole */
/* 1 when discarded ranges are guaranteed to read back as zeros (memory, regular files), 0 when
 * not (BLKDISCARD on a block device): what the LBPRZ bit of READ CAPACITY (16) may claim. */
int bs_discard_zeroes(const struct backstore *bs);
/* Is the range starting at offset mapped? Sets *mapped and the length of the run of the
 * same kind (at most len). Granularity: the filesystem's block for files (SEEK_DATA), 4 KiB
 * pages for memory (a page is mapped once written, unmapped once wholly discarded); a block
 * device reports everything mapped. -EINVAL for an empty range or one beyond the size. */
int bs_lba_status(struct backstore *bs, uint64_t offset, uint64_t len, int *mapped, uint64_t *run);
/* Grow to new_size (a multiple of the block size); shrinking is refused with -EINVAL. A file
 * is extended sparsely; a block device must already be that large (-ENOSPC otherwise); a
 * memory store grows in place within its reserve (its size + max(size, 1 GiB)), so pointers
 * from bs_map() stay valid. */
int bs_resize(struct backstore *bs, uint64_t new_size);

/* Buffers suitable for bs_io: aligned to BS_ALIGN. */
void *bs_buf_alloc(size_t len);
void bs_buf_free(void *p);

#endif
