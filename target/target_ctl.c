/* The target's answers to control requests (holdfastctl, later the web plane): targets,
 * LUNs and live sessions as JSON, and the persistent reservations of one LUN (show, and the
 * administrator's clear). Session details live on the workers, so each worker is asked to
 * describe its own and the answers are joined here. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "pr/pr.h"
#include "target/backstore.h"
#include "target/fence.h"
#include "target/lunmap.h"
#include "target/lun.h"
#include "target/scsi_pr.h"
#include "target/target.h"
#include "target/transport.h"

struct ctl_collect {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending;
	json_t *sessions;
};

/* One LUN of a target: a slot of its LUN map, from the configuration or added at run time. */
static json_t *ctl_lun_json(const struct tgt_target *tt, size_t slot, struct scsi_lun *lun)
{
	const char *type = "file", *path = "", *bsname = scsi_lun_name(lun);

	if (tt->rt[slot]) {
		path = tt->rt[slot]->path;
		type = "file (shared volume)";
	} else {
		for (size_t i = 0; i < tt->cfg->nluns; i++) {
			const struct hf_backstore *b =
				&tgt_global.cfg->backstores[tt->cfg->luns[i].backstore];

			if (tt->cfg->luns[i].id != tt->luns[slot].lun)
				continue;
			bsname = b->name;
			type = b->type == HF_BS_FILE ? "file" : "memory";
			path = b->type == HF_BS_FILE ? b->path : "";
		}
	}
	return json_pack("{s:I, s:s, s:s, s:s, s:I, s:i, s:s, s:b}", "id",
			 (json_int_t)tt->luns[slot].lun, "backstore", bsname, "type", type, "path",
			 path, "size",
			 (json_int_t)(scsi_lun_nblocks(lun) * scsi_lun_block_size(lun)),
			 "block_size", (int)scsi_lun_block_size(lun), "serial",
			 scsi_lun_serial(lun), "paused", scsi_lun_paused(lun));
}

static json_t *ctl_targets(bool with_luns_only)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < tgt_global.ntargets; i++) {
		const struct tgt_target *tt = &tgt_global.targets[i];
		json_t *portals = json_array(), *luns = json_array(), *acl = json_array();

		for (size_t p = 0; p < tt->cfg->nportals; p++) {
			const struct hf_portal *po = &tgt_global.cfg->portals[tt->cfg->portals[p]];

			json_array_append_new(portals,
					      json_pack("{s:s, s:s, s:i, s:i}", "name", po->name,
							"address", po->address, "port", po->port,
							"tpgt", po->tpgt));
		}
		for (size_t l = 0, n = scsi_target_nluns(&tt->info); l < n; l++) {
			struct scsi_lun *dev = scsi_lun_entry_dev(&tt->luns[l]);

			if (dev)
				json_array_append_new(luns, ctl_lun_json(tt, l, dev));
		}
		for (size_t a = 0; a < tt->cfg->nacl; a++)
			json_array_append_new(acl, json_string(tt->cfg->acl[a]));
		if (with_luns_only) {
			json_decref(portals);
			json_decref(acl);
			json_array_append_new(
				arr, json_pack("{s:s, s:o}", "iqn", tt->cfg->iqn, "luns", luns));
			continue;
		}
		json_array_append_new(arr, json_pack("{s:s, s:s, s:o, s:o, s:o, s:b}", "iqn",
						     tt->cfg->iqn, "alias", tt->cfg->alias,
						     "portals", portals, "luns", luns, "acl", acl,
						     "chap", tt->cfg->nchap > 0));
	}
	return arr;
}

