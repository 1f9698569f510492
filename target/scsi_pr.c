/* PERSISTENT RESERVE IN/OUT and the reservation check, over the pr/ engine. One record per LUN
 * holds the engine state, a scratch state for the command being decided, and a mutex that
 * serializes the PR commands of the LUN. The per-command check reads an atomic "registrations
 * exist" flag first, so LUNs without persistent reservations pay no lock. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cursor.h"
#include "lib/log.h"
#include "pr/pr.h"
#include "pr/pr_store.h"
#include "target/lun.h"
#include "target/scsi_cmd.h"
#include "target/scsi_pr.h"
#include "target/scsi_sense.h"

/* LUNs with PR state in one process; each is a few hundred KiB, allocated on first use. */
#define SCSI_PR_MAX_LUNS 1024
/* Target ports a target can have (ALL_TG_PT registers on each). */
#define SCSI_PR_MAX_PORTS 64

struct pr_lun {
	struct scsi_lun *lun;
	pthread_mutex_t mu;
	atomic_bool active;  /* registrations exist */
	char path[PATH_MAX]; /* APTPL file, or "" without a data folder */
	struct pr_state *cur;
	struct pr_state *next;
	struct pr_result res;
};

static struct {
	pthread_mutex_t mu; /* creation and removal of records */
	_Atomic(struct scsi_lun *) key[SCSI_PR_MAX_LUNS];
	_Atomic(struct pr_lun *) rec[SCSI_PR_MAX_LUNS];
	atomic_uint n;
	char dir[PATH_MAX];
	const struct pr_store_io *io;
} pr_tab = {.mu = PTHREAD_MUTEX_INITIALIZER};

void (*scsi_pr_abort_hook)(struct scsi_pr_abort *req);
size_t (*scsi_pr_known_hook)(const struct scsi_task *t, struct pr_nexus_ref *out, size_t max);

void scsi_pr_set_data_dir(const char *dir)
{
	pthread_mutex_lock(&pr_tab.mu);
	snprintf(pr_tab.dir, sizeof(pr_tab.dir), "%s", dir ? dir : "");
	pthread_mutex_unlock(&pr_tab.mu);
}

void scsi_pr_set_store_io(const struct pr_store_io *io)
{
	pthread_mutex_lock(&pr_tab.mu);
	pr_tab.io = io;
	pthread_mutex_unlock(&pr_tab.mu);
}

static const struct pr_store_io *store_io(void)
{
	return pr_tab.io ? pr_tab.io : &pr_store_posix;
}

static struct pr_lun *pr_lun_find(struct scsi_lun *lun)
{
	unsigned n = atomic_load_explicit(&pr_tab.n, memory_order_acquire);

	for (unsigned i = 0; i < n; i++)
		if (atomic_load_explicit(&pr_tab.key[i], memory_order_acquire) == lun)
			return atomic_load_explicit(&pr_tab.rec[i], memory_order_acquire);
	return NULL;
}

static void pr_lun_free(struct pr_lun *pl)
{
	if (!pl)
		return;
	pthread_mutex_destroy(&pl->mu);
	free(pl->cur);
	free(pl->next);
	free(pl);
}

/* The record of a LUN, created and loaded from its APTPL file on first use. NULL only when out
 * of memory or out of slots. */
static struct pr_lun *pr_lun_get(struct scsi_lun *lun)
{
	struct pr_lun *pl = pr_lun_find(lun);
	unsigned n, slot;
	int rc;

