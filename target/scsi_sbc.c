/* The SBC-3 block command set. Each handler validates its CDB, then runs one or more
 * asynchronous backstore requests whose completions chain the command's stages; the state
 * of a command in flight lives in t->cmd_state (freed by scsi_task_release()).
 *
 * Atomicity. COMPARE AND WRITE, ORWRITE, WRITE AND VERIFY and WRITE ATOMIC read or check the
 * medium and then write it, and must not interleave with another write to the same blocks
 * from any worker thread. Every command that writes the medium therefore registers its LBA
 * range in a per-LUN range table for as long as its I/O is in flight: plain writes share a
 * range with each other, the read-modify-write commands hold theirs exclusively. A worker
 * cannot sleep, and a waiting command cannot be resumed on another worker's I/O context, so
 * a command that finds its range taken ends with BUSY status (sam5r21 5.3.1), which
 * initiators retry. The table is striped by LUN so that one stripe's mutex is held only for
 * a short scan. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cursor.h"
#include "lib/log.h"
#include "target/lun.h"
#include "target/scsi_cdb.h"
#include "target/scsi_cmd.h"
#include "target/scsi_sbc.h"
#include "target/scsi_sense.h"

int (*scsi_sbc_submit)(struct backstore *bs, struct bs_ctx *ctx, struct bs_io *io) = bs_submit;

/* WRITE SAME writes its pattern in chunks of at most this many bytes. */
#define SBC_WS_CHUNK (1u << 20)
/* GET LBA STATUS reports at most this many descriptors. */
#define SBC_LBA_STATUS_MAX_DESC 64

/* ------------------------------------------------------------------------------------------ */
/* LBA range table */

struct sbc_range {
	struct sbc_range *next;
	const struct scsi_lun *lun;
	uint64_t lba, n;
	bool excl;
};

#define SBC_STRIPES 64

static struct sbc_stripe {
	pthread_mutex_t mu;
	struct sbc_range *head;
} sbc_stripes[SBC_STRIPES] = {[0 ... SBC_STRIPES - 1] = {PTHREAD_MUTEX_INITIALIZER, NULL}};

static struct sbc_stripe *sbc_stripe_of(const struct scsi_lun *lun)
{
	uint64_t h = (uintptr_t)lun;

	h *= 0x9e3779b97f4a7c15ull;
	return &sbc_stripes[h >> 58];
}

/* Register [lba, lba + n) for lun; false when it conflicts with a range in flight. */
static bool sbc_range_get(struct sbc_range *r, const struct scsi_lun *lun, uint64_t lba, uint64_t n,
			  bool excl)
{
	struct sbc_stripe *s = sbc_stripe_of(lun);
	struct sbc_range *o;

	r->lun = lun;
	r->lba = lba;
	r->n = n;
	r->excl = excl;
	pthread_mutex_lock(&s->mu);
	for (o = s->head; o; o = o->next) {
		if (o->lun != lun || !(o->excl || excl))
			continue;
		if (o->lba < lba + n && lba < o->lba + o->n) {
			pthread_mutex_unlock(&s->mu);
			return false;
		}
	}
	r->next = s->head;
	s->head = r;
	pthread_mutex_unlock(&s->mu);
	return true;
}

