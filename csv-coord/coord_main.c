/* The coord plane: one epoll loop over the parent channel, a timer, the join and agent
 * listeners and every agent connection (each a non-blocking TLS connection with its own
 * buffers, so one slow agent never holds up another). Leases and quorum are decided by the pure
 * modules (lease.h, quorum.h); this file does the I/O around them: frames in and out through
 * agent_proto.h, the host table's file, and the target's fence and unfence commands, which go
 * through the parent's relay (MSG_CTL_RELAY_REQUEST) and come back asynchronously.
 * docs/coordinator.md describes the message flows. */
#include "csv-coord/coord.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "csv-coord/agent_catalog.h"
#include "csv-coord/agent_proto.h"
#include "csv-coord/ca.h"
#include "csv-coord/coord_catalog.h"
#include "csv-coord/coord_event.h"
#include "csv-coord/coord_hosts.h"
#include "csv-coord/join_token.h"
#include "csv-coord/lease.h"
#include "csv-coord/quorum.h"
#include "lib/log.h"
#include "lib/msg.h"
#include "lib/proc.h"
#include "lib/tls.h"

#define COORD_CONNS_MAX	      256
#define COORD_OUT_MAX	      (1024 * 1024) /* an agent that reads nothing is cut off here */
#define COORD_HANDSHAKE_NS    (10 * LEASE_NS_PER_S)
#define COORD_JOIN_NS	      (30 * LEASE_NS_PER_S) /* a join connection's whole life */
#define COORD_FRAMES_PER_WAKE 64
#define COORD_FENCE_RETRY_NS  LEASE_NS_PER_S
#define COORD_BOX_CAPS	      (AGENT_CAP_LEASE | AGENT_CAP_CATALOG)
#define COORD_SOFTWARE	      "holdfastd coord"

/* One agent connection. */
struct conn {
	struct conn *next;
	uint64_t cid; /* names the connection to an answer that arrives later */
	int fd;
	bool join; /* accepted on the join port */
	bool handshaken, hello_done, closing, dead, again;
	struct tls_conn *tls;
	char label[96];
	uint8_t version;
	uint64_t caps;
	uint32_t host_id; /* agent port: the host its certificate names */
	bool busy;	  /* a request of this connection waits for the target */
	int64_t deadline_ns;
	uint32_t events;
	size_t inlen;
	uint8_t in[AGENT_PROTO_MAX_FRAME];
	uint8_t *out;
	size_t outlen, outoff;
};

/* A request at the target (through the parent) and what to do with its answer. */
enum pend_kind {
	PEND_FENCE,	      /* fence a lost or removed host; ctl_id answers a removal */
	PEND_UNFENCE_REJOIN,  /* then REJOIN_ACK */
	PEND_UNFENCE_JOIN,    /* a removed host enrols again: then JOIN_RESPONSE */
	PEND_STATUS_SESSIONS, /* then the cluster_status reply */
	PEND_CATALOG,	      /* a catalog operation's request: its callback */
	PEND_LOGINS_OPEN,     /* open the logins of the target run `epoch` (its generation) */
};

struct join_ctx {
	char name[COORD_HOST_NAME_MAX + 1];
	char iqn[AGENT_MAX_IQNS][AGENT_IQN_MAX + 1];
	unsigned n_iqn;
	uint8_t fp[TLS_FINGERPRINT_LEN];
	char *cert_pem;
	size_t cert_len;
};

struct pending {
	struct pending *next;
	uint32_t rid;
	enum pend_kind kind;
	uint32_t host_id;
	uint64_t epoch;
	uint64_t cid;	 /* the agent connection to answer, 0: none */
	uint32_t areq;	 /* its request id */
	uint32_t ctl_id; /* a control request to answer, 0: none */
	int64_t sent_ns;
	struct join_ctx *join;
	coord_catalog_reply_fn cb; /* PEND_CATALOG */
	void *cb_ctx;
};

/* A catalog request in flight (coord_catalog.h answers it later, by id): whom to answer. The
 * ids are ours, so a control request and an agent's never share one. An agent's answer goes
 * to the connection it came on; when that is gone, the answer is dropped (the operation still
 * completes in the catalog and at the target, as it would for a control client that left). */
struct catreq {
	struct catreq *next;
	uint32_t id;
	bool agent;
	uint32_t ctl_id; /* !agent: the control request */
	uint64_t cid;	 /* agent: the connection, its request id and type, its host */
	uint32_t areq;
	uint8_t type;
	struct agent_vdisk_list list; /* VDISK_LIST: the filter and the page asked for */
	char host[COORD_HOST_NAME_MAX + 1];
};

static struct {
	const struct hf_config *cfg;
	struct msg_chan ch;
	int epfd, tfd, join_fd, agent_fd;
	struct ca *ca;
	struct join_store *tokens;
	struct tls_config *tls_join, *tls_agent;
	struct coord_hosts hosts;
	struct quorum q;
	bool quorate;
	struct lease_config lc;
	struct coord_events ev;
	struct conn *conns, *dead;
	unsigned nconns;
	uint64_t next_cid;
	struct pending *pend;
	uint32_t next_rid;
	struct catreq *catreqs;
	uint32_t next_catid;
	char hosts_path[4200];
	int64_t started_ns;
	/* The run of the target we deal with (msg.h, MSG_PLANE_UP): it holds iSCSI logins until
	 * we have given it the fences, and the LUNs with their policies, and opened them. */
	struct {
		uint64_t generation; /* 0: not told yet */
		int64_t up_ns;	     /* when we were told */
		bool open;
		bool inflight;
		int64_t retry_ns;
	} tgt;
} co;

static char tag_parent, tag_timer, tag_join, tag_agent, tag_catalog;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * LEASE_NS_PER_S + ts.tv_nsec;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double ms(int64_t ns)
{
	return (double)ns / LEASE_NS_PER_MS;
}