	if (pl)
		return pl;
	pthread_mutex_lock(&pr_tab.mu);
	pl = pr_lun_find(lun);
	if (pl)
		goto out;
	n = atomic_load(&pr_tab.n);
	/* Reuse a slot freed by scsi_pr_lun_gone() before growing the table. */
	for (slot = 0; slot < n; slot++)
		if (!atomic_load(&pr_tab.key[slot]))
			break;
	if (slot == SCSI_PR_MAX_LUNS) {
		log_warnx("%s: %s: more than %d LUNs", __func__, scsi_lun_name(lun),
			  SCSI_PR_MAX_LUNS);
		goto out;
	}
	pl = calloc(1, sizeof(*pl));
	if (!pl || !(pl->cur = malloc(sizeof(*pl->cur))) ||
	    !(pl->next = malloc(sizeof(*pl->next)))) {
		pr_lun_free(pl);
		pl = NULL;
		goto out;
	}
	pthread_mutex_init(&pl->mu, NULL);
	pl->lun = lun;
	pr_state_init(pl->cur);
	if (pr_tab.dir[0] && snprintf(pl->path, sizeof(pl->path), "%s/pr-%s.state", pr_tab.dir,
				      scsi_lun_serial(lun)) < (int)sizeof(pl->path)) {
		rc = pr_store_load(store_io(), pl->path, pl->cur);
		if (rc)
			/* A damaged file must not pass for "no reservations" silently; the state
			 * starts empty and the operator is told. */
			log_warnx("%s: %s: cannot restore persistent reservations from %s: %s",
				  __func__, scsi_lun_name(lun), pl->path, strerror(-rc));
		else if (pl->cur->nregs)
			log_info("%s: %s: restored %u registrations, generation %u", __func__,
				 scsi_lun_name(lun), pl->cur->nregs, pl->cur->generation);
	} else {
		pl->path[0] = '\0';
	}
	atomic_store(&pl->active, pl->cur->nregs > 0);
	atomic_store_explicit(&pr_tab.rec[slot], pl, memory_order_release);
	atomic_store_explicit(&pr_tab.key[slot], lun, memory_order_release);
	if (slot == n)
		atomic_store_explicit(&pr_tab.n, n + 1, memory_order_release);
out:
	pthread_mutex_unlock(&pr_tab.mu);
	return pl;
}

void scsi_pr_lun_gone(struct scsi_lun *lun)
{
	struct pr_lun *pl = NULL;
	unsigned n;

	pthread_mutex_lock(&pr_tab.mu);
	n = atomic_load(&pr_tab.n);
	for (unsigned i = 0; i < n; i++) {
		if (atomic_load(&pr_tab.key[i]) == lun) {
			pl = atomic_load(&pr_tab.rec[i]);
			atomic_store(&pr_tab.key[i], NULL);
			atomic_store(&pr_tab.rec[i], NULL);
			break;
		}
	}
	pthread_mutex_unlock(&pr_tab.mu);
	/* No command reaches a LUN that is being destroyed, so nobody holds pl now. */
	pr_lun_free(pl);
}

/* A nexus for lun.h's unit attention queue: that queue is keyed by initiator port name and
 * relative target port id, which is what the engine reports. */
static void nexus_of(const struct pr_itn *itn, struct scsi_nexus *nx)
{
	memset(nx, 0, sizeof(*nx));
	snprintf(nx->initiator_port, sizeof(nx->initiator_port), "%s", itn->port);
	pr_port_name(itn->port, nx->initiator_name, sizeof(nx->initiator_name));
	nx->rel_port_id = itn->rel_port;
}

static size_t ctx_ports(const struct scsi_task *t, uint16_t *ports, size_t max)
{
	size_t n = 0;

	if (t->target)
		for (size_t i = 0; i < t->target->nports && n < max; i++)
			ports[n++] = t->target->ports[i].rel_port_id;
	return n;
}

static void ctx_fill(struct pr_ctx *ctx, const struct scsi_task *t, uint16_t *ports,
		     struct pr_nexus_ref *known, size_t maxknown, const struct pr_lun *pl)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->self.port = t->nexus->initiator_port;
	ctx->self.rel_port = t->nexus->rel_port_id;
	ctx->ports = ports;
	ctx->nports = ctx_ports(t, ports, SCSI_PR_MAX_PORTS);
	ctx->known = known;
	if (known && scsi_pr_known_hook)
		ctx->nknown = scsi_pr_known_hook(t, known, maxknown);
	if (known && ctx->nknown == 0 && maxknown) {
		known[0] = ctx->self;
		ctx->nknown = 1;
	}
	ctx->ptpl_capable = pl->path[0] != '\0';
}

