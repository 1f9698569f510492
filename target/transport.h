/* The iSCSI transport's internal model, shared by the files of the target process: the
 * target state, worker threads, connections, sessions and the tasks in flight. */
#ifndef HOLDFAST_TARGET_TRANSPORT_H
#define HOLDFAST_TARGET_TRANSPORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "lib/config.h"
#include "target/iscsi_login.h"
#include "target/iscsi_pdu.h"
#include "target/scsi.h"

struct backstore;
struct bs_ctx;
struct conn;
struct session;
struct worker;
struct scsi_pr_abort;

/* The most commands a session may have outstanding: the CmdSN window we grant. */
#define TGT_CMD_WINDOW 128
/* The largest Expected Data Transfer Length we buffer for one command. */
#define TGT_MAX_XFER (16u << 20)
/* Bytes read from the socket per recv() when waiting for headers. */
#define TGT_RX_STAGING	    16384
#define TGT_TASK_HASH	    256
#define TGT_MAX_CONNECTIONS 8

/* An exported target and what the command sets see of it. */
/* The most LUN slots a target has: one per LUN number ever exported (SAM-5 flat space). */
#define TGT_LUN_SLOTS 16384

/* A LUN exported while the target runs (a shared volume), beside its slot. */
struct tgt_rt_lun {
	struct backstore *bs;
	char path[PATH_MAX];
};

struct tgt_target {
	const struct hf_target *cfg;
	int index;
	struct scsi_target_info info;
	struct scsi_lun_entry *luns; /* TGT_LUN_SLOTS entries; info.nluns are in use */
	struct tgt_rt_lun **rt;	     /* per slot: NULL for a LUN from the configuration */
	struct scsi_port *ports;
};

struct tgt_listener {
	int fd;
	const struct hf_portal *portal;
};

/* Everything the target process owns; one instance. */
struct tgt {
	const struct hf_config *cfg;
	struct tgt_target *targets;
	size_t ntargets;
	struct backstore **stores; /* one per hf_config.backstores entry */
	struct scsi_lun **luns;	   /* one per backstore */
	struct tgt_listener *listeners;
	size_t nlisteners;
	struct worker **workers;
	int nworkers;
	unsigned next_worker;

	/* Sessions, guarded by lock: only login, logout and the control plane take it. */
	pthread_mutex_t lock;
	struct session *sessions;
	uint16_t next_tsih;
	uint64_t next_nexus_id;
	bool stopping;
};

extern struct tgt tgt_global;

/* A cross-thread request to a worker. */
enum worker_msg_type {
	WORKER_MSG_ADOPT_CONN,	 /* take over a connection (it joined a session living here) */
	WORKER_MSG_NEW_CONN,	 /* a freshly accepted socket */
	WORKER_MSG_KILL_SESSION, /* close every connection of a session (reinstatement) */
	WORKER_MSG_LUN_RESET,	 /* abort every task of a LUN, then report back */
	WORKER_MSG_RESET_DONE,	 /* one worker finished its part of a reset */
	WORKER_MSG_CALL,	 /* run fn(arg) on the worker thread */
};

struct worker_msg {
	struct worker_msg *next;
	enum worker_msg_type type;
	int fd;
	const struct tgt_listener *listener;
	struct conn *conn;
	struct session *session;
	struct scsi_lun *lun; /* NULL: every LUN (target reset) */
	struct tmf_wait *wait;
	void (*fn)(void *arg);
	void *arg;
};

struct worker {
	int id;
	pthread_t thread;
	int epfd;
	int wakefd; /* eventfd: messages queued */
	struct bs_ctx *io;
	pthread_mutex_t qlock;
	struct worker_msg *qhead, *qtail;
	struct conn *conns; /* every connection this worker serves */
	struct conn *dirty; /* connections with queued output, flushed once per loop */
	bool stop;
	/* Writes held by paused LUNs, oldest first (target/hold.c). */
	struct task *held_head, *held_tail;
	unsigned nheld;
	unsigned hold_gen;
	uint64_t hold_due_ns;	     /* the earliest hold limit among them */
	struct task *hold_releasing; /* the held task being run again right now */
};

int worker_start(struct worker **out, int id);
void worker_stop(struct worker *w);
void worker_post(struct worker *w, struct worker_msg *m);
struct worker *worker_pick(void);
void tgt_retire(void *p);

/* Epoll registration of a connection on its worker. */
int worker_watch(struct worker *w, struct conn *c, uint32_t events);
void worker_unwatch(struct worker *w, struct conn *c);

/* An abort sweep: tasks aborted on one or more workers, and the work to do once the last of
 * them is gone. Task management, PREEMPT AND ABORT and fencing all use it. */