static void event(enum coord_event_kind kind, const char *host, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record an event in the ring and say it in the log, with the same words. */
static void event(enum coord_event_kind kind, const char *host, const char *fmt, ...)
{
	char text[COORD_EVENT_TEXT];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	coord_events_add(&co.ev, now_ns(), wall_ms(), kind, host, text);
	if (kind == COORD_EV_REFUSED || kind == COORD_EV_FENCE_FAILED || kind == COORD_EV_LOST ||
	    kind == COORD_EV_POOL_ALERT)
		log_warnx("coord: %s%s%s: %s", coord_event_kind_name(kind), host ? " " : "",
			  host ? host : "", text);
	else
		log_info("coord: %s%s%s: %s", coord_event_kind_name(kind), host ? " " : "",
			 host ? host : "", text);
}

/* After every quorum change: log the moment quorum was gained or lost. */
static void quorum_note(void)
{
	bool now = quorum_is_quorate(&co.q);

	if (now == co.quorate)
		return;
	co.quorate = now;
	event(now ? COORD_EV_QUORUM_GAINED : COORD_EV_QUORUM_LOST, NULL,
	      "%u of %u votes present, %u needed%s", quorum_votes_present(&co.q),
	      quorum_votes_total(&co.q), quorum_votes_needed(&co.q),
	      co.q.wfa_met ? "" : " (waiting for every host to join once)");
}

static int hosts_save(void)
{
	int err = coord_hosts_save(&co.hosts, co.hosts_path);

	if (err)
		log_warnx("%s: %s: %s", __func__, co.hosts_path, strerror(-err));
	return err;
}

/* ---- the parent channel ---- */

static void parent_send(uint32_t type, uint32_t id, const char *text)
{
	int err = msg_send(&co.ch, type, id, text, strlen(text), -1);

	if (err == -EMSGSIZE) {
		static const char too_big[] = "{\"error\":\"reply too large\"}";

		err = msg_send(&co.ch, type, id, too_big, sizeof(too_big) - 1, -1);
	}
	if (err)
		log_warnx("%s: %s", __func__, strerror(-err));
}

static void ctl_reply(uint32_t id, json_t *o)
{
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	parent_send(MSG_CTL_REPLY, id, text ? text : "{\"error\":\"out of memory\"}");
	free(text);
	json_decref(o);
}

static void ctl_error(uint32_t id, const char *why)
{
	ctl_reply(id, json_pack("{s:s}", "error", why));
}

/* Ask the target (through the parent) and remember what to do with the answer. */
static struct pending *relay(json_t *req, enum pend_kind kind, uint32_t host_id, uint64_t epoch)
{
	struct pending *p;
	char *text;
	int err;

	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	p = calloc(1, sizeof(*p));
	if (!text || !p) {
		free(text);
		free(p);
		return NULL;
	}
	if (++co.next_rid == 0)
		co.next_rid = 1;
	p->rid = co.next_rid;
	p->kind = kind;
	p->host_id = host_id;
	p->epoch = epoch;
	p->sent_ns = now_ns();
	err = msg_send(&co.ch, MSG_CTL_RELAY_REQUEST, p->rid, text, strlen(text), -1);
	free(text);
	if (err) {
		log_warnx("%s: %s", __func__, strerror(-err));
		free(p);
		return NULL;
	}
	p->next = co.pend;
	co.pend = p;
	return p;
}

/* The catalog part's events (a pool's free-space alert) go to the same log as ours. */
static void catalog_event(enum coord_event_kind kind, const char *host, const char *text)
{
	event(kind, host, "%s", text);
}

/* The catalog part's requests to the target (csv-coord/coord_catalog.h). */
static int catalog_relay(json_t *req, coord_catalog_reply_fn cb, void *ctx)
{
	struct pending *p = relay(req, PEND_CATALOG, 0, 0);

	if (!p)
		return -EIO;
	p->cb = cb;
	p->cb_ctx = ctx;
	return 0;
}

static struct catreq *catreq_new(void)
{
	struct catreq *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	do {
		if (++co.next_catid == 0)
			co.next_catid = 1;
		r->id = co.next_catid;
		/* Skip an id still in flight after a wrap-around. */
		for (struct catreq *o = co.catreqs; o; o = o->next)
			if (o->id == r->id)
				r->id = 0;
	} while (!r->id);
	r->next = co.catreqs;
	co.catreqs = r;
	return r;
}

static void catalog_ctl_request(uint32_t ctl_id, const char *cmd, json_t *req)
{
	struct catreq *r = catreq_new();

	if (!r) {
		ctl_error(ctl_id, "out of memory");
		return;
	}
	r->ctl_id = ctl_id;
	coord_catalog_request(r->id, cmd, req);
}

static struct conn *conn_by_cid(uint64_t cid);
static void conn_send(struct conn *c, struct agent_msg *m);

static void catalog_emit(void *ctx, struct agent_msg *m)
{
	conn_send(ctx, m);
}

/* The catalog part's answers (coord_catalog_env.reply): to the control client or the agent. */
static void catalog_reply(uint32_t id, json_t *o)
{
	struct catreq **pp, *r;
	struct conn *c;

	for (pp = &co.catreqs; (r = *pp); pp = &r->next)
		if (r->id == id)
			break;
	if (!r) {
		log_warnx("%s: an answer to catalog request %u nobody asked", __func__, id);
		json_decref(o);
		return;
	}
	*pp = r->next;
	if (!r->agent) {
		ctl_reply(r->ctl_id, o);
		free(r);
		return;
	}
	c = conn_by_cid(r->cid);
	if (c)
		agent_catalog_reply(r->type, r->areq,
				    r->type == AGENT_MSG_VDISK_LIST ? &r->list : NULL, r->host, o,
				    catalog_emit, c);
	else
		log_info("coord: %s: the agent left before the answer to its %s; dropped: %s",
			 r->host, agent_proto_type_name(r->type),
			 json_string_value(json_object_get(o, "error"))
				 ? json_string_value(json_object_get(o, "error"))
				 : "done");
	json_decref(o);
	free(r);
}

static void pending_free(struct pending *p)
{
	if (p->join) {
		free(p->join->cert_pem);
		free(p->join);
	}
	free(p);
}

/* ---- connections ---- */

static struct conn *conn_by_cid(uint64_t cid)
{
	struct conn *c;

	for (c = co.conns; c; c = c->next)
		if (c->cid == cid && !c->dead)
			return c;
	return NULL;
}

static void conn_close(struct conn *c)
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
static int conn_flush(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = tls_conn_write(c->tls, c->out + c->outoff, c->outlen - c->outoff);

		if (n == -EAGAIN)
			return 0;
		if (n < 0) {
			log_debug("%s: %s: %s", __func__, c->label, strerror((int)-n));
			conn_close(c);
			return -1;
		}
		c->outoff += n;
	}
	c->outoff = c->outlen = 0;
	if (c->closing) {
		tls_conn_close_notify(c->tls);
		conn_close(c);
		return -1;
	}
	return 0;
}

static void conn_send(struct conn *c, struct agent_msg *m)
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
		conn_close(c);
		return;
	}
	p = realloc(c->out, c->outlen + len);
	if (!p) {
		conn_close(c);
		return;
	}
	memcpy(p + c->outlen, buf, len);
	c->out = p;
	c->outlen += len;
	if (conn_flush(c) == 0)
		conn_set_events(c);
}

static void conn_error(struct conn *c, uint32_t req, enum agent_err code, uint8_t ref,
		       const char *text, bool close_after)
{
	struct agent_msg m;

	agent_proto_make_error(&m, req, code, ref, text);
	if (close_after)
		c->closing = true;
	conn_send(c, &m);
}

/* ---- fencing at the target ---- */

static void send_fence(struct coord_host *h, uint32_t ctl_id)
{
	json_t *inits = json_array(), *req;
	struct pending *p;
	unsigned i;

	for (i = 0; i < h->n_iqn; i++)
		json_array_append_new(inits, json_string(h->iqn[i]));
	req = json_pack("{s:s, s:s, s:I, s:o}", "cmd", "fence", "host", h->name, "epoch",
			(json_int_t)h->epoch, "initiators", inits);
	p = relay(req, PEND_FENCE, h->id, h->epoch);
	if (!p) {
		h->fence_retry_ns = now_ns() + COORD_FENCE_RETRY_NS;
		if (ctl_id)
			ctl_error(ctl_id, "cannot ask the target to fence the host");
		return;
	}
	p->ctl_id = ctl_id;
	h->fence_inflight = true;
}

/* The lease of h ran out: it no longer counts for quorum, it must rejoin under epoch + 1, and
 * the target is told to fence it at once. */
