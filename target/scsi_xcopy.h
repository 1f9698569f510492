/* Third-party copy (spc4r37 5.17, 6.4, 6.20): EXTENDED COPY (LID1) with block-to-block
 * segment descriptors between any two LUNs the target process serves, the copy manager's
 * RECEIVE COPY RESULTS, and the Third-party Copy VPD page that advertises them. The copy
 * moves its data through the backstores asynchronously, in chunks, on the task's worker. */
#ifndef HOLDFAST_TARGET_SCSI_XCOPY_H
#define HOLDFAST_TARGET_SCSI_XCOPY_H

#include <stddef.h>
#include <stdint.h>

#include "target/scsi.h"

/* Copy manager limits, reported by RECEIVE COPY RESULTS (OPERATING PARAMETERS). */
#define SCSI_XCOPY_MAX_CSCD_DESCS    16u
#define SCSI_XCOPY_MAX_SEGMENT_DESCS 16u
/* Exactly the room the two maximum counts need (32-byte CSCD, 28-byte block-to-block
 * segment descriptors): a longer list is a PARAMETER LIST LENGTH ERROR. */
#define SCSI_XCOPY_MAX_DESC_LIST_LEN                                                               \
	(SCSI_XCOPY_MAX_CSCD_DESCS * 32u + SCSI_XCOPY_MAX_SEGMENT_DESCS * 28u)
/* Bytes one segment may copy: 65535 blocks of 4 KiB, the most a descriptor can ask for. */
#define SCSI_XCOPY_MAX_SEGMENT_BYTES (65535ull * 4096u)
/* Bytes moved per backstore request. */
#define SCSI_XCOPY_CHUNK (1u << 20)

/* Command handlers, listed in scsi_spc_cmds[]. */
void scsi_xcopy_extended_copy(struct scsi_task *t);
void scsi_xcopy_receive_results(struct scsi_task *t);

/* Build the Third-party Copy VPD page (spc4r37 7.8.17) into b (at least 64 bytes); returns
 * its length including the 4-byte header, whose page length the caller sets. */
size_t scsi_xcopy_vpd(uint8_t *b, size_t room);

/* Forget the copy results held for every nexus (tests). */
void scsi_xcopy_results_clear(void);

#endif
