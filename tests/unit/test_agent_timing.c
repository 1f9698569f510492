/* The agent's effective lease timing (agent/agent_timing.h): it follows the box's announced H
 * and M, the command line may only make it stricter, and whatever it decides satisfies
 * inequality (4) of docs/coordinator-timing.md against the box's lease timeout. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "agent/agent_timing.h"

#define MS LEASE_NS_PER_MS
#define S  LEASE_NS_PER_S

static struct agent_lease_timing box(int64_t h, unsigned m)
{
	struct lease_config c = {.heartbeat_ns = h, .miss = m};
	struct agent_lease_timing bt;

	agent_timing_box_from_config(&c, &bt);
	return bt;
}

/* Inequality (4) with the real bound: F/(1-rho) + K <= L/(1+rho), in doubles. */
static void assert_safe(const struct agent_timing *t)
{
	double rho = t->skew_ppm / 1e6;
	double lhs = (double)t->fence_after_ns / (1 - rho) + (double)t->fence_budget_ns;
	double rhs = (double)t->box.lease_timeout_ns / (1 + rho);

	assert_true(lhs <= rhs);
	assert_true(t->fence_after_ns > t->heartbeat_ns);
}

static void test_the_box_timing_is_followed_without_flags(void **state)
{
	struct agent_lease_timing bt = box(500 * MS, 3);
	struct agent_timing t;
	char why[160];

	assert_int_equal(agent_timing_decide(&bt, NULL, &t, why, sizeof(why)), 0);
	/* F = (M-1)H - ceil(rho(2M-1)H) = 1000 ms - 25 ms. */
	assert_int_equal(t.heartbeat_ns, 500 * MS);
	assert_int_equal(t.miss, 3);
	assert_int_equal(t.fence_after_ns, 975 * MS);
	assert_int_equal(t.fence_budget_ns, 500 * MS);
	assert_int_equal(t.box.lease_timeout_ns, 1550 * MS);
	assert_int_equal(t.ignored, 0);
	assert_false(t.overridden);
	assert_safe(&t);

	/* The defaults give the figures of the timing note: F = 3.91 s. */
	bt = box(S, 5);
	assert_int_equal(agent_timing_decide(&bt, NULL, &t, why, sizeof(why)), 0);
	assert_int_equal(t.fence_after_ns, 3910 * MS);
}

/* The case the protocol fixes: an agent started with the defaults (H 1 s, M 5) against a box
 * with H 500 ms, M 3 used to fence after 3.91 s, while the box declares the host lost 1.55 s
 * after its last heartbeat. */
static void test_flags_cannot_make_the_agent_fence_later(void **state)
{
	struct agent_lease_timing bt = box(500 * MS, 3);
	struct agent_timing_override o = {.heartbeat_ns = S, .miss = 5};
	struct agent_timing t;
	char why[160];

	assert_int_equal(agent_timing_decide(&bt, &o, &t, why, sizeof(why)), 0);
	assert_true(t.ignored & AGENT_TIMING_IGNORED_HEARTBEAT);
	assert_true(t.ignored & AGENT_TIMING_IGNORED_FENCE);
	assert_int_equal(t.fence_after_ns, 975 * MS);
	assert_int_equal(t.heartbeat_ns, 500 * MS);
	assert_safe(&t);

	/* A larger M alone is refused too. */
	o = (struct agent_timing_override){.miss = 4};
	assert_int_equal(agent_timing_decide(&bt, &o, &t, why, sizeof(why)), 0);
	assert_int_equal(t.ignored, AGENT_TIMING_IGNORED_FENCE);
	assert_int_equal(t.fence_after_ns, 975 * MS);
}

static void test_flags_may_make_the_agent_stricter(void **state)
{
	struct agent_lease_timing bt = box(S, 10);
	struct agent_timing_override o = {.miss = 4};
	struct agent_timing t;
	char why[160];

	/* M 4 with the box's H: F = 3 s - ceil(0.01 * 7 * 1 s) = 2.93 s. */
	assert_int_equal(agent_timing_decide(&bt, &o, &t, why, sizeof(why)), 0);
	assert_int_equal(t.ignored, 0);
	assert_true(t.overridden);
	assert_int_equal(t.fence_after_ns, 2930 * MS);
	assert_int_equal(t.heartbeat_ns, S);
	assert_int_equal(t.miss, 4);
	/* The budget stays the box's H: it is what the box's lease leaves the fence action. */
	assert_int_equal(t.fence_budget_ns, S);
	assert_safe(&t);

	/* A shorter H: heartbeats more often, and F from it. */
	o = (struct agent_timing_override){.heartbeat_ns = 200 * MS};
	assert_int_equal(agent_timing_decide(&bt, &o, &t, why, sizeof(why)), 0);
	assert_int_equal(t.heartbeat_ns, 200 * MS);
	assert_int_equal(t.fence_after_ns, 9 * 200 * MS - 38 * MS);
	assert_safe(&t);

	/* The same values as the box: taken, nothing to say. */
	o = (struct agent_timing_override){.heartbeat_ns = S, .miss = 10};
	assert_int_equal(agent_timing_decide(&bt, &o, &t, why, sizeof(why)), 0);
	assert_int_equal(t.ignored, 0);
	assert_false(t.overridden);
}