/* spc4r37 6.15: PERSISTENT RESERVE IN. */
static void pr_in_exec(struct scsi_task *t)
{
	struct pr_lun *pl = pr_lun_get(t->lun);
	struct scsi_sense sense;
	struct pr_ctx ctx;
	uint16_t ports[SCSI_PR_MAX_PORTS];
	uint16_t alloc = (uint16_t)(t->cdb[7] << 8 | t->cdb[8]);
	uint8_t *buf, status;
	size_t len;

	if (!pl) {
		scsi_task_check(t, &SENSE_INTERNAL_TARGET_FAILURE);
		return;
	}
	buf = scsi_task_alloc_in(t, alloc);
	if (!buf) {
		scsi_task_check(t, &SENSE_INTERNAL_TARGET_FAILURE);
		return;
	}
	ctx_fill(&ctx, t, ports, NULL, 0, pl);
	pthread_mutex_lock(&pl->mu);
	status = pr_in(pl->cur, &ctx, t->cdb, t->cdb_len, buf, alloc, &len, &sense);
	pthread_mutex_unlock(&pl->mu);
	if (status != SCSI_STATUS_GOOD) {
		scsi_task_check(t, &sense);
		return;
	}
	t->in_len = (uint32_t)len;
	scsi_task_good(t);
}

static void abort_done(struct scsi_pr_abort *req)
{
	struct scsi_task *t = req->by;

	free(req);
	scsi_task_good(t);
}

/* Copy the abort list out of the engine's result (which the next command reuses) into one
 * allocation: the request, the nexus array and the port names. */
static struct scsi_pr_abort *abort_req(struct scsi_task *t, const struct pr_result *res)
{
	struct scsi_pr_abort *req;
	struct scsi_pr_itn *itns;
	struct pr_itn *names;

	req = calloc(1, sizeof(*req) + res->nabort * (sizeof(*itns) + sizeof(*names)));
	if (!req)
		return NULL;
	itns = (struct scsi_pr_itn *)(req + 1);
	names = (struct pr_itn *)(itns + res->nabort);
	for (size_t i = 0; i < res->nabort; i++) {
		names[i] = res->abort[i];
		itns[i].initiator_port = names[i].port;
		itns[i].rel_port_id = names[i].rel_port;
	}
	req->lun = t->lun;
	req->by = t;
	req->n = res->nabort;
	req->itns = itns;
	req->done = abort_done;
	return req;
}

/* The sense for an APTPL state that could not be saved. A full file system is the one case
 * SPC-4 names (INSUFFICIENT REGISTRATION RESOURCES, 05/55/04: the initiator can free some and
 * retry); any other failure is the target's (INTERNAL TARGET FAILURE, 04/44/00). */
static const struct scsi_sense *save_sense(int rc)
{
	if (rc == -ENOSPC || rc == -EDQUOT)
		return &SENSE_INSUFFICIENT_REGISTRATION_RESOURCES;
	return &SENSE_INTERNAL_TARGET_FAILURE;
}

/* Apply a decided command: persist first (spc4r37 5.13.5 via DESIGN: persist before GOOD), then
 * make the new state current and queue the unit attentions. Called with pl->mu held. Returns
 * 0, or a negative errno when the save failed and nothing was applied. */
static int apply(struct pr_lun *pl, const char *why)
{
	struct pr_state *tmp;
	struct scsi_nexus nx;
	int rc;

	if (pl->res.persist) {
		rc = pr_store_save(store_io(), pl->path, pl->next);
		if (rc) {
			log_warnx("%s: %s: %s: cannot save %s: %s", __func__,
				  scsi_lun_name(pl->lun), why, pl->path, strerror(-rc));
			return rc;
		}
	}
	tmp = pl->cur;
	pl->cur = pl->next;
	pl->next = tmp;
	atomic_store_explicit(&pl->active, pl->cur->nregs > 0, memory_order_release);
	for (size_t i = 0; i < pl->res.nua; i++) {
		nexus_of(&pl->res.ua[i].itn, &nx);
		scsi_lun_ua_one(pl->lun, &nx, &pl->res.ua[i].ua);
	}
	return 0;
}

