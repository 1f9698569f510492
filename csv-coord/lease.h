/* Host leases, pure logic: the box side (renew on a heartbeat, declare a host lost when its
 * lease runs out, fence, rejoin under a new epoch) and the agent side (when the host must fence
 * itself). Time is always an argument, in nanoseconds of a monotonic clock; nothing here reads a
 * clock, sleeps or does I/O. Every timer derives from one setting, the heartbeat interval H, and
 * the miss threshold M. The derivation of each constant, with its inequalities, is in
 * docs/coordinator-timing.md; the names below match the symbols used there. */
#ifndef HOLDFAST_CSV_COORD_LEASE_H
#define HOLDFAST_CSV_COORD_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#define LEASE_NS_PER_MS 1000000LL
#define LEASE_NS_PER_S	1000000000LL

/* The one setting: H, and the miss threshold M. */
#define LEASE_DEFAULT_HEARTBEAT_NS LEASE_NS_PER_S
#define LEASE_DEFAULT_MISS	   5u
/* Bounds that keep the derivation valid: M >= 3 leaves the agent at least one heartbeat
 * interval between renewing and fencing; the H bounds keep the products below inside int64. */
#define LEASE_MIN_HEARTBEAT_NS (10 * LEASE_NS_PER_MS)
#define LEASE_MAX_HEARTBEAT_NS (60 * LEASE_NS_PER_S)
#define LEASE_MIN_MISS	       3u
#define LEASE_MAX_MISS	       100u

/* rho: the largest rate error of either monotonic clock against real time, in parts per
 * million. 1% is far beyond a crystal (50-100 ppm) or NTP slewing (500 ppm), so it also covers a
 * VM whose clock is steered by its host. docs/coordinator-timing.md, "Assumptions". */
#define LEASE_SKEW_PPM 10000u
/* G = H / LEASE_GRACE_DIV: the box waits this long past M*H before it declares a host lost. It
 * absorbs the agent's scheduling jitter in sending heartbeats; safety does not need it. */
#define LEASE_GRACE_DIV 10

struct lease_config {
	int64_t heartbeat_ns; /* H */
	unsigned miss;	      /* M */
};

void lease_config_default(struct lease_config *c);
/* 0, or -EINVAL when H or M is outside the bounds above. */
int lease_config_check(const struct lease_config *c);

/* The derived timers (docs/coordinator-timing.md, "Constants"). */
int64_t lease_grace_ns(const struct lease_config *c);		  /* G = H / 10 */
int64_t lease_box_timeout_ns(const struct lease_config *c);	  /* L = M*H + G */
int64_t lease_agent_margin_ns(const struct lease_config *c);	  /* m = ceil(rho*(2M-1)*H) */
int64_t lease_agent_fence_after_ns(const struct lease_config *c); /* F = (M-1)*H - m */
/* The same two with rho given (ppm) instead of LEASE_SKEW_PPM: m = ceil(rho*(2M-1)*H) and
 * F = (M-1)*H - m. The agent uses the larger of its rho and the box's. */
int64_t lease_agent_margin_ppm_ns(const struct lease_config *c, uint32_t skew_ppm);
int64_t lease_agent_fence_after_ppm_ns(const struct lease_config *c, uint32_t skew_ppm);
/* The largest F for which inequality (4) of docs/coordinator-timing.md holds against a box
 * lease timeout L and a fence budget K: F/(1-rho) + K <= L/(1+rho), rounded down. Negative when
 * no F does. skew_ppm < 1000000. */
int64_t lease_agent_fence_limit_ns(int64_t box_timeout_ns, int64_t fence_budget_ns,
				   uint32_t skew_ppm);
/* K = H: how long the agent's fence action may take to stop every write, counted from the
 * moment the agent's deadline passes. The inequality holds with this budget. */
int64_t lease_fence_budget_ns(const struct lease_config *c);

/* Box side. */
enum lease_state {
	LEASE_JOINED = 0,   /* enrolled, lease granted from the join, no heartbeat yet */
	LEASE_LIVE = 1,	    /* renewing */
	LEASE_LOST = 2,	    /* the lease ran out; the target is being told to fence */
	LEASE_FENCED = 3,   /* the target refuses the host's I/O and logins */
	LEASE_REJOINED = 4, /* back under epoch + 1, no heartbeat of the new epoch yet */
	LEASE_ENROLLED = 5, /* enrolled (joined), never ran: no lease, nothing to fence; the
			     * first heartbeat starts the lease */
};

struct lease_host {
	uint32_t host_id;
	enum lease_state state;
	uint64_t epoch;
	uint64_t last_seq;     /* highest heartbeat sequence accepted under this epoch */
	int64_t last_renew_ns; /* box time the lease was last granted or renewed */
	int64_t agent_send_ns; /* the agent's send time of the last accepted heartbeat */
	int64_t changed_ns;    /* box time of the last state change */
};

const char *lease_state_name(enum lease_state s);

