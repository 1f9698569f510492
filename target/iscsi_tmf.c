/* Task management (RFC 7143 11.5-11.6, SAM-5 7): ABORT TASK, ABORT TASK SET, CLEAR TASK SET,
 * LUN RESET, TARGET WARM RESET and TARGET COLD RESET. An abort is real: the response leaves
 * only once every aborted task is gone, including tasks whose I/O was already on the
 * medium (they are waited for, on whichever worker they live). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "target/lun.h"
#include "target/scsi_pr.h"
#include "target/scsi_sense.h"
#include "target/transport.h"

__thread struct worker *tgt_current_worker;

/* A sweep that finishes on `home` (NULL: on whichever thread drains it last), holding a
 * reference on the connection c when there is one. */
struct tmf_wait *tmf_wait_alloc(struct conn *c, struct worker *home)
{
	struct tmf_wait *w = calloc(1, sizeof(*w));

	if (!w)
		fatal("%s", __func__);
	pthread_mutex_init(&w->lock, NULL);
	w->conn = c;
	w->home = home;
	w->target_index = -1;
	w->response = ISCSI_TMF_RSP_COMPLETE;
	w->pending = 1; /* the requester's own reference */
	if (c)
		c->refs++;
	return w;
}

static struct tmf_wait *tmf_wait_new(struct conn *c, uint32_t itt)
{
	struct tmf_wait *w = tmf_wait_alloc(c, c->worker);

	w->itt = itt;
	return w;
}

static void tmf_send_response(struct tmf_wait *w)
{
	struct conn *c = w->conn;

	if (c->state == CONN_FFP || c->state == CONN_LOGGED_OUT) {
		struct txpdu *tx = conn_tx_alloc(c);
		struct iscsi_sn sn;

		conn_fill_sn(c, &sn, true);
		iscsi_build_tmf_rsp(tx->bhs, w->itt, w->response, &sn);
		conn_queue(c, tx);
		if (w->cold_reset)
			tx->close_after = true;
	}
}

static void tmf_finish(void *arg)
{
	struct tmf_wait *w = arg;

	if (w->finish)
		w->finish(w);
	else
		tmf_send_response(w);
	if (w->conn) {
		w->conn->refs--;
		conn_mark_dirty(w->conn);
	}
	pthread_mutex_destroy(&w->lock);
	free(w);
}

void tmf_wait_put(struct tmf_wait *w)
{
	bool last;

	pthread_mutex_lock(&w->lock);
	last = --w->pending == 0;
	pthread_mutex_unlock(&w->lock);
	if (!last)
		return;
	if (!w->home || tgt_current_worker == w->home) {
		tmf_finish(w);
	} else {
		struct worker_msg *m = calloc(1, sizeof(*m));

		if (!m)
			fatal("%s", __func__);
		m->type = WORKER_MSG_CALL;
		m->fn = tmf_finish;
		m->arg = w;
		worker_post(w->home, m);
	}
}

/* A task is on a LUN when it was sent to it, or when it is held by that LUN's pause (a copy
 * whose destination is paused). */
static bool task_on_lun(const struct task *t, const struct scsi_lun *lun)
{
	return !lun || t->st.lun == lun || t->held_on == lun;
}

/* Is the session one of the I_T nexuses a PREEMPT AND ABORT names? */
static bool pr_session_preempted(const struct tmf_wait *w, const struct session *s)
{
	const struct scsi_pr_abort *req = w->arg;

	for (size_t i = 0; i < req->n; i++)
		if (req->itns[i].rel_port_id == s->nexus.rel_port_id &&
		    strcmp(req->itns[i].initiator_port, s->nexus.initiator_port) == 0)
			return true;
	return false;
}

/* sam5r21 5.6 with TAS=0: an initiator learns from a unit attention that another initiator
 * cleared its commands. */
static void pr_session_cleared(struct tmf_wait *w, struct session *s, unsigned aborted)
{
	if (aborted)
		scsi_lun_ua_one(w->lun, &s->nexus, &SENSE_COMMANDS_CLEARED_BY_ANOTHER);
}

/* The preempted tasks are gone: the PREEMPT AND ABORT completes. */
static void pr_abort_finish(struct tmf_wait *w)
{
	struct scsi_pr_abort *req = w->arg;

	req->done(req);
}

