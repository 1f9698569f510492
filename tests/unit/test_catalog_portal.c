/* Tests for csv-coord/catalog_portal.c (preferred portals: parsing, canonical text, matching
 * a connection's local address) and their storage in the catalog (catalog_paths.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "csv-coord/catalog.h"
#include "csv-coord/catalog_portal.h"

static void canon(const char *spec, const char *want)
{
	struct catalog_portal p;
	char buf[CATALOG_PORTAL_MAX];

	assert_int_equal(catalog_portal_parse(spec, &p), 0);
	catalog_portal_format(&p, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_parse_and_canonical_text(void **state)
{
	(void)state;
	canon("10.0.0.5:3260", "10.0.0.5:3260");
	canon("10.0.0.5", "10.0.0.5");
	canon("10.0.0.0/24", "10.0.0.0/24");
	canon("10.0.0.5/32", "10.0.0.5");
	canon("[FD00::0005]:3261", "[fd00::5]:3261");
	canon("fd00:0::5", "fd00::5");
	canon("fd00::/64", "fd00::/64");
	canon("0.0.0.0/0", "0.0.0.0/0");
}

static void test_parse_refuses_what_is_not_a_portal(void **state)
{
	static const char *const bad[] = {
		"",
		"host.example:3260",
		"10.0.0.5:0",
		"10.0.0.5:65536",
		"10.0.0.5:",
		"10.0.0.0/33",
		"10.0.0.1/24",
		"fd00::5:3260x",
		"[fd00::5]",
		"[10.0.0.5]:3260",
		"fd00::/129",
		"10.0.0.0/-1",
		"10.0.0.5:+1",
		"1.2.3.4/ 8",
		"10.0.0.5:3260:1",
		NULL,
	};
	struct catalog_portal p;

	(void)state;
	for (unsigned i = 0; bad[i]; i++)
		if (catalog_portal_parse(bad[i], &p) != -EINVAL)
			fail_msg("'%s' was taken", bad[i]);
	assert_int_equal(catalog_portal_parse(NULL, &p), -EINVAL);
}

static bool match(const char *spec, const char *local)
{
	struct catalog_portal p;

	assert_int_equal(catalog_portal_parse(spec, &p), 0);
	return catalog_portal_match(&p, local);
}

static void test_match(void **state)
{
	(void)state;
	assert_true(match("127.0.0.1:3260", "127.0.0.1:3260"));
	assert_false(match("127.0.0.1:3260", "127.0.0.1:3261"));
	assert_false(match("127.0.0.1:3260", "127.0.0.2:3260"));
	assert_true(match("127.0.0.1", "127.0.0.1:4000"));
	assert_true(match("10.1.2.0/24", "10.1.2.200:3260"));
	assert_false(match("10.1.2.0/24", "10.1.3.1:3260"));
	assert_true(match("10.0.0.0/15", "10.1.255.1:3260"));
	assert_true(match("10.0.0.0/9", "10.127.0.1:1"));
	assert_false(match("10.0.0.0/9", "10.128.0.1:1"));
	assert_true(match("0.0.0.0/0", "192.0.2.1:3260"));
	assert_true(match("[fd00::5]:3260", "[fd00::5]:3260"));
	assert_false(match("[fd00::5]:3260", "[fd00::6]:3260"));
	assert_true(match("fd00::/64", "[fd00::1234]:3260"));
	assert_false(match("fd00::/64", "[fd00:0:0:1::1]:3260"));
	/* A dual-stack socket's IPv4-mapped address is the IPv4 address. */
	assert_true(match("10.1.2.0/24", "[::ffff:10.1.2.3]:3260"));
	/* The families never match each other, and garbage matches nothing. */
	assert_false(match("0.0.0.0/0", "[fd00::1]:3260"));
	assert_false(match("::/0", "10.0.0.1:3260"));
	assert_false(match("0.0.0.0/0", "?"));
	assert_false(match("0.0.0.0/0", "10.0.0.1"));
}

/* Storage: replaced whole, canonical, refused without quorum or with a bad spec. */
static void test_catalog_stores_portals(void **state)
{
	char dir[] = "/tmp/hf-portal-XXXXXX", err[CATALOG_ERR_MAX], out[4][64], cmd[64];
	const char *two[] = {"10.0.0.0/24", "[FD00::5]:3260"};
	const char *badl[] = {"10.0.0.5", "nope"};
	struct catalog *cat;
	bool fenced, np;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(catalog_open(&cat, dir, NULL, err, sizeof(err)), 0);
	assert_int_equal(catalog_host_portals(cat, 3, out, 4), 0);
	assert_int_equal(catalog_host_set_portals(cat, 3, two, 2, false, err, sizeof(err)), -EPERM);
	assert_int_equal(catalog_host_set_portals(cat, 3, two, 2, true, err, sizeof(err)), 0);
	assert_int_equal(catalog_host_portals(cat, 3, out, 4), 2);
	assert_string_equal(out[0], "10.0.0.0/24");
	assert_string_equal(out[1], "[fd00::5]:3260");
	assert_int_equal(catalog_host_set_portals(cat, 3, badl, 2, true, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "'nope'"));
	assert_int_equal(catalog_host_portals(cat, 3, out, 4), 2); /* nothing lost */
	assert_int_equal(catalog_host_set_portals(cat, 3, badl, 1, true, err, sizeof(err)), 0);
	assert_int_equal(catalog_host_portals(cat, 3, out, 4), 1);
	assert_string_equal(out[0], "10.0.0.5");
	assert_int_equal(catalog_host_portals(cat, 4, out, 4), 0);
	/* The recorded path state reads back. */
	assert_int_equal(catalog_host_path(cat, 3, &fenced, &np), 0);
	assert_false(fenced || np);
	assert_int_equal(catalog_host_set_path(cat, 3, false, true, err, sizeof(err)), 0);
	assert_int_equal(catalog_host_path(cat, 3, &fenced, &np), 0);
	assert_false(fenced);
	assert_true(np);
	/* Durable: a reopen finds them. */
	catalog_close(cat);
	assert_int_equal(catalog_open(&cat, dir, NULL, err, sizeof(err)), 0);
	assert_int_equal(catalog_host_portals(cat, 3, out, 4), 1);
	assert_int_equal(catalog_host_set_portals(cat, 3, NULL, 0, true, err, sizeof(err)), 0);
	assert_int_equal(catalog_host_portals(cat, 3, out, 4), 0);
	catalog_close(cat);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_canonical_text),
		cmocka_unit_test(test_parse_refuses_what_is_not_a_portal),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_catalog_stores_portals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
