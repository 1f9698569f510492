/* Unit tests for the persistent reservation glue (target/scsi_pr.c) over a real LUN on a memory
 * backstore: persist-before-GOOD with rollback, restore after a restart, the conflict check the
 * dispatcher calls, unit attentions, and PREEMPT AND ABORT waiting for the transport. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/config.h"
#include "lib/cursor.h"
#include "target/backstore.h"
#include "target/lun.h"
#include "target/scsi_cmd.h"
#include "target/scsi_pr.h"
#include "target/scsi_sense.h"

static const uint8_t box_id[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};

#define K1 0x1111ull
#define K2 0x2222ull

struct fx {
	struct backstore *bs;
	struct scsi_lun *lun;
	struct scsi_nexus a, b;
	struct scsi_port ports[2];
	struct scsi_target_info ti;
	struct scsi_task t;
	int done_calls;
	char dir[64];
};

static void on_done(struct scsi_task *t)
{
	struct fx *f = t->priv;

	f->done_calls++;
}

static void nexus_init(struct scsi_nexus *nx, const char *name, uint8_t isid_last)
{
	memset(nx, 0, sizeof(*nx));
	snprintf(nx->initiator_name, sizeof(nx->initiator_name), "%s", name);
	nx->isid[5] = isid_last;
	snprintf(nx->initiator_port, sizeof(nx->initiator_port), "%s,i,0x0000000000%02x", name,
		 isid_last);
	nx->tpgt = 1;
	nx->rel_port_id = 1;
}

static int setup(void **st)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct hf_backstore cfg;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.name, sizeof(cfg.name), "prmem");
	cfg.type = HF_BS_MEMORY;
	cfg.size = 1 << 20;
	cfg.block_size = 512;
	assert_int_equal(bs_open(&cfg, &f->bs), 0);
	assert_int_equal(scsi_lun_create(f->bs, box_id, "prmem", &f->lun), 0);
	nexus_init(&f->a, "iqn.2024-01.test:a", 1);
	nexus_init(&f->b, "iqn.2024-01.test:b", 2);
	f->ports[0] = (struct scsi_port){1, 1};
	f->ports[1] = (struct scsi_port){2, 2};
	f->ti.name = "iqn.2024-01.test:target";
	f->ti.ports = f->ports;
	f->ti.nports = 2;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_scsi_pr.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	scsi_pr_set_data_dir(f->dir);
	scsi_pr_set_store_io(NULL);
	*st = f;
	return 0;
}

static int teardown(void **st)
{
	struct fx *f = *st;
	char cmd[128];

	scsi_task_release(&f->t);
	scsi_pr_lun_gone(f->lun);
	scsi_lun_destroy(f->lun);
	bs_close(f->bs);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	scsi_pr_abort_hook = NULL;
	free(f);
	return 0;
}

static const struct scsi_cmd_desc *desc(uint8_t op, uint8_t sa)
{
	for (unsigned i = 0; i < scsi_pr_ncmds; i++)
		if (scsi_pr_cmds[i].opcode == op && scsi_pr_cmds[i].sa == sa)
			return &scsi_pr_cmds[i];
	return NULL;
}

/* Start a task; expect_done says whether it must have completed on return. */
static struct scsi_task *start(struct fx *f, const struct scsi_nexus *nx, const uint8_t *cdb,
			       const void *out, uint32_t out_len, bool expect_done)
{
	struct scsi_task *t = &f->t;
	const struct scsi_cmd_desc *d = desc(cdb[0], cdb[1] & 0x1f);

	assert_non_null(d);
	scsi_task_release(t);
	memset(t, 0, sizeof(*t));
	t->target = &f->ti;
	t->nexus = nx;
	t->lun = f->lun;
	memcpy(t->cdb, cdb, 10);
	t->cdb_len = 10;
	t->edtl = 65536;
	t->out = (uint8_t *)out;
	t->out_len = out_len;
	t->done = on_done;
	t->priv = f;
	f->done_calls = 0;
	d->exec(t);
	assert_int_equal(f->done_calls, expect_done ? 1 : 0);
	return t;
}

static struct scsi_task *prout(struct fx *f, const struct scsi_nexus *nx, uint8_t sa, uint8_t type,
			       uint64_t rk, uint64_t sark, uint8_t flags, bool expect_done)
{
	uint8_t cdb[10] = {0x5f, sa, type, 0, 0, 0, 0, 0, 24, 0};
	static uint8_t p[24];

	memset(p, 0, sizeof(p));
	put_be64(p, rk);
	put_be64(p + 8, sark);
	p[20] = flags;
	return start(f, nx, cdb, p, 24, expect_done);
}

