/* The target plane: the process that serves iSCSI. holdfastd's supervisor starts it with the
 * parsed configuration and its end of the message channel. */
#ifndef HOLDFAST_TARGET_TARGET_H
#define HOLDFAST_TARGET_TARGET_H

#include "lib/config.h"

/* The child's main: open the LUNs, start the workers, listen on the portals, serve until the
 * parent says stop. Returns the process exit code. */
int target_main(const struct hf_config *cfg, int parent_fd);

/* Answer one control request (a JSON object with "cmd": "targets", "luns" or "sessions");
 * *reply is malloc'd JSON text. Returns 0 or a negative errno. */
int target_ctl(const char *request, char **reply);

#endif