struct tmf_wait {
	struct conn *conn;   /* the TMF's connection (a reference is held), or NULL */
	struct worker *home; /* finish() runs on this worker; NULL: wherever the last one is */
	uint32_t itt;
	uint8_t response;
	int target_index; /* only sessions of this target; -1: every target */
	bool cold_reset;
	struct task *spare;		   /* never aborted (the command that asked) */
	const struct abort_answer *answer; /* how aborted commands end; NULL: silently */
	/* Which sessions the sweep reaches (NULL: all of the target), and what happens to
	 * each one after its tasks were aborted (NULL: nothing). */
	bool (*match)(const struct tmf_wait *w, const struct session *s);
	void (*on_session)(struct tmf_wait *w, struct session *s, unsigned aborted);
	/* Runs once every aborted task is gone; it frees nothing (tmf_wait_put() does). NULL:
	 * send the TMF response on conn. */
	void (*finish)(struct tmf_wait *w);
	void *arg;
	struct scsi_lun *lun; /* the sweep's LUN; NULL: every LUN */
	int pending;	      /* workers and tasks still draining, guarded by lock */
	pthread_mutex_t lock;
};

/* How a command aborted by an event (not by its initiator) is answered: a status, and for
 * CHECK CONDITION its sense. */
struct abort_answer {
	uint8_t status;
	const struct scsi_sense *sense;
};

enum task_state {
	TASK_QUEUED,   /* waiting for its CmdSN turn */
	TASK_DATA_OUT, /* waiting for Data-Out */
	TASK_EXEC,     /* in the command set */
	TASK_SENDING,  /* response queued */
};

struct task {
	struct scsi_task st;
	struct conn *conn;
	struct task *hnext; /* task hash chain */
	struct task *qnext; /* CmdSN order queue */
	struct task *anext; /* all tasks of the connection */
	struct task **aprev;
	enum task_state state;
	struct iscsi_pdu req;
	uint32_t itt;
	uint32_t cmdsn;
	uint32_t ttt;
	uint32_t received;   /* Data-Out bytes received */
	uint32_t r2t_offset; /* next offset to solicit */
	uint32_t r2tsn;
	uint32_t datasn_expected; /* DataSN of the next Data-Out within the current sequence */
	uint32_t burst_left;	  /* bytes of the current solicited burst still due */
	uint32_t burst_offset;
	int outstanding_r2t;
	bool aborted;
	/* Set when an abort answers the command instead of ending it silently as task
	 * management does. */
	const struct abort_answer *abort_answer;
	bool delivered;	 /* its CmdSN turn came: it is in the task set */
	bool pdu_in;	 /* the SCSI Command PDU (with immediate data) is in */
	bool too_big;	 /* EDTL beyond what we buffer: fails with CHECK CONDITION */
	bool unsol_open; /* unsolicited Data-Out still to come (F=0 on the command) */
	/* A broken Data-Out sequence: the command fails with this when its turn comes. */
	const struct scsi_sense *data_error;
	uint32_t unsol_datasn;
	struct tmf_wait *wait; /* a TMF waiting for this task to drain */
	/* Held by a paused (maintenance) LUN on its worker (target/hold.c). */
	struct task *held_next, *held_prev;
	struct scsi_lun *held_on; /* NULL: not held */
	uint64_t held_since_ns;	  /* when it was first held; kept if it is held again */
	unsigned held_gen;	  /* the worker's pass that last looked at it */
	int tx_refs;		  /* queued transmit PDUs that point into this task */
	bool done;
};

/* One queued transmit PDU. */
struct txpdu {
	struct txpdu *next;
	uint8_t bhs[ISCSI_BHS_LEN + ISCSI_DIGEST_LEN];
	uint8_t pad_digest[8]; /* padding then data digest */
	struct iovec iov[4];
	int iovcnt;
	size_t total;
	size_t sent;
	struct task *task; /* unpinned when sent */
	void *owned;	   /* freed when sent */
	bool close_after;  /* close the connection once this PDU is on the wire */
	uint8_t small[96]; /* inline room for short data segments (sense, NOP echo) */
};

enum conn_state {
	CONN_LOGIN,
	CONN_FFP,
	CONN_LOGGED_OUT,
	CONN_CLOSING,
};

enum rx_phase {
	RX_BHS,
	RX_AHS,
	RX_HDIGEST,
	RX_DATA,
	RX_PAD,
	RX_DDIGEST,
};

struct conn {
	int fd;
	struct worker *worker;
	const struct tgt_listener *listener;
	struct conn *wnext, **wprev; /* the worker's list */
	struct conn *snext;	     /* the session's list */
	struct session *session;
	enum conn_state state;
	uint16_t cid;
	char peer[64];
	char local[64];
	uint32_t statsn;
	uint32_t expstatsn;

	struct iscsi_login_state *login;
	struct iscsi_text_state *text;
	struct iscsi_params params;

	/* receive */
	enum rx_phase phase;
	uint8_t *stage; /* staging buffer */
	size_t stage_len, stage_pos;
	uint8_t bhs[ISCSI_BHS_LEN];
	size_t got; /* bytes of the current part received */
	struct iscsi_pdu pdu;
	uint8_t ahs[ISCSI_MAX_AHS_LEN];
	uint8_t digest[4];
	uint8_t *data; /* where the data segment goes */
	uint32_t data_len;
	uint8_t *rxbuf; /* data segments of non-SCSI PDUs */
	uint32_t rxbuf_len;
	struct task *rx_task; /* Data-Out or immediate data target */
	bool rx_discard;      /* drop the data segment (aborted or unknown task) */
	uint32_t crc;

