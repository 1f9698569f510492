/* The coord plane of holdfastd: the cluster coordinator. It serves the agents' join and agent
 * ports over TLS (csv-coord/agent_proto.h), keeps the host table, leases and quorum, fences a
 * lost or removed host at the target through the parent's relay, and answers the cluster
 * control commands (docs/coordinator.md). It runs only when the configuration has a cluster
 * section. */
#ifndef HOLDFAST_CSV_COORD_COORD_H
#define HOLDFAST_CSV_COORD_COORD_H

#include "lib/config.h"

int coord_main(const struct hf_config *cfg, int parent_fd);

#endif
