/* The copy manager: EXTENDED COPY (LID1) and RECEIVE COPY RESULTS.
 *
 * An EXTENDED COPY parameter list names its copy targets (CSCD descriptors) by the NAA
 * designator each LUN reports in its Device Identification VPD page, so any LUN of the
 * target the command arrived on can be a source or a destination. The whole list is
 * validated before any data moves; then each block-to-block segment is copied in chunks of
 * SCSI_XCOPY_CHUNK bytes, a read from the source's backstore followed by a write to the
 * destination's, all on the task's worker I/O context. Between chunks the copy checks the
 * task's aborted flag. A store that completes requests inline (memory) would otherwise
 * recurse once per chunk; the pump loop below turns those completions into iterations.
 *
 * The result of every copy whose LIST ID USAGE asks for it to be held is kept, per I_T
 * nexus, LUN and list identifier, in a small table that RECEIVE COPY RESULTS reads. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cursor.h"
#include "lib/log.h"
#include "target/lun.h"
#include "target/scsi_cdb.h"
#include "target/scsi_cmd.h"
#include "target/scsi_sense.h"
#include "target/scsi_xcopy.h"

/* spc4r37 6.4.5, 6.4.6: the descriptor type codes Holdfast implements. */
#define XC_SEG_BLOCK_TO_BLOCK  0x02
#define XC_CSCD_IDENTIFICATION 0xe4
#define XC_HEADER_LEN	       16
#define XC_CSCD_LEN	       32
#define XC_SEG_B2B_LEN	       28

/* spc4r37 6.20.1, table 248: RECEIVE COPY RESULTS service actions (LID1). */
enum {
	XC_RCR_COPY_STATUS = 0x00,
	XC_RCR_OPERATING_PARAMETERS = 0x03,
	XC_RCR_FAILED_SEGMENT_DETAILS = 0x04,
};

/* spc4r37 6.4.3.2: LIST ID USAGE 00b asks the copy manager to hold the results for
 * RECEIVE COPY RESULTS; the other values do not. */
#define XC_LIST_ID_USAGE_HOLD 0x0

struct xc_segment {
	struct scsi_lun *src, *dst;
	uint64_t src_off, dst_off, len; /* bytes */
};

enum xc_stage {
	XC_STAGE_START,
	XC_STAGE_READ,
	XC_STAGE_WRITE,
};

struct xc_cmd {
	struct scsi_task *t;
	struct xc_segment seg[SCSI_XCOPY_MAX_SEGMENT_DESCS];
	unsigned nseg, cur;
	uint64_t pos;	 /* bytes of the current segment copied */
	uint64_t copied; /* bytes of every segment copied */
	size_t chunk;	 /* bytes of the request in flight */
	uint8_t list_id;
	bool hold;
	uint8_t *buf;
	struct bs_io io;
	struct iovec iov;
	enum xc_stage stage;
	long res;
	bool inflight, in_submit;
};

/* ------------------------------------------------------------------------------------------ */
/* Held results */

#define XC_RESULTS 64

struct xc_result {
	bool used;
	uint64_t nexus_id;
	const struct scsi_lun *lun;
	uint8_t list_id;
	uint8_t status; /* COPY MANAGER STATUS: 01h done, 02h done with errors */
	uint16_t segments;
	uint64_t bytes;
	uint8_t cmd_status;
	struct scsi_sense sense;
	uint64_t seq;
};

static struct {
	pthread_mutex_t mu;
	struct xc_result r[XC_RESULTS];
	uint64_t seq;
} xc_results = {.mu = PTHREAD_MUTEX_INITIALIZER};

void scsi_xcopy_results_clear(void)
{
	pthread_mutex_lock(&xc_results.mu);
	memset(xc_results.r, 0, sizeof(xc_results.r));
	pthread_mutex_unlock(&xc_results.mu);
}

/* Keep a finished copy's result, replacing an older one with the same key, else the
 * oldest entry: the table is a cache, and spc4r37 6.20.2 lets the copy manager discard held
 * data when it runs out of room. */
