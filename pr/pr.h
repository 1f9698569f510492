/* The SCSI-3 persistent reservation engine (spc4r37 5.13, 6.15, 6.16): a pure function from one
 * LUN's reservation state, the issuing I_T nexus and one PERSISTENT RESERVE IN or OUT command to
 * the new state, the status and sense, the unit attentions to queue and the I_T nexuses whose
 * tasks must be aborted. It does no I/O, takes no lock and reads no clock: the caller
 * (target/scsi_pr.c) serializes the calls for a LUN, persists the new state when APTPL asks for
 * it, and only then applies the result.
 *
 * Identity: an I_T nexus is the initiator port name ("<iSCSI name>,i,0x<ISID>", spc4r37
 * 7.6.4.6) plus the relative target port identifier. Registrations belong to the LUN, not to a
 * session, so they outlive logouts and reconnections. */
#ifndef HOLDFAST_PR_PR_H
#define HOLDFAST_PR_PR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/cursor.h"
#include "target/scsi.h"

/* Registrations per LUN. A Windows cluster of 64 nodes with two paths each needs 128, so 256
 * leaves room for ALL_TG_PT registrations over two target ports. */
#define PR_MAX_REGS 256
/* An initiator port name with its NUL: RFC 7143 6.1 caps the iSCSI name at 223 bytes, plus
 * ",i,0x" and 12 hex digits of ISID. Same size as struct scsi_nexus's initiator_port. */
#define PR_PORT_MAX 256
#define PR_NAME_MAX 224

/* spc4r37 6.16.2, table 173: the PERSISTENT RESERVE OUT service actions. */
enum pr_out_sa {
	PR_OUT_REGISTER = 0x00,
	PR_OUT_RESERVE = 0x01,
	PR_OUT_RELEASE = 0x02,
	PR_OUT_CLEAR = 0x03,
	PR_OUT_PREEMPT = 0x04,
	PR_OUT_PREEMPT_AND_ABORT = 0x05,
	PR_OUT_REGISTER_AND_IGNORE = 0x06,
	PR_OUT_REGISTER_AND_MOVE = 0x07,
};

/* spc4r37 6.15.1, table 160: the PERSISTENT RESERVE IN service actions. */
enum pr_in_sa {
	PR_IN_READ_KEYS = 0x00,
	PR_IN_READ_RESERVATION = 0x01,
	PR_IN_REPORT_CAPABILITIES = 0x02,
	PR_IN_READ_FULL_STATUS = 0x03,
};

/* spc4r37 6.15.3.4, table 164: persistent reservation types. 0 means "no reservation" here. */
enum pr_type {
	PR_TYPE_NONE = 0x0,
	PR_TYPE_WE = 0x1,    /* Write Exclusive */
	PR_TYPE_EA = 0x3,    /* Exclusive Access */
	PR_TYPE_WE_RO = 0x5, /* Write Exclusive - Registrants Only */
	PR_TYPE_EA_RO = 0x6, /* Exclusive Access - Registrants Only */
	PR_TYPE_WE_AR = 0x7, /* Write Exclusive - All Registrants */
	PR_TYPE_EA_AR = 0x8, /* Exclusive Access - All Registrants */
};

/* spc4r37 6.15.3.3: the only scope SPC-4 keeps. */
#define PR_SCOPE_LU 0x0

/* An I_T nexus by value (results must outlive the state they were computed from). */
struct pr_itn {
	char port[PR_PORT_MAX]; /* "<iSCSI name>,i,0x<ISID>" */
	uint16_t rel_port;	/* relative target port identifier */
};

/* An I_T nexus by reference (inputs). */
struct pr_nexus_ref {
	const char *port;
	uint16_t rel_port;
};

struct pr_reg {
	struct pr_itn itn;
	uint64_t key;
	bool holder;	/* holds the reservation (every registrant does for the AR types) */
	bool all_tg_pt; /* created by a REGISTER with ALL_TG_PT set */
};

struct pr_state {
	uint32_t generation; /* PRgeneration (spc4r37 6.15.2) */
	bool aptpl;	     /* activate persist through power loss (spc4r37 5.13.5) */
	uint8_t type;	     /* enum pr_type; PR_TYPE_NONE when nothing is reserved */
	uint8_t scope;
	uint32_t nregs;
	struct pr_reg regs[PR_MAX_REGS];
};

/* What the engine needs to know about the command's surroundings. */
struct pr_ctx {
	struct pr_nexus_ref self; /* the I_T nexus the command came on */
	const uint16_t *ports;	  /* every relative target port id of the target */
	size_t nports;
	const struct pr_nexus_ref *known; /* I_T nexuses that exist or that an ACL (wildcards
					   * included) admits: a TransportID that names an
					   * initiator device without an ISID registers these */
	size_t nknown;
	bool ptpl_capable; /* a data folder exists to persist APTPL state in (PTPL_C) */
};

