/* Host leases: see lease.h. The constants come from docs/coordinator-timing.md. */
#include <errno.h>
#include <string.h>

#include "csv-coord/lease.h"

void lease_config_default(struct lease_config *c)
{
	c->heartbeat_ns = LEASE_DEFAULT_HEARTBEAT_NS;
	c->miss = LEASE_DEFAULT_MISS;
}

int lease_config_check(const struct lease_config *c)
{
	if (c->heartbeat_ns < LEASE_MIN_HEARTBEAT_NS || c->heartbeat_ns > LEASE_MAX_HEARTBEAT_NS)
		return -EINVAL;
	if (c->miss < LEASE_MIN_MISS || c->miss > LEASE_MAX_MISS)
		return -EINVAL;
	return 0;
}

int64_t lease_grace_ns(const struct lease_config *c)
{
	return c->heartbeat_ns / LEASE_GRACE_DIV;
}

/* coordinator-timing.md (1): the box declares the host lost once L has passed on its clock
 * since it accepted the last heartbeat. */
int64_t lease_box_timeout_ns(const struct lease_config *c)
{
	return (int64_t)c->miss * c->heartbeat_ns + lease_grace_ns(c);
}

/* coordinator-timing.md (5): m >= rho*(2M-1)*H makes (4) hold for any grace G >= 0. Rounded
 * up, since a larger margin only makes the agent stop earlier. */
int64_t lease_agent_margin_ppm_ns(const struct lease_config *c, uint32_t skew_ppm)
{
	/* H <= 60 s, M <= 100, rho < 10^6 ppm: the product stays below 2^127. */
	__int128 num = (__int128)c->heartbeat_ns * (2 * c->miss - 1) * skew_ppm;

	return (int64_t)((num + 999999) / 1000000);
}

int64_t lease_agent_margin_ns(const struct lease_config *c)
{
	return lease_agent_margin_ppm_ns(c, LEASE_SKEW_PPM);
}

/* coordinator-timing.md (2): the agent fences F after sending the last acknowledged heartbeat. */
int64_t lease_agent_fence_after_ppm_ns(const struct lease_config *c, uint32_t skew_ppm)
{
	return (int64_t)(c->miss - 1) * c->heartbeat_ns - lease_agent_margin_ppm_ns(c, skew_ppm);
}

int64_t lease_agent_fence_after_ns(const struct lease_config *c)
{
	return lease_agent_fence_after_ppm_ns(c, LEASE_SKEW_PPM);
}

/* coordinator-timing.md (4): F <= (1-rho) * (L/(1+rho) - K). Both L/(1+rho) and the product are
 * rounded down, so the result never exceeds the exact bound. */
int64_t lease_agent_fence_limit_ns(int64_t box_timeout_ns, int64_t fence_budget_ns,
				   uint32_t skew_ppm)
{
	const __int128 one = 1000000;
	__int128 box_real = (__int128)box_timeout_ns * one / (one + skew_ppm);
	__int128 num = (box_real - fence_budget_ns) * (one - skew_ppm);

	/* Floor division, also for a negative numerator. */
	if (num < 0)
		return (int64_t)(-((-num + one - 1) / one));
	return (int64_t)(num / one);
}

int64_t lease_fence_budget_ns(const struct lease_config *c)
{
	return c->heartbeat_ns;
}

const char *lease_state_name(enum lease_state s)
{
	switch (s) {
	case LEASE_JOINED:
		return "joined";
	case LEASE_LIVE:
		return "live";
	case LEASE_LOST:
		return "lost";
	case LEASE_FENCED:
		return "fenced";
	case LEASE_REJOINED:
		return "rejoined";
	case LEASE_ENROLLED:
		return "enrolled";
	default:
		return "invalid";
	}
}

static void set_state(struct lease_host *h, enum lease_state s, int64_t now)
{
	h->state = s;
	h->changed_ns = now;
}

void lease_host_join(struct lease_host *h, uint32_t host_id, uint64_t epoch, int64_t now)
{
	memset(h, 0, sizeof(*h));
	h->host_id = host_id;
	h->epoch = epoch;
	h->last_renew_ns = now;
	h->agent_send_ns = 0;
	set_state(h, LEASE_JOINED, now);
}

void lease_host_enrol(struct lease_host *h, uint32_t host_id, uint64_t epoch, int64_t now)
{
	lease_host_join(h, host_id, epoch, now);
	set_state(h, LEASE_ENROLLED, now);
}

static bool state_holds_lease(enum lease_state s)
{
	return s == LEASE_JOINED || s == LEASE_LIVE || s == LEASE_REJOINED;
}

bool lease_expired(const struct lease_host *h, const struct lease_config *c, int64_t now)
{
	if (!state_holds_lease(h->state))
		return true;
	/* Strictly greater: at exactly last_renew + L the lease still holds. */
	return now - h->last_renew_ns > lease_box_timeout_ns(c);
}

