/* The SBC-3/SBC-4 block command set (READ, WRITE, VERIFY, COMPARE AND WRITE, UNMAP, WRITE
 * SAME, ...): its handlers are in scsi_sbc_cmds[] (target/scsi_cmd.h). This header gives the
 * limits the set enforces beyond those in target/lun.h, for the Block Limits and Logical
 * Block Provisioning VPD pages (sbc3r36 6.5.3, 6.5.4), and a test seam for its I/O. */
#ifndef HOLDFAST_TARGET_SCSI_SBC_H
#define HOLDFAST_TARGET_SCSI_SBC_H

#include <stdint.h>

#include "target/backstore.h"
#include "target/lun.h"

/* Limits in blocks for a given logical block size, derived from the byte limits of lun.h so
 * that the VPD page and the handlers cannot disagree. */
#define SBC_MAX_XFER_BLOCKS(bs) (SCSI_LUN_MAX_XFER_BYTES / (bs))
#define SBC_MAX_WS_BLOCKS(bs)	(SCSI_LUN_MAX_WRITE_SAME_BYTES / (bs))
#define SBC_MAX_CAW_BLOCKS	SCSI_LUN_MAX_CAW_BLOCKS
#define SBC_MAX_UNMAP_LBAS	SCSI_LUN_MAX_UNMAP_BLOCKS
#define SBC_MAX_UNMAP_DESC	SCSI_LUN_MAX_UNMAP_DESCS

/* The physical block the stores are built for (page size, O_DIRECT unit). READ CAPACITY(16)
 * reports it as LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT. */
#define SBC_PHYS_BLOCK_BYTES 4096u

/* sbc4r15 4.29 (atomic writes), Block Limits VPD fields: WRITE ATOMIC(16) writes whole
 * physical blocks, aligned, up to 1 MiB. Its range is held exclusively in the range table
 * (scsi_sbc.c) for the whole write, so no other command sees or writes part of it. No
 * atomic boundary. */
#define SBC_ATOMIC_MAX_BYTES	     (1u << 20)
#define SBC_ATOMIC_UNIT(bs)	     ((bs) >= SBC_PHYS_BLOCK_BYTES ? 1u : SBC_PHYS_BLOCK_BYTES / (bs))
#define SBC_ATOMIC_MAX_BLOCKS(bs)    (SBC_ATOMIC_MAX_BYTES / (bs))
#define SBC_ATOMIC_ALIGNMENT(bs)     SBC_ATOMIC_UNIT(bs)
#define SBC_ATOMIC_GRANULARITY(bs)   SBC_ATOMIC_UNIT(bs)
#define SBC_ATOMIC_MAX_WITH_BOUNDARY 0u
#define SBC_ATOMIC_MAX_BOUNDARY	     0u

/* Block Limits VPD: WSNZ=0, a WRITE SAME with NUMBER OF LOGICAL BLOCKS zero means "to the
 * last block" (sbc3r36 5.42), within MAXIMUM WRITE SAME LENGTH like any other. */
#define SBC_WSNZ 0
/* Logical Block Provisioning VPD: LBPU=1, LBPWS=1, LBPWS10=1, LBPRZ=1, ANC_SUP=0 (no
 * anchored state: ANCHOR=1 is an invalid field), PROVISIONING TYPE thin (2). UNMAP
 * GRANULARITY 1 block, alignment 0. */
#define SBC_LBPRZ	      1
#define SBC_ANC_SUP	      0
#define SBC_UNMAP_GRANULARITY 1u

/* Every data I/O the set starts goes through this pointer (bs_submit by default), so a unit
 * test can see the requests, e.g. that FUA reaches the store. */
extern int (*scsi_sbc_submit)(struct backstore *bs, struct bs_ctx *ctx, struct bs_io *io);

#endif
