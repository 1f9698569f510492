/* An iSCSI connection: the receive state machine (BHS, AHS, digests, data segment straight
 * into the task's buffer), the transmit queue (header and data of many PDUs in one
 * sendmsg), the login phase and the dispatch of full-feature PDUs. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/crc32c.h"
#include "lib/log.h"
#include "target/backstore.h"
#include "target/transport.h"

#define CONN_IOV_BATCH 64

static void conn_dispatch_header(struct conn *c);
static void conn_dispatch_pdu(struct conn *c);
static void conn_destroy(struct conn *c);

static void sockaddr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
		snprintf(buf, len, "%s:%u", host, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
		snprintf(buf, len, "[%s]:%u", host, port);
	} else {
		snprintf(buf, len, "?");
	}
}

struct conn *conn_create(int fd, struct worker *w, const struct tgt_listener *l)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1;

	if (!c) {
		log_warnx("%s: out of memory", __func__);
		return NULL;
	}
	c->stage = malloc(TGT_RX_STAGING);
	if (!c->stage) {
		free(c);
		return NULL;
	}
	c->fd = fd;
	c->worker = w;
	c->listener = l;
	c->state = CONN_LOGIN;
	c->phase = RX_BHS;
	c->next_ttt = 1;
	c->last_rx_ns = tgt_now_ns();
	c->created_ns = c->last_rx_ns;
	iscsi_params_default(&c->params);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sl = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		sockaddr_text(&ss, c->peer, sizeof(c->peer));
	sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		sockaddr_text(&ss, c->local, sizeof(c->local));
	if (iscsi_login_create(tgt_global.cfg, l->portal->tpgt, &c->login) < 0) {
		free(c->stage);
		free(c);
		return NULL;
	}
	c->wnext = w->conns;
	if (w->conns)
		w->conns->wprev = &c->wnext;
	c->wprev = &w->conns;
	w->conns = c;
	if (worker_watch(w, c, EPOLLIN | EPOLLRDHUP) < 0) {
		log_warn("%s: epoll", __func__);
		conn_close(c, "epoll registration failed");
		return NULL;
	}
	log_debug("%s: %s -> %s on worker %d", __func__, c->peer, c->local, w->id);
	return c;
}

/* A connection that joined a session living on another worker arrives here. */
void conn_adopted(struct conn *c, struct worker *w)
{
	c->worker = w;
	c->wnext = w->conns;
	if (w->conns)
		w->conns->wprev = &c->wnext;
	c->wprev = &w->conns;
	w->conns = c;
	if (worker_watch(w, c, EPOLLIN | EPOLLRDHUP | (c->want_out ? EPOLLOUT : 0)) < 0) {
		conn_close(c, "epoll registration failed");
		return;
	}
	session_adopt_conn(c);
	if (c->state == CONN_CLOSING)
		return;
	/* Bytes may already sit in the staging buffer or the socket. */
	conn_event(c, EPOLLIN);
}

static void conn_unlink_worker(struct conn *c)
{
	if (c->wprev) {
		*c->wprev = c->wnext;
		if (c->wnext)
			c->wnext->wprev = c->wprev;
		c->wprev = NULL;
		c->wnext = NULL;
	}
}

/* Move a connection to another worker (it joined a session that lives there). */
void conn_migrate(struct conn *c, struct worker *to)
{
	struct worker_msg *m;

	worker_unwatch(c->worker, c);
	conn_unlink_worker(c);
	m = calloc(1, sizeof(*m));
	if (!m)
		fatal("%s", __func__);
	m->type = WORKER_MSG_ADOPT_CONN;
	m->conn = c;
	worker_post(to, m);
}

/* ---- transmit ---- */

struct txpdu *conn_tx_alloc(struct conn *c)
{
	struct txpdu *tx = calloc(1, sizeof(*tx));

