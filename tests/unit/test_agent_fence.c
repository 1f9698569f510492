/* holdfast-agent's fence actions on real processes and a fake watchdog device: kill-qemu kills
 * exactly the listed VMs and returns only once they are gone, exec reports the command's
 * result, the watchdog is petted only with a positive timeout and disarmed with 'V'. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent_fence.h"
#include "agent/agent_state.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_agent_fence.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static pid_t spawn_vm(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		pause();
		_exit(0);
	}
	return pid;
}

/* A killed child stays a zombie until reaped; the fence treats that as gone. */
static bool killed(pid_t pid)
{
	int status;

	return waitpid(pid, &status, WNOHANG) == pid && WIFSIGNALED(status) &&
	       WTERMSIG(status) == SIGKILL;
}

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(s, f);
	fclose(f);
}

static void test_kill_qemu_kills_the_listed_vms_and_pidfiles_only(void **state)
{
	struct agent_fence_spec spec;
	struct agent_fence f;
	pid_t a = spawn_vm(), b = spawn_vm(), spare = spawn_vm();
	char path[128], pf[128], buf[64];
	const char *pidfiles[1] = {pf};

	snprintf(path, sizeof(path), "%s/%s", dir, AGENT_STATE_VMS_FILE);
	snprintf(buf, sizeof(buf), "# vms\n%d\n", (int)a);
	write_file(path, buf);
	snprintf(pf, sizeof(pf), "%s/qemu.pid", dir);
	snprintf(buf, sizeof(buf), "%d\n", (int)b);
	write_file(pf, buf);
	agent_args_fence("kill-qemu", &spec);
	assert_int_equal(agent_fence_init(&f, &spec, dir, pidfiles, 1, 1000000000), 0);
	assert_int_equal(agent_fence_run(&f), 0);
	assert_true(killed(a));
	assert_true(killed(b));
	assert_int_equal(kill(spare, 0), 0);
	assert_false(killed(spare));
	kill(spare, SIGKILL);
	waitpid(spare, NULL, 0);
	agent_fence_close(&f, 1);
	unlink(path);
	unlink(pf);
}

static void test_kill_qemu_with_no_vms_succeeds(void **state)
{
	struct agent_fence_spec spec;
	struct agent_fence f;

	agent_args_fence("kill-qemu", &spec);
	assert_int_equal(agent_fence_init(&f, &spec, dir, NULL, 0, 1000000000), 0);
	assert_int_equal(agent_fence_run(&f), 0);
}

static void test_kill_qemu_refuses_a_damaged_list_but_kills_what_it_read(void **state)
{
	struct agent_fence_spec spec;
	struct agent_fence f;
	pid_t a = spawn_vm();
	char path[128], buf[64];

	snprintf(path, sizeof(path), "%s/%s", dir, AGENT_STATE_VMS_FILE);
	snprintf(buf, sizeof(buf), "%d\nnot-a-pid\n", (int)a);
	write_file(path, buf);
	agent_args_fence("kill-qemu", &spec);
	assert_int_equal(agent_fence_init(&f, &spec, dir, NULL, 0, 1000000000), 0);
	assert_int_equal(agent_fence_run(&f), -EBADMSG);
	assert_true(killed(a));
	unlink(path);
}

static void test_exec_runs_the_command_and_reports_failure(void **state)
{
	struct agent_fence_spec spec;
	struct agent_fence f;
	char cmd[200], marker[128];

	snprintf(marker, sizeof(marker), "%s/fenced", dir);
	snprintf(cmd, sizeof(cmd), "exec:echo done > %s", marker);
	assert_int_equal(agent_args_fence(cmd, &spec), 0);
	assert_int_equal(agent_fence_init(&f, &spec, dir, NULL, 0, 1000000000), 0);
	assert_int_equal(agent_fence_run(&f), 0);
	assert_int_equal(access(marker, F_OK), 0);
	assert_int_equal(agent_args_fence("exec:exit 3", &spec), 0);
	assert_int_equal(agent_fence_init(&f, &spec, dir, NULL, 0, 1000000000), 0);
	assert_int_equal(agent_fence_run(&f), -EIO);
}

static void test_watchdog_pets_only_with_a_timeout_and_disarms_on_close(void **state)
{
	struct agent_fence_spec spec;
	struct agent_fence f;
	char dev[128], arg[160], buf[16] = {0};
	int fd;
	ssize_t n;

	snprintf(dev, sizeof(dev), "%s/watchdog", dir);
	write_file(dev, "");
	snprintf(arg, sizeof(arg), "watchdog:%s", dev);
	assert_int_equal(agent_args_fence(arg, &spec), 0);
	assert_int_equal(agent_fence_init(&f, &spec, dir, NULL, 0, 1000000000), 0);
	/* A regular file takes no WDIOC_SETTIMEOUT: the agent falls back to writes. */
	assert_int_equal(agent_fence_watchdog_pet(&f, 3), 0);
	assert_int_equal(agent_fence_watchdog_pet(&f, 0), 0);
	assert_int_equal(agent_fence_watchdog_pet(&f, 2), 0);
	assert_int_equal(f.wd_pets, 2);
	agent_fence_close(&f, 1);
	fd = open(dev, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_int_equal(n, 3);
	assert_string_equal(buf, "kkV");
}

static void test_watchdog_missing_device_fails_init(void **state)
{
	struct agent_fence_spec spec;
	struct agent_fence f;

	assert_int_equal(agent_args_fence("watchdog:/nonexistent/watchdog", &spec), 0);
	assert_int_equal(agent_fence_init(&f, &spec, dir, NULL, 0, 1000000000), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_qemu_kills_the_listed_vms_and_pidfiles_only),
		cmocka_unit_test(test_kill_qemu_with_no_vms_succeeds),
		cmocka_unit_test(test_kill_qemu_refuses_a_damaged_list_but_kills_what_it_read),
		cmocka_unit_test(test_exec_runs_the_command_and_reports_failure),
		cmocka_unit_test(test_watchdog_pets_only_with_a_timeout_and_disarms_on_close),
		cmocka_unit_test(test_watchdog_missing_device_fails_init),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
