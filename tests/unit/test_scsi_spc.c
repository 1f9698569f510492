/* Unit tests for the SCSI dispatcher, the SPC-4 command set and the LUN object
 * (target/scsi_exec.c, target/scsi_spc.c, target/lun.c), over a memory backstore. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/config.h"
#include "target/backstore.h"
#include "target/lun.h"
#include "target/scsi_cmd.h"
#include "target/scsi_sense.h"

#define TARGET_IQN "iqn.2024-01.test.holdfast:disk"

static const uint8_t box_id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

struct fx {
	struct backstore *bs;
	struct scsi_lun *lun;
	struct scsi_nexus a, b;
	struct scsi_lun_entry luns[2];
	struct scsi_port ports[2];
	struct scsi_target_info ti;
	struct scsi_task t;
	int done_calls;
};

static void on_done(struct scsi_task *t)
{
	struct fx *f = t->priv;

	f->done_calls++;
}

static void nexus_init(struct scsi_nexus *nx, const char *name, uint8_t isid_last, uint16_t tpgt)
{
	memset(nx, 0, sizeof(*nx));
	snprintf(nx->initiator_name, sizeof(nx->initiator_name), "%s", name);
	nx->isid[5] = isid_last;
	snprintf(nx->initiator_port, sizeof(nx->initiator_port), "%s,i,0x0000000000%02x", name,
		 isid_last);
	nx->tpgt = tpgt;
	nx->rel_port_id = tpgt;
}

static struct backstore *mem_store(uint64_t size, uint32_t bsz)
{
	struct hf_backstore cfg;
	struct backstore *bs = NULL;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.name, sizeof(cfg.name), "mem0");
	cfg.type = HF_BS_MEMORY;
	cfg.size = size;
	cfg.block_size = bsz;
	assert_int_equal(bs_open(&cfg, &bs), 0);
	return bs;
}

/* Run one command from nexus nx on the given LUN (NULL: unmapped); it must complete once. */
static struct scsi_task *run_on(struct fx *f, const struct scsi_nexus *nx, struct scsi_lun *lun,
				const uint8_t *cdb, size_t cdb_len, const void *out,
				uint32_t out_len)
{
	struct scsi_task *t = &f->t;

	scsi_task_release(t);
	memset(t, 0, sizeof(*t));
	t->target = &f->ti;
	t->nexus = nx;
	t->lun = lun;
	memcpy(t->cdb, cdb, cdb_len);
	t->cdb_len = 16;
	t->edtl = 65536;
	t->out = (uint8_t *)out;
	t->out_len = out_len;
	t->done = on_done;
	t->priv = f;
	f->done_calls = 0;
	scsi_task_exec(t);
	assert_int_equal(f->done_calls, 1);
	return t;
}

static struct scsi_task *run(struct fx *f, const struct scsi_nexus *nx, const uint8_t *cdb,
			     size_t cdb_len)
{
	return run_on(f, nx, f->lun, cdb, cdb_len, NULL, 0);
}