	if (!tx)
		fatal("%s", __func__);
	tx->iov[0].iov_base = tx->bhs;
	tx->iov[0].iov_len = ISCSI_BHS_LEN + (c->params.header_digest ? ISCSI_DIGEST_LEN : 0);
	tx->iovcnt = 1;
	return tx;
}

/* Attach a data segment (not copied: it must live until the PDU is sent). */
void conn_tx_data(struct conn *c, struct txpdu *tx, void *data, uint32_t len)
{
	uint32_t pad = iscsi_pad(len);
	size_t n = pad;

	if (len == 0)
		return;
	tx->iov[tx->iovcnt].iov_base = data;
	tx->iov[tx->iovcnt].iov_len = len;
	tx->iovcnt++;
	memset(tx->pad_digest, 0, pad);
	if (c->params.data_digest) {
		uint32_t crc = crc32c(0, data, len);

		crc = crc32c(crc, tx->pad_digest, pad);
		crc32c_put_le(tx->pad_digest + pad, crc);
		n += ISCSI_DIGEST_LEN;
	}
	if (n) {
		tx->iov[tx->iovcnt].iov_base = tx->pad_digest;
		tx->iov[tx->iovcnt].iov_len = n;
		tx->iovcnt++;
	}
}

void conn_mark_dirty(struct conn *c)
{
	if (c->is_dirty)
		return;
	c->is_dirty = true;
	c->dirty_next = c->worker->dirty;
	c->worker->dirty = c;
}

void conn_queue(struct conn *c, struct txpdu *tx)
{
	if (c->params.header_digest)
		crc32c_put_le(tx->bhs + ISCSI_BHS_LEN, crc32c(0, tx->bhs, ISCSI_BHS_LEN));
	tx->total = 0;
	for (int i = 0; i < tx->iovcnt; i++)
		tx->total += tx->iov[i].iov_len;
	if (tx->task)
		tx->task->tx_refs++;
	tx->next = NULL;
	if (c->txtail)
		c->txtail->next = tx;
	else
		c->txhead = tx;
	c->txtail = tx;
	conn_mark_dirty(c);
}

static void tx_release(struct conn *c, struct txpdu *tx)
{
	struct task *t = tx->task;

	if (t) {
		t->tx_refs--;
		if (t->tx_refs == 0 && t->state == TASK_SENDING)
			task_free(t);
	}
	free(tx->owned);
	free(tx);
}

void conn_flush(struct conn *c)
{
	struct iovec iov[CONN_IOV_BATCH];
	struct msghdr mh = {0};

	while (c->txhead && c->state != CONN_CLOSING) {
		int n = 0;
		struct txpdu *tx;
		ssize_t w;
		bool close_after = false;

		for (tx = c->txhead; tx && n + tx->iovcnt <= CONN_IOV_BATCH; tx = tx->next) {
			size_t skip = tx->sent;

			for (int i = 0; i < tx->iovcnt; i++) {
				if (skip >= tx->iov[i].iov_len) {
					skip -= tx->iov[i].iov_len;
					continue;
				}
				iov[n].iov_base = (uint8_t *)tx->iov[i].iov_base + skip;
				iov[n].iov_len = tx->iov[i].iov_len - skip;
				skip = 0;
				n++;
			}
			if (tx->close_after)
				break;
		}
		mh.msg_iov = iov;
		mh.msg_iovlen = n;
		w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!c->want_out) {
					c->want_out = true;
					worker_watch(c->worker, c, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
				}
				return;
			}
			if (errno == EINTR)
				continue;
			conn_close(c, "send failed");
			return;
		}
		while (w > 0 && c->txhead) {
			tx = c->txhead;
			size_t left = tx->total - tx->sent;

			if ((size_t)w < left) {
				tx->sent += w;
				break;
			}
			w -= left;
			c->txhead = tx->next;
			if (!c->txhead)
				c->txtail = NULL;
			close_after = tx->close_after;
			tx_release(c, tx);
			if (close_after) {
				conn_close(c, "closing after final response");
				return;
			}
		}
	}
	if (c->want_out && !c->txhead && c->state != CONN_CLOSING) {
		c->want_out = false;
		worker_watch(c->worker, c, EPOLLIN | EPOLLRDHUP);
	}
}