static void xc_result_put(const struct xc_cmd *c, const struct scsi_sense *failure)
{
	const struct scsi_task *t = c->t;
	struct xc_result *slot = NULL;

	pthread_mutex_lock(&xc_results.mu);
	for (unsigned i = 0; i < XC_RESULTS; i++) {
		struct xc_result *r = &xc_results.r[i];

		if (r->used && r->nexus_id == t->nexus->id && r->lun == t->lun &&
		    r->list_id == c->list_id) {
			slot = r;
			break;
		}
		if (!slot || (slot->used && (!r->used || r->seq < slot->seq)))
			slot = r;
	}
	memset(slot, 0, sizeof(*slot));
	slot->used = true;
	slot->nexus_id = t->nexus->id;
	slot->lun = t->lun;
	slot->list_id = c->list_id;
	slot->status = failure ? 0x02 : 0x01;
	slot->segments = (uint16_t)(failure ? c->cur : c->nseg);
	slot->bytes = c->copied;
	if (failure) {
		slot->cmd_status = SCSI_STATUS_CHECK_CONDITION;
		slot->sense = *failure;
	}
	slot->seq = ++xc_results.seq;
	pthread_mutex_unlock(&xc_results.mu);
}

static bool xc_result_get(const struct scsi_task *t, uint8_t list_id, struct xc_result *out)
{
	bool found = false;

	pthread_mutex_lock(&xc_results.mu);
	for (unsigned i = 0; i < XC_RESULTS && !found; i++) {
		const struct xc_result *r = &xc_results.r[i];

		if (r->used && r->nexus_id == t->nexus->id && r->lun == t->lun &&
		    r->list_id == list_id) {
			*out = *r;
			found = true;
		}
	}
	pthread_mutex_unlock(&xc_results.mu);
	return found;
}

/* ------------------------------------------------------------------------------------------ */
/* Parameter list */

/* The LUN of the task's target whose NAA designator is d[0..len), or NULL. */
static struct scsi_lun *xc_find_lun(const struct scsi_task *t, const uint8_t *d, size_t len)
{
	const struct scsi_target_info *ti = t->target;

	if (len != 16)
		return NULL;
	for (size_t i = 0, n = scsi_target_nluns(ti); i < n; i++) {
		struct scsi_lun *l = scsi_lun_entry_dev(&ti->luns[i]);

		if (l && memcmp(scsi_lun_naa(l), d, 16) == 0)
			return l;
	}
	/* A task without target information (unit tests, internal use) can still copy
	 * within its own LUN. */
	if (!ti && t->lun && memcmp(scsi_lun_naa(t->lun), d, 16) == 0)
		return t->lun;
	return NULL;
}

/* spc4r37 6.4.5.2 and 6.4.5.7: one Identification Descriptor CSCD descriptor (E4h).
 * Byte 1 holds LU ID TYPE (bits 7-6), NUL (bit 5) and PERIPHERAL DEVICE TYPE (4-0); bytes
 * 4-23 a designation descriptor; bytes 28-31 the block device parameters. Returns 0 and
 * the LUN, or a sense in *err. */
static int xc_parse_cscd(const struct scsi_task *t, struct cursor *cur, uint16_t at,
			 struct scsi_lun **out, struct scsi_sense *err)
{
	uint8_t type, b1, code_set, assoc_type, dlen, desig[16], params[4];
	uint16_t rel_port;
	uint32_t block_len;

	/* The 24-bit DISK BLOCK LENGTH sits in bytes 29-31; bytes 24-27 are reserved. */
	struct scsi_lun *lun;

