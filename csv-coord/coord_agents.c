/* Agent connections of the coord plane: accepting them on the join and agent ports, the TLS
 * handshake and the certificate's host, buffered non-blocking reads and writes, the frames
 * (HELLO, catalog requests, and what the agent port allows), heartbeats that renew a lease, and
 * rejoins under the next epoch once the target takes it. Shares coord_int.h with
 * coord_main.c. */
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

#include <jansson.h>

#include "csv-coord/agent_catalog.h"
#include "csv-coord/agent_proto.h"
#include "csv-coord/coord_catalog.h"
#include "csv-coord/coord_hosts.h"
#include "csv-coord/coord_int.h"
#include "csv-coord/lease.h"
#include "csv-coord/quorum.h"
#include "lib/log.h"
#include "lib/tls.h"

#define COORD_CONNS_MAX	      256
#define COORD_OUT_MAX	      (1024 * 1024) /* an agent that reads nothing is cut off here */
#define COORD_HANDSHAKE_NS    (10 * LEASE_NS_PER_S)
#define COORD_JOIN_NS	      (30 * LEASE_NS_PER_S) /* a join connection's whole life */
#define COORD_FRAMES_PER_WAKE 64
#define COORD_BOX_CAPS	      (AGENT_CAP_LEASE | AGENT_CAP_CATALOG)
#define COORD_SOFTWARE	      "holdfastd coord"

/* ---- connections ---- */

struct conn *conn_by_cid(uint64_t cid)
{
	struct conn *c;

	for (c = co.conns; c; c = c->next)
		if (c->cid == cid && !c->dead)
			return c;
	return NULL;
}

void coord_conn_close(struct conn *c)
{
	struct conn **pc;

	if (c->dead)
		return;
	for (pc = &co.conns; *pc; pc = &(*pc)->next)
		if (*pc == c) {
			*pc = c->next;
			break;
		}
	epoll_ctl(co.epfd, EPOLL_CTL_DEL, c->fd, NULL);
	tls_conn_free(c->tls);
	c->tls = NULL;
	close(c->fd);
	c->dead = true;
	co.nconns--;
	/* Freed after the current batch of events, which may still name it. */
	c->next = co.dead;
	co.dead = c;
	log_debug("%s: %s closed", __func__, c->label);
}