bool lease_holds(const struct lease_host *h, const struct lease_config *c, int64_t now)
{
	return !lease_expired(h, c, now);
}

int lease_tick(struct lease_host *h, const struct lease_config *c, int64_t now)
{
	if (!state_holds_lease(h->state) || !lease_expired(h, c, now))
		return 0;
	set_state(h, LEASE_LOST, now);
	return 1;
}

int lease_renew(struct lease_host *h, const struct lease_config *c, uint64_t epoch, uint64_t seq,
		int64_t agent_send_ns, int64_t now, int64_t *until)
{
	/* A heartbeat that arrives after the lease ran out must not revive it: the agent has
	 * already fenced itself (timing.md (3)) and the target may be fencing it. */
	lease_tick(h, c, now);
	if (!state_holds_lease(h->state) && h->state != LEASE_ENROLLED)
		return -EPERM;
	if (epoch != h->epoch)
		return -ESTALE;
	if (seq <= h->last_seq)
		return -ESTALE;
	h->last_seq = seq;
	h->agent_send_ns = agent_send_ns;
	/* The lease only ever moves forward, even if the caller's clock reading does not. */
	if (now > h->last_renew_ns)
		h->last_renew_ns = now;
	if (h->state != LEASE_LIVE)
		set_state(h, LEASE_LIVE, now);
	*until = h->last_renew_ns + lease_box_timeout_ns(c);
	return 0;
}

int lease_fenced(struct lease_host *h, int64_t now)
{
	if (h->state == LEASE_FENCED)
		return -EALREADY;
	if (h->state != LEASE_LOST)
		return -EINVAL;
	set_state(h, LEASE_FENCED, now);
	return 0;
}

int lease_admin_fence(struct lease_host *h, int64_t now)
{
	if (h->state == LEASE_FENCED)
		return -EALREADY;
	set_state(h, LEASE_FENCED, now);
	return 0;
}

int lease_rejoin(struct lease_host *h, uint64_t new_epoch, int64_t now)
{
	if (h->state == LEASE_LOST)
		return -EBUSY;
	if (h->state != LEASE_FENCED)
		return -EINVAL;
	if (new_epoch != h->epoch + 1)
		return -ESTALE;
	h->epoch = new_epoch;
	h->last_seq = 0;
	h->last_renew_ns = now;
	h->agent_send_ns = 0;
	set_state(h, LEASE_REJOINED, now);
	return 0;
}

int64_t lease_age_ns(const struct lease_host *h, int64_t now)
{
	return now - h->last_renew_ns;
}

void lease_agent_start(struct lease_agent *a, const struct lease_config *c, uint64_t epoch,
		       int64_t req_send_ns)
{
	memset(a, 0, sizeof(*a));
	a->cfg = *c;
	a->epoch = epoch;
	a->next_seq = 1;
	a->acked_seq = 0;
	a->acked_send_ns = req_send_ns;
	a->fenced = false;
	a->fence_after_ns = lease_agent_fence_after_ns(c);
}

void lease_agent_set_fence_after(struct lease_agent *a, int64_t fence_after_ns)
{
	a->fence_after_ns = fence_after_ns;
}

int lease_agent_send(struct lease_agent *a, int64_t now, uint64_t *seq)
{
	unsigned slot;

	if (lease_agent_must_fence(a, now))
		return -EPERM;
	*seq = a->next_seq++;
	slot = *seq % LEASE_AGENT_INFLIGHT;
	a->sent[slot].seq = *seq;
	a->sent[slot].send_ns = now;
	return 0;
}

int64_t lease_agent_deadline(const struct lease_agent *a)
{
	return a->acked_send_ns + a->fence_after_ns;
}

bool lease_agent_must_fence(struct lease_agent *a, int64_t now)
{
	if (!a->fenced && now >= lease_agent_deadline(a))
		a->fenced = true;
	return a->fenced;
}

int lease_agent_ack(struct lease_agent *a, uint64_t epoch, uint64_t seq, bool fenced_flag,
		    int64_t now)
{
	unsigned slot = seq % LEASE_AGENT_INFLIGHT;

	/* The deadline is checked first: an ACK that arrives after it cannot undo a fence that
	 * has already started. */
	if (lease_agent_must_fence(a, now))
		return -EPERM;
	if (epoch != a->epoch)
		return -ESTALE;
	if (fenced_flag) {
		a->fenced = true;
		return -EPERM;
	}
	if (seq == 0 || seq <= a->acked_seq || a->sent[slot].seq != seq)
		return -ESTALE;
	a->acked_seq = seq;
	a->acked_send_ns = a->sent[slot].send_ns;
	return 0;
}
