/* `holdfast-agent vdisk ...` and `holdfast-agent pool ...`: the command line of the catalog
 * requests an agent makes as its own host (docs/agent.md, "Virtual disks"), turned into one
 * agent-protocol request; and the answers turned into text, JSON and an exit code. Pure: the
 * connection is agent_main.c's. */
#ifndef HOLDFAST_AGENT_VDISK_H
#define HOLDFAST_AGENT_VDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "csv-coord/agent_proto.h"

#define AGENT_VDISK_TIMEOUT_MS 30000 /* default --timeout-ms: an answer waits for the target */

struct agent_vdisk_cmd {
	struct agent_msg req; /* the request to send (type and fields; version and id later) */
	const char *state_dir;
	const char *box; /* --box, NULL: the state file's */
	bool json;
	bool verbose;
	unsigned long timeout_ms;
};

/* argv[0] is "vdisk" or "pool". 0, or -EINVAL with a sentence in err. */
int agent_vdisk_parse(int argc, char **argv, struct agent_vdisk_cmd *cmd, char *err, size_t errlen);

/* A short name for a refusal ("forbidden", "stale_epoch", ...), as holdfastctl's codes. */
const char *agent_vdisk_code_name(unsigned agent_err);
/* The exit code for an ERROR of the box (docs/agent.md, "Exit codes"). */
int agent_vdisk_exit_code(unsigned agent_err);

/* A disk as JSON (the keys of holdfastctl's vdisk objects where they mean the same). */
json_t *agent_vdisk_info_json(const struct agent_vdisk_info *i);
/* A disk as one line of text; header: the column names first. */
void agent_vdisk_print(FILE *f, const struct agent_vdisk_info *i, bool header);

#endif