static void conn_set_events(struct conn *c)
{
	struct epoll_event ev = {.data.ptr = c};
	uint32_t want = EPOLLIN;

	if (!c->handshaken) {
		want = tls_conn_want(c->tls) == TLS_WANT_WRITE ? EPOLLOUT : EPOLLIN;
	} else if (c->outoff < c->outlen) {
		want = EPOLLOUT | (tls_conn_want(c->tls) == TLS_WANT_READ ? EPOLLIN : 0);
		if (!c->closing)
			want |= EPOLLIN;
	}
	if (want == c->events)
		return;
	ev.events = want;
	if (epoll_ctl(co.epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = want;
}

/* Send what is queued. Returns -1 when the connection was closed. */
int coord_conn_flush(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = tls_conn_write(c->tls, c->out + c->outoff, c->outlen - c->outoff);

		if (n == -EAGAIN)
			return 0;
		if (n < 0) {
			log_debug("%s: %s: %s", __func__, c->label, strerror((int)-n));
			coord_conn_close(c);
			return -1;
		}
		c->outoff += n;
	}
	c->outoff = c->outlen = 0;
	if (c->closing) {
		tls_conn_close_notify(c->tls);
		coord_conn_close(c);
		return -1;
	}
	return 0;
}

void conn_send(struct conn *c, struct agent_msg *m)
{
	static uint8_t buf[AGENT_PROTO_MAX_FRAME];
	size_t len;
	uint8_t *p;
	int err;

	if (c->dead)
		return;
	m->version = c->version ? c->version : AGENT_PROTO_VERSION_MAX;
	err = agent_proto_encode(m, buf, sizeof(buf), &len);
	if (err) {
		log_warnx("%s: %s: cannot encode %s: %s", __func__, c->label,
			  agent_proto_type_name(m->type), strerror(-err));
		return;
	}
	if (c->outlen + len > COORD_OUT_MAX) {
		log_warnx("%s: %s reads nothing; closing it", __func__, c->label);
		coord_conn_close(c);
		return;
	}
	p = realloc(c->out, c->outlen + len);
	if (!p) {
		coord_conn_close(c);
		return;
	}
	memcpy(p + c->outlen, buf, len);
	c->out = p;
	c->outlen += len;
	if (coord_conn_flush(c) == 0)
		conn_set_events(c);
}

void conn_error(struct conn *c, uint32_t req, enum agent_err code, uint8_t ref, const char *text,
		bool close_after)
{
	struct agent_msg m;

	agent_proto_make_error(&m, req, code, ref, text);
	if (close_after)
		c->closing = true;
	conn_send(c, &m);
}

/* ---- heartbeats and rejoin ---- */

void send_fenced(struct conn *c, struct coord_host *h)
{
	struct agent_msg m;

	memset(&m, 0, sizeof(m));
	m.type = AGENT_MSG_FENCED;
	m.u.fenced.host_id = h->id;
	m.u.fenced.epoch = h->epoch;
	m.u.fenced.reason = h->fence_reason ? h->fence_reason : AGENT_E_LEASE_EXPIRED;
	snprintf(m.u.fenced.text, sizeof(m.u.fenced.text), "%s",
		 m.u.fenced.reason == AGENT_E_ADMIN_REMOVED
			 ? "the administrator removed this host"
			 : "the lease ran out: stop the VMs, then REJOIN under epoch + 1");
	conn_send(c, &m);
}

static void on_heartbeat(struct conn *c, const struct agent_msg *m, struct coord_host *h)
{
	const struct agent_heartbeat *hb = &m->u.hb;
	enum lease_state before = h->lease.state;
	int64_t now = now_ns(), until;
	struct agent_msg a;
	int err;

	if (h->fenced || before == LEASE_LOST || before == LEASE_FENCED) {
		send_fenced(c, h);
		return;
	}
	err = lease_renew(&h->lease, &co.lc, hb->epoch, hb->seq, (int64_t)hb->send_ns, now, &until);
	if (err == -EPERM) {
		/* The lease ran out before this heartbeat arrived: it does not revive it. */
		if (h->lease.state == LEASE_LOST && !h->fenced)
			host_declared_lost(h, now);
		send_fenced(c, h);
		return;
	}
	if (err == -ESTALE) {
		conn_error(c, m->request_id,
			   hb->epoch != h->epoch ? AGENT_E_STALE_EPOCH : AGENT_E_STALE_SEQ, m->type,
			   NULL, false);
		return;
	}
	if (err) {
		conn_error(c, m->request_id, AGENT_E_INTERNAL, m->type, NULL, false);
		return;
	}
	if (before == LEASE_ENROLLED) {
		/* The host's first lease: remembered, so that a box restart grants it one (it may
		 * be running then), before the ACK that lets it count on the lease. */
		h->started = true;
		if (hosts_save()) {
			h->started = false;
			lease_host_enrol(&h->lease, h->id, h->epoch, now);
			conn_error(c, m->request_id, AGENT_E_INTERNAL, m->type,
				   "the box cannot store the host table", false);
			return;
		}
		log_info("coord: %s: first heartbeat (epoch %llu): the lease starts", h->name,
			 (unsigned long long)h->epoch);
	}
	h->last_hb_ns = now;
	if (!h->leased) {
		/* The first heartbeat after the join or after the box restarted. */
		h->leased = true;
		quorum_host_joined(&co.q, h->id, now);
		quorum_note();
	}
	memset(&a, 0, sizeof(a));
	a.type = AGENT_MSG_HEARTBEAT_ACK;
	a.request_id = m->request_id;
	a.u.hb_ack.host_id = h->id;
	a.u.hb_ack.epoch = h->epoch;
	a.u.hb_ack.seq = hb->seq;
	a.u.hb_ack.lease_until_ns = (uint64_t)until;
	a.u.hb_ack.box_time_ns = (uint64_t)now;
	a.u.hb_ack.quorate = quorum_is_quorate(&co.q);
	a.u.hb_ack.fenced = 0;
	conn_send(c, &a);
}

static void on_rejoin(struct conn *c, const struct agent_msg *m, struct coord_host *h)
{
	const struct agent_rejoin *rj = &m->u.rejoin;
	struct pending *p;

	if (rj->epoch != h->epoch) {
		conn_error(c, m->request_id, AGENT_E_STALE_EPOCH, m->type,
			   "REJOIN must name the fenced epoch", false);
		return;
	}
	if (rj->new_epoch != h->epoch + 1 || rj->new_epoch > UINT32_MAX) {
		conn_error(c, m->request_id, AGENT_E_BAD_FIELD, m->type,
			   "new_epoch must be epoch + 1", false);
		return;
	}
	if (h->lease.state == LEASE_LOST || (h->fenced && !h->fence_confirmed)) {
		conn_error(c, m->request_id, AGENT_E_FENCE_PENDING, m->type, NULL, false);
		return;
	}
	if (h->lease.state != LEASE_FENCED) {
		conn_error(c, m->request_id, AGENT_E_NOT_FENCED, m->type, NULL, false);
		return;
	}
	if (h->unfence_inflight || c->busy) {
		conn_error(c, m->request_id, AGENT_E_BUSY, m->type, NULL, false);
		return;
	}
	/* The target takes the new epoch first: the host writes only once it can. */
	p = relay(json_pack("{s:s, s:s, s:I}", "cmd", "unfence", "host", h->name, "epoch",
			    (json_int_t)rj->new_epoch),
		  PEND_UNFENCE_REJOIN, h->id, rj->new_epoch);
	if (!p) {
		conn_error(c, m->request_id, AGENT_E_INTERNAL, m->type, "cannot reach the target",
			   false);
		return;
	}
	p->cid = c->cid;
	p->areq = m->request_id;
	h->unfence_inflight = true;
	c->busy = true;
}

void on_unfence_rejoin_reply(struct pending *p, json_t *r)
{
	struct coord_host *h = coord_hosts_by_id(&co.hosts, p->host_id);
	struct conn *c = conn_by_cid(p->cid);
	int64_t now = now_ns();
	struct coord_host saved;
	struct agent_msg a;
	const char *why;

	if (c)
		c->busy = false;
	if (!h)
		return;
	h->unfence_inflight = false;
	if (h->removed || !unfence_ok(r, &why) || p->epoch != h->epoch + 1) {
		if (!h->removed)
			event(COORD_EV_FENCE_FAILED, h->name,
			      "rejoin under epoch %llu: the target did not unfence: %s",
			      (unsigned long long)p->epoch, h->removed ? "removed" : why);
		if (c)
			conn_error(c, p->areq,
				   h->removed ? AGENT_E_ADMIN_REMOVED : AGENT_E_INTERNAL,
				   AGENT_MSG_REJOIN, NULL, false);
		return;
	}
	saved = *h;
	if (lease_rejoin(&h->lease, p->epoch, now)) {
		if (c)
			conn_error(c, p->areq, AGENT_E_NOT_FENCED, AGENT_MSG_REJOIN, NULL, false);
		return;
	}
	h->epoch = p->epoch;
	h->fenced = false;
	h->fence_reason = 0;
	if (hosts_save()) {
		/* Not acknowledged, so the agent retries; the target already takes the new
		 * epoch, which only lets the host write once it is acknowledged here. */
		*h = saved;
		if (c)
			conn_error(c, p->areq, AGENT_E_INTERNAL, AGENT_MSG_REJOIN,
				   "the box cannot store the new epoch", false);
		return;
	}
	h->last_hb_ns = 0;
	h->fence_confirmed = false;
	if (!h->leased) {
		h->leased = true;
		quorum_host_joined(&co.q, h->id, now);
	}
	event(COORD_EV_REJOINED, h->name, "epoch %llu", (unsigned long long)h->epoch);
	quorum_note();
	if (!c)
		return;
	memset(&a, 0, sizeof(a));
	a.type = AGENT_MSG_REJOIN_ACK;
	a.request_id = p->areq;
	a.u.rejoin_ack.host_id = h->id;
	a.u.rejoin_ack.epoch = h->epoch;
	conn_send(c, &a);
}

/* ---- frames ---- */

static void on_hello(struct conn *c, const struct agent_msg *m)
{
	const struct agent_hello *he = &m->u.hello;
	struct agent_msg a;

	if (c->hello_done) {
		conn_error(c, m->request_id, AGENT_E_UNEXPECTED, m->type, "HELLO was already sent",
			   false);
		return;
	}
	if (he->role != AGENT_ROLE_AGENT) {
		conn_error(c, m->request_id, AGENT_E_BAD_FIELD, m->type, "the role must be agent",
			   true);
		return;
	}
	if (agent_proto_negotiate(he->version_min, he->version_max, he->caps,
				  AGENT_PROTO_VERSION_MIN, AGENT_PROTO_VERSION_MAX, COORD_BOX_CAPS,
				  &c->version, &c->caps)) {
		conn_error(c, m->request_id, AGENT_E_VERSION, m->type, NULL, true);
		return;
	}
	c->hello_done = true;
	memset(&a, 0, sizeof(a));
	a.type = AGENT_MSG_HELLO_ACK;
	a.request_id = m->request_id;
	a.u.hello_ack.version_min = AGENT_PROTO_VERSION_MIN;
	a.u.hello_ack.version_max = AGENT_PROTO_VERSION_MAX;
	a.u.hello_ack.caps = COORD_BOX_CAPS;
	a.u.hello_ack.version = c->version;
	a.u.hello_ack.agreed_caps = c->caps;
	snprintf(a.u.hello_ack.software, sizeof(a.u.hello_ack.software), "%s", COORD_SOFTWARE);
	box_timing(&a.u.hello_ack.timing);
	conn_send(c, &a);
}

/* A catalog request, made as the host the connection's certificate names. */
static void on_catalog_request(struct conn *c, const struct agent_msg *m, struct coord_host *h)
{
	enum agent_err code;
	struct catreq *r;
	const char *cmd;
	json_t *req;

	if (!(c->caps & AGENT_CAP_CATALOG)) {
		conn_error(c, m->request_id, AGENT_E_CAPABILITY, m->type,
			   "catalog requests need AGENT_CAP_CATALOG at HELLO", false);
		return;
	}
	code = agent_catalog_request(m, &cmd, &req);
	if (code != AGENT_E_NONE) {
		conn_error(c, m->request_id, code, m->type, NULL, false);
		return;
	}
	r = catreq_new();
	if (!r) {
		json_decref(req);
		conn_error(c, m->request_id, AGENT_E_INTERNAL, m->type, "out of memory", false);
		return;
	}
	r->agent = true;
	r->cid = c->cid;
	r->areq = m->request_id;
	r->type = m->type;
	if (m->type == AGENT_MSG_VDISK_LIST)
		r->list = m->u.vd_list;
	snprintf(r->host, sizeof(r->host), "%s", h->name);
	log_debug("coord: %s asks %s", h->name, cmd);
	coord_catalog_host_request(r->id, h->id, cmd, req);
	json_decref(req);
}

static void on_frame(struct conn *c, const uint8_t *buf, size_t len)
{
	struct coord_host *h = NULL;
	enum agent_err code = AGENT_E_NONE;
	struct agent_msg m;
	int err;

	memset(&m, 0, sizeof(m));
	err = agent_proto_decode(buf, len, &m, &code);
	if (err) {
		/* An unknown type may be a newer agent's; anything else is a broken peer. */
		conn_error(c, m.request_id, code, m.type, NULL, err != -EOPNOTSUPP);
		if (err != -EOPNOTSUPP)
			log_warnx("%s: %s: refused a %s frame: %s", __func__, c->label,
				  agent_proto_type_name(m.type), agent_proto_strerror(code));
		return;
	}
	if (m.type == AGENT_MSG_HELLO) {
		on_hello(c, &m);
		return;
	}
	if (!c->hello_done) {
		conn_error(c, m.request_id, AGENT_E_UNEXPECTED, m.type, "HELLO comes first", true);
		return;
	}
	if (m.version != c->version) {
		conn_error(c, m.request_id, AGENT_E_VERSION, m.type, NULL, true);
		return;
	}
	if (c->join) {
		if (m.type != AGENT_MSG_JOIN_REQUEST || c->busy) {
			conn_error(c, m.request_id, AGENT_E_UNEXPECTED, m.type,
				   "the join port serves one JOIN_REQUEST", true);
			return;
		}
		on_join_request(c, &m);
		return;
	}
	h = coord_hosts_by_id(&co.hosts, c->host_id);
	if (!h || h->removed) {
		conn_error(c, m.request_id, AGENT_E_NOT_ENROLLED, m.type, "unknown certificate",
			   true);
		return;
	}
	if (agent_proto_is_catalog(m.type)) {
		on_catalog_request(c, &m, h);
		return;
	}
	switch (m.type) {
	case AGENT_MSG_HEARTBEAT:
	case AGENT_MSG_REJOIN:
		if (!(c->caps & AGENT_CAP_LEASE)) {
			conn_error(c, m.request_id, AGENT_E_CAPABILITY, m.type, NULL, false);
			return;
		}
		if ((m.type == AGENT_MSG_HEARTBEAT ? m.u.hb.host_id : m.u.rejoin.host_id) !=
		    h->id) {
			conn_error(c, m.request_id, AGENT_E_UNKNOWN_HOST, m.type,
				   "the host id is not the certificate's", false);
			return;
		}
		if (m.type == AGENT_MSG_HEARTBEAT)
			on_heartbeat(c, &m, h);
		else
			on_rejoin(c, &m, h);
		return;
	case AGENT_MSG_JOIN_REQUEST:
		conn_error(c, m.request_id, AGENT_E_UNEXPECTED, m.type,
			   "join on the join port, not here", false);
		return;
	case AGENT_MSG_ERROR:
		log_warnx("%s: %s: the agent reports %s: %s", __func__, c->label,
			  agent_proto_strerror(m.u.error.code), m.u.error.text);
		return;
	default:
		/* Box-to-agent messages (HELLO_ACK, ACKs, FENCED, ...) have no business here. */
		conn_error(c, m.request_id, AGENT_E_UNEXPECTED, m.type, NULL, false);
		return;
	}
}

/* Read and handle frames; at most COORD_FRAMES_PER_WAKE, so one chatty agent cannot starve
 * the others (c->again asks for another turn). */
static void conn_read(struct conn *c)
{
	unsigned frames = 0;

	c->again = false;
	while (!c->dead && !c->closing) {
		size_t flen;
		ssize_t n;
		int err;

		if (c->inlen >= AGENT_PROTO_HDR_LEN) {
			err = agent_proto_frame_len(c->in, c->inlen, &flen);
			if (err) {
				log_warnx("%s: %s: %s; closing", __func__, c->label,
					  err == -EMSGSIZE ? "frame too big" : "bad magic");
				conn_error(c, 0,
					   err == -EMSGSIZE ? AGENT_E_TOO_BIG : AGENT_E_MALFORMED,
					   0, NULL, true);
				return;
			}
			if (c->inlen >= flen) {
				if (frames++ == COORD_FRAMES_PER_WAKE) {
					c->again = true;
					return;
				}
				on_frame(c, c->in, flen);
				if (c->dead)
					return;
				memmove(c->in, c->in + flen, c->inlen - flen);
				c->inlen -= flen;
				continue;
			}
		}
		n = tls_conn_read(c->tls, c->in + c->inlen, sizeof(c->in) - c->inlen);
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			log_debug("%s: %s: %s", __func__, c->label,
				  n == 0 ? "closed" : strerror((int)-n));
			coord_conn_close(c);
			return;
		}
		c->inlen += n;
	}
}

