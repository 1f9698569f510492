/* The SCSI layer's contract with the transport: a task (one command from one I_T nexus to
 * one LUN) goes in with its CDB and its Data-Out; status, sense and Data-In come out through
 * the task's done callback. The command sets (SPC-4, SBC-3) live behind scsi_task_exec(). */
#ifndef HOLDFAST_TARGET_SCSI_H
#define HOLDFAST_TARGET_SCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct scsi_lun;
struct bs_ctx;

/* SAM-5 status codes. */
enum scsi_status {
	SCSI_STATUS_GOOD = 0x00,
	SCSI_STATUS_CHECK_CONDITION = 0x02,
	SCSI_STATUS_CONDITION_MET = 0x04,
	SCSI_STATUS_BUSY = 0x08,
	SCSI_STATUS_RESERVATION_CONFLICT = 0x18,
	SCSI_STATUS_TASK_SET_FULL = 0x28,
	SCSI_STATUS_ACA_ACTIVE = 0x30,
	SCSI_STATUS_TASK_ABORTED = 0x40,
};

/* A sense triple plus the optional fields SPC-4 4.5.3 lets us fill in. The named triples
 * are in target/scsi_sense.h. */
struct scsi_sense {
	uint8_t key;
	uint8_t asc;
	uint8_t ascq;
	bool info_valid; /* INFORMATION field (e.g. miscompare offset) */
	uint64_t info;
	bool sks_valid; /* sense-key specific: field pointer */
	bool sks_cd;	/* 1: the field is in the CDB, 0: in the parameter list */
	uint16_t sks_field;
	uint8_t sks_bit; /* 0-7, or 0xff when no bit pointer */
};

/* The I_T nexus: initiator port (iSCSI name + ISID) and target port. One per iSCSI session;
 * shared by all the session's connections. */
struct scsi_nexus {
	uint64_t id; /* unique for the life of the process */
	char initiator_name[224];
	uint8_t isid[6];
	char initiator_port[256]; /* "<name>,i,0x<isid>" (SPC-4 7.6.4.6) */
	uint16_t tpgt;		  /* target portal group tag */
	uint16_t rel_port_id;	  /* relative target port identifier */
	bool fenced;		  /* its host is fenced: medium writes are refused (fence.h) */
};

/* One LUN as a target exports it. LUNs come and go while the target runs (shared volumes):
 * an entry's dev is NULL once the LUN is removed, and nluns only grows; read both with the
 * accessors below. */
struct scsi_lun_entry {
	uint64_t lun; /* LUN number */
	struct scsi_lun *dev;
};

/* A target port: one per target portal group. */
struct scsi_port {
	uint16_t rel_port_id;
	uint16_t tpg_id;
};

/* What the command sets need to know about the target a task arrived on. */
struct scsi_target_info {
	const char *name; /* target IQN */
	const struct scsi_lun_entry *luns;
	size_t nluns;
	const struct scsi_port *ports;
	size_t nports;
};

static inline size_t scsi_target_nluns(const struct scsi_target_info *ti)
{
	return ti ? __atomic_load_n(&ti->nluns, __ATOMIC_ACQUIRE) : 0;
}

static inline struct scsi_lun *scsi_lun_entry_dev(const struct scsi_lun_entry *e)
{
	return __atomic_load_n(&e->dev, __ATOMIC_ACQUIRE);
}

enum scsi_dir {
	SCSI_DIR_NONE = 0,
	SCSI_DIR_WRITE = 1 << 0,
	SCSI_DIR_READ = 1 << 1,
};

struct scsi_task {
	/* Set by the transport before scsi_task_exec(). */
	const struct scsi_target_info *target;
	const struct scsi_nexus *nexus;
	struct scsi_lun *lun; /* NULL when the LUN number is not mapped */
	uint64_t lun_id;
	uint8_t cdb[260];
	uint16_t cdb_len;
	unsigned dir;	       /* SCSI_DIR_* from the transport's R/W bits */
	uint32_t edtl;	       /* Expected Data Transfer Length (for reads: the data-in room) */
	uint8_t *out;	       /* Data-Out, fully received, BS_ALIGN-aligned; NULL if none */
	uint32_t out_len;      /* bytes in out (equals edtl for writes) */
	struct bs_ctx *ioctx;  /* the worker's I/O context */
	volatile bool aborted; /* set by task management; checked between I/O stages */

	/* Set by the command set before done is called. */
	uint8_t status;
	struct scsi_sense sense;
	uint8_t *in;	     /* Data-In to send (may point into a memory store) */
	uint32_t in_len;     /* bytes the command produced; may exceed edtl (overflow) */
	uint32_t out_wanted; /* Data-Out bytes the CDB asked for: the transport reports the
			      * difference from edtl as a residual (RFC 7143 11.4.5) */
	void *in_alloc;	     /* owned buffer to release with scsi_task_release() */

	void (*done)(struct scsi_task *t);
	void *priv; /* the transport's */
	/* Set by the command set while an I/O of the task is queued but not yet on the medium
	 * (a delayed store, a full queue): task management calls it to take the I/O back. It
	 * returns 0 when the I/O never reached the medium, and the task has then completed
	 * with TASK ABORTED; -EBUSY when too late (the task finishes on its own). */
	int (*cancel)(struct scsi_task *t);
	/* Set by the transport (NULL: a paused LUN answers BUSY at once). Called before a
	 * command that changes `lun` runs; returns true when the transport took the task: it
	 * holds it while `paused` (or while earlier writes to the LUN are still held there, so
	 * none overtakes another) and runs scsi_task_exec() again once the pause ends, or
	 * answers BUSY at its hold limit. Task management takes a held task back through
	 * cancel. */
	bool (*hold)(struct scsi_task *t, struct scsi_lun *lun, bool paused);

	/* Private to the command sets: state of multi-stage commands. */
	void *cmd_state;
	uint32_t cmd_u32[4];
	uint64_t cmd_u64[4];
};

/* Run a command. done() is called exactly once, possibly before this returns. */
void scsi_task_exec(struct scsi_task *t);

/* Free what the command set attached to a finished task (in_alloc, cmd_state). */
void scsi_task_release(struct scsi_task *t);

/* Build fixed-format sense data (SPC-4 4.5.3) into buf; returns its length (at most 18 +
 * sks). */
size_t scsi_sense_build(const struct scsi_sense *s, uint8_t *buf, size_t buflen);

/* Report an error from the transport: CHECK CONDITION with the given sense. */
void scsi_task_set_sense(struct scsi_task *t, uint8_t key, uint8_t asc, uint8_t ascq);

#endif
