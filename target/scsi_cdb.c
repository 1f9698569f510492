/* SCSI CDB decoding: one pass over the CDB bytes through a bounds-checked cursor, with the
 * opcode deciding which field sits where. */
#include <errno.h>
#include <string.h>

#include "lib/cursor.h"
#include "target/scsi_cdb.h"
#include "target/scsi_cmd.h"

/* Opcodes whose layout differs from the generic one of their group. */
enum {
	OP_TEST_UNIT_READY = 0x00,
	OP_REQUEST_SENSE = 0x03,
	OP_READ_6 = 0x08,
	OP_WRITE_6 = 0x0a,
	OP_INQUIRY = 0x12,
	OP_MODE_SELECT_6 = 0x15,
	OP_MODE_SENSE_6 = 0x1a,
	OP_START_STOP_UNIT = 0x1b,
	OP_RECEIVE_DIAGNOSTIC = 0x1c,
	OP_SEND_DIAGNOSTIC = 0x1d,
	OP_READ_CAPACITY_10 = 0x25,
	OP_READ_10 = 0x28,
	OP_WRITE_10 = 0x2a,
	OP_PRE_FETCH_10 = 0x34,
	OP_SYNC_CACHE_10 = 0x35,
	OP_READ_DEFECT_10 = 0x37,
	OP_WRITE_BUFFER = 0x3b,
	OP_READ_BUFFER = 0x3c,
	OP_WRITE_AND_VERIFY_10 = 0x2e,
	OP_VERIFY_10 = 0x2f,
	OP_WRITE_SAME_10 = 0x41,
	OP_UNMAP = 0x42,
	OP_LOG_SELECT = 0x4c,
	OP_LOG_SENSE = 0x4d,
	OP_MODE_SELECT_10 = 0x55,
	OP_MODE_SENSE_10 = 0x5a,
	OP_PR_IN = 0x5e,
	OP_PR_OUT = 0x5f,
	OP_VARIABLE = 0x7f,
	OP_EXTENDED_COPY = 0x83,
	OP_RECEIVE_COPY = 0x84,
	OP_READ_16 = 0x88,
	OP_COMPARE_AND_WRITE = 0x89,
	OP_WRITE_16 = 0x8a,
	OP_ORWRITE_16 = 0x8b,
	OP_WRITE_AND_VERIFY_16 = 0x8e,
	OP_VERIFY_16 = 0x8f,
	OP_PRE_FETCH_16 = 0x90,
	OP_SYNC_CACHE_16 = 0x91,
	OP_WRITE_SAME_16 = 0x93,
	OP_WRITE_ATOMIC_16 = 0x9c,
	OP_SA_IN_16 = 0x9e,
	OP_SA_OUT_16 = 0x9f,
	OP_REPORT_LUNS = 0xa0,
	OP_SECURITY_IN = 0xa2,
	OP_MAINT_IN = 0xa3,
	OP_MAINT_OUT = 0xa4,
	OP_READ_12 = 0xa8,
	OP_WRITE_12 = 0xaa,
	OP_WRITE_AND_VERIFY_12 = 0xae,
	OP_VERIFY_12 = 0xaf,
	OP_SECURITY_OUT = 0xb5,
	OP_READ_DEFECT_12 = 0xb7,
};

/* Service actions of the variable-length CDBs that carry an LBA (sbc3r36 5.x, 32-byte
 * forms). */
enum {
	VSA_READ_32 = 0x0009,
	VSA_VERIFY_32 = 0x000a,
	VSA_WRITE_32 = 0x000b,
	VSA_WRITE_AND_VERIFY_32 = 0x000c,
	VSA_WRITE_SAME_32 = 0x000d,
	VSA_ORWRITE_32 = 0x000e,
};

int scsi_cdb_group_len(uint8_t opcode)
{
	/* spc4r37 4.2.5.1: the top three bits of the opcode give the CDB's group. */
	switch (opcode >> 5) {
	case 0:
		return 6;
	case 1:
	case 2:
		return 10;
	case 3:
		/* Group 3 is reserved but for the variable-length CDB. */
		return opcode == OP_VARIABLE ? 8 : -EINVAL;
	case 4:
		return 16;
	case 5:
		return 12;
	default:
		/* Groups 6 and 7 are vendor specific: their length is unknown to us. */
		return -EINVAL;
	}
}

/* Bits of byte 1 shared by the READ/WRITE families (sbc3r36 5.x: xxPROTECT, DPO, FUA). */
static void decode_rw_byte1(struct scsi_cdb *c, uint8_t b1, bool is_read)
{
	c->protect = b1 >> 5;
	if (b1 & 0x10)
		c->flags |= SCSI_CDB_DPO;
	if (b1 & 0x08)
		c->flags |= SCSI_CDB_FUA;
	if (is_read && (b1 & 0x04))
		c->flags |= SCSI_CDB_RARC;
	if (b1 & 0x02)
		c->flags |= SCSI_CDB_FUA_NV;
}

