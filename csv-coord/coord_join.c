/* Joins of the coord plane: a JOIN_REQUEST on the join port is checked (the host's name, the
 * configuration, the join token), its certificate request signed by the cluster CA, and the
 * host recorded and answered JOIN_RESPONSE; a removed host that enrols again first has the
 * target take its next epoch. Shares coord_int.h with coord_main.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "csv-coord/agent_proto.h"
#include "csv-coord/ca.h"
#include "csv-coord/coord_hosts.h"
#include "csv-coord/coord_int.h"
#include "csv-coord/join_token.h"
#include "csv-coord/lease.h"
#include "csv-coord/quorum.h"
#include "lib/tls.h"

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
void box_timing(struct agent_lease_timing *t)
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

void on_join_request(struct conn *c, const struct agent_msg *m)
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
bool unfence_ok(json_t *r, const char **why)
{
	json_t *e = json_object_get(r, "error");

	*why = json_is_string(e) ? json_string_value(e) : "error";
	return !e || (json_is_string(e) && strstr(json_string_value(e), "not fenced"));
}

void on_unfence_join_reply(struct pending *p, json_t *r)
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
