/* The coordinator's host table: lookups, the file format and its refusals. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "csv-coord/coord_hosts.h"

static struct coord_host *enrol(struct coord_hosts *t, const char *name, uint8_t fpbyte)
{
	struct coord_host *h;

	assert_int_equal(coord_hosts_add(t, name, 1, &h), 0);
	memset(h->fp, fpbyte, sizeof(h->fp));
	snprintf(h->iqn[0], sizeof(h->iqn[0]), "iqn.2026-11.org.test:%s", name);
	h->n_iqn = 1;
	h->enrolled = true;
	return h;
}

static void test_ids_are_fresh_and_names_unique(void **state)
{
	struct coord_hosts t;
	struct coord_host *h;

	coord_hosts_init(&t);
	assert_int_equal(enrol(&t, "h1", 1)->id, 1);
	assert_int_equal(enrol(&t, "h2", 2)->id, 2);
	assert_int_equal(coord_hosts_add(&t, "h1", 1, &h), -EEXIST);
	assert_int_equal(coord_hosts_add(&t, "bad,name", 1, &h), -EINVAL);
	assert_int_equal(coord_hosts_add(&t, "h3", 0, &h), -EINVAL);
}

static void test_removed_host_is_not_found_by_fingerprint(void **state)
{
	struct coord_hosts t;
	uint8_t fp[TLS_FINGERPRINT_LEN];
	struct coord_host *h;

	coord_hosts_init(&t);
	h = enrol(&t, "h1", 7);
	memset(fp, 7, sizeof(fp));
	assert_ptr_equal(coord_hosts_by_fp(&t, fp), h);
	h->removed = true;
	assert_null(coord_hosts_by_fp(&t, fp));
	assert_ptr_equal(coord_hosts_by_name(&t, "h1"), h);
}

static void test_never_enrolled_host_is_not_found_by_zero_fingerprint(void **state)
{
	struct coord_hosts t;
	uint8_t zero[TLS_FINGERPRINT_LEN] = {0};
	struct coord_host *h;

	coord_hosts_init(&t);
	assert_int_equal(coord_hosts_add(&t, "h1", 1, &h), 0);
	assert_null(coord_hosts_by_fp(&t, zero));
}

static void test_dump_and_parse_keep_membership_and_epochs(void **state)
{
	struct coord_hosts t, u;
	struct coord_host *h;
	char *text;

	coord_hosts_init(&t);
	h = enrol(&t, "h1", 1);
	h->epoch = 7;
	h->fenced = true;
	h->started = true;
	h->lease.state = LEASE_LIVE; /* runtime: not persisted */
	h = enrol(&t, "h2", 2);
	h->removed = true;
	h->votes = 3;
	assert_int_equal(coord_hosts_dump(&t, &text), 0);
	assert_int_equal(coord_hosts_parse(&u, text, strlen(text)), 0);
	free(text);
	assert_int_equal(u.n, 2);
	assert_int_equal(u.next_id, 3);
	assert_int_equal(u.h[0].epoch, 7);
	assert_true(u.h[0].fenced);
	assert_true(u.h[0].enrolled);
	assert_int_equal(u.h[0].lease.state, LEASE_JOINED);
	assert_string_equal(u.h[0].iqn[0], "iqn.2026-11.org.test:h1");
	assert_memory_equal(u.h[0].fp, t.h[0].fp, TLS_FINGERPRINT_LEN);
	assert_true(u.h[1].removed);
	assert_int_equal(u.h[1].votes, 3);
	/* Whether the host's agent ever ran (its lease starts with its first heartbeat). */
	assert_true(u.h[0].started);
	assert_false(u.h[1].started);
}

/* A table written before "started" existed may hold running hosts: they count as started,
 * so a restarted box grants them a lease and fences one that does not come back. */
static void test_a_table_without_started_counts_hosts_as_started(void **state)
{
	struct coord_hosts t, u;
	json_t *root;
	char *text;

	coord_hosts_init(&t);
	enrol(&t, "h1", 1);
	assert_int_equal(coord_hosts_dump(&t, &text), 0);
	root = json_loads(text, 0, NULL);
	free(text);
	assert_non_null(root);
	assert_int_equal(
		json_object_del(json_array_get(json_object_get(root, "hosts"), 0), "started"), 0);
	text = json_dumps(root, 0);
	json_decref(root);
	assert_null(strstr(text, "started"));
	assert_int_equal(coord_hosts_parse(&u, text, strlen(text)), 0);
	assert_true(u.h[0].started);
	free(text);
}

