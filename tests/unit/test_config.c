/* Tests for lib/config.c: a good file parses into the right structs, every kind of mistake
 * is refused with its `file:line:`, the embedded default parses, and sizes parse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/config.h"

/* The parts every valid config needs, so each error test changes only one thing. */
#define PORTAL "portals = ( { name = \"lo\"; address = \"127.0.0.1\"; port = 3260; tpgt = 1; } );\n"
#define BSTORE "backstores = ( { name = \"d0\"; type = \"memory\"; size = \"1M\"; } );\n"
#define TARGET                                                                                     \
	"targets = ( { iqn = \"iqn.2026-11.org.holdfast:t\"; luns = ( { id = 0; backstore = "      \
	"\"d0\"; } ); } );\n"

static char err[1024];

static int load(const char *text, struct hf_config **cfg)
{
	err[0] = '\0';
	return hf_config_load_string(text, "test.conf", cfg, err, sizeof(err));
}

/* Load text that must fail, and check the message starts with test.conf:<line>: and holds
 * the words that say what is wrong. */
static void expect_error(const char *text, int line, const char *words)
{
	struct hf_config *cfg = (void *)1;
	char prefix[64];

	assert_int_equal(load(text, &cfg), -EINVAL);
	assert_null(cfg);
	snprintf(prefix, sizeof(prefix), "test.conf:%d: ", line);
	if (strncmp(err, prefix, strlen(prefix)) || !strstr(err, words))
		fail_msg("expected '%s...%s', got '%s'", prefix, words, err);
}

static void test_full_config_parses_into_structs(void **state)
{
	static const char text[] =
		"data_dir = \"/var/lib/hf\";\n"
		"workers = 3;\n"
		"log_level = \"debug\";\n"
		"portals = ( { name = \"lo\"; address = \"127.0.0.1\"; port = 3261; tpgt = 2; },\n"
		"            { name = \"v6\"; address = \"::1\"; } );\n"
		"backstores = ( { name = \"disk0\"; type = \"file\"; path = \"disk0.img\"; size = "
		"\"1G\";"
		" block_size = 4096; },\n"
		"               { name = \"ram0\"; type = \"memory\"; size = 1048576; delay_ms = "
		"5; },\n"
		"               { name = \"abs\"; type = \"file\"; path = \"/dev/sdz\"; size = "
		"\"2T\"; } );\n"
		"discovery = { chap = ( { user = \"disc\"; secret = \"discsecret12\"; } ); };\n"
		"targets = ( { iqn = \"iqn.2026-11.org.holdfast:a\"; alias = \"A\"; portals = [ "
		"\"v6\" ];\n"
		"    luns = ( { id = 0; backstore = \"disk0\"; }, { id = 16383; backstore = "
		"\"ram0\"; } );\n"
		"    acl = [ \"iqn.1994-05.com.redhat:host1\", \"eui.0123456789ABCDEF\" ];\n"
		"    chap = ( { user = \"u1\"; secret = \"s12345678901\"; } );\n"
		"    mutual_chap = { user = \"tgt\"; secret = \"t12345678901\"; }; },\n"
		"  { iqn = \"naa.60014051234567890123456789012345\"; luns = ( { id = 1; backstore "
		"= \"abs\"; } ); } );\n";
	struct hf_config *cfg;

	assert_int_equal(load(text, &cfg), 0);
	assert_string_equal(cfg->data_dir, "/var/lib/hf");
	assert_string_equal(cfg->control_socket, "/var/lib/hf/holdfastd.sock");
	assert_int_equal(cfg->workers, 3);
	assert_int_equal(cfg->log_level, 2);
	assert_int_equal(cfg->nportals, 2);
	assert_int_equal(cfg->portals[0].port, 3261);
	assert_int_equal(cfg->portals[0].tpgt, 2);
	assert_int_equal(cfg->portals[1].port, 3260);
	assert_int_equal(cfg->portals[1].line, 5);
	assert_int_equal(cfg->nbackstores, 3);
	assert_string_equal(cfg->backstores[0].path, "/var/lib/hf/disk0.img");
	assert_int_equal(cfg->backstores[0].size, 1ULL << 30);
	assert_int_equal(cfg->backstores[0].block_size, 4096);
	assert_int_equal(cfg->backstores[1].type, HF_BS_MEMORY);
	assert_int_equal(cfg->backstores[1].size, 1048576);
	assert_int_equal(cfg->backstores[1].block_size, 512);
	assert_int_equal(cfg->backstores[1].delay_ms, 5);
	assert_string_equal(cfg->backstores[2].path, "/dev/sdz");
	assert_int_equal(cfg->ndiscovery_chap, 1);
	assert_string_equal(cfg->discovery_chap[0].user, "disc");
	assert_int_equal(cfg->ntargets, 2);
	assert_string_equal(cfg->targets[0].alias, "A");
	assert_int_equal(cfg->targets[0].nportals, 1);
	assert_int_equal(cfg->targets[0].portals[0], 1);
	assert_int_equal(cfg->targets[0].nluns, 2);
	assert_int_equal(cfg->targets[0].luns[1].id, 16383);
	assert_int_equal(cfg->targets[0].luns[1].backstore, 1);
	assert_int_equal(cfg->targets[0].nacl, 2);
	assert_string_equal(cfg->targets[0].acl[1], "eui.0123456789ABCDEF");
	assert_int_equal(cfg->targets[0].nchap, 1);
	assert_string_equal(cfg->targets[0].chap[0].secret, "s12345678901");
	assert_true(cfg->targets[0].has_mutual);
	assert_string_equal(cfg->targets[0].mutual.user, "tgt");
	/* A target without a portal list is on every portal; without CHAP it has none. */
	assert_int_equal(cfg->targets[1].nportals, 2);
	assert_int_equal(cfg->targets[1].nchap, 0);
	assert_false(cfg->targets[1].has_mutual);
	assert_int_equal(cfg->targets[1].line, 15);
	hf_config_free(cfg);
}