static void host_declared_lost(struct coord_host *h, int64_t now)
{
	h->declared_ns = now;
	h->last_hb_gap_ns = now - h->lease.last_renew_ns;
	h->fenced = true;
	h->fence_confirmed = false;
	h->fence_reason = AGENT_E_LEASE_EXPIRED;
	/* Persist that the host must rejoin, so a restart does not let its old epoch back in.
	 * The fence goes out even if the write failed: stopping the host comes first. */
	hosts_save();
	if (h->leased) {
		h->leased = false;
		quorum_host_lost(&co.q, h->id, now);
	}
	if (h->last_hb_ns)
		event(COORD_EV_LOST, h->name,
		      "epoch %llu: last heartbeat %.1f ms ago (lease timeout %.1f ms)",
		      (unsigned long long)h->epoch, ms(h->last_hb_gap_ns),
		      ms(lease_box_timeout_ns(&co.lc)));
	else
		event(COORD_EV_LOST, h->name,
		      "epoch %llu: no heartbeat since the lease was granted %.1f ms ago (lease "
		      "timeout %.1f ms)",
		      (unsigned long long)h->epoch, ms(h->last_hb_gap_ns),
		      ms(lease_box_timeout_ns(&co.lc)));
	quorum_note();
	if (h->n_iqn && !h->fence_inflight)
		send_fence(h, 0);
}

static void on_fence_reply(struct pending *p, json_t *r)
{
	struct coord_host *h = coord_hosts_by_id(&co.hosts, p->host_id);
	json_t *e = json_object_get(r, "error");
	int64_t now = now_ns();
	double refused = json_number_value(json_object_get(r, "writes_refused_ms"));
	double drained = json_number_value(json_object_get(r, "tasks_drained_ms"));
	json_int_t nsess = json_integer_value(json_object_get(r, "sessions"));

	if (!h)
		goto reply;
	h->fence_inflight = false;
	if (h->epoch != p->epoch)
		goto reply; /* the host rejoined meanwhile; this answer is history */
	if (e) {
		h->fence_retry_ns = now + COORD_FENCE_RETRY_NS;
		event(COORD_EV_FENCE_FAILED, h->name, "the target did not fence epoch %llu: %s",
		      (unsigned long long)h->epoch,
		      json_is_string(e) ? json_string_value(e) : "error");
		goto reply;
	}
	h->fence_confirmed = true;
	if (h->lease.state == LEASE_LOST)
		lease_fenced(&h->lease, now);
	if (h->declared_ns)
		event(COORD_EV_FENCED, h->name,
		      "epoch %llu, %lld session(s): last heartbeat to declaration %.1f ms, "
		      "declaration to fence confirmed %.2f ms (target: writes refused after "
		      "%.3f ms, tasks drained after %.3f ms)",
		      (unsigned long long)h->epoch, (long long)nsess, ms(h->last_hb_gap_ns),
		      ms(now - h->declared_ns), refused, drained);
	else
		event(COORD_EV_FENCED, h->name,
		      "epoch %llu, %lld session(s): fence confirmed %.2f ms after it was sent "
		      "(target: writes refused after %.3f ms, tasks drained after %.3f ms)",
		      (unsigned long long)h->epoch, (long long)nsess, ms(now - p->sent_ns), refused,
		      drained);
	h->declared_ns = 0;
reply:
	if (p->ctl_id) {
		json_t *o = json_pack("{s:s, s:I, s:O}", "removed", h ? h->name : "", "epoch",
				      (json_int_t)p->epoch, "target", r);

		ctl_reply(p->ctl_id, o);
	}
}

/* ---- join ---- */

/* An enrolled host holds no lease until `holdfast-agent run` sends its first heartbeat: a join
 * only hands out a certificate, and a host that never ran has no writes to fence. It does not
 * count for quorum until then either, and owns nothing (ownership needs a lease). */
static void host_enrol(struct coord_host *h, int64_t now)
{
	lease_host_enrol(&h->lease, h->id, h->epoch, now);
	h->started = false;
	h->last_hb_ns = 0;
	h->declared_ns = 0;
	h->fence_confirmed = false;
	h->fence_inflight = false;
	if (h->leased) {
		h->leased = false;
		quorum_host_lost(&co.q, h->id, now);
	}
	quorum_note();
}

/* The lease timing every agent must follow (docs/agent-protocol.md, "Lease timing"). */
static void box_timing(struct agent_lease_timing *t)
{
	t->heartbeat_ns = (uint64_t)co.lc.heartbeat_ns;
	t->miss = (uint16_t)co.lc.miss;
	t->lease_timeout_ns = (uint64_t)lease_box_timeout_ns(&co.lc);
	t->skew_ppm = LEASE_SKEW_PPM;
}

/* Record the host, persist, grant its first lease and answer JOIN_RESPONSE. */
static void join_finish(struct conn *c, uint32_t req, struct join_ctx *j, uint64_t epoch)
{
	struct coord_host *h = coord_hosts_by_name(&co.hosts, j->name), saved;
	bool added = false, was_member;
	int64_t now = now_ns();
	struct agent_msg m;
	size_t ca_len;
	unsigned i;
	int err;

	if (!h) {
		err = coord_hosts_add(&co.hosts, j->name, 1, &h);
		if (err) {
			conn_error(c, req, AGENT_E_INTERNAL, AGENT_MSG_JOIN_REQUEST,
				   "the host table is full", true);
			return;
		}
		added = true;
	}
	saved = *h;
	was_member = !h->removed && !added;
	memcpy(h->fp, j->fp, sizeof(h->fp));
	for (i = 0; i < j->n_iqn; i++)
		snprintf(h->iqn[i], sizeof(h->iqn[i]), "%s", j->iqn[i]);
	h->n_iqn = j->n_iqn;
	h->epoch = epoch;
	h->enrolled = true;
	h->removed = false;
	h->fenced = false;
	h->started = false; /* it holds a lease only once its agent runs */
	err = hosts_save();
	if (err) {
		/* Persist before acknowledging: the host is not a member until it is on disk. */
		if (added) {
			co.hosts.n--;
			co.hosts.next_id--;
		} else {
			*h = saved;
		}
		conn_error(c, req, AGENT_E_INTERNAL, AGENT_MSG_JOIN_REQUEST,
			   "the box cannot store the host table", true);
		return;
	}
	if (!was_member)
		quorum_add_host(&co.q, h->id, h->votes, now);
	/* The join is logged before the quorum change it causes. */
	event(COORD_EV_JOINED, h->name,
	      "host id %u, epoch %llu, %u initiator(s), first %s; the lease starts with its "
	      "first heartbeat",
	      h->id, (unsigned long long)h->epoch, h->n_iqn, h->iqn[0]);
	host_enrol(h, now);

	memset(&m, 0, sizeof(m));
	m.type = AGENT_MSG_JOIN_RESPONSE;
	m.request_id = req;
	m.u.join_resp.host_id = h->id;
	m.u.join_resp.epoch = h->epoch;
	m.u.join_resp.cert_pem.p = (const uint8_t *)j->cert_pem;
	m.u.join_resp.cert_pem.len = j->cert_len;
	m.u.join_resp.ca_pem.p = (const uint8_t *)ca_cert_pem(co.ca, &ca_len);
	m.u.join_resp.ca_pem.len = ca_len;
	box_timing(&m.u.join_resp.timing);
	m.u.join_resp.agent_port = co.cfg->cluster.agent_port;
	c->closing = true; /* a join connection serves one join */
	conn_send(c, &m);
}

static enum agent_err token_code(int err)
{
	switch (err) {
	case -EINVAL:
	case -ENOENT:
	case -EACCES:
		return AGENT_E_TOKEN_INVALID;
	case -EALREADY:
		return AGENT_E_TOKEN_USED;
	case -EKEYEXPIRED:
		return AGENT_E_TOKEN_EXPIRED;
	default:
		return AGENT_E_INTERNAL;
	}
}

static bool configured(const char *name, unsigned *votes)
{
	size_t i;

	*votes = 1;
	if (!co.cfg->cluster.nhosts)
		return true;
	for (i = 0; i < co.cfg->cluster.nhosts; i++)
		if (!strcmp(co.cfg->cluster.hosts[i].name, name)) {
			*votes = co.cfg->cluster.hosts[i].votes;
			return true;
		}
	return false;
}

