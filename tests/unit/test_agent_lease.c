/* The agent's lease decisions over a fake clock: when it sends, when it fences itself, and
 * that a resumed (SIGSTOPped) agent fences before it believes any ACK. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent/agent_lease.h"

#define MS LEASE_NS_PER_MS
#define S  LEASE_NS_PER_S

static struct lease_config lcfg(void)
{
	struct lease_config c;

	lease_config_default(&c); /* H = 1 s, M = 5: F = 3.91 s, L = 5.1 s */
	return c;
}

/* The timing a box with the defaults announces, without overrides. */
static struct agent_timing cfg(void)
{
	struct lease_config c = lcfg();
	struct agent_timing t;

	agent_timing_from_config(&c, &t);
	return t;
}

/* Begin at t0 (the REJOIN/JOIN send time), and have one heartbeat sent at `send` acked. */
static void start(struct agent_lease_ctl *l, int64_t t0)
{
	struct agent_timing c = cfg();

	*l = (struct agent_lease_ctl){0};
	agent_lease_begin(l, &c, 3, t0);
}

static uint64_t send_at(struct agent_lease_ctl *l, int64_t now)
{
	uint64_t seq, lease_ns;

	assert_int_equal(agent_lease_poll(l, now, true), AGENT_LEASE_SEND);
	assert_int_equal(agent_lease_sent(l, now, &seq, &lease_ns), 0);
	return seq;
}

static void test_first_heartbeat_is_due_at_once_then_every_h(void **state)
{
	struct agent_lease_ctl l;

	start(&l, 0);
	send_at(&l, 0);
	assert_int_equal(agent_lease_poll(&l, 999 * MS, true), AGENT_LEASE_IDLE);
	assert_int_equal(agent_lease_poll(&l, 1 * S, true), AGENT_LEASE_SEND);
}

static void test_no_heartbeat_while_disconnected(void **state)
{
	struct agent_lease_ctl l;

	start(&l, 0);
	assert_int_equal(agent_lease_poll(&l, 10 * MS, false), AGENT_LEASE_IDLE);
	assert_int_equal(agent_lease_next_wake(&l, 10 * MS, false), agent_lease_deadline(&l));
}

static void test_deadline_counts_from_the_send_time_of_the_acked_heartbeat(void **state)
{
	struct agent_lease_ctl l;
	bool first;
	uint64_t seq;

	start(&l, 0);
	seq = send_at(&l, 2 * S);
	/* The ACK arrives 1.5 s after the send: the deadline still counts from the send. */
	assert_int_equal(agent_lease_ack(&l, 3, seq, false, 3500 * MS, &first), 0);
	assert_true(first);
	assert_int_equal(agent_lease_deadline(&l), 2 * S + lease_agent_fence_after_ns(&l.la.cfg));
	assert_int_equal(agent_lease_deadline(&l), 2 * S + 3910 * MS);
}

static void test_lease_ok_is_reported_once_per_lease(void **state)
{
	struct agent_lease_ctl l;
	bool first;
	uint64_t s1, s2;

	start(&l, 0);
	s1 = send_at(&l, 0);
	s2 = send_at(&l, 1 * S);
	assert_int_equal(agent_lease_ack(&l, 3, s1, false, 10 * MS, &first), 0);
	assert_true(first);
	assert_int_equal(agent_lease_ack(&l, 3, s2, false, 1010 * MS, &first), 0);
	assert_false(first);
}

static void test_self_fence_at_the_deadline_and_only_once(void **state)
{
	struct agent_lease_ctl l;
	int64_t d;

	start(&l, 0);
	d = agent_lease_deadline(&l);
	assert_int_equal(agent_lease_poll(&l, d - 1, false), AGENT_LEASE_IDLE);
	assert_int_equal(agent_lease_poll(&l, d, false), AGENT_LEASE_FENCE);
	assert_true(agent_lease_fenced(&l));
	assert_true(agent_lease_fence_pending(&l));
	assert_int_equal(agent_lease_poll(&l, d + 1, true), AGENT_LEASE_IDLE);
}

static void test_fence_runs_before_the_box_can_declare_the_host_lost(void **state)
{
	struct agent_lease_ctl l;
	struct lease_config c = lcfg();
	int64_t d;

	start(&l, 0);
	d = agent_lease_deadline(&l);
	/* The fence must be done (deadline + K) before the earliest moment the box may declare,
	 * and that moment lies before the box's own L. */
	assert_true(d + lease_fence_budget_ns(&c) < agent_lease_box_expiry(&l));
	assert_true(agent_lease_box_expiry(&l) <= lease_box_timeout_ns(&c));
}

