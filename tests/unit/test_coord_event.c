/* The coordinator's event ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "csv-coord/coord_event.h"

static struct coord_events ev;

static void test_events_come_back_oldest_first(void **state)
{
	coord_events_init(&ev);
	assert_null(coord_events_get(&ev, 0));
	coord_events_add(&ev, 10, 100, COORD_EV_JOINED, "h1", "a");
	coord_events_add(&ev, 20, 200, COORD_EV_LOST, NULL, "b");
	assert_int_equal(coord_events_len(&ev), 2);
	assert_string_equal(coord_events_get(&ev, 0)->text, "a");
	assert_string_equal(coord_events_get(&ev, 0)->host, "h1");
	assert_string_equal(coord_events_get(&ev, 1)->host, "");
	assert_int_equal(coord_events_get(&ev, 1)->seq, 2);
	assert_null(coord_events_get(&ev, 2));
}

static void test_full_ring_drops_the_oldest(void **state)
{
	char t[16];
	unsigned i;

	coord_events_init(&ev);
	for (i = 0; i < COORD_EVENTS_MAX + 5; i++) {
		snprintf(t, sizeof(t), "%u", i);
		coord_events_add(&ev, i, i, COORD_EV_FENCED, "h", t);
	}
	assert_int_equal(coord_events_len(&ev), COORD_EVENTS_MAX);
	assert_string_equal(coord_events_get(&ev, 0)->text, "5");
	assert_int_equal(coord_events_get(&ev, 0)->seq, 6);
	snprintf(t, sizeof(t), "%u", COORD_EVENTS_MAX + 4);
	assert_string_equal(coord_events_get(&ev, COORD_EVENTS_MAX - 1)->text, t);
}

static void test_long_text_is_cut_not_overrun(void **state)
{
	char big[COORD_EVENT_TEXT * 2];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	coord_events_init(&ev);
	coord_events_add(&ev, 0, 0, COORD_EV_REFUSED, big, big);
	assert_int_equal(strlen(coord_events_get(&ev, 0)->text), COORD_EVENT_TEXT - 1);
	assert_int_equal(strlen(coord_events_get(&ev, 0)->host), COORD_EVENT_HOSTLEN - 1);
}

static void test_kind_names(void **state)
{
	assert_string_equal(coord_event_kind_name(COORD_EV_QUORUM_LOST), "quorum_lost");
	assert_string_equal(coord_event_kind_name(COORD_EV_REJOINED), "rejoined");
	assert_string_equal(coord_event_kind_name((enum coord_event_kind)999), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_come_back_oldest_first),
		cmocka_unit_test(test_full_ring_drops_the_oldest),
		cmocka_unit_test(test_long_text_is_cut_not_overrun),
		cmocka_unit_test(test_kind_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
