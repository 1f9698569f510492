/* A logical unit: a backing store seen as a SCSI direct-access block device, with its
 * identity (unit serial, NAA name), its mode page state, the unit attentions pending for each
 * I_T nexus and its SCSI-2 reservation. One per exported backstore, shared by every session
 * and worker thread that reaches it.
 *
 * Locking: the per-command path reads block size, capacity, WCE and the "anything pending"
 * counters with atomic loads and takes no lock when no unit attention is pending and no
 * SCSI-2 reservation is held (the usual case). Otherwise it takes the LUN's mutex for a
 * short, bounded scan of its nexus table. */
#ifndef HOLDFAST_TARGET_LUN_H
#define HOLDFAST_TARGET_LUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "target/backstore.h"
#include "target/scsi.h"

struct scsi_lun;

/* Unit attentions queued per I_T nexus, at most (sam5r21 5.14: a device server may queue
 * several; when the queue is full the newest is dropped). */
#define SCSI_LUN_UA_MAX 4

/* Limits advertised in the Block Limits VPD page (sbc3r36 6.5.3); the SBC command set
 * enforces the same values. */
#define SCSI_LUN_MAX_XFER_BYTES (8u << 20) /* MAXIMUM TRANSFER LENGTH, in bytes */
/* MAXIMUM COMPARE AND WRITE LENGTH is a one-byte field: 255 blocks is the most it can say. */
#define SCSI_LUN_MAX_CAW_BLOCKS 255u
/* MAXIMUM UNMAP LBA COUNT: 1 Mi blocks per descriptor, the most initiators consider sane
 * (libiscsi's Inquiry.BlockLimits) and still 512 MiB at 512-byte blocks. */
#define SCSI_LUN_MAX_UNMAP_BLOCKS (1u << 20)
#define SCSI_LUN_MAX_UNMAP_DESCS  256u /* MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT */
/* MAXIMUM WRITE SAME LENGTH, in bytes: no more than one transfer, so an initiator can read
 * back in one command whatever one WRITE SAME wrote (libiscsi's WriteSame tests do). */
#define SCSI_LUN_MAX_WRITE_SAME_BYTES SCSI_LUN_MAX_XFER_BYTES

/* Create the LUN over an open backstore (not owned: the caller closes it after destroying
 * the LUN). box_id and name (the backstore or LUN name) derive the identity, so the same
 * box exporting the same name reports the same serial and NAA after a restart. */
int scsi_lun_create(struct backstore *bs, const uint8_t box_id[16], const char *name,
		    struct scsi_lun **out);
void scsi_lun_destroy(struct scsi_lun *lun);

/* The transport reports each I_T nexus that logs in to a target exporting this LUN. The
 * nexus is keyed by (initiator port name, relative target port id), so a session reinstated
 * with the same ISID is the same nexus. First sight: POWER ON, RESET OCCURRED (29/00) is
 * queued for it; a nexus seen again after scsi_lun_nexus_logout() gets I_T NEXUS LOSS
 * OCCURRED (29/07). */
void scsi_lun_nexus_login(struct scsi_lun *lun, const struct scsi_nexus *nx);
/* The nexus's session is gone (logout, connection loss past Time2Retain): its SCSI-2
 * reservation is released (spc2r20 5.5.1). Its unit-attention state is kept. */
void scsi_lun_nexus_logout(struct scsi_lun *lun, const struct scsi_nexus *nx);

/* LOGICAL UNIT RESET (sam5r21 6.3.3): releases the SCSI-2 reservation and queues BUS DEVICE
 * RESET FUNCTION OCCURRED (29/03) for every nexus except `by` (NULL: every nexus). Aborting the
 * LUN's tasks is the transport's part. */
void scsi_lun_reset(struct scsi_lun *lun, const struct scsi_nexus *by);
/* The backstore was resized: re-read its size and queue CAPACITY DATA HAS CHANGED (2A/09)
 * for every nexus. */
void scsi_lun_capacity_changed(struct scsi_lun *lun);
/* Queue a unit attention for every known nexus except `except` (may be NULL). */
void scsi_lun_ua_all(struct scsi_lun *lun, const struct scsi_nexus *except,
		     const struct scsi_sense *ua);
