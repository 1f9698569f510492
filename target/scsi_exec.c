/* The SCSI dispatcher: finds a command's descriptor, applies the checks SAM-5 and SPC-4 put
 * before every command (LUN mapped, opcode supported, unit attention, reservation) and runs
 * the handler. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cursor.h"
#include "lib/log.h"
#include "target/lun.h"
#include "target/backstore.h"
#include "target/scsi_cmd.h"
#include "target/scsi_pr.h"
#include "target/scsi_sense.h"

/* Room for both tables; scsi_cmd_index_build() refuses more. */
#define SCSI_CMD_MAX 256

static struct {
	pthread_once_t once;
	const struct scsi_cmd_desc *all[SCSI_CMD_MAX];
	unsigned n;
	/* Per opcode: index of its first descriptor in all[] and how many there are. */
	uint16_t first[256];
	uint8_t count[256];
	bool has_sa[256];
} cmd_index = {.once = PTHREAD_ONCE_INIT};

static int cmd_desc_cmp(const void *a, const void *b)
{
	const struct scsi_cmd_desc *x = *(const struct scsi_cmd_desc *const *)a;
	const struct scsi_cmd_desc *y = *(const struct scsi_cmd_desc *const *)b;

	if (x->opcode != y->opcode)
		return x->opcode - y->opcode;
	return (int)x->sa - (int)y->sa;
}

static void cmd_index_add(const struct scsi_cmd_desc *d)
{
	for (unsigned i = 0; i < cmd_index.n; i++) {
		if (cmd_index.all[i]->opcode == d->opcode && cmd_index.all[i]->sa == d->sa) {
			log_warnx("%s: %s (%02xh) is defined twice; keeping %s", __func__, d->name,
				  d->opcode, cmd_index.all[i]->name);
			return;
		}
	}
	if (cmd_index.n == SCSI_CMD_MAX)
		fatalx("%s: more than %d SCSI commands", __func__, SCSI_CMD_MAX);
	cmd_index.all[cmd_index.n++] = d;
}

/* Built once, on first use, from the two tables; read-only afterwards, so lookups take no
 * lock. */
static void cmd_index_build(void)
{
	for (unsigned i = 0; i < scsi_spc_ncmds; i++)
		cmd_index_add(&scsi_spc_cmds[i]);
	for (unsigned i = 0; i < scsi_sbc_ncmds; i++)
		cmd_index_add(&scsi_sbc_cmds[i]);
	for (unsigned i = 0; i < scsi_pr_ncmds; i++)
		cmd_index_add(&scsi_pr_cmds[i]);
	qsort(cmd_index.all, cmd_index.n, sizeof(cmd_index.all[0]), cmd_desc_cmp);
	for (unsigned i = cmd_index.n; i-- > 0;) {
		const struct scsi_cmd_desc *d = cmd_index.all[i];

		cmd_index.first[d->opcode] = i;
		cmd_index.count[d->opcode]++;
		if (d->sa != SCSI_NO_SA)
			cmd_index.has_sa[d->opcode] = true;
	}
}

static void cmd_index_ready(void)
{
	pthread_once(&cmd_index.once, cmd_index_build);
}

bool scsi_cmd_has_sa(uint8_t opcode)
{
	cmd_index_ready();
	return cmd_index.has_sa[opcode];
}

unsigned scsi_cmd_all(const struct scsi_cmd_desc *const **out)
{
	cmd_index_ready();
	*out = cmd_index.all;
	return cmd_index.n;
}

const struct scsi_cmd_desc *scsi_cmd_lookup(uint8_t opcode, uint16_t sa)
{
	cmd_index_ready();
	for (unsigned i = 0; i < cmd_index.count[opcode]; i++) {
		const struct scsi_cmd_desc *d = cmd_index.all[cmd_index.first[opcode] + i];

		if (d->sa == sa)
			return d;
	}
	return NULL;
}

/* The service action of a CDB whose opcode has them: spc4r37 4.2.5.1 puts it in byte 1 bits
 * 4-0, except for the variable-length CDB (7Fh), where it is bytes 8-9 (4.2.3). */
static uint16_t cdb_service_action(const struct scsi_task *t)
{
	struct cursor c;
	uint16_t sa = SCSI_NO_SA;
	uint8_t b;

	cur_init(&c, t->cdb, sizeof(t->cdb));
	if (t->cdb[0] == 0x7f) {
		if (cur_seek(&c, 8) == 0)
			cur_be16(&c, &sa);
		return sa;
	}
	if (cur_seek(&c, 1) == 0 && cur_u8(&c, &b) == 0)
		sa = b & 0x1f;
	return sa;
}

uint8_t *scsi_task_alloc_in(struct scsi_task *t, size_t len)
{
	uint8_t *p = calloc(1, len ? len : 1);

	if (!p)
		return NULL;
	free(t->in_alloc);
	t->in_alloc = p;
	t->in = p;
	t->in_len = 0;
	return p;
}

void scsi_task_release(struct scsi_task *t)
{
	bs_buf_free(t->in_alloc);
	t->in_alloc = NULL;
	free(t->cmd_state);
	t->cmd_state = NULL;
	t->in = NULL;
	t->in_len = 0;
}

