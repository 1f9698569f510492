/* The fence actions of holdfast-agent: what it does when its lease may be gone or the box says
 * it was fenced, so that no write leaves this host under the old epoch. kill-qemu SIGKILLs the
 * VMs this host owns and waits until they are gone; exec runs a command and waits for it;
 * watchdog additionally arms a watchdog device that the agent pets only while its lease holds,
 * so a frozen agent still gets the host reset. */
#ifndef HOLDFAST_AGENT_FENCE_H
#define HOLDFAST_AGENT_FENCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/agent_args.h"

#define AGENT_FENCE_MAX_PIDFILES 32

struct agent_fence {
	struct agent_fence_spec spec;
	char vms_path[4096];				/* DIR/vms */
	const char *pidfiles[AGENT_FENCE_MAX_PIDFILES]; /* --vm-pidfile */
	size_t n_pidfiles;
	int64_t budget_ns; /* K: how long the action may take before we complain */
	int wd_fd;	   /* the watchdog device, -1 when not used */
	unsigned wd_timeout_s;
	int wd_ioctl_ok; /* 1: the device takes WDIOC_SETTIMEOUT, 0: it does not (a fake) */
	uint64_t wd_pets;
};

/* Prepare the action; for watchdog, open the device (it is armed from the first pet on). */
int agent_fence_init(struct agent_fence *f, const struct agent_fence_spec *spec,
		     const char *state_dir, const char *const *pidfiles, size_t n_pidfiles,
		     int64_t budget_ns);
/* Run the action. Returns 0 when every write path it knows of is stopped: the listed VMs are
 * gone, or the command exited 0. */
int agent_fence_run(struct agent_fence *f);
/* The pids the kill-qemu action would kill now (DIR/vms, then the pid files). */
int agent_fence_list_pids(const struct agent_fence *f, pid_t *pids, size_t cap, size_t *n);

/* Watchdog: pet with a timeout of timeout_s seconds (set on the device when it changes). A
 * timeout of 0 means do not pet. No-op without a watchdog. */
int agent_fence_watchdog_pet(struct agent_fence *f, unsigned timeout_s);
/* Close the device; disarm writes the magic 'V' first so a clean stop does not reset the host
 * (when the driver allows it: with nowayout it resets anyway). */
void agent_fence_close(struct agent_fence *f, int disarm);

#endif