static void on_join_request(struct conn *c, const struct agent_msg *m)
{
	const struct agent_join_request *jr = &m->u.join_req;
	char token[2 * JOIN_TOKEN_TEXT_MAX + 2 * AGENT_SECRET_MAX];
	struct coord_host *h;
	struct join_ctx *j;
	struct pending *p;
	uint64_t serial;
	unsigned votes, i;
	size_t off;
	int err;

	if (!ca_name_valid(jr->host_name)) {
		event(COORD_EV_REFUSED, NULL, "join from %s: the host name is not valid", c->label);
		conn_error(c, m->request_id, AGENT_E_BAD_FIELD, m->type,
			   "the host name is not valid (1-63 letters, digits, '-', '.')", true);
		return;
	}
	if (!configured(jr->host_name, &votes)) {
		event(COORD_EV_REFUSED, jr->host_name, "join from %s: not a configured host",
		      c->label);
		conn_error(c, m->request_id, AGENT_E_BAD_FIELD, m->type,
			   "this host name is not in the cluster's configuration", true);
		return;
	}
	h = coord_hosts_by_name(&co.hosts, jr->host_name);
	if (h && h->enrolled && !h->removed) {
		event(COORD_EV_REFUSED, jr->host_name, "join from %s: already a member", c->label);
		conn_error(c, m->request_id, AGENT_E_BAD_FIELD, m->type,
			   "a host of this name is already a member; remove it first", true);
		return;
	}
	if (h && (h->fence_inflight || h->unfence_inflight)) {
		conn_error(c, m->request_id, AGENT_E_BUSY, m->type,
			   "the target is still fencing this host; retry", true);
		return;
	}
	/* The token as join_token.h spells it: the agent sends its id and its secret apart. */
	off = 0;
	if (strncmp(jr->token_id, JOIN_TOKEN_PREFIX, sizeof(JOIN_TOKEN_PREFIX) - 1))
		off = snprintf(token, sizeof(token), "%s", JOIN_TOKEN_PREFIX);
	off += snprintf(token + off, sizeof(token) - off, "%s.", jr->token_id);
	for (i = 0; i < jr->secret_len && off + 2 < sizeof(token); i++)
		off += snprintf(token + off, sizeof(token) - off, "%02x", jr->secret[i]);
	err = join_token_check(co.tokens, token, off, time(NULL));
	if (err) {
		event(COORD_EV_REFUSED, jr->host_name, "join from %s: token %.40s: %s", c->label,
		      jr->token_id, join_token_strerror(err));
		conn_error(c, m->request_id, token_code(err), m->type, join_token_strerror(err),
			   true);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		conn_error(c, m->request_id, AGENT_E_INTERNAL, m->type, "out of memory", true);
		return;
	}
	/* ca_name_valid() above bounds the name to COORD_HOST_NAME_MAX. */
	memcpy(j->name, jr->host_name, strlen(jr->host_name) + 1);
	for (i = 0; i < jr->n_iqn; i++)
		snprintf(j->iqn[i], sizeof(j->iqn[i]), "%s", jr->iqn[i]);
	j->n_iqn = jr->n_iqn;
	/* The request is signed before the token is spent, so a bad request does not burn it. */
	err = ca_sign_csr(co.ca, (const char *)jr->csr_pem.p, jr->csr_pem.len, jr->host_name,
			  time(NULL), CA_HOST_DAYS, &j->cert_pem, &j->cert_len, &serial);
	if (err) {
		event(COORD_EV_REFUSED, jr->host_name, "join from %s: certificate request: %s",
		      c->label, strerror(-err));
		conn_error(c, m->request_id,
			   err == -ENOMEM ? AGENT_E_INTERNAL : AGENT_E_CSR_INVALID, m->type,
			   "the certificate request cannot be signed", true);
		goto err_free;
	}
	err = tls_pem_fingerprint(j->cert_pem, j->cert_len, j->fp);
	if (!err)
		err = join_token_consume(co.tokens, token, off, time(NULL), jr->host_name);
	if (err) {
		event(COORD_EV_REFUSED, jr->host_name, "join from %s: token %.40s: %s", c->label,
		      jr->token_id, join_token_strerror(err));
		conn_error(c, m->request_id, token_code(err), m->type, join_token_strerror(err),
			   true);
		goto err_free;
	}
	if (!h || !h->enrolled) {
		join_finish(c, m->request_id, j, h ? h->epoch : 1);
		goto err_free;
	}
	/* A removed host enrols again: its old epoch is fenced at the target, so it comes
	 * back under the next one, which the target must accept before the host may write. */
	p = relay(json_pack("{s:s, s:s, s:I}", "cmd", "unfence", "host", h->name, "epoch",
			    (json_int_t)(h->epoch + 1)),
		  PEND_UNFENCE_JOIN, h->id, h->epoch + 1);
	if (!p) {
		conn_error(c, m->request_id, AGENT_E_INTERNAL, m->type,
			   "cannot reach the target; retry", true);
		goto err_free;
	}
	h->unfence_inflight = true;
	p->cid = c->cid;
	p->areq = m->request_id;
	p->join = j;
	c->busy = true;
	return;

err_free:
	free(j->cert_pem);
	free(j);
}

/* The target's answer to an unfence. "not fenced" is fine: the target forgot the fence
 * (it restarted), and the host may write under the new epoch either way. */
static bool unfence_ok(json_t *r, const char **why)
{
	json_t *e = json_object_get(r, "error");

	*why = json_is_string(e) ? json_string_value(e) : "error";
	return !e || (json_is_string(e) && strstr(json_string_value(e), "not fenced"));
}

static void on_unfence_join_reply(struct pending *p, json_t *r)
{
	struct coord_host *h = coord_hosts_by_id(&co.hosts, p->host_id);
	struct conn *c = conn_by_cid(p->cid);
	const char *why;

	if (h)
		h->unfence_inflight = false;
	if (!c)
		return; /* the token is spent; the admin makes a new one */
	c->busy = false;
	if (!h || !unfence_ok(r, &why)) {
		event(COORD_EV_REFUSED, p->join->name, "join: the target did not unfence: %s",
		      h ? why : "host gone");
		conn_error(c, p->areq, AGENT_E_INTERNAL, AGENT_MSG_JOIN_REQUEST,
			   "the target did not take the new epoch", true);
		return;
	}
	join_finish(c, p->areq, p->join, p->epoch);
}

/* ---- heartbeats and rejoin ---- */

static void send_fenced(struct conn *c, struct coord_host *h)
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

static void on_unfence_rejoin_reply(struct pending *p, json_t *r)
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
			conn_close(c);
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

static void conn_drive(struct conn *c)
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
			conn_close(c);
			return;
		}
		c->handshaken = true;
		c->deadline_ns = c->join ? c->deadline_ns : 0;
		if (!c->join)
			conn_identify(c);
		if (c->dead)
			return;
	}
	if (conn_flush(c) < 0)
		return;
	conn_read(c);
	if (!c->dead)
		conn_set_events(c);
}

static void accept_cb(int lfd, bool join)
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

/* ---- control ---- */

