/* The file store: a regular file or a block device, read and written with libaio and
 * O_DIRECT. A regular file is created sparse (0600) or extended sparsely up to the configured
 * size. FUA writes carry RWF_DSYNC and flushes are IOCB_CMD_FDSYNC; on a kernel that refuses
 * either, the store falls back to an fdatasync (asynchronous when it can) and says so once. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "target/backstore_int.h"

struct bs_file {
	struct backstore bs;
	int fd;
	int blkdev;
	int direct;
	/* Set (once, by any worker) when the kernel refused RWF_DSYNC or IOCB_CMD_FDSYNC. */
	int no_rwf_dsync;
	int no_aio_fdsync;
};

static struct bs_file *to_file(struct backstore *bs)
{
	return (struct bs_file *)bs;
}

static int file_flag(int *flag)
{
	return __atomic_load_n(flag, __ATOMIC_RELAXED);
}

/* Returns 1 for the caller that set the flag, so that only one of them logs. */
static int file_set_flag(int *flag)
{
	return !__atomic_exchange_n(flag, 1, __ATOMIC_RELAXED);
}

static void file_finish(struct bs_ctx *ctx, struct bs_slot *slot, long res)
{
	struct bs_io *io = slot->io;

	bs_slot_put(ctx, slot);
	bs_complete(ctx, io, res);
}

static void file_go(struct bs_file *f, struct bs_ctx *ctx, struct bs_slot *slot)
{
	int ret = bs_slot_submit(ctx, slot);

	if (ret < 0)
		f->bs.ops->refused(&f->bs, ctx, slot, ret);
}

/* The fdatasync of a flush, or of an emulated FUA write whose data is already written. */
static void file_sync_step(struct bs_file *f, struct bs_ctx *ctx, struct bs_slot *slot)
{
	slot->stage = BS_SLOT_SYNC;
	if (file_flag(&f->no_aio_fdsync)) {
		/* This blocks the worker, which only a kernel without aio fsync (before 4.18)
		 * makes us do. */
		long res = fdatasync(f->fd) < 0 ? -errno : 0;

		if (res == 0 && slot->io->op == BS_OP_WRITE)
			res = slot->saved_res;
		file_finish(ctx, slot, res);
		return;
	}
	io_prep_fdsync(&slot->cb, f->fd);
	file_go(f, ctx, slot);
}

static void file_prep_write(struct bs_file *f, struct bs_slot *slot, struct bs_io *io)
{
	if ((io->flags & BS_F_FUA) && !file_flag(&f->no_rwf_dsync)) {
		io_prep_pwritev2(&slot->cb, f->fd, io->iov, io->iovcnt, (long long)io->offset,
				 RWF_DSYNC);
		slot->stage = BS_SLOT_RW;
	} else {
		io_prep_pwritev(&slot->cb, f->fd, io->iov, io->iovcnt, (long long)io->offset);
		slot->stage = (io->flags & BS_F_FUA) ? BS_SLOT_FUA_WRITE : BS_SLOT_RW;
	}
}

static void file_start(struct backstore *bs, struct bs_ctx *ctx, struct bs_io *io)
{
	struct bs_file *f = to_file(bs);
	struct bs_slot *slot = bs_slot_get(ctx);

	if (!slot) {
		bs_wait_push(ctx, io);
		return;
	}
	slot->io = io;
	slot->saved_res = 0;
	switch (io->op) {
	case BS_OP_READ:
		io_prep_preadv(&slot->cb, f->fd, io->iov, io->iovcnt, (long long)io->offset);
		slot->stage = BS_SLOT_RW;
		break;
	case BS_OP_WRITE:
		file_prep_write(f, slot, io);
		break;
	case BS_OP_FLUSH:
		file_sync_step(f, ctx, slot);
		return;
	default:
		file_finish(ctx, slot, -EINVAL);
		return;
	}
	file_go(f, ctx, slot);
}

static void file_refused(struct backstore *bs, struct bs_ctx *ctx, struct bs_slot *slot, int err)
{
	struct bs_file *f = to_file(bs);
	struct bs_io *io = slot->io;

	if ((err == -EINVAL || err == -EOPNOTSUPP) && slot->stage == BS_SLOT_RW &&
	    io->op == BS_OP_WRITE && slot->cb.aio_rw_flags) {
		/* Kernels before 4.13 have no per-request flags in an iocb. */
		if (file_set_flag(&f->no_rwf_dsync))
			log_warnx("%s: %s: the kernel refuses RWF_DSYNC in aio (%s); FUA writes "
				  "are followed by fdatasync",
				  __func__, bs->name, strerror(-err));
		file_prep_write(f, slot, io);
		file_go(f, ctx, slot);
		return;
	}
	if ((err == -EINVAL || err == -EOPNOTSUPP) && slot->stage == BS_SLOT_SYNC) {
		/* IOCB_CMD_FDSYNC came with 4.18. */
		if (file_set_flag(&f->no_aio_fdsync))
			log_warnx("%s: %s: the kernel refuses aio fdsync (%s); flushes are "
				  "synchronous",
				  __func__, bs->name, strerror(-err));
		file_sync_step(f, ctx, slot);
		return;
	}
	log_warnx("%s: %s: io_submit: %s", __func__, bs->name, strerror(-err));
	file_finish(ctx, slot, err);
}

