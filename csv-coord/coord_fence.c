/* Fencing at the target, by the coord plane: a lost or removed host's epoch is fenced through
 * the parent's relay and sent again until the target confirms it; and a target that (re)starts
 * (MSG_PLANE_UP) holds its logins until it has every fence, and the catalog's exports were
 * tried, then is told to open them. Shares coord_int.h with coord_main.c. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "csv-coord/agent_proto.h"
#include "csv-coord/coord_catalog.h"
#include "csv-coord/coord_event.h"
#include "csv-coord/coord_hosts.h"
#include "csv-coord/coord_int.h"
#include "csv-coord/lease.h"
#include "csv-coord/quorum.h"
#include "lib/log.h"
#include "lib/msg.h"

#define COORD_FENCE_RETRY_NS LEASE_NS_PER_S

/* ---- fencing at the target ---- */

void send_fence(struct coord_host *h, uint32_t ctl_id)
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
void host_declared_lost(struct coord_host *h, int64_t now)
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

void on_fence_reply(struct pending *p, json_t *r)
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
void on_plane_up(struct msg *m)
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

void on_logins_open_reply(struct pending *p, json_t *r)
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
void target_logins_maybe_open(int64_t now)
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
