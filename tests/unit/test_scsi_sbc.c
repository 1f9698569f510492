/* Unit tests for target/scsi_sbc.c: each block command's success path and its sense data,
 * over a memory store (and a file store where libaio's asynchronous completion matters). The
 * handlers are called through the SBC table, as the dispatcher would after its checks. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/cursor.h"
#include "target/backstore.h"
#include "target/lun.h"
#include "target/scsi_cmd.h"
#include "target/scsi_sbc.h"
#include "target/scsi_sense.h"

#define BSZ	512u
#define NBLOCKS 2048u /* 1 MiB */

struct fx {
	struct backstore *bs;
	struct scsi_lun *lun;
	struct bs_ctx *ctx;
	char dir[64];
};

static struct fx *g;

/* The submission spy: records requests, and can hold them instead of submitting. */
static struct {
	unsigned nwrites, nflushes;
	unsigned last_write_flags;
	bool hold;
	struct bs_io *held;
	struct backstore *held_bs;
} spy;

static int spy_submit(struct backstore *bs, struct bs_ctx *ctx, struct bs_io *io)
{
	if (io->op == BS_OP_WRITE) {
		spy.nwrites++;
		spy.last_write_flags = io->flags;
	} else if (io->op == BS_OP_FLUSH) {
		spy.nflushes++;
	}
	if (spy.hold) {
		spy.held = io;
		spy.held_bs = bs;
		return 0;
	}
	return bs_submit(bs, ctx, io);
}

static int fx_open_delay(void **state, enum hf_bs_type type, uint32_t delay_ms)
{
	struct hf_backstore cfg = {.type = type,
				   .size = (uint64_t)NBLOCKS * BSZ,
				   .block_size = BSZ,
				   .delay_ms = delay_ms};
	const uint8_t box[16] = {1, 2, 3};
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(cfg.name, sizeof(cfg.name), "sbc");
	if (type == HF_BS_FILE) {
		snprintf(f->dir, sizeof(f->dir), "/tmp/test_sbc.XXXXXX");
		assert_non_null(mkdtemp(f->dir));
		snprintf(cfg.path, sizeof(cfg.path), "%s/lun.img", f->dir);
	}
	assert_int_equal(bs_open(&cfg, &f->bs), 0);
	assert_int_equal(scsi_lun_create(f->bs, box, "sbc", &f->lun), 0);
	assert_int_equal(bs_ctx_create(64, &f->ctx), 0);
	memset(&spy, 0, sizeof(spy));
	scsi_sbc_submit = spy_submit;
	g = f;
	*state = f;
	return 0;
}

static int fx_open(void **state, enum hf_bs_type type)
{
	return fx_open_delay(state, type, 0);
}

static int setup_mem(void **state)
{
	return fx_open(state, HF_BS_MEMORY);
}

/* A memory store that holds every request 200 ms before it reaches the medium. */
static int setup_mem_delayed(void **state)
{
	return fx_open_delay(state, HF_BS_MEMORY, 200);
}

static int setup_file(void **state)
{
	return fx_open(state, HF_BS_FILE);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char path[128];

	scsi_sbc_submit = bs_submit;
	bs_ctx_destroy(f->ctx);
	scsi_lun_destroy(f->lun);
	bs_close(f->bs);
	if (f->dir[0]) {
		snprintf(path, sizeof(path), "%s/lun.img", f->dir);
		unlink(path);
		rmdir(f->dir);
	}
	free(f);
	return 0;
}

static void on_done(struct scsi_task *t)
{
	(*(int *)t->priv)++;
}

static const struct scsi_cmd_desc *find_desc(const uint8_t *cdb)
{
	for (unsigned i = 0; i < scsi_sbc_ncmds; i++) {
		const struct scsi_cmd_desc *d = &scsi_sbc_cmds[i];

		if (d->opcode != cdb[0])
			continue;
		if (d->sa == SCSI_NO_SA || d->sa == (cdb[1] & 0x1f))
			return d;
	}
	return NULL;
}

struct run {
	struct scsi_task t;
	int ndone;
	uint8_t *outbuf;
};

/* Start a command; returns without waiting. */
static struct run *start(const uint8_t *cdb, size_t cdb_len, const void *out, uint32_t out_len,
			 uint32_t edtl)
{
	const struct scsi_cmd_desc *d = find_desc(cdb);
	struct run *r = calloc(1, sizeof(*r));

	assert_non_null(d);
	assert_int_equal(d->cdb_len, cdb_len);
	memcpy(r->t.cdb, cdb, cdb_len);
	r->t.cdb_len = 16 > cdb_len ? 16 : cdb_len;
	r->t.lun = g->lun;
	r->t.ioctx = g->ctx;
	r->t.edtl = edtl;
	if (out) {
		r->outbuf = bs_buf_alloc(out_len);
		memcpy(r->outbuf, out, out_len);
		r->t.out = r->outbuf;
		r->t.out_len = out_len;
		r->t.dir = SCSI_DIR_WRITE;
	}
	r->t.done = on_done;
	r->t.priv = &r->ndone;
	d->exec(&r->t);
	return r;
}

static void wait_done(struct run *r)
{
	struct pollfd p = {.fd = bs_ctx_fd(g->ctx), .events = POLLIN};

	for (int i = 0; r->ndone == 0 && i < 500; i++) {
		poll(&p, 1, 10);
		bs_ctx_reap(g->ctx);
	}
	assert_int_equal(r->ndone, 1);
}

static struct run *run(const uint8_t *cdb, size_t cdb_len, const void *out, uint32_t out_len,
		       uint32_t edtl)
{
	struct run *r = start(cdb, cdb_len, out, out_len, edtl);

	wait_done(r);
	return r;
}

static void run_free(struct run *r)
{
	scsi_task_release(&r->t);
	bs_buf_free(r->outbuf);
	free(r);
}

static void assert_good(struct run *r)
{
	assert_int_equal(r->t.status, SCSI_STATUS_GOOD);
}

