/* Cluster quorum with the box as witness: see quorum.h for the rule and the tie-break. */
#include <errno.h>
#include <string.h>

#include "csv-coord/quorum.h"

int quorum_init(struct quorum *q, unsigned box_votes, bool wait_for_all)
{
	if (box_votes < 1 || box_votes > QUORUM_MAX_VOTES)
		return -EINVAL;
	memset(q, 0, sizeof(*q));
	q->box_votes = box_votes;
	q->wait_for_all = wait_for_all;
	/* Without wait_for_all there is nothing to wait for. */
	q->wfa_met = !wait_for_all;
	q->quorate = false;
	return 0;
}

static struct quorum_member *find(struct quorum *q, uint32_t host_id)
{
	for (unsigned i = 0; i < q->n_hosts; i++)
		if (q->hosts[i].host_id == host_id)
			return &q->hosts[i];
	return NULL;
}

static const struct quorum_member *find_const(const struct quorum *q, uint32_t host_id)
{
	return find((struct quorum *)q, host_id);
}

unsigned quorum_votes_total(const struct quorum *q)
{
	unsigned t = q->box_votes;

	for (unsigned i = 0; i < q->n_hosts; i++)
		t += q->hosts[i].votes;
	return t;
}

unsigned quorum_votes_present(const struct quorum *q)
{
	unsigned p = q->box_votes;

	for (unsigned i = 0; i < q->n_hosts; i++)
		if (q->hosts[i].leased)
			p += q->hosts[i].votes;
	return p;
}

unsigned quorum_votes_needed(const struct quorum *q)
{
	return quorum_votes_total(q) / 2 + 1;
}

static bool all_joined_once(const struct quorum *q)
{
	for (unsigned i = 0; i < q->n_hosts; i++)
		if (!q->hosts[i].joined_once)
			return false;
	return true;
}

/* Recompute after every change and record the transition, if there is one. A cluster with no
 * configured host is never quorate: the box alone is not a cluster. */
static void update(struct quorum *q, enum quorum_reason reason, uint32_t host_id, int64_t now)
{
	struct quorum_event *ev;
	unsigned present = quorum_votes_present(q), total = quorum_votes_total(q);
	bool quorate;

	if (!q->wfa_met && q->n_hosts > 0 && all_joined_once(q)) {
		q->wfa_met = true;
		reason = QUORUM_R_WAIT_FOR_ALL;
	}
	quorate = q->wfa_met && q->n_hosts > 0 && 2 * present > total;
	if (quorate == q->quorate)
		return;
	q->quorate = quorate;
	ev = &q->hist[q->hist_next];
	ev->time_ns = now;
	ev->quorate = quorate;
	ev->reason = reason;
	ev->host_id = host_id;
	ev->present = present;
	ev->total = total;
	q->hist_next = (q->hist_next + 1) % QUORUM_HISTORY;
	q->hist_total++;
}

int quorum_add_host(struct quorum *q, uint32_t host_id, unsigned votes, int64_t now)
{
	struct quorum_member *m;

	if (host_id == QUORUM_NO_HOST || votes < 1 || votes > QUORUM_MAX_VOTES)
		return -EINVAL;
	if (find(q, host_id))
		return -EEXIST;
	if (q->n_hosts == QUORUM_MAX_HOSTS)
		return -ENOSPC;
	m = &q->hosts[q->n_hosts++];
	m->host_id = host_id;
	m->votes = votes;
	m->leased = false;
	m->joined_once = false;
	update(q, QUORUM_R_HOST_ADDED, host_id, now);
	return 0;
}

int quorum_remove_host(struct quorum *q, uint32_t host_id, int64_t now)
{
	struct quorum_member *m = find(q, host_id);

	if (!m)
		return -ENOENT;
	*m = q->hosts[--q->n_hosts];
	update(q, QUORUM_R_HOST_REMOVED, host_id, now);
	return 0;
}

int quorum_host_joined(struct quorum *q, uint32_t host_id, int64_t now)
{
	struct quorum_member *m = find(q, host_id);

	if (!m)
		return -ENOENT;
	m->leased = true;
	m->joined_once = true;
	update(q, QUORUM_R_HOST_JOINED, host_id, now);
	return 0;
}

int quorum_host_lost(struct quorum *q, uint32_t host_id, int64_t now)
{
	struct quorum_member *m = find(q, host_id);

	if (!m)
		return -ENOENT;
	m->leased = false;
	update(q, QUORUM_R_LEASE_LOST, host_id, now);
	return 0;
}

bool quorum_is_quorate(const struct quorum *q)
{
	return q->quorate;
}

bool quorum_allows_ownership_change(const struct quorum *q, uint32_t new_owner)
{
	const struct quorum_member *m;

	if (!q->quorate)
		return false;
	if (new_owner == QUORUM_NO_HOST)
		return true;
	m = find_const(q, new_owner);
	return m && m->leased;
}

unsigned quorum_history_len(const struct quorum *q)
{
	return q->hist_total < QUORUM_HISTORY ? (unsigned)q->hist_total : QUORUM_HISTORY;
}

const struct quorum_event *quorum_history_get(const struct quorum *q, unsigned i)
{
	unsigned n = quorum_history_len(q);

	if (i >= n)
		return NULL;
	/* The oldest kept event sits n slots behind the next free one. */
	return &q->hist[(q->hist_next + QUORUM_HISTORY - n + i) % QUORUM_HISTORY];
}

const char *quorum_reason_name(enum quorum_reason r)
{
	switch (r) {
	case QUORUM_R_HOST_ADDED:
		return "host added";
	case QUORUM_R_HOST_REMOVED:
		return "host removed";
	case QUORUM_R_HOST_JOINED:
		return "host joined";
	case QUORUM_R_LEASE_LOST:
		return "lease lost";
	case QUORUM_R_WAIT_FOR_ALL:
		return "every host joined (wait_for_all)";
	default:
		return "invalid";
	}
}
