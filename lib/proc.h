/* The supervisor: holdfastd's parent process forks one child per plane from a table, talks to
 * each over a msg channel, restarts a child that dies (with backoff, logging why), forwards
 * SIGTERM and SIGINT to the children and waits for them. Children die with the parent
 * (PR_SET_PDEATHSIG). The parent keeps nothing but the parsed configuration.
 *
 * A child's main gets the configuration and its end of the channel (a non-blocking
 * SOCK_SEQPACKET socket, see lib/msg.h); every other descriptor of the parent is closed,
 * signals are unblocked and at their defaults except SIGPIPE, which is ignored. A child that
 * exits with PROC_EXIT_FATAL cannot work with this configuration (for example its port is
 * taken by another program): the parent then stops everything and exits instead of
 * restarting it forever. */
#ifndef HOLDFAST_LIB_PROC_H
#define HOLDFAST_LIB_PROC_H

#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "lib/msg.h"

#define PROC_EXIT_FATAL 78 /* EX_CONFIG */

struct proc_desc {
	const char *name;
	enum hf_proc id;
	int (*main)(const struct hf_config *cfg, int parent_fd);
};

struct proc_sup;

/* What the parent's own services (the control socket) plug into the supervisor's loop. */
struct proc_hooks {
	void *arg;
	/* A message from child `from` (only types the parent handles arrive here). */
	void (*on_msg)(void *arg, enum hf_proc from, struct msg *m);
	/* Child `who` was started (again); messages may be sent to it from now on. */
	void (*on_child_up)(void *arg, enum hf_proc who);
	/* Child `who` died or its channel broke: requests sent to it will not be answered. */
	void (*on_child_down)(void *arg, enum hf_proc who);
	/* Called at least once a second, for timeouts. */
	void (*on_tick)(void *arg);
};

int proc_sup_create(const struct hf_config *cfg, const struct proc_desc *table, size_t n,
		    const struct proc_hooks *hooks, struct proc_sup **out);
void proc_sup_destroy(struct proc_sup *sup);

/* Watch fd in the loop; cb runs with the epoll events that are ready. */
typedef void (*proc_fd_cb)(void *arg, int fd, uint32_t events);
int proc_sup_add_fd(struct proc_sup *sup, int fd, uint32_t events, proc_fd_cb cb, void *arg);
int proc_sup_mod_fd(struct proc_sup *sup, int fd, uint32_t events);
void proc_sup_del_fd(struct proc_sup *sup, int fd); /* does not close fd */

/* Send to a child. -ENOTCONN when that child is not running now. */
int proc_sup_send(struct proc_sup *sup, enum hf_proc to, uint32_t type, uint32_t id,
		  const void *data, size_t len);

/* Start every child and supervise until SIGTERM or SIGINT; then stop the children (SIGKILL
 * after a grace period) and return 0, or -ECHILD when a child exited PROC_EXIT_FATAL. */
int proc_sup_run(struct proc_sup *sup);

/* Child side: call when the parent channel is readable. It answers MSG_CTL_REQUEST with
 * ctl(request, &reply): reply is malloc'd JSON text (freed here) and is sent whatever
 * ctl returns; with no reply, {"error": strerror(-ret)} is sent. Returns 1 when the child should
 * exit (MSG_SHUTDOWN or the parent is gone), 0 to go on, or a negative errno. */
int proc_child_handle(struct msg_chan *ch, int (*ctl)(const char *request, char **reply));

#endif