static void sbc_range_put(struct sbc_range *r)
{
	struct sbc_stripe *s = sbc_stripe_of(r->lun);
	struct sbc_range **pp;

	pthread_mutex_lock(&s->mu);
	for (pp = &s->head; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------------------------------ */
/* Commands in flight */

struct sbc_cmd;
typedef void (*sbc_step_fn)(struct sbc_cmd *c, long res);

struct sbc_cmd {
	struct scsi_task *t;
	struct scsi_cdb cdb;
	struct backstore *bs;
	uint32_t bsz;	       /* logical block size */
	uint64_t off;	       /* byte offset of the command's range */
	size_t len;	       /* bytes of the command's range this command transfers */
	unsigned wflags;       /* BS_F_* for its writes */
	uint8_t *buf;	       /* scratch from bs_buf_alloc(), ours until handed to in_alloc */
	const uint8_t *medium; /* what a read stage produced: buf, or the store's memory */
	uint64_t pos, end;     /* WRITE SAME progress, bytes */
	size_t chunk;	       /* WRITE SAME bytes per request */
	struct bs_io io;
	struct iovec iov;
	sbc_step_fn step;
	struct sbc_range range;
	bool locked;
};

static struct sbc_cmd *sbc_cmd_new(struct scsi_task *t, const struct scsi_cdb *cdb)
{
	struct sbc_cmd *c = calloc(1, sizeof(*c));

	if (!c) {
		/* sam5r21 5.3.1: out of resources for this command; the initiator retries. */
		scsi_task_status(t, SCSI_STATUS_TASK_SET_FULL);
		return NULL;
	}
	c->t = t;
	c->cdb = *cdb;
	c->bs = scsi_lun_bs(t->lun);
	c->bsz = scsi_lun_block_size(t->lun);
	free(t->cmd_state);
	t->cmd_state = c;
	return c;
}

/* Release what the command holds; the struct itself goes with scsi_task_release(). */
static void sbc_cmd_end(struct sbc_cmd *c)
{
	if (c->locked) {
		sbc_range_put(&c->range);
		c->locked = false;
	}
	if (c->buf) {
		bs_buf_free(c->buf);
		c->buf = NULL;
	}
}

static void sbc_good(struct sbc_cmd *c)
{
	sbc_cmd_end(c);
	scsi_task_good(c->t);
}

static void sbc_fail(struct sbc_cmd *c, const struct scsi_sense *s)
{
	sbc_cmd_end(c);
	scsi_task_check(c->t, s);
}

static void sbc_status(struct sbc_cmd *c, uint8_t status)
{
	sbc_cmd_end(c);
	scsi_task_status(c->t, status);
}

static bool sbc_lock(struct sbc_cmd *c, uint64_t lba, uint64_t n, bool excl)
{
	if (!sbc_range_get(&c->range, c->t->lun, lba, n, excl)) {
		sbc_status(c, SCSI_STATUS_BUSY);
		return false;
	}
	c->locked = true;
	return true;
}

/* Between the stages of a multi-stage command: a task aborted by task management stops
 * here, before it touches the medium again. */
static bool sbc_aborted(struct sbc_cmd *c)
{
	if (!c->t->aborted)
		return false;
	sbc_status(c, SCSI_STATUS_TASK_ABORTED);
	return true;
}

static const struct scsi_sense *sbc_io_sense(enum bs_op op, long res)
{
	if (res == -ENOSPC)
		return &SENSE_SPACE_ALLOC_FAILED;
	return op == BS_OP_READ ? &SENSE_READ_ERROR : &SENSE_WRITE_ERROR;
}

static void sbc_io_done(struct bs_io *io, long res)
{
	struct sbc_cmd *c = io->priv;

	c->t->cancel = NULL;
	/* A short transfer is an error: blocks are read and written whole. */
	if (res >= 0 && io->op != BS_OP_FLUSH && (size_t)res != io->len)
		res = -EIO;
	if (res < 0)
		log_warnx("%s: %s: op %d offset %llu len %zu: %s", __func__, bs_name(c->bs),
			  (int)io->op, (unsigned long long)io->offset, io->len,
			  strerror((int)-res));
	c->step(c, res);
}

/* Task management takes back a request that has not reached the medium yet. */
static int sbc_cancel(struct scsi_task *t)
{
	struct sbc_cmd *c = t->cmd_state;
	int rc = bs_cancel(t->ioctx, &c->io);

	if (rc < 0)
		return rc;
	t->cancel = NULL;
	sbc_status(c, SCSI_STATUS_TASK_ABORTED);
	return 0;
}

/* Start one request; step runs on completion (possibly before this returns). After this
 * returns the command may be finished and c freed, so callers touch nothing afterwards. */
static void sbc_io(struct sbc_cmd *c, enum bs_op op, unsigned flags, uint64_t off, void *buf,
		   size_t len, sbc_step_fn step)
{
	int rc;

	memset(&c->io, 0, sizeof(c->io));
	c->iov.iov_base = buf;
	c->iov.iov_len = len;
	c->io.op = op;
	c->io.flags = flags;
	c->io.offset = off;
	c->io.iov = len ? &c->iov : NULL;
	c->io.iovcnt = len ? 1 : 0;
	c->io.len = len;
	c->io.done = sbc_io_done;
	c->io.priv = c;
	c->step = step;
	c->t->cancel = sbc_cancel;
	rc = scsi_sbc_submit(c->bs, c->t->ioctx, &c->io);
	if (rc < 0) {
		c->t->cancel = NULL;
		log_warnx("%s: %s: submit: %s", __func__, bs_name(c->bs), strerror(-rc));
		sbc_fail(c, sbc_io_sense(op, rc));
	}
}

/* Read the command's range [off, off + len) into c->medium: straight from the store's
 * memory when it lends it, else into a scratch buffer. */
static void sbc_read_medium(struct sbc_cmd *c, sbc_step_fn step)
{
	c->medium = bs_map(c->bs, c->off, c->len);
	if (c->medium) {
		step(c, (long)c->len);
		return;
	}
	c->buf = bs_buf_alloc(c->len);
	if (!c->buf) {
		sbc_status(c, SCSI_STATUS_TASK_SET_FULL);
		return;
	}
	c->medium = c->buf;
	sbc_io(c, BS_OP_READ, 0, c->off, c->buf, c->len, step);
}

/* ------------------------------------------------------------------------------------------ */
/* Validation shared by the handlers */

static bool sbc_decode(struct scsi_task *t, struct scsi_cdb *cdb)
{
	if (scsi_cdb_decode(t->cdb, t->cdb_len, cdb) < 0) {
		scsi_task_check(t, &SENSE_INVALID_FIELD_IN_CDB);
		return false;
	}
	return true;
}

/* sbc3r36 4.5: a command addressing a block past the last one (or whose range ends past it)
 * fails with LOGICAL BLOCK ADDRESS OUT OF RANGE. */
static bool sbc_range_ok(struct scsi_task *t, uint64_t lba, uint64_t n)
{
	uint64_t cap = scsi_lun_nblocks(t->lun);

	if (lba > cap || n > cap - lba) {
		scsi_task_check(t, &SENSE_LBA_OUT_OF_RANGE);
		return false;
	}
	return true;
}

/* Byte offset of the TRANSFER LENGTH field, for the sense field pointer. */
static uint16_t sbc_len_field(const struct scsi_cdb *cdb)
{
	switch (cdb->len) {
	case 6:
		return 4;
	case 10:
		return 7;
	case 12:
		return 6;
	default:
		return 10;
	}
}

/* The checks of every READ/WRITE-like command: no protection information (the LUN has
 * PROTECT=0 in its standard INQUIRY data, so sbc3r36 4.22.2 makes a nonzero xxPROTECT an
 * invalid field), the range, and the Block Limits MAXIMUM TRANSFER LENGTH (sbc3r36 6.5.3). */
static bool sbc_rw_checks(struct scsi_task *t, const struct scsi_cdb *cdb)
{
	uint32_t bsz = scsi_lun_block_size(t->lun);

	if (cdb->protect) {
		scsi_task_check_cdb_field(t, 1, 7);
		return false;
	}
	if (cdb->xfer_len > SBC_MAX_XFER_BLOCKS(bsz)) {
		scsi_task_check_cdb_field(t, sbc_len_field(cdb), -1);
		return false;
	}
	return sbc_range_ok(t, cdb->lba, cdb->xfer_len);
}

/* Writes are FUA when the initiator asks, and always when the write cache is disabled
 * (sbc3r36 6.4.5: WCE=0 means the device completes a write only once it is on the medium). */
static unsigned sbc_write_flags(struct scsi_task *t, const struct scsi_cdb *cdb)
{
	if ((cdb->flags & SCSI_CDB_FUA) || !scsi_lun_wce(t->lun))
		return BS_F_FUA;
	return 0;
}

/* Whole blocks of Data-Out actually received, at most want bytes. When the initiator sends
 * less than the CDB asks for, the blocks it did send are written and the transport reports
 * the shortfall as a residual (rfc7143 11.4.5.2; libiscsi's iSCSIResiduals expect GOOD). */
static size_t sbc_out_blocks(const struct scsi_task *t, uint32_t bsz, size_t want)
{
	size_t have = t->out ? t->out_len : 0;

	if (have > want)
		have = want;
	return have / bsz * bsz;
}

static ssize_t sbc_first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (a[i] != b[i])
			return (ssize_t)i;
	return -1;
}

static void sbc_miscompare(struct sbc_cmd *c, uint64_t offset)
{
	struct scsi_sense s = scsi_sense_info(&SENSE_MISCOMPARE, offset);

	sbc_fail(c, &s);
}

/* ------------------------------------------------------------------------------------------ */
/* READ(6/10/12/16): sbc3r36 5.15-5.18 */

static void sbc_read_done(struct sbc_cmd *c, long res)
{
	struct scsi_task *t = c->t;

	if (res < 0) {
		sbc_fail(c, &SENSE_READ_ERROR);
		return;
	}
	/* The buffer becomes the task's Data-In; scsi_task_release() frees it. */
	free(t->in_alloc);
	t->in_alloc = c->buf;
	t->in = c->buf;
	c->buf = NULL;
	sbc_good(c);
}

static void sbc_read(struct scsi_task *t)
{
	struct scsi_cdb cdb;
	struct sbc_cmd *c;
	uint32_t bsz;
	uint64_t bytes, want;
	void *p;

	if (!sbc_decode(t, &cdb) || !sbc_rw_checks(t, &cdb))
		return;
	/* sbc3r36 5.16: a TRANSFER LENGTH of zero reads nothing and is not an error. */
	if (cdb.xfer_len == 0) {
		scsi_task_good(t);
		return;
	}
	bsz = scsi_lun_block_size(t->lun);
	bytes = (uint64_t)cdb.xfer_len * bsz;
	/* The full length is what the command produced; the transport sends what fits in the
	 * initiator's buffer and reports the rest as overflow. */
	t->in_len = bytes;
	p = bs_map(scsi_lun_bs(t->lun), cdb.lba * bsz, bytes);
	if (p) {
		t->in = p;
		scsi_task_good(t);
		return;
	}
	/* Read only what can be sent. */
	want = (uint64_t)t->edtl + bsz - 1;
	want = want / bsz * bsz;
	if (want > bytes)
		want = bytes;
	if (want == 0) {
		scsi_task_good(t);
		return;
	}
	c = sbc_cmd_new(t, &cdb);
	if (!c)
		return;
	c->off = cdb.lba * bsz;
	c->len = want;
	c->buf = bs_buf_alloc(want);
	if (!c->buf) {
		sbc_status(c, SCSI_STATUS_TASK_SET_FULL);
		return;
	}
	sbc_io(c, BS_OP_READ, 0, c->off, c->buf, c->len, sbc_read_done);
}

/* ------------------------------------------------------------------------------------------ */
/* WRITE(6/10/12/16): sbc3r36 5.43-5.46; WRITE ATOMIC(16): sbc4r15 5.48 */

static void sbc_write_done(struct sbc_cmd *c, long res)
{
	if (res < 0) {
		sbc_fail(c, sbc_io_sense(BS_OP_WRITE, res));
		return;
	}
	sbc_good(c);
}

static void sbc_write_start(struct scsi_task *t, const struct scsi_cdb *cdb, bool excl)
{
	uint32_t bsz = scsi_lun_block_size(t->lun);
	uint64_t bytes = (uint64_t)cdb->xfer_len * bsz;
	struct sbc_cmd *c;
	size_t len;

	t->out_wanted = bytes;
	len = sbc_out_blocks(t, bsz, bytes);
	/* sbc3r36 5.44: a TRANSFER LENGTH of zero writes nothing and is not an error. */
	if (len == 0) {
		scsi_task_good(t);
		return;
	}
	c = sbc_cmd_new(t, cdb);
	if (!c)
		return;
	c->off = cdb->lba * bsz;
	c->len = len;
	if (!sbc_lock(c, cdb->lba, len / bsz, excl))
		return;
	sbc_io(c, BS_OP_WRITE, sbc_write_flags(t, cdb), c->off, t->out, len, sbc_write_done);
}

static void sbc_write(struct scsi_task *t)
{
	struct scsi_cdb cdb;

	if (!sbc_decode(t, &cdb) || !sbc_rw_checks(t, &cdb))
		return;
	sbc_write_start(t, &cdb, false);
}

static void sbc_write_atomic16(struct scsi_task *t)
{
	uint32_t bsz = scsi_lun_block_size(t->lun);
	struct scsi_cdb cdb;
	struct cursor cur;
	uint16_t boundary = 0;

	if (!sbc_decode(t, &cdb))
		return;
	cur_init(&cur, t->cdb, t->cdb_len);
	if (cur_seek(&cur, 10) == 0)
		cur_be16(&cur, &boundary);
	/* sbc4r15 5.48: an ATOMIC BOUNDARY the device does not support, a transfer longer
	 * than MAXIMUM ATOMIC TRANSFER LENGTH, an LBA off the ATOMIC ALIGNMENT or a length off
	 * the ATOMIC TRANSFER LENGTH GRANULARITY are invalid fields. */
	if (boundary > SBC_ATOMIC_MAX_BOUNDARY) {
		scsi_task_check_cdb_field(t, 10, -1);
		return;
	}
	if (cdb.xfer_len > SBC_ATOMIC_MAX_BLOCKS(bsz) ||
	    cdb.xfer_len % SBC_ATOMIC_GRANULARITY(bsz)) {
		scsi_task_check_cdb_field(t, 12, -1);
		return;
	}
	if (cdb.lba % SBC_ATOMIC_ALIGNMENT(bsz)) {
		scsi_task_check_cdb_field(t, 2, -1);
		return;
	}
	/* The atomic limits are CDB field checks, made before the range like the transfer
	 * length limit of sbc_rw_checks(). */
	if (!sbc_rw_checks(t, &cdb))
		return;
	/* Exclusive: no other write may land inside an atomic one. A write of one physical
	 * block is a single request the medium writes whole. */
	sbc_write_start(t, &cdb, true);
}

/* ------------------------------------------------------------------------------------------ */
/* VERIFY(10/12/16): sbc3r36 5.34-5.36 */

static void sbc_verify_done(struct sbc_cmd *c, long res)
{
	struct scsi_task *t = c->t;
	ssize_t d;

	if (res < 0) {
		sbc_fail(c, &SENSE_READ_ERROR);
		return;
	}
	switch (c->cdb.bytchk) {
	case 0:
		/* Medium verification only: the blocks were readable. */
		break;
	case 1:
		d = sbc_first_diff(t->out, c->medium, c->len);
		if (d >= 0) {
			/* sbc3r36 5.34: INFORMATION is the offset into the Data-Out buffer of
			 * the first byte that differs. */
			sbc_miscompare(c, (uint64_t)d);
			return;
		}
		break;
	case 3:
		/* One block of Data-Out compared with every block of the range. */
		for (size_t off = 0; off < c->len; off += c->bsz) {
			d = sbc_first_diff(t->out, c->medium + off, c->bsz);
			if (d >= 0) {
				sbc_miscompare(c, off + (uint64_t)d);
				return;
			}
		}
		break;
	default:
		sbc_fail(c, &SENSE_INVALID_FIELD_IN_CDB);
		return;
	}
	sbc_good(c);
}

static void sbc_verify(struct scsi_task *t)
{
	uint32_t bsz = scsi_lun_block_size(t->lun);
	uint64_t bytes;
	struct scsi_cdb cdb;
	struct sbc_cmd *c;
	size_t len;

	if (!sbc_decode(t, &cdb) || !sbc_rw_checks(t, &cdb))
		return;
	bytes = (uint64_t)cdb.xfer_len * bsz;
	switch (cdb.bytchk) {
	case 0:
		len = bytes;
		break;
	case 1:
		t->out_wanted = bytes;
		len = sbc_out_blocks(t, bsz, bytes);
		break;
	case 3:
		/* sbc3r36 5.34, table 58: BYTCHK 11b sends a single block. */
		t->out_wanted = cdb.xfer_len ? bsz : 0;
		len = sbc_out_blocks(t, bsz, bsz) ? bytes : 0;
		break;
	default:
		/* BYTCHK 10b is reserved. */
		scsi_task_check_cdb_field(t, 1, 2);
		return;
	}
	/* sbc3r36 5.34: VERIFICATION LENGTH zero verifies nothing and is not an error. */
	if (cdb.xfer_len == 0 || len == 0) {
		scsi_task_good(t);
		return;
	}
	c = sbc_cmd_new(t, &cdb);
	if (!c)
		return;
	c->off = cdb.lba * bsz;
	c->len = len;
	sbc_read_medium(c, sbc_verify_done);
}

/* ------------------------------------------------------------------------------------------ */
/* WRITE AND VERIFY(10/12/16): sbc3r36 5.47-5.49 */

static void sbc_wv_verified(struct sbc_cmd *c, long res)
{
	ssize_t d;

	if (res < 0) {
		sbc_fail(c, &SENSE_READ_ERROR);
		return;
	}
	if (c->cdb.bytchk) {
		d = sbc_first_diff(c->t->out, c->medium, c->len);
		if (d >= 0) {
			sbc_miscompare(c, (uint64_t)d);
			return;
		}
	}
	sbc_good(c);
}

static void sbc_wv_written(struct sbc_cmd *c, long res)
{
	if (res < 0) {
		sbc_fail(c, sbc_io_sense(BS_OP_WRITE, res));
		return;
	}
	if (sbc_aborted(c))
		return;
	sbc_read_medium(c, sbc_wv_verified);
}

static void sbc_write_verify(struct scsi_task *t)
{
	uint32_t bsz = scsi_lun_block_size(t->lun);
	uint64_t bytes;
	struct scsi_cdb cdb;
	struct sbc_cmd *c;
	size_t len;

	if (!sbc_decode(t, &cdb) || !sbc_rw_checks(t, &cdb))
		return;
	/* sbc3r36 5.47: BYTCHK 0 (medium verification) and 1 (byte compare); others are
	 * reserved. */
	if (cdb.bytchk > 1) {
		scsi_task_check_cdb_field(t, 1, 2);
		return;
	}
	bytes = (uint64_t)cdb.xfer_len * bsz;
	t->out_wanted = bytes;
	len = sbc_out_blocks(t, bsz, bytes);
	if (len == 0) {
		scsi_task_good(t);
		return;
	}
	c = sbc_cmd_new(t, &cdb);
	if (!c)
		return;
	c->off = cdb.lba * bsz;
	c->len = len;
	if (!sbc_lock(c, cdb.lba, len / bsz, true))
		return;
	/* The verify must see the medium, not a cache: the write is FUA. */
	sbc_io(c, BS_OP_WRITE, BS_F_FUA, c->off, t->out, len, sbc_wv_written);
}

/* ------------------------------------------------------------------------------------------ */
/* COMPARE AND WRITE: sbc3r36 5.2 */

static void sbc_caw_compared(struct sbc_cmd *c, long res)
{
	ssize_t d;

	if (res < 0) {
		sbc_fail(c, &SENSE_READ_ERROR);
		return;
	}
	d = sbc_first_diff(c->t->out, c->medium, c->len);
	if (d >= 0) {
		/* sbc3r36 5.2: MISCOMPARE DURING VERIFY OPERATION, INFORMATION = offset of the
		 * first differing byte in the verify half of the Data-Out buffer. */
		sbc_miscompare(c, (uint64_t)d);
		return;
	}
	if (sbc_aborted(c))
		return;
	/* The scratch buffer is not needed for the write half. */
	if (c->buf) {
		bs_buf_free(c->buf);
		c->buf = NULL;
	}
	sbc_io(c, BS_OP_WRITE, c->wflags, c->off, c->t->out + c->len, c->len, sbc_write_done);
}

static void sbc_compare_and_write(struct scsi_task *t)
{
	uint32_t bsz = scsi_lun_block_size(t->lun);
	struct scsi_cdb cdb;
	struct sbc_cmd *c;
	uint64_t bytes;

	if (!sbc_decode(t, &cdb))
		return;
	if (cdb.protect) {
		scsi_task_check_cdb_field(t, 1, 7);
		return;
	}
	/* sbc3r36 5.2: more blocks than MAXIMUM COMPARE AND WRITE LENGTH is an invalid field. */
	if (cdb.xfer_len > SBC_MAX_CAW_BLOCKS) {
		scsi_task_check_cdb_field(t, 13, -1);
		return;
	}
	if (!sbc_range_ok(t, cdb.lba, cdb.xfer_len))
		return;
	bytes = (uint64_t)cdb.xfer_len * bsz;
	t->out_wanted = 2 * bytes;
	/* sbc3r36 5.2: NUMBER OF LOGICAL BLOCKS zero compares and writes nothing. Data-Out
	 * sent with it is not a zero-length command: the count was truncated (a byte cannot
	 * say 256) or mistaken, and is an invalid field like any other mismatch below. */
	if (cdb.xfer_len == 0) {
		if (t->out && t->out_len) {
			scsi_task_check_cdb_field(t, 13, -1);
			return;
		}
		scsi_task_good(t);
		return;
	}
	/* The Data-Out buffer must hold exactly the verify and the write instances; a
	 * command with any other amount cannot be carried out as a unit. */
	if (!t->out || t->out_len != 2 * bytes) {
		scsi_task_check_cdb_field(t, 13, -1);
		return;
	}
	c = sbc_cmd_new(t, &cdb);
	if (!c)
		return;
	c->off = cdb.lba * bsz;
	c->len = bytes;
	c->wflags = sbc_write_flags(t, &cdb);
	if (!sbc_lock(c, cdb.lba, cdb.xfer_len, true))
		return;
	sbc_read_medium(c, sbc_caw_compared);
}

/* ------------------------------------------------------------------------------------------ */
/* ORWRITE(16): sbc3r36 5.8 */

static void sbc_orwrite_read(struct sbc_cmd *c, long res)
{
	const uint8_t *src = c->t->out;

	if (res < 0) {
		sbc_fail(c, &SENSE_READ_ERROR);
		return;
	}
	if (sbc_aborted(c))
		return;
	if (!c->buf) {
		/* The store lent its memory; OR into a copy so the medium changes only
		 * through the write. */
		c->buf = bs_buf_alloc(c->len);
		if (!c->buf) {
			sbc_status(c, SCSI_STATUS_TASK_SET_FULL);
			return;
		}
		memcpy(c->buf, c->medium, c->len);
	}
	for (size_t i = 0; i < c->len; i++)
		c->buf[i] |= src[i];
	sbc_io(c, BS_OP_WRITE, c->wflags, c->off, c->buf, c->len, sbc_write_done);
}

static void sbc_orwrite(struct scsi_task *t)
{
	uint32_t bsz = scsi_lun_block_size(t->lun);
	struct scsi_cdb cdb;
	struct sbc_cmd *c;
	uint64_t bytes;
	size_t len;

	if (!sbc_decode(t, &cdb) || !sbc_rw_checks(t, &cdb))
		return;
	bytes = (uint64_t)cdb.xfer_len * bsz;
	t->out_wanted = bytes;
	len = sbc_out_blocks(t, bsz, bytes);
	if (len == 0) {
		scsi_task_good(t);
		return;
	}
	c = sbc_cmd_new(t, &cdb);
	if (!c)
		return;
	c->off = cdb.lba * bsz;
	c->len = len;
	c->wflags = sbc_write_flags(t, &cdb);
	if (!sbc_lock(c, cdb.lba, len / bsz, true))
		return;
	sbc_read_medium(c, sbc_orwrite_read);
}

/* ------------------------------------------------------------------------------------------ */
/* SYNCHRONIZE CACHE(10/16): sbc3r36 5.26, 5.27 */

struct sbc_bg_flush {
	struct bs_io io;
	char name[HF_NAME_MAX];
};

static void sbc_bg_flush_done(struct bs_io *io, long res)
{
	struct sbc_bg_flush *f = io->priv;

	if (res < 0)
		log_warnx("%s: %s: %s", __func__, f->name, strerror((int)-res));
	free(f);
}

static void sbc_flush_done(struct sbc_cmd *c, long res)
{
	if (res < 0) {
		sbc_fail(c, &SENSE_WRITE_ERROR);
		return;
	}
	sbc_good(c);
}

/* Both the range and the whole cache: the store can only flush everything. */
static void sbc_sync_cache(struct scsi_task *t)
{
	struct scsi_cdb cdb;
	struct sbc_cmd *c;
	struct sbc_bg_flush *f;

	if (!sbc_decode(t, &cdb))
		return;
	/* sbc3r36 5.26: NUMBER OF LOGICAL BLOCKS zero means "to the last block". */
	if (!sbc_range_ok(t, cdb.lba, cdb.xfer_len))
		return;
	if (cdb.flags & SCSI_CDB_IMMED) {
		/* IMMED: status once the CDB is validated; the flush runs on by itself. */
		f = calloc(1, sizeof(*f));
		if (f) {
			snprintf(f->name, sizeof(f->name), "%s", bs_name(scsi_lun_bs(t->lun)));
			f->io.op = BS_OP_FLUSH;
			f->io.done = sbc_bg_flush_done;
			f->io.priv = f;
			if (scsi_sbc_submit(scsi_lun_bs(t->lun), t->ioctx, &f->io) < 0)
				free(f);
		}
		scsi_task_good(t);
		return;
	}
	c = sbc_cmd_new(t, &cdb);
	if (!c)
		return;
	sbc_io(c, BS_OP_FLUSH, 0, 0, NULL, 0, sbc_flush_done);
}

/* ------------------------------------------------------------------------------------------ */
/* READ CAPACITY(10/16): sbc3r36 5.19, 5.20 */

static void sbc_read_capacity10(struct scsi_task *t)
{
	uint64_t last = scsi_lun_nblocks(t->lun) - 1;
	struct scsi_cdb cdb;
	uint8_t *p;

	if (!sbc_decode(t, &cdb))
		return;
	/* sbc3r36 5.19: with PMI zero, the LBA field must be zero. */
	if (!(cdb.flags & SCSI_CDB_PMI) && cdb.lba) {
		scsi_task_check_cdb_field(t, 2, -1);
		return;
	}
	p = scsi_task_alloc_in(t, 8);
	if (!p) {
		scsi_task_status(t, SCSI_STATUS_TASK_SET_FULL);
		return;
	}
	/* A capacity READ CAPACITY(10) cannot express reads as FFFFFFFFh, telling the
	 * initiator to use READ CAPACITY(16). */
	put_be32(p, last > 0xfffffffeull ? 0xffffffffu : (uint32_t)last);
	put_be32(p + 4, scsi_lun_block_size(t->lun));
	t->in_len = 8;
	scsi_task_good(t);
}

static unsigned sbc_ilog2(uint32_t v)
{
	unsigned r = 0;

	while (v > 1) {
		v >>= 1;
		r++;
	}
	return r;
}

static void sbc_read_capacity16(struct scsi_task *t)
{
	uint32_t bsz = scsi_lun_block_size(t->lun);
	struct scsi_cdb cdb;
	uint8_t *p;

	if (!sbc_decode(t, &cdb))
		return;
	p = scsi_task_alloc_in(t, 32);
	if (!p) {
		scsi_task_status(t, SCSI_STATUS_TASK_SET_FULL);
		return;
	}
	put_be64(p, scsi_lun_nblocks(t->lun) - 1);
	put_be32(p + 8, bsz);
	/* Byte 12: no protection. Byte 13: LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT. */
	if (bsz < SBC_PHYS_BLOCK_BYTES)
		p[13] = sbc_ilog2(SBC_PHYS_BLOCK_BYTES / bsz) & 0x0f;
	/* Byte 14: LBPME (thin provisioned, sbc3r36 4.7.3) and LBPRZ (unmapped blocks read
	 * zero); LOWEST ALIGNED LOGICAL BLOCK ADDRESS zero. */
	p[14] = 0x80 | (SBC_LBPRZ && bs_discard_zeroes(scsi_lun_bs(t->lun)) ? 0x40 : 0);
	t->in_len = cdb.alloc_len < 32 ? cdb.alloc_len : 32;
	scsi_task_good(t);
}

/* ------------------------------------------------------------------------------------------ */
/* GET LBA STATUS: sbc3r36 5.7 */

static void sbc_get_lba_status(struct scsi_task *t)
{
	struct backstore *bs = scsi_lun_bs(t->lun);
	uint64_t cap = scsi_lun_nblocks(t->lun);
	uint32_t bsz = scsi_lun_block_size(t->lun);
	struct scsi_cdb cdb;
	uint64_t lba, run, blocks;
	unsigned maxd, nd = 0;
	int mapped, rc;
	uint8_t *p, *d;

	if (!sbc_decode(t, &cdb))
		return;
	/* sbc3r36 5.7: a STARTING LOGICAL BLOCK ADDRESS past the last block is out of
	 * range. */
	if (cdb.lba >= cap) {
		scsi_task_check(t, &SENSE_LBA_OUT_OF_RANGE);
		return;
	}
	maxd = cdb.alloc_len >= 24 ? (cdb.alloc_len - 8) / 16 : 1;
	if (maxd > SBC_LBA_STATUS_MAX_DESC)
		maxd = SBC_LBA_STATUS_MAX_DESC;
	p = scsi_task_alloc_in(t, 8 + 16 * maxd);
	if (!p) {
		scsi_task_status(t, SCSI_STATUS_TASK_SET_FULL);
		return;
	}
	for (lba = cdb.lba; lba < cap && nd < maxd; lba += blocks) {
		rc = bs_lba_status(bs, lba * bsz, (cap - lba) * bsz, &mapped, &run);
		if (rc < 0) {
			scsi_task_check(t, &SENSE_READ_ERROR);
			return;
		}
		blocks = run / bsz;
		if (blocks == 0)
			blocks = 1;
		if (blocks > UINT32_MAX)
			blocks = UINT32_MAX;
		d = p + 8 + 16 * nd++;
		put_be64(d, lba);
		put_be32(d + 8, (uint32_t)blocks);
		/* PROVISIONING STATUS: 0 mapped, 1 deallocated. */
		d[12] = mapped ? 0x0 : 0x1;
	}
	put_be32(p, 4 + 16 * nd); /* PARAMETER DATA LENGTH: the bytes after this field */
	t->in_len = 8 + 16 * nd;
	if (t->in_len > cdb.alloc_len)
		t->in_len = cdb.alloc_len;
	scsi_task_good(t);
}

/* ------------------------------------------------------------------------------------------ */
/* UNMAP: sbc3r36 5.31 */

static void sbc_unmap(struct scsi_task *t)
{
	struct backstore *bs = scsi_lun_bs(t->lun);
	uint32_t bsz = scsi_lun_block_size(t->lun);
	uint64_t lo = UINT64_MAX, hi = 0, lba = 0;
	uint16_t data_len, bd_len;
	uint32_t n = 0;
	struct scsi_cdb cdb;
	struct sbc_range range;
	struct cursor cur;
	size_t avail;
	unsigned nd, i;
	int rc = 0;

	if (!sbc_decode(t, &cdb))
		return;
	if ((cdb.flags & SCSI_CDB_ANCHOR) && !SBC_ANC_SUP) {
		/* sbc3r36 5.31: ANCHOR without ANC_SUP is an invalid field. */
		scsi_task_check_cdb_field(t, 1, 0);
		return;
	}
	t->out_wanted = cdb.alloc_len;
	/* A PARAMETER LIST LENGTH of zero transfers nothing and is not an error. */
	if (cdb.alloc_len == 0) {
		scsi_task_good(t);
		return;
	}
	avail = t->out ? t->out_len : 0;
	if (avail > cdb.alloc_len)
		avail = cdb.alloc_len;
	/* sbc3r36 5.31.2: a list too short for its 8-byte header is a PARAMETER LIST LENGTH
	 * ERROR, and so is a header announcing more descriptor bytes than the list holds
	 * (a truncated list). */
	cur_init(&cur, t->out, avail);
	if (cur_be16(&cur, &data_len) || cur_be16(&cur, &bd_len) || cur_skip(&cur, 4) ||
	    (size_t)bd_len > cur_left(&cur)) {
		scsi_task_check(t, &SENSE_PARAM_LIST_LENGTH_ERROR);
		return;
	}
	/* A trailing partial descriptor is ignored (sbc3r36 5.31.2). */
	nd = bd_len / 16;
	if (nd > SBC_MAX_UNMAP_DESC) {
		scsi_task_check_param_field(t, 2, -1);
		return;
	}
	/* Validate every descriptor before unmapping anything, so that a bad list changes
	 * nothing. */
	for (i = 0; i < nd; i++) {
		cur_be64(&cur, &lba);
		cur_be32(&cur, &n);
		cur_skip(&cur, 4);
		if (n > SBC_MAX_UNMAP_LBAS) {
			scsi_task_check_param_field(t, 8 + 16 * i + 8, -1);
			return;
		}
		if (!sbc_range_ok(t, lba, n))
			return;
		if (n == 0)
			continue;
		if (lba < lo)
			lo = lba;
		if (lba + n > hi)
			hi = lba + n;
	}
	if (hi == 0) {
		scsi_task_good(t);
		return;
	}
	if (!sbc_range_get(&range, t->lun, lo, hi - lo, false)) {
		scsi_task_status(t, SCSI_STATUS_BUSY);
		return;
	}
	cur_init(&cur, t->out, avail);
	cur_skip(&cur, 8);
	for (i = 0; i < nd && rc == 0; i++) {
		cur_be64(&cur, &lba);
		cur_be32(&cur, &n);
		cur_skip(&cur, 4);
		if (n)
			rc = bs_discard(bs, lba * bsz, (uint64_t)n * bsz);
	}
	sbc_range_put(&range);
	if (rc < 0) {
		log_warnx("%s: %s: discard: %s", __func__, bs_name(bs), strerror(-rc));
		scsi_task_check(t, &SENSE_WRITE_ERROR);
		return;
	}
	scsi_task_good(t);
}

/* ------------------------------------------------------------------------------------------ */
/* WRITE SAME(10/16): sbc3r36 5.41, 5.42 */

static void sbc_ws_next(struct sbc_cmd *c);

static void sbc_ws_done(struct sbc_cmd *c, long res)
{
	if (res < 0) {
		sbc_fail(c, sbc_io_sense(BS_OP_WRITE, res));
		return;
	}
	c->pos += c->io.len;
	if (c->pos >= c->end) {
		sbc_good(c);
		return;
	}
	if (sbc_aborted(c))
		return;
	sbc_ws_next(c);
}

static void sbc_ws_next(struct sbc_cmd *c)
{
	size_t len = c->end - c->pos < c->chunk ? c->end - c->pos : c->chunk;

	sbc_io(c, BS_OP_WRITE, c->wflags, c->pos, c->buf, len, sbc_ws_done);
}

static bool sbc_all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void sbc_write_same(struct scsi_task *t)
{
	struct backstore *bs = scsi_lun_bs(t->lun);
	uint32_t bsz = scsi_lun_block_size(t->lun);
	struct scsi_cdb cdb;
	struct sbc_cmd *c;
	struct sbc_range range;
	uint64_t bytes, nblocks;
	bool ndob;
	int rc;

	if (!sbc_decode(t, &cdb))
		return;
	if (cdb.protect) {
		scsi_task_check_cdb_field(t, 1, 7);
		return;
	}
	/* sbc3r36 5.41: LBDATA and PBDATA are obsolete; the device does not support them. */
	if (cdb.flags & SCSI_CDB_PBDATA) {
		scsi_task_check_cdb_field(t, 1, 2);
		return;
	}
	if (cdb.flags & SCSI_CDB_LBDATA) {
		scsi_task_check_cdb_field(t, 1, 1);
		return;
	}
	if ((cdb.flags & SCSI_CDB_ANCHOR) && !SBC_ANC_SUP) {
		scsi_task_check_cdb_field(t, 1, 4);
		return;
	}
	if (!sbc_range_ok(t, cdb.lba, cdb.xfer_len))
		return;
	if (cdb.xfer_len == 0) {
		/* sbc3r36 5.41: NUMBER OF LOGICAL BLOCKS zero with WSNZ=1 is an invalid
		 * field; with WSNZ=0 it means every block from the LBA to the last one. */
		if (SBC_WSNZ) {
			scsi_task_check_cdb_field(t, sbc_len_field(&cdb), -1);
			return;
		}
		nblocks = scsi_lun_nblocks(t->lun) - cdb.lba;
	} else {
		nblocks = cdb.xfer_len;
	}
	/* More than MAXIMUM WRITE SAME LENGTH is an invalid field (sbc3r36 6.5.3), whether the
	 * count was given or implied by a zero. */
	if (nblocks > SBC_MAX_WS_BLOCKS(bsz)) {
		scsi_task_check_cdb_field(t, sbc_len_field(&cdb), -1);
		return;
	}
	ndob = cdb.flags & SCSI_CDB_NDOB;
	if (!ndob) {
		t->out_wanted = bsz;
		/* sbc3r36 5.41: the Data-Out buffer holds exactly one logical block. Less leaves
		 * nothing to replicate; more means the initiator and the device disagree on
		 * the block size or the command, and writing either guess could destroy data. */
		if (!t->out || t->out_len != bsz) {
			scsi_task_check_cdb_field(t, sbc_len_field(&cdb), -1);
			return;
		}
	}
	if (nblocks == 0) {
		/* Zero blocks from the last LBA + 1: nothing to write. */
		scsi_task_good(t);
		return;
	}
	bytes = nblocks * bsz;

	/* sbc3r36 4.7.3.4: with UNMAP set the blocks may be unmapped when that reads back
	 * as the pattern; LBPRZ=1 makes that exactly a zero pattern (or NDOB), on a store whose
	 * holes read back as zeros. Anything else is written. */
	if ((cdb.flags & SCSI_CDB_UNMAP) && bs_discard_zeroes(bs) &&
	    (ndob || sbc_all_zero(t->out, bsz))) {
		if (!sbc_range_get(&range, t->lun, cdb.lba, nblocks, false)) {
			scsi_task_status(t, SCSI_STATUS_BUSY);
			return;
		}
		rc = bs_discard(bs, cdb.lba * bsz, bytes);
		sbc_range_put(&range);
		if (rc < 0) {
			log_warnx("%s: %s: discard: %s", __func__, bs_name(bs), strerror(-rc));
			scsi_task_check(t, &SENSE_WRITE_ERROR);
			return;
		}
		scsi_task_good(t);
		return;
	}

	c = sbc_cmd_new(t, &cdb);
	if (!c)
		return;
	c->chunk = bytes < SBC_WS_CHUNK ? bytes : SBC_WS_CHUNK / bsz * bsz;
	c->buf = bs_buf_alloc(c->chunk);
	if (!c->buf) {
		sbc_status(c, SCSI_STATUS_TASK_SET_FULL);
		return;
	}
	if (ndob) {
		memset(c->buf, 0, c->chunk);
	} else {
		for (size_t off = 0; off < c->chunk; off += bsz)
			memcpy(c->buf + off, t->out, bsz);
	}
	c->pos = cdb.lba * bsz;
	c->end = c->pos + bytes;
	c->wflags = sbc_write_flags(t, &cdb);
	if (!sbc_lock(c, cdb.lba, nblocks, false))
		return;
	sbc_ws_next(c);
}

/* ------------------------------------------------------------------------------------------ */
/* PRE-FETCH(10/16): sbc3r36 5.9, 5.10 */

static void sbc_prefetch(struct scsi_task *t)
{
	struct scsi_cdb cdb;

	if (!sbc_decode(t, &cdb))
		return;
	if (!sbc_range_ok(t, cdb.lba, cdb.xfer_len))
		return;
	/* sbc3r36 5.9: CONDITION MET only when the blocks were placed in a cache large enough
	 * to hold them all. Holdfast keeps no read cache of its own (O_DIRECT files, memory
	 * stores), so the answer is GOOD, which libiscsi's Prefetch tests also require. */
	scsi_task_good(t);
}

/* ------------------------------------------------------------------------------------------ */
/* START STOP UNIT: sbc3r36 5.25 */

static void sbc_start_stop(struct scsi_task *t)
{
	struct scsi_cdb cdb;
	struct cursor cur;
	struct sbc_cmd *c;
	uint8_t b4 = 0;
	bool start, loej, no_flush;
	uint8_t pc;

	if (!sbc_decode(t, &cdb))
		return;
	cur_init(&cur, t->cdb, t->cdb_len);
	if (cur_seek(&cur, 4) == 0)
		cur_u8(&cur, &b4);
	pc = b4 >> 4;
	no_flush = b4 & 0x04;
	loej = b4 & 0x02;
	start = b4 & 0x01;
	/* The medium is not removable (RMB=0): ejecting it is an invalid request. */
	if (pc == 0 && loej && !start) {
		scsi_task_check_cdb_field(t, 4, 1);
		return;
	}
	/* Power conditions are accepted and ignored: the unit is always active. A stop
	 * without NO_FLUSH writes the cache to the medium first (sbc3r36 5.25). */
	if (pc != 0 || start || no_flush) {
		scsi_task_good(t);
		return;
	}
	c = sbc_cmd_new(t, &cdb);
	if (!c)
		return;
	sbc_io(c, BS_OP_FLUSH, 0, 0, NULL, 0, sbc_flush_done);
}

/* ------------------------------------------------------------------------------------------ */
/* READ DEFECT DATA(10/12): sbc3r36 5.13, 5.14 */

static void sbc_read_defect(struct scsi_task *t)
{
	struct scsi_cdb cdb;
	struct cursor cur;
	uint8_t req = 0, fmt;
	size_t hlen;
	uint8_t *p;

	if (!sbc_decode(t, &cdb))
		return;
	/* REQ_PLIST, REQ_GLIST and DEFECT LIST FORMAT: byte 2 in the 10-byte CDB, byte 1 in
	 * the 12-byte one. */
	cur_init(&cur, t->cdb, t->cdb_len);
	if (cur_seek(&cur, cdb.len == 10 ? 2 : 1) == 0)
		cur_u8(&cur, &req);
	fmt = req & 0x07;
	switch (fmt) {
	case 0x0: /* short block */
	case 0x3: /* long block */
	case 0x4: /* bytes from index */
	case 0x5: /* physical sector */
	case 0x6: /* vendor specific */
		break;
	default:
		scsi_task_check_cdb_field(t, cdb.len == 10 ? 2 : 1, 2);
		return;
	}
	hlen = cdb.len == 10 ? 4 : 8;
	p = scsi_task_alloc_in(t, hlen);
	if (!p) {
		scsi_task_status(t, SCSI_STATUS_TASK_SET_FULL);
		return;
	}
	/* The lists are empty: PLISTV/GLISTV echo what was asked, and the DEFECT LIST LENGTH
	 * (bytes 2-3, or 4-7 in the 12-byte form) is zero. */
	p[1] = (req & 0x18) | fmt;
	t->in_len = hlen < cdb.alloc_len ? hlen : cdb.alloc_len;
	scsi_task_good(t);
}

/* ------------------------------------------------------------------------------------------ */
/* The table */

#define CTL 0x04 /* CONTROL byte: NACA is the only bit the dispatcher evaluates */
#define RD  (SCSI_CMD_F_MEDIUM_READ)
#define WR  (SCSI_CMD_F_DATA_OUT | SCSI_CMD_F_MEDIUM_WRITE)
#define L8  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
#define L4  0xff, 0xff, 0xff, 0xff

const struct scsi_cmd_desc scsi_sbc_cmds[] = {
	{0x08, SCSI_NO_SA, "READ(6)", 6, {0x08, 0x1f, 0xff, 0xff, 0xff, CTL}, RD, sbc_read},
	{0x0a, SCSI_NO_SA, "WRITE(6)", 6, {0x0a, 0x1f, 0xff, 0xff, 0xff, CTL}, WR, sbc_write},
	{0x1b,
	 SCSI_NO_SA,
	 "START STOP UNIT",
	 6,
	 {0x1b, 0x01, 0x00, 0x0f, 0xf7, CTL},
	 0,
	 sbc_start_stop},
	{0x25,
	 SCSI_NO_SA,
	 "READ CAPACITY(10)",
	 10,
	 {0x25, 0x00, L4, 0x00, 0x00, 0x01, CTL},
	 SCSI_CMD_F_NO_CONFLICT,
	 sbc_read_capacity10},
	{0x28, SCSI_NO_SA, "READ(10)", 10, {0x28, 0xfc, L4, 0x1f, 0xff, 0xff, CTL}, RD, sbc_read},
	{0x2a, SCSI_NO_SA, "WRITE(10)", 10, {0x2a, 0xf8, L4, 0x1f, 0xff, 0xff, CTL}, WR, sbc_write},
	{0x2e,
	 SCSI_NO_SA,
	 "WRITE AND VERIFY(10)",
	 10,
	 {0x2e, 0xf6, L4, 0x1f, 0xff, 0xff, CTL},
	 WR | RD,
	 sbc_write_verify},
	{0x2f,
	 SCSI_NO_SA,
	 "VERIFY(10)",
	 10,
	 {0x2f, 0xf6, L4, 0x1f, 0xff, 0xff, CTL},
	 RD | SCSI_CMD_F_DATA_OUT,
	 sbc_verify},
	{0x34,
	 SCSI_NO_SA,
	 "PRE-FETCH(10)",
	 10,
	 {0x34, 0x02, L4, 0x1f, 0xff, 0xff, CTL},
	 RD,
	 sbc_prefetch},
	{0x35,
	 SCSI_NO_SA,
	 "SYNCHRONIZE CACHE(10)",
	 10,
	 {0x35, 0x02, L4, 0x1f, 0xff, 0xff, CTL},
	 SCSI_CMD_F_MEDIUM_WRITE,
	 sbc_sync_cache},
	{0x37,
	 SCSI_NO_SA,
	 "READ DEFECT DATA(10)",
	 10,
	 {0x37, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, CTL},
	 RD,
	 sbc_read_defect},
	{0x41,
	 SCSI_NO_SA,
	 "WRITE SAME(10)",
	 10,
	 {0x41, 0xfe, L4, 0x1f, 0xff, 0xff, CTL},
	 WR,
	 sbc_write_same},
	{0x42,
	 SCSI_NO_SA,
	 "UNMAP",
	 10,
	 {0x42, 0x01, 0x00, 0x00, 0x00, 0x00, 0x1f, 0xff, 0xff, CTL},
	 WR,
	 sbc_unmap},
	{0x88, SCSI_NO_SA, "READ(16)", 16, {0x88, 0xfc, L8, L4, 0x1f, CTL}, RD, sbc_read},
	{0x89,
	 SCSI_NO_SA,
	 "COMPARE AND WRITE",
	 16,
	 {0x89, 0xf8, L8, 0x00, 0x00, 0x00, 0xff, 0x1f, CTL},
	 WR | RD,
	 sbc_compare_and_write},
	{0x8a, SCSI_NO_SA, "WRITE(16)", 16, {0x8a, 0xf8, L8, L4, 0x1f, CTL}, WR, sbc_write},
	{0x8b,
	 SCSI_NO_SA,
	 "ORWRITE(16)",
	 16,
	 {0x8b, 0xf8, L8, L4, 0x1f, CTL},
	 WR | RD,
	 sbc_orwrite},
	{0x8e,
	 SCSI_NO_SA,
	 "WRITE AND VERIFY(16)",
	 16,
	 {0x8e, 0xf6, L8, L4, 0x1f, CTL},
	 WR | RD,
	 sbc_write_verify},
	{0x8f,
	 SCSI_NO_SA,
	 "VERIFY(16)",
	 16,
	 {0x8f, 0xf6, L8, L4, 0x1f, CTL},
	 RD | SCSI_CMD_F_DATA_OUT,
	 sbc_verify},
	{0x90, SCSI_NO_SA, "PRE-FETCH(16)", 16, {0x90, 0x02, L8, L4, 0x1f, CTL}, RD, sbc_prefetch},
	{0x91,
	 SCSI_NO_SA,
	 "SYNCHRONIZE CACHE(16)",
	 16,
	 {0x91, 0x02, L8, L4, 0x1f, CTL},
	 SCSI_CMD_F_MEDIUM_WRITE,
	 sbc_sync_cache},
	{0x93,
	 SCSI_NO_SA,
	 "WRITE SAME(16)",
	 16,
	 {0x93, 0xff, L8, L4, 0x1f, CTL},
	 WR,
	 sbc_write_same},
	{0x9c,
	 SCSI_NO_SA,
	 "WRITE ATOMIC(16)",
	 16,
	 {0x9c, 0xf8, L8, 0xff, 0xff, 0xff, 0xff, 0x1f, CTL},
	 WR,
	 sbc_write_atomic16},
	{0x9e,
	 0x10,
	 "READ CAPACITY(16)",
	 16,
	 {0x9e, 0x10, L8, L4, 0x00, CTL},
	 SCSI_CMD_F_NO_CONFLICT,
	 sbc_read_capacity16},
	{0x9e, 0x12, "GET LBA STATUS", 16, {0x9e, 0x12, L8, L4, 0x00, CTL}, RD, sbc_get_lba_status},
	{0xa8, SCSI_NO_SA, "READ(12)", 12, {0xa8, 0xfc, L4, L4, 0x1f, CTL}, RD, sbc_read},
	{0xaa, SCSI_NO_SA, "WRITE(12)", 12, {0xaa, 0xf8, L4, L4, 0x1f, CTL}, WR, sbc_write},
	{0xae,
	 SCSI_NO_SA,
	 "WRITE AND VERIFY(12)",
	 12,
	 {0xae, 0xf6, L4, L4, 0x1f, CTL},
	 WR | RD,
	 sbc_write_verify},
	{0xaf,
	 SCSI_NO_SA,
	 "VERIFY(12)",
	 12,
	 {0xaf, 0xf6, L4, L4, 0x1f, CTL},
	 RD | SCSI_CMD_F_DATA_OUT,
	 sbc_verify},
	{0xb7,
	 SCSI_NO_SA,
	 "READ DEFECT DATA(12)",
	 12,
	 {0xb7, 0x1f, 0x00, 0x00, 0x00, 0x00, L4, 0x00, CTL},
	 RD,
	 sbc_read_defect},
};

const unsigned scsi_sbc_ncmds = sizeof(scsi_sbc_cmds) / sizeof(scsi_sbc_cmds[0]);
