/* Unit tests for target/scsi_xcopy.c: EXTENDED COPY between the LUNs of one target (a
 * memory store, whose I/O completes inline, and a file store, whose I/O completes through
 * libaio), its parameter list checks, RECEIVE COPY RESULTS and the Third-party Copy VPD
 * page. */
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
#include "target/scsi_sense.h"
#include "target/scsi_xcopy.h"

#define BSZ	512u
#define NBLOCKS 8192u /* 4 MiB: a copy of it takes several chunks */

struct fx {
	struct backstore *mem, *file;
	struct scsi_lun *lmem, *lfile;
	struct scsi_lun_entry luns[2];
	struct scsi_target_info ti;
	struct scsi_nexus nx;
	struct bs_ctx *ctx;
	char dir[64];
};

static struct fx *g;

static int setup(void **state)
{
	struct hf_backstore cfg = {.size = (uint64_t)NBLOCKS * BSZ, .block_size = BSZ};
	const uint8_t box[16] = {7, 7, 7};
	struct fx *f = calloc(1, sizeof(*f));

	cfg.type = HF_BS_MEMORY;
	snprintf(cfg.name, sizeof(cfg.name), "mem");
	assert_int_equal(bs_open(&cfg, &f->mem), 0);
	cfg.type = HF_BS_FILE;
	snprintf(cfg.name, sizeof(cfg.name), "file");
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_xcopy.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(cfg.path, sizeof(cfg.path), "%s/lun.img", f->dir);
	assert_int_equal(bs_open(&cfg, &f->file), 0);
	assert_int_equal(scsi_lun_create(f->mem, box, "mem", &f->lmem), 0);
	assert_int_equal(scsi_lun_create(f->file, box, "file", &f->lfile), 0);
	f->luns[0] = (struct scsi_lun_entry){.lun = 0, .dev = f->lmem};
	f->luns[1] = (struct scsi_lun_entry){.lun = 1, .dev = f->lfile};
	f->ti.name = "iqn.2026-11.test:xcopy";
	f->ti.luns = f->luns;
	f->ti.nluns = 2;
	f->nx.id = 42;
	assert_int_equal(bs_ctx_create(64, &f->ctx), 0);
	scsi_xcopy_results_clear();
	g = f;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char path[128];

	bs_ctx_destroy(f->ctx);
	scsi_lun_destroy(f->lmem);
	scsi_lun_destroy(f->lfile);
	bs_close(f->mem);
	bs_close(f->file);
	snprintf(path, sizeof(path), "%s/lun.img", f->dir);
	unlink(path);
	rmdir(f->dir);
	free(f);
	return 0;
}

struct run {
	struct scsi_task t;
	int ndone;
	uint8_t *outbuf;
};

static void on_done(struct scsi_task *t)
{
	(*(int *)t->priv)++;
}