struct pr_notice {
	struct pr_itn itn;
	struct scsi_sense ua;
};

struct pr_result {
	uint8_t status;		 /* SCSI_STATUS_GOOD, _CHECK_CONDITION or _RESERVATION_CONFLICT */
	struct scsi_sense sense; /* with CHECK CONDITION */
	bool changed;		 /* the new state differs from the old one */
	bool persist;		 /* APTPL: the new state must be saved before status is sent */
	size_t nua;
	struct pr_notice ua[PR_MAX_REGS];
	size_t nabort; /* PREEMPT AND ABORT: abort these nexuses' tasks before completing */
	struct pr_itn abort[PR_MAX_REGS];
};

void pr_state_init(struct pr_state *s);

/* Is the I_T nexus registered? Returns the registration or NULL. */
const struct pr_reg *pr_find(const struct pr_state *s, const char *port, uint16_t rel_port);

/* Run a PERSISTENT RESERVE OUT command. cdb is the whole CDB, param the Data-Out (param_len
 * bytes received). *next receives the new state (a copy of *cur when nothing changed); cur and
 * next must not overlap. */
void pr_out(const struct pr_state *cur, const struct pr_ctx *ctx, const uint8_t *cdb,
	    size_t cdb_len, const uint8_t *param, size_t param_len, struct pr_state *next,
	    struct pr_result *res);

/* The administrator's escape hatch: every registration and the reservation go, as CLEAR
 * would do it, and every registrant gets RESERVATIONS PREEMPTED. */
void pr_admin_clear(const struct pr_state *cur, struct pr_state *next, struct pr_result *res);

/* Run a PERSISTENT RESERVE IN command. The parameter data is written to buf (at most cap
 * bytes) and *len is what the command transfers: the full data, truncated to the CDB's
 * ALLOCATION LENGTH and to cap. Returns the SCSI status; *sense is set with CHECK CONDITION. */
uint8_t pr_in(const struct pr_state *s, const struct pr_ctx *ctx, const uint8_t *cdb,
	      size_t cdb_len, uint8_t *buf, size_t cap, size_t *len, struct scsi_sense *sense);

/* Conflict checking (spc4r37 5.13.1 and its SBC-3 counterpart for the block commands): how a
 * command is affected by a persistent reservation. */
enum pr_class {
	PR_CLASS_ALLOWED,	  /* never conflicts (INQUIRY, TEST UNIT READY, PR IN...) */
	PR_CLASS_READ,		  /* allowed through Write Exclusive, not Exclusive Access */
	PR_CLASS_WRITE,		  /* allowed only to the holder (and registrants of RO/AR) */
	PR_CLASS_RESERVE_RELEASE, /* SCSI-2 RESERVE/RELEASE: spc4r37 5.13.3 */
};

enum pr_verdict {
	PR_PASS,     /* run the command (RESERVE/RELEASE: as SPC-2 says) */
	PR_CONFLICT, /* complete it with RESERVATION CONFLICT */
	PR_GOOD,     /* complete it with GOOD without running it (spc4r37 5.13.3, CRH=1) */
};

/* The class of a command: its CDB and the SCSI_CMD_F_* flags of its descriptor in the
 * command table (target/scsi_cmd.h). */
enum pr_class pr_cmd_class(const uint8_t *cdb, size_t cdb_len, unsigned flags);

enum pr_verdict pr_check_conflict(const struct pr_state *s, const char *port, uint16_t rel_port,
				  enum pr_class cls);

/* iSCSI TransportIDs (spc4r37 7.6.4.6). */
struct pr_tid {
	char name[PR_NAME_MAX]; /* iSCSI name */
	char port[PR_PORT_MAX]; /* "<name>,i,0x<isid>" when has_isid */
	bool has_isid;
};

/* Read one TransportID at the cursor. Returns 0, -EBADMSG when it is truncated or malformed,
 * or -EPROTONOSUPPORT when it is not an iSCSI TransportID. */
int pr_tid_parse(struct cursor *c, struct pr_tid *tid);

/* Write the TransportID (format 01b: name and ISID) of an initiator port into buf; returns its
 * length (a multiple of 4, at least 24), or 0 when cap is too small or the name malformed. */
size_t pr_tid_build(const char *port, uint8_t *buf, size_t cap);

/* The iSCSI name part of an initiator port name, copied into name (size namesz). Returns 0 or
 * -EINVAL when port is not "<name>,i,0x<isid>". */
int pr_port_name(const char *port, char *name, size_t namesz);

#endif