/* An agent-port connection finished its handshake: its certificate must name a member. */
static void conn_identify(struct conn *c)
{
	uint8_t fp[TLS_FINGERPRINT_LEN];
	char hex[2 * TLS_FINGERPRINT_LEN + 1], cn[TLS_CN_MAX + 1] = "?";
	struct coord_host *h = NULL;

	if (tls_conn_peer_fingerprint(c->tls, fp) == 0)
		h = coord_hosts_by_fp(&co.hosts, fp);
	else
		memset(fp, 0, sizeof(fp));
	if (h) {
		c->host_id = h->id;
		snprintf(c->label + strlen(c->label), sizeof(c->label) - strlen(c->label), " (%s)",
			 h->name);
		return;
	}
	tls_conn_peer_cn(c->tls, cn, sizeof(cn));
	tls_fingerprint_hex(fp, hex);
	event(COORD_EV_REFUSED, NULL, "%s: unknown certificate (CN %s, sha256 %s)", c->label, cn,
	      hex);
	c->version = AGENT_PROTO_VERSION_MAX;
	conn_error(c, 0, AGENT_E_NOT_ENROLLED, 0, "unknown certificate", true);
}

void conn_drive(struct conn *c)
{
	int err;

	if (c->dead)
		return;
	if (!c->handshaken) {
		err = tls_conn_handshake(c->tls);
		if (err == -EAGAIN) {
			conn_set_events(c);
			return;
		}
		if (err) {
			/* The wrapper has logged the library's words; the event log keeps a line
			 * for the admin. */
			event(COORD_EV_REFUSED, NULL, "%s: TLS handshake refused: %s", c->label,
			      err == -ENOKEY ? "no client certificate" : strerror(-err));
			coord_conn_close(c);
			return;
		}
		c->handshaken = true;
		c->deadline_ns = c->join ? c->deadline_ns : 0;
		if (!c->join)
			conn_identify(c);
		if (c->dead)
			return;
	}
	if (coord_conn_flush(c) < 0)
		return;
	conn_read(c);
	if (!c->dead)
		conn_set_events(c);
}

