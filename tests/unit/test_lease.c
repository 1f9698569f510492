/* Leases: box-side renewal, loss at the boundary, fencing and rejoin; agent-side deadlines; and
 * the timing property of docs/coordinator-timing.md checked over many random cases: the agent's
 * fence action is over before the box can declare the host lost. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csv-coord/lease.h"

#define S  LEASE_NS_PER_S
#define MS LEASE_NS_PER_MS

static struct lease_config defcfg(void)
{
	struct lease_config c;

	lease_config_default(&c);
	return c;
}

static void test_default_config_derives_every_timer_from_h(void **state)
{
	struct lease_config c = defcfg();

	assert_int_equal(lease_config_check(&c), 0);
	assert_int_equal(c.heartbeat_ns, 1 * S);
	assert_int_equal(c.miss, 5);
	assert_int_equal(lease_grace_ns(&c), 100 * MS);
	assert_int_equal(lease_box_timeout_ns(&c), 5100 * MS);
	/* m = 1% * 9 * 1 s */
	assert_int_equal(lease_agent_margin_ns(&c), 90 * MS);
	assert_int_equal(lease_agent_fence_after_ns(&c), 3910 * MS);
	assert_int_equal(lease_fence_budget_ns(&c), 1 * S);

	/* Doubling H doubles every timer. */
	c.heartbeat_ns = 2 * S;
	assert_int_equal(lease_box_timeout_ns(&c), 10200 * MS);
	assert_int_equal(lease_agent_fence_after_ns(&c), 7820 * MS);
}

static void test_config_check_rejects_out_of_bounds(void **state)
{
	struct lease_config c = defcfg();

	c.miss = 2;
	assert_int_equal(lease_config_check(&c), -EINVAL);
	c.miss = LEASE_MAX_MISS + 1;
	assert_int_equal(lease_config_check(&c), -EINVAL);
	c = defcfg();
	c.heartbeat_ns = LEASE_MIN_HEARTBEAT_NS - 1;
	assert_int_equal(lease_config_check(&c), -EINVAL);
	c.heartbeat_ns = LEASE_MAX_HEARTBEAT_NS + 1;
	assert_int_equal(lease_config_check(&c), -EINVAL);
	c.heartbeat_ns = LEASE_MAX_HEARTBEAT_NS;
	c.miss = LEASE_MAX_MISS;
	assert_int_equal(lease_config_check(&c), 0);
	/* At the extremes the agent still has more than one interval to renew in. */
	assert_true(lease_agent_fence_after_ns(&c) > c.heartbeat_ns);
	c.heartbeat_ns = LEASE_MIN_HEARTBEAT_NS;
	c.miss = LEASE_MIN_MISS;
	assert_true(lease_agent_fence_after_ns(&c) > c.heartbeat_ns);
}

static void test_join_grants_a_lease_that_runs_out_without_heartbeats(void **state)
{
	struct lease_config c = defcfg();
	struct lease_host h;
	int64_t t0 = 1000 * S;

	lease_host_join(&h, 7, 1, t0);
	assert_int_equal(h.state, LEASE_JOINED);
	assert_true(lease_holds(&h, &c, t0 + 5 * S));
	assert_int_equal(lease_tick(&h, &c, t0 + 5 * S), 0);
	assert_int_equal(lease_tick(&h, &c, t0 + 6 * S), 1);
	assert_int_equal(h.state, LEASE_LOST);
}