/* spc4r37 6.16: PERSISTENT RESERVE OUT. */
static void pr_out_exec(struct scsi_task *t)
{
	struct pr_lun *pl = pr_lun_get(t->lun);
	struct scsi_pr_abort *req = NULL;
	struct pr_nexus_ref *known;
	struct scsi_sense sense;
	struct pr_ctx ctx;
	uint16_t ports[SCSI_PR_MAX_PORTS];
	uint8_t status;
	int rc;

	t->out_wanted = (uint32_t)t->cdb[5] << 24 | (uint32_t)t->cdb[6] << 16 |
			(uint32_t)t->cdb[7] << 8 | t->cdb[8];
	known = calloc(PR_MAX_REGS, sizeof(*known));
	if (!pl || !known) {
		free(known);
		scsi_task_check(t, &SENSE_INTERNAL_TARGET_FAILURE);
		return;
	}
	ctx_fill(&ctx, t, ports, known, PR_MAX_REGS, pl);

	pthread_mutex_lock(&pl->mu);
	pr_out(pl->cur, &ctx, t->cdb, t->cdb_len, t->out, t->out ? t->out_len : 0, pl->next,
	       &pl->res);
	status = pl->res.status;
	sense = pl->res.sense;
	if (status == SCSI_STATUS_GOOD && pl->res.nabort) {
		req = abort_req(t, &pl->res);
		if (!req) {
			status = SCSI_STATUS_CHECK_CONDITION;
			sense = SENSE_INTERNAL_TARGET_FAILURE;
		}
	}
	if (status == SCSI_STATUS_GOOD && pl->res.changed) {
		rc = apply(pl, t->nexus->initiator_port);
		if (rc) {
			/* Memory keeps the old state: nothing was applied. */
			status = SCSI_STATUS_CHECK_CONDITION;
			sense = *save_sense(rc);
			free(req);
			req = NULL;
		}
	}
	pthread_mutex_unlock(&pl->mu);
	free(known);

	if (status == SCSI_STATUS_RESERVATION_CONFLICT) {
		scsi_task_status(t, status);
		return;
	}
	if (status != SCSI_STATUS_GOOD) {
		scsi_task_check(t, &sense);
		return;
	}
	if (req) {
		/* The preempted nexuses already meet the new state (their next commands
		 * conflict); their tasks in flight are aborted before this one completes. */
		if (scsi_pr_abort_hook) {
			scsi_pr_abort_hook(req);
			return;
		}
		log_warnx("%s: %s: PREEMPT AND ABORT: no transport hook, %zu nexuses' tasks not "
			  "aborted",
			  __func__, scsi_lun_name(t->lun), req->n);
		free(req);
	}
	scsi_task_good(t);
}

int scsi_pr_conflict(struct scsi_task *t, const struct scsi_cmd_desc *d)
{
	struct pr_lun *pl;
	enum pr_class cls;
	enum pr_verdict v = PR_PASS;
	bool scsi2;

	if (!t->lun)
		return SCSI_PR_PASS;
	cls = pr_cmd_class(t->cdb, t->cdb_len, d->flags);
	pl = pr_lun_get(t->lun);
	if (!pl) {
		/* Without its record the LUN's reservations are unknown: refuse what a
		 * reservation could forbid rather than let a fenced initiator write. */
		return cls == PR_CLASS_ALLOWED || (d->flags & SCSI_CMD_F_NO_CONFLICT)
			       ? SCSI_PR_PASS
			       : SCSI_PR_CONFLICT;
	}
	if (atomic_load_explicit(&pl->active, memory_order_acquire)) {
		pthread_mutex_lock(&pl->mu);
		v = pr_check_conflict(pl->cur, t->nexus->initiator_port, t->nexus->rel_port_id,
				      cls);
		pthread_mutex_unlock(&pl->mu);
	}
	if (v == PR_CONFLICT)
		return SCSI_PR_CONFLICT;
	if (v == PR_GOOD) {
		/* spc4r37 5.13.3: RESERVE/RELEASE from the holder or a registrant of an RO/AR
		 * reservation succeed without effect. */
		scsi_task_good(t);
		return SCSI_PR_DONE;
	}
	/* spc2r20 5.5.1: a SCSI-2 reservation held by another nexus conflicts with every
	 * command but those flagged NO_CONFLICT, and with PERSISTENT RESERVE IN/OUT whatever
	 * their service action. */
	scsi2 = scsi_lun_scsi2_conflict(t->lun, t->nexus);
	if (!scsi2)
		return SCSI_PR_PASS;
	if (t->cdb[0] == 0x5e || t->cdb[0] == 0x5f)
		return SCSI_PR_CONFLICT;
	return (d->flags & SCSI_CMD_F_NO_CONFLICT) ? SCSI_PR_PASS : SCSI_PR_CONFLICT;
}