/* Runs on each worker: describe the sessions that live there. */
static void ctl_collect_worker(void *arg)
{
	struct ctl_collect *cc = arg;
	struct worker *w = tgt_current_worker;
	json_t *mine = json_array();

	pthread_mutex_lock(&tgt_global.lock);
	for (struct session *s = tgt_global.sessions; s; s = s->next) {
		json_t *conns;
		char isid[13];

		if (s->worker != w || s->dying)
			continue;
		conns = json_array();
		for (struct conn *c = s->conns; c; c = c->snext)
			json_array_append_new(
				conns, json_pack("{s:i, s:s, s:s, s:i, s:b, s:b, s:i}", "cid",
						 c->cid, "local", c->local, "peer", c->peer, "tpgt",
						 c->listener->portal->tpgt, "header_digest",
						 c->params.header_digest, "data_digest",
						 c->params.data_digest, "tasks", c->ntasks));
		snprintf(isid, sizeof(isid), "%02x%02x%02x%02x%02x%02x", s->isid[0], s->isid[1],
			 s->isid[2], s->isid[3], s->isid[4], s->isid[5]);
		json_array_append_new(
			mine,
			json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:I, s:I, s:o, s:{s:i, s:i, s:i, "
				  "s:b, s:b, s:i}}",
				  "initiator", s->initiator, "alias", s->alias, "isid", isid,
				  "tsih", s->tsih, "type",
				  s->type == ISCSI_SESSION_DISCOVERY ? "discovery" : "normal",
				  "target", s->target ? s->target->cfg->iqn : "", "expcmdsn",
				  (json_int_t)s->expcmdsn, "maxcmdsn", (json_int_t)s->maxcmdsn,
				  "connections", conns, "params", "max_burst", s->params.max_burst,
				  "first_burst", s->params.first_burst, "max_recv_dsl",
				  s->params.initiator_max_recv_dsl, "immediate_data",
				  s->params.immediate_data, "initial_r2t", s->params.initial_r2t,
				  "max_connections", s->params.max_connections));
	}
	pthread_mutex_unlock(&tgt_global.lock);
	pthread_mutex_lock(&cc->lock);
	json_array_extend(cc->sessions, mine);
	json_decref(mine);
	if (--cc->pending == 0)
		pthread_cond_signal(&cc->cond);
	pthread_mutex_unlock(&cc->lock);
}

static json_t *ctl_sessions(void)
{
	struct ctl_collect cc = {.pending = tgt_global.nworkers};

	pthread_mutex_init(&cc.lock, NULL);
	pthread_cond_init(&cc.cond, NULL);
	cc.sessions = json_array();
	for (int i = 0; i < tgt_global.nworkers; i++) {
		struct worker_msg *m = calloc(1, sizeof(*m));

		if (!m)
			fatal("%s", __func__);
		m->type = WORKER_MSG_CALL;
		m->fn = ctl_collect_worker;
		m->arg = &cc;
		worker_post(tgt_global.workers[i], m);
	}
	pthread_mutex_lock(&cc.lock);
	while (cc.pending > 0)
		pthread_cond_wait(&cc.cond, &cc.lock);
	pthread_mutex_unlock(&cc.lock);
	pthread_cond_destroy(&cc.cond);
	pthread_mutex_destroy(&cc.lock);
	return cc.sessions;
}

/* A failure answer with a formatted reason. */
static json_t *ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *ctl_error(const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return json_pack("{s:s}", "error", why);
}

/* The LUN a PR request names: {"target": IQN, "lun": number}. Returns the LUN or NULL with
 * *err set to the error answer. */
static struct scsi_lun *ctl_pr_lun(json_t *req, const struct tgt_target **ttp, uint64_t *idp,
				   json_t **err)
{
	const char *iqn = NULL;
	json_int_t id = -1;

	if (json_unpack(req, "{s:s, s:I}", "target", &iqn, "lun", &id) < 0 || id < 0) {
		*err = ctl_error("%s", "a PR request names a \"target\" (string) and a \"lun\" "
				       "(non-negative number)");
		return NULL;
	}
	for (size_t i = 0; i < tgt_global.ntargets; i++) {
		const struct tgt_target *tt = &tgt_global.targets[i];

		if (strcmp(tt->cfg->iqn, iqn) != 0)
			continue;
		for (size_t l = 0, n = scsi_target_nluns(&tt->info); l < n; l++) {
			struct scsi_lun *dev = scsi_lun_entry_dev(&tt->luns[l]);

			if (tt->luns[l].lun != (uint64_t)id || !dev)
				continue;
			*ttp = tt;
			*idp = tt->luns[l].lun;
			return dev;
		}
		*err = ctl_error("target %.224s has no LUN %" JSON_INTEGER_FORMAT, iqn, id);
		return NULL;
	}
	*err = ctl_error("unknown target '%.224s'", iqn);
	return NULL;
}

/* spc4r37 6.15.3.4, table 164: short names for scripts and long ones for people. */
static const char *pr_type_short(uint8_t type)
{
	switch (type) {
	case PR_TYPE_NONE:
		return "none";
	case PR_TYPE_WE:
		return "WE";
	case PR_TYPE_EA:
		return "EA";
	case PR_TYPE_WE_RO:
		return "WE_RO";
	case PR_TYPE_EA_RO:
		return "EA_RO";
	case PR_TYPE_WE_AR:
		return "WE_AR";
	case PR_TYPE_EA_AR:
		return "EA_AR";
	default:
		return "unknown";
	}
}