static void file_event(struct backstore *bs, struct bs_ctx *ctx, struct bs_slot *slot, long res)
{
	struct bs_file *f = to_file(bs);
	struct bs_io *io = slot->io;

	if (res < 0)
		log_warnx("%s: %s: op %d offset %llu len %zu: %s", __func__, bs->name, (int)io->op,
			  (unsigned long long)io->offset, io->len, strerror((int)-res));
	switch (slot->stage) {
	case BS_SLOT_RW:
		file_finish(ctx, slot, res);
		break;
	case BS_SLOT_FUA_WRITE:
		if (res < 0 || (size_t)res != io->len) {
			file_finish(ctx, slot, res);
			break;
		}
		slot->saved_res = res;
		file_sync_step(f, ctx, slot);
		break;
	case BS_SLOT_SYNC:
		if (res == 0 && io->op == BS_OP_WRITE)
			res = slot->saved_res;
		file_finish(ctx, slot, res);
		break;
	default:
		log_warnx("%s: %s: slot in unknown stage %d", __func__, bs->name, slot->stage);
		file_finish(ctx, slot, -EIO);
		break;
	}
}

static void file_close(struct backstore *bs)
{
	struct bs_file *f = to_file(bs);

	if (close(f->fd) < 0)
		log_warn("%s: %s: close", __func__, bs->name);
	free(f);
}

static void *file_map(struct backstore *bs, uint64_t offset, size_t len)
{
	/* File data is not in our memory; callers read it with bs_submit(). */
	return NULL;
}

static int file_discard(struct backstore *bs, uint64_t offset, uint64_t len)
{
	struct bs_file *f = to_file(bs);
	int ret;

	if (f->blkdev) {
		uint64_t range[2] = {offset, len};

		ret = ioctl(f->fd, BLKDISCARD, range);
	} else {
		/* Keep the size: a discard must not shorten the LUN. */
		ret = fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
				(off_t)len);
	}
	if (ret < 0) {
		ret = -errno;
		log_warn("%s: %s: %llu+%llu", __func__, bs->name, (unsigned long long)offset,
			 (unsigned long long)len);
		return ret;
	}
	return 0;
}

static int file_lba_status(struct backstore *bs, uint64_t offset, uint64_t len, int *mapped,
			   uint64_t *run)
{
	struct bs_file *f = to_file(bs);
	off_t data, hole;

	*mapped = 1;
	*run = len;
	/* A block device says nothing about its allocation through lseek. */
	if (f->blkdev)
		return 0;
	data = lseek(f->fd, (off_t)offset, SEEK_DATA);
	if (data < 0) {
		if (errno == ENXIO) {
			/* No data from offset to the end of the file. */
			*mapped = 0;
			return 0;
		}
		/* A filesystem without SEEK_DATA: everything counts as data. */
		return 0;
	}
	if ((uint64_t)data > offset) {
		*mapped = 0;
		if ((uint64_t)data - offset < len)
			*run = (uint64_t)data - offset;
		return 0;
	}
	hole = lseek(f->fd, (off_t)offset, SEEK_HOLE);
	if (hole > (off_t)offset && (uint64_t)hole - offset < len)
		*run = (uint64_t)hole - offset;
	return 0;
}

static int file_dev_size(struct bs_file *f, const char *name, uint64_t *out)
{
	if (ioctl(f->fd, BLKGETSIZE64, out) < 0) {
		int ret = -errno;

		log_warn("%s: %s: BLKGETSIZE64", __func__, name);
		return ret;
	}
	return 0;
}

static int file_resize(struct backstore *bs, uint64_t new_size)
{
	struct bs_file *f = to_file(bs);
	struct stat st;
	uint64_t dev;
	int ret;

	if (f->blkdev) {
		/* The device itself must have grown (e.g. an extended LV). */
		ret = file_dev_size(f, bs->name, &dev);
		if (ret < 0)
			return ret;
		if (new_size > dev) {
			log_warnx("%s: %s: %llu bytes exceed the device's %llu", __func__, bs->name,
				  (unsigned long long)new_size, (unsigned long long)dev);
			return -ENOSPC;
		}
	} else {
		if (fstat(f->fd, &st) < 0) {
			ret = -errno;
			log_warn("%s: %s: fstat", __func__, bs->name);
			return ret;
		}
		if ((uint64_t)st.st_size < new_size && ftruncate(f->fd, (off_t)new_size) < 0) {
			ret = -errno;
			log_warn("%s: %s: ftruncate to %llu", __func__, bs->name,
				 (unsigned long long)new_size);
			return ret;
		}
	}
	bs_size_store(bs, new_size);
	return 0;
}

