/* Cluster quorum with the box as witness, pure logic: which configured hosts hold a lease, how
 * many votes that makes with the box's own vote, wait_for_all at cluster creation, and a bounded
 * history of the moments quorum was gained or lost. No clock, no I/O: the coordinator calls in
 * with the time and the lease changes it has decided (csv-coord/lease.h).
 *
 * The rule. total = the votes of every configured host + the box's votes. The cluster is quorate
 * iff wait_for_all is satisfied and
 *	present = (votes of hosts holding a lease) + box votes  >  total / 2   (2*present > total).
 * How the box breaks ties. A lease is granted only by the box, so the hosts that hold one are
 * exactly the hosts in the box's partition; a partition without the box holds no lease, its
 * agents fence themselves, and it can never be quorate. The box's vote therefore always counts
 * for the partition it can reach, and with one vote per host it turns every even split of the
 * hosts (k against k) into a majority (k + 1 of 2k + 1) for that partition. An exact half of
 * the total (possible only when the hosts' votes add up to an odd number, e.g. three hosts and
 * the box at 2 of 4) is not a majority and is not quorate: strict majority, no second tie-break.
 * So two hosts survive the loss of either one, and three hosts do not survive the loss of two. */
#ifndef HOLDFAST_CSV_COORD_QUORUM_H
#define HOLDFAST_CSV_COORD_QUORUM_H

#include <stdbool.h>
#include <stdint.h>

#define QUORUM_MAX_HOSTS 64
#define QUORUM_HISTORY	 64
#define QUORUM_MAX_VOTES 16 /* per host and for the box */
#define QUORUM_NO_HOST	 0u /* host ids start at 1 */

enum quorum_reason {
	QUORUM_R_HOST_ADDED = 1,   /* a host was configured */
	QUORUM_R_HOST_REMOVED = 2, /* the admin removed a host */
	QUORUM_R_HOST_JOINED = 3,  /* a host joined or rejoined and holds a lease */
	QUORUM_R_LEASE_LOST = 4,   /* a host's lease ran out or it was fenced */
	QUORUM_R_WAIT_FOR_ALL = 5, /* the last configured host joined for the first time */
};

struct quorum_event {
	int64_t time_ns;
	bool quorate; /* the state entered */
	enum quorum_reason reason;
	uint32_t host_id; /* the host whose change caused it, or QUORUM_NO_HOST */
	unsigned present; /* votes present after the change, box included */
	unsigned total;
};

struct quorum_member {
	uint32_t host_id;
	unsigned votes;
	bool leased;	  /* holds a lease now */
	bool joined_once; /* has joined at least once since the cluster was created */
};

struct quorum {
	struct quorum_member hosts[QUORUM_MAX_HOSTS];
	unsigned n_hosts;
	unsigned box_votes;
	bool wait_for_all; /* configured */
	bool wfa_met;	   /* every configured host has joined once (sticky) */
	bool quorate;
	struct quorum_event hist[QUORUM_HISTORY];
	unsigned hist_next;  /* slot the next event goes to */
	uint64_t hist_total; /* events ever recorded; the ring keeps the last QUORUM_HISTORY */
};

/* A new cluster: no hosts, not quorate. box_votes is 1 unless the admin gave the witness more
 * weight (1..QUORUM_MAX_VOTES). -EINVAL on a bad vote count. */
int quorum_init(struct quorum *q, unsigned box_votes, bool wait_for_all);

/* Configure a host (votes 1..QUORUM_MAX_VOTES). -EEXIST, -ENOSPC, -EINVAL. A new host does not
 * hold a lease; adding it may lose quorum, which is recorded. wait_for_all, once met, is not
 * re-armed by a host added later. */
int quorum_add_host(struct quorum *q, uint32_t host_id, unsigned votes, int64_t now);
/* The admin removes a host from the configuration. -ENOENT. */
int quorum_remove_host(struct quorum *q, uint32_t host_id, int64_t now);

/* The host joined or rejoined and holds a lease (JOINED, LIVE, REJOINED in lease.h). -ENOENT. */
int quorum_host_joined(struct quorum *q, uint32_t host_id, int64_t now);
/* The host's lease ran out, or it was fenced. -ENOENT. */
int quorum_host_lost(struct quorum *q, uint32_t host_id, int64_t now);

bool quorum_is_quorate(const struct quorum *q);
unsigned quorum_votes_present(const struct quorum *q);
unsigned quorum_votes_total(const struct quorum *q);
/* The smallest number of present votes that is a majority: total / 2 + 1. */
unsigned quorum_votes_needed(const struct quorum *q);

/* Nothing that moves VMs or disk ownership happens without quorum: true iff the cluster is
 * quorate and new_owner (unless QUORUM_NO_HOST, for a change that gives the disk to nobody)
 * is a configured host that holds a lease. */
bool quorum_allows_ownership_change(const struct quorum *q, uint32_t new_owner);

/* The history, oldest first: the number of events kept, and event i of them (NULL when out of
 * range). */
unsigned quorum_history_len(const struct quorum *q);
const struct quorum_event *quorum_history_get(const struct quorum *q, unsigned i);

const char *quorum_reason_name(enum quorum_reason r);

#endif
