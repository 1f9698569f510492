/* SCSI commands over iSCSI (RFC 7143 sections 4.2, 11.3-11.8): CmdSN ordering, immediate and
 * unsolicited data, R2T with MaxBurstLength and MaxOutstandingR2T, Data-Out checks, and the
 * Data-In and SCSI Response PDUs that carry the result, sent straight from the task's
 * buffer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "target/backstore.h"
#include "target/scsi_cmd.h"
#include "target/scsi_sense.h"
#include "target/transport.h"

static void task_hash_add(struct conn *c, struct task *t)
{
	struct task **b = &c->hash[t->itt % TGT_TASK_HASH];

	t->hnext = *b;
	*b = t;
	t->anext = c->tasks;
	if (c->tasks)
		c->tasks->aprev = &t->anext;
	t->aprev = &c->tasks;
	c->tasks = t;
	c->ntasks++;
}

static void task_hash_del(struct conn *c, struct task *t)
{
	struct task **pp;

	for (pp = &c->hash[t->itt % TGT_TASK_HASH]; *pp; pp = &(*pp)->hnext)
		if (*pp == t) {
			*pp = t->hnext;
			break;
		}
	if (t->aprev) {
		*t->aprev = t->anext;
		if (t->anext)
			t->anext->aprev = t->aprev;
		t->aprev = NULL;
	}
	c->ntasks--;
}

struct task *task_find(struct conn *c, uint32_t itt)
{
	for (struct task *t = c->hash[itt % TGT_TASK_HASH]; t; t = t->hnext)
		if (t->itt == itt)
			return t;
	return NULL;
}

static bool sn_gone(const struct session *s, uint32_t sn)
{
	uint32_t i = sn % TGT_CMD_WINDOW;

	return s->sn_gone[i / 8] & (1u << (i % 8));
}

void cmd_sn_consume(struct session *s, uint32_t sn)
{
	uint32_t i = sn % TGT_CMD_WINDOW;

	if (iscsi_sn_lt(sn, s->expcmdsn) || iscsi_sn_lt(s->maxcmdsn, sn))
		return;
	s->sn_gone[i / 8] |= 1u << (i % 8);
}

/* ExpCmdSN moves past the numbers that were used up. */
static void sn_skip_gone(struct session *s)
{
	while (sn_gone(s, s->expcmdsn)) {
		uint32_t i = s->expcmdsn % TGT_CMD_WINDOW;

		s->sn_gone[i / 8] &= ~(1u << (i % 8));
		s->expcmdsn++;
	}
}

/* An early command leaves the queue without running: its CmdSN is used up all the same,
 * or ExpCmdSN would stop at it and every later command would wait for ever. */
static void pending_remove(struct session *s, struct task *t)
{
	struct task **pp;

	for (pp = &s->pending; *pp; pp = &(*pp)->qnext)
		if (*pp == t) {
			*pp = t->qnext;
			cmd_sn_consume(s, t->cmdsn);
			break;
		}
}

void task_free(struct task *t)
{
	struct conn *c = t->conn;

	if (t->state == TASK_QUEUED && c->session)
		pending_remove(c->session, t);
	task_hash_del(c, t);
	scsi_task_release(&t->st);
	bs_buf_free(t->st.out);
	if (t->wait) {
		struct tmf_wait *w = t->wait;

		t->wait = NULL;
		tmf_wait_put(w);
	}
	free(t);
	if (c->state == CONN_CLOSING && c->ntasks == 0)
		conn_mark_dirty(c);
	else if (c->session)
		conn_mark_dirty(c); /* the CmdSN window may have opened */
}

/* Abort a task (RFC 7143 4.2.3.x, SAM-5 7.x): a task whose command is in the command set
 * cannot be taken back from the medium, so it is marked and finishes silently; the TMF that
 * asked waits for it. Any other task is gone at once. */
static void cmd_send_response(struct task *t);

static void task_set_abort_answer(struct task *t)
{
	const struct abort_answer *a = t->abort_answer;

	if (a->sense)
		scsi_task_set_sense(&t->st, a->sense->key, a->sense->asc, a->sense->ascq);
	else
		t->st.status = a->status;
	t->st.in_len = 0;
}