static void assert_sense(struct run *r, const struct scsi_sense *s)
{
	assert_int_equal(r->t.status, SCSI_STATUS_CHECK_CONDITION);
	assert_int_equal(r->t.sense.key, s->key);
	assert_int_equal(r->t.sense.asc, s->asc);
	assert_int_equal(r->t.sense.ascq, s->ascq);
}

/* Command builders. */
static void cdb10(uint8_t *c, uint8_t op, uint8_t b1, uint32_t lba, uint16_t n)
{
	memset(c, 0, 10);
	c[0] = op;
	c[1] = b1;
	put_be32(c + 2, lba);
	put_be16(c + 7, n);
}

static void cdb16(uint8_t *c, uint8_t op, uint8_t b1, uint64_t lba, uint32_t n)
{
	memset(c, 0, 16);
	c[0] = op;
	c[1] = b1;
	put_be64(c + 2, lba);
	put_be32(c + 10, n);
}

/* Write n blocks of `fill` at lba through WRITE(10) and check GOOD. */
static void write_fill(uint32_t lba, uint16_t n, uint8_t fill)
{
	uint8_t c[10];
	uint8_t *buf = malloc((size_t)n * BSZ);
	struct run *r;

	memset(buf, fill, (size_t)n * BSZ);
	cdb10(c, 0x2a, 0, lba, n);
	r = run(c, 10, buf, n * BSZ, n * BSZ);
	assert_good(r);
	run_free(r);
	free(buf);
}

/* Read n blocks at lba and check every byte is `fill`. */
static void assert_blocks(uint32_t lba, uint16_t n, uint8_t fill)
{
	uint8_t c[10];
	struct run *r;

	cdb10(c, 0x28, 0, lba, n);
	r = run(c, 10, NULL, 0, n * BSZ);
	assert_good(r);
	assert_int_equal(r->t.in_len, n * BSZ);
	for (size_t i = 0; i < (size_t)n * BSZ; i++)
		if (r->t.in[i] != fill)
			fail_msg("lba %u byte %zu: %02x, expected %02x", lba, i, r->t.in[i], fill);
	run_free(r);
}

/* ---- READ / WRITE ---- */

static void test_write10_then_read10_returns_the_data(void **state)
{
	write_fill(10, 4, 0xab);
	assert_blocks(10, 4, 0xab);
	assert_blocks(14, 1, 0x00);
}

static void test_file_store_write_then_read_completes_asynchronously(void **state)
{
	write_fill(100, 8, 0x5c);
	assert_blocks(100, 8, 0x5c);
	assert_blocks(99, 1, 0x00);
}

static void test_read_of_zero_blocks_is_good_and_returns_nothing(void **state)
{
	uint8_t c[10];
	struct run *r;

	cdb10(c, 0x28, 0, 0, 0);
	r = run(c, 10, NULL, 0, 0);
	assert_good(r);
	assert_int_equal(r->t.in_len, 0);
	run_free(r);
}

static void test_read_past_the_end_is_lba_out_of_range(void **state)
{
	uint8_t c[16];
	struct run *r;

	cdb10(c, 0x28, 0, NBLOCKS - 1, 2);
	r = run(c, 10, NULL, 0, 2 * BSZ);
	assert_sense(r, &SENSE_LBA_OUT_OF_RANGE);
	run_free(r);
	/* Zero blocks one past the end, and an LBA that would wrap around. */
	cdb10(c, 0x28, 0, NBLOCKS + 1, 0);
	r = run(c, 10, NULL, 0, 0);
	assert_sense(r, &SENSE_LBA_OUT_OF_RANGE);
	run_free(r);
	cdb16(c, 0x88, 0, UINT64_MAX, 2);
	r = run(c, 16, NULL, 0, 2 * BSZ);
	assert_sense(r, &SENSE_LBA_OUT_OF_RANGE);
	run_free(r);
}

static void test_read_of_the_last_block_is_good(void **state)
{
	assert_blocks(NBLOCKS - 1, 1, 0);
}

static void test_transfer_longer_than_the_block_limit_is_invalid_field(void **state)
{
	uint8_t c[16];
	struct run *r;

	/* The limit is checked before the range, so even this small LUN shows it. */
	cdb16(c, 0x88, 0, 0, SBC_MAX_XFER_BLOCKS(BSZ) + 1);
	r = run(c, 16, NULL, 0, 0);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	assert_int_equal(r->t.sense.sks_field, 10);
	run_free(r);
}

static void test_read_with_rdprotect_is_invalid_field_in_cdb(void **state)
{
	uint8_t c[10];
	struct run *r;

	cdb10(c, 0x28, 0x20, 0, 1);
	r = run(c, 10, NULL, 0, BSZ);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	assert_true(r->t.sense.sks_valid);
	assert_int_equal(r->t.sense.sks_field, 1);
	run_free(r);
}

static void test_write_with_wrprotect_is_invalid_field_in_cdb(void **state)
{
	uint8_t c[16], buf[BSZ] = {0};
	struct run *r;

	cdb16(c, 0x8a, 0x40, 0, 1);
	r = run(c, 16, buf, BSZ, BSZ);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);
}

static void test_read6_length_zero_reads_256_blocks(void **state)
{
	const uint8_t c[6] = {0x08, 0, 0, 0, 0, 0};
	struct run *r = run(c, 6, NULL, 0, 256 * BSZ);

	assert_good(r);
	assert_int_equal(r->t.in_len, 256 * BSZ);
	run_free(r);
}

static void test_write_with_less_data_out_writes_only_what_arrived(void **state)
{
	uint8_t c[10], buf[BSZ];
	struct run *r;

	write_fill(20, 2, 'a');
	memset(buf, 'b', sizeof(buf));
	cdb10(c, 0x2a, 0, 20, 2);
	r = run(c, 10, buf, BSZ, BSZ);
	assert_good(r);
	/* The transport reports the missing block as a residual. */
	assert_int_equal(r->t.out_wanted, 2 * BSZ);
	run_free(r);
	assert_blocks(20, 1, 'b');
	assert_blocks(21, 1, 'a');
}

