/* Unit tests for a LUN's shared-volume access policy (lun.h, scsi_lun_set_access) as the
 * dispatcher enforces it: the owner writes, the cluster's other hosts read and get
 * RESERVATION CONFLICT for writes, hosts outside the cluster do not see the LUN, and a stale
 * epoch cannot undo an ownership change. */
#include <errno.h>
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

#define BSZ 512u

static const uint8_t box_id[16] = {7};

struct fx {
	struct backstore *bs;
	struct bs_ctx *ctx;
	struct scsi_lun *lun;
	struct scsi_nexus owner, reader, outsider;
	struct scsi_lun_entry luns[1];
	struct scsi_port ports[1];
	struct scsi_target_info ti;
	struct scsi_task t;
	uint8_t *buf;
	int done_calls;
};

static const char *const OWNER = "iqn.2026-11.test:owner";
static const char *const READER = "iqn.2026-11.test:reader";
static const char *const OUTSIDER = "iqn.2026-11.test:outsider";

static void nexus_init(struct scsi_nexus *nx, const char *name)
{
	memset(nx, 0, sizeof(*nx));
	snprintf(nx->initiator_name, sizeof(nx->initiator_name), "%s", name);
	snprintf(nx->initiator_port, sizeof(nx->initiator_port), "%s,i,0x000000000001", name);
	nx->tpgt = 1;
	nx->rel_port_id = 1;
}

static int setup(void **state)
{
	static struct fx f;
	struct hf_backstore cfg = {.type = HF_BS_MEMORY, .size = 1 << 20, .block_size = BSZ};

	memset(&f, 0, sizeof(f));
	snprintf(cfg.name, sizeof(cfg.name), "shared0");
	assert_int_equal(bs_open(&cfg, &f.bs), 0);
	assert_int_equal(bs_ctx_create(16, &f.ctx), 0);
	assert_int_equal(scsi_lun_create(f.bs, box_id, "shared0", &f.lun), 0);
	nexus_init(&f.owner, OWNER);
	nexus_init(&f.reader, READER);
	nexus_init(&f.outsider, OUTSIDER);
	f.luns[0].lun = 0;
	f.luns[0].dev = f.lun;
	f.ports[0].rel_port_id = 1;
	f.ports[0].tpg_id = 1;
	f.ti.name = "iqn.2026-11.test:cluster";
	f.ti.luns = f.luns;
	f.ti.nluns = 1;
	f.ti.ports = f.ports;
	f.ti.nports = 1;
	f.buf = bs_buf_alloc(BSZ);
	memset(f.buf, 0x5a, BSZ);
	/* Each nexus has seen the LUN once already (no power-on unit attention in the way). */
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	scsi_task_release(&f->t);
	bs_buf_free(f->buf);
	scsi_lun_destroy(f->lun);
	bs_ctx_destroy(f->ctx);
	bs_close(f->bs);
	return 0;
}

static void on_done(struct scsi_task *t)
{
	struct fx *f = t->priv;

	f->done_calls++;
}

static struct scsi_task *run(struct fx *f, const struct scsi_nexus *nx, const uint8_t *cdb,
			     size_t len, bool write)
{
	struct scsi_task *t = &f->t;

	scsi_task_release(t);
	memset(t, 0, sizeof(*t));
	t->target = &f->ti;
	t->nexus = nx;
	t->lun = f->lun;
	memcpy(t->cdb, cdb, len);
	t->cdb_len = 16;
	t->edtl = BSZ;
	t->ioctx = f->ctx;
	if (write) {
		t->out = f->buf;
		t->out_len = BSZ;
		t->dir = SCSI_DIR_WRITE;
	} else {
		t->dir = SCSI_DIR_READ;
	}
	t->done = on_done;
	t->priv = f;
	f->done_calls = 0;
	scsi_task_exec(t);
	assert_int_equal(f->done_calls, 1);
	return t;
}

static const uint8_t WRITE10[10] = {0x2a, 0, 0, 0, 0, 8, 0, 0, 1, 0};
static const uint8_t READ10[10] = {0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0};
static const uint8_t TUR[6] = {0};
static const uint8_t REPORT_LUNS[12] = {0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};

static void apply(struct fx *f, const char *owner, uint64_t epoch, int want)
{
	const char *owners[] = {owner};
	const char *members[] = {OWNER, READER};

	assert_int_equal(scsi_lun_set_access(f->lun, owners, 1, members, 2, epoch, false), want);
}

static void apply_paused(struct fx *f, const char *owner, uint64_t epoch, bool paused, int want)
{
	const char *owners[] = {owner};
	const char *members[] = {OWNER, READER};

	assert_int_equal(scsi_lun_set_access(f->lun, owners, 1, members, 2, epoch, paused), want);
}

/* A transport's hold hook that takes every task while paused, as target/hold.c does. */
static int hooks_called, hooks_taken;
static struct scsi_lun *hook_lun;

