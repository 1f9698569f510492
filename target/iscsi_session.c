/* iSCSI sessions: binding a logged-in connection to a new or existing session (TSIH, session
 * and connection reinstatement, RFC 7143 6.3), the I_T nexus it represents, and the CmdSN
 * window. A session and all its connections live on one worker; the global session list is
 * touched only at login, logout and by the control plane, under tgt_global.lock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "target/fence.h"
#include "target/lun.h"
#include "target/transport.h"

static void session_recompute_window(struct session *s)
{
	unsigned active = 0;
	uint32_t max;

	for (struct conn *c = s->conns; c; c = c->snext)
		active += c->ntasks;
	if (active >= TGT_CMD_WINDOW)
		active = TGT_CMD_WINDOW - 1;
	max = s->expcmdsn + (TGT_CMD_WINDOW - active) - 1;
	/* RFC 7143 4.2.2.1: the window never shrinks below what was granted. */
	if (iscsi_sn_lt(s->maxcmdsn, max))
		s->maxcmdsn = max;
}

void session_cmd_window(struct session *s, uint32_t *exp, uint32_t *max)
{
	session_recompute_window(s);
	*exp = s->expcmdsn;
	*max = s->maxcmdsn;
}

static struct session *session_find_tsih(uint16_t tsih)
{
	for (struct session *s = tgt_global.sessions; s; s = s->next)
		if (s->tsih == tsih && !s->dying)
			return s;
	return NULL;
}

/* RFC 7143 4.4.1: a session is named by the initiator's name and ISID and by the target
 * portal group it lives in; the same ISID through another portal group is another session
 * (a multipath initiator's second path), not a reinstatement. */
static struct session *session_find_isid(const char *initiator, const uint8_t isid[6],
					 int target_index, enum iscsi_session_type type,
					 uint16_t tpgt)
{
	for (struct session *s = tgt_global.sessions; s; s = s->next)
		if (!s->dying && s->type == type && s->target_index == target_index &&
		    s->nexus.tpgt == tpgt && memcmp(s->isid, isid, 6) == 0 &&
		    strcmp(s->initiator, initiator) == 0)
			return s;
	return NULL;
}

static uint16_t session_new_tsih(void)
{
	for (;;) {
		uint16_t t = ++tgt_global.next_tsih;

		if (t != 0 && !session_find_tsih(t))
			return t;
	}
}

static void session_conn_leave(struct session *s);

static void session_link_conn(struct session *s, struct conn *c)
{
	c->session = s;
	c->snext = s->conns;
	s->conns = c;
	s->nconns++;
}

static void session_post_kill(struct session *s)
{
	struct worker_msg *m = calloc(1, sizeof(*m));

	if (!m)
		fatal("%s", __func__);
	pthread_mutex_lock(&tgt_global.lock);
	s->refs++; /* dropped by the worker once it has handled the message */
	pthread_mutex_unlock(&tgt_global.lock);
	m->type = WORKER_MSG_KILL_SESSION;
	m->session = s;
	worker_post(s->worker, m);
}

/* A new normal session is a new I_T nexus for every LUN of its target (or the return of
 * one that logged out before): the LUNs learn about it for their unit attentions. */
static void session_announce_nexus(struct session *s)
{
	for (size_t i = 0, n = scsi_target_nluns(&s->target->info); i < n; i++) {
		struct scsi_lun *dev = scsi_lun_entry_dev(&s->target->luns[i]);

		if (dev)
			scsi_lun_nexus_login(dev, &s->nexus);
	}
}