static const struct bs_ops bs_file_ops = {
	.start = file_start,
	.event = file_event,
	.refused = file_refused,
	.close = file_close,
	.map = file_map,
	.discard = file_discard,
	.lba_status = file_lba_status,
	.resize = file_resize,
};

/* Open O_DIRECT; a filesystem that refuses it (tmpfs before 6.6, some FUSE) gets buffered
 * I/O, which is still correct because FUA and flushes sync explicitly. */
static int file_open_fd(const struct hf_backstore *cfg, int create, int *direct)
{
	int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0);
	int fd;

	fd = open(cfg->path, flags | O_DIRECT, 0600);
	if (fd >= 0) {
		*direct = 1;
		return fd;
	}
	if (errno != EINVAL) {
		int ret = -errno;

		log_warn("%s: %s: open %s", __func__, cfg->name, cfg->path);
		return ret;
	}
	fd = open(cfg->path, flags, 0600);
	if (fd < 0) {
		int ret = -errno;

		log_warn("%s: %s: open %s", __func__, cfg->name, cfg->path);
		return ret;
	}
	log_warnx("%s: %s: %s refuses O_DIRECT; using buffered I/O", __func__, cfg->name,
		  cfg->path);
	*direct = 0;
	return fd;
}

/* A block device: its own size, and a logical block no larger than the LUN's, or O_DIRECT
 * I/O of one LUN block would be refused. */
static int file_setup_blkdev(struct bs_file *f, const struct hf_backstore *cfg, uint64_t *size)
{
	int lbs = 0;
	int ret;

	f->blkdev = 1;
	ret = file_dev_size(f, cfg->name, size);
	if (ret < 0)
		return ret;
	if (ioctl(f->fd, BLKSSZGET, &lbs) == 0 && (uint32_t)lbs > cfg->block_size) {
		log_warnx("%s: %s: %s has %d-byte sectors, larger than the LUN's %u", __func__,
			  cfg->name, cfg->path, lbs, cfg->block_size);
		return -EINVAL;
	}
	if (cfg->size && cfg->size != *size)
		log_info("%s: %s: %s is %llu bytes; the configured %llu is ignored", __func__,
			 cfg->name, cfg->path, (unsigned long long)*size,
			 (unsigned long long)cfg->size);
	return 0;
}

/* A regular file: extend it sparsely to the configured size. A larger file keeps its size
 * (it may have been grown by a resize the config has not caught up with). */
static int file_setup_regular(struct bs_file *f, const struct hf_backstore *cfg,
			      const struct stat *st, uint64_t *size)
{
	int ret;

	if ((uint64_t)st->st_size < cfg->size) {
		if (ftruncate(f->fd, (off_t)cfg->size) < 0) {
			ret = -errno;
			log_warn("%s: %s: ftruncate %s to %llu", __func__, cfg->name, cfg->path,
				 (unsigned long long)cfg->size);
			return ret;
		}
		*size = cfg->size;
	} else {
		*size = (uint64_t)st->st_size;
	}
	return 0;
}

int bs_file_open(const struct hf_backstore *cfg, struct backstore **out)
{
	struct bs_file *f;
	struct stat st;
	uint64_t size = 0;
	int exists, ret;

	if (cfg->path[0] == '\0') {
		log_warnx("%s: %s: no path", __func__, cfg->name);
		return -EINVAL;
	}
	exists = stat(cfg->path, &st) == 0;
	if (exists && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		log_warnx("%s: %s: %s is neither a regular file nor a block device", __func__,
			  cfg->name, cfg->path);
		return -EINVAL;
	}
	if (!exists && cfg->size == 0) {
		log_warnx("%s: %s: %s does not exist and no size is set", __func__, cfg->name,
			  cfg->path);
		return -ENOENT;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->bs.ops = &bs_file_ops;
	/* Only a missing path is created, so a vanished device node never becomes a file. */
	ret = file_open_fd(cfg, !exists, &f->direct);
	if (ret < 0)
		goto err_free;
	f->fd = ret;
	if (fstat(f->fd, &st) < 0) {
		ret = -errno;
		log_warn("%s: %s: fstat", __func__, cfg->name);
		goto err_close;
	}
	if (S_ISBLK(st.st_mode))
		ret = file_setup_blkdev(f, cfg, &size);
	else
		ret = file_setup_regular(f, cfg, &st, &size);
	if (ret < 0)
		goto err_close;
	size = size / cfg->block_size * cfg->block_size;
	if (size == 0) {
		log_warnx("%s: %s: %s holds no whole block", __func__, cfg->name, cfg->path);
		ret = -EINVAL;
		goto err_close;
	}
	f->bs.discard_zeroes = !f->blkdev;
	bs_size_store(&f->bs, size);
	*out = &f->bs;
	return 0;

err_close:
	close(f->fd);
err_free:
	free(f);
	return ret;
}