static void test_an_enrolled_host_holds_no_lease_until_its_first_heartbeat(void **state)
{
	struct lease_config c = defcfg();
	struct lease_host h;
	int64_t t0 = 1000 * S, until;

	lease_host_enrol(&h, 7, 1, t0);
	assert_int_equal(h.state, LEASE_ENROLLED);
	assert_false(lease_holds(&h, &c, t0));
	/* Nothing runs out: a host that never ran is never declared lost, however long. */
	assert_int_equal(lease_tick(&h, &c, t0 + 3600 * S), 0);
	assert_int_equal(h.state, LEASE_ENROLLED);
	/* Its first heartbeat, an hour later, starts the lease from then under epoch 1. */
	assert_int_equal(lease_renew(&h, &c, 2, 1, 0, t0 + 3600 * S, &until), -ESTALE);
	assert_int_equal(lease_renew(&h, &c, 1, 1, 0, t0 + 3600 * S, &until), 0);
	assert_int_equal(h.state, LEASE_LIVE);
	assert_int_equal(h.epoch, 1);
	assert_int_equal(until, t0 + 3600 * S + lease_box_timeout_ns(&c));
	/* From then on it is an ordinary lease. */
	assert_int_equal(lease_tick(&h, &c, until), 0);
	assert_int_equal(lease_tick(&h, &c, until + 1), 1);
	/* An enrolled host is not fenced, so it has nothing to rejoin from. */
	lease_host_enrol(&h, 7, 1, t0);
	assert_int_equal(lease_rejoin(&h, 2, t0), -EINVAL);
}

static void test_fence_limit_is_inequality_4(void **state)
{
	struct lease_config c = defcfg();
	int64_t L = lease_box_timeout_ns(&c), K = lease_fence_budget_ns(&c);
	int64_t f = lease_agent_fence_limit_ns(L, K, LEASE_SKEW_PPM);

	/* 0.99 * (5.1 s / 1.01 - 1 s) = 4.00900990... s, rounded down. */
	assert_true(f >= 4009009900 && f <= 4009009901);
	/* The formula's F sits below the limit with today's L (the margin of (5)). */
	assert_true(lease_agent_fence_after_ns(&c) < f);
	assert_int_equal(lease_agent_fence_after_ppm_ns(&c, LEASE_SKEW_PPM),
			 lease_agent_fence_after_ns(&c));
	/* A budget larger than L/(1+rho) leaves no F at all. */
	assert_true(lease_agent_fence_limit_ns(S, 2 * S, LEASE_SKEW_PPM) < 0);
}

static void test_heartbeat_renews_the_lease(void **state)
{
	struct lease_config c = defcfg();
	struct lease_host h;
	int64_t until = 0;

	lease_host_join(&h, 7, 1, 0);
	assert_int_equal(lease_renew(&h, &c, 1, 1, 11, 4 * S, &until), 0);
	assert_int_equal(h.state, LEASE_LIVE);
	assert_int_equal(until, 4 * S + lease_box_timeout_ns(&c));
	assert_int_equal(h.agent_send_ns, 11);
	assert_int_equal(lease_age_ns(&h, 5 * S), 1 * S);
	/* Without the renewal the join's lease would have run out at 5.1 s. */
	assert_int_equal(lease_tick(&h, &c, 6 * S), 0);
	assert_true(lease_holds(&h, &c, 9 * S));
}

static void test_lease_holds_at_the_boundary_and_is_lost_one_ns_later(void **state)
{
	struct lease_config c = defcfg();
	struct lease_host h;
	int64_t until;

	lease_host_join(&h, 7, 1, 9 * S);
	assert_int_equal(lease_renew(&h, &c, 1, 1, 0, 10 * S, &until), 0);
	assert_false(lease_expired(&h, &c, until));
	assert_int_equal(lease_tick(&h, &c, until), 0);
	assert_int_equal(h.state, LEASE_LIVE);
	assert_true(lease_expired(&h, &c, until + 1));
	assert_int_equal(lease_tick(&h, &c, until + 1), 1);
	assert_int_equal(h.state, LEASE_LOST);
	assert_int_equal(h.changed_ns, until + 1);
	/* Declared once. */
	assert_int_equal(lease_tick(&h, &c, until + 2), 0);
}