static int session_create(struct conn *c, const struct iscsi_pdu *req, enum iscsi_session_type type,
			  int target_index, struct session **out)
{
	struct session *s = calloc(1, sizeof(*s));
	struct scsi_nexus *nx;

	if (!s)
		return -ENOMEM;
	s->tsih = session_new_tsih();
	memcpy(s->isid, req->isid, 6);
	snprintf(s->initiator, sizeof(s->initiator), "%s", iscsi_login_initiator_name(c->login));
	snprintf(s->alias, sizeof(s->alias), "%s", iscsi_login_initiator_alias(c->login));
	s->type = type;
	s->target_index = target_index;
	s->target = target_index >= 0 ? &tgt_global.targets[target_index] : NULL;
	s->params = c->params;
	s->worker = c->worker;
	s->expcmdsn = req->cmdsn;
	s->maxcmdsn = req->cmdsn + TGT_CMD_WINDOW - 1;
	s->created_ns = tgt_now_ns();
	s->refs = 1;
	nx = &s->nexus;
	nx->id = ++tgt_global.next_nexus_id;
	snprintf(nx->initiator_name, sizeof(nx->initiator_name), "%s", s->initiator);
	memcpy(nx->isid, s->isid, 6);
	/* SPC-4 7.6.4.6: the iSCSI initiator port name is "<name>,i,0x<ISID>". */
	snprintf(nx->initiator_port, sizeof(nx->initiator_port), "%s,i,0x%02x%02x%02x%02x%02x%02x",
		 s->initiator, s->isid[0], s->isid[1], s->isid[2], s->isid[3], s->isid[4],
		 s->isid[5]);
	nx->tpgt = c->listener->portal->tpgt;
	nx->rel_port_id = c->listener->portal->tpgt;
	s->next = tgt_global.sessions;
	tgt_global.sessions = s;
	*out = s;
	return 0;
}

int session_bind(struct conn *c, const struct iscsi_pdu *req, uint16_t *tsih, uint16_t *status)
{
	enum iscsi_session_type type = iscsi_login_session_type(c->login);
	int target_index = iscsi_login_target_index(c->login);
	const char *initiator = iscsi_login_initiator_name(c->login);
	struct session *s, *old = NULL;
	struct conn *same_cid = NULL;
	int rc = 0;

	*status = ISCSI_LOGIN_SUCCESS;
	c->cid = req->cid;
	pthread_mutex_lock(&tgt_global.lock);
	if (type == ISCSI_SESSION_NORMAL && tgt_fence_logins_held_locked()) {
		/* The fences of the run before are not back yet: nobody may log in (fence.h). */
		log_info("%s: %s: login refused for now: the coordinator has not given this "
			 "target its fences yet",
			 __func__, initiator);
		*status = ISCSI_LOGIN_SERVICE_UNAVAILABLE;
		goto out_unlock;
	}
	if (type == ISCSI_SESSION_NORMAL && tgt_fence_refuses_login_locked(initiator)) {
		/* A fenced host logs in again only once it rejoined under a new epoch. */
		log_warnx("%s: %s: login refused: the host is fenced", __func__, initiator);
		*status = ISCSI_LOGIN_FORBIDDEN;
		goto out_unlock;
	}
	if (req->tsih == 0) {
		/* RFC 7143 6.3.5: a leading login with the ISID of a live session
		 * reinstates it: the old session is closed and its tasks aborted. */
		old = session_find_isid(initiator, req->isid, target_index, type,
					c->listener->portal->tpgt);
		if (old)
			old->dying = true;
		rc = session_create(c, req, type, target_index, &s);
		if (rc < 0) {
			*status = ISCSI_LOGIN_OUT_OF_RESOURCES;
			goto out_unlock;
		}
		session_link_conn(s, c);
		*tsih = s->tsih;
		pthread_mutex_unlock(&tgt_global.lock);
		if (old) {
			log_info("%s: %s reinstates session tsih %u", __func__, initiator,
				 old->tsih);
			if (old->worker == c->worker)
				session_kill(old);
			else
				session_post_kill(old);
		}
		if (type == ISCSI_SESSION_NORMAL)
			session_announce_nexus(s);
		return 0;
	}

	s = session_find_tsih(req->tsih);
	if (!s || memcmp(s->isid, req->isid, 6) != 0 || strcmp(s->initiator, initiator) != 0 ||
	    s->target_index != target_index || s->type != type) {
		*status = ISCSI_LOGIN_SESSION_DOES_NOT_EXIST;
		goto out_unlock;
	}
	if (s->nexus.tpgt != c->listener->portal->tpgt) {
		/* RFC 7143 4.4.1: every connection of a session is in one portal group. */
		*status = ISCSI_LOGIN_CANT_INCLUDE_IN_SESSION;
		goto out_unlock;
	}
	if (s->worker != c->worker) {
		/* The session's connection list belongs to its worker: the connection
		 * joins over there, after this response is out. */
		if (s->nconns >= s->params.max_connections) {
			*status = ISCSI_LOGIN_TOO_MANY_CONNECTIONS;
			goto out_unlock;
		}
		c->session = s;
		s->nconns++; /* counted now; linked by session_adopt_conn() */
		c->adopt_pending = true;
		*tsih = s->tsih;
		goto out_unlock;
	}
	for (struct conn *o = s->conns; o; o = o->snext)
		if (o->cid == req->cid)
			same_cid = o;
	if (!same_cid && s->nconns >= s->params.max_connections) {
		*status = ISCSI_LOGIN_TOO_MANY_CONNECTIONS;
		goto out_unlock;
	}
	session_link_conn(s, c);
	*tsih = s->tsih;
	pthread_mutex_unlock(&tgt_global.lock);
	if (same_cid) /* RFC 7143 6.3.4: connection reinstatement */
		conn_close(same_cid, "reinstated by a login with the same CID");
	return 0;

out_unlock:
	pthread_mutex_unlock(&tgt_global.lock);
	return rc;
}