/* Grant a lease under epoch (>= 1) from now without a heartbeat: after a box restart, for a
 * host that may be running, so that one that never heartbeats again is still declared lost on
 * time. */
void lease_host_join(struct lease_host *h, uint32_t host_id, uint64_t epoch, int64_t now);
/* A host that has enrolled (JOIN_REQUEST) but never run: it holds no lease, so nothing expires
 * and nothing is fenced; its first heartbeat under epoch starts the lease (ENROLLED -> LIVE). A
 * host that never ran cannot have written: it owns nothing without a lease (quorum.h). */
void lease_host_enrol(struct lease_host *h, uint32_t host_id, uint64_t epoch, int64_t now);

/* A heartbeat (epoch, seq) received at box time `now`. On success the lease runs until *until;
 * for an ENROLLED host this is the start of its first lease.
 * -EPERM: the host is lost or fenced (or its lease ran out before this heartbeat arrived: it is
 *         marked lost now); it must learn that it was fenced and rejoin.
 * -ESTALE: the epoch is not the host's current one, or seq is not above the last accepted one.
 * A refused heartbeat changes nothing but a lost lease. */
int lease_renew(struct lease_host *h, const struct lease_config *c, uint64_t epoch, uint64_t seq,
		int64_t agent_send_ns, int64_t now, int64_t *until);

/* True once now > last_renew + L. Only JOINED, LIVE and REJOINED hosts hold a lease. */
bool lease_expired(const struct lease_host *h, const struct lease_config *c, int64_t now);
bool lease_holds(const struct lease_host *h, const struct lease_config *c, int64_t now);

/* Run at every box tick: 1 when this call declared the host lost, 0 otherwise. */
int lease_tick(struct lease_host *h, const struct lease_config *c, int64_t now);

/* The target confirmed the fence (LOST -> FENCED). The admin's removal fences from any state.
 * -EALREADY when already fenced. */
int lease_fenced(struct lease_host *h, int64_t now);
int lease_admin_fence(struct lease_host *h, int64_t now);

/* A fenced host asks to come back under new_epoch, which must be its epoch + 1 (-ESTALE
 * otherwise). -EBUSY while the host is lost but not yet fenced at the target; -EINVAL when it
 * was never fenced. On success the host is REJOINED with a fresh lease and seq restarts. */
int lease_rejoin(struct lease_host *h, uint64_t new_epoch, int64_t now);

/* Lease age: how long since the last grant or renewal. */
int64_t lease_age_ns(const struct lease_host *h, int64_t now);

/* Agent side. The agent keeps the send times of its last heartbeats; an ACK names the sequence
 * it answers, and the agent's deadline counts from that heartbeat's SEND time. An ACK for a
 * heartbeat older than the last LEASE_AGENT_INFLIGHT sent is ignored, which can only make the
 * agent fence earlier, never later. */
#define LEASE_AGENT_INFLIGHT 16

struct lease_agent {
	struct lease_config cfg;
	int64_t fence_after_ns; /* F: from cfg, or the agent's effective one (agent_timing.h) */
	uint64_t epoch;
	uint64_t next_seq;
	uint64_t acked_seq;    /* highest acknowledged sequence (0: the join itself) */
	int64_t acked_send_ns; /* agent time the acknowledged heartbeat or join was sent */
	bool fenced;	       /* sticky until lease_agent_start() under a new epoch */
	struct {
		uint64_t seq;
		int64_t send_ns;
	} sent[LEASE_AGENT_INFLIGHT];
};

/* The box answered the JOIN or REJOIN request that the agent sent at agent time req_send_ns:
 * the lease starts from that send time, under `epoch`. */
void lease_agent_start(struct lease_agent *a, const struct lease_config *c, uint64_t epoch,
		       int64_t req_send_ns);
/* Records a heartbeat sent now and gives its sequence number. -EPERM once fenced. */
int lease_agent_send(struct lease_agent *a, int64_t now, uint64_t *seq);
/* An ACK for (epoch, seq). fenced_flag is the box's fenced flag: the agent becomes fenced.
 * -ESTALE: another epoch, or a sequence not sent or already overtaken (the deadline never moves
 * back). -EPERM: the agent is fenced (by the flag or by its own deadline). */
int lease_agent_ack(struct lease_agent *a, uint64_t epoch, uint64_t seq, bool fenced_flag,
		    int64_t now);
/* Use F = fence_after_ns from now on (the agent learnt the box's timing). A smaller F moves the
 * deadline earlier at once; the caller guarantees that a larger one is still safe. */
void lease_agent_set_fence_after(struct lease_agent *a, int64_t fence_after_ns);
/* The agent time at which it must run its fence action: acked_send + F. */
int64_t lease_agent_deadline(const struct lease_agent *a);
/* True (and the agent becomes fenced) once now >= the deadline. */
bool lease_agent_must_fence(struct lease_agent *a, int64_t now);

#endif