	/* transmit */
	struct txpdu *txhead, *txtail;
	bool want_out;
	bool is_dirty;
	struct conn *dirty_next;
	int refs; /* tasks with I/O in flight keep a closing connection alive */

	/* tasks */
	struct task *hash[TGT_TASK_HASH];
	struct task *tasks;
	unsigned ntasks;
	uint32_t next_ttt;

	/* NOP-In keepalive */
	uint64_t last_rx_ns;
	uint64_t created_ns;
	bool login_started;
	bool adopt_pending; /* counted in its session, linked once the session's worker has it */
};

struct session {
	struct session *next;
	uint16_t tsih;
	uint8_t isid[6];
	char initiator[HF_IQN_MAX];
	char alias[256];
	enum iscsi_session_type type;
	int target_index;
	struct tgt_target *target;
	struct scsi_nexus nexus;
	struct iscsi_params params;
	struct worker *worker;
	struct conn *conns;
	int nconns;
	uint32_t expcmdsn;
	uint32_t maxcmdsn;
	struct task *pending; /* out-of-order commands, sorted by CmdSN */
	/* CmdSNs inside the window that were used up without running: an early command that
	 * was aborted, or a RefCmdSN an ABORT TASK named before its command arrived (RFC 7143
	 * 11.5.1). ExpCmdSN steps over them. Bit sn % TGT_CMD_WINDOW: the window never spans
	 * more than TGT_CMD_WINDOW numbers. */
	uint8_t sn_gone[TGT_CMD_WINDOW / 8];
	bool dying;
	int refs; /* see session_put() */
	uint64_t created_ns;
};

/* connection */
struct conn *conn_create(int fd, struct worker *w, const struct tgt_listener *l);
void conn_event(struct conn *c, uint32_t events);
void conn_close(struct conn *c, const char *why);
void conn_adopted(struct conn *c, struct worker *w);
void conn_queue(struct conn *c, struct txpdu *tx);
void conn_mark_dirty(struct conn *c);
void conn_migrate(struct conn *c, struct worker *to);
void conn_rx_into(struct conn *c, uint8_t *dst, bool discard);
void worker_flush_dirty(struct worker *w);
struct txpdu *conn_tx_alloc(struct conn *c);
void conn_tx_data(struct conn *c, struct txpdu *tx, void *data, uint32_t len);
void conn_flush(struct conn *c);
void conn_fill_sn(struct conn *c, struct iscsi_sn *sn, bool advance);
void conn_reject(struct conn *c, uint8_t reason, const uint8_t *bhs);
void conn_fail(struct conn *c, uint8_t reason, const char *why);

/* sessions */
int session_bind(struct conn *c, const struct iscsi_pdu *req, uint16_t *tsih, uint16_t *status);
void session_conn_gone(struct conn *c);
void session_kill(struct session *s);
void session_put(struct session *s);
void session_adopt_conn(struct conn *c);
void cmd_drop_pending(struct session *s);
void session_cmd_window(struct session *s, uint32_t *exp, uint32_t *max);

/* commands */
void cmd_scsi(struct conn *c, const struct iscsi_pdu *p);
void cmd_data_out(struct conn *c, const struct iscsi_pdu *p);
void cmd_data_done(struct conn *c, struct task *t);
void cmd_run_pending(struct session *s);
/* CmdSN sn will never run: count it as received, so ExpCmdSN does not stop at it. */
void cmd_sn_consume(struct session *s, uint32_t sn);
bool cmd_check_sn(struct conn *c, const struct iscsi_pdu *p, bool *deliver);
struct task *task_find(struct conn *c, uint32_t itt);
void task_free(struct task *t);
void task_abort(struct task *t, struct tmf_wait *w);
void tmf_request(struct conn *c, const struct iscsi_pdu *p);
void tmf_abort_lun_local(struct worker *w, struct scsi_lun *lun, struct tmf_wait *wait,
			 struct session *except);
struct tmf_wait *tmf_wait_alloc(struct conn *c, struct worker *home);
void tmf_abort_everywhere(struct worker *skip, struct scsi_lun *lun, struct tmf_wait *w);
void tmf_wait_put(struct tmf_wait *w);

/* Maintenance (target/hold.c): the scsi_task hold hook, the worker's pass over its held tasks
 * (runs those whose LUN resumed, answers BUSY to those past the hold limit), the epoll timeout
 * it needs, and the nudge every worker gets when a LUN's pause ends. */
bool tgt_hold(struct scsi_task *st, struct scsi_lun *lun, bool paused);
void tgt_hold_service(struct worker *w);
int tgt_hold_timeout_ms(struct worker *w, int timeout);
void tgt_hold_kick_all(void);

uint64_t tgt_now_ns(void);
void tgt_pr_abort(struct scsi_pr_abort *req);
extern __thread struct worker *tgt_current_worker;

#endif
