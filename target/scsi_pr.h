/* Persistent reservations in the SCSI command path: the PERSISTENT RESERVE IN/OUT commands, the
 * reservation conflict check the dispatcher runs before every command, and the per-LUN state of
 * the pr/ engine with its APTPL file. The engine decides; this file locks, persists, queues the
 * unit attentions and has the transport abort the preempted tasks.
 *
 * Wiring (target/scsi_exec.c):
 *   1. cmd_index_build() adds scsi_pr_cmds[0 .. scsi_pr_ncmds) like the SPC and SBC tables;
 *   2. the reservation check becomes
 *        switch (scsi_pr_conflict(t, d)) {
 *        case SCSI_PR_CONFLICT: scsi_task_status(t, SCSI_STATUS_RESERVATION_CONFLICT); return;
 *        case SCSI_PR_DONE: return;
 *        default: break;
 *        }
 *      in place of scsi_reservation_conflict(), whose SCSI-2 rule scsi_pr_conflict() keeps. */
#ifndef HOLDFAST_TARGET_SCSI_PR_H
#define HOLDFAST_TARGET_SCSI_PR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pr/pr.h"
#include "pr/pr_store.h"
#include "target/scsi.h"
#include "target/scsi_cmd.h"

extern const struct scsi_cmd_desc scsi_pr_cmds[];
extern const unsigned scsi_pr_ncmds;

enum scsi_pr_verdict {
	SCSI_PR_PASS = 0,     /* run the command */
	SCSI_PR_CONFLICT = 1, /* complete it with RESERVATION CONFLICT */
	SCSI_PR_DONE = 2,     /* already completed (GOOD): RESERVE/RELEASE under CRH=1 */
};

/* The reservation check for a command about to run on t->lun: persistent reservations
 * (spc4r37 5.13.1, 5.13.3) and the SCSI-2 reservation of RESERVE/RELEASE (spc2r20 5.5.1). Loads
 * the LUN's APTPL file on first use, so a restart cannot let a fenced initiator write before the
 * state is back. Returns an enum scsi_pr_verdict. */
int scsi_pr_conflict(struct scsi_task *t, const struct scsi_cmd_desc *d);

/* The folder holding the APTPL files (one per LUN, "pr-<unit serial>.state"). Without one,
 * APTPL is refused (REPORT CAPABILITIES says PTPL_C=0). Call before the first command. */
void scsi_pr_set_data_dir(const char *dir);
/* The file I/O under the APTPL store (tests inject failures); NULL restores the real one. */
void scsi_pr_set_store_io(const struct pr_store_io *io);

/* PREEMPT AND ABORT (spc4r37 5.13.11 and 5.7 (preempting and aborting)): the transport implements
 * this hook. It aborts every task of each listed I_T nexus on the LUN (never req->by, the PREEMPT
 * AND ABORT itself), as ABORT TASK SET would, reports COMMANDS CLEARED BY ANOTHER INITIATOR (2F/00)
 * as TAS and QErr ask, and calls req->done(req) exactly once after the last of those tasks has
 * finished, from a thread where completing req->by is allowed. done() completes req->by with
 * GOOD and frees req. Until then the command stays in flight. With no hook installed the
 * command completes at once and logs that nothing was aborted. */
struct scsi_pr_itn {
	const char *initiator_port;
	uint16_t rel_port_id;
};

struct scsi_pr_abort {
	struct scsi_lun *lun;
	struct scsi_task *by;
	size_t n;
	const struct scsi_pr_itn *itns;
	void (*done)(struct scsi_pr_abort *req);
	void *priv; /* scsi_pr.c's */
};

extern void (*scsi_pr_abort_hook)(struct scsi_pr_abort *req);

/* The I_T nexuses a device-name TransportID (SPEC_I_PT, REGISTER AND MOVE without an ISID) may
 * resolve to: the transport fills out[0..max) with the nexuses of the target t arrived on
 * (logged in, or admitted by an ACL) and returns how many. Optional; without it only the
 * issuing nexus is known. */
extern size_t (*scsi_pr_known_hook)(const struct scsi_task *t, struct pr_nexus_ref *out,
				    size_t max);

/* Administration (holdfastctl pr show / pr clear). scsi_pr_snapshot() copies the LUN's state;
 * scsi_pr_admin_clear() drops every registration and the reservation (persisted first when
 * APTPL is on), queues RESERVATIONS PREEMPTED for the registrants and logs it. Both return 0 or
 * a negative errno. */
int scsi_pr_snapshot(struct scsi_lun *lun, struct pr_state *out);
int scsi_pr_admin_clear(struct scsi_lun *lun, const char *who);

/* The LUN is being destroyed: forget its state (its APTPL file stays). */
void scsi_pr_lun_gone(struct scsi_lun *lun);

#endif