void task_abort(struct task *t, struct tmf_wait *w)
{
	t->aborted = true;
	t->st.aborted = true;
	if (t->state == TASK_EXEC) {
		if (w && !t->wait) {
			pthread_mutex_lock(&w->lock);
			w->pending++;
			pthread_mutex_unlock(&w->lock);
			t->wait = w;
		}
		/* An I/O still queued before the medium (a delayed store, a full queue) is
		 * taken back, so an aborted write never lands; the task then completes at
		 * once (and is freed, silently, as an aborted task). */
		if (t->st.cancel)
			t->st.cancel(&t->st);
		return;
	}
	if (t->state == TASK_SENDING && t->tx_refs > 0)
		return; /* its response is on the way out; it is complete */
	if (t->conn->rx_task == t) {
		/* Its data segment is arriving right now: discard the rest of it. */
		t->conn->rx_task = NULL;
		t->conn->rx_discard = true;
	}
	if (t->abort_answer && t->conn->state == CONN_FFP) {
		/* An abort that answers (the LUN went away, the host was fenced): the
		 * command ends now; Data-Out still on the way finds no task and is dropped. */
		if (t->state == TASK_QUEUED && t->conn->session)
			pending_remove(t->conn->session, t);
		t->state = TASK_SENDING;
		task_set_abort_answer(t);
		cmd_send_response(t);
		if (t->tx_refs == 0)
			task_free(t);
		return;
	}
	task_free(t);
}

/* ---- responses ---- */

static int64_t task_residual(const struct task *t)
{
	uint32_t want;

	if (t->st.dir & SCSI_DIR_READ)
		want = t->st.in_len;
	else if (t->st.dir & SCSI_DIR_WRITE)
		want = t->st.out_wanted;
	else
		return 0;
	/* RFC 7143 11.4.5: positive underflow, negative overflow. */
	return (int64_t)t->st.edtl - want;
}

static void cmd_send_response(struct task *t)
{
	struct conn *c = t->conn;
	struct txpdu *tx = conn_tx_alloc(c);
	struct iscsi_sn sn;
	uint32_t dlen = 0;
	int64_t residual = task_residual(t);

	if (t->st.status == SCSI_STATUS_CHECK_CONDITION) {
		size_t n = scsi_sense_build(&t->st.sense, tx->small + 2, sizeof(tx->small) - 2);

		/* RFC 7143 11.4.7: SenseLength, then the sense data. */
		tx->small[0] = n >> 8;
		tx->small[1] = n;
		dlen = n + 2;
	}
	if (t->st.status != SCSI_STATUS_GOOD && t->st.status != SCSI_STATUS_CONDITION_MET &&
	    (t->st.dir & SCSI_DIR_WRITE) == 0 && t->st.in_len == 0)
		residual = t->st.edtl;
	conn_fill_sn(c, &sn, true);
	iscsi_build_scsi_rsp(tx->bhs, t->itt, ISCSI_RSP_COMPLETED, t->st.status, residual, &sn,
			     t->datasn_expected, dlen);
	if (dlen)
		conn_tx_data(c, tx, tx->small, dlen);
	tx->task = t;
	conn_queue(c, tx);
}

/* Data-In PDUs straight from the task's buffer; the status rides on the last one when
 * there is no sense to send (RFC 7143 11.7.4 phase collapse). */
static void cmd_send_data_in(struct task *t)
{
	struct conn *c = t->conn;
	uint32_t total = t->st.in_len < t->st.edtl ? t->st.in_len : t->st.edtl;
	uint32_t mrdsl = c->params.initiator_max_recv_dsl;
	uint32_t burst = c->params.max_burst;
	bool collapse = t->st.status == SCSI_STATUS_GOOD;
	uint32_t off = 0, in_burst = 0, datasn = 0;
	uint64_t lun = t->req.lun;

	while (off < total) {
		struct txpdu *tx = conn_tx_alloc(c);
		uint32_t len = total - off;
		bool last, fin;
		struct iscsi_sn sn;

		if (len > mrdsl)
			len = mrdsl;
		if (len > burst - in_burst)
			len = burst - in_burst;
		last = off + len == total;
		in_burst += len;
		fin = last || in_burst == burst;
		if (in_burst == burst)
			in_burst = 0;
		conn_fill_sn(c, &sn, last && collapse);
		iscsi_build_data_in(tx->bhs, t->itt, lun, ISCSI_RSVD_TAG, fin, false,
				    last && collapse, t->st.status, last ? task_residual(t) : 0,
				    &sn, datasn++, off, len);
		conn_tx_data(c, tx, t->st.in + off, len);
		tx->task = t;
		conn_queue(c, tx);
		off += len;
	}
	t->datasn_expected = datasn;
	if (!collapse || total == 0)
		cmd_send_response(t);
}

