/* Quorum with the box as witness: host losses in two- and three-host clusters, ownership
 * changes refused without quorum, wait_for_all at creation, the exact-half rule, the history. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csv-coord/quorum.h"

/* A cluster of n hosts (ids 1..n, one vote each) that have all joined. */
static void cluster(struct quorum *q, unsigned n, bool wfa)
{
	assert_int_equal(quorum_init(q, 1, wfa), 0);
	for (unsigned i = 1; i <= n; i++)
		assert_int_equal(quorum_add_host(q, i, 1, 0), 0);
	for (unsigned i = 1; i <= n; i++)
		assert_int_equal(quorum_host_joined(q, i, 10), 0);
}

static void test_two_host_cluster_survives_the_loss_of_either_host(void **state)
{
	struct quorum q;

	for (uint32_t lost = 1; lost <= 2; lost++) {
		cluster(&q, 2, true);
		assert_true(quorum_is_quorate(&q));
		assert_int_equal(quorum_host_lost(&q, lost, 100), 0);
		assert_true(quorum_is_quorate(&q));
		assert_int_equal(quorum_votes_present(&q), 2);
		assert_int_equal(quorum_votes_total(&q), 3);
		assert_true(quorum_allows_ownership_change(&q, 3 - lost));
		/* The survivor may take the lost host's disks, but not give them to it. */
		assert_false(quorum_allows_ownership_change(&q, lost));
	}
}

static void test_two_host_cluster_losing_both_hosts_is_not_quorate(void **state)
{
	struct quorum q;

	cluster(&q, 2, true);
	assert_int_equal(quorum_host_lost(&q, 1, 100), 0);
	assert_int_equal(quorum_host_lost(&q, 2, 200), 0);
	assert_false(quorum_is_quorate(&q));
	assert_false(quorum_allows_ownership_change(&q, QUORUM_NO_HOST));
}

static void test_three_host_cluster_survives_the_loss_of_one_host(void **state)
{
	struct quorum q;

	cluster(&q, 3, true);
	assert_int_equal(quorum_host_lost(&q, 2, 100), 0);
	assert_true(quorum_is_quorate(&q));
	assert_true(quorum_allows_ownership_change(&q, 1));
}

static void test_three_host_cluster_losing_two_hosts_refuses_ownership_changes(void **state)
{
	struct quorum q;

	cluster(&q, 3, true);
	assert_int_equal(quorum_host_lost(&q, 2, 100), 0);
	assert_int_equal(quorum_host_lost(&q, 3, 200), 0);
	/* 1 host + the box = 2 of 4: an exact half is not a majority. */
	assert_int_equal(quorum_votes_present(&q), 2);
	assert_int_equal(quorum_votes_needed(&q), 3);
	assert_false(quorum_is_quorate(&q));
	assert_false(quorum_allows_ownership_change(&q, 1));
	assert_false(quorum_allows_ownership_change(&q, QUORUM_NO_HOST));
	/* A host coming back restores quorum. */
	assert_int_equal(quorum_host_joined(&q, 3, 300), 0);
	assert_true(quorum_is_quorate(&q));
	assert_true(quorum_allows_ownership_change(&q, 3));
}

static void test_box_with_two_votes_lets_three_hosts_survive_losing_two(void **state)
{
	struct quorum q;

	assert_int_equal(quorum_init(&q, 2, false), 0);
	for (uint32_t i = 1; i <= 3; i++) {
		assert_int_equal(quorum_add_host(&q, i, 1, 0), 0);
		assert_int_equal(quorum_host_joined(&q, i, 0), 0);
	}
	assert_int_equal(quorum_host_lost(&q, 2, 1), 0);
	assert_int_equal(quorum_host_lost(&q, 3, 1), 0);
	assert_true(quorum_is_quorate(&q)); /* 3 of 5 */
}

