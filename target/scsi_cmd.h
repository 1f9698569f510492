/* The command table: one descriptor per SCSI command Holdfast implements. The dispatcher,
 * REPORT SUPPORTED OPERATION CODES and the reservation conflict checks all read the same
 * table, so a command exists in exactly one place. SPC commands are in scsi_spc.c and SBC
 * commands in scsi_sbc.c; each exports its part of the table. */
#ifndef HOLDFAST_TARGET_SCSI_CMD_H
#define HOLDFAST_TARGET_SCSI_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "target/scsi.h"

#define SCSI_NO_SA 0xffff

enum scsi_cmd_flags {
	SCSI_CMD_F_NO_LUN = 1 << 0,    /* runs even when the LUN is not mapped (REPORT LUNS...) */
	SCSI_CMD_F_NO_UA = 1 << 1,     /* neither reports nor clears a unit attention */
	SCSI_CMD_F_DATA_OUT = 1 << 2,  /* takes a Data-Out buffer */
	SCSI_CMD_F_MEDIUM_WRITE = 1 << 3, /* modifies the medium (fencing and ownership refuse it) */
	SCSI_CMD_F_MEDIUM_READ = 1 << 4,
	SCSI_CMD_F_NO_CONFLICT = 1 << 5, /* never a reservation conflict (SPC-4 5.13.1) */
};

struct scsi_cmd_desc {
	uint8_t opcode;
	uint16_t sa; /* service action, or SCSI_NO_SA */
	const char *name;
	uint8_t cdb_len;
	uint8_t usage[16]; /* CDB usage data (SPC-4 6.35.3): usage[0] is the opcode */
	unsigned flags;
	void (*exec)(struct scsi_task *t);
};

extern const struct scsi_cmd_desc scsi_spc_cmds[];
extern const unsigned scsi_spc_ncmds;
extern const struct scsi_cmd_desc scsi_sbc_cmds[];
extern const unsigned scsi_sbc_ncmds;

/* Find the descriptor for a CDB (opcode and, where the opcode has them, service action). */
const struct scsi_cmd_desc *scsi_cmd_lookup(uint8_t opcode, uint16_t sa);

/* Does this opcode carry a service action (in CDB byte 1, bits 4-0, or for 7Fh in bytes
 * 8-9)? Derived from the tables: true when any descriptor of the opcode has one. */
bool scsi_cmd_has_sa(uint8_t opcode);

/* Every descriptor of both tables, sorted by opcode then service action, duplicates removed
 * (the SPC table wins). Returns the count and sets *out; the array is static. */
unsigned scsi_cmd_all(const struct scsi_cmd_desc *const **out);

/* Give the task a zeroed Data-In buffer of len bytes (at least 1), owned through in_alloc and
 * released with free() by scsi_task_release() (which frees cmd_state with free() too, so
 * allocate both with malloc or posix_memalign). Returns NULL when out of memory. */
uint8_t *scsi_task_alloc_in(struct scsi_task *t, size_t len);

/* Completion helpers for command handlers: they set status/sense and call t->done(t). */
void scsi_task_good(struct scsi_task *t);
void scsi_task_check(struct scsi_task *t, const struct scsi_sense *s);
void scsi_task_status(struct scsi_task *t, uint8_t status);

/* The maintenance gate of a command that changes lun (lun.h, scsi_lun_paused): true when the
 * task was taken, held by the transport or answered BUSY; the caller then returns. */
bool scsi_task_write_gate(struct scsi_task *t, struct scsi_lun *lun);

#endif