/* Queue a unit attention for one nexus (which need not have logged in before). */
void scsi_lun_ua_one(struct scsi_lun *lun, const struct scsi_nexus *nx,
		     const struct scsi_sense *ua);

uint32_t scsi_lun_block_size(const struct scsi_lun *lun);
uint64_t scsi_lun_nblocks(const struct scsi_lun *lun);
struct backstore *scsi_lun_bs(const struct scsi_lun *lun);
/* The caching mode page's WCE bit (sbc3r36 6.4.5): when false every write is FUA. */
bool scsi_lun_wce(const struct scsi_lun *lun);
const char *scsi_lun_name(const struct scsi_lun *lun);
const char *scsi_lun_serial(const struct scsi_lun *lun); /* 32 hex digits */
const uint8_t *scsi_lun_naa(const struct scsi_lun *lun); /* 16 bytes, NAA 6 */

/* Shared-volume access (the coordinator's catalog): who may see and who may write a LUN.
 * Without a policy every initiator the target admits may do both. With one, only `members`
 * (the cluster's hosts' initiators) see the LUN and only `owners` (the owning host's
 * initiators) may change it; the others of the cluster read. A policy carries the catalog's
 * epoch and an older one than the current is refused (-ESTALE), so a late message can never
 * undo an ownership change. The per-command check is one atomic load; a replaced policy is
 * freed through scsi_lun_retire once no command can still be reading it. */
enum scsi_lun_access {
	SCSI_LUN_ACCESS_NONE = 0, /* invisible: as if not mapped */
	SCSI_LUN_ACCESS_READ = 1,
	SCSI_LUN_ACCESS_WRITE = 2,
};

/* paused: the administrator's maintenance of the volume. Reads go on; every command that
 * changes the medium is held by the transport until the pause ends (then it runs, in order)
 * or until the hold limit passes (then it is answered BUSY). Pausing or resuming may reuse the
 * epoch in force. */
int scsi_lun_set_access(struct scsi_lun *lun, const char *const *owners, size_t nowners,
			const char *const *members, size_t nmembers, uint64_t epoch, bool paused);
void scsi_lun_clear_access(struct scsi_lun *lun);
enum scsi_lun_access scsi_lun_access_of(const struct scsi_lun *lun, const char *initiator);
/* Are writes to the LUN paused (maintenance)? One atomic load. */
bool scsi_lun_paused(const struct scsi_lun *lun);

/* What happens to a command that changes the medium, from the policy alone (pure apart from
 * the one atomic load of the policy): a fenced nexus and an initiator that does not own the
 * volume get RESERVATION CONFLICT, whatever the pause; the owner's write waits while the
 * volume is paused. */
enum scsi_lun_write_verdict {
	SCSI_LUN_WRITE_GO = 0,
	SCSI_LUN_WRITE_CONFLICT = 1,
	SCSI_LUN_WRITE_HOLD = 2,
};

enum scsi_lun_write_verdict scsi_lun_write_verdict(const struct scsi_lun *lun,
						   const char *initiator, bool fenced);
/* Frees a replaced policy; the target sets it to a grace-period free across its workers.
 * The default frees at once (single-threaded users such as unit tests). */
extern void (*scsi_lun_retire)(void *old);

/* For the command sets (scsi_exec.c, scsi_spc.c). */

/* Take the oldest pending unit attention of a nexus into *ua (reports and clears it, spc4r37
 * 5.14). Returns false when none is pending. */
bool scsi_lun_ua_take(struct scsi_lun *lun, const struct scsi_nexus *nx, struct scsi_sense *ua);
/* Does a SCSI-2 reservation held by another nexus exist? */
bool scsi_lun_scsi2_conflict(struct scsi_lun *lun, const struct scsi_nexus *nx);
/* RESERVE(6)/(10): 0, or -EBUSY when another nexus holds the reservation. */
int scsi_lun_scsi2_reserve(struct scsi_lun *lun, const struct scsi_nexus *nx);
/* RELEASE(6)/(10): releases the reservation if nx holds it; otherwise does nothing
 * (spc2r20 7.17). */
void scsi_lun_scsi2_release(struct scsi_lun *lun, const struct scsi_nexus *nx);
/* Set WCE; returns true when the value changed. */
bool scsi_lun_set_wce(struct scsi_lun *lun, bool wce);

#endif