static void test_write_with_more_data_out_writes_only_the_cdb_length(void **state)
{
	uint8_t c[10], buf[2 * BSZ];
	struct run *r;

	write_fill(30, 2, 'a');
	memset(buf, 'b', sizeof(buf));
	cdb10(c, 0x2a, 0, 30, 1);
	r = run(c, 10, buf, sizeof(buf), sizeof(buf));
	assert_good(r);
	assert_int_equal(r->t.out_wanted, BSZ);
	run_free(r);
	assert_blocks(30, 1, 'b');
	assert_blocks(31, 1, 'a');
}

static void test_write_of_zero_blocks_is_good_and_writes_nothing(void **state)
{
	uint8_t c[10];
	struct run *r;

	cdb10(c, 0x2a, 0, 5, 0);
	r = run(c, 10, NULL, 0, 0);
	assert_good(r);
	assert_int_equal(spy.nwrites, 0);
	run_free(r);
}

static void test_write_past_the_end_is_lba_out_of_range(void **state)
{
	uint8_t c[16], buf[2 * BSZ] = {0};
	struct run *r;

	cdb16(c, 0x8a, 0, NBLOCKS - 1, 2);
	r = run(c, 16, buf, sizeof(buf), sizeof(buf));
	assert_sense(r, &SENSE_LBA_OUT_OF_RANGE);
	assert_int_equal(spy.nwrites, 0);
	run_free(r);
}

static void test_fua_reaches_the_store_only_when_asked_with_wce_on(void **state)
{
	uint8_t c[10], buf[BSZ] = {0};
	struct run *r;

	cdb10(c, 0x2a, 0x08, 0, 1);
	r = run(c, 10, buf, BSZ, BSZ);
	assert_good(r);
	assert_int_equal(spy.last_write_flags & BS_F_FUA, BS_F_FUA);
	run_free(r);
	cdb10(c, 0x2a, 0x00, 0, 1);
	r = run(c, 10, buf, BSZ, BSZ);
	assert_good(r);
	assert_int_equal(spy.last_write_flags & BS_F_FUA, 0);
	run_free(r);
}

static void test_wce_off_makes_every_write_fua(void **state)
{
	uint8_t c[10], buf[BSZ] = {0};
	struct run *r;

	scsi_lun_set_wce(g->lun, false);
	cdb10(c, 0x2a, 0x00, 0, 1);
	r = run(c, 10, buf, BSZ, BSZ);
	assert_good(r);
	assert_int_equal(spy.last_write_flags & BS_F_FUA, BS_F_FUA);
	run_free(r);
}

/* ---- VERIFY / WRITE AND VERIFY ---- */

static void test_verify_bytchk1_matching_data_is_good(void **state)
{
	uint8_t c[10], buf[2 * BSZ];
	struct run *r;

	write_fill(40, 2, 0x77);
	memset(buf, 0x77, sizeof(buf));
	cdb10(c, 0x2f, 0x02, 40, 2);
	r = run(c, 10, buf, sizeof(buf), sizeof(buf));
	assert_good(r);
	run_free(r);
}

static void test_verify_miscompare_reports_offset_of_first_difference(void **state)
{
	uint8_t c[16], buf[2 * BSZ];
	struct run *r;

	write_fill(40, 2, 0x77);
	memset(buf, 0x77, sizeof(buf));
	buf[BSZ + 3] = 0;
	cdb16(c, 0x8f, 0x02, 40, 2);
	r = run(c, 16, buf, sizeof(buf), sizeof(buf));
	assert_sense(r, &SENSE_MISCOMPARE);
	assert_true(r->t.sense.info_valid);
	assert_int_equal(r->t.sense.info, BSZ + 3);
	run_free(r);
}

static void test_verify_bytchk3_compares_one_block_with_each(void **state)
{
	uint8_t c[10], buf[BSZ];
	struct run *r;

	write_fill(50, 3, 0x11);
	memset(buf, 0x11, sizeof(buf));
	cdb10(c, 0x2f, 0x06, 50, 3);
	r = run(c, 10, buf, BSZ, BSZ);
	assert_good(r);
	run_free(r);
	write_fill(52, 1, 0x12);
	r = run(c, 10, buf, BSZ, BSZ);
	assert_sense(r, &SENSE_MISCOMPARE);
	assert_int_equal(r->t.sense.info, 2 * BSZ);
	run_free(r);
}

static void test_verify_bytchk0_and_reserved_bytchk(void **state)
{
	uint8_t c[10];
	struct run *r;

	cdb10(c, 0x2f, 0x00, 0, 8);
	r = run(c, 10, NULL, 0, 0);
	assert_good(r);
	run_free(r);
	cdb10(c, 0x2f, 0x04, 0, 8);
	r = run(c, 10, NULL, 0, 0);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);
	cdb10(c, 0x2f, 0x00, NBLOCKS, 1);
	r = run(c, 10, NULL, 0, 0);
	assert_sense(r, &SENSE_LBA_OUT_OF_RANGE);
	run_free(r);
}

static void test_write_and_verify_writes_with_fua_and_checks(void **state)
{
	uint8_t c[10], buf[BSZ];
	struct run *r;

	memset(buf, 0x3c, sizeof(buf));
	cdb10(c, 0x2e, 0x02, 60, 1);
	r = run(c, 10, buf, BSZ, BSZ);
	assert_good(r);
	assert_int_equal(spy.last_write_flags & BS_F_FUA, BS_F_FUA);
	run_free(r);
	assert_blocks(60, 1, 0x3c);
}

/* ---- COMPARE AND WRITE ---- */

static void caw_cdb(uint8_t *c, uint64_t lba, uint8_t n)
{
	memset(c, 0, 16);
	c[0] = 0x89;
	put_be64(c + 2, lba);
	c[13] = n;
}

