/* The coordinator's event log: a bounded ring of what happened to the cluster (joined, lost,
 * fenced, rejoined, quorum gained or lost, removed, refused joins), oldest dropped first, for
 * `holdfastctl cluster status`. Pure: the caller gives both clocks. */
#ifndef HOLDFAST_CSV_COORD_COORD_EVENT_H
#define HOLDFAST_CSV_COORD_COORD_EVENT_H

#include <stdint.h>

#define COORD_EVENTS_MAX    256
#define COORD_EVENT_TEXT    200
#define COORD_EVENT_HOSTLEN 64

enum coord_event_kind {
	COORD_EV_JOINED = 1,
	COORD_EV_LOST,
	COORD_EV_FENCED,
	COORD_EV_REJOINED,
	COORD_EV_QUORUM_GAINED,
	COORD_EV_QUORUM_LOST,
	COORD_EV_REMOVED,
	COORD_EV_REFUSED, /* a join or connection was refused */
	COORD_EV_FENCE_FAILED,
	COORD_EV_POOL_ALERT,	     /* a pool's free space fell to its alert threshold */
	COORD_EV_POOL_ALERT_CLEARED, /* and rose above it again */
	COORD_EV_POOL_OFFLINE,	     /* a block pool's device is missing or cannot be mounted */
};

struct coord_event {
	uint64_t seq;	 /* 1, 2, ... over the life of the process */
	int64_t mono_ns; /* box monotonic clock */
	int64_t wall_ms; /* wall clock, for people */
	enum coord_event_kind kind;
	char host[COORD_EVENT_HOSTLEN]; /* "" when no host is concerned */
	char text[COORD_EVENT_TEXT];
};

struct coord_events {
	struct coord_event ring[COORD_EVENTS_MAX];
	uint64_t total; /* events ever added; the ring holds the last COORD_EVENTS_MAX */
};

void coord_events_init(struct coord_events *e);
/* Record an event; host may be NULL, text is cut to fit. Returns the stored event. */
const struct coord_event *coord_events_add(struct coord_events *e, int64_t mono_ns, int64_t wall_ms,
					   enum coord_event_kind kind, const char *host,
					   const char *text);
/* How many are held, and the i-th of them, oldest first (NULL when out of range). */
unsigned coord_events_len(const struct coord_events *e);
const struct coord_event *coord_events_get(const struct coord_events *e, unsigned i);
const char *coord_event_kind_name(enum coord_event_kind k);

#endif