void scsi_task_good(struct scsi_task *t)
{
	t->status = SCSI_STATUS_GOOD;
	t->done(t);
}

void scsi_task_check(struct scsi_task *t, const struct scsi_sense *s)
{
	t->status = SCSI_STATUS_CHECK_CONDITION;
	t->sense = *s;
	/* A failed command returns no data (spc4r37 4.5.1: the sense data says why). */
	t->in_len = 0;
	t->done(t);
}

void scsi_task_status(struct scsi_task *t, uint8_t status)
{
	t->status = status;
	t->in_len = 0;
	t->done(t);
}

void scsi_task_exec(struct scsi_task *t)
{
	const struct scsi_cmd_desc *d;
	struct scsi_sense ua;
	uint16_t sa = SCSI_NO_SA;
	uint8_t opcode = t->cdb[0];

	t->status = SCSI_STATUS_GOOD;
	memset(&t->sense, 0, sizeof(t->sense));
	t->in = NULL;
	t->in_len = 0;

	if (scsi_cmd_has_sa(opcode))
		sa = cdb_service_action(t);
	d = scsi_cmd_lookup(opcode, sa);

	/* A shared volume is invisible to initiators outside its cluster (lun.h): for them
	 * it is not mapped. */
	if (t->lun && t->nexus &&
	    scsi_lun_access_of(t->lun, t->nexus->initiator_name) == SCSI_LUN_ACCESS_NONE)
		t->lun = NULL;
	/* spc4r37 4.5.1 / sam5r21 5.9: a LUN that is not mapped answers only the commands that
	 * describe the LUN inventory (INQUIRY with qualifier 011b, REPORT LUNS, REQUEST SENSE);
	 * everything else, unknown opcodes included, is LOGICAL UNIT NOT SUPPORTED. */
	if (!t->lun && (!d || !(d->flags & SCSI_CMD_F_NO_LUN))) {
		scsi_task_check(t, &SENSE_LUN_NOT_SUPPORTED);
		return;
	}
	if (!d) {
		/* spc4r37 4.2.5.1: an unsupported service action of a supported opcode is an
		 * invalid field (the SERVICE ACTION field), not an invalid opcode. */
		if (sa != SCSI_NO_SA && cmd_index.count[opcode])
			scsi_task_check_cdb_field(t, opcode == 0x7f ? 8 : 1,
						  opcode == 0x7f ? -1 : 4);
		else
			scsi_task_check(t, &SENSE_INVALID_OPCODE);
		return;
	}
	/* sam5r21 5.2: NACA set in the CONTROL byte asks for ACA, which Holdfast does not
	 * support (the NormACA bit of INQUIRY is zero), so it is an invalid field. */
	if (d->cdb_len && d->cdb_len <= 16 && (t->cdb[d->cdb_len - 1] & 0x04)) {
		scsi_task_check_cdb_field(t, d->cdb_len - 1, 2);
		return;
	}
	if (t->lun) {
		/* spc4r37 5.14: a pending unit attention is reported (and cleared) by the next
		 * command, except INQUIRY, REPORT LUNS and REQUEST SENSE. */
		if (!(d->flags & SCSI_CMD_F_NO_UA) && scsi_lun_ua_take(t->lun, t->nexus, &ua)) {
			scsi_task_check(t, &ua);
			return;
		}
		/* A fenced host may not change the medium (target/fence.h), nor may a host
		 * that does not own this shared volume (lun.h); both get what SCSI fencing
		 * answers, so cluster software reads it the same way. */
		if ((d->flags & SCSI_CMD_F_MEDIUM_WRITE) && t->nexus &&
		    scsi_lun_write_verdict(t->lun, t->nexus->initiator_name,
					   __atomic_load_n(&t->nexus->fenced, __ATOMIC_ACQUIRE)) ==
			    SCSI_LUN_WRITE_CONFLICT) {
			scsi_task_status(t, SCSI_STATUS_RESERVATION_CONFLICT);
			return;
		}
		/* The single place reservations gate commands: persistent reservations
		 * (spc4r37 5.13.1) and the SCSI-2 reservation (spc2r20 5.5.1), one table. */
		switch (scsi_pr_conflict(t, d)) {
		case SCSI_PR_CONFLICT:
			scsi_task_status(t, SCSI_STATUS_RESERVATION_CONFLICT);
			return;
		case SCSI_PR_DONE:
			return;
		default:
			break;
		}
		/* Maintenance: a write to a paused volume waits in the transport (lun.h). It
		 * comes after every check that refuses, so a held write is one that will run. */
		if ((d->flags & SCSI_CMD_F_MEDIUM_WRITE) && scsi_task_write_gate(t, t->lun))
			return;
	}
	d->exec(t);
}

bool scsi_task_write_gate(struct scsi_task *t, struct scsi_lun *lun)
{
	bool paused = scsi_lun_paused(lun);

	if (t->hold)
		return t->hold(t, lun, paused);
	if (!paused)
		return false;
	/* Nowhere to wait: the initiator retries BUSY (sam5r21 5.3.1). */
	scsi_task_status(t, SCSI_STATUS_BUSY);
	return true;
}
