#include "csv-coord/coord_event.h"

#include <stdio.h>
#include <string.h>

void coord_events_init(struct coord_events *e)
{
	memset(e, 0, sizeof(*e));
}

const struct coord_event *coord_events_add(struct coord_events *e, int64_t mono_ns, int64_t wall_ms,
					   enum coord_event_kind kind, const char *host,
					   const char *text)
{
	struct coord_event *ev = &e->ring[e->total % COORD_EVENTS_MAX];

	memset(ev, 0, sizeof(*ev));
	ev->seq = ++e->total;
	ev->mono_ns = mono_ns;
	ev->wall_ms = wall_ms;
	ev->kind = kind;
	snprintf(ev->host, sizeof(ev->host), "%s", host ? host : "");
	snprintf(ev->text, sizeof(ev->text), "%s", text ? text : "");
	return ev;
}

unsigned coord_events_len(const struct coord_events *e)
{
	return e->total < COORD_EVENTS_MAX ? (unsigned)e->total : COORD_EVENTS_MAX;
}

const struct coord_event *coord_events_get(const struct coord_events *e, unsigned i)
{
	unsigned n = coord_events_len(e);
	uint64_t first = e->total - n;

	if (i >= n)
		return NULL;
	return &e->ring[(first + i) % COORD_EVENTS_MAX];
}

const char *coord_event_kind_name(enum coord_event_kind k)
{
	switch (k) {
	case COORD_EV_JOINED:
		return "joined";
	case COORD_EV_LOST:
		return "lost";
	case COORD_EV_FENCED:
		return "fenced";
	case COORD_EV_REJOINED:
		return "rejoined";
	case COORD_EV_QUORUM_GAINED:
		return "quorum_gained";
	case COORD_EV_QUORUM_LOST:
		return "quorum_lost";
	case COORD_EV_REMOVED:
		return "removed";
	case COORD_EV_REFUSED:
		return "refused";
	case COORD_EV_FENCE_FAILED:
		return "fence_failed";
	case COORD_EV_POOL_ALERT:
		return "pool_alert";
	case COORD_EV_POOL_ALERT_CLEARED:
		return "pool_alert_cleared";
	case COORD_EV_POOL_OFFLINE:
		return "pool_offline";
	default:
		return "unknown";
	}
}