static void test_parse_refuses_damaged_tables(void **state)
{
	static const char *const bad[] = {
		"",
		"{",
		"{\"version\":2,\"next_id\":1,\"hosts\":[]}",
		"{\"version\":1,\"next_id\":0,\"hosts\":[]}",
		/* id not below next_id */
		"{\"version\":1,\"next_id\":1,\"hosts\":[{\"id\":1,\"name\":\"h1\",\"fingerprint\":"
		"\"0101010101010101010101010101010101010101010101010101010101010101\",\"iqns\":["
		"\"iqn.2026-11.org.test:h1\"],\"epoch\":1,\"enrolled\":true,\"fenced\":false,"
		"\"removed\":false,\"votes\":1}]}",
		/* fingerprint not hex */
		"{\"version\":1,\"next_id\":2,\"hosts\":[{\"id\":1,\"name\":\"h1\",\"fingerprint\":"
		"\"zz\",\"iqns\":[\"iqn.2026-11.org.test:h1\"],\"epoch\":1,\"enrolled\":true,"
		"\"fenced\":false,\"removed\":false,\"votes\":1}]}",
		/* enrolled without an initiator */
		"{\"version\":1,\"next_id\":2,\"hosts\":[{\"id\":1,\"name\":\"h1\",\"fingerprint\":"
		"\"0101010101010101010101010101010101010101010101010101010101010101\",\"iqns\":[],"
		"\"epoch\":1,\"enrolled\":true,\"fenced\":false,\"removed\":false,\"votes\":1}]}",
		/* epoch beyond the target's 32 bits */
		"{\"version\":1,\"next_id\":2,\"hosts\":[{\"id\":1,\"name\":\"h1\",\"fingerprint\":"
		"\"0101010101010101010101010101010101010101010101010101010101010101\",\"iqns\":["
		"\"iqn.2026-11.org.test:h1\"],\"epoch\":4294967296,\"enrolled\":true,\"fenced\":"
		"false,"
		"\"removed\":false,\"votes\":1}]}",
	};
	struct coord_hosts t;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(coord_hosts_parse(&t, bad[i], strlen(bad[i])), -EBADMSG);
		assert_int_equal(t.n, 0);
	}
}

static void test_parse_refuses_two_live_hosts_with_one_certificate(void **state)
{
	struct coord_hosts t, u;
	char *text;

	coord_hosts_init(&t);
	enrol(&t, "h1", 5);
	enrol(&t, "h2", 5);
	assert_int_equal(coord_hosts_dump(&t, &text), 0);
	assert_int_equal(coord_hosts_parse(&u, text, strlen(text)), -EBADMSG);
	free(text);
	t.h[0].removed = true;
	assert_int_equal(coord_hosts_dump(&t, &text), 0);
	assert_int_equal(coord_hosts_parse(&u, text, strlen(text)), 0);
	free(text);
}

static void test_save_then_load_round_trips_with_mode_0600(void **state)
{
	char dir[] = "/tmp/test_coord_hosts.XXXXXX", path[64];
	struct coord_hosts t, u;
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/hosts.json", dir);
	assert_int_equal(coord_hosts_load(&u, path), -ENOENT);
	coord_hosts_init(&t);
	enrol(&t, "h1", 9)->epoch = 4;
	assert_int_equal(coord_hosts_save(&t, path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(coord_hosts_load(&u, path), 0);
	assert_int_equal(u.n, 1);
	assert_int_equal(u.h[0].epoch, 4);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_are_fresh_and_names_unique),
		cmocka_unit_test(test_removed_host_is_not_found_by_fingerprint),
		cmocka_unit_test(test_never_enrolled_host_is_not_found_by_zero_fingerprint),
		cmocka_unit_test(test_dump_and_parse_keep_membership_and_epochs),
		cmocka_unit_test(test_a_table_without_started_counts_hosts_as_started),
		cmocka_unit_test(test_parse_refuses_damaged_tables),
		cmocka_unit_test(test_parse_refuses_two_live_hosts_with_one_certificate),
		cmocka_unit_test(test_save_then_load_round_trips_with_mode_0600),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
