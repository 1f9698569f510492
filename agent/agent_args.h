/* holdfast-agent's argument parsing that has rules worth testing: a box address, a join token,
 * a fence action. Pure: no I/O. */
#ifndef HOLDFAST_AGENT_ARGS_H
#define HOLDFAST_AGENT_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "csv-coord/agent_proto.h"

#define AGENT_ARGS_HOST_MAX 255

/* "host:port" or "[v6 address]:port", port 1..65535. host is copied without brackets.
 * -EINVAL when the text is not of that shape. */
int agent_args_hostport(const char *s, char host[AGENT_ARGS_HOST_MAX + 1], uint16_t *port);

/* A join token as `holdfastctl cluster token create` prints it, "hfj1.<16 hex id>.<32 hex
 * secret>". On the wire (docs/agent.md, "Join") token_id is the 16 hex digits of the id and
 * token_secret the 16 bytes the 32 hex digits spell. -EINVAL on anything else. */
int agent_args_token(const char *s, char id[AGENT_TOKEN_ID_MAX + 1], uint8_t *secret,
		     size_t *secret_len);

/* Hex of a SHA-256 fingerprint: 64 hex digits, optionally in pairs separated by ':'. */
int agent_args_fingerprint(const char *s, uint8_t out[32]);

enum agent_fence_kind {
	AGENT_FENCE_KILL_QEMU = 0, /* SIGKILL the pids in DIR/vms and --vm-pidfile files */
	AGENT_FENCE_EXEC = 1,	   /* /bin/sh -c COMMAND */
	AGENT_FENCE_WATCHDOG = 2,  /* arm a watchdog device, and kill the VMs as kill-qemu does */
};

#define AGENT_WATCHDOG_DEFAULT "/dev/watchdog"
#define AGENT_FENCE_ARG_MAX    1024

struct agent_fence_spec {
	enum agent_fence_kind kind;
	char arg[AGENT_FENCE_ARG_MAX]; /* the command, or the watchdog device */
};

/* "kill-qemu", "exec:COMMAND" (COMMAND not empty), "watchdog" or "watchdog:DEV". */
int agent_args_fence(const char *s, struct agent_fence_spec *out);

/* A decimal in [min, max]. */
int agent_args_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);

#endif