void worker_flush_dirty(struct worker *w)
{
	while (w->dirty) {
		struct conn *c = w->dirty;

		w->dirty = c->dirty_next;
		c->is_dirty = false;
		conn_flush(c);
		if (c->state == CONN_CLOSING && c->refs == 0 && c->ntasks == 0)
			conn_destroy(c);
	}
}

/* Fill the sequence numbers of a target PDU. StatSN advances for PDUs that carry status
 * (RFC 7143 4.2.2.2). */
void conn_fill_sn(struct conn *c, struct iscsi_sn *sn, bool advance)
{
	sn->statsn = c->statsn;
	if (advance)
		c->statsn++;
	if (c->session) {
		session_cmd_window(c->session, &sn->expcmdsn, &sn->maxcmdsn);
	} else {
		sn->expcmdsn = c->pdu.cmdsn;
		sn->maxcmdsn = c->pdu.cmdsn;
	}
}

/* RFC 7143 11.17: a Reject carries the rejected PDU's header as its data. */
void conn_reject(struct conn *c, uint8_t reason, const uint8_t *bhs)
{
	struct txpdu *tx = conn_tx_alloc(c);
	struct iscsi_sn sn;

	conn_fill_sn(c, &sn, true);
	memcpy(tx->small, bhs, ISCSI_BHS_LEN);
	iscsi_build_reject(tx->bhs, reason, 0, &sn, ISCSI_BHS_LEN);
	conn_tx_data(c, tx, tx->small, ISCSI_BHS_LEN);
	conn_queue(c, tx);
}

/* A protocol error that ERL 0 recovers from only by dropping the connection. */
void conn_fail(struct conn *c, uint8_t reason, const char *why)
{
	log_warnx("%s: %s: %s", __func__, c->peer, why);
	if (c->state == CONN_FFP) {
		struct txpdu *tx;

		conn_reject(c, reason, c->bhs);
		tx = c->txtail;
		tx->close_after = true;
		conn_flush(c);
		/* Nothing after a framing error can be trusted: ignore the rest. */
		if (c->state != CONN_CLOSING)
			c->state = CONN_LOGGED_OUT;
		return;
	}
	conn_close(c, why);
}

/* ---- close ---- */

void conn_close(struct conn *c, const char *why)
{
	struct task *t, *next;

	if (c->state == CONN_CLOSING)
		return;
	log_info("%s: %s%s%s: %s", __func__, c->peer, c->session ? " " : "",
		 c->session ? c->session->initiator : "", why);
	c->state = CONN_CLOSING;
	worker_unwatch(c->worker, c);
	shutdown(c->fd, SHUT_RDWR);
	/* Tasks with I/O in flight finish on their own and then release the connection. */
	for (t = c->tasks; t; t = next) {
		next = t->anext;
		task_abort(t, NULL);
	}
	while (c->txhead) {
		struct txpdu *tx = c->txhead;

		c->txhead = tx->next;
		tx_release(c, tx);
	}
	c->txtail = NULL;
	if (c->session)
		session_conn_gone(c);
	conn_mark_dirty(c);
}

static void conn_destroy(struct conn *c)
{
	if (c->is_dirty) /* destroyed from the dirty walk once it is unlinked */
		return;
	conn_unlink_worker(c);
	if (c->login)
		iscsi_login_destroy(c->login);
	if (c->text)
		iscsi_text_destroy(c->text);
	close(c->fd);
	free(c->rxbuf);
	free(c->stage);
	free(c);
}

/* ---- receive ---- */