static uint32_t read_keys(struct fx *f, const struct scsi_nexus *nx, uint32_t *gen)
{
	uint8_t cdb[10] = {0x5e, 0x00, 0, 0, 0, 0, 0, 0x10, 0x00, 0};
	struct scsi_task *t = start(f, nx, cdb, NULL, 0, true);

	assert_int_equal(t->status, SCSI_STATUS_GOOD);
	*gen = (uint32_t)t->in[0] << 24 | t->in[1] << 16 | t->in[2] << 8 | t->in[3];
	return ((uint32_t)t->in[4] << 24 | t->in[5] << 16 | t->in[6] << 8 | t->in[7]) / 8;
}

static void assert_sense(const struct scsi_task *t, const struct scsi_sense *s)
{
	assert_int_equal(t->status, SCSI_STATUS_CHECK_CONDITION);
	assert_int_equal(t->sense.key, s->key);
	assert_int_equal(t->sense.asc, s->asc);
	assert_int_equal(t->sense.ascq, s->ascq);
}

static int fail_rc;

static int failing_write(void *arg, const char *path, const void *data, size_t len)
{
	return fail_rc;
}

static int real_read(void *arg, const char *path, void *buf, size_t cap, size_t *len)
{
	return pr_store_posix.read(NULL, path, buf, cap, len);
}

static const struct pr_store_io failing_io = {failing_write, real_read, NULL};

static void test_failed_aptpl_save_fails_command_and_rolls_back(void **st)
{
	struct fx *f = *st;
	struct scsi_task *t;
	uint32_t gen;

	t = prout(f, &f->a, PR_OUT_REGISTER, 0, 0, K1, 0x01, true);
	assert_int_equal(t->status, SCSI_STATUS_GOOD);
	scsi_pr_set_store_io(&failing_io);
	fail_rc = -EIO;
	t = prout(f, &f->b, PR_OUT_REGISTER, 0, 0, K2, 0x01, true);
	assert_sense(t, &SENSE_INTERNAL_TARGET_FAILURE);
	fail_rc = -ENOSPC;
	t = prout(f, &f->a, PR_OUT_RESERVE, PR_TYPE_EA, K1, 0, 0, true);
	assert_sense(t, &SENSE_INSUFFICIENT_REGISTRATION_RESOURCES);
	/* Memory still holds the state of the last acknowledged command. */
	assert_int_equal(read_keys(f, &f->a, &gen), 1);
	assert_int_equal(gen, 1);
	uint8_t rd[10] = {0x5e, 0x01, 0, 0, 0, 0, 0, 0, 64, 0};
	t = start(f, &f->a, rd, NULL, 0, true);
	assert_int_equal(t->in_len, 8); /* no reservation */
}

static void test_aptpl_state_survives_restart(void **st)
{
	struct fx *f = *st;
	uint32_t gen;

	prout(f, &f->a, PR_OUT_REGISTER, 0, 0, K1, 0x01, true);
	prout(f, &f->b, PR_OUT_REGISTER, 0, 0, K2, 0x01, true);
	assert_int_equal(prout(f, &f->a, PR_OUT_RESERVE, PR_TYPE_WE_RO, K1, 0, 0, true)->status,
			 SCSI_STATUS_GOOD);
	/* Forget the in-memory state, as a restart would. */
	scsi_pr_lun_gone(f->lun);
	assert_int_equal(read_keys(f, &f->a, &gen), 2);
	assert_int_equal(gen, 2);
	/* The reservation is back: b is a registrant (allowed), a stranger is not. */
	struct scsi_nexus c;
	const uint8_t wr[10] = {0x2a};
	struct scsi_cmd_desc d = {.opcode = 0x2a, .flags = SCSI_CMD_F_MEDIUM_WRITE};

	nexus_init(&c, "iqn.2024-01.test:c", 3);
	f->t.lun = f->lun;
	memcpy(f->t.cdb, wr, 10);
	f->t.cdb_len = 10;
	f->t.nexus = &c;
	assert_int_equal(scsi_pr_conflict(&f->t, &d), SCSI_PR_CONFLICT);
	f->t.nexus = &f->b;
	assert_int_equal(scsi_pr_conflict(&f->t, &d), SCSI_PR_PASS);
}

static void test_without_aptpl_restart_forgets(void **st)
{
	struct fx *f = *st;
	uint32_t gen;

	prout(f, &f->a, PR_OUT_REGISTER, 0, 0, K1, 0, true);
	scsi_pr_lun_gone(f->lun);
	assert_int_equal(read_keys(f, &f->a, &gen), 0);
}