/* Drop one reference: the connections' (taken at creation, dropped when the last one
 * leaves) or a queued worker message's. The last one frees the session. */
void session_put(struct session *s)
{
	struct session **pp;
	bool last;

	pthread_mutex_lock(&tgt_global.lock);
	last = --s->refs == 0;
	if (last)
		for (pp = &tgt_global.sessions; *pp; pp = &(*pp)->next)
			if (*pp == s) {
				*pp = s->next;
				break;
			}
	pthread_mutex_unlock(&tgt_global.lock);
	if (!last)
		return;
	log_info("%s: session tsih %u of %s ended", __func__, s->tsih, s->initiator);
	free(s);
}

/* A connection left the session's count; the last one ends the session. */
static void session_conn_leave(struct session *s)
{
	bool last;

	pthread_mutex_lock(&tgt_global.lock);
	last = --s->nconns == 0;
	if (last)
		s->dying = true;
	pthread_mutex_unlock(&tgt_global.lock);
	if (last) {
		/* At ErrorRecoveryLevel 0 a session ends with its last connection: the I_T
		 * nexus is gone for every LUN of the target. */
		cmd_drop_pending(s);
		if (s->type == ISCSI_SESSION_NORMAL)
			for (size_t i = 0, n = scsi_target_nluns(&s->target->info); i < n; i++) {
				struct scsi_lun *dev = scsi_lun_entry_dev(&s->target->luns[i]);

				if (dev)
					scsi_lun_nexus_logout(dev, &s->nexus);
			}
		session_put(s);
	}
}

/* On the session's worker: link a connection that logged in on another worker. */
void session_adopt_conn(struct conn *c)
{
	struct session *s = c->session;
	struct conn *same_cid = NULL;

	c->adopt_pending = false;
	if (s->dying) {
		c->session = NULL;
		session_conn_leave(s);
		conn_close(c, "session ended during login");
		return;
	}
	for (struct conn *o = s->conns; o; o = o->snext)
		if (o->cid == c->cid)
			same_cid = o;
	c->snext = s->conns;
	s->conns = c;
	if (same_cid)
		conn_close(same_cid, "reinstated by a login with the same CID");
}

void session_conn_gone(struct conn *c)
{
	struct session *s = c->session;
	struct conn **pp;

	c->session = NULL;
	if (!c->adopt_pending) {
		for (pp = &s->conns; *pp; pp = &(*pp)->snext)
			if (*pp == c) {
				*pp = c->snext;
				break;
			}
	}
	session_conn_leave(s);
}

/* On the session's worker: close every connection (reinstatement, admin, fencing). */
void session_kill(struct session *s)
{
	s->dying = true;
	while (s->conns)
		conn_close(s->conns, "session reinstated or killed");
}