static struct run *start(struct scsi_lun *lun, const uint8_t *cdb, const void *out,
			 uint32_t out_len, uint32_t edtl)
{
	const struct scsi_cmd_desc *d =
		scsi_cmd_lookup(cdb[0], scsi_cmd_has_sa(cdb[0]) ? cdb[1] & 0x1f : SCSI_NO_SA);
	struct run *r = calloc(1, sizeof(*r));

	assert_non_null(d);
	memcpy(r->t.cdb, cdb, 16);
	r->t.cdb_len = 16;
	r->t.lun = lun;
	r->t.target = &g->ti;
	r->t.nexus = &g->nx;
	r->t.ioctx = g->ctx;
	r->t.edtl = edtl;
	if (out) {
		r->outbuf = bs_buf_alloc(out_len ? out_len : 1);
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

	for (int i = 0; r->ndone == 0 && i < 1000; i++) {
		poll(&p, 1, 10);
		bs_ctx_reap(g->ctx);
	}
	assert_int_equal(r->ndone, 1);
}

static void run_free(struct run *r)
{
	scsi_task_release(&r->t);
	bs_buf_free(r->outbuf);
	free(r);
}

static void assert_sense(const struct run *r, const struct scsi_sense *s)
{
	assert_int_equal(r->t.status, SCSI_STATUS_CHECK_CONDITION);
	assert_int_equal(r->t.sense.key, s->key);
	assert_int_equal(r->t.sense.asc, s->asc);
	assert_int_equal(r->t.sense.ascq, s->ascq);
}

/* ---- building parameter lists ---- */

struct plist {
	uint8_t b[1024 + 64];
	size_t cscd, seg;
};

static void pl_init(struct plist *p, uint8_t list_id, uint8_t usage)
{
	memset(p, 0, sizeof(*p));
	p->b[0] = list_id;
	p->b[1] = (uint8_t)(usage << 3);
}

static void pl_cscd(struct plist *p, struct scsi_lun *lun)
{
	uint8_t *d = p->b + 16 + p->cscd;

	d[0] = 0xe4;
	d[4] = 0x01; /* binary */
	d[5] = 0x03; /* logical unit, NAA */
	d[7] = 16;
	memcpy(d + 8, scsi_lun_naa(lun), 16);
	d[30] = BSZ >> 8;
	p->cscd += 32;
}

static void pl_seg(struct plist *p, uint16_t si, uint16_t di, uint16_t n, uint64_t src,
		   uint64_t dst)
{
	uint8_t *d = p->b + 16 + p->cscd + p->seg;

	d[0] = 0x02;
	put_be16(d + 2, 24);
	put_be16(d + 4, si);
	put_be16(d + 6, di);
	put_be16(d + 10, n);
	put_be64(d + 12, src);
	put_be64(d + 20, dst);
	p->seg += 28;
}

static size_t pl_done(struct plist *p)
{
	put_be16(p->b + 2, (uint16_t)p->cscd);
	put_be32(p->b + 8, (uint32_t)p->seg);
	return 16 + p->cscd + p->seg;
}

static struct run *xcopy(struct scsi_lun *on, struct plist *p, size_t len)
{
	uint8_t cdb[16] = {0x83};
	struct run *r;

	put_be32(cdb + 10, (uint32_t)len);
	r = start(on, cdb, p->b, (uint32_t)len, (uint32_t)len);
	wait_done(r);
	return r;
}

static struct run *rcr(struct scsi_lun *on, uint8_t sa, uint8_t list_id)
{
	uint8_t cdb[16] = {0x84, sa, list_id};
	struct run *r;

	put_be32(cdb + 10, 1024);
	r = start(on, cdb, NULL, 0, 1024);
	wait_done(r);
	return r;
}

/* Write n blocks of v at lba through the SBC WRITE(16) handler. */
static void fill(struct scsi_lun *lun, uint64_t lba, uint64_t n, uint8_t v)
{
	uint8_t cdb[16] = {0x8a};
	uint8_t *data = malloc(n * BSZ);
	struct run *r;

	memset(data, v, n * BSZ);
	put_be64(cdb + 2, lba);
	put_be32(cdb + 10, (uint32_t)n);
	r = start(lun, cdb, data, (uint32_t)(n * BSZ), (uint32_t)(n * BSZ));
	wait_done(r);
	assert_int_equal(r->t.status, SCSI_STATUS_GOOD);
	run_free(r);
	free(data);
}

static void assert_blocks(struct scsi_lun *lun, uint64_t lba, uint64_t n, uint8_t v)
{
	uint8_t cdb[16] = {0x88};
	struct run *r;

	put_be64(cdb + 2, lba);
	put_be32(cdb + 10, (uint32_t)n);
	r = start(lun, cdb, NULL, 0, (uint32_t)(n * BSZ));
	wait_done(r);
	assert_int_equal(r->t.status, SCSI_STATUS_GOOD);
	for (size_t i = 0; i < n * BSZ; i++)
		if (r->t.in[i] != v)
			fail_msg("lba %llu byte %zu: %02x, expected %02x", (unsigned long long)lba,
				 i, r->t.in[i], v);
	run_free(r);
}

/* ---- tests ---- */

static void test_copy_within_a_memory_lun_moves_the_blocks(void **state)
{
	struct plist p;
	struct run *r;
	size_t len;

	fill(g->lmem, 0, 2048, 'A');
	pl_init(&p, 1, 0);
	pl_cscd(&p, g->lmem);
	pl_seg(&p, 0, 0, 2048, 0, NBLOCKS - 2048);
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, len);
	assert_int_equal(r->t.status, SCSI_STATUS_GOOD);
	run_free(r);
	assert_blocks(g->lmem, NBLOCKS - 2048, 2048, 'A');
	assert_blocks(g->lmem, NBLOCKS - 2049, 1, 0);
}