#define RUN(f, nx, ...)                                                                            \
	run(f, nx, (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

static void assert_good(const struct scsi_task *t)
{
	if (t->status != SCSI_STATUS_GOOD)
		fail_msg("status %02x sense %x/%02x/%02x", t->status, t->sense.key, t->sense.asc,
			 t->sense.ascq);
}

static void assert_sense(const struct scsi_task *t, const struct scsi_sense *s)
{
	assert_int_equal(t->status, SCSI_STATUS_CHECK_CONDITION);
	assert_int_equal(t->sense.key, s->key);
	assert_int_equal(t->sense.asc, s->asc);
	assert_int_equal(t->sense.ascq, s->ascq);
}

/* INVALID FIELD IN CDB / PARAMETER LIST pointing at byte (and bit, or -1 for none). */
static void assert_field(const struct scsi_task *t, bool cdb, uint16_t byte, int bit)
{
	assert_sense(t, cdb ? &SENSE_INVALID_FIELD_IN_CDB : &SENSE_INVALID_FIELD_IN_PARAM_LIST);
	assert_true(t->sense.sks_valid);
	assert_int_equal(t->sense.sks_cd, cdb);
	assert_int_equal(t->sense.sks_field, byte);
	assert_int_equal(t->sense.sks_bit, bit < 0 ? 0xff : bit);
}

static void clear_ua(struct fx *f, const struct scsi_nexus *nx)
{
	for (int i = 0; i < SCSI_LUN_UA_MAX + 1; i++)
		if (RUN(f, nx, 0x00, 0, 0, 0, 0, 0)->status == SCSI_STATUS_GOOD)
			return;
	fail_msg("unit attentions do not clear");
}

static int setup(void **state)
{
	struct fx *f = test_calloc(1, sizeof(*f));

	f->bs = mem_store(64ull << 20, 512);
	assert_int_equal(scsi_lun_create(f->bs, box_id, "vol0", &f->lun), 0);
	nexus_init(&f->a, "iqn.2024-01.test:host-a", 1, 1);
	nexus_init(&f->b, "iqn.2024-01.test:host-b", 2, 2);
	f->luns[0] = (struct scsi_lun_entry){0, f->lun};
	f->luns[1] = (struct scsi_lun_entry){300, f->lun};
	f->ports[0] = (struct scsi_port){1, 1};
	f->ports[1] = (struct scsi_port){2, 2};
	f->ti = (struct scsi_target_info){TARGET_IQN, f->luns, 2, f->ports, 2};
	scsi_lun_nexus_login(f->lun, &f->a);
	scsi_lun_nexus_login(f->lun, &f->b);
	clear_ua(f, &f->a);
	clear_ua(f, &f->b);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	scsi_task_release(&f->t);
	scsi_lun_destroy(f->lun);
	bs_close(f->bs);
	test_free(f);
	return 0;
}

/* INQUIRY */

static void test_inquiry_standard_data(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = RUN(f, &f->a, 0x12, 0, 0, 0x01, 0x04, 0);

	assert_good(t);
	assert_true(t->in_len >= 36);
	assert_int_equal(t->in[0], 0x00);	   /* connected direct-access device */
	assert_int_equal(t->in[2], 0x06);	   /* SPC-4 */
	assert_int_equal(t->in[3], 0x12);	   /* HISUP, response data format 2 */
	assert_int_equal(t->in[4], t->in_len - 5); /* ADDITIONAL LENGTH */
	assert_int_equal(t->in[5] & 0x30, 0x10);   /* TPGS: implicit ALUA */
	assert_int_equal(t->in[6] & 0x10, 0x10);   /* MULTIP: two ports */
	assert_int_equal(t->in[7] & 0x02, 0x02);   /* CMDQUE */
	assert_memory_equal(t->in + 8, "HOLDFAST", 8);
	assert_memory_equal(t->in + 16, "Holdfast LUN    ", 16);
}

static void test_inquiry_truncates_to_allocation_length(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = RUN(f, &f->a, 0x12, 0, 0, 0, 36, 0);

	assert_good(t);
	assert_int_equal(t->in_len, 36);
	t = RUN(f, &f->a, 0x12, 0x01, 0x83, 0, 6, 0);
	assert_good(t);
	assert_int_equal(t->in_len, 6);
	t = RUN(f, &f->a, 0x12, 0, 0, 0, 0, 0);
	assert_good(t);
	assert_int_equal(t->in_len, 0);
}

static void test_inquiry_page_code_without_evpd_is_invalid_field(void **state)
{
	struct fx *f = *state;

	assert_field(RUN(f, &f->a, 0x12, 0, 0x80, 0, 0xff, 0), true, 2, -1);
}

static void test_inquiry_cmddt_is_invalid_field(void **state)
{
	struct fx *f = *state;

	assert_field(RUN(f, &f->a, 0x12, 0x02, 0, 0, 0xff, 0), true, 1, 1);
}

static void test_inquiry_unknown_vpd_page_is_invalid_field(void **state)
{
	struct fx *f = *state;

	assert_field(RUN(f, &f->a, 0x12, 0x01, 0x99, 0, 0xff, 0), true, 2, -1);
}

static void test_inquiry_on_unmapped_lun_reports_qualifier_3(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t =
		run_on(f, &f->a, NULL, (const uint8_t[]){0x12, 0, 0, 0, 0xff, 0}, 6, NULL, 0);

	assert_good(t);
	assert_int_equal(t->in[0], 0x7f);
}

static void test_vpd_supported_pages_each_answer(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = RUN(f, &f->a, 0x12, 0x01, 0x00, 0, 0xff, 0);
	uint8_t pages[16];
	size_t n;

	assert_good(t);
	n = t->in[3];
	assert_true(n >= 6 && n <= sizeof(pages));
	memcpy(pages, t->in + 4, n);
	assert_int_equal(pages[0], 0x00);
	for (size_t i = 0; i < n; i++) {
		t = RUN(f, &f->a, 0x12, 0x01, pages[i], 0x04, 0x00, 0);
		assert_good(t);
		assert_int_equal(t->in[1], pages[i]);
		assert_int_equal(t->in_len, 4 + (t->in[2] << 8 | t->in[3]));
		if (i)
			assert_true(pages[i] > pages[i - 1]);
	}
}

static void test_vpd_serial_is_stable_and_per_name(void **state)
{
	struct fx *f = *state;
	struct scsi_lun *same, *other;
	struct scsi_task *t = RUN(f, &f->a, 0x12, 0x01, 0x80, 0, 0xff, 0);

	assert_good(t);
	assert_int_equal(t->in[3], 32);
	assert_memory_equal(t->in + 4, scsi_lun_serial(f->lun), 32);

	assert_int_equal(scsi_lun_create(f->bs, box_id, "vol0", &same), 0);
	assert_int_equal(scsi_lun_create(f->bs, box_id, "vol1", &other), 0);
	assert_string_equal(scsi_lun_serial(same), scsi_lun_serial(f->lun));
	assert_memory_equal(scsi_lun_naa(same), scsi_lun_naa(f->lun), 16);
	assert_string_not_equal(scsi_lun_serial(other), scsi_lun_serial(f->lun));
	assert_memory_not_equal(scsi_lun_naa(other), scsi_lun_naa(f->lun), 16);
	scsi_lun_destroy(same);
	scsi_lun_destroy(other);
}

/* Find a designator by association and type in a Device Identification page. */
static const uint8_t *find_designator(const struct scsi_task *t, int assoc, int type)
{
	size_t end = 4 + (t->in[2] << 8 | t->in[3]);

	for (size_t p = 4; p + 4 <= end; p += 4 + t->in[p + 3])
		if (((t->in[p + 1] >> 4) & 3) == assoc && (t->in[p + 1] & 0xf) == type)
			return t->in + p;
	return NULL;
}

static void test_vpd_device_identification_designators(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = RUN(f, &f->b, 0x12, 0x01, 0x83, 0x04, 0x00, 0);
	const uint8_t *d;

	assert_good(t);
	assert_int_equal(t->in_len, 4 + (t->in[2] << 8 | t->in[3]));

	d = find_designator(t, 0, 3); /* NAA */
	assert_non_null(d);
	assert_int_equal(d[0] & 0xf, 1); /* binary */
	assert_int_equal(d[3], 16);
	assert_int_equal(d[4] >> 4, 6); /* IEEE Registered Extended */
	assert_memory_equal(d + 4, scsi_lun_naa(f->lun), 16);

	d = find_designator(t, 0, 1); /* T10 vendor id */
	assert_non_null(d);
	assert_int_equal(d[0] & 0xf, 2); /* ASCII */
	assert_memory_equal(d + 4, "HOLDFAST", 8);
	assert_memory_equal(d + 12, scsi_lun_serial(f->lun), 32);

	d = find_designator(t, 1, 4); /* relative target port */
	assert_non_null(d);
	assert_int_equal(d[0] >> 4, 5);	     /* iSCSI */
	assert_int_equal(d[1] & 0x80, 0x80); /* PIV */
	assert_int_equal(d[6] << 8 | d[7], 2);

	d = find_designator(t, 1, 5); /* target port group */
	assert_non_null(d);
	assert_int_equal(d[6] << 8 | d[7], 2);

	d = find_designator(t, 1, 8); /* SCSI name string of the target port */
	assert_non_null(d);
	assert_int_equal(d[0] & 0xf, 3); /* UTF-8 */
	assert_int_equal(d[3] % 4, 0);
	assert_string_equal((const char *)d + 4, TARGET_IQN ",t,0x0002");

	d = find_designator(t, 2, 8); /* SCSI name string of the target device */
	assert_non_null(d);
	assert_int_equal(d[3] % 4, 0);
	assert_string_equal((const char *)d + 4, TARGET_IQN);
}

static void test_vpd_block_pages_describe_thin_ssd(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = RUN(f, &f->a, 0x12, 0x01, 0xb0, 0, 0xff, 0);

	assert_good(t);
	assert_int_equal(t->in[3], 0x3c);
	assert_int_equal(t->in[4] & 0x01, 0); /* WSNZ: zero blocks means "to the end" */
	assert_int_equal(t->in[5], 255);      /* MAXIMUM COMPARE AND WRITE LENGTH */
	assert_int_equal(t->in[8] << 24 | t->in[9] << 16 | t->in[10] << 8 | t->in[11],
			 SCSI_LUN_MAX_XFER_BYTES / 512);
	/* MAXIMUM UNMAP LBA COUNT no larger than initiators accept (libiscsi: 1 Mi). */
	assert_true((uint32_t)(t->in[20] << 24 | t->in[21] << 16 | t->in[22] << 8 | t->in[23]) <=
		    1024u * 1024u);
	/* MAXIMUM WRITE SAME LENGTH: no more than one READ can return. */
	assert_true((uint32_t)(t->in[40] << 24 | t->in[41] << 16 | t->in[42] << 8 | t->in[43]) <=
		    SCSI_LUN_MAX_XFER_BYTES / 512);
	/* Atomic writes: at least 256 blocks, aligned and granular to the 4 KiB physical
	 * block (8 blocks of 512 bytes). */
	assert_true((uint32_t)(t->in[44] << 24 | t->in[45] << 16 | t->in[46] << 8 | t->in[47]) >=
		    256);
	assert_int_equal(t->in[48] << 24 | t->in[49] << 16 | t->in[50] << 8 | t->in[51], 8);
	assert_int_equal(t->in[52] << 24 | t->in[53] << 16 | t->in[54] << 8 | t->in[55], 8);
	assert_int_equal(t->in[32] & 0x80, 0x80); /* UGAVALID */

	t = RUN(f, &f->a, 0x12, 0x01, 0xb1, 0, 0xff, 0);
	assert_good(t);
	assert_int_equal(t->in[4] << 8 | t->in[5], 1); /* non-rotating */

	t = RUN(f, &f->a, 0x12, 0x01, 0xb2, 0, 0xff, 0);
	assert_good(t);
	assert_int_equal(t->in[5] & 0xe4, 0xe4); /* LBPU LBPWS LBPWS10 LBPRZ */
	assert_int_equal(t->in[6] & 0x07, 0x02); /* thin */
}

/* REPORT LUNS */

static void test_report_luns_lists_mapped_luns(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = RUN(f, &f->a, 0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0);

	assert_good(t);
	assert_int_equal(t->in_len, 8 + 16);
	assert_int_equal(t->in[3], 16);
	assert_int_equal(t->in[8], 0x00);
	assert_int_equal(t->in[9], 0x00);
	assert_int_equal(t->in[16], 0x41); /* flat space addressing, 300 = 0x12c */
	assert_int_equal(t->in[17], 0x2c);
}

static void test_report_luns_well_known_only_is_empty(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = RUN(f, &f->a, 0xa0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0);

	assert_good(t);
	assert_int_equal(t->in_len, 8);
	assert_int_equal(t->in[3], 0);
}

static void test_report_luns_bad_select_report_is_invalid_field(void **state)
{
	struct fx *f = *state;

	assert_field(RUN(f, &f->a, 0xa0, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0), true, 2, -1);
}

static void test_report_luns_on_unmapped_lun_works(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t =
		run_on(f, &f->a, NULL, (const uint8_t[]){0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, 12,
		       NULL, 0);

	assert_good(t);
	assert_int_equal(t->in[3], 16);
}

/* Dispatcher */

static void test_unmapped_lun_refuses_other_commands(void **state)
{
	struct fx *f = *state;

	assert_sense(run_on(f, &f->a, NULL, (const uint8_t[]){0, 0, 0, 0, 0, 0}, 6, NULL, 0),
		     &SENSE_LUN_NOT_SUPPORTED);
	assert_sense(run_on(f, &f->a, NULL, (const uint8_t[]){0xe7, 0, 0, 0, 0, 0}, 6, NULL, 0),
		     &SENSE_LUN_NOT_SUPPORTED);
}

static void test_request_sense_on_unmapped_lun_reports_lun_not_supported(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t =
		run_on(f, &f->a, NULL, (const uint8_t[]){0x03, 0, 0, 0, 18, 0}, 6, NULL, 0);

	assert_good(t);
	assert_int_equal(t->in[2], 0x05);
	assert_int_equal(t->in[12], 0x25);
}

static void test_unknown_opcode_is_invalid_opcode(void **state)
{
	struct fx *f = *state;

	assert_sense(RUN(f, &f->a, 0xe7, 0, 0, 0, 0, 0), &SENSE_INVALID_OPCODE);
}

static void test_unknown_service_action_is_invalid_field(void **state)
{
	struct fx *f = *state;

	assert_field(RUN(f, &f->a, 0xa3, 0x1f, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0), true, 1, 4);
}

static void test_naca_in_control_byte_is_invalid_field(void **state)
{
	struct fx *f = *state;

	assert_field(RUN(f, &f->a, 0x00, 0, 0, 0, 0, 0x04), true, 5, 2);
}

/* Unit attentions */

static void test_first_login_reports_power_on_once(void **state)
{
	struct fx *f = *state;
	struct scsi_nexus c;

	nexus_init(&c, "iqn.2024-01.test:host-c", 3, 1);
	scsi_lun_nexus_login(f->lun, &c);
	assert_sense(RUN(f, &c, 0x00, 0, 0, 0, 0, 0), &SENSE_POWER_ON_RESET);
	assert_good(RUN(f, &c, 0x00, 0, 0, 0, 0, 0));
	assert_good(RUN(f, &f->a, 0x00, 0, 0, 0, 0, 0));
}

static void test_inquiry_and_report_luns_neither_report_nor_clear_ua(void **state)
{
	struct fx *f = *state;

	scsi_lun_ua_one(f->lun, &f->a, &SENSE_CAPACITY_CHANGED);
	assert_good(RUN(f, &f->a, 0x12, 0, 0, 0, 0xff, 0));
	assert_good(RUN(f, &f->a, 0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0));
	assert_sense(RUN(f, &f->a, 0x00, 0, 0, 0, 0, 0), &SENSE_CAPACITY_CHANGED);
	assert_good(RUN(f, &f->a, 0x00, 0, 0, 0, 0, 0));
}

static void test_request_sense_returns_and_clears_ua(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t;

	scsi_lun_ua_one(f->lun, &f->a, &SENSE_REPORTED_LUNS_CHANGED);
	t = RUN(f, &f->a, 0x03, 0, 0, 0, 252, 0);
	assert_good(t);
	assert_int_equal(t->in_len, 18);
	assert_int_equal(t->in[0], 0x70);
	assert_int_equal(t->in[2], 0x06);
	assert_int_equal(t->in[12], 0x3f);
	assert_int_equal(t->in[13], 0x0e);
	assert_good(RUN(f, &f->a, 0x00, 0, 0, 0, 0, 0));
	t = RUN(f, &f->a, 0x03, 0, 0, 0, 252, 0);
	assert_good(t);
	assert_int_equal(t->in[2], 0x00);
	assert_int_equal(t->in[12], 0x00);
}

static void test_request_sense_descriptor_format(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t;

	scsi_lun_ua_one(f->lun, &f->a, &SENSE_MODE_PARAMS_CHANGED);
	t = RUN(f, &f->a, 0x03, 0x01, 0, 0, 252, 0);
	assert_good(t);
	assert_int_equal(t->in_len, 8);
	assert_int_equal(t->in[0], 0x72);
	assert_int_equal(t->in[1], 0x06);
	assert_int_equal(t->in[2], 0x2a);
	assert_int_equal(t->in[3], 0x01);
}

static void test_unit_attentions_queue_in_order_without_duplicates(void **state)
{
	struct fx *f = *state;

	scsi_lun_ua_one(f->lun, &f->a, &SENSE_CAPACITY_CHANGED);
	scsi_lun_ua_one(f->lun, &f->a, &SENSE_MODE_PARAMS_CHANGED);
	scsi_lun_ua_one(f->lun, &f->a, &SENSE_CAPACITY_CHANGED);
	assert_sense(RUN(f, &f->a, 0x00, 0, 0, 0, 0, 0), &SENSE_CAPACITY_CHANGED);
	assert_sense(RUN(f, &f->a, 0x00, 0, 0, 0, 0, 0), &SENSE_MODE_PARAMS_CHANGED);
	assert_good(RUN(f, &f->a, 0x00, 0, 0, 0, 0, 0));
}

static void test_relogin_same_isid_is_same_nexus(void **state)
{
	struct fx *f = *state;
	struct scsi_nexus again = f->a;

	again.id = 99; /* a new session, same initiator port and target port */
	scsi_lun_nexus_login(f->lun, &again);
	assert_good(RUN(f, &again, 0x00, 0, 0, 0, 0, 0));

	scsi_lun_nexus_logout(f->lun, &again);
	scsi_lun_nexus_login(f->lun, &again);
	assert_sense(RUN(f, &again, 0x00, 0, 0, 0, 0, 0), &SENSE_I_T_NEXUS_LOSS);
}

static void test_same_initiator_on_other_port_is_other_nexus(void **state)
{
	struct fx *f = *state;
	struct scsi_nexus other_port = f->a;

	other_port.rel_port_id = 2;
	other_port.tpgt = 2;
	scsi_lun_nexus_login(f->lun, &other_port);
	assert_sense(RUN(f, &other_port, 0x00, 0, 0, 0, 0, 0), &SENSE_POWER_ON_RESET);
}

static void test_lun_reset_reports_29_03_to_every_other_nexus(void **state)
{
	struct fx *f = *state;

	scsi_lun_ua_one(f->lun, &f->b, &SENSE_CAPACITY_CHANGED);
	scsi_lun_reset(f->lun, &f->a);
	/* the nexus that asked learns of the reset from the TMF response */
	assert_good(RUN(f, &f->a, 0x00, 0, 0, 0, 0, 0));
	/* the reset supersedes what was queued before it */
	assert_sense(RUN(f, &f->b, 0x00, 0, 0, 0, 0, 0), &SENSE_BUS_DEVICE_RESET);
	assert_good(RUN(f, &f->b, 0x00, 0, 0, 0, 0, 0));
}

static void test_capacity_change_updates_size_and_reports_2a_09(void **state)
{
	struct fx *f = *state;

	assert_int_equal(scsi_lun_nblocks(f->lun), (64ull << 20) / 512);
	assert_int_equal(bs_resize(f->bs, 128ull << 20), 0);
	scsi_lun_capacity_changed(f->lun);
	assert_int_equal(scsi_lun_nblocks(f->lun), (128ull << 20) / 512);
	assert_sense(RUN(f, &f->a, 0x00, 0, 0, 0, 0, 0), &SENSE_CAPACITY_CHANGED);
	assert_sense(RUN(f, &f->b, 0x00, 0, 0, 0, 0, 0), &SENSE_CAPACITY_CHANGED);
}

/* MODE SENSE / MODE SELECT */

/* Find a mode page in MODE SENSE(6) data. */
static const uint8_t *find_page6(const struct scsi_task *t, uint8_t code)
{
	size_t end = t->in[0] + 1;

	for (size_t p = 4 + t->in[3]; p + 2 <= end; p += 2 + t->in[p + 1])
		if ((t->in[p] & 0x3f) == code)
			return t->in + p;
	return NULL;
}

static void test_mode_sense6_caching_page_and_block_descriptor(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = RUN(f, &f->a, 0x1a, 0, 0x08, 0, 0xff, 0);
	const uint8_t *p;

	assert_good(t);
	assert_int_equal(t->in_len, t->in[0] + 1);
	assert_int_equal(t->in[2] & 0x10, 0x10); /* DPOFUA */
	assert_int_equal(t->in[3], 8);
	assert_int_equal(t->in[4] << 24 | t->in[5] << 16 | t->in[6] << 8 | t->in[7],
			 (64 << 20) / 512);
	assert_int_equal(t->in[9] << 16 | t->in[10] << 8 | t->in[11], 512);
	p = find_page6(t, 0x08);
	assert_non_null(p);
	assert_int_equal(p[1], 0x12);
	assert_int_equal(p[2] & 0x04, 0x04); /* WCE on by default */
	assert_int_equal(p[2] & 0x01, 0x00); /* RCD */
}

static void test_mode_sense_changeable_shows_only_wce(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = RUN(f, &f->a, 0x1a, 0x08, 0x40 | 0x3f, 0, 0xff, 0);
	const uint8_t *p;

	assert_good(t);
	assert_int_equal(t->in[3], 0); /* DBD */
	p = find_page6(t, 0x08);
	assert_non_null(p);
	assert_int_equal(p[2], 0x04);
	p = find_page6(t, 0x0a);
	assert_non_null(p);
	for (int i = 2; i < 12; i++)
		assert_int_equal(p[i], 0);
}

static void test_mode_sense_all_pages_matches_single_pages(void **state)
{
	struct fx *f = *state;
	uint8_t all[256], one[32];
	struct scsi_task *t = RUN(f, &f->a, 0x1a, 0x08, 0x3f, 0, 0xff, 0);
	const uint8_t *p;

	assert_good(t);
	memcpy(all, t->in, t->in_len);
	p = find_page6(t, 0x0a);
	assert_non_null(p);
	assert_int_equal(p[1], 0x0a);
	assert_int_equal(p[2] & 0x04, 0); /* D_SENSE: fixed format */
	memcpy(one, p, 12);
	assert_non_null(find_page6(t, 0x08));
	t = RUN(f, &f->a, 0x1a, 0x08, 0x0a, 0, 0xff, 0);
	assert_good(t);
	assert_memory_equal(find_page6(t, 0x0a), one, 12);
	(void)all;
}

static void test_mode_sense_saved_values_unsupported(void **state)
{
	struct fx *f = *state;

	assert_sense(RUN(f, &f->a, 0x1a, 0, 0xc0 | 0x08, 0, 0xff, 0),
		     &SENSE_SAVING_PARAMS_UNSUPPORTED);
}

static void test_mode_sense_unknown_page_or_subpage_is_invalid_field(void **state)
{
	struct fx *f = *state;

	assert_field(RUN(f, &f->a, 0x1a, 0, 0x2e, 0, 0xff, 0), true, 2, 5);
	assert_field(RUN(f, &f->a, 0x1a, 0, 0x08, 0x01, 0xff, 0), true, 3, -1);
}

static void test_mode_sense10_llbaa_gives_long_descriptor(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = RUN(f, &f->a, 0x5a, 0x10, 0x08, 0, 0, 0, 0, 0x01, 0x00, 0);

	assert_good(t);
	assert_int_equal(t->in_len, (t->in[0] << 8 | t->in[1]) + 2);
	assert_int_equal(t->in[4] & 0x01, 0x01); /* LONGLBA */
	assert_int_equal(t->in[6] << 8 | t->in[7], 16);
	assert_int_equal(t->in[15], (64 << 20) / 512 & 0xff);
	assert_int_equal(t->in[14], ((64 << 20) / 512) >> 8 & 0xff);
	assert_int_equal(t->in[22] << 8 | t->in[23], 512);
	assert_int_equal(t->in[24], 0x08);
}

static void test_mode_sense_truncates_to_allocation_length(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = RUN(f, &f->a, 0x1a, 0, 0x3f, 0, 4, 0);

	assert_good(t);
	assert_int_equal(t->in_len, 4);
	assert_true(t->in[0] > 3); /* the header still says how much there is */
}

/* A MODE SELECT(6) list: header, no block descriptor, the caching page with WCE as given. */
static size_t caching_list(uint8_t *b, bool wce)
{
	memset(b, 0, 24);
	b[4] = 0x08;
	b[5] = 0x12;
	b[6] = wce ? 0x04 : 0x00;
	return 24;
}

static struct scsi_task *mode_select6(struct fx *f, const struct scsi_nexus *nx,
				      const uint8_t *list, uint8_t len)
{
	const uint8_t cdb[6] = {0x15, 0x10, 0, 0, len, 0};

	return run_on(f, nx, f->lun, cdb, 6, list, len);
}

static void test_mode_select_clears_wce_and_tells_other_nexus(void **state)
{
	struct fx *f = *state;
	uint8_t list[24];

	assert_good(mode_select6(f, &f->a, list, (uint8_t)caching_list(list, false)));
	assert_false(scsi_lun_wce(f->lun));
	assert_good(RUN(f, &f->a, 0x00, 0, 0, 0, 0, 0));
	assert_sense(RUN(f, &f->b, 0x00, 0, 0, 0, 0, 0), &SENSE_MODE_PARAMS_CHANGED);
	assert_int_equal(find_page6(RUN(f, &f->b, 0x1a, 0x08, 0x08, 0, 0xff, 0), 0x08)[2] & 0x04,
			 0);
}

static void test_mode_select_without_change_raises_no_ua(void **state)
{
	struct fx *f = *state;
	uint8_t list[24];

	assert_good(mode_select6(f, &f->a, list, (uint8_t)caching_list(list, true)));
	assert_true(scsi_lun_wce(f->lun));
	assert_good(RUN(f, &f->b, 0x00, 0, 0, 0, 0, 0));
}

static void test_mode_select10_with_block_descriptor(void **state)
{
	struct fx *f = *state;
	uint8_t list[8 + 8 + 20];
	const uint8_t cdb[10] = {0x55, 0x10, 0, 0, 0, 0, 0, 0, sizeof(list), 0};

	memset(list, 0, sizeof(list));
	list[7] = 8;
	list[8 + 6] = 0x02; /* block length 512 */
	list[16] = 0x08;
	list[17] = 0x12;
	assert_good(run_on(f, &f->a, f->lun, cdb, 10, list, sizeof(list)));
	assert_false(scsi_lun_wce(f->lun));

	list[8 + 6] = 0x10; /* 4096: the block size cannot change */
	assert_field(run_on(f, &f->a, f->lun, cdb, 10, list, sizeof(list)), false, 8 + 5, -1);
}

static void test_mode_select_unchangeable_bit_points_at_it(void **state)
{
	struct fx *f = *state;
	uint8_t list[24];

	caching_list(list, true);
	list[6] |= 0x01; /* RCD is not changeable */
	assert_field(mode_select6(f, &f->a, list, 24), false, 6, 0);
	assert_true(scsi_lun_wce(f->lun));
}

static void test_mode_select_bad_list_changes_nothing(void **state)
{
	struct fx *f = *state;
	uint8_t list[24 + 12];

	caching_list(list, false);
	memset(list + 24, 0, 12);
	list[24] = 0x0a;
	list[25] = 0x0a;
	list[24 + 2] = 0x04; /* D_SENSE is not changeable */
	assert_field(mode_select6(f, &f->a, list, sizeof(list)), false, 26, 2);
	assert_true(scsi_lun_wce(f->lun));
	assert_good(RUN(f, &f->b, 0x00, 0, 0, 0, 0, 0));
}

static void test_mode_select_truncated_list_is_length_error(void **state)
{
	struct fx *f = *state;
	uint8_t list[24];

	caching_list(list, false);
	assert_sense(mode_select6(f, &f->a, list, 20), &SENSE_PARAM_LIST_LENGTH_ERROR);
	assert_sense(mode_select6(f, &f->a, list, 3), &SENSE_PARAM_LIST_LENGTH_ERROR);
	assert_true(scsi_lun_wce(f->lun));
}

static void test_mode_select_wrong_page_length_or_page_is_invalid_field(void **state)
{
	struct fx *f = *state;
	uint8_t list[24];

	caching_list(list, false);
	list[5] = 0x10;
	assert_field(mode_select6(f, &f->a, list, 24), false, 5, -1);
	caching_list(list, false);
	list[4] = 0x2e;
	assert_field(mode_select6(f, &f->a, list, 24), false, 4, 5);
}

static void test_mode_select_sp_or_no_pf_is_invalid_cdb_field(void **state)
{
	struct fx *f = *state;
	uint8_t list[24];
	const uint8_t sp[6] = {0x15, 0x11, 0, 0, 24, 0};
	const uint8_t nopf[6] = {0x15, 0x00, 0, 0, 24, 0};

	caching_list(list, false);
	assert_field(run_on(f, &f->a, f->lun, sp, 6, list, 24), true, 1, 0);
	assert_field(run_on(f, &f->a, f->lun, nopf, 6, list, 24), true, 1, 4);
	assert_true(scsi_lun_wce(f->lun));
}

/* RESERVE(6) / RELEASE(6) */

static void test_reserve6_conflicts_for_other_nexus(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t;

	assert_good(RUN(f, &f->a, 0x16, 0, 0, 0, 0, 0));
	assert_good(RUN(f, &f->a, 0x16, 0, 0, 0, 0, 0)); /* the holder may reserve again */
	t = RUN(f, &f->b, 0x16, 0, 0, 0, 0, 0);
	assert_int_equal(t->status, SCSI_STATUS_RESERVATION_CONFLICT);
	t = RUN(f, &f->b, 0x1a, 0, 0x3f, 0, 0xff, 0);
	assert_int_equal(t->status, SCSI_STATUS_RESERVATION_CONFLICT);
	assert_good(RUN(f, &f->a, 0x1a, 0, 0x3f, 0, 0xff, 0));
	/* Commands that never conflict, and RELEASE from a non-holder (a no-op). */
	assert_good(RUN(f, &f->b, 0x12, 0, 0, 0, 0xff, 0));
	assert_good(RUN(f, &f->b, 0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0));
	assert_good(RUN(f, &f->b, 0x17, 0, 0, 0, 0, 0));
	assert_int_equal(RUN(f, &f->b, 0x16, 0, 0, 0, 0, 0)->status,
			 SCSI_STATUS_RESERVATION_CONFLICT);
	assert_good(RUN(f, &f->a, 0x17, 0, 0, 0, 0, 0));
	assert_good(RUN(f, &f->b, 0x16, 0, 0, 0, 0, 0));
	assert_int_equal(RUN(f, &f->a, 0x00, 0, 0, 0, 0, 0)->status,
			 SCSI_STATUS_RESERVATION_CONFLICT);
}

static void test_reservation_released_by_logout_and_lun_reset(void **state)
{
	struct fx *f = *state;

	assert_good(RUN(f, &f->a, 0x16, 0, 0, 0, 0, 0));
	scsi_lun_nexus_logout(f->lun, &f->a);
	assert_good(RUN(f, &f->b, 0x16, 0, 0, 0, 0, 0));
	scsi_lun_reset(f->lun, &f->a);
	clear_ua(f, &f->a);
	assert_good(RUN(f, &f->a, 0x16, 0, 0, 0, 0, 0));
}

static void test_unit_attention_comes_before_reservation_conflict(void **state)
{
	struct fx *f = *state;

	assert_good(RUN(f, &f->a, 0x16, 0, 0, 0, 0, 0));
	scsi_lun_ua_one(f->lun, &f->b, &SENSE_CAPACITY_CHANGED);
	assert_sense(RUN(f, &f->b, 0x00, 0, 0, 0, 0, 0), &SENSE_CAPACITY_CHANGED);
	assert_int_equal(RUN(f, &f->b, 0x00, 0, 0, 0, 0, 0)->status,
			 SCSI_STATUS_RESERVATION_CONFLICT);
}

/* REPORT SUPPORTED OPERATION CODES */

static struct scsi_task *rsoc(struct fx *f, uint8_t opts, uint8_t op, uint16_t sa)
{
	const uint8_t cdb[12] = {0xa3, 0x0c, opts, op, sa >> 8, sa & 0xff, 0, 0, 0x10, 0, 0, 0};

	return run_on(f, &f->a, f->lun, cdb, 12, NULL, 0);
}

static void test_rsoc_all_commands_lists_the_table(void **state)
{
	struct fx *f = *state;
	const struct scsi_cmd_desc *const *all;
	unsigned n = scsi_cmd_all(&all);
	struct scsi_task *t = rsoc(f, 0, 0, 0);
	bool seen_inquiry = false, seen_rtpg = false;

	assert_good(t);
	assert_int_equal(t->in_len, 4 + 8 * n);
	assert_int_equal((uint32_t)(t->in[0] << 24 | t->in[1] << 16 | t->in[2] << 8 | t->in[3]),
			 8 * n);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *d = t->in + 4 + 8 * i;

		if (d[0] == 0x12) {
			seen_inquiry = true;
			assert_int_equal(d[5], 0x00);
			assert_int_equal(d[7], 6);
		}
		if (d[0] == 0xa3 && d[3] == 0x0a) {
			seen_rtpg = true;
			assert_int_equal(d[5], 0x01); /* SERVACTV */
			assert_int_equal(d[7], 12);
		}
	}
	assert_true(seen_inquiry && seen_rtpg);
}

static void test_rsoc_rctd_adds_timeouts_descriptors(void **state)
{
	struct fx *f = *state;
	const struct scsi_cmd_desc *const *all;
	unsigned n = scsi_cmd_all(&all);
	struct scsi_task *t = rsoc(f, 0x80, 0, 0);

	assert_good(t);
	assert_int_equal(t->in_len, 4 + 20 * n);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *d = t->in + 4 + 20 * i;

		assert_int_equal(d[5] & 0x02, 0x02); /* CTDP */
		assert_int_equal(d[8] << 8 | d[9], 0x0a);
	}
}

static void test_rsoc_one_command_reports_usage_data(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = rsoc(f, 0x01, 0x12, 0);

	assert_good(t);
	assert_int_equal(t->in[1] & 0x07, 0x03);
	assert_int_equal(t->in[2] << 8 | t->in[3], 6);
	assert_int_equal(t->in_len, 4 + 6);
	assert_int_equal(t->in[4], 0x12);
	assert_int_equal(t->in[5], 0x03);

	t = rsoc(f, 0x81, 0x12, 0);
	assert_good(t);
	assert_int_equal(t->in[1], 0x83);
	assert_int_equal(t->in_len, 4 + 6 + 12);
	assert_int_equal(t->in[10] << 8 | t->in[11], 0x0a);
}

static void test_rsoc_option_1_refuses_opcode_with_service_actions(void **state)
{
	struct fx *f = *state;

	assert_field(rsoc(f, 0x01, 0xa3, 0), true, 3, -1);
}

static void test_rsoc_option_2_reports_service_action(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = rsoc(f, 0x02, 0xa3, 0x0a);

	assert_good(t);
	assert_int_equal(t->in[1] & 0x07, 0x03);
	assert_int_equal(t->in[2] << 8 | t->in[3], 12);
	t = rsoc(f, 0x02, 0xa3, 0x1e);
	assert_good(t);
	assert_int_equal(t->in[1] & 0x07, 0x01);
	assert_field(rsoc(f, 0x02, 0x12, 0), true, 3, -1);
}

static void test_rsoc_option_3_ignores_service_action_when_none(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = rsoc(f, 0x03, 0x12, 0x55);

	assert_good(t);
	assert_int_equal(t->in[1] & 0x07, 0x03);
	t = rsoc(f, 0x03, 0xa3, 0x0c);
	assert_good(t);
	assert_int_equal(t->in[1] & 0x07, 0x03);
}

static void test_rsoc_unsupported_opcode_and_bad_option(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = rsoc(f, 0x01, 0xe7, 0);

	assert_good(t);
	assert_int_equal(t->in[1] & 0x07, 0x01);
	assert_int_equal(t->in[2] << 8 | t->in[3], 0);
	assert_field(rsoc(f, 0x05, 0x12, 0), true, 2, 2);
}

/* REPORT TARGET PORT GROUPS */

static struct scsi_task *rtpg(struct fx *f, const struct scsi_nexus *nx, uint8_t format)
{
	const uint8_t cdb[12] = {0xa3, (uint8_t)(format << 5 | 0x0a), 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};

	return run_on(f, nx, f->lun, cdb, 12, NULL, 0);
}

static void test_rtpg_one_active_optimized_group_per_port(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = rtpg(f, &f->a, 0);
	uint8_t first[64];
	size_t len;

	assert_good(t);
	len = t->in_len;
	assert_int_equal(len, 4 + 2 * 12);
	assert_int_equal(t->in[3], len - 4);
	for (int g = 0; g < 2; g++) {
		const uint8_t *d = t->in + 4 + 12 * g;

		assert_int_equal(d[0] & 0x0f, 0x0);  /* active/optimized */
		assert_int_equal(d[1] & 0x01, 0x01); /* AO_SUP */
		assert_int_equal(d[2] << 8 | d[3], g + 1);
		assert_int_equal(d[7], 1);
		assert_int_equal(d[10] << 8 | d[11], g + 1);
	}
	memcpy(first, t->in, len);
	t = rtpg(f, &f->b, 0);
	assert_good(t);
	assert_int_equal(t->in_len, len);
	assert_memory_equal(t->in, first, len); /* the same answer on every portal */
}

static void test_rtpg_extended_header(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t = rtpg(f, &f->a, 1);

	assert_good(t);
	assert_int_equal(t->in_len, 8 + 2 * 12);
	assert_int_equal(t->in[3], t->in_len - 4);
	assert_int_equal(t->in[4] & 0x70, 0x10);
	assert_field(rtpg(f, &f->a, 2), true, 1, 7);
}

static void test_rtpg_groups_ports_sharing_a_group(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t;

	f->ports[1].tpg_id = 1;
	t = rtpg(f, &f->a, 0);
	assert_good(t);
	assert_int_equal(t->in_len, 4 + 8 + 2 * 4);
	assert_int_equal(t->in[4 + 7], 2);
	assert_int_equal(t->in[4 + 8 + 3], 1);
	assert_int_equal(t->in[4 + 12 + 3], 2);
}

/* Other commands */

static void test_send_diagnostic_self_test_passes(void **state)
{
	struct fx *f = *state;

	assert_good(RUN(f, &f->a, 0x1d, 0x04, 0, 0, 0, 0));
	assert_field(RUN(f, &f->a, 0x1d, 0x24, 0, 0, 0, 0), true, 1, 7);
	assert_field(RUN(f, &f->a, 0x1d, 0x10, 0, 0, 8, 0), true, 3, -1);
}

static void test_lun_over_4k_store_reports_its_geometry(void **state)
{
	struct scsi_lun *lun = NULL;
	struct backstore *bs = mem_store(1 << 20, 4096);

	assert_int_equal(scsi_lun_create(bs, box_id, "x", &lun), 0);
	assert_int_equal(scsi_lun_block_size(lun), 4096);
	assert_int_equal(scsi_lun_nblocks(lun), 256);
	assert_ptr_equal(scsi_lun_bs(lun), bs);
	assert_true(scsi_lun_wce(lun));
	scsi_lun_destroy(lun);
	bs_close(bs);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_inquiry_standard_data),
		T(test_inquiry_truncates_to_allocation_length),
		T(test_inquiry_page_code_without_evpd_is_invalid_field),
		T(test_inquiry_cmddt_is_invalid_field),
		T(test_inquiry_unknown_vpd_page_is_invalid_field),
		T(test_inquiry_on_unmapped_lun_reports_qualifier_3),
		T(test_vpd_supported_pages_each_answer),
		T(test_vpd_serial_is_stable_and_per_name),
		T(test_vpd_device_identification_designators),
		T(test_vpd_block_pages_describe_thin_ssd),
		T(test_report_luns_lists_mapped_luns),
		T(test_report_luns_well_known_only_is_empty),
		T(test_report_luns_bad_select_report_is_invalid_field),
		T(test_report_luns_on_unmapped_lun_works),
		T(test_unmapped_lun_refuses_other_commands),
		T(test_request_sense_on_unmapped_lun_reports_lun_not_supported),
		T(test_unknown_opcode_is_invalid_opcode),
		T(test_unknown_service_action_is_invalid_field),
		T(test_naca_in_control_byte_is_invalid_field),
		T(test_first_login_reports_power_on_once),
		T(test_inquiry_and_report_luns_neither_report_nor_clear_ua),
		T(test_request_sense_returns_and_clears_ua),
		T(test_request_sense_descriptor_format),
		T(test_unit_attentions_queue_in_order_without_duplicates),
		T(test_relogin_same_isid_is_same_nexus),
		T(test_same_initiator_on_other_port_is_other_nexus),
		T(test_lun_reset_reports_29_03_to_every_other_nexus),
		T(test_capacity_change_updates_size_and_reports_2a_09),
		T(test_mode_sense6_caching_page_and_block_descriptor),
		T(test_mode_sense_changeable_shows_only_wce),
		T(test_mode_sense_all_pages_matches_single_pages),
		T(test_mode_sense_saved_values_unsupported),
		T(test_mode_sense_unknown_page_or_subpage_is_invalid_field),
		T(test_mode_sense10_llbaa_gives_long_descriptor),
		T(test_mode_sense_truncates_to_allocation_length),
		T(test_mode_select_clears_wce_and_tells_other_nexus),
		T(test_mode_select_without_change_raises_no_ua),
		T(test_mode_select10_with_block_descriptor),
		T(test_mode_select_unchangeable_bit_points_at_it),
		T(test_mode_select_bad_list_changes_nothing),
		T(test_mode_select_truncated_list_is_length_error),
		T(test_mode_select_wrong_page_length_or_page_is_invalid_field),
		T(test_mode_select_sp_or_no_pf_is_invalid_cdb_field),
		T(test_reserve6_conflicts_for_other_nexus),
		T(test_reservation_released_by_logout_and_lun_reset),
		T(test_unit_attention_comes_before_reservation_conflict),
		T(test_rsoc_all_commands_lists_the_table),
		T(test_rsoc_rctd_adds_timeouts_descriptors),
		T(test_rsoc_one_command_reports_usage_data),
		T(test_rsoc_option_1_refuses_opcode_with_service_actions),
		T(test_rsoc_option_2_reports_service_action),
		T(test_rsoc_option_3_ignores_service_action_when_none),
		T(test_rsoc_unsupported_opcode_and_bad_option),
		T(test_rtpg_one_active_optimized_group_per_port),
		T(test_rtpg_extended_header),
		T(test_rtpg_groups_ports_sharing_a_group),
		T(test_send_diagnostic_self_test_passes),
		cmocka_unit_test(test_lun_over_4k_store_reports_its_geometry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
