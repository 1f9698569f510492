#include "agent/agent_lease.h"

#include <errno.h>
#include <string.h>

void agent_lease_begin(struct agent_lease_ctl *l, const struct agent_timing *t, uint64_t epoch,
		       int64_t base_send_ns)
{
	uint64_t done = l->fence_done_epoch;
	struct lease_config c = {.heartbeat_ns = t->heartbeat_ns, .miss = t->miss};

	memset(l, 0, sizeof(*l));
	l->t = *t;
	lease_agent_start(&l->la, &c, epoch, base_send_ns);
	lease_agent_set_fence_after(&l->la, t->fence_after_ns);
	l->active = true;
	/* The fence record survives a rejoin: it names the epoch it was for, so a new epoch is
	 * not mistaken for a fenced one. */
	l->fence_done_epoch = done;
	l->next_hb_ns = INT64_MIN;
}

void agent_lease_set_timing(struct agent_lease_ctl *l, const struct agent_timing *t)
{
	/* INT64_MIN: the first heartbeat is due at once anyway. */
	if (l->next_hb_ns != INT64_MIN && t->heartbeat_ns < l->t.heartbeat_ns)
		l->next_hb_ns -= l->t.heartbeat_ns - t->heartbeat_ns;
	l->t = *t;
	l->la.cfg.heartbeat_ns = t->heartbeat_ns;
	l->la.cfg.miss = t->miss;
	lease_agent_set_fence_after(&l->la, t->fence_after_ns);
}

int64_t agent_lease_resume_base(const struct agent_timing *t, bool have_hint, int64_t hint_send_ns,
				int64_t now)
{
	if (have_hint && hint_send_ns <= now)
		return hint_send_ns;
	return now - (t->fence_after_ns - t->heartbeat_ns);
}

enum agent_lease_action agent_lease_poll(struct agent_lease_ctl *l, int64_t now, bool connected)
{
	if (!l->active)
		return AGENT_LEASE_IDLE;
	/* coordinator-timing.md (2): fence at the first instant a >= s + F. The check comes
	 * before anything else the agent does when it wakes, including reading the socket. */
	if (lease_agent_must_fence(&l->la, now)) {
		if (l->fence_reported)
			return AGENT_LEASE_IDLE;
		l->fence_reported = true;
		return AGENT_LEASE_FENCE;
	}
	if (connected && now >= l->next_hb_ns)
		return AGENT_LEASE_SEND;
	return AGENT_LEASE_IDLE;
}

int agent_lease_sent(struct agent_lease_ctl *l, int64_t now, uint64_t *seq, uint64_t *lease_ns)
{
	int err;

	err = lease_agent_send(&l->la, now, seq);
	if (err)
		return err;
	*lease_ns = (uint64_t)(lease_agent_deadline(&l->la) - now);
	/* The next one is due H after this one was sent, not after it was due: an agent that
	 * woke late sends one heartbeat, not a burst to catch up. */
	l->next_hb_ns = now + l->t.heartbeat_ns;
	return 0;
}

int agent_lease_ack(struct agent_lease_ctl *l, uint64_t epoch, uint64_t seq, bool fenced_flag,
		    int64_t now, bool *first)
{
	int err;

	*first = false;
	if (!l->active)
		return -ESTALE;
	err = lease_agent_ack(&l->la, epoch, seq, fenced_flag, now);
	if (err)
		return err;
	*first = !l->confirmed;
	l->confirmed = true;
	return 0;
}

bool agent_lease_box_fenced(struct agent_lease_ctl *l, uint64_t epoch)
{
	if (l->active && epoch != l->la.epoch)
		return false;
	l->la.fenced = true;
	return true;
}

bool agent_lease_fenced(const struct agent_lease_ctl *l)
{
	return l->la.fenced;
}

bool agent_lease_fence_pending(const struct agent_lease_ctl *l)
{
	return l->la.fenced && l->fence_done_epoch != l->la.epoch;
}

void agent_lease_fence_done(struct agent_lease_ctl *l)
{
	l->fence_done_epoch = l->la.epoch;
	/* A fence for this epoch has run: the deadline must not ask for it a second time. */
	l->fence_reported = true;
}

int64_t agent_lease_deadline(const struct agent_lease_ctl *l)
{
	return lease_agent_deadline(&l->la);
}

int64_t agent_lease_box_expiry(const struct agent_lease_ctl *l)
{
	/* L units of the box's clock last at least L/(1+rho) of real time, and the agent's
	 * clock, running at no less than 1-rho, counts at least L(1-rho)/(1+rho) of its own
	 * units in that time. Rounding down only makes the figure earlier. */
	int64_t L = (int64_t)l->t.box.lease_timeout_ns;
	int64_t ppm = l->t.skew_ppm;

	return l->la.acked_send_ns + L / (1000000 + ppm) * (1000000 - ppm);
}

int64_t agent_lease_acked_send(const struct agent_lease_ctl *l)
{
	return l->la.acked_send_ns;
}

int64_t agent_lease_next_wake(const struct agent_lease_ctl *l, int64_t now, bool connected)
{
	int64_t wake = INT64_MAX;

	if (!l->active || l->la.fenced)
		return wake;
	wake = lease_agent_deadline(&l->la);
	if (connected && l->next_hb_ns < wake)
		wake = l->next_hb_ns;
	return wake;
}

unsigned agent_lease_watchdog_timeout_s(const struct agent_lease_ctl *l, int64_t now)
{
	int64_t left;

	if (!l->active || l->la.fenced)
		return 0;
	left = lease_agent_deadline(&l->la) - now;
	if (left < LEASE_NS_PER_S)
		return 0;
	return (unsigned)(left / LEASE_NS_PER_S);
}