/* VERIFY and WRITE AND VERIFY: xxPROTECT, DPO, BYTCHK in bits 2:1. */
static void decode_verify_byte1(struct scsi_cdb *c, uint8_t b1)
{
	c->protect = b1 >> 5;
	if (b1 & 0x10)
		c->flags |= SCSI_CDB_DPO;
	c->bytchk = (b1 >> 1) & 0x3;
}

static void decode_write_same_byte1(struct scsi_cdb *c, uint8_t b1, bool ws16)
{
	c->protect = b1 >> 5;
	if (b1 & 0x10)
		c->flags |= SCSI_CDB_ANCHOR;
	if (b1 & 0x08)
		c->flags |= SCSI_CDB_UNMAP;
	if (b1 & 0x04)
		c->flags |= SCSI_CDB_PBDATA;
	if (b1 & 0x02)
		c->flags |= SCSI_CDB_LBDATA;
	/* sbc3r36 5.42: bit 0 is NDOB in WRITE SAME(16) (and 32), reserved in (10). */
	if (ws16 && (b1 & 0x01))
		c->flags |= SCSI_CDB_NDOB;
}

static int decode6(struct cursor *cur, struct scsi_cdb *c)
{
	uint8_t b1, b2, b3, b4;
	uint16_t len16;
	int rc;

	if ((rc = cur_u8(cur, &b1)) || (rc = cur_u8(cur, &b2)) || (rc = cur_u8(cur, &b3)) ||
	    (rc = cur_u8(cur, &b4)) || (rc = cur_u8(cur, &c->control)))
		return rc;
	c->byte1 = b1;

	switch (c->opcode) {
	case OP_READ_6:
	case OP_WRITE_6:
		/* sbc3r36 5.16, 5.45: a 21-bit LBA; TRANSFER LENGTH 0 means 256 blocks. */
		c->lba = (uint64_t)(b1 & 0x1f) << 16 | (uint32_t)b2 << 8 | b3;
		c->xfer_len = b4 ? b4 : 256;
		break;
	case OP_INQUIRY:
	case OP_RECEIVE_DIAGNOSTIC:
	case OP_SEND_DIAGNOSTIC:
		/* spc4r37 6.6, 6.32, 6.42: a two-byte length in bytes 3-4. */
		cur_seek(cur, 3);
		cur_be16(cur, &len16);
		c->alloc_len = len16;
		cur_seek(cur, 6);
		break;
	case OP_START_STOP_UNIT:
		/* sbc3r36 5.25: IMMED is bit 0 of byte 1. */
		if (b1 & 0x01)
			c->flags |= SCSI_CDB_IMMED;
		break;
	default:
		/* REQUEST SENSE, MODE SENSE(6), MODE SELECT(6) and the rest of group 0 keep
		 * their one-byte length in byte 4. */
		c->alloc_len = b4;
		break;
	}
	return 0;
}

static int decode10(struct cursor *cur, struct scsi_cdb *c)
{
	uint8_t b1, b6;
	uint32_t lba;
	uint16_t len;
	int rc;

	if ((rc = cur_u8(cur, &b1)) || (rc = cur_be32(cur, &lba)) || (rc = cur_u8(cur, &b6)) ||
	    (rc = cur_be16(cur, &len)) || (rc = cur_u8(cur, &c->control)))
		return rc;
	c->byte1 = b1;
	c->group = b6 & 0x1f;

	switch (c->opcode) {
	case OP_READ_10:
		decode_rw_byte1(c, b1, true);
		c->lba = lba;
		c->xfer_len = len;
		break;
	case OP_WRITE_10:
		decode_rw_byte1(c, b1, false);
		c->lba = lba;
		c->xfer_len = len;
		break;
	case OP_VERIFY_10:
	case OP_WRITE_AND_VERIFY_10:
		decode_verify_byte1(c, b1);
		c->lba = lba;
		c->xfer_len = len;
		break;
	case OP_WRITE_SAME_10:
		decode_write_same_byte1(c, b1, false);
		c->lba = lba;
		c->xfer_len = len;
		break;
	case OP_PRE_FETCH_10:
	case OP_SYNC_CACHE_10:
		/* sbc3r36 5.9, 5.26: IMMED is bit 1 of byte 1. */
		if (b1 & 0x02)
			c->flags |= SCSI_CDB_IMMED;
		c->lba = lba;
		c->xfer_len = len;
		break;
	case OP_READ_CAPACITY_10:
		/* sbc3r36 5.18: PMI is bit 0 of byte 8, the low byte of our length read. */
		c->lba = lba;
		if (len & 0x01)
			c->flags |= SCSI_CDB_PMI;
		c->group = 0;
		break;
	case OP_UNMAP:
		/* sbc3r36 5.31: ANCHOR in byte 1, PARAMETER LIST LENGTH in bytes 7-8. */
		if (b1 & 0x01)
			c->flags |= SCSI_CDB_ANCHOR;
		c->alloc_len = len;
		break;
	case OP_PR_IN:
	case OP_PR_OUT:
		/* spc4r37 6.16, 6.17: SERVICE ACTION in byte 1, length in bytes 7-8. */
		c->sa = b1 & 0x1f;
		c->alloc_len = len;
		c->group = 0;
		break;
	case OP_WRITE_BUFFER:
	case OP_READ_BUFFER:
		/* spc4r37 6.20, 6.50: a three-byte length in bytes 6-8. */
		c->alloc_len = (uint32_t)b6 << 16 | len;
		c->group = 0;
		break;
	default:
		/* MODE SENSE(10), LOG SENSE, READ DEFECT DATA(10) and the rest: a length in
		 * bytes 7-8; the LBA field is only meaningful to the SBC commands. */
		c->lba = lba;
		c->xfer_len = len;
		c->alloc_len = len;
		break;
	}
	return 0;
}

