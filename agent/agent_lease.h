/* The agent's lease, as decisions over a clock it is given: when to send the next heartbeat,
 * when to fence itself, what an ACK or a FENCED notice changes, how long the watchdog may be
 * armed for. It wraps the agent side of csv-coord/lease.h (the deadline is the SEND time of the
 * last acknowledged heartbeat plus F) and adds the scheduling the daemon needs. Pure: time is
 * an argument (CLOCK_BOOTTIME nanoseconds in the daemon, a fake clock in the tests). */
#ifndef HOLDFAST_AGENT_LEASE_H
#define HOLDFAST_AGENT_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/agent_timing.h"
#include "csv-coord/lease.h"

enum agent_lease_action {
	AGENT_LEASE_IDLE = 0,  /* nothing is due */
	AGENT_LEASE_SEND = 1,  /* send a heartbeat now (then call agent_lease_sent) */
	AGENT_LEASE_FENCE = 2, /* the deadline has passed: run the fence action now */
};

struct agent_lease_ctl {
	struct lease_agent la;
	struct agent_timing t;	   /* H to send at, F, the box's L (agent_timing.h) */
	bool active;		   /* a lease has been started (resume, join or rejoin) */
	bool fence_reported;	   /* AGENT_LEASE_FENCE was returned for this epoch */
	bool confirmed;		   /* an ACK has renewed the lease since it (re)started */
	uint64_t fence_done_epoch; /* the epoch whose fence action has completed, 0: none */
	int64_t next_hb_ns;	   /* when the next heartbeat is due */
};

/* Start a lease under epoch whose last known grant counts from base_send_ns: the send time of
 * the JOIN or REJOIN request, or of the last acknowledged heartbeat before a restart. The
 * first heartbeat is due at once. */
void agent_lease_begin(struct agent_lease_ctl *l, const struct agent_timing *t, uint64_t epoch,
		       int64_t base_send_ns);

/* New timing (the box announced it at HELLO_ACK) for the lease under way: the deadline becomes
 * acked send + the new F at once, and the next heartbeat is due no later than the new H after
 * the last one. */
void agent_lease_set_timing(struct agent_lease_ctl *l, const struct agent_timing *t);

/* A restarted agent that knows nothing about its last ACK assumes it was sent F - H ago: with
 * the box reachable the first heartbeat is acknowledged well within H, and without it the agent
 * fences itself H after it starts. With a hint from this boot (the last acknowledged send time
 * under the same epoch) the hint is used as it is, even when it is long past. */
int64_t agent_lease_resume_base(const struct agent_timing *t, bool have_hint, int64_t hint_send_ns,
				int64_t now);

/* The first thing to call whenever the agent wakes: check the deadline before anything else
 * (an ACK that has waited in the socket while the process was stopped must not count first).
 * FENCE is returned once per epoch; SEND only when connected and not fenced. */
enum agent_lease_action agent_lease_poll(struct agent_lease_ctl *l, int64_t now, bool connected);

/* A heartbeat is being sent now: its sequence number, and the lease the agent believes it has
 * left from now (the deadline minus now, for the heartbeat's lease_ns). -EPERM once fenced. */
int agent_lease_sent(struct agent_lease_ctl *l, int64_t now, uint64_t *seq, uint64_t *lease_ns);

/* An ACK (epoch, seq, fenced flag) arrived at now. 0: the lease is renewed, and *first is true
 * when this is the first renewal since the lease (re)started (log "lease ok"). -EPERM: the
 * agent is fenced (flag set, or its deadline passed first); -ESTALE: another epoch or an old or
 * unknown sequence, ignored. */
int agent_lease_ack(struct agent_lease_ctl *l, uint64_t epoch, uint64_t seq, bool fenced_flag,
		    int64_t now, bool *first);

/* The box says the epoch is fenced (FENCED, or ERROR FENCED). true when that is the agent's
 * current epoch (or the agent holds no lease): the agent is fenced from now on. */
bool agent_lease_box_fenced(struct agent_lease_ctl *l, uint64_t epoch);

bool agent_lease_fenced(const struct agent_lease_ctl *l);
/* Whether the fence action still has to run for the current epoch, and that it has run. */
bool agent_lease_fence_pending(const struct agent_lease_ctl *l);
void agent_lease_fence_done(struct agent_lease_ctl *l);

/* The agent's own deadline: acked send + F. */
int64_t agent_lease_deadline(const struct agent_lease_ctl *l);
/* The earliest agent-clock instant at which the box may declare the lease lost: acked send +
 * L(1-rho)/(1+rho) (docs/coordinator-timing.md, "The inequality"). */
int64_t agent_lease_box_expiry(const struct agent_lease_ctl *l);
/* The last acknowledged send time. */
int64_t agent_lease_acked_send(const struct agent_lease_ctl *l);

/* When the agent must next wake: the deadline, and the next heartbeat while connected. */
int64_t agent_lease_next_wake(const struct agent_lease_ctl *l, int64_t now, bool connected);

/* The watchdog timeout to arm at now, in whole seconds not above the time left to the
 * deadline: 0 when less than a second is left (do not pet: let it fire, or fence first). */
unsigned agent_lease_watchdog_timeout_s(const struct agent_lease_ctl *l, int64_t now);

#endif