static const char *pr_type_long(uint8_t type)
{
	switch (type) {
	case PR_TYPE_NONE:
		return "none";
	case PR_TYPE_WE:
		return "Write Exclusive";
	case PR_TYPE_EA:
		return "Exclusive Access";
	case PR_TYPE_WE_RO:
		return "Write Exclusive - Registrants Only";
	case PR_TYPE_EA_RO:
		return "Exclusive Access - Registrants Only";
	case PR_TYPE_WE_AR:
		return "Write Exclusive - All Registrants";
	case PR_TYPE_EA_AR:
		return "Exclusive Access - All Registrants";
	default:
		return "unknown";
	}
}

static bool pr_type_all_registrants(uint8_t type)
{
	return type == PR_TYPE_WE_AR || type == PR_TYPE_EA_AR;
}

/* A reservation key as text: keys are 64-bit and JSON numbers are not (jansson's are signed,
 * and many JSON readers use doubles), so scripts get a fixed-width hex string. */
static json_t *pr_key_json(uint64_t key)
{
	char text[19];

	snprintf(text, sizeof(text), "0x%016" PRIx64, key);
	return json_string(text);
}

/* One registrant: its initiator port, the TransportID READ FULL STATUS would report for it
 * (spc4r37 7.6.4.6, format 01b), the relative target port it registered through, its key. */