/* Memory to file and back, several chunks each way, file completions arriving later. */
static void test_copy_between_two_luns_of_the_target_in_both_directions(void **state)
{
	struct plist p;
	struct run *r;
	size_t len;

	fill(g->lmem, 100, 5000, 'm');
	pl_init(&p, 2, 0);
	pl_cscd(&p, g->lmem);
	pl_cscd(&p, g->lfile);
	pl_seg(&p, 0, 1, 5000, 100, 7);
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, len);
	assert_int_equal(r->t.status, SCSI_STATUS_GOOD);
	run_free(r);
	assert_blocks(g->lfile, 7, 5000, 'm');
	assert_blocks(g->lfile, 5007, 1, 0);

	fill(g->lfile, 6000, 3, 'f');
	pl_init(&p, 3, 0);
	pl_cscd(&p, g->lfile);
	pl_cscd(&p, g->lmem);
	pl_seg(&p, 0, 1, 3, 6000, 0);
	pl_seg(&p, 0, 1, 3, 6000, 10);
	len = pl_done(&p);
	r = xcopy(g->lfile, &p, len);
	assert_int_equal(r->t.status, SCSI_STATUS_GOOD);
	run_free(r);
	assert_blocks(g->lmem, 0, 3, 'f');
	assert_blocks(g->lmem, 10, 3, 'f');
}

static void test_zero_length_parameter_list_is_good(void **state)
{
	struct plist p;
	struct run *r;

	pl_init(&p, 1, 0);
	r = xcopy(g->lmem, &p, 0);
	assert_int_equal(r->t.status, SCSI_STATUS_GOOD);
	run_free(r);
}

static void test_truncated_lists_are_parameter_list_length_errors(void **state)
{
	struct plist p;
	struct run *r;
	size_t len;

	fill(g->lmem, 0, 1, 'z');
	pl_init(&p, 1, 0);
	pl_cscd(&p, g->lmem);
	pl_seg(&p, 0, 0, 1, 0, 50);
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, 16 + 31); /* inside the CSCD descriptor */
	assert_sense(r, &SENSE_PARAM_LIST_LENGTH_ERROR);
	run_free(r);
	r = xcopy(g->lmem, &p, len - 1); /* inside the segment descriptor */
	assert_sense(r, &SENSE_PARAM_LIST_LENGTH_ERROR);
	run_free(r);
	r = xcopy(g->lmem, &p, 10); /* inside the header */
	assert_sense(r, &SENSE_PARAM_LIST_LENGTH_ERROR);
	run_free(r);
	assert_blocks(g->lmem, 50, 1, 0);
}

static void test_descriptor_counts_and_list_length_limits(void **state)
{
	struct plist p;
	struct run *r;
	size_t len;

	pl_init(&p, 1, 0);
	for (unsigned i = 0; i < SCSI_XCOPY_MAX_CSCD_DESCS + 1; i++)
		pl_cscd(&p, g->lmem);
	pl_seg(&p, 0, 0, 1, 0, 1);
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, len);
	assert_sense(r, &SENSE_TOO_MANY_CSCD_DESCS);
	run_free(r);

	pl_init(&p, 1, 0);
	pl_cscd(&p, g->lmem);
	for (unsigned i = 0; i < SCSI_XCOPY_MAX_SEGMENT_DESCS + 1; i++)
		pl_seg(&p, 0, 0, 1, 0, 1);
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, len);
	assert_sense(r, &SENSE_TOO_MANY_SEGMENT_DESCS);
	run_free(r);

	/* Both over their counts and together over MAXIMUM DESCRIPTOR LIST LENGTH: the
	 * length is checked first. */
	pl_init(&p, 1, 0);
	for (unsigned i = 0; i < SCSI_XCOPY_MAX_CSCD_DESCS + 1; i++)
		pl_cscd(&p, g->lmem);
	for (unsigned i = 0; i < SCSI_XCOPY_MAX_SEGMENT_DESCS + 1; i++)
		pl_seg(&p, 0, 0, 1, 0, 1);
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, len);
	assert_sense(r, &SENSE_PARAM_LIST_LENGTH_ERROR);
	run_free(r);
}

