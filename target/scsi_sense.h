/* Sense data: the named (key, ASC, ASCQ) triples every command handler reports errors with,
 * and the builders for the sense data bytes the transport sends after CHECK CONDITION. */
#ifndef HOLDFAST_TARGET_SCSI_SENSE_H
#define HOLDFAST_TARGET_SCSI_SENSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "target/scsi.h"

/* spc4r37 4.5.6, table 48: sense keys. */
enum scsi_sense_key {
	SENSE_KEY_NO_SENSE = 0x0,
	SENSE_KEY_RECOVERED_ERROR = 0x1,
	SENSE_KEY_NOT_READY = 0x2,
	SENSE_KEY_MEDIUM_ERROR = 0x3,
	SENSE_KEY_HARDWARE_ERROR = 0x4,
	SENSE_KEY_ILLEGAL_REQUEST = 0x5,
	SENSE_KEY_UNIT_ATTENTION = 0x6,
	SENSE_KEY_DATA_PROTECT = 0x7,
	SENSE_KEY_BLANK_CHECK = 0x8,
	SENSE_KEY_COPY_ABORTED = 0xa,
	SENSE_KEY_ABORTED_COMMAND = 0xb,
	SENSE_KEY_VOLUME_OVERFLOW = 0xd,
	SENSE_KEY_MISCOMPARE = 0xe,
};

#define SCSI_SENSE_TRIPLE(k, a, q)                                                                 \
	{                                                                                          \
		.key = (k), .asc = (a), .ascq = (q), .sks_bit = 0xff                               \
	}

/* spc4r37 annex D, table D.1: the additional sense codes Holdfast reports. */
static const struct scsi_sense SENSE_NO_SENSE = SCSI_SENSE_TRIPLE(0x0, 0x00, 0x00);
static const struct scsi_sense SENSE_NOT_READY_MANUAL_INTERVENTION =
	SCSI_SENSE_TRIPLE(0x2, 0x04, 0x03);
static const struct scsi_sense SENSE_WRITE_ERROR = SCSI_SENSE_TRIPLE(0x3, 0x0c, 0x00);
static const struct scsi_sense SENSE_READ_ERROR = SCSI_SENSE_TRIPLE(0x3, 0x11, 0x00);
static const struct scsi_sense SENSE_INTERNAL_TARGET_FAILURE = SCSI_SENSE_TRIPLE(0x4, 0x44, 0x00);
static const struct scsi_sense SENSE_PARAM_LIST_LENGTH_ERROR = SCSI_SENSE_TRIPLE(0x5, 0x1a, 0x00);
static const struct scsi_sense SENSE_INVALID_OPCODE = SCSI_SENSE_TRIPLE(0x5, 0x20, 0x00);
static const struct scsi_sense SENSE_LBA_OUT_OF_RANGE = SCSI_SENSE_TRIPLE(0x5, 0x21, 0x00);
static const struct scsi_sense SENSE_INVALID_FIELD_IN_CDB = SCSI_SENSE_TRIPLE(0x5, 0x24, 0x00);
static const struct scsi_sense SENSE_LUN_NOT_SUPPORTED = SCSI_SENSE_TRIPLE(0x5, 0x25, 0x00);
static const struct scsi_sense SENSE_INVALID_FIELD_IN_PARAM_LIST =
	SCSI_SENSE_TRIPLE(0x5, 0x26, 0x00);
static const struct scsi_sense SENSE_INVALID_RELEASE_OF_PR = SCSI_SENSE_TRIPLE(0x5, 0x26, 0x04);
static const struct scsi_sense SENSE_SAVING_PARAMS_UNSUPPORTED = SCSI_SENSE_TRIPLE(0x5, 0x39, 0x00);
static const struct scsi_sense SENSE_INSUFFICIENT_REGISTRATION_RESOURCES =
	SCSI_SENSE_TRIPLE(0x5, 0x55, 0x04);
static const struct scsi_sense SENSE_POWER_ON_RESET = SCSI_SENSE_TRIPLE(0x6, 0x29, 0x00);
/* sam5r21 6.3.3: a logical unit reset reports BUS DEVICE RESET FUNCTION OCCURRED. */
static const struct scsi_sense SENSE_BUS_DEVICE_RESET = SCSI_SENSE_TRIPLE(0x6, 0x29, 0x03);
static const struct scsi_sense SENSE_I_T_NEXUS_LOSS = SCSI_SENSE_TRIPLE(0x6, 0x29, 0x07);
static const struct scsi_sense SENSE_MODE_PARAMS_CHANGED = SCSI_SENSE_TRIPLE(0x6, 0x2a, 0x01);
static const struct scsi_sense SENSE_RESERVATIONS_PREEMPTED = SCSI_SENSE_TRIPLE(0x6, 0x2a, 0x03);
static const struct scsi_sense SENSE_RESERVATIONS_RELEASED = SCSI_SENSE_TRIPLE(0x6, 0x2a, 0x04);
static const struct scsi_sense SENSE_REGISTRATIONS_PREEMPTED = SCSI_SENSE_TRIPLE(0x6, 0x2a, 0x05);
static const struct scsi_sense SENSE_ASYMMETRIC_ACCESS_STATE_CHANGED =
	SCSI_SENSE_TRIPLE(0x6, 0x2a, 0x06);