static int decode12(struct cursor *cur, struct scsi_cdb *c)
{
	uint8_t b1, b10;
	uint32_t lba, len;
	int rc;

	if ((rc = cur_u8(cur, &b1)) || (rc = cur_be32(cur, &lba)) || (rc = cur_be32(cur, &len)) ||
	    (rc = cur_u8(cur, &b10)) || (rc = cur_u8(cur, &c->control)))
		return rc;
	c->byte1 = b1;
	c->group = b10 & 0x1f;

	switch (c->opcode) {
	case OP_READ_12:
		decode_rw_byte1(c, b1, true);
		c->lba = lba;
		c->xfer_len = len;
		break;
	case OP_WRITE_12:
		decode_rw_byte1(c, b1, false);
		c->lba = lba;
		c->xfer_len = len;
		break;
	case OP_VERIFY_12:
	case OP_WRITE_AND_VERIFY_12:
		decode_verify_byte1(c, b1);
		c->lba = lba;
		c->xfer_len = len;
		break;
	case OP_MAINT_IN:
	case OP_MAINT_OUT:
		/* spc4r37 6.x: SERVICE ACTION in byte 1, ALLOCATION LENGTH in bytes 6-9. */
		c->sa = b1 & 0x1f;
		c->alloc_len = len;
		c->group = 0;
		break;
	case OP_REPORT_LUNS:
	case OP_SECURITY_IN:
	case OP_SECURITY_OUT:
	case OP_READ_DEFECT_12:
		c->alloc_len = len;
		c->group = 0;
		/* READ DEFECT DATA(12) keeps an ADDRESS DESCRIPTOR INDEX in bytes 2-5. */
		c->lba = lba;
		break;
	default:
		c->lba = lba;
		c->xfer_len = len;
		c->alloc_len = len;
		break;
	}
	return 0;
}

