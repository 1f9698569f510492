/* Fencing at the target. When the coordinator declares a host lost, or an admin removes it,
 * the storage itself stops that host: every in-flight task of its initiators is aborted on
 * every LUN and portal, their writes are refused (RESERVATION CONFLICT, as SCSI fencing
 * answers), and their logins are refused until the host is unfenced under a newer epoch.
 * Registrations and reservations are left alone: fencing never edits PR state. */
#ifndef HOLDFAST_TARGET_FENCE_H
#define HOLDFAST_TARGET_FENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TGT_FENCE_MAX_INITIATORS 16

struct tgt_fence_result {
	unsigned sessions;   /* sessions found and fenced */
	uint64_t refused_ns; /* from the request until every worker refuses writes */
	uint64_t drained_ns; /* from the request until every aborted task is gone */
};

/* Fence a host: blocks the caller (the target's main thread) until every aborted task is
 * gone. An older epoch than the host's current fence is refused with -ESTALE. */
int tgt_fence(const char *host, const char *const *initiators, size_t n, uint32_t epoch,
	      struct tgt_fence_result *res);

/* Lift a host's fence: epoch must be newer than the one it was fenced under (-ESTALE
 * otherwise, -ENOENT when the host is not fenced). Its live sessions may write again. */
int tgt_unfence(const char *host, uint32_t epoch);

/* Is this initiator name fenced? Called with tgt_global.lock held (login). */
bool tgt_fence_refuses_login_locked(const char *initiator);

/* A target that starts in a cluster knows none of the fences the coordinator gave the run before
 * it (they live in memory). Until the coordinator has given them again it holds logins: every
 * normal session's login is refused with Service Unavailable (RFC 7143 11.13.5: status 0x0301,
 * the initiator retries), discovery still works. docs/coordinator.md, "A target that restarts".
 * tgt_fence_hold_logins() at start, tgt_fence_open_logins() from the control request
 * logins_open, which only coord may send. */
void tgt_fence_hold_logins(void);
void tgt_fence_open_logins(void);
/* Called with tgt_global.lock held (login). */
bool tgt_fence_logins_held_locked(void);
bool tgt_fence_logins_held(void);

/* A JSON array of the fences (host, epoch, initiators, since), malloc'd. */
char *tgt_fence_list_json(void);

#endif
