/* Maintenance at the target: writes to a paused LUN wait here, on the worker of their
 * session, and run in arrival order once the pause ends. A write held longer than the
 * configured limit (maintenance_hold_ms) is answered BUSY, so the initiator retries it rather
 * than hitting its own command timeout and escalating to task management or a session reset.
 *
 * Each worker keeps its held tasks in one list, oldest first; nothing here takes a lock, since
 * a task only ever lives on its session's worker. A held task is in TASK_EXEC with a cancel
 * hook, so task management (ABORT TASK, LUN RESET, the fence and LUN-removal sweeps) and a lost
 * connection take it back like an I/O that has not reached the medium: it never does. */
#include <limits.h>
#include <stdlib.h>
#include <stdint.h>

#include "lib/log.h"
#include "target/lun.h"
#include "target/scsi_cmd.h"
#include "target/transport.h"

static uint64_t hold_limit_ns(void)
{
	return (uint64_t)tgt_global.cfg->maintenance_hold_ms * 1000000ull;
}

static void hold_unlink(struct worker *w, struct task *t)
{
	if (t->held_prev)
		t->held_prev->held_next = t->held_next;
	else
		w->held_head = t->held_next;
	if (t->held_next)
		t->held_next->held_prev = t->held_prev;
	else
		w->held_tail = t->held_prev;
	t->held_next = t->held_prev = NULL;
	t->held_on = NULL;
	t->st.cancel = NULL;
	w->nheld--;
}

/* Task management takes a held write back: it never reached the medium. */
static int hold_cancel(struct scsi_task *st)
{
	struct task *t = st->priv;

	hold_unlink(t->conn->worker, t);
	scsi_task_status(st, SCSI_STATUS_TASK_ABORTED);
	return 0;
}

static bool hold_has_lun(const struct worker *w, const struct scsi_lun *lun,
			 const struct task *until)
{
	for (const struct task *t = w->held_head; t && t != until; t = t->held_next)
		if (t->held_on == lun)
			return true;
	return false;
}

static void hold_due(struct worker *w, const struct task *t)
{
	uint64_t due = t->held_since_ns + hold_limit_ns();

	if (w->nheld == 1 || due < w->hold_due_ns)
		w->hold_due_ns = due;
}

bool tgt_hold(struct scsi_task *st, struct scsi_lun *lun, bool paused)
{
	struct task *t = st->priv;
	struct worker *w = t->conn->worker;

	/* A held write that is being run again was judged when it was released. */
	if (w->hold_releasing == t)
		return false;
	/* Not paused: it runs, unless earlier writes to the LUN still wait here (the pause just
	 * ended and this worker has not run them yet): then it queues behind them. */
	if (!paused && (w->nheld == 0 || !hold_has_lun(w, lun, NULL)))
		return false;
	if (!t->held_since_ns)
		t->held_since_ns = tgt_now_ns();
	if (paused && hold_limit_ns() == 0) {
		scsi_task_status(st, SCSI_STATUS_BUSY);
		return true;
	}
	t->held_on = lun;
	t->held_prev = w->held_tail;
	t->held_next = NULL;
	if (w->held_tail)
		w->held_tail->held_next = t;
	else
		w->held_head = t;
	w->held_tail = t;
	w->nheld++;
	t->held_gen = w->hold_gen;
	st->cancel = hold_cancel;
	hold_due(w, t);
	log_debug("%s: %s: itt 0x%x held (LUN %s paused), %u held on this worker", __func__,
		  t->conn->session ? t->conn->session->initiator : t->conn->peer, t->itt,
		  scsi_lun_name(lun), w->nheld);
	return true;
}

/* The first task this pass has not looked at yet. Every task before it was kept by this pass,
 * since the others left the list. */
static struct task *hold_next_unseen(struct worker *w)
{
	for (struct task *t = w->held_head; t; t = t->held_next)
		if (t->held_gen != w->hold_gen)
			return t;
	return NULL;
}

void tgt_hold_service(struct worker *w)
{
	uint64_t now = tgt_now_ns(), limit = hold_limit_ns();
	struct task *t;

	if (!w->nheld)
		return;
	w->hold_gen++;
	/* Running or answering a task may complete others (it never adds new arrivals: those
	 * come from the sockets, after this pass), so the list is walked from its head each
	 * time rather than through a saved next pointer. */
	while ((t = hold_next_unseen(w))) {
		struct scsi_lun *lun = t->held_on;

		if (now - t->held_since_ns >= limit) {
			log_info("%s: %s: itt 0x%x held %llu ms by the paused LUN %s: BUSY",
				 __func__, t->conn->session ? t->conn->session->initiator : "",
				 t->itt, (unsigned long long)((now - t->held_since_ns) / 1000000),
				 scsi_lun_name(lun));
			hold_unlink(w, t);
			scsi_task_status(&t->st, SCSI_STATUS_BUSY);
			continue;
		}
		/* Still paused, or an earlier write to the same LUN stays: it waits, in order. */
		if (scsi_lun_paused(lun) || hold_has_lun(w, lun, t)) {
			t->held_gen = w->hold_gen;
			continue;
		}
		hold_unlink(w, t);
		w->hold_releasing = t;
		scsi_task_exec(&t->st);
		w->hold_releasing = NULL;
	}
	for (t = w->held_head; t; t = t->held_next)
		if (t == w->held_head || t->held_since_ns + limit < w->hold_due_ns)
			w->hold_due_ns = t->held_since_ns + limit;
}

int tgt_hold_timeout_ms(struct worker *w, int timeout)
{
	uint64_t now, ms;

	if (!w->nheld)
		return timeout;
	now = tgt_now_ns();
	if (now >= w->hold_due_ns) {
		tgt_hold_service(w);
		if (!w->nheld)
			return timeout;
		now = tgt_now_ns();
		if (now >= w->hold_due_ns)
			return 0;
	}
	ms = (w->hold_due_ns - now + 999999) / 1000000;
	if (timeout < 0 || ms < (uint64_t)timeout)
		timeout = ms > INT_MAX ? INT_MAX : (int)ms;
	return timeout;
}

static void hold_kick(void *arg)
{
	(void)arg;
	tgt_hold_service(tgt_current_worker);
}

void tgt_hold_kick_all(void)
{
	for (int i = 0; i < tgt_global.nworkers; i++) {
		struct worker_msg *m = calloc(1, sizeof(*m));

		if (!m)
			fatal("%s", __func__);
		m->type = WORKER_MSG_CALL;
		m->fn = hold_kick;
		worker_post(tgt_global.workers[i], m);
	}
}