static int decode16(struct cursor *cur, struct scsi_cdb *c)
{
	uint8_t b1, b14;
	uint64_t lba;
	uint32_t len;
	int rc;

	if ((rc = cur_u8(cur, &b1)) || (rc = cur_be64(cur, &lba)) || (rc = cur_be32(cur, &len)) ||
	    (rc = cur_u8(cur, &b14)) || (rc = cur_u8(cur, &c->control)))
		return rc;
	c->byte1 = b1;
	c->group = b14 & 0x1f;
	c->lba = lba;

	switch (c->opcode) {
	case OP_READ_16:
		decode_rw_byte1(c, b1, true);
		c->xfer_len = len;
		break;
	case OP_WRITE_16:
		decode_rw_byte1(c, b1, false);
		c->xfer_len = len;
		break;
	case OP_ORWRITE_16:
		/* sbc3r36 5.8: ORPROTECT, DPO, FUA like WRITE(16). */
		decode_rw_byte1(c, b1, false);
		c->flags &= ~SCSI_CDB_FUA_NV;
		c->xfer_len = len;
		break;
	case OP_COMPARE_AND_WRITE:
		/* sbc3r36 5.2: NUMBER OF LOGICAL BLOCKS is the single byte 13. */
		decode_rw_byte1(c, b1, false);
		c->flags &= ~SCSI_CDB_FUA_NV;
		c->xfer_len = len & 0xff;
		break;
	case OP_WRITE_ATOMIC_16:
		/* sbc4r15 5.48: bytes 10-11 are ATOMIC BOUNDARY, 12-13 TRANSFER LENGTH. */
		decode_rw_byte1(c, b1, false);
		c->flags &= ~SCSI_CDB_FUA_NV;
		c->xfer_len = len & 0xffff;
		break;
	case OP_VERIFY_16:
	case OP_WRITE_AND_VERIFY_16:
		decode_verify_byte1(c, b1);
		c->xfer_len = len;
		break;
	case OP_WRITE_SAME_16:
		decode_write_same_byte1(c, b1, true);
		c->xfer_len = len;
		break;
	case OP_PRE_FETCH_16:
	case OP_SYNC_CACHE_16:
		if (b1 & 0x02)
			c->flags |= SCSI_CDB_IMMED;
		c->xfer_len = len;
		break;
	case OP_SA_IN_16:
	case OP_SA_OUT_16:
	case OP_EXTENDED_COPY:
	case OP_RECEIVE_COPY:
		/* sbc3r36 5.17, 5.20 (READ CAPACITY(16), GET LBA STATUS) and spc4r37 6.4:
		 * SERVICE ACTION in byte 1, ALLOCATION LENGTH in bytes 10-13. */
		c->sa = b1 & 0x1f;
		c->alloc_len = len;
		if (c->opcode == OP_SA_IN_16 && (b14 & 0x01))
			c->flags |= SCSI_CDB_PMI;
		break;
	default:
		c->xfer_len = len;
		c->alloc_len = len;
		break;
	}
	return 0;
}

/* spc4r37 4.2.3: the variable-length CDB; the 32-byte SBC forms carry an LBA at bytes 12-19
 * and a length at bytes 28-31. */
static int decode_variable(struct cursor *cur, struct scsi_cdb *c)
{
	uint8_t b1, b10, addl;
	uint16_t sa;
	uint64_t lba;
	uint32_t len;
	int rc;

	if ((rc = cur_u8(cur, &b1)) || (rc = cur_skip(cur, 4)) || (rc = cur_u8(cur, &c->group)) ||
	    (rc = cur_u8(cur, &addl)) || (rc = cur_be16(cur, &sa)))
		return rc;
	c->control = b1;
	c->group &= 0x1f;
	c->sa = sa;
	if (cur->len < 8u + addl)
		return -EBADMSG;
	c->len = 8 + addl;

	switch (sa) {
	case VSA_READ_32:
	case VSA_WRITE_32:
	case VSA_ORWRITE_32:
	case VSA_VERIFY_32:
	case VSA_WRITE_AND_VERIFY_32:
	case VSA_WRITE_SAME_32:
		if ((rc = cur_u8(cur, &b10)) || (rc = cur_skip(cur, 1)) ||
		    (rc = cur_be64(cur, &lba)) || (rc = cur_seek(cur, 28)) ||
		    (rc = cur_be32(cur, &len)))
			return rc;
		c->byte1 = b10;
		c->lba = lba;
		c->xfer_len = len;
		if (sa == VSA_VERIFY_32 || sa == VSA_WRITE_AND_VERIFY_32)
			decode_verify_byte1(c, b10);
		else if (sa == VSA_WRITE_SAME_32)
			decode_write_same_byte1(c, b10, true);
		else
			decode_rw_byte1(c, b10, sa == VSA_READ_32);
		break;
	default:
		/* Other service actions are decoded no further; their handlers (if any) read
		 * the CDB themselves. */
		break;
	}
	return 0;
}

int scsi_cdb_decode(const uint8_t *cdb, size_t len, struct scsi_cdb *out)
{
	struct cursor cur;
	int glen, rc;

	memset(out, 0, sizeof(*out));
	out->sa = SCSI_NO_SA;
	cur_init(&cur, cdb, len);
	if ((rc = cur_u8(&cur, &out->opcode)))
		return rc;
	glen = scsi_cdb_group_len(out->opcode);
	if (glen < 0)
		return glen;
	if (len < (size_t)glen)
		return -EBADMSG;
	/* Decode the group's length only, so that trailing bytes (iSCSI pads CDBs to 16)
	 * never shift a field. */
	cur_init(&cur, cdb, glen);
	cur_skip(&cur, 1);
	out->len = glen;

	switch (glen) {
	case 6:
		return decode6(&cur, out);
	case 10:
		return decode10(&cur, out);
	case 12:
		return decode12(&cur, out);
	case 16:
		return decode16(&cur, out);
	case 8:
		cur_init(&cur, cdb, len);
		cur_skip(&cur, 1);
		return decode_variable(&cur, out);
	default:
		return -EINVAL;
	}
}