/* Abort, on this worker, every task of lun (every LUN when lun is NULL) of every session
 * of the same target, except the tasks of the session `except` (already handled). */
void tmf_abort_lun_local(struct worker *w, struct scsi_lun *lun, struct tmf_wait *wait,
			 struct session *except)
{
	for (struct conn *c = w->conns; c; c = c->wnext) {
		struct task *t, *next;
		unsigned aborted;

		if (c->state == CONN_CLOSING || !c->session || c->session == except ||
		    c->session->type != ISCSI_SESSION_NORMAL)
			continue;
		if (wait->target_index >= 0 && c->session->target_index != wait->target_index)
			continue;
		if (wait->match && !wait->match(wait, c->session))
			continue;
		aborted = 0;
		for (t = c->tasks; t; t = next) {
			next = t->anext;
			if (task_on_lun(t, lun) && t != wait->spare && !t->aborted) {
				t->abort_answer = wait->answer;
				task_abort(t, wait);
				aborted++;
			}
		}
		if (wait->on_session)
			wait->on_session(wait, c->session, aborted);
		if (wait->cold_reset)
			session_kill(c->session);
	}
}

/* Abort on every worker but `skip` (NULL: every worker); each holds a reference until its
 * tasks drained. */
void tmf_abort_everywhere(struct worker *skip, struct scsi_lun *lun, struct tmf_wait *w)
{
	for (int i = 0; i < tgt_global.nworkers; i++) {
		struct worker *wk = tgt_global.workers[i];
		struct worker_msg *m;

		if (wk == skip)
			continue;
		m = calloc(1, sizeof(*m));
		if (!m)
			fatal("%s", __func__);
		pthread_mutex_lock(&w->lock);
		w->pending++;
		pthread_mutex_unlock(&w->lock);
		m->type = WORKER_MSG_LUN_RESET;
		m->lun = lun;
		m->wait = w;
		worker_post(wk, m);
	}
}

static void tmf_abort_session(struct session *s, struct scsi_lun *lun, struct tmf_wait *w)
{
	for (struct conn *c = s->conns; c; c = c->snext) {
		struct task *t, *next;

		for (t = c->tasks; t; t = next) {
			next = t->anext;
			if (task_on_lun(t, lun))
				task_abort(t, w);
		}
	}
}

static struct task *tmf_find_task(struct session *s, uint32_t itt)
{
	for (struct conn *c = s->conns; c; c = c->snext) {
		struct task *t = task_find(c, itt);

		if (t)
			return t;
	}
	return NULL;
}

static struct scsi_lun *tmf_lun(struct session *s, uint64_t raw, bool *exists)
{
	uint64_t lun;

	*exists = false;
	if (iscsi_lun_decode(raw, &lun) < 0)
		return NULL;
	for (size_t i = 0, n = scsi_target_nluns(&s->target->info); i < n; i++)
		if (s->target->luns[i].lun == lun) {
			struct scsi_lun *dev = scsi_lun_entry_dev(&s->target->luns[i]);

			*exists = dev != NULL;
			return dev;
		}
	return NULL;
}

/* spc4r37 5.13.11.2.4: PREEMPT AND ABORT aborts the preempted nexuses' tasks on the LUN, on
 * every worker, before the command completes. */
void tgt_pr_abort(struct scsi_pr_abort *req)
{
	struct task *by = req->by->priv;
	struct conn *c = by->conn;
	struct tmf_wait *w = tmf_wait_alloc(c, c->worker);

	w->arg = req;
	w->lun = req->lun;
	w->spare = by;
	w->match = pr_session_preempted;
	w->on_session = pr_session_cleared;
	w->finish = pr_abort_finish;
	tmf_abort_lun_local(c->worker, req->lun, w, NULL);
	tmf_abort_everywhere(c->worker, req->lun, w);
	tmf_wait_put(w);
}

/* Does RefCmdSN name a command inside the window, before the TMF's own CmdSN, that has not
 * arrived yet? (Arrived early ones are in the pending queue and found by their tag.) */