static void test_default_config_parses(void **state)
{
	struct hf_config *cfg;
	char cwd[PATH_MAX], want[PATH_MAX + 32];

	assert_int_equal(
		hf_config_load_string(hf_config_default_text, "(default)", &cfg, err, sizeof(err)),
		0);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/holdfast-data", cwd);
	assert_string_equal(cfg->data_dir, want);
	assert_int_equal(cfg->nportals, 1);
	assert_string_equal(cfg->portals[0].address, "127.0.0.1");
	assert_int_equal(cfg->portals[0].port, 3260);
	assert_int_equal(cfg->ntargets, 1);
	assert_string_equal(cfg->targets[0].iqn, "iqn.2026-11.org.holdfast:default");
	assert_int_equal(cfg->targets[0].nluns, 1);
	assert_int_equal(cfg->backstores[0].type, HF_BS_FILE);
	assert_int_equal(cfg->backstores[0].size, 1ULL << 30);
	assert_int_equal(cfg->targets[0].nchap, 0);
	assert_int_equal(cfg->targets[0].nacl, 0);
	assert_true(cfg->workers >= 1 && cfg->workers <= 16);
	assert_int_equal(cfg->maintenance_hold_ms, 10000);
	hf_config_free(cfg);
}

static void test_maintenance_hold_ms(void **state)
{
	struct hf_config *cfg = NULL;

	(void)state;
	assert_int_equal(load(PORTAL BSTORE TARGET "\nmaintenance_hold_ms = 0;\n", &cfg), 0);
	assert_int_equal(cfg->maintenance_hold_ms, 0);
	hf_config_free(cfg);
	expect_error(PORTAL BSTORE TARGET "\nmaintenance_hold_ms = 600001;\n", 5,
		     "'maintenance_hold_ms' is 600001, must be 0..600000");
	expect_error(PORTAL BSTORE TARGET "\nmaintenance_hold_ms = \"10s\";\n", 5,
		     "must be an integer");
}