	if (cur_u8(cur, &type) || cur_u8(cur, &b1) || cur_be16(cur, &rel_port) ||
	    cur_u8(cur, &code_set) || cur_u8(cur, &assoc_type) || cur_skip(cur, 1) ||
	    cur_u8(cur, &dlen) || cur_bytes(cur, desig, sizeof(desig)) || cur_skip(cur, 4) ||
	    cur_bytes(cur, params, sizeof(params))) {
		*err = SENSE_PARAM_LIST_LENGTH_ERROR;
		return -EINVAL;
	}
	if (type != XC_CSCD_IDENTIFICATION) {
		*err = scsi_sense_field(&SENSE_UNSUPPORTED_CSCD_TYPE, false, at, -1);
		return -EINVAL;
	}
	/* Bits 7-6 were LU ID TYPE in SPC-3; spc4r37 6.4.5.2 makes the designator alone name
	 * the logical unit, so they are ignored (libiscsi's ValidTgtDescr expects exactly that
	 * of an SPC-4 device). */
	/* Only block devices (peripheral type 00h) take part. */
	if (b1 & 0x1f) {
		*err = scsi_sense_field(&SENSE_INVALID_FIELD_IN_PARAM_LIST, false, at + 1, 4);
		return -EINVAL;
	}
	/* NUL (obsolete in SPC-4): a null copy target, which no block-to-block segment can
	 * read or write. The copy reaches no device, so it is aborted. */
	if (b1 & 0x20) {
		*err = SENSE_UNREACHABLE_COPY_TARGET;
		return -ENODEV;
	}
	/* A logical unit association, NAA designator (type 3), binary. */
	if ((assoc_type & 0x30) != 0 || (assoc_type & 0x0f) != 0x3 || (code_set & 0x0f) != 0x1 ||
	    dlen > sizeof(desig)) {
		*err = SENSE_UNREACHABLE_COPY_TARGET;
		return -ENODEV;
	}
	lun = xc_find_lun(t, desig, dlen);
	if (!lun) {
		*err = SENSE_UNREACHABLE_COPY_TARGET;
		return -ENODEV;
	}
	/* DISK BLOCK LENGTH: zero, or the LUN's own. */
	block_len = (uint32_t)params[1] << 16 | (uint32_t)params[2] << 8 | params[3];
	if (block_len && block_len != scsi_lun_block_size(lun)) {
		*err = scsi_sense_field(&SENSE_INVALID_FIELD_IN_PARAM_LIST, false, at + 29, -1);
		return -EINVAL;
	}
	*out = lun;
	return 0;
}

/* spc4r37 6.4.6.5: a block device to block device segment descriptor (02h). DC=0: NUMBER
 * OF BLOCKS counts source blocks; DC=1: destination blocks. */
static int xc_parse_segment(struct scsi_lun *const *cscd, unsigned ncscd, struct cursor *cur,
			    uint16_t at, struct xc_segment *s, struct scsi_sense *err)
{
	uint8_t type, b1;
	uint16_t dlen, si, di, nblocks;
	uint64_t src_lba, dst_lba, len;
	uint32_t sbsz, dbsz;

	if (cur_u8(cur, &type) || cur_u8(cur, &b1) || cur_be16(cur, &dlen)) {
		*err = SENSE_PARAM_LIST_LENGTH_ERROR;
		return -EINVAL;
	}
	if (type != XC_SEG_BLOCK_TO_BLOCK) {
		*err = scsi_sense_field(&SENSE_UNSUPPORTED_SEGMENT_TYPE, false, at, -1);
		return -EINVAL;
	}
	if (dlen != XC_SEG_B2B_LEN - 4) {
		*err = scsi_sense_field(&SENSE_INVALID_FIELD_IN_PARAM_LIST, false, at + 2, -1);
		return -EINVAL;
	}
	if (cur_be16(cur, &si) || cur_be16(cur, &di) || cur_skip(cur, 2) ||
	    cur_be16(cur, &nblocks) || cur_be64(cur, &src_lba) || cur_be64(cur, &dst_lba)) {
		*err = SENSE_PARAM_LIST_LENGTH_ERROR;
		return -EINVAL;
	}
	/* spc4r37 6.4.6.1: an index naming no CSCD descriptor aborts the copy. */
	if (si >= ncscd || di >= ncscd) {
		*err = SENSE_COPY_ABORTED;
		return -ENODEV;
	}
	s->src = cscd[si];
	s->dst = cscd[di];
	sbsz = scsi_lun_block_size(s->src);
	dbsz = scsi_lun_block_size(s->dst);
	len = (uint64_t)nblocks * ((b1 & 0x02) ? dbsz : sbsz);
	/* Both ends move whole blocks, and neither range may pass its LUN's last block. */
	if (len % sbsz || len % dbsz || src_lba > scsi_lun_nblocks(s->src) ||
	    len / sbsz > scsi_lun_nblocks(s->src) - src_lba || dst_lba > scsi_lun_nblocks(s->dst) ||
	    len / dbsz > scsi_lun_nblocks(s->dst) - dst_lba) {
		*err = scsi_sense_info(&SENSE_COPY_ABORTED, at);
		return -ERANGE;
	}
	s->src_off = src_lba * sbsz;
	s->dst_off = dst_lba * dbsz;
	s->len = len;
	return 0;
}