static bool tmf_ref_not_yet_received(const struct session *s, const struct iscsi_pdu *p)
{
	if (iscsi_sn_lt(p->refcmdsn, s->expcmdsn) || !iscsi_sn_lt(p->refcmdsn, p->cmdsn) ||
	    iscsi_sn_lt(s->maxcmdsn, p->refcmdsn))
		return false;
	for (const struct task *t = s->pending; t; t = t->qnext)
		if (t->cmdsn == p->refcmdsn)
			return false; /* it arrived, under another tag */
	return true;
}

void tmf_request(struct conn *c, const struct iscsi_pdu *p)
{
	struct session *s = c->session;
	struct tmf_wait *w;
	struct scsi_lun *lun;
	struct task *t;
	bool deliver, exists;

	if (!cmd_check_sn(c, p, &deliver))
		return;
	w = tmf_wait_new(c, p->itt);
	w->target_index = s->target_index;
	lun = tmf_lun(s, p->lun, &exists);
	switch (p->tmf_func) {
	case ISCSI_TMF_ABORT_TASK:
		t = tmf_find_task(s, p->rtt);
		/* A task whose response is already on its way is complete: as far as the
		 * initiator can tell there is nothing left to abort. */
		if (!t && tmf_ref_not_yet_received(s, p)) {
			/* RFC 7143 11.5.1 b): the command has not arrived; its CmdSN counts
			 * as received and the command, when it comes, is not run. */
			cmd_sn_consume(s, p->refcmdsn);
			cmd_run_pending(s);
		} else if (!t || t->state == TASK_SENDING || t->aborted) {
			w->response = ISCSI_TMF_RSP_NO_TASK;
		} else {
			task_abort(t, w);
		}
		break;
	case ISCSI_TMF_ABORT_TASK_SET:
	case ISCSI_TMF_CLEAR_TASK_SET:
		if (!exists) {
			w->response = ISCSI_TMF_RSP_NO_LUN;
			break;
		}
		/* SAM-5 7.3 / 7.5: the task set of this I_T_L nexus. */
		tmf_abort_session(s, lun, w);
		break;
	case ISCSI_TMF_LUN_RESET:
		if (!exists) {
			w->response = ISCSI_TMF_RSP_NO_LUN;
			break;
		}
		/* SAM-5 7.7: every task on the LUN, from every initiator, then a unit
		 * attention for every I_T nexus. */
		log_info("%s: %s: LUN RESET of lun %u", __func__, s->initiator,
			 (unsigned)(p->lun >> 48 & 0x3fff));
		tmf_abort_session(s, lun, w);
		tmf_abort_lun_local(c->worker, lun, w, s);
		tmf_abort_everywhere(c->worker, lun, w);
		/* sam5r21 6.3.3: the unit attention goes to every I_T nexus, the
		 * requester's included (multipath initiators count on seeing it on each
		 * path). */
		scsi_lun_reset(lun, NULL);
		break;
	case ISCSI_TMF_TARGET_COLD_RESET:
		w->cold_reset = true;
		/* a cold reset is a warm reset that also drops connections */
		__attribute__((fallthrough));
	case ISCSI_TMF_TARGET_WARM_RESET:
		log_info("%s: %s: target %s reset", __func__, s->initiator,
			 w->cold_reset ? "cold" : "warm");
		tmf_abort_session(s, NULL, w);
		tmf_abort_lun_local(c->worker, NULL, w, s);
		tmf_abort_everywhere(c->worker, NULL, w);
		/* The requester of a target reset knows what it did; every other nexus of
		 * every LUN learns it from a unit attention. */
		for (size_t i = 0, n = scsi_target_nluns(&s->target->info); i < n; i++) {
			struct scsi_lun *dev = scsi_lun_entry_dev(&s->target->luns[i]);

			if (dev)
				scsi_lun_reset(dev, &s->nexus);
		}
		break;
	case ISCSI_TMF_CLEAR_ACA:
		/* We never establish ACA (NACA is not supported). */
		w->response = ISCSI_TMF_RSP_NOT_SUPPORTED;
		break;
	case ISCSI_TMF_TASK_REASSIGN:
		/* Needs ErrorRecoveryLevel 2. */
		w->response = ISCSI_TMF_RSP_NO_REASSIGN;
		break;
	default:
		w->response = ISCSI_TMF_RSP_REJECTED;
		break;
	}
	tmf_wait_put(w);
}