static void test_syntax_error_reports_its_line(void **state)
{
	expect_error(PORTAL BSTORE "\n\nworkers = ;\n" TARGET, 5, "syntax error");
}

static void test_unknown_top_level_key_is_refused(void **state)
{
	expect_error(PORTAL BSTORE TARGET "\nworker = 2;\n", 5, "unknown key 'worker'");
}

static void test_unknown_key_in_portal_is_refused(void **state)
{
	expect_error("portals = (\n { name = \"lo\"; address = \"127.0.0.1\";\n  prot = 3260; } "
		     ");\n" BSTORE TARGET,
		     3, "unknown key 'prot'");
}

static void test_unknown_key_in_lun_is_refused(void **state)
{
	expect_error(PORTAL BSTORE
		     "targets = ( { iqn = \"iqn.2026-11.org.holdfast:t\";\n"
		     " luns = ( { id = 0; backstore = \"d0\"; readonly = true; } ); } );\n",
		     4, "unknown key 'readonly'");
}

static void test_wrong_type_is_refused(void **state)
{
	expect_error("portals = ( { name = \"lo\"; address = \"127.0.0.1\";\n port = \"3260\"; } "
		     ");\n" BSTORE TARGET,
		     2, "'port' must be an integer");
}

static void test_duplicate_portal_name_is_refused(void **state)
{
	expect_error("portals = ( { name = \"lo\"; address = \"127.0.0.1\"; },\n"
		     "            { name = \"lo\"; address = \"127.0.0.2\"; } );\n" BSTORE TARGET,
		     2, "defined twice");
}

static void test_duplicate_backstore_name_is_refused(void **state)
{
	expect_error(PORTAL "backstores = ( { name = \"d0\"; type = \"memory\"; size = \"1M\"; },\n"
			    "  { name = \"d0\"; type = \"memory\"; size = \"1M\"; } );\n" TARGET,
		     3, "backstore 'd0' is defined twice");
}

static void test_duplicate_target_iqn_is_refused(void **state)
{
	expect_error(PORTAL
		     "backstores = ( { name = \"d0\"; type = \"memory\"; size = \"1M\"; },\n"
		     "  { name = \"d1\"; type = \"memory\"; size = \"1M\"; } );\n"
		     "targets = ( { iqn = \"iqn.2026-11.org.holdfast:t\"; luns = ( { id = 0; "
		     "backstore = \"d0\"; } ); },\n"
		     "  { iqn = \"iqn.2026-11.org.holdfast:t\"; luns = ( { id = 0; backstore = "
		     "\"d1\"; } ); } );\n",
		     5, "defined twice");
}

static void test_undefined_portal_reference_is_refused(void **state)
{
	expect_error(PORTAL BSTORE
		     "targets = ( { iqn = \"iqn.2026-11.org.holdfast:t\";\n"
		     "  portals = [ \"eth0\" ]; luns = ( { id = 0; backstore = \"d0\"; } ); } );\n",
		     4, "portal 'eth0' is not defined");
}

static void test_undefined_backstore_is_refused(void **state)
{
	expect_error(PORTAL BSTORE "targets = ( { iqn = \"iqn.2026-11.org.holdfast:t\";\n"
				   "  luns = ( { id = 0; backstore = \"d9\"; } ); } );\n",
		     4, "backstore 'd9' is not defined");
}

static void test_backstore_used_by_two_luns_is_refused(void **state)
{
	expect_error(PORTAL BSTORE "targets = ( { iqn = \"iqn.2026-11.org.holdfast:t\";\n"
				   "  luns = ( { id = 0; backstore = \"d0\"; },\n"
				   "           { id = 1; backstore = \"d0\"; } ); } );\n",
		     5, "already used by the lun at line 4");
}