static void test_resumed_after_sigstop_fences_before_taking_the_queued_ack(void **state)
{
	struct agent_lease_ctl l;
	bool first;
	uint64_t seq;
	int64_t resume;

	start(&l, 0);
	seq = send_at(&l, 0);
	/* SIGSTOP at 0.5 s; the box's ACK waits in the socket; SIGCONT at 12 s. The agent
	 * checks its clock first: fence. The queued ACK, read afterwards, cannot undo it. */
	resume = 12 * S;
	assert_int_equal(agent_lease_poll(&l, resume, true), AGENT_LEASE_FENCE);
	assert_int_equal(agent_lease_ack(&l, 3, seq, false, resume, &first), -EPERM);
	assert_true(agent_lease_fenced(&l));
	assert_int_equal(agent_lease_sent(&l, resume, &seq, &(uint64_t){0}), -EPERM);
}

static void test_resumed_before_the_deadline_keeps_the_lease(void **state)
{
	struct agent_lease_ctl l;
	bool first;
	uint64_t seq;

	start(&l, 0);
	seq = send_at(&l, 0);
	/* Stopped for 3 s only: the deadline (3.91 s) has not passed. */
	assert_int_equal(agent_lease_poll(&l, 3 * S, true), AGENT_LEASE_SEND);
	assert_int_equal(agent_lease_ack(&l, 3, seq, false, 3 * S, &first), 0);
	assert_false(agent_lease_fenced(&l));
}

static void test_box_fenced_flag_fences_and_old_epoch_notice_does_not(void **state)
{
	struct agent_lease_ctl l;
	bool first;
	uint64_t seq;

	start(&l, 0);
	assert_false(agent_lease_box_fenced(&l, 2));
	assert_false(agent_lease_fenced(&l));
	seq = send_at(&l, 0);
	assert_int_equal(agent_lease_ack(&l, 3, seq, true, 5 * MS, &first), -EPERM);
	assert_true(agent_lease_fenced(&l));
	assert_true(agent_lease_fence_pending(&l));
}

static void test_stale_acks_never_move_the_deadline_back(void **state)
{
	struct agent_lease_ctl l;
	bool first;
	uint64_t s1, s2;
	int64_t d;

	start(&l, 0);
	s1 = send_at(&l, 0);
	s2 = send_at(&l, 1 * S);
	assert_int_equal(agent_lease_ack(&l, 3, s2, false, 1100 * MS, &first), 0);
	d = agent_lease_deadline(&l);
	assert_int_equal(agent_lease_ack(&l, 3, s1, false, 1200 * MS, &first), -ESTALE);
	assert_int_equal(agent_lease_ack(&l, 4, s2, false, 1200 * MS, &first), -ESTALE);
	assert_int_equal(agent_lease_ack(&l, 3, 99, false, 1200 * MS, &first), -ESTALE);
	assert_int_equal(agent_lease_deadline(&l), d);
}

static void test_fence_done_is_per_epoch_and_a_rejoin_starts_fresh(void **state)
{
	struct agent_lease_ctl l;
	struct agent_timing c = cfg();
	int64_t d;

	start(&l, 0);
	d = agent_lease_deadline(&l);
	assert_int_equal(agent_lease_poll(&l, d, false), AGENT_LEASE_FENCE);
	agent_lease_fence_done(&l);
	assert_false(agent_lease_fence_pending(&l));
	/* The box later says FENCED for the same epoch: no second fence action. */
	assert_true(agent_lease_box_fenced(&l, 3));
	assert_false(agent_lease_fence_pending(&l));
	/* Rejoined under 4 from a REJOIN sent at 20 s: not fenced, deadline from 20 s. */
	agent_lease_begin(&l, &c, 4, 20 * S);
	assert_false(agent_lease_fenced(&l));
	assert_int_equal(agent_lease_deadline(&l), 20 * S + 3910 * MS);
	assert_int_equal(agent_lease_poll(&l, 20 * S, true), AGENT_LEASE_SEND);
}

