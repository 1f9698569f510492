/* holdfast-agent's state folder: what a join leaves behind (key, certificate, CA, host id,
 * epoch, the box's name and agent address) and what a run reads (the same, plus the pids of
 * the VMs this host owns). Parsing and formatting are pure so the unit tests can drive them;
 * the load and save helpers are the only functions here that touch files. */
#ifndef HOLDFAST_AGENT_STATE_H
#define HOLDFAST_AGENT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "csv-coord/agent_proto.h"

/* Files in the state folder (docs/agent.md, "State folder"). */
#define AGENT_STATE_KEY_FILE   "host.key"    /* the host's EC P-256 private key, PEM, 0600 */
#define AGENT_STATE_CERT_FILE  "host.crt"    /* the host's certificate from the box, PEM */
#define AGENT_STATE_CA_FILE    "ca.crt"	     /* the cluster CA certificate, PEM */
#define AGENT_STATE_FILE       "agent.state" /* host id, epoch, names: text, below */
#define AGENT_STATE_VMS_FILE   "vms"	     /* pids of the VMs this host owns, one a line */
#define AGENT_STATE_LEASE_FILE "lease"	     /* the last acknowledged send time, this boot */

#define AGENT_STATE_NAME_MAX 253 /* a host or box name (RFC 1035 2.3.4) */
#define AGENT_STATE_ADDR_MAX 300 /* "host:port" or "[v6]:port" */
#define AGENT_STATE_MAX_PIDS 1024

struct agent_state {
	uint32_t host_id;			 /* >= 1 */
	uint64_t epoch;				 /* >= 1 */
	char name[AGENT_STATE_NAME_MAX + 1];	 /* this host's name, the CN of host.crt */
	char box_name[AGENT_STATE_NAME_MAX + 1]; /* the CN of the box's agent certificate */
	char box_addr[AGENT_STATE_ADDR_MAX + 1]; /* the agent port, "" when not known */
	/* The lease timing the box last announced (JOIN_RESPONSE, HELLO_ACK); all zero when it
	 * never did (an older box, or a state folder from an older agent). */
	struct agent_lease_timing timing;
};

/* The state file is text, one "key value" a line; '#' starts a comment line. Keys: host_id,
 * epoch, name, box_name (required), box (optional), and the box's lease timing
 * box_heartbeat_ns, box_miss, box_lease_timeout_ns, box_skew_ppm (all four or none). An unknown
 * key, a repeated key, a value out of range or a line without a value is refused with -EBADMSG: the
 * file decides which epoch the host claims, so a damaged one must stop the agent rather than be
 * guessed at. */
int agent_state_parse(const char *buf, size_t len, struct agent_state *st);
/* Format into buf (cap bytes, NUL-terminated). Returns the length, or -ENOSPC / -EINVAL. */
int agent_state_format(const struct agent_state *st, char *buf, size_t cap);

/* Read and write DIR/agent.state (written through lib/atomic_file.h, mode 0600). */
int agent_state_load(const char *dir, struct agent_state *st);
int agent_state_save(const char *dir, const struct agent_state *st);

/* Write DIR/name durably with the given mode. */
int agent_state_write_file(const char *dir, const char *name, const void *data, size_t len,
			   mode_t mode);

/* A pid list: one decimal pid a line; blank lines and lines starting with '#' are skipped,
 * surrounding blanks are allowed. Appends to pids (cap entries, *n in and out), skipping
 * duplicates. -EBADMSG on a line that is not a pid in 2..INT_MAX (pid 1 and 0 would be
 * disastrous to kill), -ENOSPC when the list is full. */
int agent_pids_parse(const char *buf, size_t len, pid_t *pids, size_t cap, size_t *n);
/* Read a pid file into the list; a missing file adds nothing and returns 0. */
int agent_pids_load(const char *path, pid_t *pids, size_t cap, size_t *n);

/* The lease hint kept across an agent restart within one boot: the boot id (from
 * /proc/sys/kernel/random/boot_id), the epoch and the CLOCK_BOOTTIME send time of the last
 * acknowledged heartbeat. Text: "<boot id> <epoch> <send_ns>\n". */
struct agent_lease_hint {
	char boot_id[40];
	uint64_t epoch;
	int64_t send_ns;
};
int agent_lease_hint_parse(const char *buf, size_t len, struct agent_lease_hint *h);
int agent_lease_hint_format(const struct agent_lease_hint *h, char *buf, size_t cap);

#endif