static void cmd_scsi_done(struct scsi_task *st)
{
	struct task *t = st->priv;

	t->state = TASK_SENDING;
	if (t->aborted && t->abort_answer && t->conn->state == CONN_FFP) {
		/* Aborted by an event that answers, not by an initiator. */
		task_set_abort_answer(t);
	} else if (t->aborted || t->conn->state == CONN_CLOSING) {
		task_free(t);
		return;
	}
	if ((st->dir & SCSI_DIR_READ) && st->in_len && st->edtl &&
	    (st->status == SCSI_STATUS_GOOD || st->status == SCSI_STATUS_CONDITION_MET))
		cmd_send_data_in(t);
	else
		cmd_send_response(t);
	if (t->tx_refs == 0)
		task_free(t);
}

static void cmd_exec(struct task *t)
{
	t->state = TASK_EXEC;
	if (t->data_error) {
		scsi_task_check(&t->st, t->data_error);
		return;
	}
	if (t->too_big) {
		/* We cannot buffer this much; the command set would refuse it anyway
		 * (the block limits page says so). */
		scsi_task_set_sense(&t->st, SENSE_INVALID_FIELD_IN_CDB.key,
				    SENSE_INVALID_FIELD_IN_CDB.asc,
				    SENSE_INVALID_FIELD_IN_CDB.ascq);
		t->st.done(&t->st);
		return;
	}
	scsi_task_exec(&t->st);
}

/* ---- Data-Out solicitation ---- */

static void cmd_send_r2ts(struct task *t)
{
	struct conn *c = t->conn;

	while (t->outstanding_r2t < c->params.max_outstanding_r2t && t->r2t_offset < t->st.edtl) {
		struct txpdu *tx = conn_tx_alloc(c);
		struct iscsi_sn sn;
		uint32_t len = t->st.edtl - t->r2t_offset;

		if (len > c->params.max_burst)
			len = c->params.max_burst;
		if (t->outstanding_r2t == 0) {
			/* The burst the next Data-Out PDUs belong to. */
			t->ttt = c->next_ttt++;
			if (t->ttt == ISCSI_RSVD_TAG)
				t->ttt = c->next_ttt++;
			t->burst_offset = t->r2t_offset;
			t->burst_left = len;
			t->datasn_expected = 0;
		}
		conn_fill_sn(c, &sn, false);
		iscsi_build_r2t(tx->bhs, t->itt, t->req.lun, t->ttt, &sn, t->r2tsn++, t->r2t_offset,
				len);
		conn_queue(c, tx);
		t->r2t_offset += len;
		t->outstanding_r2t++;
		/* With one outstanding R2T at a time each burst has its own tag; with more,
		 * later bursts share it and are told apart by their offsets. */
		if (c->params.max_outstanding_r2t == 1)
			break;
	}
}

/* Move a delivered task on: solicit what is missing or run it. */
static void cmd_progress(struct task *t)
{
	if (!t->delivered || !t->pdu_in || t->state != TASK_DATA_OUT)
		return;
	if ((t->st.dir & SCSI_DIR_WRITE) && !t->too_big && !t->data_error &&
	    t->received < t->st.edtl) {
		if (!t->unsol_open)
			cmd_send_r2ts(t);
		return;
	}
	cmd_exec(t);
}

void cmd_run_pending(struct session *s)
{
	for (;;) {
		struct task *t = s->pending;

		sn_skip_gone(s);
		if (!t || t->cmdsn != s->expcmdsn)
			break;
		s->pending = t->qnext;
		t->state = TASK_DATA_OUT;
		t->delivered = true;
		s->expcmdsn++;
		cmd_progress(t);
	}
}

void cmd_drop_pending(struct session *s)
{
	s->pending = NULL;
}

/* RFC 7143 4.2.2.1: a non-immediate PDU outside [ExpCmdSN, MaxCmdSN] is silently ignored.
 * Returns false for such a PDU; *deliver is false when it came early and must wait. */
bool cmd_check_sn(struct conn *c, const struct iscsi_pdu *p, bool *deliver)
{
	struct session *s = c->session;

	*deliver = true;
	if (p->immediate)
		return true;
	if (iscsi_sn_lt(p->cmdsn, s->expcmdsn) || iscsi_sn_lt(s->maxcmdsn, p->cmdsn)) {
		log_debug("%s: %s: CmdSN %u outside [%u, %u], ignored", __func__, c->peer, p->cmdsn,
			  s->expcmdsn, s->maxcmdsn);
		return false;
	}
	if (sn_gone(s, p->cmdsn)) {
		log_debug("%s: %s: CmdSN %u was aborted before it arrived, ignored", __func__,
			  c->peer, p->cmdsn);
		return false;
	}
	if (p->cmdsn == s->expcmdsn) {
		s->expcmdsn++;
		sn_skip_gone(s);
		return true;
	}
	*deliver = false;
	return true;
}

