/* Which commands a persistent reservation lets through (spc4r37 5.13.1 and the SBC-3 table of
 * block commands under persistent reservations), and the SCSI-2 RESERVE/RELEASE exceptions of
 * spc4r37 5.13.3 (CRH=1). */
#include <string.h>

#include "lib/cursor.h"
#include "pr/pr_int.h"
#include "target/scsi_cmd.h"

/* Opcodes whose class the command table's flags do not tell on their own. */
#define OP_TEST_UNIT_READY	  0x00
#define OP_RESERVE6		  0x16
#define OP_RELEASE6		  0x17
#define OP_MODE_SENSE6		  0x1a
#define OP_START_STOP_UNIT	  0x1b
#define OP_READ_DEFECT_DATA10	  0x37
#define OP_RESERVE10		  0x56
#define OP_RELEASE10		  0x57
#define OP_MODE_SENSE10		  0x5a
#define OP_PERSISTENT_RESERVE_IN  0x5e
#define OP_PERSISTENT_RESERVE_OUT 0x5f
#define OP_READ_DEFECT_DATA12	  0xb7

enum pr_class pr_cmd_class(const uint8_t *cdb, size_t cdb_len, unsigned flags)
{
	struct cursor c;
	uint8_t op, b4 = 0;

	cur_init(&c, cdb, cdb_len);
	if (cur_u8(&c, &op))
		return PR_CLASS_WRITE;
	switch (op) {
	case OP_RESERVE6:
	case OP_RESERVE10:
	case OP_RELEASE6:
	case OP_RELEASE10:
		return PR_CLASS_RESERVE_RELEASE;
	case OP_TEST_UNIT_READY:
	case OP_PERSISTENT_RESERVE_IN:
	case OP_PERSISTENT_RESERVE_OUT:
		/* spc4r37 5.13.1: always allowed; PR OUT checks its keys itself. */
		return PR_CLASS_ALLOWED;
	case OP_MODE_SENSE6:
	case OP_MODE_SENSE10:
	case OP_READ_DEFECT_DATA10:
	case OP_READ_DEFECT_DATA12:
		/* spc4r37 5.13.1 / SBC-3: allowed through Write Exclusive, not Exclusive
		 * Access: they read but do not change the logical unit. */
		return PR_CLASS_READ;
	case OP_START_STOP_UNIT:
		/* SBC-3: START STOP UNIT with START=1 and POWER CONDITION 0h is allowed; any
		 * other form changes the unit's state and conflicts like a write. */
		if (cur_seek(&c, 4) == 0 && cur_u8(&c, &b4) == 0 && (b4 & 0x01) && !(b4 & 0xf0))
			return PR_CLASS_ALLOWED;
		return PR_CLASS_WRITE;
	default:
		break;
	}
	if (flags & SCSI_CMD_F_NO_CONFLICT)
		return PR_CLASS_ALLOWED;
	if (flags & SCSI_CMD_F_MEDIUM_WRITE)
		return PR_CLASS_WRITE;
	if (flags & SCSI_CMD_F_MEDIUM_READ)
		return PR_CLASS_READ;
	/* spc4r37 5.13.1: the remaining commands (MODE SELECT, SEND DIAGNOSTIC, LOG SELECT...)
	 * conflict for everyone but the holder and, with the RO/AR types, the registrants. */
	return PR_CLASS_WRITE;
}

enum pr_verdict pr_check_conflict(const struct pr_state *s, const char *port, uint16_t rel_port,
				  enum pr_class cls)
{
	const struct pr_reg *r = pr_find(s, port, rel_port);
	bool registered = r != NULL, holder = r && pr_is_holder(s, r);

	switch (cls) {
	case PR_CLASS_ALLOWED:
		return PR_PASS;
	case PR_CLASS_RESERVE_RELEASE:
		/* spc2r20 5.5.1: while any I_T nexus is registered, RESERVE and RELEASE conflict
		 * whoever sends them. spc4r37 5.13.3 (CRH=1): from the holder, or from a
		 * registrant under a registrants-only or all-registrants reservation, they
		 * complete with GOOD and change nothing. */
		if (s->nregs == 0)
			return PR_PASS;
		if (holder || (registered && (pr_type_ro(s->type) || pr_type_ar(s->type))))
			return PR_GOOD;
		return PR_CONFLICT;
	case PR_CLASS_READ:
	case PR_CLASS_WRITE:
		break;
	default:
		return PR_CONFLICT;
	}
	if (s->type == PR_TYPE_NONE || holder)
		return PR_PASS;
	switch (s->type) {
	case PR_TYPE_WE:
		return cls == PR_CLASS_READ ? PR_PASS : PR_CONFLICT;
	case PR_TYPE_EA:
		return PR_CONFLICT;
	case PR_TYPE_WE_RO:
	case PR_TYPE_WE_AR:
		if (registered)
			return PR_PASS;
		return cls == PR_CLASS_READ ? PR_PASS : PR_CONFLICT;
	case PR_TYPE_EA_RO:
	case PR_TYPE_EA_AR:
		return registered ? PR_PASS : PR_CONFLICT;
	default:
		/* A corrupt type in memory is not a reason to let writes through. */
		return PR_CONFLICT;
	}
}