static json_t *pr_reg_json(const struct pr_reg *r)
{
	char name[PR_NAME_MAX], hex[2 * 320 + 1];
	const char *isid;
	uint8_t tid[320];
	size_t len;
	json_t *o;

	if (pr_port_name(r->itn.port, name, sizeof(name)) < 0)
		snprintf(name, sizeof(name), "%s", "");
	isid = strstr(r->itn.port, ",i,0x");
	len = pr_tid_build(r->itn.port, tid, sizeof(tid));
	for (size_t i = 0; i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", tid[i]);
	hex[2 * len] = '\0';
	o = json_object();
	json_object_set_new(o, "initiator_port", json_string(r->itn.port));
	json_object_set_new(o, "initiator", json_string(name));
	json_object_set_new(o, "isid", json_string(isid ? isid + 5 : ""));
	json_object_set_new(o, "transport_id", json_string(hex));
	json_object_set_new(o, "rel_tgt_port", json_integer(r->itn.rel_port));
	json_object_set_new(o, "key", pr_key_json(r->key));
	json_object_set_new(o, "holder", json_boolean(r->holder));
	json_object_set_new(o, "all_tg_pt", json_boolean(r->all_tg_pt));
	return o;
}

static json_t *pr_state_json(const struct tgt_target *tt, uint64_t id, const struct pr_state *s)
{
	json_t *o = json_object(), *regs = json_array(), *resv = json_null(), *holder;

	for (uint32_t i = 0; i < s->nregs; i++)
		json_array_append_new(regs, pr_reg_json(&s->regs[i]));
	if (s->type != PR_TYPE_NONE) {
		/* For the all-registrants types every registrant holds the reservation
		 * (spc4r37 5.13.10) and there is no single holder to name. */
		holder = json_null();
		for (uint32_t i = 0; i < s->nregs && !pr_type_all_registrants(s->type); i++) {
			if (!s->regs[i].holder)
				continue;
			json_decref(holder);
			holder = json_pack("{s:s, s:i, s:o}", "initiator_port", s->regs[i].itn.port,
					   "rel_tgt_port", (int)s->regs[i].itn.rel_port, "key",
					   pr_key_json(s->regs[i].key));
			break;
		}
		resv = json_pack(
			"{s:s, s:s, s:i, s:s, s:i, s:b, s:o}", "type", pr_type_short(s->type),
			"type_name", pr_type_long(s->type), "type_code", (int)s->type, "scope",
			s->scope == PR_SCOPE_LU ? "LU" : "unknown", "scope_code", (int)s->scope,
			"all_registrants", pr_type_all_registrants(s->type), "holder", holder);
	}
	json_object_set_new(o, "target", json_string(tt->cfg->iqn));
	json_object_set_new(o, "lun", json_integer((json_int_t)id));
	json_object_set_new(o, "generation", json_integer(s->generation));
	json_object_set_new(o, "aptpl", json_boolean(s->aptpl));
	json_object_set_new(o, "reservation", resv);
	json_object_set_new(o, "registrants", regs);
	return o;
}

/* {"cmd":"pr_show","target":IQN,"lun":N}. The state is a few dozen KiB, so it is copied to
 * the heap rather than onto the main thread's stack. */
static json_t *ctl_pr_show(json_t *req)
{
	const struct tgt_target *tt = NULL;
	struct scsi_lun *lun;
	struct pr_state *s;
	json_t *err = NULL, *out;
	uint64_t id = 0;
	int rc;

	lun = ctl_pr_lun(req, &tt, &id, &err);
	if (!lun)
		return err;
	s = malloc(sizeof(*s));
	if (!s)
		return ctl_error("%s", strerror(ENOMEM));
	rc = scsi_pr_snapshot(lun, s);
	out = rc ? ctl_error("cannot read the persistent reservations of %s LUN %" PRIu64 ": %s",
			     tt->cfg->iqn, id, strerror(-rc))
		 : pr_state_json(tt, id, s);
	free(s);
	return out;
}

/* Who asked for a clear, for the log: the parent stamps "peer" with the credentials the
 * kernel gave for the control connection (so they cannot be forged by the client); "by" is
 * the user name the client claims (sudo's caller, say), shown as a claim. */
static void ctl_requester(json_t *req, char *buf, size_t len)
{
	json_int_t pid = -1, uid = -1;
	const char *by = NULL;
	int n;

	/* Two lookups, so that a malformed "by" cannot hide the credentials. */
	json_unpack(req, "{s?{s?I, s?I}}", "peer", "uid", &uid, "pid", &pid);
	json_unpack(req, "{s?s}", "by", &by);
	if (uid >= 0)
		n = snprintf(buf, len,
			     "control client uid %" JSON_INTEGER_FORMAT
			     " pid %" JSON_INTEGER_FORMAT,
			     uid, pid);
	else
		n = snprintf(buf, len, "%s", "a control client of unknown identity");
	if (by && n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - n, " (says user '%.64s')", by);
}

/* {"cmd":"pr_clear","target":IQN,"lun":N}: the administrator's escape hatch. Every
 * registration and the reservation go; scsi_pr_admin_clear() persists first when APTPL is
 * on, queues RESERVATIONS PREEMPTED for each registrant and logs who asked. */
static json_t *ctl_pr_clear(json_t *req)
{
	const struct tgt_target *tt = NULL;
	struct scsi_lun *lun;
	struct pr_state *s;
	json_t *err = NULL, *out;
	char who[512], requester[256];
	uint64_t id = 0;
	uint32_t dropped;
	bool had_resv;
	int rc;

	lun = ctl_pr_lun(req, &tt, &id, &err);
	if (!lun)
		return err;
	s = malloc(sizeof(*s));
	if (!s)
		return ctl_error("%s", strerror(ENOMEM));
	ctl_requester(req, requester, sizeof(requester));
	snprintf(who, sizeof(who), "%s for %s LUN %" PRIu64, requester, tt->cfg->iqn, id);
	/* What the clear drops, for the answer. A PR OUT may slip in between the two calls; the
	 * counts are then off by it, the clear itself is not. */
	rc = scsi_pr_snapshot(lun, s);
	dropped = rc ? 0 : s->nregs;
	had_resv = rc ? false : s->type != PR_TYPE_NONE;
	if (!rc)
		rc = scsi_pr_admin_clear(lun, who);
	if (!rc)
		rc = scsi_pr_snapshot(lun, s);
	if (rc) {
		log_warnx("%s: %s LUN %" PRIu64 ": clear asked by %s failed: %s", __func__,
			  tt->cfg->iqn, id, requester, strerror(-rc));
		out = ctl_error("cannot clear the persistent reservations of %s LUN %" PRIu64
				": %s",
				tt->cfg->iqn, id, strerror(-rc));
	} else {
		out = json_pack("{s:s, s:I, s:b, s:i, s:b, s:I, s:b}", "target", tt->cfg->iqn,
				"lun", (json_int_t)id, "cleared", 1, "registrations_dropped",
				(int)dropped, "reservation_dropped", had_resv, "generation",
				(json_int_t)s->generation, "aptpl", s->aptpl);
	}
	free(s);
	return out;
}

/* {"cmd":"fence","host":H,"epoch":N,"initiators":[IQN...]}: fence a host at the target. */
static json_t *ctl_fence(json_t *req)
{
	const char *names[TGT_FENCE_MAX_INITIATORS];
	struct tgt_fence_result r;
	const char *host = NULL;
	json_int_t epoch = 0;
	json_t *inits = NULL, *v;
	size_t n = 0, i;
	int rc;

	if (json_unpack(req, "{s:s, s:I, s:o}", "host", &host, "epoch", &epoch, "initiators",
			&inits) < 0 ||
	    !json_is_array(inits) || json_array_size(inits) == 0 ||
	    json_array_size(inits) > TGT_FENCE_MAX_INITIATORS || epoch < 0 || epoch > UINT32_MAX)
		return json_pack("{s:s}", "error",
				 "fence needs host, epoch and 1 to 16 initiator names");
	json_array_foreach(inits, i, v)
	{
		if (!json_is_string(v))
			return json_pack("{s:s}", "error", "initiator names must be strings");
		names[n++] = json_string_value(v);
	}
	rc = tgt_fence(host, names, n, (uint32_t)epoch, &r);
	if (rc < 0)
		return json_pack("{s:s}", "error",
				 rc == -ESTALE ? "stale epoch: the host is fenced under a newer one"
					       : strerror(-rc));
	return json_pack("{s:s, s:I, s:i, s:f, s:f}", "fenced", host, "epoch", epoch, "sessions",
			 (int)r.sessions, "writes_refused_ms", r.refused_ns / 1e6,
			 "tasks_drained_ms", r.drained_ns / 1e6);
}

/* {"cmd":"unfence","host":H,"epoch":N}: the host rejoined under a newer epoch. */
static json_t *ctl_unfence(json_t *req)
{
	const char *host = NULL;
	json_int_t epoch = 0;
	int rc;

	if (json_unpack(req, "{s:s, s:I}", "host", &host, "epoch", &epoch) < 0 || epoch < 0 ||
	    epoch > UINT32_MAX)
		return json_pack("{s:s}", "error", "unfence needs host and epoch");
	rc = tgt_unfence(host, (uint32_t)epoch);
	if (rc == -ESTALE)
		return json_pack("{s:s}", "error", "stale epoch: not newer than the fence");
	if (rc == -ENOENT)
		return json_pack("{s:s}", "error", "host is not fenced");
	if (rc < 0)
		return json_pack("{s:s}", "error", strerror(-rc));
	return json_pack("{s:s, s:I}", "unfenced", host, "epoch", epoch);
}

/* Find a LUN of a target by IQN and LUN number. */
static struct scsi_lun *ctl_find_lun(const char *iqn, json_int_t id)
{
	for (size_t i = 0; i < tgt_global.ntargets; i++) {
		const struct tgt_target *tt = &tgt_global.targets[i];

		if (strcmp(tt->cfg->iqn, iqn) != 0)
			continue;
		for (size_t l = 0, n = scsi_target_nluns(&tt->info); l < n; l++)
			if ((json_int_t)tt->luns[l].lun == id)
				return scsi_lun_entry_dev(&tt->luns[l]);
	}
	return NULL;
}

/* {"cmd":"lun_access","target":IQN,"lun":N,"epoch":E,"owners":[IQN...],"members":[IQN...]
 *  [,"paused":true]} sets a shared volume's access (lun.h); "owners" may be empty (nobody
 * writes); "paused" holds every write (maintenance) until a policy without it. With
 * "clear":true the policy is removed. The change is in force for every later command once
 * this answers. */
static json_t *ctl_lun_access(json_t *req)
{
	const char *owners[64], *members[64], *iqn = NULL;
	json_t *jo = NULL, *jm = NULL, *v;
	json_int_t id = -1, epoch = -1;
	int clear = 0, paused = 0, rc;
	size_t no = 0, nm = 0, i;
	struct scsi_lun *lun;

	if (json_unpack(req, "{s:s, s:I, s?:I, s?:o, s?:o, s?:b, s?:b}", "target", &iqn, "lun", &id,
			"epoch", &epoch, "owners", &jo, "members", &jm, "clear", &clear, "paused",
			&paused) < 0)
		return json_pack("{s:s}", "error", "lun_access needs target and lun");
	lun = ctl_find_lun(iqn, id);
	if (!lun)
		return json_pack("{s:s}", "error", "no such target or LUN");
	if (clear) {
		scsi_lun_clear_access(lun);
		/* Writes the pause held run now. */
		tgt_hold_kick_all();
		return json_pack("{s:s, s:I, s:b}", "target", iqn, "lun", id, "cleared", 1);
	}
	if (epoch < 0 || !json_is_array(jo) || !json_is_array(jm) || json_array_size(jo) > 64 ||
	    json_array_size(jm) > 64)
		return json_pack("{s:s}", "error",
				 "lun_access needs epoch, owners and members (at most 64 each)");
	json_array_foreach(jo, i, v)
	{
		if (!json_is_string(v))
			return json_pack("{s:s}", "error", "owners must be initiator names");
		owners[no++] = json_string_value(v);
	}
	json_array_foreach(jm, i, v)
	{
		if (!json_is_string(v))
			return json_pack("{s:s}", "error", "members must be initiator names");
		members[nm++] = json_string_value(v);
	}
	rc = scsi_lun_set_access(lun, owners, no, members, nm, (uint64_t)epoch, paused);
	if (rc == -ESTALE)
		return json_pack("{s:s}", "error",
				 "stale epoch: a newer access policy is in force");
	if (rc < 0)
		return json_pack("{s:s}", "error", strerror(-rc));
	/* Not paused (any more): the workers run what they held for it, in order. A pause
	 * needs nothing more: every write that starts after this answer sees it. */
	if (!paused)
		tgt_hold_kick_all();
	return json_pack("{s:s, s:I, s:I, s:b}", "target", iqn, "lun", id, "epoch", epoch, "paused",
			 paused);
}

/* Initiator names from a JSON array into names[0..max); -1 when it is not an array of
 * strings or too long. */
static int ctl_names(json_t *arr, const char **names, size_t max, size_t *n)
{
	json_t *v;
	size_t i;

	*n = 0;
	if (!json_is_array(arr) || json_array_size(arr) > max)
		return -1;
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v))
			return -1;
		names[(*n)++] = json_string_value(v);
	}
	return 0;
}