static bool hold_hook(struct scsi_task *t, struct scsi_lun *lun, bool paused)
{
	(void)t;
	hooks_called++;
	hook_lun = lun;
	if (paused)
		hooks_taken++;
	return paused;
}

/* Run a command through the dispatcher with the hold hook; returns how often done ran. */
static int run_hooked(struct fx *f, const struct scsi_nexus *nx, const uint8_t *cdb, size_t len,
		      bool write)
{
	struct scsi_task *t = &f->t;

	scsi_task_release(t);
	memset(t, 0, sizeof(*t));
	t->target = &f->ti;
	t->nexus = nx;
	t->lun = f->lun;
	memcpy(t->cdb, cdb, len);
	t->cdb_len = 16;
	t->edtl = write ? BSZ : 4096;
	t->ioctx = f->ctx;
	t->out = write ? f->buf : NULL;
	t->out_len = write ? BSZ : 0;
	t->dir = write ? SCSI_DIR_WRITE : SCSI_DIR_READ;
	t->done = on_done;
	t->priv = f;
	t->hold = hold_hook;
	f->done_calls = 0;
	scsi_task_exec(t);
	return f->done_calls;
}

static void test_without_policy_everyone_writes(void **state)
{
	struct fx *f = *state;

	assert_int_equal(run(f, &f->outsider, WRITE10, 10, true)->status, SCSI_STATUS_GOOD);
	assert_int_equal(scsi_lun_access_of(f->lun, OUTSIDER), SCSI_LUN_ACCESS_WRITE);
}

static void test_owner_writes_member_reads_and_is_refused_writes(void **state)
{
	struct fx *f = *state;

	apply(f, OWNER, 1, 0);
	assert_int_equal(run(f, &f->owner, WRITE10, 10, true)->status, SCSI_STATUS_GOOD);
	assert_int_equal(run(f, &f->reader, READ10, 10, false)->status, SCSI_STATUS_GOOD);
	assert_int_equal(f->t.in[0], 0x5a);
	assert_int_equal(run(f, &f->reader, WRITE10, 10, true)->status,
			 SCSI_STATUS_RESERVATION_CONFLICT);
}

static void test_outsider_does_not_see_the_lun(void **state)
{
	struct fx *f = *state;
	struct scsi_task *t;

	apply(f, OWNER, 1, 0);
	t = run(f, &f->outsider, TUR, 6, false);
	assert_int_equal(t->status, SCSI_STATUS_CHECK_CONDITION);
	assert_int_equal(t->sense.key, SENSE_LUN_NOT_SUPPORTED.key);
	assert_int_equal(t->sense.asc, SENSE_LUN_NOT_SUPPORTED.asc);
	t = run(f, &f->outsider, REPORT_LUNS, 12, false);
	assert_int_equal(t->status, SCSI_STATUS_GOOD);
	assert_int_equal(t->in[3], 0); /* LUN LIST LENGTH: empty */
	t = run(f, &f->reader, REPORT_LUNS, 12, false);
	assert_int_equal(t->in[3], 8); /* one LUN */
}

static void test_transfer_swaps_roles(void **state)
{
	struct fx *f = *state;

	apply(f, OWNER, 1, 0);
	apply(f, READER, 2, 0);
	assert_int_equal(run(f, &f->reader, WRITE10, 10, true)->status, SCSI_STATUS_GOOD);
	assert_int_equal(run(f, &f->owner, WRITE10, 10, true)->status,
			 SCSI_STATUS_RESERVATION_CONFLICT);
}

static void test_stale_epoch_cannot_undo_a_transfer(void **state)
{
	struct fx *f = *state;

	apply(f, OWNER, 1, 0);
	apply(f, READER, 2, 0);
	apply(f, OWNER, 1, -ESTALE);
	assert_int_equal(scsi_lun_access_of(f->lun, READER), SCSI_LUN_ACCESS_WRITE);
	assert_int_equal(scsi_lun_access_of(f->lun, OWNER), SCSI_LUN_ACCESS_READ);
}

static void test_clearing_the_policy_opens_the_lun(void **state)
{
	struct fx *f = *state;

	apply(f, OWNER, 1, 0);
	scsi_lun_clear_access(f->lun);
	assert_int_equal(scsi_lun_access_of(f->lun, OUTSIDER), SCSI_LUN_ACCESS_WRITE);
}

static const uint8_t WRITE_SAME16[16] = {0x93, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0};
static const uint8_t INQUIRY[6] = {0x12, 0, 0, 0x10, 0, 0};