static const struct scsi_sense SENSE_CAPACITY_CHANGED = SCSI_SENSE_TRIPLE(0x6, 0x2a, 0x09);
static const struct scsi_sense SENSE_COMMANDS_CLEARED_BY_ANOTHER =
	SCSI_SENSE_TRIPLE(0x6, 0x2f, 0x00);
static const struct scsi_sense SENSE_REPORTED_LUNS_CHANGED = SCSI_SENSE_TRIPLE(0x6, 0x3f, 0x0e);
static const struct scsi_sense SENSE_WRITE_PROTECTED = SCSI_SENSE_TRIPLE(0x7, 0x27, 0x00);
static const struct scsi_sense SENSE_SPACE_ALLOC_FAILED = SCSI_SENSE_TRIPLE(0x7, 0x27, 0x07);
static const struct scsi_sense SENSE_ABORTED_COMMAND = SCSI_SENSE_TRIPLE(0xb, 0x00, 0x00);
/* Errors of the transport's data phase (spc4r37 D.2, 4Bh). */
static const struct scsi_sense SENSE_DATA_PHASE_ERROR = SCSI_SENSE_TRIPLE(0xb, 0x4b, 0x00);
static const struct scsi_sense SENSE_INVALID_TTT = SCSI_SENSE_TRIPLE(0xb, 0x4b, 0x01);
static const struct scsi_sense SENSE_TOO_MUCH_WRITE_DATA = SCSI_SENSE_TRIPLE(0xb, 0x4b, 0x02);
static const struct scsi_sense SENSE_DATA_OFFSET_ERROR = SCSI_SENSE_TRIPLE(0xb, 0x4b, 0x05);
static const struct scsi_sense SENSE_MISCOMPARE = SCSI_SENSE_TRIPLE(0xe, 0x1d, 0x00);
/* Third-party copy (spc4r37 6.4): errors in the parameter list are ILLEGAL REQUEST; errors
 * met while copying are COPY ABORTED. */
static const struct scsi_sense SENSE_TOO_MANY_CSCD_DESCS = SCSI_SENSE_TRIPLE(0x5, 0x26, 0x06);
static const struct scsi_sense SENSE_UNSUPPORTED_CSCD_TYPE = SCSI_SENSE_TRIPLE(0x5, 0x26, 0x07);
static const struct scsi_sense SENSE_TOO_MANY_SEGMENT_DESCS = SCSI_SENSE_TRIPLE(0x5, 0x26, 0x08);
static const struct scsi_sense SENSE_UNSUPPORTED_SEGMENT_TYPE = SCSI_SENSE_TRIPLE(0x5, 0x26, 0x09);
static const struct scsi_sense SENSE_COPY_ABORTED = SCSI_SENSE_TRIPLE(0xa, 0x00, 0x00);
static const struct scsi_sense SENSE_UNREACHABLE_COPY_TARGET = SCSI_SENSE_TRIPLE(0xa, 0x08, 0x04);
static const struct scsi_sense SENSE_COPY_READ_ERROR = SCSI_SENSE_TRIPLE(0xa, 0x11, 0x00);
static const struct scsi_sense SENSE_COPY_WRITE_ERROR = SCSI_SENSE_TRIPLE(0xa, 0x0c, 0x00);

/* Length of the fixed-format sense data scsi_sense_build() produces. */
#define SCSI_SENSE_FIXED_LEN 18
/* Length of the descriptor-format sense data scsi_sense_build_desc() produces, at most. */
#define SCSI_SENSE_DESC_MAX 32

/* Build descriptor-format sense data (spc4r37 4.5.2): header, plus an information descriptor
 * and a sense-key specific descriptor when those fields are valid. Returns its length. */
size_t scsi_sense_build_desc(const struct scsi_sense *s, uint8_t *buf, size_t buflen);

/* A copy of base with the sense-key specific field pointer set (spc4r37 4.5.2.4.2): in_cdb
 * says whether byte indexes the CDB or the parameter list; bit is 0-7, or -1 for "whole
 * byte". */
struct scsi_sense scsi_sense_field(const struct scsi_sense *base, bool in_cdb, uint16_t byte,
				   int bit);

/* A copy of base with the INFORMATION field set (e.g. the first failing LBA, or the offset of
 * the first miscompare). */
struct scsi_sense scsi_sense_info(const struct scsi_sense *base, uint64_t info);

/* Is this a unit attention that reports a reset (ASC 29h)? Such a condition supersedes any
 * other unit attention queued for the same nexus. */
bool scsi_sense_is_reset(const struct scsi_sense *s);

/* Complete a task with CHECK CONDITION, ILLEGAL REQUEST, INVALID FIELD IN CDB (or IN
 * PARAMETER LIST) pointing at byte/bit. */
void scsi_task_check_cdb_field(struct scsi_task *t, uint16_t byte, int bit);
void scsi_task_check_param_field(struct scsi_task *t, uint16_t byte, int bit);

#endif