static void test_wait_for_all_holds_quorum_until_every_host_has_joined(void **state)
{
	struct quorum q;
	const struct quorum_event *ev;

	assert_int_equal(quorum_init(&q, 1, true), 0);
	for (uint32_t i = 1; i <= 3; i++)
		assert_int_equal(quorum_add_host(&q, i, 1, 0), 0);
	assert_int_equal(quorum_host_joined(&q, 1, 10), 0);
	assert_int_equal(quorum_host_joined(&q, 2, 20), 0);
	/* 3 of 4 votes would be a majority, but host 3 has never joined. */
	assert_int_equal(quorum_votes_present(&q), 3);
	assert_false(quorum_is_quorate(&q));
	assert_false(quorum_allows_ownership_change(&q, 1));
	assert_int_equal(quorum_host_joined(&q, 3, 30), 0);
	assert_true(quorum_is_quorate(&q));
	ev = quorum_history_get(&q, 0);
	assert_non_null(ev);
	assert_int_equal(ev->reason, QUORUM_R_WAIT_FOR_ALL);
	assert_int_equal(ev->host_id, 3);
	/* Once met it stays met: losing a host afterwards is an ordinary loss. */
	assert_int_equal(quorum_host_lost(&q, 3, 40), 0);
	assert_true(quorum_is_quorate(&q));
}

static void test_without_wait_for_all_a_majority_is_enough_at_start(void **state)
{
	struct quorum q;

	assert_int_equal(quorum_init(&q, 1, false), 0);
	for (uint32_t i = 1; i <= 3; i++)
		assert_int_equal(quorum_add_host(&q, i, 1, 0), 0);
	assert_false(quorum_is_quorate(&q));
	assert_int_equal(quorum_host_joined(&q, 1, 10), 0);
	assert_false(quorum_is_quorate(&q));
	assert_int_equal(quorum_host_joined(&q, 2, 20), 0);
	assert_true(quorum_is_quorate(&q));
}

static void test_box_alone_is_never_quorate(void **state)
{
	struct quorum q;

	assert_int_equal(quorum_init(&q, 1, false), 0);
	assert_false(quorum_is_quorate(&q));
	assert_int_equal(quorum_add_host(&q, 1, 1, 0), 0);
	assert_int_equal(quorum_host_joined(&q, 1, 0), 0);
	assert_true(quorum_is_quorate(&q));
	assert_int_equal(quorum_remove_host(&q, 1, 5), 0);
	assert_false(quorum_is_quorate(&q));
}

static void test_removing_lost_hosts_restores_quorum(void **state)
{
	struct quorum q;
	const struct quorum_event *ev;

	cluster(&q, 3, true);
	assert_int_equal(quorum_host_lost(&q, 2, 100), 0);
	assert_int_equal(quorum_host_lost(&q, 3, 200), 0);
	assert_false(quorum_is_quorate(&q));
	assert_int_equal(quorum_remove_host(&q, 3, 300), 0);
	assert_true(quorum_is_quorate(&q)); /* 2 of 3 */
	ev = quorum_history_get(&q, quorum_history_len(&q) - 1);
	assert_int_equal(ev->reason, QUORUM_R_HOST_REMOVED);
	assert_int_equal(ev->time_ns, 300);
	assert_int_equal(ev->present, 2);
	assert_int_equal(ev->total, 3);
}

static void test_history_records_transitions_only_oldest_first(void **state)
{
	struct quorum q;
	const struct quorum_event *ev;

	cluster(&q, 3, true);				     /* gained at 10 */
	assert_int_equal(quorum_host_lost(&q, 1, 100), 0);   /* still quorate: no event */
	assert_int_equal(quorum_host_lost(&q, 2, 200), 0);   /* lost */
	assert_int_equal(quorum_host_joined(&q, 2, 300), 0); /* gained */
	assert_int_equal(quorum_history_len(&q), 3);
	ev = quorum_history_get(&q, 0);
	assert_true(ev->quorate);
	assert_int_equal(ev->time_ns, 10);
	ev = quorum_history_get(&q, 1);
	assert_false(ev->quorate);
	assert_int_equal(ev->time_ns, 200);
	assert_int_equal(ev->reason, QUORUM_R_LEASE_LOST);
	assert_int_equal(ev->host_id, 2);
	assert_int_equal(ev->present, 2);
	assert_int_equal(ev->total, 4);
	ev = quorum_history_get(&q, 2);
	assert_true(ev->quorate);
	assert_int_equal(ev->reason, QUORUM_R_HOST_JOINED);
	assert_null(quorum_history_get(&q, 3));
}