static void ctl_token_create(uint32_t id, json_t *req)
{
	const struct hf_cluster *cl = &co.cfg->cluster;
	char text[JOIN_TOKEN_TEXT_MAX], fp[2 * TLS_FINGERPRINT_LEN + 1], addr[HF_ADDR_MAX + 16];
	char tid[JOIN_TOKEN_ID_HEX], cmd[1024];
	json_t *ttl = json_object_get(req, "ttl");
	json_int_t t = 0;
	time_t now = time(NULL);
	int err;

	if (ttl) {
		if (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
		    json_integer_value(ttl) > JOIN_TOKEN_TTL_MAX) {
			ctl_error(id, "ttl must be 1..2592000 seconds");
			return;
		}
		t = json_integer_value(ttl);
	}
	err = join_token_create(co.tokens, now, (unsigned)t, text);
	if (err) {
		ctl_error(id, err == -ENOSPC ? "too many live join tokens" : strerror(-err));
		return;
	}
	if (!t)
		t = JOIN_TOKEN_TTL_DEFAULT;
	snprintf(tid, sizeof(tid), "%.*s", JOIN_TOKEN_ID_HEX - 1,
		 text + sizeof(JOIN_TOKEN_PREFIX) - 1);
	tls_fingerprint_hex(ca_fingerprint(co.ca), fp);
	snprintf(addr, sizeof(addr), strchr(cl->address, ':') ? "[%s]:%u" : "%s:%u", cl->address,
		 cl->join_port);
	snprintf(cmd, sizeof(cmd),
		 "holdfast-agent join %s %s --ca-sha256 %s --name HOST --initiator IQN "
		 "--state-dir DIR",
		 addr, text, fp);
	log_info("%s: join token %s created, valid %lld s", __func__, tid, (long long)t);
	ctl_reply(id, json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s}", "token", text, "id", tid,
				"expires", (json_int_t)(now + t), "ttl", t, "ca_sha256", fp,
				"join_address", addr, "command", cmd));
}

static json_t *status_json(json_t *sessions, const char *sessions_error)
{
	int64_t now = now_ns(), wnow = wall_ms();
	json_t *hosts = json_array(), *hist = json_array(), *evs = json_array(), *o;
	unsigned i, k;

	for (i = 0; i < co.hosts.n; i++) {
		struct coord_host *h = &co.hosts.h[i];
		json_t *iqns = json_array(), *mine = json_array(), *s;
		char fp[2 * TLS_FINGERPRINT_LEN + 1];
		const char *state;
		size_t j;

		for (k = 0; k < h->n_iqn; k++)
			json_array_append_new(iqns, json_string(h->iqn[k]));
		/* Live iSCSI sessions of this host's initiators, with their portals. */
		json_array_foreach(sessions, j, s)
		{
			const char *ini = json_string_value(json_object_get(s, "initiator"));
			json_t *conns = json_array(), *cn;
			size_t l;

			for (k = 0; ini && k < h->n_iqn; k++)
				if (!strcmp(ini, h->iqn[k]))
					break;
			if (!ini || k == h->n_iqn) {
				json_decref(conns);
				continue;
			}
			json_array_foreach(json_object_get(s, "connections"), l, cn)
				json_array_append_new(
					conns, json_pack("{s:O?, s:O?, s:O?}", "portal",
							 json_object_get(cn, "local"), "peer",
							 json_object_get(cn, "peer"), "tpgt",
							 json_object_get(cn, "tpgt")));
			json_array_append_new(mine,
					      json_pack("{s:s, s:O?, s:O?, s:o}", "initiator", ini,
							"isid", json_object_get(s, "isid"),
							"target", json_object_get(s, "target"),
							"connections", conns));
		}
		if (h->removed)
			state = "removed";
		else if (!h->enrolled)
			state = "not joined";
		else if (!h->leased && !h->fenced && h->lease.state != LEASE_LOST &&
			 h->lease.state != LEASE_ENROLLED)
			state = "no lease (box restarted)";
		else
			state = lease_state_name(h->lease.state);
		tls_fingerprint_hex(h->fp, fp);
		o = json_pack("{s:s, s:I, s:s, s:I, s:b, s:b, s:i, s:o, s:o}", "name", h->name,
			      "id", (json_int_t)h->id, "state", state, "epoch",
			      (json_int_t)h->epoch, "leased", h->leased, "fenced", h->fenced,
			      "votes", h->votes, "iqns", iqns, "sessions", mine);
		if (h->enrolled)
			json_object_set_new(o, "fingerprint", json_string(fp));
		if (h->enrolled && !h->removed && h->lease.state != LEASE_FENCED &&
		    h->lease.state != LEASE_ENROLLED)
			json_object_set_new(o, "lease_age_ms",
					    json_real(ms(lease_age_ns(&h->lease, now))));
		if (h->last_hb_ns)
			json_object_set_new(o, "last_heartbeat_ms_ago",
					    json_real(ms(now - h->last_hb_ns)));
		for (struct conn *c = co.conns; c; c = c->next)
			/* The lease session, not a request-only one (docs/agent-protocol.md). */
			if (!c->join && c->host_id == h->id && c->handshaken &&
			    (c->caps & AGENT_CAP_LEASE))
				json_object_set_new(o, "agent", json_string(c->label));
		json_array_append_new(hosts, o);
	}
	for (i = 0; i < quorum_history_len(&co.q); i++) {
		const struct quorum_event *qe = quorum_history_get(&co.q, i);
		struct coord_host *h = coord_hosts_by_id(&co.hosts, qe->host_id);

		json_array_append_new(hist, json_pack("{s:f, s:b, s:s, s:s?, s:i, s:i}", "ms_ago",
						      ms(now - qe->time_ns), "quorate", qe->quorate,
						      "reason", quorum_reason_name(qe->reason),
						      "host", h ? h->name : NULL, "present",
						      qe->present, "total", qe->total));
	}
	for (i = 0; i < coord_events_len(&co.ev); i++) {
		const struct coord_event *e = coord_events_get(&co.ev, i);

		json_array_append_new(
			evs, json_pack("{s:I, s:I, s:f, s:s, s:s, s:s}", "seq", (json_int_t)e->seq,
				       "time_ms", (json_int_t)e->wall_ms, "ms_ago",
				       ms(now - e->mono_ns), "kind", coord_event_kind_name(e->kind),
				       "host", e->host, "text", e->text));
	}
	o = json_pack(
		"{s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:f, s:{s:b, s:i, s:i, s:i, s:b, s:b, "
		"s:o}, s:o, s:o}",
		"cluster", co.cfg->cluster.name, "address", co.cfg->cluster.address, "agent_port",
		co.cfg->cluster.agent_port, "join_port", co.cfg->cluster.join_port, "heartbeat_ms",
		co.cfg->cluster.heartbeat_ms, "miss_threshold", co.cfg->cluster.miss_threshold,
		"lease_timeout_ms", ms(lease_box_timeout_ns(&co.lc)), "agent_fence_after_ms",
		ms(lease_agent_fence_after_ns(&co.lc)), "quorum", "quorate",
		quorum_is_quorate(&co.q), "votes_present", quorum_votes_present(&co.q),
		"votes_total", quorum_votes_total(&co.q), "votes_needed",
		quorum_votes_needed(&co.q), "wait_for_all", co.q.wait_for_all, "wait_for_all_met",
		co.q.wfa_met, "history", hist, "hosts", hosts, "events", evs);
	(void)wnow;
	if (o)
		json_object_set_new(o, "target",
				    json_pack("{s:I, s:s}", "generation",
					      (json_int_t)co.tgt.generation, "logins",
					      co.tgt.open ? "open" : "held"));
	if (o && sessions_error)
		json_object_set_new(o, "sessions_error", json_string(sessions_error));
	return o;
}