static void test_compare_and_write_match_writes_new_data(void **state)
{
	uint8_t c[16], buf[2 * BSZ];
	struct run *r;

	write_fill(70, 1, 'o');
	memset(buf, 'o', BSZ);
	memset(buf + BSZ, 'n', BSZ);
	caw_cdb(c, 70, 1);
	r = run(c, 16, buf, sizeof(buf), sizeof(buf));
	assert_good(r);
	run_free(r);
	assert_blocks(70, 1, 'n');
}

static void test_compare_and_write_miscompare_leaves_medium_and_reports_offset(void **state)
{
	uint8_t c[16], buf[2 * BSZ];
	struct run *r;

	write_fill(71, 1, 'o');
	memset(buf, 'o', BSZ);
	buf[100] = 'x';
	memset(buf + BSZ, 'n', BSZ);
	caw_cdb(c, 71, 1);
	r = run(c, 16, buf, sizeof(buf), sizeof(buf));
	assert_sense(r, &SENSE_MISCOMPARE);
	assert_true(r->t.sense.info_valid);
	assert_int_equal(r->t.sense.info, 100);
	run_free(r);
	assert_blocks(71, 1, 'o');
}

static void test_compare_and_write_of_the_maximum_length_is_good(void **state)
{
	size_t half = (size_t)SBC_MAX_CAW_BLOCKS * BSZ;
	uint8_t c[16], *buf = calloc(2, half);
	struct run *r;

	assert_int_equal(SBC_MAX_CAW_BLOCKS, 255);
	memset(buf + half, 'B', half); /* the medium is zeros: the compare half matches */
	caw_cdb(c, 0, SBC_MAX_CAW_BLOCKS);
	r = run(c, 16, buf, 2 * half, 2 * half);
	assert_good(r);
	run_free(r);
	assert_blocks(0, SBC_MAX_CAW_BLOCKS, 'B');
	assert_blocks(SBC_MAX_CAW_BLOCKS, 1, 0);
	free(buf);
}

/* 256 blocks do not fit the one-byte field: an initiator asking for them sends 0 with 512
 * blocks of Data-Out, which must fail rather than succeed as a zero-length command. */
static void test_compare_and_write_of_zero_blocks_with_data_out_is_invalid_field(void **state)
{
	size_t len = 2 * 256 * BSZ;
	uint8_t c[16], *buf = calloc(1, len);
	struct run *r;

	caw_cdb(c, 0, 0);
	r = run(c, 16, buf, len, len);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	assert_int_equal(r->t.sense.sks_field, 13);
	assert_int_equal(spy.nwrites, 0);
	run_free(r);
	/* Without Data-Out, zero blocks is a no-op that succeeds. */
	r = run(c, 16, NULL, 0, 0);
	assert_good(r);
	run_free(r);
	free(buf);
}

static void test_compare_and_write_with_wrong_data_out_size_fails(void **state)
{
	uint8_t c[16], buf[4 * BSZ] = {0};
	struct run *r;

	caw_cdb(c, 0, 1);
	r = run(c, 16, buf, 4 * BSZ, 4 * BSZ);
	assert_int_equal(r->t.status, SCSI_STATUS_CHECK_CONDITION);
	run_free(r);
	r = run(c, 16, buf, BSZ, BSZ);
	assert_int_equal(r->t.status, SCSI_STATUS_CHECK_CONDITION);
	assert_int_equal(spy.nwrites, 0);
	run_free(r);
}

static void test_compare_and_write_past_the_end_is_lba_out_of_range(void **state)
{
	uint8_t c[16], buf[2 * BSZ] = {0};
	struct run *r;

	caw_cdb(c, NBLOCKS, 1);
	r = run(c, 16, buf, sizeof(buf), sizeof(buf));
	assert_sense(r, &SENSE_LBA_OUT_OF_RANGE);
	run_free(r);
}

static void test_write_overlapping_a_compare_and_write_in_flight_is_busy(void **state)
{
	uint8_t c[16], w[10], buf[2 * BSZ] = {0};
	struct run *caw, *r;

	/* A file store reads through libaio; hold the CAW's read so it stays in flight. */
	spy.hold = true;
	caw_cdb(c, 80, 1);
	caw = start(c, 16, buf, sizeof(buf), sizeof(buf));
	assert_int_equal(caw->ndone, 0);
	assert_non_null(spy.held);
	spy.hold = false;

	cdb10(w, 0x2a, 0, 80, 1);
	r = run(w, 10, buf, BSZ, BSZ);
	assert_int_equal(r->t.status, SCSI_STATUS_BUSY);
	run_free(r);
	/* A write elsewhere is not held up. */
	cdb10(w, 0x2a, 0, 81, 1);
	r = run(w, 10, buf, BSZ, BSZ);
	assert_good(r);
	run_free(r);

	assert_int_equal(bs_submit(spy.held_bs, g->ctx, spy.held), 0);
	wait_done(caw);
	assert_good(caw);
	run_free(caw);
	/* Released: the same write now goes through. */
	cdb10(w, 0x2a, 0, 80, 1);
	r = run(w, 10, buf, BSZ, BSZ);
	assert_good(r);
	run_free(r);
}

static void test_compare_and_write_aborted_between_stages_does_not_write(void **state)
{
	uint8_t c[16], buf[2 * BSZ];
	struct run *r;

	write_fill(90, 1, 'o');
	memset(buf, 'o', BSZ);
	memset(buf + BSZ, 'n', BSZ);
	spy.hold = true;
	caw_cdb(c, 90, 1);
	r = start(c, 16, buf, sizeof(buf), sizeof(buf));
	spy.hold = false;
	r->t.aborted = true;
	assert_int_equal(bs_submit(spy.held_bs, g->ctx, spy.held), 0);
	wait_done(r);
	assert_int_equal(r->t.status, SCSI_STATUS_TASK_ABORTED);
	run_free(r);
	assert_blocks(90, 1, 'o');
}

/* ---- ORWRITE, WRITE ATOMIC ---- */