static void test_duplicate_lun_id_is_refused(void **state)
{
	expect_error(PORTAL "backstores = ( { name = \"d0\"; type = \"memory\"; size = \"1M\"; },\n"
			    "  { name = \"d1\"; type = \"memory\"; size = \"1M\"; } );\n"
			    "targets = ( { iqn = \"iqn.2026-11.org.holdfast:t\";\n"
			    "  luns = ( { id = 3; backstore = \"d0\"; },\n"
			    "           { id = 3; backstore = \"d1\"; } ); } );\n",
		     6, "lun 3 is defined twice");
}

static void test_lun_id_above_16383_is_refused(void **state)
{
	expect_error(PORTAL BSTORE "targets = ( { iqn = \"iqn.2026-11.org.holdfast:t\";\n"
				   "  luns = ( { id = 16384; backstore = \"d0\"; } ); } );\n",
		     4, "'id' is 16384, must be 0..16383");
}

static void test_bad_target_names_are_refused(void **state)
{
	static const char *const bad[] = {
		"iqn.2026-11.org.Holdfast:t", /* upper case in an iqn. name */
		"iqn.26-11.org.holdfast:t",   /* two-digit year */
		"iqn.2026-13.org.holdfast:t", /* month 13 */
		"iqn.2026-11:t",	      /* no naming authority */
		"iqn.2026-11.org..holdfast",  /* empty label */
		"iqn.2026-11.org.holdfast:a b",
		"eui.0123456789abcde", /* 15 hex digits */
		"eui.0123456789abcdeg",
		"naa.0123456789abcdef01", /* neither 16 nor 32 digits */
		"target0",
	};
	char text[1024];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
			 PORTAL BSTORE "targets = ( {\n iqn = \"%s\"; luns = ( { id = 0; backstore "
				       "= \"d0\"; } ); } );\n",
			 bad[i]);
		expect_error(text, 4, "bad iSCSI name");
	}
}

static void test_good_iscsi_names_are_accepted(void **state)
{
	const char *why;

	assert_int_equal(hf_config_check_iscsi_name("iqn.2026-11.org.holdfast:default", &why), 0);
	assert_int_equal(hf_config_check_iscsi_name("iqn.1994-05.com.redhat:2b1a3c", &why), 0);
	assert_int_equal(hf_config_check_iscsi_name("iqn.1991-05.com.microsoft", &why), 0);
	assert_int_equal(hf_config_check_iscsi_name("eui.02004567A425678D", &why), 0);
	assert_int_equal(hf_config_check_iscsi_name("naa.52004567BA64678D", &why), 0);
	assert_int_equal(hf_config_check_iscsi_name("naa.62004567BA64678D0123456789ABCDEF", &why),
			 0);
}

static void test_bad_acl_name_is_refused(void **state)
{
	expect_error(PORTAL BSTORE "targets = ( { iqn = \"iqn.2026-11.org.holdfast:t\";\n"
				   "  luns = ( { id = 0; backstore = \"d0\"; } );\n"
				   "  acl = [ \"host1\" ]; } );\n",
		     5, "bad initiator name 'host1'");
}