static void test_heartbeat_after_expiry_is_refused_and_declares_lost(void **state)
{
	struct lease_config c = defcfg();
	struct lease_host h;
	int64_t until, late;

	lease_host_join(&h, 7, 1, 0);
	assert_int_equal(lease_renew(&h, &c, 1, 1, 0, 0, &until), 0);
	late = until + 1;
	/* The box has not ticked yet; the heartbeat alone must not revive the lease. */
	assert_int_equal(lease_renew(&h, &c, 1, 2, 0, late, &until), -EPERM);
	assert_int_equal(h.state, LEASE_LOST);
	assert_int_equal(h.last_seq, 1);
}

static void test_stale_epoch_is_refused(void **state)
{
	struct lease_config c = defcfg();
	struct lease_host h;
	int64_t until = -1;

	lease_host_join(&h, 7, 3, 0);
	assert_int_equal(lease_renew(&h, &c, 2, 1, 0, 1 * S, &until), -ESTALE);
	assert_int_equal(until, -1);
	assert_int_equal(h.last_renew_ns, 0);
	assert_int_equal(h.state, LEASE_JOINED);
	/* An epoch the box never granted is refused as well. */
	assert_int_equal(lease_renew(&h, &c, 4, 1, 0, 1 * S, &until), -ESTALE);
	assert_int_equal(lease_renew(&h, &c, 3, 1, 0, 1 * S, &until), 0);
}

static void test_replayed_or_old_sequence_is_refused(void **state)
{
	struct lease_config c = defcfg();
	struct lease_host h;
	int64_t until;

	lease_host_join(&h, 7, 1, 0);
	assert_int_equal(lease_renew(&h, &c, 1, 5, 0, 1 * S, &until), 0);
	assert_int_equal(lease_renew(&h, &c, 1, 5, 0, 2 * S, &until), -ESTALE);
	assert_int_equal(lease_renew(&h, &c, 1, 4, 0, 2 * S, &until), -ESTALE);
	assert_int_equal(h.last_renew_ns, 1 * S);
	assert_int_equal(lease_renew(&h, &c, 1, 6, 0, 2 * S, &until), 0);
	assert_int_equal(h.last_renew_ns, 2 * S);
}

static void test_lost_host_must_be_fenced_before_it_rejoins(void **state)
{
	struct lease_config c = defcfg();
	struct lease_host h;
	int64_t until;

	lease_host_join(&h, 7, 1, 0);
	assert_int_equal(lease_tick(&h, &c, 6 * S), 1);
	assert_int_equal(lease_renew(&h, &c, 1, 1, 0, 6 * S, &until), -EPERM);
	assert_int_equal(lease_rejoin(&h, 2, 6 * S), -EBUSY);
	assert_int_equal(lease_fenced(&h, 6 * S + 10 * MS), 0);
	assert_int_equal(h.state, LEASE_FENCED);
	assert_int_equal(lease_fenced(&h, 7 * S), -EALREADY);
	assert_int_equal(lease_renew(&h, &c, 1, 1, 0, 7 * S, &until), -EPERM);
	assert_false(lease_holds(&h, &c, 7 * S));
}

static void test_rejoin_increments_the_epoch_and_restarts_the_sequence(void **state)
{
	struct lease_config c = defcfg();
	struct lease_host h;
	int64_t until;

	lease_host_join(&h, 7, 1, 0);
	assert_int_equal(lease_renew(&h, &c, 1, 40, 0, 1 * S, &until), 0);
	assert_int_equal(lease_tick(&h, &c, 7 * S), 1);
	assert_int_equal(lease_fenced(&h, 7 * S), 0);
	assert_int_equal(lease_rejoin(&h, 2, 20 * S), 0);
	assert_int_equal(h.state, LEASE_REJOINED);
	assert_int_equal(h.epoch, 2);
	assert_true(lease_holds(&h, &c, 20 * S));
	/* The old epoch stays refused; the new one starts from seq 1. */
	assert_int_equal(lease_renew(&h, &c, 1, 41, 0, 21 * S, &until), -ESTALE);
	assert_int_equal(lease_renew(&h, &c, 2, 1, 0, 21 * S, &until), 0);
	assert_int_equal(h.state, LEASE_LIVE);
}

