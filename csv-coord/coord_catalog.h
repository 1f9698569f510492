/* The shared-volume catalog inside the coord plane: the pool_* and vdisk_* control commands,
 * each checked for quorum and epoch by the catalog (csv-coord/catalog.h), group-committed per
 * loop iteration, and carried to the target (lun_add, lun_resize, lun_remove, lun_access
 * through the parent's relay) before they are acknowledged. At start every ready disk is
 * exported again with its access policy. docs/coordinator.md, "Shared volumes". */
#ifndef HOLDFAST_CSV_COORD_COORD_CATALOG_H
#define HOLDFAST_CSV_COORD_COORD_CATALOG_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "csv-coord/coord_event.h"
#include "csv-coord/coord_hosts.h"
#include "csv-coord/quorum.h"
#include "lib/config.h"

/* The answer to a relayed request (a JSON object, borrowed for the call). */
typedef void (*coord_catalog_reply_fn)(void *ctx, json_t *reply);

/* What the coord loop lends the catalog part. */
struct coord_catalog_env {
	const struct hf_config *cfg;
	struct coord_hosts *hosts;
	const struct quorum *q;
	/* Send req (taken) to the target through the parent; cb gets the answer exactly once,
	 * later. Returns 0, or a negative errno when nothing was sent (cb is then never called). */
	int (*relay)(json_t *req, coord_catalog_reply_fn cb, void *ctx);
	/* Answer control request ctl_id with o (taken). */
	void (*reply)(uint32_t ctl_id, json_t *o);
	/* Record an event in the coordinator's log (a pool's free-space alert turning on or
	 * off); NULL: the catalog part only logs it. */
	void (*event)(enum coord_event_kind kind, const char *host, const char *text);
};

/* Open (and reconcile) the catalog in the data folder. A failure is logged and leaves the
 * catalog commands answering an error; coord keeps running, because fencing matters more. */
int coord_catalog_open(const struct coord_catalog_env *env);
void coord_catalog_close(void);

/* Export every ready disk at the target (lun_add) and apply its access policy (epoch = the
 * disk's epoch). What fails is retried from coord_catalog_tick(). */
void coord_catalog_start_exports(void);

/* The target plane started again (lib/proc.h restarted it) with none of the LUNs added at run
 * time: export every ready disk again, with its access policy. */
void coord_catalog_target_restarted(void);
/* Has every export and policy the target still has to take been tried at least once? coord
 * opens the target's logins only then (docs/coordinator.md, "A target that restarts"); a disk
 * the target keeps refusing does not hold the whole target back. */
bool coord_catalog_exports_settled(void);

/* Is cmd one of ours (pool_*, vdisk_*)? */
bool coord_catalog_handles(const char *cmd);
/* vdisk_clone answers once its intent is committed; a worker thread copies and the loop commits
 * the end from coord_catalog_tick(). vdisk_delete of a disk being cloned cancels the clone. */
/* Take a control request; it is answered later through env->reply. */
void coord_catalog_request(uint32_t ctl_id, const char *cmd, json_t *req);
/* Take a request of host host_id (the host an agent's certificate names) made through the
 * agent protocol: cmd and req as for coord_catalog_request, with the host's permissions
 * checked (docs/agent-protocol.md, "Catalog permissions"); refusals answer with the codes
 * "forbidden", "in_use", "fenced", "not_found" besides the admin's. Answered later through
 * env->reply, exactly once. */
void coord_catalog_host_request(uint32_t id, uint32_t host_id, const char *cmd, json_t *req);
/* Hand what the requests queued since the last batch to the commit thread, in one
 * catalog_commit(), unless a batch is in flight already (the queued requests then go when it
 * is done). Call it at the end of every loop iteration. */
void coord_catalog_flush(void);
/* The eventfd the commit thread signals when a batch is durable (-1: none, the catalog is not
 * open or commits run in the loop): the loop watches it for reading and then calls
 * coord_catalog_committed(), which answers for the batch and hands over the next one. */
int coord_catalog_fd(void);
void coord_catalog_committed(void);
/* Periodic: retries of exports and access policies the target has not taken yet, a new
 * access policy for every disk when the cluster's member initiators changed, and once a second
 * the pools' free space (an event when a pool's alert turns on or off). */
void coord_catalog_tick(int64_t now_ns);

#endif
