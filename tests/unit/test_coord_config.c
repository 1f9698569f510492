/* The cluster section of the configuration (lib/config.c): defaults, checks, file:line. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/config.h"

#define HEAD                                                                                       \
	"portals = ( { name = \"lo\"; address = \"127.0.0.1\"; port = 3260; } );\n"                \
	"backstores = ( { name = \"d0\"; type = \"memory\"; size = \"1M\"; } );\n"                 \
	"targets = ( { iqn = \"iqn.2026-11.org.holdfast:t\"; luns = ( { id = 0; backstore = "      \
	"\"d0\"; } ); } );\n"

static char err[512];

static int load(const char *text, struct hf_config **cfg)
{
	return hf_config_load_string(text, "t.conf", cfg, err, sizeof(err));
}

static void test_no_cluster_section_means_no_coordinator(void **state)
{
	struct hf_config *cfg;

	assert_int_equal(load(HEAD, &cfg), 0);
	assert_false(cfg->cluster.enabled);
	hf_config_free(cfg);
	assert_int_equal(load(hf_config_default_text, &cfg), 0);
	assert_false(cfg->cluster.enabled);
	hf_config_free(cfg);
}

static void test_empty_cluster_section_takes_the_defaults(void **state)
{
	struct hf_config *cfg;

	assert_int_equal(load(HEAD "cluster = { };\n", &cfg), 0);
	assert_true(cfg->cluster.enabled);
	assert_string_equal(cfg->cluster.address, "127.0.0.1");
	assert_int_equal(cfg->cluster.heartbeat_ms, 1000);
	assert_int_equal(cfg->cluster.miss_threshold, 5);
	assert_true(cfg->cluster.wait_for_all);
	assert_int_not_equal(cfg->cluster.agent_port, cfg->cluster.join_port);
	assert_int_equal(cfg->cluster.nhosts, 0);
	hf_config_free(cfg);
}

static void test_full_cluster_section_is_read(void **state)
{
	struct hf_config *cfg;

	assert_int_equal(load(HEAD
			      "cluster = { name = \"c1\"; address = \"::1\"; agent_port = 9001;"
			      " join_port = 9002; heartbeat_ms = 250; miss_threshold = 4;"
			      " wait_for_all = false; hosts = ( { name = \"h1\"; },"
			      " { name = \"h2\"; votes = 2; } ); };\n",
			      &cfg),
			 0);
	assert_string_equal(cfg->cluster.name, "c1");
	assert_int_equal(cfg->cluster.agent_port, 9001);
	assert_int_equal(cfg->cluster.heartbeat_ms, 250);
	assert_false(cfg->cluster.wait_for_all);
	assert_int_equal(cfg->cluster.nhosts, 2);
	assert_int_equal(cfg->cluster.hosts[0].votes, 1);
	assert_int_equal(cfg->cluster.hosts[1].votes, 2);
	hf_config_free(cfg);
}

static void refused(const char *cluster, const char *why)
{
	char text[2048];
	struct hf_config *cfg = NULL;

	snprintf(text, sizeof(text), "%s%s\n", HEAD, cluster);
	assert_int_equal(load(text, &cfg), -EINVAL);
	assert_null(cfg);
	if (!strstr(err, why))
		fail_msg("expected '%s' in '%s'", why, err);
	/* The error names the line of the cluster section (line 4). */
	assert_non_null(strstr(err, "t.conf:4: "));
}

static void test_bad_values_are_refused_with_file_and_line(void **state)
{
	refused("cluster = { heartbeat_ms = 5; };", "'heartbeat_ms' is 5, must be 10..60000");
	refused("cluster = { miss_threshold = 2; };", "'miss_threshold' is 2");
	refused("cluster = { address = \"box.local\"; };", "not a numeric IPv4 or IPv6");
	refused("cluster = { agent_port = 7000; join_port = 7000; };", "are both 7000");
	refused("cluster = { agent_port = 3260; };", "also portal 'lo''s port");
	refused("cluster = { wait_for_all = 1; };", "must be true or false");
	refused("cluster = { name = \"a,b\"; };", "cluster name 'a,b'");
	refused("cluster = { hosts = ( { name = \"h1\"; }, { name = \"h1\"; } ); };",
		"listed twice");
	refused("cluster = { hosts = ( { name = \"h1\"; votes = 17; } ); };", "'votes' is 17");
	refused("cluster = { hosts = ( { name = \"-h\"; } ); };", "cluster host name '-h'");
	refused("cluster = { heartbeat = 100; };", "unknown key 'heartbeat' in cluster");
	refused("cluster = 5;", "cluster must be a group");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_cluster_section_means_no_coordinator),
		cmocka_unit_test(test_empty_cluster_section_takes_the_defaults),
		cmocka_unit_test(test_full_cluster_section_is_read),
		cmocka_unit_test(test_bad_values_are_refused_with_file_and_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