static void test_restart_without_a_hint_gives_one_heartbeat_interval(void **state)
{
	struct agent_timing c = cfg();
	struct agent_lease_ctl l = {0};
	int64_t now = 100 * S;

	agent_lease_begin(&l, &c, 3, agent_lease_resume_base(&c, false, 0, now));
	assert_int_equal(agent_lease_deadline(&l), now + c.heartbeat_ns);
}

static void test_restart_with_an_old_hint_fences_at_once(void **state)
{
	struct agent_timing c = cfg();
	struct agent_lease_ctl l = {0};
	int64_t now = 100 * S;

	agent_lease_begin(&l, &c, 3, agent_lease_resume_base(&c, true, 90 * S, now));
	assert_int_equal(agent_lease_poll(&l, now, true), AGENT_LEASE_FENCE);
}

static void test_restart_with_a_recent_hint_keeps_its_deadline(void **state)
{
	struct agent_timing c = cfg();
	struct agent_lease_ctl l = {0};
	int64_t now = 100 * S;

	agent_lease_begin(&l, &c, 3, agent_lease_resume_base(&c, true, 99 * S, now));
	assert_int_equal(agent_lease_deadline(&l), 99 * S + 3910 * MS);
	assert_int_equal(agent_lease_poll(&l, now, true), AGENT_LEASE_SEND);
}

static void test_watchdog_timeout_never_outlasts_the_deadline(void **state)
{
	struct agent_lease_ctl l;
	int64_t now;

	start(&l, 0);
	assert_int_equal(agent_lease_watchdog_timeout_s(&l, 0), 3);
	assert_int_equal(agent_lease_watchdog_timeout_s(&l, 2 * S), 1);
	assert_int_equal(agent_lease_watchdog_timeout_s(&l, 3 * S), 0);
	for (now = 0; now < agent_lease_deadline(&l); now += 10 * MS)
		assert_true(now + (int64_t)agent_lease_watchdog_timeout_s(&l, now) * S <=
			    agent_lease_deadline(&l));
	assert_int_equal(agent_lease_poll(&l, 4 * S, false), AGENT_LEASE_FENCE);
	assert_int_equal(agent_lease_watchdog_timeout_s(&l, 4 * S), 0);
}

static void test_heartbeat_carries_the_lease_left(void **state)
{
	struct agent_lease_ctl l;
	uint64_t seq, lease_ns;

	start(&l, 0);
	assert_int_equal(agent_lease_sent(&l, 1 * S, &seq, &lease_ns), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(lease_ns, 2910 * MS);
}

static void test_late_wakeup_sends_one_heartbeat_not_a_burst(void **state)
{
	struct agent_lease_ctl l;

	start(&l, 0);
	send_at(&l, 0);
	send_at(&l, 2500 * MS);
	assert_int_equal(agent_lease_poll(&l, 2600 * MS, true), AGENT_LEASE_IDLE);
	assert_int_equal(agent_lease_next_wake(&l, 2600 * MS, true), 3500 * MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_heartbeat_is_due_at_once_then_every_h),
		cmocka_unit_test(test_no_heartbeat_while_disconnected),
		cmocka_unit_test(test_deadline_counts_from_the_send_time_of_the_acked_heartbeat),
		cmocka_unit_test(test_lease_ok_is_reported_once_per_lease),
		cmocka_unit_test(test_self_fence_at_the_deadline_and_only_once),
		cmocka_unit_test(test_fence_runs_before_the_box_can_declare_the_host_lost),
		cmocka_unit_test(test_resumed_after_sigstop_fences_before_taking_the_queued_ack),
		cmocka_unit_test(test_resumed_before_the_deadline_keeps_the_lease),
		cmocka_unit_test(test_box_fenced_flag_fences_and_old_epoch_notice_does_not),
		cmocka_unit_test(test_stale_acks_never_move_the_deadline_back),
		cmocka_unit_test(test_fence_done_is_per_epoch_and_a_rejoin_starts_fresh),
		cmocka_unit_test(test_restart_without_a_hint_gives_one_heartbeat_interval),
		cmocka_unit_test(test_restart_with_an_old_hint_fences_at_once),
		cmocka_unit_test(test_restart_with_a_recent_hint_keeps_its_deadline),
		cmocka_unit_test(test_watchdog_timeout_never_outlasts_the_deadline),
		cmocka_unit_test(test_heartbeat_carries_the_lease_left),
		cmocka_unit_test(test_late_wakeup_sends_one_heartbeat_not_a_burst),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