static void test_size_suffixes_parse(void **state)
{
	uint64_t v;

	assert_int_equal(hf_config_parse_size("512", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(hf_config_parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(hf_config_parse_size("256M", &v), 0);
	assert_int_equal(v, 256ULL << 20);
	assert_int_equal(hf_config_parse_size("1G", &v), 0);
	assert_int_equal(v, 1ULL << 30);
	assert_int_equal(hf_config_parse_size("1g", &v), 0);
	assert_int_equal(v, 1ULL << 30);
	assert_int_equal(hf_config_parse_size("2T", &v), 0);
	assert_int_equal(v, 2ULL << 40);
}

static void test_bad_sizes_are_refused(void **state)
{
	uint64_t v;

	assert_int_equal(hf_config_parse_size("", &v), -EINVAL);
	assert_int_equal(hf_config_parse_size("G", &v), -EINVAL);
	assert_int_equal(hf_config_parse_size("1X", &v), -EINVAL);
	assert_int_equal(hf_config_parse_size("1GB", &v), -EINVAL);
	assert_int_equal(hf_config_parse_size("-1G", &v), -EINVAL);
	assert_int_equal(hf_config_parse_size("1 G", &v), -EINVAL);
	assert_int_equal(hf_config_parse_size("99999999999T", &v), -ERANGE);
	assert_int_equal(hf_config_parse_size("99999999999999999999", &v), -ERANGE);
	expect_error(
		PORTAL
		"backstores = ( { name = \"d0\"; type = \"memory\";\n size = \"1Q\"; } );\n" TARGET,
		3, "size '1Q'");
}

static void test_size_not_multiple_of_block_size_is_refused(void **state)
{
	expect_error(PORTAL
		     "backstores = ( { name = \"d0\"; type = \"memory\"; block_size = 4096;\n"
		     " size = 6144; } );\n" TARGET,
		     3, "not a multiple of block_size 4096");
}

static void test_block_size_other_than_512_or_4096_is_refused(void **state)
{
	expect_error(PORTAL "backstores = ( { name = \"d0\"; type = \"memory\";\n"
			    " block_size = 1024; size = \"1M\"; } );\n" TARGET,
		     3, "block_size 1024 is not 512 or 4096");
}

static void test_port_out_of_range_is_refused(void **state)
{
	expect_error("portals = ( { name = \"lo\"; address = \"127.0.0.1\";\n port = 70000; } "
		     ");\n" BSTORE TARGET,
		     2, "'port' is 70000, must be 1..65535");
}

static void test_non_numeric_address_is_refused(void **state)
{
	expect_error("portals = ( { name = \"lo\";\n address = \"localhost\"; } );\n" BSTORE TARGET,
		     2, "not a numeric IPv4 or IPv6 address");
}

static void test_short_chap_secret_is_refused(void **state)
{
	expect_error(PORTAL BSTORE "targets = ( { iqn = \"iqn.2026-11.org.holdfast:t\";\n"
				   "  luns = ( { id = 0; backstore = \"d0\"; } );\n"
				   "  chap = ( { user = \"u\";\n secret = \"short\"; } ); } );\n",
		     6, "at least 12");
}

static void test_mutual_secret_equal_to_initiator_secret_is_refused(void **state)
{
	expect_error(PORTAL BSTORE
		     "targets = ( { iqn = \"iqn.2026-11.org.holdfast:t\";\n"
		     "  luns = ( { id = 0; backstore = \"d0\"; } );\n"
		     "  chap = ( { user = \"u\"; secret = \"s12345678901\"; } );\n"
		     "  mutual_chap = { user = \"t\"; secret = \"s12345678901\"; }; } );\n",
		     6, "equals the secret");
}

static void test_missing_portals_or_targets_is_refused(void **state)
{
	expect_error(BSTORE TARGET, 1, "at least one portal");
	expect_error(PORTAL BSTORE "targets = ( );\n", 3, "at least one target");
}

static void test_missing_required_key_names_its_group_line(void **state)
{
	expect_error(
		PORTAL
		"backstores = ( { name = \"d0\";\n type = \"file\"; size = \"1M\"; } );\n" TARGET,
		2, "'path' is required");
}

static void test_file_paths_are_relative_to_the_config_folder(void **state)
{
	char dir[] = "/tmp/hf-config-test-XXXXXX", path[PATH_MAX], want[PATH_MAX];
	static const char text[] =
		"data_dir = \"data\";\ncontrol_socket = \"run/ctl.sock\";\n" PORTAL
		"backstores = ( { name = \"d0\"; type = \"file\"; path = \"d0.img\"; size = "
		"\"1M\"; } );\n" TARGET;
	struct hf_config *cfg;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/holdfast.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chdir("/"), 0);
	assert_int_equal(hf_config_load_file(path, &cfg, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/data", dir);
	assert_string_equal(cfg->data_dir, want);
	snprintf(want, sizeof(want), "%s/run/ctl.sock", dir);
	assert_string_equal(cfg->control_socket, want);
	snprintf(want, sizeof(want), "%s/data/d0.img", dir);
	assert_string_equal(cfg->backstores[0].path, want);
	hf_config_free(cfg);
	unlink(path);
	rmdir(dir);
}

static void test_missing_file_is_reported(void **state)
{
	struct hf_config *cfg;

	assert_int_equal(hf_config_load_file("/nonexistent/holdfast.conf", &cfg, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/holdfast.conf:"));
}

static void test_box_id_is_created_once_and_kept(void **state)
{
	char dir[] = "/tmp/hf-boxid-test-XXXXXX", idpath[PATH_MAX], text[1024];
	struct hf_config *cfg;
	uint8_t first[16], zero[16] = {0};
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(text, sizeof(text), "data_dir = \"%s/sub/data\";\n" PORTAL BSTORE TARGET, dir);
	assert_int_equal(load(text, &cfg), 0);
	assert_int_equal(hf_config_prepare_data_dir(cfg, err, sizeof(err)), 0);
	memcpy(first, cfg->box_id, 16);
	assert_memory_not_equal(first, zero, 16);
	memset(cfg->box_id, 0, 16);
	assert_int_equal(hf_config_prepare_data_dir(cfg, err, sizeof(err)), 0);
	assert_memory_equal(cfg->box_id, first, 16);

	/* A box-id of the wrong size is damage, not something to paper over with a new id. */
	snprintf(idpath, sizeof(idpath), "%s/sub/data/box-id", dir);
	fd = open(idpath, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(hf_config_prepare_data_dir(cfg, err, sizeof(err)), -EINVAL);
	hf_config_free(cfg);
	unlink(idpath);
	snprintf(idpath, sizeof(idpath), "%s/sub/data", dir);
	rmdir(idpath);
	snprintf(idpath, sizeof(idpath), "%s/sub", dir);
	rmdir(idpath);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_config_parses_into_structs),
		cmocka_unit_test(test_default_config_parses),
		cmocka_unit_test(test_syntax_error_reports_its_line),
		cmocka_unit_test(test_unknown_top_level_key_is_refused),
		cmocka_unit_test(test_maintenance_hold_ms),
		cmocka_unit_test(test_unknown_key_in_portal_is_refused),
		cmocka_unit_test(test_unknown_key_in_lun_is_refused),
		cmocka_unit_test(test_wrong_type_is_refused),
		cmocka_unit_test(test_duplicate_portal_name_is_refused),
		cmocka_unit_test(test_duplicate_backstore_name_is_refused),
		cmocka_unit_test(test_duplicate_target_iqn_is_refused),
		cmocka_unit_test(test_undefined_portal_reference_is_refused),
		cmocka_unit_test(test_undefined_backstore_is_refused),
		cmocka_unit_test(test_backstore_used_by_two_luns_is_refused),
		cmocka_unit_test(test_duplicate_lun_id_is_refused),
		cmocka_unit_test(test_lun_id_above_16383_is_refused),
		cmocka_unit_test(test_bad_target_names_are_refused),
		cmocka_unit_test(test_good_iscsi_names_are_accepted),
		cmocka_unit_test(test_bad_acl_name_is_refused),
		cmocka_unit_test(test_size_suffixes_parse),
		cmocka_unit_test(test_bad_sizes_are_refused),
		cmocka_unit_test(test_size_not_multiple_of_block_size_is_refused),
		cmocka_unit_test(test_block_size_other_than_512_or_4096_is_refused),
		cmocka_unit_test(test_port_out_of_range_is_refused),
		cmocka_unit_test(test_non_numeric_address_is_refused),
		cmocka_unit_test(test_short_chap_secret_is_refused),
		cmocka_unit_test(test_mutual_secret_equal_to_initiator_secret_is_refused),
		cmocka_unit_test(test_missing_portals_or_targets_is_refused),
		cmocka_unit_test(test_missing_required_key_names_its_group_line),
		cmocka_unit_test(test_file_paths_are_relative_to_the_config_folder),
		cmocka_unit_test(test_missing_file_is_reported),
		cmocka_unit_test(test_box_id_is_created_once_and_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