static void test_orwrite_ors_data_into_the_medium(void **state)
{
	uint8_t c[16], buf[BSZ];
	struct run *r;

	write_fill(95, 1, 0x0f);
	memset(buf, 0xf0, sizeof(buf));
	cdb16(c, 0x8b, 0, 95, 1);
	r = run(c, 16, buf, BSZ, BSZ);
	assert_good(r);
	run_free(r);
	assert_blocks(95, 1, 0xff);
}

static void test_write_atomic_checks_alignment_and_granularity(void **state)
{
	uint32_t n = 256, unit = SBC_ATOMIC_GRANULARITY(BSZ);
	uint8_t c[16], *buf = calloc(SBC_ATOMIC_MAX_BLOCKS(BSZ) + 1, BSZ);
	struct run *r;

	/* 512-byte blocks: the physical block is 8 of them, and 256 blocks (what libiscsi's
	 * WriteAtomic16.Simple writes) fit. */
	assert_int_equal(unit, 8);
	assert_int_equal(SBC_ATOMIC_ALIGNMENT(BSZ), 8);
	assert_true(SBC_ATOMIC_MAX_BLOCKS(BSZ) >= 256);
	memset(buf, 0x42, (size_t)n * BSZ);
	memset(c, 0, 16);
	c[0] = 0x9c;
	put_be64(c + 2, NBLOCKS - n); /* the end of the LUN, aligned */
	put_be16(c + 12, n);
	r = run(c, 16, buf, n * BSZ, n * BSZ);
	assert_good(r);
	run_free(r);
	assert_blocks(NBLOCKS - n, n, 0x42);

	put_be64(c + 2, unit + 1); /* misaligned */
	r = run(c, 16, buf, n * BSZ, n * BSZ);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);
	put_be64(c + 2, 0);
	put_be16(c + 12, unit + 1); /* not a multiple of the granularity */
	r = run(c, 16, buf, (unit + 1) * BSZ, (unit + 1) * BSZ);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);
	put_be16(c + 12, SBC_ATOMIC_MAX_BLOCKS(BSZ) + unit); /* over the maximum */
	r = run(c, 16, buf, n * BSZ, n * BSZ);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);
	put_be16(c + 12, n);
	put_be16(c + 10, 1); /* an atomic boundary */
	r = run(c, 16, buf, n * BSZ, n * BSZ);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);
	assert_int_equal(spy.nwrites, 1);
	free(buf);
}

/* ---- READ CAPACITY, GET LBA STATUS ---- */

static void test_read_capacity10_reports_last_lba_and_block_size(void **state)
{
	uint8_t c[10];
	struct run *r;

	cdb10(c, 0x25, 0, 0, 0);
	r = run(c, 10, NULL, 0, 8);
	assert_good(r);
	assert_int_equal(r->t.in_len, 8);
	assert_int_equal(r->t.in[3], (NBLOCKS - 1) & 0xff);
	assert_int_equal(r->t.in[2], (NBLOCKS - 1) >> 8);
	assert_int_equal(r->t.in[6], BSZ >> 8);
	run_free(r);
	cdb10(c, 0x25, 0, 5, 0); /* LBA without PMI */
	r = run(c, 10, NULL, 0, 8);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);
}

static void test_read_capacity16_reports_provisioning_and_physical_exponent(void **state)
{
	uint8_t c[16];
	struct run *r;

	cdb16(c, 0x9e, 0x10, 0, 32);
	r = run(c, 16, NULL, 0, 32);
	assert_good(r);
	assert_int_equal(r->t.in_len, 32);
	assert_int_equal(r->t.in[7], (NBLOCKS - 1) & 0xff);
	assert_int_equal(r->t.in[6], (NBLOCKS - 1) >> 8);
	assert_int_equal(r->t.in[10], BSZ >> 8);
	assert_int_equal(r->t.in[13] & 0x0f, 3);    /* 8 x 512 = 4096 */
	assert_int_equal(r->t.in[14] & 0xc0, 0xc0); /* LBPME, LBPRZ */
	run_free(r);
	/* A short allocation length truncates. */
	cdb16(c, 0x9e, 0x10, 0, 12);
	r = run(c, 16, NULL, 0, 12);
	assert_good(r);
	assert_int_equal(r->t.in_len, 12);
	run_free(r);
}

static void test_read_capacity10_of_a_huge_lun_reports_ffffffff(void **state)
{
	struct hf_backstore cfg = {
		.type = HF_BS_MEMORY, .size = (0x100000001ull) * BSZ, .block_size = BSZ};
	const uint8_t box[16] = {9};
	struct backstore *bs;
	struct scsi_lun *lun, *saved = g->lun;
	uint8_t c[10];
	struct run *r;

	snprintf(cfg.name, sizeof(cfg.name), "huge");
	if (bs_open(&cfg, &bs) < 0)
		skip();
	assert_int_equal(scsi_lun_create(bs, box, "huge", &lun), 0);
	g->lun = lun;
	cdb10(c, 0x25, 0, 0, 0);
	r = run(c, 10, NULL, 0, 8);
	assert_good(r);
	assert_int_equal(r->t.in[0] & r->t.in[1] & r->t.in[2] & r->t.in[3], 0xff);
	run_free(r);
	g->lun = saved;
	scsi_lun_destroy(lun);
	bs_close(bs);
}

static int lba_status(uint64_t lba, uint32_t *nblocks)
{
	uint8_t c[16];
	struct run *r;
	int st;

	cdb16(c, 0x9e, 0x12, lba, 24);
	r = run(c, 16, NULL, 0, 24);
	assert_good(r);
	assert_int_equal(r->t.in_len, 24);
	assert_int_equal(r->t.in[3], 20); /* PARAMETER DATA LENGTH: one descriptor */
	assert_int_equal(r->t.in[15], lba & 0xff);
	if (nblocks)
		*nblocks = r->t.in[16] << 24 | r->t.in[17] << 16 | r->t.in[18] << 8 | r->t.in[19];
	st = r->t.in[20] & 0x0f;
	run_free(r);
	return st;
}

