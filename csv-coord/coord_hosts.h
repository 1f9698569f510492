/* The coordinator's host table: every host that ever joined (name, id, certificate
 * fingerprint, initiator IQNs, epoch, fenced and removed flags), kept in one JSON file in the
 * data folder and written through lib/atomic_file.h before any change is acknowledged. The
 * runtime lease of each host (csv-coord/lease.h) lives beside it but is not persisted: after a
 * restart a host holds no lease until it heartbeats again, and a host that was fenced stays
 * fenced until it rejoins. No sockets, no clock. */
#ifndef HOLDFAST_CSV_COORD_COORD_HOSTS_H
#define HOLDFAST_CSV_COORD_COORD_HOSTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csv-coord/agent_proto.h"
#include "csv-coord/lease.h"
#include "lib/tls.h"

#define COORD_HOSTS_MAX	    64 /* QUORUM_MAX_HOSTS */
#define COORD_HOST_NAME_MAX 63 /* CA_NAME_MAX */
#define COORD_HOSTS_VERSION 1

struct coord_host {
	/* Persisted. */
	uint32_t id; /* >= 1, never reused */
	char name[COORD_HOST_NAME_MAX + 1];
	uint8_t fp[TLS_FINGERPRINT_LEN]; /* SHA-256 of the host certificate's DER */
	char iqn[AGENT_MAX_IQNS][AGENT_IQN_MAX + 1];
	unsigned n_iqn;
	uint64_t epoch;
	bool enrolled; /* joined at least once; a configured host that never did is not */
	bool fenced;   /* fenced at the target under epoch; must rejoin with epoch + 1 */
	bool removed;  /* the admin removed it: its certificate is refused */
	bool started;  /* has held a lease since it enrolled (its agent ran); absent in an older
			* file: true */
	unsigned votes;
	/* Runtime only. */
	struct lease_host lease;
	bool leased;	     /* holds a lease in quorum's eyes (false after a restart) */
	bool fence_inflight; /* a fence request is at the target */
	bool unfence_inflight;
	bool fence_confirmed;	/* the target answered the fence of this epoch */
	uint16_t fence_reason;	/* AGENT_E_LEASE_EXPIRED or AGENT_E_ADMIN_REMOVED */
	int64_t fence_retry_ns; /* do not resend a failed fence before this box time */
	int64_t last_hb_ns;	/* box time of the last accepted heartbeat, 0: none */
	int64_t declared_ns;	/* box time the host was declared lost, 0: not by a lease */
	int64_t last_hb_gap_ns; /* at the declaration: how long since the last heartbeat */
};

struct coord_hosts {
	struct coord_host h[COORD_HOSTS_MAX];
	unsigned n;
	uint32_t next_id;
};

void coord_hosts_init(struct coord_hosts *t);

/* Lookups; removed and never-enrolled hosts are found by name and id but never by
 * fingerprint. NULL if none. */
struct coord_host *coord_hosts_by_name(struct coord_hosts *t, const char *name);
struct coord_host *coord_hosts_by_id(struct coord_hosts *t, uint32_t id);
struct coord_host *coord_hosts_by_fp(struct coord_hosts *t, const uint8_t fp[TLS_FINGERPRINT_LEN]);

/* Add a host with a fresh id (-EEXIST for a known name, -ENOSPC when full, -EINVAL for a bad
 * name or IQN count). The new entry is returned through out. */
int coord_hosts_add(struct coord_hosts *t, const char *name, unsigned votes,
		    struct coord_host **out);

/* The persisted part as JSON text (malloc'd, NUL-terminated) and back. parse refuses (-EBADMSG)
 * anything it cannot take whole: a bad version, a missing or out-of-range field, a duplicate
 * name, id or live fingerprint. On failure t is left empty. */
int coord_hosts_dump(const struct coord_hosts *t, char **text);
int coord_hosts_parse(struct coord_hosts *t, const char *text, size_t len);

/* The file: load (-ENOENT when absent, t empty) and save (atomic, mode 0600). */
int coord_hosts_load(struct coord_hosts *t, const char *path);
int coord_hosts_save(const struct coord_hosts *t, const char *path);

#endif
