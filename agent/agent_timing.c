/* The agent's effective lease timing (agent_timing.h). */
#include "agent/agent_timing.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

bool agent_timing_announced(const struct agent_lease_timing *bt)
{
	return bt->heartbeat_ns && bt->miss && bt->lease_timeout_ns && bt->skew_ppm;
}

void agent_timing_box_from_config(const struct lease_config *c, struct agent_lease_timing *bt)
{
	bt->heartbeat_ns = (uint64_t)c->heartbeat_ns;
	bt->miss = (uint16_t)c->miss;
	bt->lease_timeout_ns = (uint64_t)lease_box_timeout_ns(c);
	bt->skew_ppm = LEASE_SKEW_PPM;
}

static int refuse(char *why, size_t cap, const char *text)
{
	snprintf(why, cap, "%s", text);
	return -EINVAL;
}

int agent_timing_decide(const struct agent_lease_timing *bt, const struct agent_timing_override *o,
			struct agent_timing *t, char *why, size_t cap)
{
	struct lease_config box, mine;
	int64_t f_box, f_mine;

	memset(t, 0, sizeof(*t));
	if (!agent_timing_announced(bt))
		return refuse(why, cap, "the lease timing is incomplete");
	if (bt->heartbeat_ns > (uint64_t)LEASE_MAX_HEARTBEAT_NS ||
	    bt->lease_timeout_ns > (uint64_t)INT64_MAX)
		return refuse(why, cap, "the heartbeat interval or lease timeout is out of range");
	box.heartbeat_ns = (int64_t)bt->heartbeat_ns;
	box.miss = bt->miss;
	if (lease_config_check(&box))
		return refuse(why, cap, "the heartbeat interval or miss threshold is out of range");
	if (bt->skew_ppm > AGENT_TIMING_SKEW_PPM_MAX)
		return refuse(why, cap, "the clock rate bound is above 10%");
	t->box = *bt;
	/* coordinator-timing.md A1 holds for both clocks: take the larger bound. */
	t->skew_ppm = bt->skew_ppm > LEASE_SKEW_PPM ? bt->skew_ppm : LEASE_SKEW_PPM;
	t->fence_budget_ns = box.heartbeat_ns;
	t->fence_limit_ns = lease_agent_fence_limit_ns((int64_t)bt->lease_timeout_ns,
						       t->fence_budget_ns, t->skew_ppm);
	/* F from the box's H and M with rho, never above what the box's L allows (with today's
	 * box, L = M*H + H/10, the formula is below the limit: coordinator-timing.md (5)). */
	f_box = lease_agent_fence_after_ppm_ns(&box, t->skew_ppm);
	if (f_box > t->fence_limit_ns)
		f_box = t->fence_limit_ns;
	t->heartbeat_ns = box.heartbeat_ns;
	t->miss = box.miss;
	t->fence_after_ns = f_box;

	/* The flags only ever make the agent more conservative: send at least as often, fence no
	 * later. */
	mine = box;
	if (o && o->heartbeat_ns) {
		if (o->heartbeat_ns > box.heartbeat_ns)
			t->ignored |= AGENT_TIMING_IGNORED_HEARTBEAT;
		else
			mine.heartbeat_ns = o->heartbeat_ns;
	}
	if (o && o->miss)
		mine.miss = o->miss;
	if (o && (o->miss || mine.heartbeat_ns != box.heartbeat_ns) &&
	    lease_config_check(&mine) == 0) {
		f_mine = lease_agent_fence_after_ppm_ns(&mine, t->skew_ppm);
		if (f_mine > f_box) {
			t->ignored |= AGENT_TIMING_IGNORED_FENCE;
		} else {
			t->fence_after_ns = f_mine;
			t->heartbeat_ns = mine.heartbeat_ns;
			t->miss = mine.miss;
			t->overridden = f_mine < f_box || mine.heartbeat_ns < box.heartbeat_ns;
		}
	} else if (o && (o->miss || o->heartbeat_ns)) {
		t->ignored |= AGENT_TIMING_IGNORED_FENCE;
	}
	/* Liveness: an ACK must be able to come back before the deadline. */
	if (t->fence_after_ns <= t->heartbeat_ns)
		return refuse(why, cap,
			      "the box's lease timeout leaves no time for a heartbeat to be "
			      "acknowledged before the agent must fence itself");
	return 0;
}

void agent_timing_from_config(const struct lease_config *c, struct agent_timing *t)
{
	struct agent_lease_timing bt;
	char why[8];

	agent_timing_box_from_config(c, &bt);
	if (agent_timing_decide(&bt, NULL, t, why, sizeof(why))) {
		/* Only a config outside lease.h's bounds gets here: keep its own formula. */
		memset(t, 0, sizeof(*t));
		t->box = bt;
		t->skew_ppm = LEASE_SKEW_PPM;
		t->heartbeat_ns = c->heartbeat_ns;
		t->miss = c->miss;
		t->fence_after_ns = lease_agent_fence_after_ns(c);
		t->fence_limit_ns = t->fence_after_ns;
		t->fence_budget_ns = c->heartbeat_ns;
	}
}

int agent_timing_describe(const struct agent_timing *t, char *buf, size_t cap)
{
	return snprintf(buf, cap,
			"H %lld ms, M %u, fence after %lld ms without an ack (box: H %lld ms, "
			"lease %lld ms, rho %.2f%%)",
			(long long)(t->heartbeat_ns / LEASE_NS_PER_MS), t->miss,
			(long long)(t->fence_after_ns / LEASE_NS_PER_MS),
			(long long)(t->box.heartbeat_ns / LEASE_NS_PER_MS),
			(long long)(t->box.lease_timeout_ns / LEASE_NS_PER_MS),
			t->skew_ppm / 10000.0);
}