static void test_get_lba_status_past_the_end_is_lba_out_of_range(void **state)
{
	uint8_t c[16];
	struct run *r;

	cdb16(c, 0x9e, 0x12, NBLOCKS, 24);
	r = run(c, 16, NULL, 0, 24);
	assert_sense(r, &SENSE_LBA_OUT_OF_RANGE);
	run_free(r);
}

/* ---- WRITE SAME ---- */

static void test_write_same_with_unmap_deallocates_and_reads_zero(void **state)
{
	uint8_t c[10], buf[BSZ] = {0};
	uint32_t n;
	struct run *r;

	write_fill(0, 64, 0xee); /* 8 pages of the memory store */
	assert_int_equal(lba_status(8, NULL), 0);
	cdb10(c, 0x41, 0x08, 8, 16);
	r = run(c, 10, buf, BSZ, BSZ);
	assert_good(r);
	assert_int_equal(spy.nwrites, 1); /* only write_fill's */
	run_free(r);
	assert_int_equal(lba_status(8, &n), 1);
	assert_int_equal(n, 16);
	assert_int_equal(lba_status(24, NULL), 0);
	assert_blocks(8, 16, 0);
	assert_blocks(24, 1, 0xee);
}

static void test_write_same_with_unmap_and_nonzero_pattern_writes_it(void **state)
{
	uint8_t c[10], buf[BSZ];
	struct run *r;

	memset(buf, 0x99, sizeof(buf));
	cdb10(c, 0x41, 0x08, 200, 4);
	r = run(c, 10, buf, BSZ, BSZ);
	assert_good(r);
	run_free(r);
	assert_blocks(200, 4, 0x99);
}

static void test_write_same_replicates_the_block(void **state)
{
	uint8_t c[16], buf[BSZ];
	struct run *r;

	for (unsigned i = 0; i < BSZ; i++)
		buf[i] = 0x21;
	cdb16(c, 0x93, 0, 300, 2048 - 300);
	r = run(c, 16, buf, BSZ, BSZ);
	assert_good(r);
	run_free(r);
	assert_blocks(300, 100, 0x21);
	assert_blocks(NBLOCKS - 1, 1, 0x21);
	assert_blocks(299, 1, 0);
}

static void test_write_same16_ndob_writes_zeros_without_data_out(void **state)
{
	uint8_t c[16];
	struct run *r;

	write_fill(400, 2, 0x55);
	cdb16(c, 0x93, 0x01, 400, 2);
	r = run(c, 16, NULL, 0, 0);
	assert_good(r);
	run_free(r);
	assert_blocks(400, 2, 0);
}

static void test_write_same_zero_blocks_writes_to_the_last_block(void **state)
{
	uint8_t c[10], buf[BSZ];
	struct run *r;

	assert_int_equal(SBC_WSNZ, 0);
	memset(buf, 0x3c, sizeof(buf));
	cdb10(c, 0x41, 0, NBLOCKS - 300, 0);
	r = run(c, 10, buf, BSZ, BSZ);
	assert_good(r);
	run_free(r);
	assert_blocks(NBLOCKS - 300, 300, 0x3c);
	assert_blocks(NBLOCKS - 301, 1, 0);
	/* Past the end, the range wins. */
	cdb10(c, 0x41, 0, NBLOCKS + 1, 0);
	r = run(c, 10, buf, BSZ, BSZ);
	assert_sense(r, &SENSE_LBA_OUT_OF_RANGE);
	run_free(r);
}

static void test_write_same_with_more_than_one_block_of_data_out_is_illegal(void **state)
{
	uint8_t c[16], buf[2 * BSZ] = {0};
	struct run *r;

	write_fill(40, 2, 0x77);
	/* UNMAP set and a zero pattern: still refused, and nothing is unmapped. */
	cdb16(c, 0x93, 0x08, 40, 2);
	r = run(c, 16, buf, sizeof(buf), sizeof(buf));
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);
	cdb10(c, 0x41, 0, 40, 2);
	r = run(c, 10, buf, sizeof(buf), sizeof(buf));
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);
	assert_blocks(40, 2, 0x77);
}

static void test_write_same_lbdata_pbdata_anchor_are_invalid_fields(void **state)
{
	const uint8_t bits[] = {0x02, 0x04, 0x10 | 0x08, 0x20};
	uint8_t c[10], buf[BSZ] = {0};
	struct run *r;

	for (unsigned i = 0; i < sizeof(bits); i++) {
		cdb10(c, 0x41, bits[i], 0, 1);
		r = run(c, 10, buf, BSZ, BSZ);
		assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
		run_free(r);
	}
	assert_int_equal(spy.nwrites, 0);
}

/* ---- UNMAP ---- */

static uint8_t *unmap_list(size_t *len, unsigned nd, const uint64_t *lba, const uint32_t *n)
{
	uint8_t *p = calloc(1, 8 + 16 * nd);

	put_be16(p, 6 + 16 * nd);
	put_be16(p + 2, 16 * nd);
	for (unsigned i = 0; i < nd; i++) {
		put_be64(p + 8 + 16 * i, lba[i]);
		put_be32(p + 16 + 16 * i, n[i]);
	}
	*len = 8 + 16 * nd;
	return p;
}

static void test_unmap_deallocates_the_listed_ranges(void **state)
{
	const uint64_t lba[2] = {512, 640};
	const uint32_t n[2] = {16, 8};
	uint8_t c[10], *p;
	size_t len;
	struct run *r;

	write_fill(512, 256, 0x66);
	p = unmap_list(&len, 2, lba, n);
	cdb10(c, 0x42, 0, 0, len);
	r = run(c, 10, p, len, len);
	assert_good(r);
	run_free(r);
	free(p);
	assert_int_equal(lba_status(512, NULL), 1);
	assert_int_equal(lba_status(640, NULL), 1);
	assert_int_equal(lba_status(528, NULL), 0);
	assert_blocks(512, 16, 0);
	assert_blocks(528, 1, 0x66);
}