static void ctl_status(uint32_t id)
{
	struct pending *p =
		relay(json_pack("{s:s}", "cmd", "sessions"), PEND_STATUS_SESSIONS, 0, 0);

	if (!p) {
		ctl_reply(id, status_json(NULL, "cannot ask the target"));
		return;
	}
	p->ctl_id = id;
}

static void ctl_host_remove(uint32_t id, json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "host"));
	struct coord_host *h = name ? coord_hosts_by_name(&co.hosts, name) : NULL, saved;
	int64_t now = now_ns();
	char why[128];

	if (!name) {
		ctl_error(id, "cluster_host_remove needs \"host\"");
		return;
	}
	if (!h) {
		snprintf(why, sizeof(why), "no host '%.64s'", name);
		ctl_error(id, why);
		return;
	}
	if (h->removed) {
		snprintf(why, sizeof(why), "host '%.64s' is already removed", name);
		ctl_error(id, why);
		return;
	}
	saved = *h;
	h->removed = true;
	if (h->enrolled) {
		h->fenced = true;
		h->fence_confirmed = false;
		h->fence_reason = AGENT_E_ADMIN_REMOVED;
	}
	if (hosts_save()) {
		*h = saved;
		ctl_error(id, "cannot store the host table; nothing was changed");
		return;
	}
	if (h->leased) {
		h->leased = false;
		quorum_host_lost(&co.q, h->id, now);
	}
	quorum_remove_host(&co.q, h->id, now);
	if (h->enrolled)
		lease_admin_fence(&h->lease, now);
	h->declared_ns = 0;
	event(COORD_EV_REMOVED, h->name,
	      "by the administrator, epoch %llu; its certificate is "
	      "refused from now on",
	      (unsigned long long)h->epoch);
	quorum_note();
	for (struct conn *c = co.conns; c; c = c->next)
		if (!c->join && c->host_id == h->id && c->hello_done && !c->dead) {
			send_fenced(c, h);
			c->closing = true;
			conn_flush(c);
		}
	if (!h->enrolled || !h->n_iqn) {
		ctl_reply(id, json_pack("{s:s, s:I}", "removed", h->name, "epoch",
					(json_int_t)h->epoch));
		return;
	}
	if (h->fence_inflight) {
		/* A fence of this epoch is already at the target; the removal answers now. */
		ctl_reply(id, json_pack("{s:s, s:I, s:s}", "removed", h->name, "epoch",
					(json_int_t)h->epoch, "target", "fence in progress"));
		return;
	}
	send_fence(h, id);
}

static void on_ctl_request(struct msg *m)
{
	json_t *req = json_loadb((const char *)m->data, m->len, 0, NULL);
	const char *cmd = json_string_value(json_object_get(req, "cmd"));

	if (!json_is_object(req) || !cmd)
		ctl_error(m->id, "a request is one JSON object with a \"cmd\" string");
	else if (!strcmp(cmd, "cluster_token_create"))
		ctl_token_create(m->id, req);
	else if (!strcmp(cmd, "cluster_status"))
		ctl_status(m->id);
	else if (!strcmp(cmd, "cluster_host_remove"))
		ctl_host_remove(m->id, req);
	else if (coord_catalog_handles(cmd))
		catalog_ctl_request(m->id, cmd, req);
	else
		ctl_error(m->id, "unknown command");
	json_decref(req);
}

static void on_logins_open_reply(struct pending *p, json_t *r);

static void on_relay_reply(struct msg *m)
{
	struct pending **pp, *p;
	json_t *r;

	for (pp = &co.pend; (p = *pp); pp = &p->next)
		if (p->rid == m->id)
			break;
	if (!p) {
		log_warnx("%s: an answer to request %u nobody asked", __func__, m->id);
		return;
	}
	*pp = p->next;
	r = json_loadb((const char *)m->data, m->len, 0, NULL);
	if (!json_is_object(r)) {
		json_decref(r);
		r = json_pack("{s:s}", "error", "the target's answer is not a JSON object");
	}
	switch (p->kind) {
	case PEND_FENCE:
		on_fence_reply(p, r);
		break;
	case PEND_UNFENCE_REJOIN:
		on_unfence_rejoin_reply(p, r);
		break;
	case PEND_UNFENCE_JOIN:
		on_unfence_join_reply(p, r);
		break;
	case PEND_CATALOG:
		p->cb(p->cb_ctx, r);
		break;
	case PEND_LOGINS_OPEN:
		on_logins_open_reply(p, r);
		break;
	case PEND_STATUS_SESSIONS: {
		json_t *s = json_object_get(r, "sessions"), *e = json_object_get(r, "error");

		ctl_reply(p->ctl_id, status_json(json_is_array(s) ? s : NULL,
						 json_is_string(e)  ? json_string_value(e)
						 : json_is_array(s) ? NULL
								    : "no sessions in the answer"));
		break;
	}
	default:
		fatalx("%s: pending kind %d", __func__, p->kind);
	}
	json_decref(r);
	pending_free(p);
}

/* ---- a target that (re)starts ---- */

/* Has the target run we deal with every fence we hold? A host being unfenced counts as not
 * yet: its fence is either lifted (then it is no longer fenced) or sent again. */
static bool fences_given(void)
{
	unsigned i;

	for (i = 0; i < co.hosts.n; i++) {
		const struct coord_host *h = &co.hosts.h[i];

		if (h->enrolled && h->fenced && h->n_iqn && !h->fence_confirmed)
			return false;
	}
	return true;
}

/* MSG_PLANE_UP: a run of the target we have not dealt with. It has none of the fences, LUNs
 * and policies we gave the run before (they live in its memory) and holds logins until we have
 * given them again; coord's own start is the same case, since it does not know what the target
 * was given. */
static void on_plane_up(struct msg *m)
{
	json_t *o = json_loadb((const char *)m->data, m->len, 0, NULL);
	json_t *g = json_object_get(o, "generation");
	const char *plane = json_string_value(json_object_get(o, "plane"));
	unsigned i, nfenced = 0;

	if (!plane || strcmp(plane, "target") || !json_is_integer(g) ||
	    json_integer_value(g) <= 0) {
		log_warnx("%s: a malformed plane notice: %.*s", __func__, (int)m->len,
			  (const char *)m->data);
		json_decref(o);
		return;
	}
	if ((uint64_t)json_integer_value(g) == co.tgt.generation) {
		json_decref(o);
		return;
	}
	co.tgt.generation = (uint64_t)json_integer_value(g);
	json_decref(o);
	co.tgt.up_ns = now_ns();
	co.tgt.open = false;
	co.tgt.retry_ns = 0;
	for (i = 0; i < co.hosts.n; i++) {
		struct coord_host *h = &co.hosts.h[i];

		if (!h->enrolled || !h->fenced)
			continue;
		/* A fence in flight went to the run before or to this one; its answer decides.
		 * Every other fence is sent again from tick(). */
		h->fence_confirmed = false;
		h->fence_retry_ns = 0;
		nfenced++;
	}
	log_info("%s: target run %llu: giving it %u fence(s) and the virtual disks' LUNs before "
		 "it accepts logins",
		 __func__, (unsigned long long)co.tgt.generation, nfenced);
	coord_catalog_target_restarted();
}

static void on_logins_open_reply(struct pending *p, json_t *r)
{
	json_t *e = json_object_get(r, "error");

	co.tgt.inflight = false;
	if (p->epoch != co.tgt.generation)
		return; /* for a run before the one we deal with now */
	if (e) {
		co.tgt.retry_ns = now_ns() + COORD_FENCE_RETRY_NS;
		log_warnx("%s: target run %llu: logins not opened: %s", __func__,
			  (unsigned long long)p->epoch,
			  json_is_string(e) ? json_string_value(e) : "error");
		return;
	}
	co.tgt.open = true;
	log_info("%s: target run %llu: fences and LUNs given, logins open %.1f ms after it "
		 "started",
		 __func__, (unsigned long long)p->epoch, ms(now_ns() - co.tgt.up_ns));
}

