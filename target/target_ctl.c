/* The target's answers to control requests (holdfastctl, later the web plane): targets,
 * LUNs and live sessions as JSON. Session details live on the workers, so each worker is
 * asked to describe its own and the answers are joined here. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "target/backstore.h"
#include "target/lun.h"
#include "target/target.h"
#include "target/transport.h"

struct ctl_collect {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending;
	json_t *sessions;
};

static json_t *ctl_lun_json(const struct tgt_target *tt, size_t i)
{
	const struct hf_lun *hl = &tt->cfg->luns[i];
	const struct hf_backstore *b = &tgt_global.cfg->backstores[hl->backstore];
	struct scsi_lun *lun = tt->luns[i].dev;

	return json_pack("{s:I, s:s, s:s, s:s, s:I, s:i, s:s}", "id", (json_int_t)hl->id,
			 "backstore", b->name, "type", b->type == HF_BS_FILE ? "file" : "memory",
			 "path", b->type == HF_BS_FILE ? b->path : "", "size",
			 (json_int_t)(scsi_lun_nblocks(lun) * scsi_lun_block_size(lun)),
			 "block_size", (int)scsi_lun_block_size(lun), "serial",
			 scsi_lun_serial(lun));
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
		for (size_t l = 0; l < tt->cfg->nluns; l++)
			json_array_append_new(luns, ctl_lun_json(tt, l));
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
	} else {
		out = json_pack("{s:s}", "error", "unknown command");
	}
	json_decref(req);
	*reply = out ? json_dumps(out, JSON_COMPACT) : NULL;
	json_decref(out);
	return *reply ? 0 : -ENOMEM;
}