static void test_unmap_truncated_parameter_list_is_length_error(void **state)
{
	const uint64_t lba[2] = {512, 640};
	const uint32_t n[2] = {16, 8};
	uint8_t c[10], *p;
	size_t len;
	struct run *r;

	write_fill(512, 8, 0x66);
	p = unmap_list(&len, 2, lba, n);
	/* The header announces two descriptors, the list carries one and a half. */
	cdb10(c, 0x42, 0, 0, len - 8);
	r = run(c, 10, p, len - 8, len - 8);
	assert_sense(r, &SENSE_PARAM_LIST_LENGTH_ERROR);
	run_free(r);
	/* Shorter than the header. */
	cdb10(c, 0x42, 0, 0, 4);
	r = run(c, 10, p, 4, 4);
	assert_sense(r, &SENSE_PARAM_LIST_LENGTH_ERROR);
	run_free(r);
	free(p);
	assert_blocks(512, 8, 0x66);
}

static void test_unmap_descriptor_out_of_range_unmaps_nothing(void **state)
{
	const uint64_t lba[2] = {512, NBLOCKS - 4};
	const uint32_t n[2] = {8, 8};
	uint8_t c[10], *p;
	size_t len;
	struct run *r;

	write_fill(512, 8, 0x66);
	p = unmap_list(&len, 2, lba, n);
	cdb10(c, 0x42, 0, 0, len);
	r = run(c, 10, p, len, len);
	assert_sense(r, &SENSE_LBA_OUT_OF_RANGE);
	run_free(r);
	free(p);
	assert_blocks(512, 8, 0x66);
}

static void test_unmap_zero_length_and_anchor(void **state)
{
	uint8_t c[10];
	struct run *r;

	cdb10(c, 0x42, 0, 0, 0);
	r = run(c, 10, NULL, 0, 0);
	assert_good(r);
	run_free(r);
	cdb10(c, 0x42, 0x01, 0, 0);
	r = run(c, 10, NULL, 0, 0);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);
}

static void test_unmap_too_many_descriptors_is_invalid_field_in_parameter_list(void **state)
{
	unsigned nd = SBC_MAX_UNMAP_DESC + 1;
	uint64_t *lba = calloc(nd, sizeof(*lba));
	uint32_t *n = calloc(nd, sizeof(*n));
	uint8_t c[10], *p;
	size_t len;
	struct run *r;

	p = unmap_list(&len, nd, lba, n);
	cdb10(c, 0x42, 0, 0, len);
	r = run(c, 10, p, len, len);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_PARAM_LIST);
	run_free(r);
	free(p);
	free(lba);
	free(n);
}

/* ---- SYNCHRONIZE CACHE, PRE-FETCH, START STOP UNIT, READ DEFECT DATA ---- */

static void test_synchronize_cache_flushes_the_store(void **state)
{
	uint8_t c[16];
	struct run *r;

	cdb10(c, 0x35, 0, 0, 0);
	r = run(c, 10, NULL, 0, 0);
	assert_good(r);
	assert_int_equal(spy.nflushes, 1);
	run_free(r);
	cdb16(c, 0x91, 0x02, 0, 0); /* IMMED: still flushes */
	r = run(c, 16, NULL, 0, 0);
	assert_good(r);
	assert_int_equal(spy.nflushes, 2);
	run_free(r);
	cdb10(c, 0x35, 0, NBLOCKS - 1, 2);
	r = run(c, 10, NULL, 0, 0);
	assert_sense(r, &SENSE_LBA_OUT_OF_RANGE);
	run_free(r);
}

static void test_prefetch_is_good_in_range_and_out_of_range_past_the_end(void **state)
{
	uint8_t c[16];
	struct run *r;

	cdb10(c, 0x34, 0, NBLOCKS - 256, 256);
	r = run(c, 10, NULL, 0, 0);
	assert_good(r);
	run_free(r);
	cdb16(c, 0x90, 0, NBLOCKS - 1, 2);
	r = run(c, 16, NULL, 0, 0);
	assert_sense(r, &SENSE_LBA_OUT_OF_RANGE);
	run_free(r);
}

static void test_start_stop_unit_refuses_eject_of_fixed_medium(void **state)
{
	uint8_t c[6] = {0x1b, 0, 0, 0, 0x01, 0};
	struct run *r;

	r = run(c, 6, NULL, 0, 0);
	assert_good(r);
	run_free(r);
	c[4] = 0x02; /* LOEJ, START=0: eject */
	r = run(c, 6, NULL, 0, 0);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);
	c[4] = 0x30; /* a power condition is accepted */
	r = run(c, 6, NULL, 0, 0);
	assert_good(r);
	run_free(r);
}

static void test_read_defect_data_returns_empty_lists(void **state)
{
	uint8_t c10[10] = {0x37, 0, 0x18 | 0x03, 0, 0, 0, 0, 0, 32, 0};
	uint8_t c12[12] = {0xb7, 0x08, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0};
	struct run *r;

	r = run(c10, 10, NULL, 0, 32);
	assert_good(r);
	assert_int_equal(r->t.in_len, 4);
	assert_int_equal(r->t.in[1], 0x1b);
	assert_int_equal(r->t.in[2] | r->t.in[3], 0);
	run_free(r);
	r = run(c12, 12, NULL, 0, 32);
	assert_good(r);
	assert_int_equal(r->t.in_len, 8);
	assert_int_equal(r->t.in[1], 0x08);
	run_free(r);
	c10[2] = 0x01; /* a reserved format */
	r = run(c10, 10, NULL, 0, 32);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);
}