/* Set where the data segment of the current PDU lands. */
static void rx_set_data(struct conn *c, uint8_t *dst, bool discard)
{
	c->data = dst;
	c->rx_discard = discard;
	c->got = 0;
	c->phase = c->pdu.data_len ? RX_DATA : RX_BHS;
}

static int rx_need_buf(struct conn *c, uint32_t len)
{
	if (c->rxbuf_len >= len)
		return 0;
	free(c->rxbuf);
	c->rxbuf = malloc(len);
	c->rxbuf_len = c->rxbuf ? len : 0;
	return c->rxbuf ? 0 : -ENOMEM;
}

/* Start on a PDU whose BHS (and AHS, header digest) is complete. */
static void rx_header_done(struct conn *c)
{
	uint8_t reason = 0;

	if (iscsi_pdu_parse(c->bhs, ISCSI_BHS_LEN, &c->pdu, &reason) < 0) {
		if (reason == ISCSI_REJECT_CMD_NOT_SUPPORTED && c->state == CONN_FFP) {
			/* An unknown opcode is answered with a Reject; its data is skipped. */
			conn_reject(c, reason, c->bhs);
			rx_set_data(c, NULL, true);
			if (c->phase == RX_BHS)
				c->got = 0;
			return;
		}
		conn_fail(c, reason ? reason : ISCSI_REJECT_PROTOCOL_ERROR, "malformed PDU header");
		return;
	}
	if (c->pdu.data_len > c->params.target_max_recv_dsl &&
	    !(c->state == CONN_LOGIN && c->pdu.data_len <= ISCSI_LOGIN_TEXT_MAX)) {
		conn_fail(c, ISCSI_REJECT_PROTOCOL_ERROR,
			  "data segment exceeds MaxRecvDataSegmentLength");
		return;
	}
	c->last_rx_ns = tgt_now_ns();
	conn_dispatch_header(c);
}

static bool rx_digest_ok(struct conn *c, const uint8_t *p, uint32_t len, uint32_t pad)
{
	static const uint8_t zeros[4];
	uint32_t crc = crc32c(0, p, len);

	crc = crc32c(crc, zeros, pad);
	return crc32c_get_le(c->digest) == crc;
}

/* Copy or receive into dst up to need bytes; returns bytes obtained, 0 on would-block,
 * -1 on EOF or error (the connection is closed). */