static void test_history_ring_keeps_the_latest_events(void **state)
{
	struct quorum q;
	unsigned flips = 2 * QUORUM_HISTORY + 5;

	assert_int_equal(quorum_init(&q, 1, false), 0);
	assert_int_equal(quorum_add_host(&q, 1, 1, 0), 0);
	for (unsigned i = 0; i < flips; i++) {
		if (i % 2 == 0)
			assert_int_equal(quorum_host_joined(&q, 1, 1000 + i), 0);
		else
			assert_int_equal(quorum_host_lost(&q, 1, 1000 + i), 0);
	}
	assert_int_equal(quorum_history_len(&q), QUORUM_HISTORY);
	for (unsigned i = 0; i < QUORUM_HISTORY; i++) {
		const struct quorum_event *ev = quorum_history_get(&q, i);
		unsigned k = flips - QUORUM_HISTORY + i;

		assert_int_equal(ev->time_ns, 1000 + k);
		assert_int_equal(ev->quorate, k % 2 == 0);
	}
	assert_null(quorum_history_get(&q, QUORUM_HISTORY));
}

static void test_bad_arguments_are_refused(void **state)
{
	struct quorum q;

	assert_int_equal(quorum_init(&q, 0, true), -EINVAL);
	assert_int_equal(quorum_init(&q, QUORUM_MAX_VOTES + 1, true), -EINVAL);
	assert_int_equal(quorum_init(&q, 1, true), 0);
	assert_int_equal(quorum_add_host(&q, QUORUM_NO_HOST, 1, 0), -EINVAL);
	assert_int_equal(quorum_add_host(&q, 1, 0, 0), -EINVAL);
	assert_int_equal(quorum_add_host(&q, 1, 1, 0), 0);
	assert_int_equal(quorum_add_host(&q, 1, 1, 0), -EEXIST);
	assert_int_equal(quorum_host_joined(&q, 9, 0), -ENOENT);
	assert_int_equal(quorum_host_lost(&q, 9, 0), -ENOENT);
	assert_int_equal(quorum_remove_host(&q, 9, 0), -ENOENT);
	for (uint32_t i = 2; i <= QUORUM_MAX_HOSTS; i++)
		assert_int_equal(quorum_add_host(&q, i, 1, 0), 0);
	assert_int_equal(quorum_add_host(&q, QUORUM_MAX_HOSTS + 1, 1, 0), -ENOSPC);
	assert_false(quorum_allows_ownership_change(&q, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_host_cluster_survives_the_loss_of_either_host),
		cmocka_unit_test(test_two_host_cluster_losing_both_hosts_is_not_quorate),
		cmocka_unit_test(test_three_host_cluster_survives_the_loss_of_one_host),
		cmocka_unit_test(
			test_three_host_cluster_losing_two_hosts_refuses_ownership_changes),
		cmocka_unit_test(test_box_with_two_votes_lets_three_hosts_survive_losing_two),
		cmocka_unit_test(test_wait_for_all_holds_quorum_until_every_host_has_joined),
		cmocka_unit_test(test_without_wait_for_all_a_majority_is_enough_at_start),
		cmocka_unit_test(test_box_alone_is_never_quorate),
		cmocka_unit_test(test_removing_lost_hosts_restores_quorum),
		cmocka_unit_test(test_history_records_transitions_only_oldest_first),
		cmocka_unit_test(test_history_ring_keeps_the_latest_events),
		cmocka_unit_test(test_bad_arguments_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