/* From tick(): open the target's logins once it has every fence, and every export has been
 * tried once. The generation goes with the request, and the parent passes it on only to that
 * run of the target (holdfastd.c), so a run that started since never opens on our word. */
static void target_logins_maybe_open(int64_t now)
{
	struct pending *p;

	if (!co.tgt.generation || co.tgt.open || co.tgt.inflight || now < co.tgt.retry_ns)
		return;
	if (!fences_given() || !coord_catalog_exports_settled())
		return;
	p = relay(json_pack("{s:s, s:I}", "cmd", "logins_open", "generation",
			    (json_int_t)co.tgt.generation),
		  PEND_LOGINS_OPEN, 0, co.tgt.generation);
	if (!p) {
		co.tgt.retry_ns = now + COORD_FENCE_RETRY_NS;
		return;
	}
	co.tgt.inflight = true;
}

/* Returns 1 when coord must exit. */
static int parent_cb(void)
{
	struct msg m;
	int err;

	for (;;) {
		err = msg_recv(&co.ch, &m);
		if (err == -EAGAIN)
			break;
		if (err == -EPIPE)
			return 1;
		if (err)
			return 1;
		switch (m.type) {
		case MSG_SHUTDOWN:
			msg_free(&m);
			return 1;
		case MSG_CTL_REQUEST:
			on_ctl_request(&m);
			break;
		case MSG_CTL_RELAY_REPLY:
			on_relay_reply(&m);
			break;
		case MSG_PLANE_UP:
			on_plane_up(&m);
			break;
		default:
			fatalx("%s: message %s (%u) has no handler", __func__,
			       msg_type_name(m.type), m.type);
		}
		msg_free(&m);
	}
	err = msg_flush(&co.ch);
	return err && err != -EAGAIN ? 1 : 0;
}

/* ---- the timer ---- */

static void target_logins_maybe_open(int64_t now);

static void tick(void)
{
	int64_t now = now_ns();
	struct conn *c, *next;
	unsigned i;

	for (i = 0; i < co.hosts.n; i++) {
		struct coord_host *h = &co.hosts.h[i];

		if (!h->enrolled)
			continue;
		if (!h->removed && lease_tick(&h->lease, &co.lc, now))
			host_declared_lost(h, now);
		/* A fence that failed, or one from before a restart, is sent again. */
		if (h->fenced && !h->fence_confirmed && !h->fence_inflight &&
		    !h->unfence_inflight && h->n_iqn && now >= h->fence_retry_ns)
			send_fence(h, 0);
	}
	coord_catalog_tick(now);
	target_logins_maybe_open(now);
	for (c = co.conns; c; c = next) {
		next = c->next;
		if (c->deadline_ns && now > c->deadline_ns) {
			log_warnx("%s: %s: %s took too long; closing", __func__, c->label,
				  c->join ? "the join" : "the handshake");
			conn_close(c);
		}
	}
}

/* ---- start ---- */