static ssize_t rx_fill(struct conn *c, uint8_t *dst, size_t need)
{
	size_t avail = c->stage_len - c->stage_pos;
	ssize_t n;

	if (avail) {
		size_t k = avail < need ? avail : need;

		if (dst)
			memcpy(dst, c->stage + c->stage_pos, k);
		c->stage_pos += k;
		return k;
	}
	/* Large payloads go straight from the socket into their buffer. */
	if (dst && need >= 4096) {
		n = recv(c->fd, dst, need, MSG_DONTWAIT);
	} else {
		c->stage_pos = c->stage_len = 0;
		n = recv(c->fd, c->stage, TGT_RX_STAGING, MSG_DONTWAIT);
		if (n > 0) {
			c->stage_len = n;
			return rx_fill(c, dst, need);
		}
	}
	if (n > 0)
		return n;
	if (n == 0) {
		conn_close(c, "connection closed by peer");
		return -1;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	conn_close(c, "receive failed");
	return -1;
}

static void conn_rx(struct conn *c)
{
	while (c->state != CONN_CLOSING) {
		uint8_t *dst = NULL;
		size_t need = 0;
		ssize_t n;

		switch (c->phase) {
		case RX_BHS:
			dst = c->bhs + c->got;
			need = ISCSI_BHS_LEN - c->got;
			break;
		case RX_AHS:
			dst = c->ahs + c->got;
			need = c->pdu.ahs_len - c->got;
			break;
		case RX_HDIGEST:
		case RX_DDIGEST:
			dst = c->digest + c->got;
			need = ISCSI_DIGEST_LEN - c->got;
			break;
		case RX_DATA:
			dst = c->rx_discard ? NULL : c->data + c->got;
			need = c->pdu.data_len - c->got;
			break;
		case RX_PAD:
			dst = c->digest + c->got;
			need = iscsi_pad(c->pdu.data_len) - c->got;
			break;
		default:
			fatalx("%s: bad phase %d", __func__, c->phase);
		}
		n = rx_fill(c, dst, need);
		if (n <= 0)
			return;
		c->got += n;
		if ((size_t)n < need)
			continue;
		c->got = 0;
		switch (c->phase) {
		case RX_BHS:
			/* TotalAHSLength is in byte 4; parse the rest after the AHS. */
			c->pdu.ahs_len = c->bhs[4] * 4;
			c->pdu.data_len = (uint32_t)c->bhs[5] << 16 | c->bhs[6] << 8 | c->bhs[7];
			if (c->pdu.ahs_len)
				c->phase = RX_AHS;
			else if (c->params.header_digest)
				c->phase = RX_HDIGEST;
			else
				rx_header_done(c);
			break;
		case RX_AHS:
			if (c->params.header_digest)
				c->phase = RX_HDIGEST;
			else
				rx_header_done(c);
			break;
		case RX_HDIGEST: {
			uint32_t crc = crc32c(0, c->bhs, ISCSI_BHS_LEN);

			crc = crc32c(crc, c->ahs, c->pdu.ahs_len);
			if (crc != crc32c_get_le(c->digest)) {
				/* RFC 7143 7.8: a header digest error cannot be trusted to
				 * find the next PDU; at ERL 0 the connection is dropped. */
				conn_close(c, "header digest error");
				return;
			}
			rx_header_done(c);
			break;
		}
		case RX_DATA:
			if (iscsi_pad(c->pdu.data_len))
				c->phase = RX_PAD;
			else if (c->params.data_digest)
				c->phase = RX_DDIGEST;
			else
				conn_dispatch_pdu(c);
			break;
		case RX_PAD:
			if (c->params.data_digest)
				c->phase = RX_DDIGEST;
			else
				conn_dispatch_pdu(c);
			break;
		case RX_DDIGEST:
			if (!c->rx_discard && !rx_digest_ok(c, c->data, c->pdu.data_len,
							    iscsi_pad(c->pdu.data_len))) {
				/* RFC 7143 7.8.2: a data digest error on a command or Data-Out
				 * gets a Reject; at ERL 0 we then drop the connection. */
				conn_fail(c, ISCSI_REJECT_DIGEST_ERROR, "data digest error");
				return;
			}
			conn_dispatch_pdu(c);
			break;
		default:
			fatalx("%s: bad phase %d", __func__, c->phase);
		}
		if (c->phase != RX_DATA && c->phase != RX_PAD && c->phase != RX_DDIGEST &&
		    c->phase != RX_AHS && c->phase != RX_HDIGEST)
			c->phase = RX_BHS;
	}
}

void conn_event(struct conn *c, uint32_t events)
{
	if (c->state == CONN_CLOSING)
		return;
	if (events & EPOLLOUT)
		conn_flush(c);
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		conn_rx(c);
}

/* ---- PDU dispatch ---- */

static void conn_send_login_rsp(struct conn *c, const struct iscsi_login_rsp *r, uint16_t tsih,
				uint16_t status)
{
	struct txpdu *tx = conn_tx_alloc(c);
	struct iscsi_sn sn;
	void *copy = NULL;

	conn_fill_sn(c, &sn, true);
	if (!c->session) {
		sn.expcmdsn = c->pdu.cmdsn;
		sn.maxcmdsn = c->pdu.cmdsn;
	}
	if (status != ISCSI_LOGIN_SUCCESS) {
		iscsi_build_login_rsp(tx->bhs, false, false, r->csg, 0, 0, c->pdu.isid, 0,
				      c->pdu.itt, &sn, status, 0);
		tx->close_after = true;
	} else {
		iscsi_build_login_rsp(tx->bhs, r->transit, r->cont, r->csg, r->nsg, 0, c->pdu.isid,
				      tsih, c->pdu.itt, &sn, status, r->data_len);
		if (r->data_len) {
			copy = malloc(r->data_len);
			if (!copy)
				fatal("%s", __func__);
			memcpy(copy, r->data, r->data_len);
			tx->owned = copy;
			conn_tx_data(c, tx, copy, r->data_len);
		}
		tx->close_after = r->close;
	}
	conn_queue(c, tx);
}

/* A connection added to a session negotiated only the connection-wide keys; the session-wide
 * ones (leading-only, RFC 7143 13) are the session's. */
static void conn_take_session_params(struct conn *c)
{
	const struct iscsi_params *sp = &c->session->params;
	struct iscsi_params p = *sp;

	p.initiator_max_recv_dsl = c->params.initiator_max_recv_dsl;
	p.target_max_recv_dsl = c->params.target_max_recv_dsl;
	p.header_digest = c->params.header_digest;
	p.data_digest = c->params.data_digest;
	c->params = p;
}

static void conn_login(struct conn *c)
{
	struct iscsi_login_rsp r;
	uint16_t tsih = 0, status;
	int rc;

	if (c->pdu.opcode != ISCSI_OP_LOGIN_REQ) {
		/* RFC 7143 6.x: only Login Requests are allowed before full feature phase. */
		conn_close(c, "non-login PDU during login");
		return;
	}
	if (!c->login_started) {
		/* RFC 7143 11.13.4: the first Login Response starts the StatSN sequence. */
		c->login_started = true;
		c->statsn = c->pdu.expstatsn;
	}
	rc = iscsi_login_step(c->login, &c->pdu, c->data, c->pdu.data_len, &r);
	if (rc < 0) {
		memset(&r, 0, sizeof(r));
		r.status = ISCSI_LOGIN_TARGET_ERROR;
		r.close = true;
	}
	status = r.status;
	if (status == ISCSI_LOGIN_SUCCESS && r.to_ffp) {
		c->params = *iscsi_login_params(c->login);
		if (session_bind(c, &c->pdu, &tsih, &status) < 0 && status == ISCSI_LOGIN_SUCCESS)
			status = ISCSI_LOGIN_TARGET_ERROR;
		if (status == ISCSI_LOGIN_SUCCESS && c->pdu.tsih)
			conn_take_session_params(c);
	} else if (c->pdu.tsih) {
		tsih = c->pdu.tsih;
	}
	/* The login response goes out under the old digest settings: digests start with
	 * the first full-feature PDU (RFC 7143 13.1). */
	{
		bool hd = c->params.header_digest, dd = c->params.data_digest;

		c->params.header_digest = c->params.data_digest = false;
		conn_send_login_rsp(c, &r, tsih, status);
		c->params.header_digest = hd;
		c->params.data_digest = dd;
	}
	if (status != ISCSI_LOGIN_SUCCESS) {
		log_info("%s: %s: login refused, status 0x%04x", __func__, c->peer, status);
		return;
	}
	if (r.to_ffp) {
		struct session *s = c->session;

		c->state = CONN_FFP;
		iscsi_login_destroy(c->login);
		c->login = NULL;
		if (iscsi_text_create(tgt_global.cfg, c->listener->portal->tpgt, s->target_index,
				      &c->params, &c->text) < 0) {
			conn_close(c, "out of memory");
			return;
		}
		log_info("%s: %s: %s session tsih %u cid %u for %s", __func__, c->peer,
			 s->type == ISCSI_SESSION_DISCOVERY ? "discovery" : "normal", s->tsih,
			 c->cid, s->initiator);
		if (s->worker != c->worker) {
			conn_flush(c);
			conn_migrate(c, s->worker);
		}
	}
}

static void conn_nop_out(struct conn *c)
{
	struct txpdu *tx;
	struct iscsi_sn sn;
	bool deliver;

	if (!c->pdu.immediate && !cmd_check_sn(c, &c->pdu, &deliver))
		return;
	if (c->pdu.itt == ISCSI_RSVD_TAG) {
		/* An answer to our NOP-In, or a ping that wants no answer. */
		return;
	}
	if (c->pdu.ttt != ISCSI_RSVD_TAG) {
		conn_reject(c, ISCSI_REJECT_PROTOCOL_ERROR, c->bhs);
		return;
	}
	tx = conn_tx_alloc(c);
	conn_fill_sn(c, &sn, true);
	iscsi_build_nop_in(tx->bhs, c->pdu.itt, ISCSI_RSVD_TAG, c->pdu.lun, &sn, c->pdu.data_len);
	if (c->pdu.data_len) {
		/* RFC 7143 11.19: the ping data is echoed back. */
		tx->owned = malloc(c->pdu.data_len);
		if (!tx->owned)
			fatal("%s", __func__);
		memcpy(tx->owned, c->data, c->pdu.data_len);
		conn_tx_data(c, tx, tx->owned, c->pdu.data_len);
	}
	conn_queue(c, tx);
}

static void conn_text(struct conn *c)
{
	struct iscsi_text_rsp r;
	struct txpdu *tx;
	struct iscsi_sn sn;
	bool deliver;

	if (!c->pdu.immediate && !cmd_check_sn(c, &c->pdu, &deliver))
		return;
	if (iscsi_text_step(c->text, &c->pdu, c->data, c->pdu.data_len, &r) < 0 || r.reject) {
		conn_reject(c, ISCSI_REJECT_PROTOCOL_ERROR, c->bhs);
		return;
	}
	tx = conn_tx_alloc(c);
	conn_fill_sn(c, &sn, true);
	iscsi_build_text_rsp(tx->bhs, r.final, r.cont, c->pdu.lun, c->pdu.itt, r.ttt, &sn,
			     r.data_len);
	if (r.data_len) {
		tx->owned = malloc(r.data_len);
		if (!tx->owned)
			fatal("%s", __func__);
		memcpy(tx->owned, r.data, r.data_len);
		conn_tx_data(c, tx, tx->owned, r.data_len);
	}
	conn_queue(c, tx);
}

static void conn_logout(struct conn *c)
{
	struct txpdu *tx;
	struct iscsi_sn sn;
	uint8_t response = ISCSI_LOGOUT_RSP_OK;
	bool deliver;
	struct conn *target = c;

	if (!c->pdu.immediate && !cmd_check_sn(c, &c->pdu, &deliver))
		return;
	switch (c->pdu.logout_reason) {
	case ISCSI_LOGOUT_CLOSE_SESSION:
		break;
	case ISCSI_LOGOUT_CLOSE_CONNECTION:
		for (target = c->session->conns; target; target = target->snext)
			if (target->cid == c->pdu.cid)
				break;
		if (!target)
			response = ISCSI_LOGOUT_RSP_CID_NOT_FOUND;
		break;
	case ISCSI_LOGOUT_REMOVE_FOR_RECOVERY:
		/* Connection recovery needs ErrorRecoveryLevel 2. */
		response = ISCSI_LOGOUT_RSP_RECOVERY_UNSUPPORTED;
		break;
	default:
		conn_reject(c, ISCSI_REJECT_INVALID_PDU_FIELD, c->bhs);
		return;
	}
	tx = conn_tx_alloc(c);
	conn_fill_sn(c, &sn, true);
	iscsi_build_logout_rsp(tx->bhs, c->pdu.itt, response, 0, 0, &sn);
	if (response == ISCSI_LOGOUT_RSP_OK) {
		if (c->pdu.logout_reason == ISCSI_LOGOUT_CLOSE_SESSION) {
			struct conn *o;

			/* Every other connection of the session goes first. */
			for (o = c->session->conns; o; o = o->snext)
				if (o != c)
					o->state = CONN_LOGGED_OUT;
			for (o = c->session->conns; o;) {
				struct conn *next = o->snext;

				if (o != c)
					conn_close(o, "session logout");
				o = next;
			}
			tx->close_after = true;
		} else if (target == c) {
			tx->close_after = true;
		} else {
			conn_close(target, "closed by logout on another connection");
		}
	}
	conn_queue(c, tx);
	if (tx->close_after)
		c->state = CONN_LOGGED_OUT;
}

/* The header of a PDU is in; decide where its data segment goes. */
static void conn_dispatch_header(struct conn *c)
{
	uint32_t dlen = c->pdu.data_len;

	if (c->state == CONN_LOGGED_OUT) {
		rx_set_data(c, NULL, true);
		return;
	}
	/* A discovery session has no task set: its SCSI PDUs are rejected once whole. */
	if (c->state == CONN_FFP && c->session->type == ISCSI_SESSION_NORMAL) {
		if (c->pdu.opcode == ISCSI_OP_SCSI_CMD) {
			cmd_scsi(c, &c->pdu); /* sets the data destination itself */
			return;
		}
		if (c->pdu.opcode == ISCSI_OP_DATA_OUT) {
			cmd_data_out(c, &c->pdu);
			return;
		}
	}
	if (dlen && rx_need_buf(c, dlen) < 0) {
		conn_close(c, "out of memory");
		return;
	}
	rx_set_data(c, c->rxbuf, false);
	if (c->phase == RX_BHS)
		conn_dispatch_pdu(c);
}

void conn_rx_into(struct conn *c, uint8_t *dst, bool discard)
{
	rx_set_data(c, dst, discard);
	if (c->phase == RX_BHS)
		conn_dispatch_pdu(c);
}

/* A whole PDU (header and data) is in. */
static void conn_dispatch_pdu(struct conn *c)
{
	c->phase = RX_BHS;
	if (c->state == CONN_LOGGED_OUT || c->state == CONN_CLOSING)
		return;
	if (c->state == CONN_LOGIN) {
		conn_login(c);
		return;
	}
	if (c->rx_task) {
		struct task *t = c->rx_task;

		c->rx_task = NULL;
		cmd_data_done(c, t);
		return;
	}
	if (c->rx_discard) {
		c->rx_discard = false;
		return;
	}
	if (c->session->type == ISCSI_SESSION_DISCOVERY && c->pdu.opcode != ISCSI_OP_TEXT_REQ &&
	    c->pdu.opcode != ISCSI_OP_LOGOUT_REQ && c->pdu.opcode != ISCSI_OP_NOP_OUT) {
		/* RFC 7143 4.3: a discovery session carries only text and logout. */
		conn_reject(c, ISCSI_REJECT_PROTOCOL_ERROR, c->bhs);
		return;
	}
	switch (c->pdu.opcode) {
	case ISCSI_OP_NOP_OUT:
		conn_nop_out(c);
		break;
	case ISCSI_OP_TEXT_REQ:
		conn_text(c);
		break;
	case ISCSI_OP_LOGOUT_REQ:
		conn_logout(c);
		break;
	case ISCSI_OP_TMF_REQ:
		tmf_request(c, &c->pdu);
		break;
	case ISCSI_OP_LOGIN_REQ:
		/* RFC 7143 6.2: a login on a connection in full feature phase. */
		conn_fail(c, ISCSI_REJECT_PROTOCOL_ERROR, "login request in full feature phase");
		break;
	case ISCSI_OP_SNACK_REQ:
		/* SNACK needs ErrorRecoveryLevel 1; we negotiate 0. */
		conn_reject(c, ISCSI_REJECT_SNACK_REJECT, c->bhs);
		break;
	default:
		conn_reject(c, ISCSI_REJECT_CMD_NOT_SUPPORTED, c->bhs);
		break;
	}
}
