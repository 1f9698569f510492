/* holdfast-agent's state folder and argument rules: the state file round trip and its
 * refusals, pid lists, the lease hint, box addresses, tokens, fingerprints, fence actions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent_args.h"
#include "agent/agent_state.h"

static struct agent_state sample(void)
{
	struct agent_state st = {0};

	st.host_id = 7;
	st.epoch = 3;
	strcpy(st.name, "kvm1");
	strcpy(st.box_name, "box.example");
	strcpy(st.box_addr, "10.0.0.1:7444");
	return st;
}

static int parse(const char *s, struct agent_state *st)
{
	return agent_state_parse(s, strlen(s), st);
}

static void test_state_round_trips_through_text(void **state)
{
	struct agent_state a = sample(), b;
	char buf[1024];
	int n;

	n = agent_state_format(&a, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(agent_state_parse(buf, (size_t)n, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
}

static void test_state_round_trips_through_the_folder_with_mode_0600(void **state)
{
	char dir[] = "/tmp/test_agent_state.XXXXXX", path[256];
	struct agent_state a = sample(), b;
	struct stat sb;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(agent_state_save(dir, &a), 0);
	assert_int_equal(agent_state_load(dir, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	snprintf(path, sizeof(path), "%s/%s", dir, AGENT_STATE_FILE);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* A new epoch replaces the old one. */
	a.epoch = 4;
	assert_int_equal(agent_state_save(dir, &a), 0);
	assert_int_equal(agent_state_load(dir, &b), 0);
	assert_int_equal(b.epoch, 4);
	unlink(path);
	assert_int_equal(agent_state_load(dir, &b), -ENOENT);
	rmdir(dir);
}