static void test_rejoin_refuses_a_wrong_epoch_or_an_unfenced_host(void **state)
{
	struct lease_config c = defcfg();
	struct lease_host h;
	int64_t until;

	lease_host_join(&h, 7, 1, 0);
	assert_int_equal(lease_renew(&h, &c, 1, 1, 0, 1 * S, &until), 0);
	assert_int_equal(lease_rejoin(&h, 2, 1 * S), -EINVAL);
	assert_int_equal(lease_admin_fence(&h, 2 * S), 0);
	assert_int_equal(lease_admin_fence(&h, 2 * S), -EALREADY);
	assert_int_equal(lease_rejoin(&h, 1, 3 * S), -ESTALE);
	assert_int_equal(lease_rejoin(&h, 3, 3 * S), -ESTALE);
	assert_int_equal(h.epoch, 1);
	assert_int_equal(h.state, LEASE_FENCED);
}

static void test_agent_deadline_counts_from_the_send_time_of_the_acked_heartbeat(void **state)
{
	struct lease_config c = defcfg();
	struct lease_agent a;
	uint64_t s1, s2;

	lease_agent_start(&a, &c, 1, 100 * MS);
	assert_int_equal(lease_agent_deadline(&a), 100 * MS + lease_agent_fence_after_ns(&c));
	assert_int_equal(lease_agent_send(&a, 1 * S, &s1), 0);
	assert_int_equal(lease_agent_send(&a, 2 * S, &s2), 0);
	assert_int_equal(s2, s1 + 1);
	/* The ACK of the first arrives late (at 2.9 s): the deadline counts from 1 s. */
	assert_int_equal(lease_agent_ack(&a, 1, s1, false, 2900 * MS), 0);
	assert_int_equal(lease_agent_deadline(&a), 1 * S + lease_agent_fence_after_ns(&c));
	assert_int_equal(lease_agent_ack(&a, 1, s2, false, 3 * S), 0);
	assert_int_equal(lease_agent_deadline(&a), 2 * S + lease_agent_fence_after_ns(&c));
}

static void test_agent_ignores_acks_that_would_move_the_deadline_back(void **state)
{
	struct lease_config c = defcfg();
	struct lease_agent a;
	uint64_t s1, s2;
	int64_t d;

	lease_agent_start(&a, &c, 1, 0);
	assert_int_equal(lease_agent_send(&a, 1 * S, &s1), 0);
	assert_int_equal(lease_agent_send(&a, 2 * S, &s2), 0);
	assert_int_equal(lease_agent_ack(&a, 1, s2, false, 2100 * MS), 0);
	d = lease_agent_deadline(&a);
	assert_int_equal(lease_agent_ack(&a, 1, s1, false, 2200 * MS), -ESTALE);
	assert_int_equal(lease_agent_ack(&a, 1, s2, false, 2200 * MS), -ESTALE);
	assert_int_equal(lease_agent_ack(&a, 1, s2 + 1, false, 2200 * MS), -ESTALE);
	assert_int_equal(lease_agent_ack(&a, 1, 0, false, 2200 * MS), -ESTALE);
	assert_int_equal(lease_agent_ack(&a, 2, s2, false, 2200 * MS), -ESTALE);
	assert_int_equal(lease_agent_deadline(&a), d);
}

static void test_agent_fences_at_its_deadline_and_a_late_ack_cannot_undo_it(void **state)
{
	struct lease_config c = defcfg();
	struct lease_agent a;
	uint64_t s1, s2;
	int64_t d;

	lease_agent_start(&a, &c, 1, 0);
	assert_int_equal(lease_agent_send(&a, 1 * S, &s1), 0);
	d = lease_agent_deadline(&a);
	assert_false(lease_agent_must_fence(&a, d - 1));
	assert_true(lease_agent_must_fence(&a, d));
	assert_int_equal(lease_agent_ack(&a, 1, s1, false, d + 1), -EPERM);
	assert_true(lease_agent_must_fence(&a, d + 1));
	assert_int_equal(lease_agent_send(&a, d + 2, &s2), -EPERM);
	/* Only a new epoch clears it. */
	lease_agent_start(&a, &c, 2, d + 3 * S);
	assert_false(lease_agent_must_fence(&a, d + 3 * S));
}

