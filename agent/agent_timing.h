/* The agent's lease timing: which heartbeat interval it sends at and how long after the send
 * time of its last acknowledged heartbeat it fences itself (F), decided from the timing the box
 * announces (HELLO_ACK, JOIN_RESPONSE: H, M, its lease timeout L and its clock-rate bound rho)
 * and the operator's --heartbeat-ms / --miss-threshold, which may only make the agent more
 * conservative. Pure: docs/coordinator-timing.md, "Timing from the box", is the argument. */
#ifndef HOLDFAST_AGENT_TIMING_H
#define HOLDFAST_AGENT_TIMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csv-coord/agent_proto.h"
#include "csv-coord/lease.h"

/* The largest clock-rate bound the agent accepts from a box (10%): beyond it the margins eat
 * the whole lease. */
#define AGENT_TIMING_SKEW_PPM_MAX 100000u

/* What the operator gave (0: not given). */
struct agent_timing_override {
	int64_t heartbeat_ns;
	unsigned miss;
};

/* Why an override was not taken (bits of agent_timing.ignored). */
#define AGENT_TIMING_IGNORED_HEARTBEAT 0x1 /* --heartbeat-ms above the box's H */
#define AGENT_TIMING_IGNORED_FENCE     0x2 /* the flags would fence later than the box allows */

struct agent_timing {
	struct agent_lease_timing box; /* the box's H, M, L, rho this was decided from */
	uint32_t skew_ppm;	       /* rho used: the larger of the box's and LEASE_SKEW_PPM */
	int64_t heartbeat_ns;	       /* the interval the agent sends heartbeats at */
	unsigned miss;		 /* the M F was derived with (the box's, or --miss-threshold) */
	int64_t fence_after_ns;	 /* F: fence this long after the last acked send */
	int64_t fence_limit_ns;	 /* the largest safe F against the box's L */
	int64_t fence_budget_ns; /* K: the box's H */
	unsigned ignored;	 /* AGENT_TIMING_IGNORED_* */
	bool overridden;	 /* the flags made F or H smaller than the box's */
};

/* Is the announced timing complete (all four fields)? An older box sends none of them. */
bool agent_timing_announced(const struct agent_lease_timing *bt);

/* The box's timing as this build would derive it from H and M (lease.h): what a box announces
 * today, and what the agent assumes when a box announces nothing (from the flags, or the
 * defaults). */
void agent_timing_box_from_config(const struct lease_config *c, struct agent_lease_timing *bt);

/* The decision. 0 and *t; -EINVAL (why says) when the box's timing cannot carry a lease (out of
 * the bounds of lease.h, rho above AGENT_TIMING_SKEW_PPM_MAX, or no F that is both safe and
 * longer than a heartbeat interval). An override that would make the agent fence later, or send
 * less often, than the box's timing allows is ignored and flagged in t->ignored; the caller
 * refuses it at start or warns. */
int agent_timing_decide(const struct agent_lease_timing *bt, const struct agent_timing_override *o,
			struct agent_timing *t, char *why, size_t cap);

/* The timing of a lease_config with no box and no override (the tests' and the defaults'). */
void agent_timing_from_config(const struct lease_config *c, struct agent_timing *t);

/* One line for the log: "H 1000 ms, M 5, fence after 3910 ms without an ack (box lease 5100
 * ms, rho 1.0%)". */
int agent_timing_describe(const struct agent_timing *t, char *buf, size_t cap);

#endif