static void test_state_keeps_the_box_lease_timing(void **state)
{
	struct agent_state a = sample(), b;
	char buf[1024];
	int n;

	a.timing = (struct agent_lease_timing){500000000ull, 3, 1550000000ull, 10000};
	n = agent_state_format(&a, buf, sizeof(buf));
	assert_true(n > 0);
	assert_non_null(strstr(buf, "box_miss 3\n"));
	assert_int_equal(agent_state_parse(buf, (size_t)n, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	/* A state file of an older agent has none: all zero. */
	assert_int_equal(parse("host_id 7\nepoch 3\nname kvm1\nbox_name b\n", &b), 0);
	assert_int_equal(b.timing.heartbeat_ns, 0);
	/* Half a timing, a zero or an impossible rate is damage. */
	assert_int_equal(parse("host_id 7\nepoch 3\nname kvm1\nbox_name b\nbox_miss 3\n", &b),
			 -EBADMSG);
	assert_int_equal(parse("host_id 7\nepoch 3\nname kvm1\nbox_name b\nbox_heartbeat_ns 0\n"
			       "box_miss 3\nbox_lease_timeout_ns 9\nbox_skew_ppm 1\n",
			       &b),
			 -EBADMSG);
	assert_int_equal(parse("host_id 7\nepoch 3\nname kvm1\nbox_name b\nbox_heartbeat_ns 1\n"
			       "box_miss 3\nbox_lease_timeout_ns 9\nbox_skew_ppm 1000000\n",
			       &b),
			 -EBADMSG);
	a.timing.skew_ppm = 0;
	assert_int_equal(agent_state_format(&a, buf, sizeof(buf)), -EINVAL);
}

static void test_state_without_box_address_is_accepted(void **state)
{
	struct agent_state st;

	assert_int_equal(parse("host_id 1\nepoch 1\nname a\nbox_name b\n", &st), 0);
	assert_string_equal(st.box_addr, "");
}

static void test_state_comments_and_blanks_are_skipped(void **state)
{
	struct agent_state st;

	assert_int_equal(parse("# c\n\n  host_id   9  \r\nepoch 2\nname a\nbox_name b", &st), 0);
	assert_int_equal(st.host_id, 9);
	assert_int_equal(st.epoch, 2);
}

static void test_state_refuses_damage(void **state)
{
	struct agent_state st;

	/* A required key missing. */
	assert_int_equal(parse("host_id 1\nname a\nbox_name b\n", &st), -EBADMSG);
	/* Unknown key, repeated key, key without value. */
	assert_int_equal(parse("host_id 1\nepoch 1\nname a\nbox_name b\nx 1\n", &st), -EBADMSG);
	assert_int_equal(parse("host_id 1\nepoch 1\nepoch 2\nname a\nbox_name b\n", &st), -EBADMSG);
	assert_int_equal(parse("host_id 1\nepoch\nname a\nbox_name b\n", &st), -EBADMSG);
	/* Out of range numbers: zero, 2^32, not a number, epoch that would overflow. */
	assert_int_equal(parse("host_id 0\nepoch 1\nname a\nbox_name b\n", &st), -EBADMSG);
	assert_int_equal(parse("host_id 4294967296\nepoch 1\nname a\nbox_name b\n", &st), -EBADMSG);
	assert_int_equal(parse("host_id 1x\nepoch 1\nname a\nbox_name b\n", &st), -EBADMSG);
	assert_int_equal(parse("host_id 1\nepoch 9223372036854775807\nname a\nbox_name b\n", &st),
			 -EBADMSG);
	assert_int_equal(parse("host_id 1\nepoch 99999999999999999999\nname a\nbox_name b\n", &st),
			 -EBADMSG);
	/* A name with a space inside. */
	assert_int_equal(parse("host_id 1\nepoch 1\nname a b\nbox_name b\n", &st), -EBADMSG);
}

static void test_state_format_refuses_what_parse_would(void **state)
{
	struct agent_state st = sample();
	char buf[1024];

	st.epoch = 0;
	assert_int_equal(agent_state_format(&st, buf, sizeof(buf)), -EINVAL);
	st = sample();
	strcpy(st.name, "a b");
	assert_int_equal(agent_state_format(&st, buf, sizeof(buf)), -EINVAL);
	st = sample();
	assert_int_equal(agent_state_format(&st, buf, 20), -ENOSPC);
}

static void test_pid_list_parses_and_skips_duplicates(void **state)
{
	const char *s = "# vms\n1234\n  55 \n\n1234\n";
	pid_t pids[4];
	size_t n = 0;

	assert_int_equal(agent_pids_parse(s, strlen(s), pids, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(pids[0], 1234);
	assert_int_equal(pids[1], 55);
}

static void test_pid_list_refuses_init_garbage_and_overflow(void **state)
{
	pid_t pids[2];
	size_t n = 0;

	assert_int_equal(agent_pids_parse("1\n", 2, pids, 2, &n), -EBADMSG);
	assert_int_equal(agent_pids_parse("0\n", 2, pids, 2, &n), -EBADMSG);
	assert_int_equal(agent_pids_parse("-5\n", 3, pids, 2, &n), -EBADMSG);
	assert_int_equal(agent_pids_parse("12 13\n", 6, pids, 2, &n), -EBADMSG);
	assert_int_equal(agent_pids_parse("4294967297\n", 11, pids, 2, &n), -EBADMSG);
	n = 0;
	assert_int_equal(agent_pids_parse("2\n3\n4\n", 6, pids, 2, &n), -ENOSPC);
}

static void test_missing_pid_file_is_an_empty_list(void **state)
{
	pid_t pids[2];
	size_t n = 0;

	assert_int_equal(agent_pids_load("/nonexistent/vms", pids, 2, &n), 0);
	assert_int_equal(n, 0);
}

static void test_lease_hint_round_trips_and_refuses_damage(void **state)
{
	struct agent_lease_hint a = {.epoch = 5, .send_ns = 123456789}, b;
	char buf[128];
	int n;

	strcpy(a.boot_id, "0f1e2d3c-aaaa-bbbb-cccc-0123456789ab");
	n = agent_lease_hint_format(&a, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(agent_lease_hint_parse(buf, (size_t)n, &b), 0);
	assert_string_equal(b.boot_id, a.boot_id);
	assert_int_equal(b.epoch, 5);
	assert_int_equal(b.send_ns, 123456789);
	/* Trailing padding (the daemon pads the line) is fine. */
	assert_int_equal(agent_lease_hint_parse("id 5 77        \n", 16, &b), 0);
	assert_int_equal(b.send_ns, 77);
	assert_int_equal(agent_lease_hint_parse("id 5\n", 5, &b), -EBADMSG);
	assert_int_equal(agent_lease_hint_parse("id 0 5\n", 7, &b), -EBADMSG);
	assert_int_equal(agent_lease_hint_parse("id 5 x\n", 7, &b), -EBADMSG);
	assert_int_equal(agent_lease_hint_parse("", 0, &b), -EBADMSG);
}

static void test_hostport_forms(void **state)
{
	char host[AGENT_ARGS_HOST_MAX + 1];
	uint16_t port;

	assert_int_equal(agent_args_hostport("127.0.0.1:7444", host, &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 7444);
	assert_int_equal(agent_args_hostport("[::1]:9", host, &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 9);
	assert_int_equal(agent_args_hostport("box:65535", host, &port), 0);
	assert_int_equal(agent_args_hostport("box", host, &port), -EINVAL);
	assert_int_equal(agent_args_hostport("box:", host, &port), -EINVAL);
	assert_int_equal(agent_args_hostport(":80", host, &port), -EINVAL);
	assert_int_equal(agent_args_hostport("box:0", host, &port), -EINVAL);
	assert_int_equal(agent_args_hostport("box:65536", host, &port), -EINVAL);
	assert_int_equal(agent_args_hostport("box:8a", host, &port), -EINVAL);
	assert_int_equal(agent_args_hostport("::1:80", host, &port), -EINVAL);
	assert_int_equal(agent_args_hostport("[::1]80", host, &port), -EINVAL);
}

static void test_token_splits_into_id_and_secret(void **state)
{
	char id[AGENT_TOKEN_ID_MAX + 1];
	uint8_t secret[AGENT_SECRET_MAX];
	size_t len;

	assert_int_equal(agent_args_token("hfj1.0123456789abcdef.00112233445566778899aabbccddeeff",
					  id, secret, &len),
			 0);
	assert_string_equal(id, "0123456789abcdef");
	assert_int_equal(len, 16);
	assert_int_equal(secret[0], 0x00);
	assert_int_equal(secret[1], 0x11);
	assert_int_equal(secret[15], 0xff);
}

static void test_token_refuses_other_shapes(void **state)
{
	char id[AGENT_TOKEN_ID_MAX + 1];
	uint8_t secret[AGENT_SECRET_MAX];
	size_t len;

	assert_int_equal(agent_args_token("hfj2.0123456789abcdef.00112233445566778899aabbccddeeff",
					  id, secret, &len),
			 -EINVAL);
	assert_int_equal(agent_args_token("hfj1.0123456789abcdeg.00112233445566778899aabbccddeeff",
					  id, secret, &len),
			 -EINVAL);
	assert_int_equal(agent_args_token("hfj1.0123456789abcdef-00112233445566778899aabbccddeeff",
					  id, secret, &len),
			 -EINVAL);
	assert_int_equal(agent_args_token("hfj1.0123456789abcdef.00112233445566778899aabbccddee",
					  id, secret, &len),
			 -EINVAL);
	assert_int_equal(agent_args_token("", id, secret, &len), -EINVAL);
}

static void test_fingerprint_with_and_without_colons(void **state)
{
	const char *plain = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	const char *colons = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
			     "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff";
	uint8_t a[32], b[32];

	assert_int_equal(agent_args_fingerprint(plain, a), 0);
	assert_int_equal(agent_args_fingerprint(colons, b), 0);
	assert_memory_equal(a, b, 32);
	assert_int_equal(a[31], 0xff);
	assert_int_equal(agent_args_fingerprint("0011", a), -EINVAL);
	assert_int_equal(
		agent_args_fingerprint(
			"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00", a),
		-EINVAL);
	assert_int_equal(
		agent_args_fingerprint(
			"0g112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", a),
		-EINVAL);
}

static void test_fence_action_forms(void **state)
{
	struct agent_fence_spec f;

	assert_int_equal(agent_args_fence("kill-qemu", &f), 0);
	assert_int_equal(f.kind, AGENT_FENCE_KILL_QEMU);
	assert_int_equal(agent_args_fence("exec:touch /tmp/x", &f), 0);
	assert_int_equal(f.kind, AGENT_FENCE_EXEC);
	assert_string_equal(f.arg, "touch /tmp/x");
	assert_int_equal(agent_args_fence("watchdog", &f), 0);
	assert_int_equal(f.kind, AGENT_FENCE_WATCHDOG);
	assert_string_equal(f.arg, "/dev/watchdog");
	assert_int_equal(agent_args_fence("watchdog:/tmp/wd", &f), 0);
	assert_string_equal(f.arg, "/tmp/wd");
	assert_int_equal(agent_args_fence("exec:", &f), -EINVAL);
	assert_int_equal(agent_args_fence("watchdog:", &f), -EINVAL);
	assert_int_equal(agent_args_fence("reboot", &f), -EINVAL);
	assert_int_equal(agent_args_fence("kill-qemu2", &f), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_round_trips_through_text),
		cmocka_unit_test(test_state_keeps_the_box_lease_timing),
		cmocka_unit_test(test_state_round_trips_through_the_folder_with_mode_0600),
		cmocka_unit_test(test_state_without_box_address_is_accepted),
		cmocka_unit_test(test_state_comments_and_blanks_are_skipped),
		cmocka_unit_test(test_state_refuses_damage),
		cmocka_unit_test(test_state_format_refuses_what_parse_would),
		cmocka_unit_test(test_pid_list_parses_and_skips_duplicates),
		cmocka_unit_test(test_pid_list_refuses_init_garbage_and_overflow),
		cmocka_unit_test(test_missing_pid_file_is_an_empty_list),
		cmocka_unit_test(test_lease_hint_round_trips_and_refuses_damage),
		cmocka_unit_test(test_hostport_forms),
		cmocka_unit_test(test_token_splits_into_id_and_secret),
		cmocka_unit_test(test_token_refuses_other_shapes),
		cmocka_unit_test(test_fingerprint_with_and_without_colons),
		cmocka_unit_test(test_fence_action_forms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