/* {"cmd":"lun_add","target":IQN,"lun":N,"name":S,"path":ABS,"size":BYTES[,"block_size":B]
 *  [,"epoch":E,"owners":[IQN...],"members":[IQN...][,"paused":true]]}: with a policy the LUN
 * is published already under it. */
static json_t *ctl_lun_add(json_t *req)
{
	const char *iqn = NULL, *name = NULL, *path = NULL, *owners[64], *members[64];
	json_int_t id = -1, size = -1, bsz = 512, epoch = -1;
	json_t *jo = NULL, *jm = NULL;
	struct tgt_lun_policy pol = {.owners = owners, .members = members};
	int rc, paused = 0;

	if (json_unpack(req, "{s:s, s:I, s:s, s:s, s:I, s?:I, s?:I, s?:o, s?:o, s?:b}", "target",
			&iqn, "lun", &id, "name", &name, "path", &path, "size", &size, "block_size",
			&bsz, "epoch", &epoch, "owners", &jo, "members", &jm, "paused",
			&paused) < 0 ||
	    id < 0 || size <= 0 || (bsz != 512 && bsz != 4096))
		return json_pack("{s:s}", "error",
				 "lun_add needs target, lun, name, an absolute path, size and a "
				 "block_size of 512 or 4096");
	if (epoch >= 0 && (ctl_names(jo, owners, 64, &pol.nowners) < 0 ||
			   ctl_names(jm, members, 64, &pol.nmembers) < 0))
		return json_pack("{s:s}", "error",
				 "a policy needs owners and members: arrays of at most 64 names");
	pol.epoch = (uint64_t)epoch;
	pol.paused = paused;
	rc = tgt_lun_add(iqn, (uint64_t)id, name, path, (uint64_t)size, (uint32_t)bsz,
			 epoch >= 0 ? &pol : NULL);
	if (rc < 0)
		return json_pack("{s:s}", "error",
				 rc == -EEXIST ? "the LUN number is in use"
				 : rc == -ENOENT
					 ? "no such target (or the file's folder is missing)"
					 : strerror(-rc));
	return json_pack("{s:s, s:I, s:s}", "target", iqn, "lun", id, "added", path);
}

