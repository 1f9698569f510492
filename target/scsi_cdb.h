/* Decoding of SCSI CDBs (SPC-4 4.2) into one flat struct, so that the SPC and SBC command
 * handlers read fields by name instead of by byte offset. Decoding is pure: it validates only
 * the CDB's length, never the values of its fields (each handler knows what it supports). */
#ifndef HOLDFAST_TARGET_SCSI_CDB_H
#define HOLDFAST_TARGET_SCSI_CDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bits of scsi_cdb.flags, set only for opcodes whose CDB defines the bit. */
enum scsi_cdb_flag {
	SCSI_CDB_FUA = 1 << 0,	  /* force unit access (READ/WRITE/COMPARE AND WRITE...) */
	SCSI_CDB_DPO = 1 << 1,	  /* disable page out */
	SCSI_CDB_UNMAP = 1 << 2,  /* WRITE SAME */
	SCSI_CDB_ANCHOR = 1 << 3, /* WRITE SAME, UNMAP */
	SCSI_CDB_NDOB = 1 << 4,	  /* WRITE SAME(16): no Data-Out buffer */
	SCSI_CDB_IMMED = 1 << 5,  /* SYNCHRONIZE CACHE, PRE-FETCH, START STOP UNIT */
	SCSI_CDB_LBDATA = 1 << 6, /* WRITE SAME(10) (obsolete) */
	SCSI_CDB_PBDATA = 1 << 7, /* WRITE SAME (obsolete) */
	SCSI_CDB_PMI = 1 << 8,	  /* READ CAPACITY (obsolete) */
	SCSI_CDB_RARC = 1 << 9,	  /* READ: rebuild assist recovery control */
	SCSI_CDB_FUA_NV = 1 << 10 /* READ/WRITE(10/12/16): obsolete FUA_NV */
};

struct scsi_cdb {
	uint8_t opcode;
	uint16_t sa;	    /* service action, or SCSI_NO_SA when the opcode has none */
	uint8_t len;	    /* bytes the CDB format occupies (6, 10, 12, 16, or 8 + n) */
	uint64_t lba;	    /* LOGICAL BLOCK ADDRESS, where the format has one */
	uint32_t xfer_len;  /* TRANSFER LENGTH / NUMBER OF LOGICAL BLOCKS (READ/WRITE(6): 0=256) */
	uint32_t alloc_len; /* ALLOCATION LENGTH or PARAMETER LIST LENGTH, in bytes */
	unsigned flags;	    /* SCSI_CDB_* */
	uint8_t protect;    /* RDPROTECT / WRPROTECT / VRPROTECT / ORPROTECT (3 bits) */
	uint8_t bytchk;	    /* VERIFY, WRITE AND VERIFY: 2 bits */
	uint8_t group;	    /* GROUP NUMBER */
	uint8_t control;    /* CONTROL byte */
	uint8_t byte1;	    /* the raw second byte, for fields no other member names */
};

/* Bytes a CDB starting with this opcode needs at least (its group's length; 8 for the
 * variable-length opcode 0x7F, whose real length is in the CDB), or -EINVAL for reserved and
 * vendor-specific groups. */
int scsi_cdb_group_len(uint8_t opcode);

/* Decode cdb[0..len). Returns 0, -EBADMSG when len is shorter than the opcode's format
 * needs, or -EINVAL when the opcode's group has no defined length. */
int scsi_cdb_decode(const uint8_t *cdb, size_t len, struct scsi_cdb *out);

#endif