static void test_agent_fences_when_the_box_says_so(void **state)
{
	struct lease_config c = defcfg();
	struct lease_agent a;
	uint64_t s1;

	lease_agent_start(&a, &c, 1, 0);
	assert_int_equal(lease_agent_send(&a, 1 * S, &s1), 0);
	assert_int_equal(lease_agent_ack(&a, 1, s1, true, 1 * S + 1), -EPERM);
	assert_true(lease_agent_must_fence(&a, 1 * S + 2));
}

/* Real time is a long double in seconds-as-ns; each clock is offset + (1 + e) * t. */
struct clk {
	long double off, rate;
};

static int64_t clk_read(const struct clk *k, long double t)
{
	return (int64_t)(k->off + k->rate * t);
}

/* The earliest real time at which clock k shows at least v. */
static long double clk_when(const struct clk *k, int64_t v)
{
	return ((long double)v - k->off) / k->rate;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static long double rnd_unit(void)
{
	return (long double)(rnd() >> 11) / (long double)(1ull << 53);
}

static long double rnd_skew(void)
{
	long double rho = LEASE_SKEW_PPM / 1e6L;

	/* A quarter of the cases sit on the bound itself, where the margin is tightest. */
	switch (rnd() % 8) {
	case 0:
		return -rho;
	case 1:
		return rho;
	default:
		return (2 * rnd_unit() - 1) * rho;
	}
}

/* One case of the property: a join, then a heartbeat with a random one-way delay in [0, H] each
 * way, optionally a later heartbeat the box accepts but whose ACK is lost. The agent must have
 * finished its fence action (deadline + K, real time) before the first instant the box's lease
 * check says "lost". */
static void check_one_case(const struct lease_config *c, struct clk ag, struct clk bx,
			   long double d_join, long double d_hb, long double d_ack, bool extra)
{
	long double H = c->heartbeat_ns;
	long double t_join = 1000 * H * rnd_unit();
	long double t_hb = t_join + d_join + H * (0.5L + rnd_unit());
	struct lease_agent a;
	struct lease_host h;
	long double t_fence, t_decl;
	int64_t until, lost_at;
	uint64_t seq;
	int r;

	lease_agent_start(&a, c, 1, clk_read(&ag, t_join));
	lease_host_join(&h, 1, 1, clk_read(&bx, t_join + d_join));
	if (lease_agent_send(&a, clk_read(&ag, t_hb), &seq) == 0) {
		r = lease_renew(&h, c, 1, seq, clk_read(&ag, t_hb), clk_read(&bx, t_hb + d_hb),
				&until);
		if (r == 0) {
			r = lease_agent_ack(&a, 1, seq, false, clk_read(&ag, t_hb + d_hb + d_ack));
			assert_true(r == 0 || r == -EPERM);
		}
		if (extra && lease_agent_send(&a, clk_read(&ag, t_hb + H), &seq) == 0)
			lease_renew(&h, c, 1, seq, 0, clk_read(&bx, t_hb + H + d_hb), &until);
	}
	lost_at = h.last_renew_ns + lease_box_timeout_ns(c) + 1;
	assert_false(lease_expired(&h, c, lost_at - 1));
	assert_true(lease_expired(&h, c, lost_at));
	t_fence = clk_when(&ag, lease_agent_deadline(&a));
	t_decl = clk_when(&bx, lost_at);
	if (!(t_fence + lease_fence_budget_ns(c) < t_decl))
		fail_msg("H=%lld M=%u: agent done at %.0Lf, box declares at %.0Lf",
			 (long long)c->heartbeat_ns, c->miss, t_fence + lease_fence_budget_ns(c),
			 t_decl);
}

static void test_agent_always_stops_before_the_box_declares_it_lost(void **state)
{
	struct lease_config c;

	for (int i = 0; i < 200000; i++) {
		struct clk ag, bx;
		long double H, u;

		/* H from 10 ms to 60 s, spread over the decades. */
		u = rnd_unit();
		c.heartbeat_ns = LEASE_MIN_HEARTBEAT_NS +
				 (int64_t)((LEASE_MAX_HEARTBEAT_NS - LEASE_MIN_HEARTBEAT_NS) * u *
					   u * u * u);
		c.miss = LEASE_MIN_MISS + rnd() % 30;
		if (i % 10 == 0)
			c.miss = LEASE_MIN_MISS + rnd() % (LEASE_MAX_MISS - LEASE_MIN_MISS + 1);
		assert_int_equal(lease_config_check(&c), 0);
		H = c.heartbeat_ns;
		ag.off = 1e15L * rnd_unit();
		ag.rate = 1 + rnd_skew();
		bx.off = 1e15L * rnd_unit();
		bx.rate = 1 + rnd_skew();
		if (i % 4 == 0)
			check_one_case(&c, ag, bx, 0, 0, 0, rnd() & 1);
		else
			check_one_case(&c, ag, bx, H * rnd_unit(), H * rnd_unit(), H * rnd_unit(),
				       rnd() & 1);
	}
}

/* The margin is not decoration: with F = (M-1)*H and no margin, a slow agent clock against a
 * fast box clock breaks the inequality once M is large enough for the grace not to hide it. */
static void test_without_the_margin_the_worst_case_breaks(void **state)
{
	struct lease_config c = {.heartbeat_ns = 1 * S, .miss = 20};
	long double rho = LEASE_SKEW_PPM / 1e6L;
	long double f_no_margin = (long double)(c.miss - 1) * c.heartbeat_ns;
	long double f = lease_agent_fence_after_ns(&c);
	long double l = lease_box_timeout_ns(&c);
	long double k = lease_fence_budget_ns(&c);

	assert_false(f_no_margin / (1 - rho) + k < l / (1 + rho));
	assert_true(f / (1 - rho) + k < l / (1 + rho));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_config_derives_every_timer_from_h),
		cmocka_unit_test(test_config_check_rejects_out_of_bounds),
		cmocka_unit_test(test_join_grants_a_lease_that_runs_out_without_heartbeats),
		cmocka_unit_test(test_heartbeat_renews_the_lease),
		cmocka_unit_test(test_an_enrolled_host_holds_no_lease_until_its_first_heartbeat),
		cmocka_unit_test(test_fence_limit_is_inequality_4),
		cmocka_unit_test(test_lease_holds_at_the_boundary_and_is_lost_one_ns_later),
		cmocka_unit_test(test_heartbeat_after_expiry_is_refused_and_declares_lost),
		cmocka_unit_test(test_stale_epoch_is_refused),
		cmocka_unit_test(test_replayed_or_old_sequence_is_refused),
		cmocka_unit_test(test_lost_host_must_be_fenced_before_it_rejoins),
		cmocka_unit_test(test_rejoin_increments_the_epoch_and_restarts_the_sequence),
		cmocka_unit_test(test_rejoin_refuses_a_wrong_epoch_or_an_unfenced_host),
		cmocka_unit_test(
			test_agent_deadline_counts_from_the_send_time_of_the_acked_heartbeat),
		cmocka_unit_test(test_agent_ignores_acks_that_would_move_the_deadline_back),
		cmocka_unit_test(test_agent_fences_at_its_deadline_and_a_late_ack_cannot_undo_it),
		cmocka_unit_test(test_agent_fences_when_the_box_says_so),
		cmocka_unit_test(test_agent_always_stops_before_the_box_declares_it_lost),
		cmocka_unit_test(test_without_the_margin_the_worst_case_breaks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