int scsi_pr_snapshot(struct scsi_lun *lun, struct pr_state *out)
{
	struct pr_lun *pl = pr_lun_get(lun);

	if (!pl)
		return -ENOMEM;
	pthread_mutex_lock(&pl->mu);
	memcpy(out, pl->cur, sizeof(*out));
	pthread_mutex_unlock(&pl->mu);
	return 0;
}

int scsi_pr_admin_clear(struct scsi_lun *lun, const char *who)
{
	struct pr_lun *pl = pr_lun_get(lun);
	int rc;

	if (!pl)
		return -ENOMEM;
	pthread_mutex_lock(&pl->mu);
	pr_admin_clear(pl->cur, pl->next, &pl->res);
	rc = pl->res.changed ? apply(pl, "admin clear") : 0;
	pthread_mutex_unlock(&pl->mu);
	if (rc == 0)
		log_info("%s: %s: persistent reservations cleared by %s", __func__,
			 scsi_lun_name(lun), who ? who : "the administrator");
	return rc;
}

#define PR_IN_USAGE                                                                                \
	{                                                                                          \
		0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0x04                                        \
	}
#define PR_OUT_USAGE                                                                               \
	{                                                                                          \
		0x5f, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x04                               \
	}
#define PR_OUT_F SCSI_CMD_F_DATA_OUT

/* spc4r37 6.15 and 6.16, one descriptor per service action so that the dispatcher rejects
 * the others as an invalid field and REPORT SUPPORTED OPERATION CODES lists each. Neither is
 * flagged NO_CONFLICT: a SCSI-2 reservation conflicts with them (scsi_pr_conflict()). */
const struct scsi_cmd_desc scsi_pr_cmds[] = {
	{0x5e, 0x00, "PERSISTENT RESERVE IN (READ KEYS)", 10, PR_IN_USAGE, 0, pr_in_exec},
	{0x5e, 0x01, "PERSISTENT RESERVE IN (READ RESERVATION)", 10, PR_IN_USAGE, 0, pr_in_exec},
	{0x5e, 0x02, "PERSISTENT RESERVE IN (REPORT CAPABILITIES)", 10, PR_IN_USAGE, 0, pr_in_exec},
	{0x5e, 0x03, "PERSISTENT RESERVE IN (READ FULL STATUS)", 10, PR_IN_USAGE, 0, pr_in_exec},
	{0x5f, 0x00, "PERSISTENT RESERVE OUT (REGISTER)", 10, PR_OUT_USAGE, PR_OUT_F, pr_out_exec},
	{0x5f, 0x01, "PERSISTENT RESERVE OUT (RESERVE)", 10, PR_OUT_USAGE, PR_OUT_F, pr_out_exec},
	{0x5f, 0x02, "PERSISTENT RESERVE OUT (RELEASE)", 10, PR_OUT_USAGE, PR_OUT_F, pr_out_exec},
	{0x5f, 0x03, "PERSISTENT RESERVE OUT (CLEAR)", 10, PR_OUT_USAGE, PR_OUT_F, pr_out_exec},
	{0x5f, 0x04, "PERSISTENT RESERVE OUT (PREEMPT)", 10, PR_OUT_USAGE, PR_OUT_F, pr_out_exec},
	{0x5f, 0x05, "PERSISTENT RESERVE OUT (PREEMPT AND ABORT)", 10, PR_OUT_USAGE, PR_OUT_F,
	 pr_out_exec},
	{0x5f, 0x06, "PERSISTENT RESERVE OUT (REGISTER AND IGNORE EXISTING KEY)", 10, PR_OUT_USAGE,
	 PR_OUT_F, pr_out_exec},
	{0x5f, 0x07, "PERSISTENT RESERVE OUT (REGISTER AND MOVE)", 10, PR_OUT_USAGE, PR_OUT_F,
	 pr_out_exec},
};

const unsigned scsi_pr_ncmds = sizeof(scsi_pr_cmds) / sizeof(scsi_pr_cmds[0]);