static void test_table_has_usage_masks_starting_with_the_opcode(void **state)
{
	for (unsigned i = 0; i < scsi_sbc_ncmds; i++) {
		const struct scsi_cmd_desc *d = &scsi_sbc_cmds[i];

		assert_int_equal(d->usage[0], d->opcode);
		assert_int_equal(d->usage[d->cdb_len - 1], 0x04);
		assert_non_null(d->exec);
		if (d->sa != SCSI_NO_SA)
			assert_int_equal(d->usage[1], d->sa);
	}
}

#define T(f)  cmocka_unit_test_setup_teardown(f, setup_mem, teardown)
#define TF(f) cmocka_unit_test_setup_teardown(f, setup_file, teardown)
#define TD(f) cmocka_unit_test_setup_teardown(f, setup_mem_delayed, teardown)

/* An aborted write whose request still waits before the medium is taken back: it completes
 * with TASK ABORTED at once and the medium never sees it. */
static void test_cancel_takes_back_a_write_not_yet_on_the_medium(void **state)
{
	uint8_t cdb[10], data[BSZ];
	const uint8_t *medium = bs_map(g->bs, 0, BSZ);
	struct run *r;

	memset(data, 0xab, sizeof(data));
	cdb10(cdb, 0x2a, 0, 0, 1);
	r = start(cdb, 10, data, BSZ, BSZ);
	assert_int_equal(r->ndone, 0);
	assert_non_null(r->t.cancel);
	assert_int_equal(r->t.cancel(&r->t), 0);
	assert_int_equal(r->ndone, 1);
	assert_int_equal(r->t.status, SCSI_STATUS_TASK_ABORTED);
	assert_null(r->t.cancel);
	usleep(300 * 1000);
	bs_ctx_reap(g->ctx);
	assert_int_equal(medium[0], 0);
	assert_int_equal(medium[BSZ - 1], 0);
	run_free(r);
}

/* The same write left alone lands once its delay is over (the control for the test above). */
static void test_delayed_write_lands_when_not_cancelled(void **state)
{
	uint8_t cdb[10], data[BSZ];
	const uint8_t *medium = bs_map(g->bs, 0, BSZ);
	struct run *r;

	memset(data, 0xab, sizeof(data));
	cdb10(cdb, 0x2a, 0, 0, 1);
	r = start(cdb, 10, data, BSZ, BSZ);
	assert_int_equal(medium[0], 0);
	wait_done(r);
	assert_good(r);
	assert_null(r->t.cancel);
	assert_int_equal(medium[0], 0xab);
	run_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_write10_then_read10_returns_the_data),
		TF(test_file_store_write_then_read_completes_asynchronously),
		T(test_read_of_zero_blocks_is_good_and_returns_nothing),
		T(test_read_past_the_end_is_lba_out_of_range),
		T(test_read_of_the_last_block_is_good),
		T(test_transfer_longer_than_the_block_limit_is_invalid_field),
		T(test_read_with_rdprotect_is_invalid_field_in_cdb),
		T(test_write_with_wrprotect_is_invalid_field_in_cdb),
		T(test_read6_length_zero_reads_256_blocks),
		T(test_write_with_less_data_out_writes_only_what_arrived),
		TF(test_write_with_more_data_out_writes_only_the_cdb_length),
		T(test_write_of_zero_blocks_is_good_and_writes_nothing),
		T(test_write_past_the_end_is_lba_out_of_range),
		TF(test_fua_reaches_the_store_only_when_asked_with_wce_on),
		TF(test_wce_off_makes_every_write_fua),
		T(test_verify_bytchk1_matching_data_is_good),
		TF(test_verify_miscompare_reports_offset_of_first_difference),
		T(test_verify_bytchk3_compares_one_block_with_each),
		T(test_verify_bytchk0_and_reserved_bytchk),
		TF(test_write_and_verify_writes_with_fua_and_checks),
		T(test_compare_and_write_match_writes_new_data),
		TF(test_compare_and_write_miscompare_leaves_medium_and_reports_offset),
		T(test_compare_and_write_of_the_maximum_length_is_good),
		T(test_compare_and_write_of_zero_blocks_with_data_out_is_invalid_field),
		T(test_compare_and_write_with_wrong_data_out_size_fails),
		T(test_compare_and_write_past_the_end_is_lba_out_of_range),
		TF(test_write_overlapping_a_compare_and_write_in_flight_is_busy),
		TF(test_compare_and_write_aborted_between_stages_does_not_write),
		TD(test_cancel_takes_back_a_write_not_yet_on_the_medium),
		TD(test_delayed_write_lands_when_not_cancelled),
		TF(test_orwrite_ors_data_into_the_medium),
		T(test_write_atomic_checks_alignment_and_granularity),
		T(test_read_capacity10_reports_last_lba_and_block_size),
		T(test_read_capacity16_reports_provisioning_and_physical_exponent),
		T(test_read_capacity10_of_a_huge_lun_reports_ffffffff),
		T(test_get_lba_status_past_the_end_is_lba_out_of_range),
		T(test_write_same_with_unmap_deallocates_and_reads_zero),
		T(test_write_same_with_unmap_and_nonzero_pattern_writes_it),
		TF(test_write_same_replicates_the_block),
		T(test_write_same16_ndob_writes_zeros_without_data_out),
		T(test_write_same_zero_blocks_writes_to_the_last_block),
		T(test_write_same_with_more_than_one_block_of_data_out_is_illegal),
		T(test_write_same_lbdata_pbdata_anchor_are_invalid_fields),
		T(test_unmap_deallocates_the_listed_ranges),
		T(test_unmap_truncated_parameter_list_is_length_error),
		T(test_unmap_descriptor_out_of_range_unmaps_nothing),
		T(test_unmap_zero_length_and_anchor),
		T(test_unmap_too_many_descriptors_is_invalid_field_in_parameter_list),
		T(test_synchronize_cache_flushes_the_store),
		T(test_prefetch_is_good_in_range_and_out_of_range_past_the_end),
		T(test_start_stop_unit_refuses_eject_of_fixed_medium),
		T(test_read_defect_data_returns_empty_lists),
		T(test_table_has_usage_masks_starting_with_the_opcode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