/* spc4r37 6.4.3.2: the LID1 parameter list header, then the CSCD descriptors, then the
 * segment descriptors, then inline data (which no supported segment uses). */
static int xc_parse(struct xc_cmd *c, const uint8_t *p, size_t len, struct scsi_sense *err)
{
	struct scsi_lun *cscd[SCSI_XCOPY_MAX_CSCD_DESCS];
	uint8_t list_id, b1;
	uint16_t cscd_len;
	uint32_t seg_len, inline_len;
	unsigned ncscd = 0;
	struct cursor cur;
	uint16_t at;
	int rc;

	cur_init(&cur, p, len);
	if (cur_u8(&cur, &list_id) || cur_u8(&cur, &b1) || cur_be16(&cur, &cscd_len) ||
	    cur_skip(&cur, 4) || cur_be32(&cur, &seg_len) || cur_be32(&cur, &inline_len)) {
		*err = SENSE_PARAM_LIST_LENGTH_ERROR;
		return -EINVAL;
	}
	c->list_id = list_id;
	c->hold = ((b1 >> 3) & 0x3) == XC_LIST_ID_USAGE_HOLD;
	/* spc4r37 6.4.3.2: descriptor lists longer than MAXIMUM DESCRIPTOR LIST LENGTH, or
	 * longer than the parameter list holds, are a PARAMETER LIST LENGTH ERROR; more
	 * descriptors than the maximum counts are TOO MANY ... DESCRIPTORS. */
	if ((uint64_t)cscd_len + seg_len > SCSI_XCOPY_MAX_DESC_LIST_LEN ||
	    (uint64_t)XC_HEADER_LEN + cscd_len + seg_len + inline_len > len) {
		*err = SENSE_PARAM_LIST_LENGTH_ERROR;
		return -EINVAL;
	}
	if (cscd_len % XC_CSCD_LEN) {
		*err = scsi_sense_field(&SENSE_INVALID_FIELD_IN_PARAM_LIST, false, 2, -1);
		return -EINVAL;
	}
	if (cscd_len / XC_CSCD_LEN > SCSI_XCOPY_MAX_CSCD_DESCS) {
		*err = SENSE_TOO_MANY_CSCD_DESCS;
		return -EINVAL;
	}
	if (seg_len / XC_SEG_B2B_LEN > SCSI_XCOPY_MAX_SEGMENT_DESCS) {
		*err = SENSE_TOO_MANY_SEGMENT_DESCS;
		return -EINVAL;
	}
	for (at = XC_HEADER_LEN; at < XC_HEADER_LEN + cscd_len; at += XC_CSCD_LEN) {
		rc = xc_parse_cscd(c->t, &cur, at, &cscd[ncscd], err);
		if (rc)
			return rc;
		ncscd++;
	}
	c->nseg = 0;
	while (at < XC_HEADER_LEN + cscd_len + seg_len) {
		if (c->nseg == SCSI_XCOPY_MAX_SEGMENT_DESCS) {
			*err = SENSE_TOO_MANY_SEGMENT_DESCS;
			return -EINVAL;
		}
		rc = xc_parse_segment(cscd, ncscd, &cur, at, &c->seg[c->nseg], err);
		if (rc)
			return rc;
		c->nseg++;
		at += XC_SEG_B2B_LEN;
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Data movement */

static void xc_finish(struct xc_cmd *c, const struct scsi_sense *failure, uint8_t status)
{
	struct scsi_task *t = c->t;

	if (c->buf) {
		bs_buf_free(c->buf);
		c->buf = NULL;
	}
	if (c->hold && status != SCSI_STATUS_TASK_ABORTED)
		xc_result_put(c, failure);
	if (failure)
		scsi_task_check(t, failure);
	else
		scsi_task_status(t, status);
}

static void xc_pump(struct xc_cmd *c);

static void xc_io_done(struct bs_io *io, long res)
{
	struct xc_cmd *c = io->priv;

	/* A short transfer is an error: blocks move whole. */
	if (res >= 0 && (size_t)res != io->len)
		res = -EIO;
	c->res = res;
	c->inflight = false;
	/* Completed inside bs_submit(): the pump loop that submitted it carries on. */
	if (!c->in_submit)
		xc_pump(c);
}

static int xc_submit(struct xc_cmd *c, struct scsi_lun *lun, enum bs_op op, uint64_t off)
{
	int rc;

	memset(&c->io, 0, sizeof(c->io));
	c->iov.iov_base = c->buf;
	c->iov.iov_len = c->chunk;
	c->io.op = op;
	c->io.flags = (op == BS_OP_WRITE && !scsi_lun_wce(lun)) ? BS_F_FUA : 0;
	c->io.offset = off;
	c->io.iov = &c->iov;
	c->io.iovcnt = 1;
	c->io.len = c->chunk;
	c->io.done = xc_io_done;
	c->io.priv = c;
	c->inflight = true;
	c->in_submit = true;
	rc = bs_submit(scsi_lun_bs(lun), c->t->ioctx, &c->io);
	c->in_submit = false;
	if (rc < 0) {
		c->inflight = false;
		log_warnx("%s: %s: submit: %s", __func__, bs_name(scsi_lun_bs(lun)), strerror(-rc));
	}
	return rc;
}

/* Run the copy's stages until one waits for an asynchronous completion or the copy ends. */
static void xc_pump(struct xc_cmd *c)
{
	const struct xc_segment *s;

	for (;;) {
		switch (c->stage) {
		case XC_STAGE_START:
			break;
		case XC_STAGE_READ:
			if (c->res < 0) {
				xc_finish(c, &SENSE_COPY_READ_ERROR, 0);
				return;
			}
			s = &c->seg[c->cur];
			c->stage = XC_STAGE_WRITE;
			if (xc_submit(c, s->dst, BS_OP_WRITE, s->dst_off + c->pos) < 0) {
				xc_finish(c, &SENSE_COPY_WRITE_ERROR, 0);
				return;
			}
			if (c->inflight)
				return;
			continue;
		case XC_STAGE_WRITE:
			if (c->res < 0) {
				xc_finish(c, &SENSE_COPY_WRITE_ERROR, 0);
				return;
			}
			c->pos += c->chunk;
			c->copied += c->chunk;
			break;
		default:
			xc_finish(c, &SENSE_INTERNAL_TARGET_FAILURE, 0);
			return;
		}
		/* Next chunk: skip finished (and empty) segments. */
		while (c->cur < c->nseg && c->pos >= c->seg[c->cur].len) {
			c->cur++;
			c->pos = 0;
		}
		if (c->cur == c->nseg) {
			xc_finish(c, NULL, SCSI_STATUS_GOOD);
			return;
		}
		/* Task management aborted the command: stop before touching the medium
		 * again. */
		if (c->t->aborted) {
			xc_finish(c, NULL, SCSI_STATUS_TASK_ABORTED);
			return;
		}
		s = &c->seg[c->cur];
		c->chunk = s->len - c->pos < SCSI_XCOPY_CHUNK ? s->len - c->pos : SCSI_XCOPY_CHUNK;
		c->stage = XC_STAGE_READ;
		if (xc_submit(c, s->src, BS_OP_READ, s->src_off + c->pos) < 0) {
			xc_finish(c, &SENSE_COPY_READ_ERROR, 0);
			return;
		}
		if (c->inflight)
			return;
	}
}

/* The copy writes its destinations, which need not be the LUN the command came to: each
 * obeys its own shared-volume policy and maintenance pause (lun.h) like a WRITE sent to it
 * (the dispatcher checked the command's own LUN). Returns true when the task was answered or
 * held; a held copy starts again from its parameter list when the pause ends. */
static bool xc_gate_destinations(struct xc_cmd *c)
{
	struct scsi_task *t = c->t;

	for (unsigned i = 0; i < c->nseg; i++) {
		struct scsi_lun *dst = c->seg[i].dst;

		if (dst == t->lun || !t->nexus)
			continue;
		if (scsi_lun_write_verdict(dst, t->nexus->initiator_name,
					   __atomic_load_n(&t->nexus->fenced, __ATOMIC_ACQUIRE)) ==
		    SCSI_LUN_WRITE_CONFLICT) {
			scsi_task_status(t, SCSI_STATUS_RESERVATION_CONFLICT);
			return true;
		}
	}
	for (unsigned i = 0; i < c->nseg; i++)
		if (c->seg[i].dst != t->lun && scsi_task_write_gate(t, c->seg[i].dst))
			return true;
	return false;
}

/* spc4r37 6.4: EXTENDED COPY (LID1). */
void scsi_xcopy_extended_copy(struct scsi_task *t)
{
	struct scsi_cdb cdb;
	struct scsi_sense err;
	struct xc_cmd *c;
	size_t avail;
	int rc;

	if (scsi_cdb_decode(t->cdb, t->cdb_len, &cdb) < 0) {
		scsi_task_check(t, &SENSE_INVALID_FIELD_IN_CDB);
		return;
	}
	t->out_wanted = cdb.alloc_len;
	/* A PARAMETER LIST LENGTH of zero copies nothing and is not an error. */
	if (cdb.alloc_len == 0) {
		scsi_task_good(t);
		return;
	}
	avail = t->out ? t->out_len : 0;
	if (avail > cdb.alloc_len)
		avail = cdb.alloc_len;
	c = calloc(1, sizeof(*c));
	if (!c) {
		scsi_task_status(t, SCSI_STATUS_TASK_SET_FULL);
		return;
	}
	free(t->cmd_state);
	t->cmd_state = c; /* freed by scsi_task_release() */
	c->t = t;
	rc = xc_parse(c, t->out, avail, &err);
	if (rc == -ENODEV || rc == -ERANGE) {
		/* The list was well formed but the copy cannot be done: that is a copy
		 * result, held like any other. */
		xc_finish(c, &err, 0);
		return;
	}
	if (rc < 0) {
		scsi_task_check(t, &err);
		return;
	}
	if (xc_gate_destinations(c))
		return;
	c->buf = bs_buf_alloc(SCSI_XCOPY_CHUNK);
	if (!c->buf) {
		scsi_task_status(t, SCSI_STATUS_TASK_SET_FULL);
		return;
	}
	c->stage = XC_STAGE_START;
	xc_pump(c);
}

/* ------------------------------------------------------------------------------------------ */
/* RECEIVE COPY RESULTS: spc4r37 6.20 */

static void xc_reply(struct scsi_task *t, uint32_t full, uint32_t alloc)
{
	t->in_len = full < alloc ? full : alloc;
	scsi_task_good(t);
}

void scsi_xcopy_receive_results(struct scsi_task *t)
{
	static const uint8_t implemented[] = {XC_SEG_BLOCK_TO_BLOCK, XC_CSCD_IDENTIFICATION};
	struct scsi_cdb cdb;
	struct xc_result r;
	uint8_t list_id;
	uint8_t *p;
	size_t n;

	if (scsi_cdb_decode(t->cdb, t->cdb_len, &cdb) < 0) {
		scsi_task_check(t, &SENSE_INVALID_FIELD_IN_CDB);
		return;
	}
	list_id = t->cdb[2];
	p = scsi_task_alloc_in(t, 128);
	if (!p) {
		scsi_task_status(t, SCSI_STATUS_TASK_SET_FULL);
		return;
	}
	switch (cdb.sa) {
	case XC_RCR_OPERATING_PARAMETERS: /* spc4r37 6.20.4 */
		n = 44 + sizeof(implemented);
		put_be32(p, (uint32_t)(n - 4));
		p[4] = 0x01; /* SNLID: list identifiers are held per nexus */
		put_be16(p + 8, SCSI_XCOPY_MAX_CSCD_DESCS);
		put_be16(p + 10, SCSI_XCOPY_MAX_SEGMENT_DESCS);
		put_be32(p + 12, SCSI_XCOPY_MAX_DESC_LIST_LEN);
		put_be32(p + 16, (uint32_t)(SCSI_XCOPY_MAX_SEGMENT_BYTES > UINT32_MAX
						    ? UINT32_MAX
						    : SCSI_XCOPY_MAX_SEGMENT_BYTES));
		/* No inline or held data, no stream devices. */
		put_be16(p + 34, 1); /* TOTAL CONCURRENT COPIES */
		p[36] = 1;	     /* MAXIMUM CONCURRENT COPIES */
		p[37] = 9;	     /* DATA SEGMENT GRANULARITY: 2^9, the smallest block */
		p[43] = sizeof(implemented);
		memcpy(p + 44, implemented, sizeof(implemented));
		xc_reply(t, n, cdb.alloc_len);
		return;
	case XC_RCR_COPY_STATUS: /* spc4r37 6.20.2 */
		/* A list identifier with no held result is an invalid field. */
		if (!xc_result_get(t, list_id, &r)) {
			scsi_task_check_cdb_field(t, 2, -1);
			return;
		}
		put_be32(p, 8);
		p[4] = r.status;
		put_be16(p + 5, r.segments);
		/* TRANSFER COUNT in KiB (units code 01h), so 32 bits reach 4 TiB. */
		p[7] = 0x01;
		put_be32(p + 8, (uint32_t)(r.bytes >> 10));
		xc_reply(t, 12, cdb.alloc_len);
		return;
	case XC_RCR_FAILED_SEGMENT_DETAILS: /* spc4r37 6.20.5 */
		if (!xc_result_get(t, list_id, &r)) {
			scsi_task_check_cdb_field(t, 2, -1);
			return;
		}
		if (r.status != 0x02) {
			/* The copy did not fail: no details. */
			put_be32(p, 0);
			xc_reply(t, 4, cdb.alloc_len);
			return;
		}
		p[56] = r.cmd_status;
		n = scsi_sense_build(&r.sense, p + 60, 128 - 60);
		put_be16(p + 58, (uint16_t)n);
		put_be32(p, (uint32_t)(60 + n - 4));
		xc_reply(t, 60 + n, cdb.alloc_len);
		return;
	default:
		scsi_task_check_cdb_field(t, 1, 4);
		return;
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Third-party Copy VPD page: spc4r37 7.8.17 */

size_t scsi_xcopy_vpd(uint8_t *b, size_t room)
{
	/* One Supported Commands descriptor (0001h): each command's opcode, then the
	 * service actions it implements. */
	static const uint8_t cmds[] = {
		0x83,
		1,
		0x00, /* EXTENDED COPY (LID1) */
		0x84,
		3,
		XC_RCR_COPY_STATUS,
		XC_RCR_OPERATING_PARAMETERS,
		XC_RCR_FAILED_SEGMENT_DETAILS, /* RECEIVE COPY RESULTS */
	};
	size_t body = 1 + sizeof(cmds);
	size_t dlen = (4 + body + 3) & ~(size_t)3; /* descriptors are padded to 4 bytes */

	if (room < 4 + dlen)
		return 4;
	memset(b + 4, 0, dlen);
	put_be16(b + 4, 0x0001);
	put_be16(b + 6, (uint16_t)(dlen - 4));
	b[8] = sizeof(cmds); /* COMMANDS SUPPORTED LIST LENGTH */
	memcpy(b + 9, cmds, sizeof(cmds));
	return 4 + dlen;
}