/* {"cmd":"lun_remove","target":IQN,"lun":N} */
static json_t *ctl_lun_remove(json_t *req)
{
	const char *iqn = NULL;
	json_int_t id = -1;
	int rc;

	if (json_unpack(req, "{s:s, s:I}", "target", &iqn, "lun", &id) < 0 || id < 0)
		return json_pack("{s:s}", "error", "lun_remove needs target and lun");
	rc = tgt_lun_remove(iqn, (uint64_t)id);
	if (rc < 0)
		return json_pack("{s:s}", "error",
				 rc == -EPERM	 ? "the LUN comes from the configuration file"
				 : rc == -ENOENT ? "no such target or LUN"
						 : strerror(-rc));
	return json_pack("{s:s, s:I, s:b}", "target", iqn, "lun", id, "removed", 1);
}

/* {"cmd":"lun_resize","target":IQN,"lun":N,"size":BYTES} */
static json_t *ctl_lun_resize(json_t *req)
{
	const char *iqn = NULL;
	json_int_t id = -1, size = -1;
	int rc;

	if (json_unpack(req, "{s:s, s:I, s:I}", "target", &iqn, "lun", &id, "size", &size) < 0 ||
	    id < 0 || size <= 0)
		return json_pack("{s:s}", "error", "lun_resize needs target, lun and size");
	rc = tgt_lun_resize(iqn, (uint64_t)id, (uint64_t)size);
	if (rc < 0)
		return json_pack("{s:s}", "error",
				 rc == -ENOENT	 ? "no such target or LUN"
				 : rc == -EINVAL ? "a LUN only grows, in whole blocks"
						 : strerror(-rc));
	return json_pack("{s:s, s:I, s:I}", "target", iqn, "lun", id, "size", size);
}