static void test_unsupported_descriptor_types_are_refused(void **state)
{
	struct plist p;
	struct run *r;
	size_t len;

	pl_init(&p, 1, 0);
	pl_cscd(&p, g->lmem);
	p.b[16] = 0xe0; /* Fibre Channel N_Port_Name */
	pl_seg(&p, 0, 0, 1, 0, 1);
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, len);
	assert_sense(r, &SENSE_UNSUPPORTED_CSCD_TYPE);
	run_free(r);

	pl_init(&p, 1, 0);
	pl_cscd(&p, g->lmem);
	pl_seg(&p, 0, 0, 1, 0, 1);
	p.b[16 + 32] = 0x03; /* stream to stream */
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, len);
	assert_sense(r, &SENSE_UNSUPPORTED_SEGMENT_TYPE);
	run_free(r);
}

static void test_unknown_lun_bad_index_and_range_abort_the_copy(void **state)
{
	struct plist p;
	struct run *r;
	size_t len;

	/* A designator no LUN of the target has. */
	pl_init(&p, 1, 0);
	pl_cscd(&p, g->lmem);
	p.b[16 + 8] ^= 0xff;
	pl_seg(&p, 0, 0, 1, 0, 1);
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, len);
	assert_int_equal(r->t.status, SCSI_STATUS_CHECK_CONDITION);
	assert_int_equal(r->t.sense.key, SENSE_KEY_COPY_ABORTED);
	run_free(r);

	/* A destination index past the CSCD list. */
	pl_init(&p, 1, 0);
	pl_cscd(&p, g->lmem);
	pl_seg(&p, 0, 1, 1, 0, 1);
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, len);
	assert_int_equal(r->t.sense.key, SENSE_KEY_COPY_ABORTED);
	run_free(r);

	/* A destination range past the last block: nothing is written. */
	fill(g->lmem, 0, 4, 'r');
	pl_init(&p, 1, 0);
	pl_cscd(&p, g->lmem);
	pl_seg(&p, 0, 0, 4, 0, NBLOCKS - 1);
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, len);
	assert_int_equal(r->t.sense.key, SENSE_KEY_COPY_ABORTED);
	run_free(r);
	assert_blocks(g->lmem, NBLOCKS - 1, 1, 0);
}

static void test_aborted_copy_stops_between_chunks(void **state)
{
	struct plist p;
	uint8_t cdb[16] = {0x83};
	struct run *r;
	size_t len;

	fill(g->lfile, 0, 4096, 'q');
	pl_init(&p, 1, 0);
	pl_cscd(&p, g->lfile);
	pl_seg(&p, 0, 0, 4096, 0, 4096); /* 2 MiB: two chunks */
	len = pl_done(&p);
	put_be32(cdb + 10, (uint32_t)len);
	r = start(g->lfile, cdb, p.b, (uint32_t)len, (uint32_t)len);
	/* The first read is in flight on libaio; abort before it completes. */
	assert_int_equal(r->ndone, 0);
	r->t.aborted = true;
	wait_done(r);
	assert_int_equal(r->t.status, SCSI_STATUS_TASK_ABORTED);
	run_free(r);
	/* The second chunk was never written. */
	assert_blocks(g->lfile, 4096 + 2048, 2048, 0);
}

static void test_receive_copy_results_operating_parameters(void **state)
{
	struct run *r = rcr(g->lmem, 0x03, 0);

	assert_int_equal(r->t.status, SCSI_STATUS_GOOD);
	assert_true(r->t.in_len >= 44);
	assert_int_equal(r->t.in[8] << 8 | r->t.in[9], SCSI_XCOPY_MAX_CSCD_DESCS);
	assert_int_equal(r->t.in[10] << 8 | r->t.in[11], SCSI_XCOPY_MAX_SEGMENT_DESCS);
	assert_int_equal(
		(uint32_t)(r->t.in[12] << 24 | r->t.in[13] << 16 | r->t.in[14] << 8 | r->t.in[15]),
		SCSI_XCOPY_MAX_DESC_LIST_LEN);
	assert_int_equal(r->t.in[43], 2);
	assert_int_equal(r->t.in[44], 0x02);
	assert_int_equal(r->t.in[45], 0xe4);
	run_free(r);
}