/* ---- command arrival ---- */

static int cmd_cdb_from_ahs(struct task *t, const struct conn *c)
{
	uint32_t pos = 0;

	memcpy(t->st.cdb, c->pdu.cdb, 16);
	t->st.cdb_len = 16;
	while (pos + 4 <= c->pdu.ahs_len) {
		uint16_t len = (uint16_t)c->ahs[pos] << 8 | c->ahs[pos + 1];
		uint8_t type = c->ahs[pos + 2];

		if (pos + 3 + len > c->pdu.ahs_len)
			return -EBADMSG;
		/* RFC 7143 11.2.1.3: Extended CDB AHS, type 1: the CDB bytes beyond 16
		 * follow one reserved byte. */
		if (type == 1) {
			if (len < 1 || len - 1 + 16 > sizeof(t->st.cdb))
				return -EBADMSG;
			memcpy(t->st.cdb + 16, c->ahs + pos + 4, len - 1);
			t->st.cdb_len = 16 + len - 1;
		}
		pos += (3 + len + 3) & ~3u;
	}
	return 0;
}

static struct scsi_lun *cmd_lun(struct session *s, uint64_t raw, uint64_t *lun_id)
{
	struct tgt_target *tt = s->target;
	uint64_t lun;

	if (iscsi_lun_decode(raw, &lun) < 0)
		return NULL;
	*lun_id = lun;
	for (size_t i = 0, n = scsi_target_nluns(&tt->info); i < n; i++)
		if (tt->luns[i].lun == lun)
			return scsi_lun_entry_dev(&tt->luns[i]);
	return NULL;
}