static void test_a_larger_box_rho_makes_the_agent_stricter(void **state)
{
	struct agent_lease_timing bt = box(S, 5);
	struct agent_timing t;
	char why[160];

	/* rho 2%: the box's L stays 5.1 s, so F must shrink: m = ceil(0.02 * 9 s) = 180 ms. */
	bt.skew_ppm = 20000;
	assert_int_equal(agent_timing_decide(&bt, NULL, &t, why, sizeof(why)), 0);
	assert_int_equal(t.skew_ppm, 20000);
	assert_int_equal(t.fence_after_ns, 3820 * MS);
	assert_safe(&t);
	/* A smaller one does not relax the agent's own bound. */
	bt.skew_ppm = 100;
	assert_int_equal(agent_timing_decide(&bt, NULL, &t, why, sizeof(why)), 0);
	assert_int_equal(t.skew_ppm, LEASE_SKEW_PPM);
	assert_int_equal(t.fence_after_ns, 3910 * MS);
}

static void test_a_short_box_lease_timeout_caps_the_deadline(void **state)
{
	struct agent_lease_timing bt = box(S, 5);
	struct agent_timing t;
	char why[160];

	/* A box whose L is only 4 s (another grace rule): F <= 0.99 * (4/1.01 - 1) s. */
	bt.lease_timeout_ns = 4 * S;
	assert_int_equal(agent_timing_decide(&bt, NULL, &t, why, sizeof(why)), 0);
	assert_true(t.fence_after_ns < 3910 * MS);
	assert_int_equal(t.fence_after_ns, t.fence_limit_ns);
	assert_true(llabs(t.fence_after_ns - 2930792079) <= 1);
	assert_safe(&t);
	/* One that leaves no room for an ACK before the deadline is refused. */
	bt.lease_timeout_ns = 2 * S;
	assert_int_equal(agent_timing_decide(&bt, NULL, &t, why, sizeof(why)), -EINVAL);
}

static void test_unusable_announcements_are_refused(void **state)
{
	struct agent_lease_timing bt;
	struct agent_timing t;
	char why[160];

	bt = box(S, 5);
	bt.miss = 2; /* below M 3 the derivation does not hold */
	assert_int_equal(agent_timing_decide(&bt, NULL, &t, why, sizeof(why)), -EINVAL);
	bt = box(S, 5);
	bt.heartbeat_ns = 61 * S;
	assert_int_equal(agent_timing_decide(&bt, NULL, &t, why, sizeof(why)), -EINVAL);
	bt = box(S, 5);
	bt.skew_ppm = AGENT_TIMING_SKEW_PPM_MAX + 1;
	assert_int_equal(agent_timing_decide(&bt, NULL, &t, why, sizeof(why)), -EINVAL);
	bt = box(S, 5);
	bt.lease_timeout_ns = 0; /* half an announcement */
	assert_false(agent_timing_announced(&bt));
	assert_int_equal(agent_timing_decide(&bt, NULL, &t, why, sizeof(why)), -EINVAL);
	assert_true(why[0] != '\0');
}

/* Over random boxes and random flags: whatever is decided is safe against the box's L, never
 * later than the box's own F, and an override is only ever taken when it is stricter. */
static void test_random_decisions_are_always_safe(void **state)
{
	char why[160];

	srandom(12345);
	for (int i = 0; i < 100000; i++) {
		int64_t h = LEASE_MIN_HEARTBEAT_NS +
			    random() % (LEASE_MAX_HEARTBEAT_NS - LEASE_MIN_HEARTBEAT_NS + 1);
		unsigned m = LEASE_MIN_MISS + random() % (LEASE_MAX_MISS - LEASE_MIN_MISS + 1);
		struct agent_lease_timing bt = box(h, m);
		struct agent_timing base, t;
		struct agent_timing_override o = {0};

		bt.skew_ppm = 1 + random() % AGENT_TIMING_SKEW_PPM_MAX;
		if (agent_timing_decide(&bt, NULL, &base, why, sizeof(why)))
			continue; /* a large rho with a small M leaves no room: refused */
		assert_safe(&base);
		if (random() % 2)
			o.heartbeat_ns = LEASE_MIN_HEARTBEAT_NS +
					 random() % (2 * h - LEASE_MIN_HEARTBEAT_NS + 1);
		if (random() % 2)
			o.miss = LEASE_MIN_MISS + random() % (LEASE_MAX_MISS - LEASE_MIN_MISS + 1);
		if (agent_timing_decide(&bt, &o, &t, why, sizeof(why)))
			continue;
		assert_safe(&t);
		assert_true(t.fence_after_ns <= base.fence_after_ns);
		assert_true(t.heartbeat_ns <= base.heartbeat_ns);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_box_timing_is_followed_without_flags),
		cmocka_unit_test(test_flags_cannot_make_the_agent_fence_later),
		cmocka_unit_test(test_flags_may_make_the_agent_stricter),
		cmocka_unit_test(test_a_larger_box_rho_makes_the_agent_stricter),
		cmocka_unit_test(test_a_short_box_lease_timeout_caps_the_deadline),
		cmocka_unit_test(test_unusable_announcements_are_refused),
		cmocka_unit_test(test_random_decisions_are_always_safe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