static void test_copy_status_is_held_per_list_id_only_when_asked(void **state)
{
	struct plist p;
	struct run *r;
	size_t len;

	r = rcr(g->lmem, 0x00, 9);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);

	fill(g->lmem, 0, 8, 's');
	pl_init(&p, 9, 0); /* LIST ID USAGE 00b: hold */
	pl_cscd(&p, g->lmem);
	pl_seg(&p, 0, 0, 8, 0, 100);
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, len);
	assert_int_equal(r->t.status, SCSI_STATUS_GOOD);
	run_free(r);
	r = rcr(g->lmem, 0x00, 9);
	assert_int_equal(r->t.status, SCSI_STATUS_GOOD);
	assert_int_equal(r->t.in_len, 12);
	assert_int_equal(r->t.in[4] & 0x7f, 0x01); /* completed without errors */
	assert_int_equal(r->t.in[5] << 8 | r->t.in[6], 1);
	assert_int_equal(r->t.in[11], 4); /* 4 KiB */
	run_free(r);
	/* Another LUN of the same nexus holds nothing under that id. */
	r = rcr(g->lfile, 0x00, 9);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);

	/* LIST ID USAGE 11b: not held. */
	pl_init(&p, 10, 3);
	pl_cscd(&p, g->lmem);
	pl_seg(&p, 0, 0, 8, 0, 200);
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, len);
	assert_int_equal(r->t.status, SCSI_STATUS_GOOD);
	run_free(r);
	r = rcr(g->lmem, 0x00, 10);
	assert_sense(r, &SENSE_INVALID_FIELD_IN_CDB);
	run_free(r);
}

static void test_failed_segment_details_carry_the_sense(void **state)
{
	struct plist p;
	struct run *r;
	size_t len;

	pl_init(&p, 5, 0);
	pl_cscd(&p, g->lmem);
	pl_seg(&p, 0, 3, 1, 0, 1);
	len = pl_done(&p);
	r = xcopy(g->lmem, &p, len);
	assert_int_equal(r->t.sense.key, SENSE_KEY_COPY_ABORTED);
	run_free(r);
	r = rcr(g->lmem, 0x04, 5);
	assert_int_equal(r->t.status, SCSI_STATUS_GOOD);
	assert_int_equal(r->t.in[56], SCSI_STATUS_CHECK_CONDITION);
	assert_true((r->t.in[58] << 8 | r->t.in[59]) >= 18);
	assert_int_equal(r->t.in[60 + 2] & 0x0f, SENSE_KEY_COPY_ABORTED);
	run_free(r);
	r = rcr(g->lmem, 0x00, 5);
	assert_int_equal(r->t.in[4] & 0x7f, 0x02); /* completed with errors */
	run_free(r);
}

static void test_vpd_page_lists_the_copy_commands(void **state)
{
	uint8_t b[128] = {0};
	size_t n = scsi_xcopy_vpd(b, sizeof(b));

	assert_true(n > 8);
	assert_int_equal(n % 4, 0);
	assert_int_equal(b[4] << 8 | b[5], 0x0001);
	assert_int_equal((size_t)(b[6] << 8 | b[7]), n - 8);
	assert_int_equal(b[9], 0x83);
	assert_int_equal(b[12], 0x84);
	assert_int_equal(b[13], 3);
	assert_memory_equal(b + 14, ((uint8_t[]){0x00, 0x03, 0x04}), 3);
	/* Too little room: only the header. */
	assert_int_equal(scsi_xcopy_vpd(b, 8), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_copy_within_a_memory_lun_moves_the_blocks),
		T(test_copy_between_two_luns_of_the_target_in_both_directions),
		T(test_zero_length_parameter_list_is_good),
		T(test_truncated_lists_are_parameter_list_length_errors),
		T(test_descriptor_counts_and_list_length_limits),
		T(test_unsupported_descriptor_types_are_refused),
		T(test_unknown_lun_bad_index_and_range_abort_the_copy),
		T(test_aborted_copy_stops_between_chunks),
		T(test_receive_copy_results_operating_parameters),
		T(test_copy_status_is_held_per_list_id_only_when_asked),
		T(test_failed_segment_details_carry_the_sense),
		T(test_vpd_page_lists_the_copy_commands),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