void cmd_scsi(struct conn *c, const struct iscsi_pdu *p)
{
	struct session *s = c->session;
	struct task *t;
	bool deliver = true;
	uint32_t dlen = p->data_len;

	if (!cmd_check_sn(c, p, &deliver)) {
		conn_rx_into(c, NULL, true);
		return;
	}
	/* From here a rejected command has still used its CmdSN, so the initiator's
	 * command stream does not stall behind it. */
	if (task_find(c, p->itt)) {
		/* RFC 7143 11.17.1: a tag already in use. */
		conn_reject(c, ISCSI_REJECT_TASK_IN_PROGRESS, c->bhs);
		conn_rx_into(c, NULL, true);
		return;
	}
	if ((p->read && dlen) ||
	    (dlen && (!p->write || dlen > p->edtl || !c->params.immediate_data ||
		      dlen > c->params.first_burst)) ||
	    (!p->final && (c->params.initial_r2t || !p->write))) {
		/* Immediate or unsolicited data the negotiation does not allow. */
		conn_reject(c, ISCSI_REJECT_PROTOCOL_ERROR, c->bhs);
		conn_rx_into(c, NULL, true);
		return;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		fatal("%s", __func__);
	t->conn = c;
	t->req = *p;
	t->itt = p->itt;
	t->cmdsn = p->cmdsn;
	t->state = deliver ? TASK_DATA_OUT : TASK_QUEUED;
	t->delivered = deliver;
	t->r2t_offset = p->final ? dlen : 0;
	t->st.target = &s->target->info;
	t->st.nexus = &s->nexus;
	t->st.lun = cmd_lun(s, p->lun, &t->st.lun_id);
	t->st.edtl = p->edtl;
	t->st.dir = (p->read ? SCSI_DIR_READ : 0) | (p->write ? SCSI_DIR_WRITE : 0);
	t->st.ioctx = c->worker->io;
	t->st.done = cmd_scsi_done;
	t->st.hold = tgt_hold;
	t->st.priv = t;
	t->unsol_open = p->write && !p->final;
	if (cmd_cdb_from_ahs(t, c) < 0) {
		free(t);
		conn_fail(c, ISCSI_REJECT_PROTOCOL_ERROR, "malformed AHS");
		return;
	}
	if (p->write && p->edtl) {
		if (p->edtl > TGT_MAX_XFER) {
			t->too_big = true;
		} else {
			t->st.out = bs_buf_alloc(p->edtl);
			if (!t->st.out)
				fatal("%s: out of memory", __func__);
			t->st.out_len = p->edtl;
		}
	}
	task_hash_add(c, t);
	if (!deliver) {
		/* Early: keep it in CmdSN order until the gap before it fills. */
		struct task **pp = &s->pending;

		while (*pp && iscsi_sn_lt((*pp)->cmdsn, t->cmdsn))
			pp = &(*pp)->qnext;
		t->qnext = *pp;
		*pp = t;
	}
	c->rx_task = t;
	if (t->too_big)
		conn_rx_into(c, NULL, true);
	else
		conn_rx_into(c, t->st.out, false);
	/* Commands that came early and waited for this one may go now. */
	if (deliver && !p->immediate && c->state == CONN_FFP)
		cmd_run_pending(s);
}

/* The SCSI Command PDU or a Data-Out PDU of this task is entirely in. */
void cmd_data_done(struct conn *c, struct task *t)
{
	uint32_t dlen = c->pdu.data_len;

	if (c->pdu.opcode == ISCSI_OP_SCSI_CMD) {
		t->received = dlen;
		t->pdu_in = true;
		cmd_progress(t);
		return;
	}
	/* Data-Out */
	t->received += dlen;
	if (c->pdu.final) {
		if (c->pdu.ttt == ISCSI_RSVD_TAG) {
			t->unsol_open = false;
			/* Solicited data starts where the unsolicited data ended. */
			t->r2t_offset = t->received;
		} else {
			t->outstanding_r2t--;
			if (t->outstanding_r2t > 0) {
				/* The next outstanding burst continues from here. */
				t->burst_offset = t->received;
				t->burst_left = t->st.edtl - t->received < c->params.max_burst
							? t->st.edtl - t->received
							: c->params.max_burst;
				t->datasn_expected = 0;
			}
		}
	}
	cmd_progress(t);
}

/* RFC 7143 11.7: check a Data-Out header against the task it names before its data is
 * read into the task's buffer. */
void cmd_data_out(struct conn *c, const struct iscsi_pdu *p)
{
	struct task *t = task_find(c, p->itt);
	uint32_t dlen = p->data_len;
	const char *why = NULL;
	const struct scsi_sense *err = &SENSE_DATA_PHASE_ERROR;

	if (!t || t->aborted || t->too_big || t->data_error) {
		/* The task is gone (aborted, or never accepted): drop its data. */
		conn_rx_into(c, NULL, true);
		return;
	}
	if (!(t->st.dir & SCSI_DIR_WRITE) || t->state == TASK_EXEC || t->state == TASK_SENDING)
		why = "Data-Out for a task that takes no more data";
	else if (dlen > t->st.edtl - p->buffer_offset)
		why = "Data-Out beyond the Expected Data Transfer Length",
		err = &SENSE_TOO_MUCH_WRITE_DATA;
	else if (p->buffer_offset != t->received)
		why = "Data-Out offset out of sequence", err = &SENSE_DATA_OFFSET_ERROR;
	else if (p->ttt == ISCSI_RSVD_TAG) {
		if (!t->unsol_open)
			why = "unsolicited Data-Out not allowed";
		else if (t->received + dlen > c->params.first_burst)
			why = "unsolicited data beyond FirstBurstLength";
		else if (p->datasn != t->unsol_datasn)
			why = "DataSN out of order";
		else
			t->unsol_datasn++;
	} else {
		if (t->outstanding_r2t == 0 || p->ttt != t->ttt)
			why = "Data-Out with an unknown Target Transfer Tag",
			err = &SENSE_INVALID_TTT;
		else if (p->datasn != t->datasn_expected)
			why = "DataSN out of order";
		else if (dlen > t->burst_left)
			why = "Data-Out beyond the solicited burst";
		else {
			t->datasn_expected++;
			t->burst_left -= dlen;
			if (p->final != (t->burst_left == 0))
				why = "F bit does not end the burst";
		}
	}
	if (why) {
		/* The command cannot complete as sent. Rather than drop the whole session
		 * (all ERL 0 offers), it fails with the SCSI answer for a broken data phase
		 * (spc4r37 D.2: ABORTED COMMAND, 4B/xx) and its remaining data is dropped. */
		log_warnx("%s: %s: itt 0x%x: %s", __func__, c->peer, p->itt, why);
		conn_rx_into(c, NULL, true);
		if (t->state == TASK_DATA_OUT && t->delivered) {
			t->state = TASK_EXEC;
			scsi_task_check(&t->st, err);
		} else {
			t->data_error = err;
		}
		return;
	}
	c->rx_task = t;
	conn_rx_into(c, t->st.out + p->buffer_offset, false);
}
