#include "agent/agent_fence.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent_state.h"
#include "lib/log.h"

#define WAIT_STEP_NS (5 * 1000000L)

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int agent_fence_init(struct agent_fence *f, const struct agent_fence_spec *spec,
		     const char *state_dir, const char *const *pidfiles, size_t n_pidfiles,
		     int64_t budget_ns)
{
	size_t i;
	int n;

	memset(f, 0, sizeof(*f));
	f->wd_fd = -1;
	f->spec = *spec;
	f->budget_ns = budget_ns;
	if (n_pidfiles > AGENT_FENCE_MAX_PIDFILES)
		return -E2BIG;
	for (i = 0; i < n_pidfiles; i++)
		f->pidfiles[i] = pidfiles[i];
	f->n_pidfiles = n_pidfiles;
	n = snprintf(f->vms_path, sizeof(f->vms_path), "%s/%s", state_dir, AGENT_STATE_VMS_FILE);
	if (n < 0 || (size_t)n >= sizeof(f->vms_path))
		return -ENAMETOOLONG;
	if (spec->kind == AGENT_FENCE_WATCHDOG) {
		f->wd_fd = open(spec->arg, O_WRONLY | O_CLOEXEC);
		if (f->wd_fd < 0) {
			int err = -errno;

			log_warn("%s: watchdog %s", __func__, spec->arg);
			return err;
		}
		f->wd_ioctl_ok = 1;
	}
	return 0;
}

int agent_fence_list_pids(const struct agent_fence *f, pid_t *pids, size_t cap, size_t *n)
{
	size_t i;
	int err;

	*n = 0;
	err = agent_pids_load(f->vms_path, pids, cap, n);
	if (err) {
		log_warnx("%s: %s: %s", __func__, f->vms_path, strerror(-err));
		return err;
	}
	for (i = 0; i < f->n_pidfiles; i++) {
		err = agent_pids_load(f->pidfiles[i], pids, cap, n);
		if (err) {
			log_warnx("%s: %s: %s", __func__, f->pidfiles[i], strerror(-err));
			return err;
		}
	}
	return 0;
}

/* Gone: no such process, or a zombie (it runs no more code and issues no more I/O). */
static bool pid_gone(pid_t pid)
{
	char path[64], buf[256], *close_paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	/* The state letter follows the command name, which may itself hold ')' */
	close_paren = strrchr(buf, ')');
	return close_paren && close_paren[1] == ' ' &&
	       (close_paren[2] == 'Z' || close_paren[2] == 'X');
}

static int fence_kill(struct agent_fence *f)
{
	static pid_t pids[AGENT_STATE_MAX_PIDS];
	struct timespec step = {0, WAIT_STEP_NS};
	int64_t start = now_ns();
	size_t n, i, left;
	bool warned = false;
	int err, failed = 0;

	/* A list that cannot be read still gets every pid that could be read killed. */
	err = agent_fence_list_pids(f, pids, AGENT_STATE_MAX_PIDS, &n);
	for (i = 0; i < n; i++) {
		if (kill(pids[i], SIGKILL) && errno != ESRCH) {
			log_warn("%s: kill %d", __func__, (int)pids[i]);
			failed = -errno;
		}
	}
	/* SIGKILL is delivered asynchronously; the VM's writes stop only once it is gone, so
	 * wait for that. Past the budget the wait goes on, loudly: stopping early would claim a
	 * fence that has not happened. */
	for (;;) {
		for (left = 0, i = 0; i < n; i++)
			left += !pid_gone(pids[i]);
		if (!left)
			break;
		if (!warned && now_ns() - start > f->budget_ns) {
			log_warnx("%s: %zu VM process(es) still running after %lld ms", __func__,
				  left, (long long)((now_ns() - start) / 1000000));
			warned = true;
		}
		if (failed && now_ns() - start > 10 * f->budget_ns)
			return failed;
		nanosleep(&step, NULL);
	}
	log_info("%s: killed %zu VM process(es) in %lld ms", __func__, n,
		 (long long)((now_ns() - start) / 1000000));
	return err ? err : failed;
}

static int fence_exec(struct agent_fence *f)
{
	pid_t pid, w;
	int status;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", f->spec.arg, (char *)NULL);
		_exit(127);
	}
	do
		w = waitpid(pid, &status, 0);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	log_warnx("%s: '%s' failed (status 0x%x)", __func__, f->spec.arg, (unsigned)status);
	return -EIO;
}

int agent_fence_run(struct agent_fence *f)
{
	switch (f->spec.kind) {
	case AGENT_FENCE_KILL_QEMU:
		return fence_kill(f);
	case AGENT_FENCE_EXEC:
		return fence_exec(f);
	case AGENT_FENCE_WATCHDOG:
		/* The watchdog is no longer petted (the lease is gone), so the host resets when
		 * it runs out; the VMs are killed now so their writes stop before that. */
		return fence_kill(f);
	default:
		return -EINVAL;
	}
}

int agent_fence_watchdog_pet(struct agent_fence *f, unsigned timeout_s)
{
	int t = (int)timeout_s;

	if (f->wd_fd < 0 || timeout_s == 0)
		return 0;
	if (f->wd_ioctl_ok && timeout_s != f->wd_timeout_s) {
		/* The kernel's watchdog API: WDIOC_SETTIMEOUT sets the timeout and pets. */
		if (ioctl(f->wd_fd, WDIOC_SETTIMEOUT, &t) == 0) {
			f->wd_timeout_s = timeout_s;
		} else if (errno == ENOTTY || errno == EINVAL) {
			/* Not a watchdog driver (a test's file or pipe), or a driver without a
			 * settable timeout: pet by writes only. */
			log_warnx("%s: %s takes no WDIOC_SETTIMEOUT: petting only", __func__,
				  f->spec.arg);
			f->wd_ioctl_ok = 0;
		} else {
			return -errno;
		}
	}
	if (write(f->wd_fd, "k", 1) != 1)
		return -errno;
	f->wd_pets++;
	return 0;
}

void agent_fence_close(struct agent_fence *f, int disarm)
{
	if (f->wd_fd < 0)
		return;
	if (disarm && write(f->wd_fd, "V", 1) != 1)
		log_warn("%s: magic close", __func__);
	close(f->wd_fd);
	f->wd_fd = -1;
}