void accept_cb(int lfd, bool join)
{
	char addr[INET6_ADDRSTRLEN] = "?";
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct epoll_event ev;
	struct conn *c;
	int fd, one = 1, err;

	while ((fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
	       0) {
		uint16_t port = 0;

		if (co.nconns >= COORD_CONNS_MAX) {
			log_warnx("%s: more than %d agent connections; refusing one", __func__,
				  COORD_CONNS_MAX);
			close(fd);
			sl = sizeof(ss);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr,
				  sizeof(addr));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr,
				  sizeof(addr));
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->join = join;
		c->cid = ++co.next_cid;
		c->deadline_ns = now_ns() + (join ? COORD_JOIN_NS : COORD_HANDSHAKE_NS);
		snprintf(c->label, sizeof(c->label), "%s %s:%u", join ? "join" : "agent", addr,
			 port);
		err = tls_conn_new(&c->tls, join ? co.tls_join : co.tls_agent, fd, c->label);
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (err || epoll_ctl(co.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			tls_conn_free(c->tls);
			free(c);
			close(fd);
			continue;
		}
		c->events = EPOLLIN;
		c->next = co.conns;
		co.conns = c;
		co.nconns++;
		log_debug("%s: %s connected", __func__, c->label);
		conn_drive(c);
		sl = sizeof(ss);
	}
}