/* The pure verdict: conflict beats the pause, the pause holds only the owner. */
static void test_write_verdict_table(void **state)
{
	struct fx *f = *state;

	assert_int_equal(scsi_lun_write_verdict(f->lun, OUTSIDER, false), SCSI_LUN_WRITE_GO);
	assert_int_equal(scsi_lun_write_verdict(f->lun, OWNER, true), SCSI_LUN_WRITE_CONFLICT);
	assert_false(scsi_lun_paused(f->lun));
	apply_paused(f, OWNER, 1, false, 0);
	assert_int_equal(scsi_lun_write_verdict(f->lun, OWNER, false), SCSI_LUN_WRITE_GO);
	assert_int_equal(scsi_lun_write_verdict(f->lun, READER, false), SCSI_LUN_WRITE_CONFLICT);
	assert_int_equal(scsi_lun_write_verdict(f->lun, OUTSIDER, false), SCSI_LUN_WRITE_CONFLICT);
	apply_paused(f, OWNER, 1, true, 0); /* the same epoch may pause */
	assert_true(scsi_lun_paused(f->lun));
	assert_int_equal(scsi_lun_write_verdict(f->lun, OWNER, false), SCSI_LUN_WRITE_HOLD);
	assert_int_equal(scsi_lun_write_verdict(f->lun, OWNER, true), SCSI_LUN_WRITE_CONFLICT);
	assert_int_equal(scsi_lun_write_verdict(f->lun, READER, false), SCSI_LUN_WRITE_CONFLICT);
	apply_paused(f, OWNER, 1, false, 0); /* and resume */
	assert_false(scsi_lun_paused(f->lun));
	assert_int_equal(scsi_lun_write_verdict(f->lun, OWNER, false), SCSI_LUN_WRITE_GO);
}

static void test_a_stale_epoch_cannot_pause_or_resume(void **state)
{
	struct fx *f = *state;

	apply_paused(f, OWNER, 5, true, 0);
	apply_paused(f, OWNER, 4, false, -ESTALE);
	assert_true(scsi_lun_paused(f->lun));
	scsi_lun_clear_access(f->lun);
	assert_false(scsi_lun_paused(f->lun));
}

/* Without a transport to hold it, a paused LUN answers the owner's write BUSY; reads and
 * commands that do not change the medium go on, and a reader's write is still a conflict. */
static void test_paused_without_hold_hook_answers_busy(void **state)
{
	struct fx *f = *state;

	apply_paused(f, OWNER, 1, true, 0);
	assert_int_equal(run(f, &f->owner, WRITE10, 10, true)->status, SCSI_STATUS_BUSY);
	assert_int_equal(run(f, &f->owner, READ10, 10, false)->status, SCSI_STATUS_GOOD);
	assert_int_equal(run(f, &f->reader, READ10, 10, false)->status, SCSI_STATUS_GOOD);
	assert_int_equal(run(f, &f->owner, TUR, 6, false)->status, SCSI_STATUS_GOOD);
	assert_int_equal(run(f, &f->reader, WRITE10, 10, true)->status,
			 SCSI_STATUS_RESERVATION_CONFLICT);
	apply_paused(f, OWNER, 1, false, 0);
	assert_int_equal(run(f, &f->owner, WRITE10, 10, true)->status, SCSI_STATUS_GOOD);
}

/* With a hold hook, every command that changes the medium goes to it (paused or not, so the
 * transport can keep order); the hook takes it while paused, and done is not called. */
static void test_paused_write_class_commands_are_held(void **state)
{
	struct fx *f = *state;

	apply_paused(f, OWNER, 1, true, 0);
	hooks_called = hooks_taken = 0;
	assert_int_equal(run_hooked(f, &f->owner, WRITE10, 10, true), 0);
	assert_ptr_equal(hook_lun, f->lun);
	assert_int_equal(run_hooked(f, &f->owner, WRITE_SAME16, 16, true), 0);
	assert_int_equal(hooks_taken, 2);
	/* Reads and INQUIRY never reach the hook. */
	assert_int_equal(run_hooked(f, &f->owner, READ10, 10, false), 1);
	assert_int_equal(f->t.status, SCSI_STATUS_GOOD);
	assert_int_equal(run_hooked(f, &f->owner, INQUIRY, 6, false), 1);
	assert_int_equal(hooks_called, 2);
	/* A write refused anyway is answered, not held. */
	assert_int_equal(run_hooked(f, &f->reader, WRITE10, 10, true), 1);
	assert_int_equal(f->t.status, SCSI_STATUS_RESERVATION_CONFLICT);
	assert_int_equal(hooks_called, 2);
	/* Resumed: the hook is asked and lets it run. */
	apply_paused(f, OWNER, 1, false, 0);
	assert_int_equal(run_hooked(f, &f->owner, WRITE10, 10, true), 1);
	assert_int_equal(f->t.status, SCSI_STATUS_GOOD);
	assert_int_equal(hooks_called, 3);
	assert_int_equal(hooks_taken, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_without_policy_everyone_writes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_owner_writes_member_reads_and_is_refused_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outsider_does_not_see_the_lun, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_transfer_swaps_roles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_epoch_cannot_undo_a_transfer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_clearing_the_policy_opens_the_lun, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_write_verdict_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_stale_epoch_cannot_pause_or_resume, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_paused_without_hold_hook_answers_busy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_paused_write_class_commands_are_held, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
