/* The cluster control commands of the coord plane (docs/control-protocol.md):
 * cluster_token_create, cluster_status and cluster_host_remove, and the dispatch of a control
 * request, the catalog's included (coord_catalog.h). Shares coord_int.h with coord_main.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "csv-coord/ca.h"
#include "csv-coord/coord_catalog.h"
#include "csv-coord/coord_event.h"
#include "csv-coord/coord_hosts.h"
#include "csv-coord/coord_int.h"
#include "csv-coord/join_token.h"
#include "csv-coord/lease.h"
#include "csv-coord/quorum.h"
#include "lib/log.h"
#include "lib/msg.h"
#include "lib/tls.h"

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

json_t *status_json(json_t *sessions, const char *sessions_error)
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
			coord_conn_flush(c);
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

void on_ctl_request(struct msg *m)
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