static void test_conflict_check_gates_commands(void **st)
{
	struct fx *f = *st;
	struct scsi_cmd_desc rd = {.opcode = 0x28, .flags = SCSI_CMD_F_MEDIUM_READ};
	struct scsi_cmd_desc inq = {.opcode = 0x12, .flags = SCSI_CMD_F_NO_CONFLICT};
	struct scsi_cmd_desc res6 = {.opcode = 0x16};

	prout(f, &f->a, PR_OUT_REGISTER, 0, 0, K1, 0, true);
	prout(f, &f->a, PR_OUT_RESERVE, PR_TYPE_EA, K1, 0, 0, true);
	f->t.lun = f->lun;
	f->t.cdb_len = 10;
	f->t.cdb[0] = 0x28;
	f->t.nexus = &f->b;
	assert_int_equal(scsi_pr_conflict(&f->t, &rd), SCSI_PR_CONFLICT);
	f->t.nexus = &f->a;
	assert_int_equal(scsi_pr_conflict(&f->t, &rd), SCSI_PR_PASS);
	f->t.cdb[0] = 0x12;
	f->t.nexus = &f->b;
	assert_int_equal(scsi_pr_conflict(&f->t, &inq), SCSI_PR_PASS);
	/* CRH: RESERVE(6) from the holder completes GOOD without running. */
	memset(f->t.cdb, 0, 10);
	f->t.cdb[0] = 0x16;
	f->t.nexus = &f->a;
	f->t.done = on_done;
	f->t.priv = f;
	f->done_calls = 0;
	assert_int_equal(scsi_pr_conflict(&f->t, &res6), SCSI_PR_DONE);
	assert_int_equal(f->done_calls, 1);
	assert_int_equal(f->t.status, SCSI_STATUS_GOOD);
	f->t.nexus = &f->b;
	assert_int_equal(scsi_pr_conflict(&f->t, &res6), SCSI_PR_CONFLICT);
}

static void test_scsi2_reservation_blocks_pr_commands_of_others(void **st)
{
	struct fx *f = *st;

	assert_int_equal(scsi_lun_scsi2_reserve(f->lun, &f->a), 0);
	f->t.lun = f->lun;
	f->t.cdb_len = 10;
	memset(f->t.cdb, 0, 10);
	f->t.cdb[0] = 0x5e;
	f->t.nexus = &f->b;
	assert_int_equal(scsi_pr_conflict(&f->t, desc(0x5e, 0)), SCSI_PR_CONFLICT);
	f->t.nexus = &f->a;
	assert_int_equal(scsi_pr_conflict(&f->t, desc(0x5e, 0)), SCSI_PR_PASS);
	scsi_lun_scsi2_release(f->lun, &f->a);
}

static void test_preempt_queues_unit_attention_for_victim(void **st)
{
	struct fx *f = *st;
	struct scsi_sense ua;

	prout(f, &f->a, PR_OUT_REGISTER, 0, 0, K1, 0, true);
	prout(f, &f->b, PR_OUT_REGISTER, 0, 0, K2, 0, true);
	while (scsi_lun_ua_take(f->lun, &f->a, &ua))
		;
	assert_int_equal(prout(f, &f->b, PR_OUT_PREEMPT, PR_TYPE_WE, K2, K1, 0, true)->status,
			 SCSI_STATUS_GOOD);
	assert_true(scsi_lun_ua_take(f->lun, &f->a, &ua));
	/* The power-on UA of a's first sight may come first. */
	if (ua.asc == 0x29)
		assert_true(scsi_lun_ua_take(f->lun, &f->a, &ua));
	assert_int_equal(ua.asc, 0x2a);
	assert_int_equal(ua.ascq, 0x05);
}

static struct scsi_pr_abort *pending;

static void hook(struct scsi_pr_abort *req)
{
	pending = req;
}

static void test_preempt_and_abort_completes_after_transport_aborts(void **st)
{
	struct fx *f = *st;
	struct scsi_task *t;

	scsi_pr_abort_hook = hook;
	pending = NULL;
	prout(f, &f->a, PR_OUT_REGISTER, 0, 0, K1, 0, true);
	prout(f, &f->b, PR_OUT_REGISTER, 0, 0, K2, 0, true);
	prout(f, &f->a, PR_OUT_RESERVE, PR_TYPE_WE_RO, K1, 0, 0, true);
	t = prout(f, &f->b, PR_OUT_PREEMPT_AND_ABORT, PR_TYPE_WE_RO, K2, K1, 0, false);
	assert_non_null(pending);
	assert_ptr_equal(pending->by, t);
	assert_int_equal(pending->n, 1);
	assert_string_equal(pending->itns[0].initiator_port, f->a.initiator_port);
	assert_int_equal(pending->itns[0].rel_port_id, 1);
	/* Not complete until the transport says the victim's tasks are gone. */
	assert_int_equal(f->done_calls, 0);
	pending->done(pending);
	assert_int_equal(f->done_calls, 1);
	assert_int_equal(t->status, SCSI_STATUS_GOOD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_failed_aptpl_save_fails_command_and_rolls_back,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_aptpl_state_survives_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_without_aptpl_restart_forgets, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_conflict_check_gates_commands, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_scsi2_reservation_blocks_pr_commands_of_others,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_preempt_queues_unit_attention_for_victim,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_preempt_and_abort_completes_after_transport_aborts, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