static int listen_on(const char *addr, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
		sl = sizeof(struct sockaddr_in6);
	} else {
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int setup_tls(void)
{
	const char *crt, *key, *capem;
	size_t crt_len, key_len, ca_len;
	int err;

	crt = ca_server_cert_pem(co.ca, &crt_len);
	key = ca_server_key_pem(co.ca, &key_len);
	capem = ca_cert_pem(co.ca, &ca_len);
	err = tls_config_new(&co.tls_agent, TLS_ROLE_SERVER);
	if (!err)
		err = tls_config_set_ca_pem(co.tls_agent, capem, ca_len);
	if (!err)
		err = tls_config_set_own_pem(co.tls_agent, crt, crt_len, key, key_len);
	if (!err)
		err = tls_config_new(&co.tls_join, TLS_ROLE_SERVER);
	if (!err)
		err = tls_config_set_ca_pem(co.tls_join, capem, ca_len);
	if (!err)
		err = tls_config_set_own_pem(co.tls_join, crt, crt_len, key, key_len);
	if (!err)
		err = tls_config_set_client_cert_optional(co.tls_join);
	return err;
}

/* Load the host table, add configured hosts that never joined, and rebuild quorum. After a
 * restart no host holds a lease in quorum's eyes until it heartbeats, but each is granted one
 * from now, so a host that never comes back is still declared lost and fenced on time. */
static int setup_hosts(void)
{
	const struct hf_cluster *cl = &co.cfg->cluster;
	int64_t now = now_ns();
	bool changed = false, all = true;
	unsigned i;
	size_t k;
	int err;

	err = coord_hosts_load(&co.hosts, co.hosts_path);
	if (err == -ENOENT)
		err = 0;
	if (err) {
		log_warnx("%s: %s: %s (refusing to start with a damaged host table)", __func__,
			  co.hosts_path, strerror(-err));
		return err;
	}
	for (k = 0; k < cl->nhosts; k++) {
		struct coord_host *h = coord_hosts_by_name(&co.hosts, cl->hosts[k].name);

		if (!h) {
			err = coord_hosts_add(&co.hosts, cl->hosts[k].name, cl->hosts[k].votes, &h);
			if (err)
				return err;
			changed = true;
		} else if (h->votes != cl->hosts[k].votes) {
			h->votes = cl->hosts[k].votes;
			changed = true;
		}
	}
	if (changed && (err = hosts_save()))
		return err;
	err = quorum_init(&co.q, 1, cl->wait_for_all);
	if (err)
		return err;
	for (i = 0; i < co.hosts.n; i++) {
		struct coord_host *h = &co.hosts.h[i];

		if (h->removed) {
			h->lease.state = LEASE_FENCED;
			continue;
		}
		err = quorum_add_host(&co.q, h->id, h->votes, now);
		if (err)
			return err;
		if (!h->enrolled)
			continue;
		/* Enrolled hosts have joined once: wait_for_all is about the cluster's creation,
		 * not about every restart of the box. */
		co.q.hosts[co.q.n_hosts - 1].joined_once = true;
		/* A host that has run may be running: it gets a lease from now, and is declared
		 * lost if it does not heartbeat. One that never ran has nothing to fence. */
		if (h->started || h->fenced)
			lease_host_join(&h->lease, h->id, h->epoch, now);
		else
			lease_host_enrol(&h->lease, h->id, h->epoch, now);
		if (h->fenced) {
			lease_admin_fence(&h->lease, now);
			h->fence_reason = AGENT_E_LEASE_EXPIRED;
		}
	}
	for (i = 0; i < co.q.n_hosts; i++)
		all = all && co.q.hosts[i].joined_once;
	if (co.q.n_hosts && all)
		co.q.wfa_met = true;
	co.quorate = quorum_is_quorate(&co.q);
	return 0;
}

static void cleanup(void)
{
	struct conn *c;
	struct pending *p;

	while (co.conns)
		conn_close(co.conns);
	while ((c = co.dead)) {
		co.dead = c->next;
		free(c->out);
		free(c);
	}
	while ((p = co.pend)) {
		co.pend = p->next;
		pending_free(p);
	}
	coord_catalog_close();
	while (co.catreqs) {
		struct catreq *r = co.catreqs;

		co.catreqs = r->next;
		free(r);
	}
	tls_config_free(co.tls_agent);
	tls_config_free(co.tls_join);
	join_store_close(co.tokens);
	ca_close(co.ca);
	if (co.join_fd >= 0)
		close(co.join_fd);
	if (co.agent_fd >= 0)
		close(co.agent_fd);
	if (co.tfd >= 0)
		close(co.tfd);
	if (co.epfd >= 0)
		close(co.epfd);
	msg_chan_close(&co.ch);
}

int coord_main(const struct hf_config *cfg, int parent_fd)
{
	const struct hf_cluster *cl = &cfg->cluster;
	char dir[4096 + 16], path[4096 + 32];
	struct epoll_event ev, evs[32];
	struct itimerspec its = {0};
	int64_t period;
	int n, i, err, rc = 1;

	log_procname("coord");
	memset(&co, 0, sizeof(co));
	co.cfg = cfg;
	co.epfd = co.tfd = co.join_fd = co.agent_fd = -1;
	co.started_ns = now_ns();
	coord_events_init(&co.ev);
	if (msg_chan_init(&co.ch, parent_fd, PROC_COORD, PROC_PARENT) < 0)
		fatalx("%s: out of memory", __func__);
	co.lc.heartbeat_ns = (int64_t)cl->heartbeat_ms * LEASE_NS_PER_MS;
	co.lc.miss = cl->miss_threshold;
	if (lease_config_check(&co.lc)) {
		log_warnx("%s: heartbeat %u ms, %u misses: out of bounds", __func__,
			  cl->heartbeat_ms, cl->miss_threshold);
		rc = PROC_EXIT_FATAL;
		goto out;
	}

	snprintf(dir, sizeof(dir), "%s/coord", cfg->data_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_warn("%s: %s", __func__, dir);
		rc = PROC_EXIT_FATAL;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/ca", dir);
	err = ca_open(&co.ca, path, cl->name, time(NULL));
	if (err) {
		log_warnx("%s: cluster CA in %s: %s", __func__, path, strerror(-err));
		rc = PROC_EXIT_FATAL;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/join-tokens", dir);
	err = join_store_open(&co.tokens, path);
	if (err) {
		log_warnx("%s: join tokens %s: %s", __func__, path, strerror(-err));
		rc = PROC_EXIT_FATAL;
		goto out;
	}
	snprintf(co.hosts_path, sizeof(co.hosts_path), "%s/hosts.json", dir);
	if (setup_hosts() || setup_tls()) {
		rc = PROC_EXIT_FATAL;
		goto out;
	}
	{
		/* The catalog is opened (and reconciled) before any request; a catalog that
		 * cannot be opened leaves the pool and vdisk commands answering an error. */
		struct coord_catalog_env env = {
			.cfg = cfg, .hosts = &co.hosts, .q = &co.q, .relay = catalog_relay,
			.reply = catalog_reply, .event = catalog_event};

		coord_catalog_open(&env);
	}
	co.join_fd = listen_on(cl->address, cl->join_port);
	co.agent_fd = co.join_fd < 0 ? -1 : listen_on(cl->address, cl->agent_port);
	if (co.join_fd < 0 || co.agent_fd < 0) {
		log_warnx("%s: cannot listen on %s port %u: %s", __func__, cl->address,
			  co.join_fd < 0 ? cl->join_port : cl->agent_port,
			  strerror(-(co.join_fd < 0 ? co.join_fd : co.agent_fd)));
		rc = PROC_EXIT_FATAL;
		goto out;
	}
	co.epfd = epoll_create1(EPOLL_CLOEXEC);
	co.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (co.epfd < 0 || co.tfd < 0)
		fatal("%s: epoll/timerfd", __func__);
	/* The tick decides how late past L a lost host is declared: H/10, like the grace. */
	period = co.lc.heartbeat_ns / 10;
	if (period < LEASE_NS_PER_MS)
		period = LEASE_NS_PER_MS;
	its.it_interval.tv_sec = period / LEASE_NS_PER_S;
	its.it_interval.tv_nsec = period % LEASE_NS_PER_S;
	its.it_value = its.it_interval;
	timerfd_settime(co.tfd, 0, &its, NULL);
	ev.events = EPOLLIN;
	ev.data.ptr = &tag_parent;
	epoll_ctl(co.epfd, EPOLL_CTL_ADD, parent_fd, &ev);
	ev.data.ptr = &tag_timer;
	epoll_ctl(co.epfd, EPOLL_CTL_ADD, co.tfd, &ev);
	ev.data.ptr = &tag_join;
	epoll_ctl(co.epfd, EPOLL_CTL_ADD, co.join_fd, &ev);
	ev.data.ptr = &tag_agent;
	epoll_ctl(co.epfd, EPOLL_CTL_ADD, co.agent_fd, &ev);
	/* The catalog's commit thread says a batch is durable (csv-coord/coord_catalog.h). */
	if (coord_catalog_fd() >= 0) {
		ev.data.ptr = &tag_catalog;
		if (epoll_ctl(co.epfd, EPOLL_CTL_ADD, coord_catalog_fd(), &ev) < 0)
			fatal("%s: epoll of the catalog's commit thread", __func__);
	}

	{
		char fp[2 * TLS_FINGERPRINT_LEN + 1];

		tls_fingerprint_hex(ca_fingerprint(co.ca), fp);
		log_info("%s: cluster %s: agents on %s port %u, joins on port %u, CA sha256 %s; "
			 "heartbeat %u ms, %u misses: lease %.0f ms, agent fences after %.0f ms; "
			 "%u host(s) known",
			 __func__, cl->name, cl->address, cl->agent_port, cl->join_port, fp,
			 cl->heartbeat_ms, cl->miss_threshold, ms(lease_box_timeout_ns(&co.lc)),
			 ms(lease_agent_fence_after_ns(&co.lc)), co.hosts.n);
	}

	coord_catalog_start_exports();
	for (;;) {
		bool again = false;
		struct conn *c;

		for (c = co.conns; c; c = c->next)
			again = again || c->again;
		n = epoll_wait(co.epfd, evs, 32, again ? 0 : -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fatal("%s: epoll_wait", __func__);
		for (i = 0; i < n; i++) {
			void *tag = evs[i].data.ptr;

			if (tag == &tag_parent) {
				if (parent_cb()) {
					rc = 0;
					goto out;
				}
			} else if (tag == &tag_timer) {
				uint64_t x;

				if (read(co.tfd, &x, sizeof(x)) > 0)
					tick();
			} else if (tag == &tag_join) {
				accept_cb(co.join_fd, true);
			} else if (tag == &tag_agent) {
				accept_cb(co.agent_fd, false);
			} else if (tag == &tag_catalog) {
				coord_catalog_committed();
			} else {
				conn_drive(tag);
			}
		}
		for (c = co.conns; c; c = c->next)
			if (c->again && !c->dead)
				conn_drive(c);
		/* The catalog requests of this iteration share one commit (with those that
		 * gathered while the previous batch was in flight). */
		coord_catalog_flush();
		/* Decrypted bytes the fd will not announce. */
		for (c = co.conns; c; c = c->next)
			if (!c->dead && c->handshaken && !c->closing && tls_conn_pending(c->tls))
				c->again = true;
		while ((c = co.dead)) {
			co.dead = c->next;
			free(c->out);
			free(c);
		}
		ev.events = EPOLLIN | (msg_chan_pending(&co.ch) ? EPOLLOUT : 0);
		ev.data.ptr = &tag_parent;
		epoll_ctl(co.epfd, EPOLL_CTL_MOD, parent_fd, &ev);
	}
out:
	cleanup();
	return rc;
}