static json_t *ctl_fences(void)
{
	char *text = tgt_fence_list_json();
	json_t *arr = text ? json_loads(text, 0, NULL) : NULL;

	free(text);
	return json_pack("{s:o, s:s}", "fences", arr ? arr : json_array(), "logins",
			 tgt_fence_logins_held() ? "held" : "open");
}

/* {"cmd":"logins_open"}: coord has given this run of the target its fences, LUNs and policies
 * (fence.h). Only coord sends it: the parent refuses it on the control socket. */
static json_t *ctl_logins_open(void)
{
	bool was = tgt_fence_logins_held();

	tgt_fence_open_logins();
	if (was)
		log_info("%s: logins open: the coordinator has given the fences again", __func__);
	return json_pack("{s:s}", "logins", "open");
}

int target_ctl(const char *request, char **reply)
{
	json_error_t jerr;
	json_t *req = json_loads(request, 0, &jerr), *out = NULL;
	const char *cmd = NULL;

	if (!req || json_unpack(req, "{s:s}", "cmd", &cmd) < 0) {
		out = json_pack("{s:s}", "error", "request must be a JSON object with \"cmd\"");
	} else if (strcmp(cmd, "targets") == 0) {
		out = json_pack("{s:o}", "targets", ctl_targets(false));
	} else if (strcmp(cmd, "luns") == 0) {
		out = json_pack("{s:o}", "targets", ctl_targets(true));
	} else if (strcmp(cmd, "sessions") == 0) {
		out = json_pack("{s:o}", "sessions", ctl_sessions());
	} else if (strcmp(cmd, "pr_show") == 0) {
		out = ctl_pr_show(req);
	} else if (strcmp(cmd, "pr_clear") == 0) {
		out = ctl_pr_clear(req);
	} else if (strcmp(cmd, "fence") == 0) {
		out = ctl_fence(req);
	} else if (strcmp(cmd, "unfence") == 0) {
		out = ctl_unfence(req);
	} else if (strcmp(cmd, "fences") == 0) {
		out = ctl_fences();
	} else if (strcmp(cmd, "logins_open") == 0) {
		out = ctl_logins_open();
	} else if (strcmp(cmd, "lun_access") == 0) {
		out = ctl_lun_access(req);
	} else if (strcmp(cmd, "lun_add") == 0) {
		out = ctl_lun_add(req);
	} else if (strcmp(cmd, "lun_remove") == 0) {
		out = ctl_lun_remove(req);
	} else if (strcmp(cmd, "lun_resize") == 0) {
		out = ctl_lun_resize(req);
	} else {
		out = json_pack("{s:s}", "error", "unknown command");
	}
	json_decref(req);
	*reply = out ? json_dumps(out, JSON_COMPACT) : NULL;
	json_decref(out);
	return *reply ? 0 : -ENOMEM;
}
