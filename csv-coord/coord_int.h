/* Internals shared by the coord plane's files (csv-coord/coord_main.c, coord_agents.c,
 * coord_join.c, coord_fence.c, coord_ctl.c); not an API: coord.h is. Every function here runs
 * in the coord loop. */
#ifndef HOLDFAST_CSV_COORD_COORD_INT_H
#define HOLDFAST_CSV_COORD_COORD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "csv-coord/agent_proto.h"
#include "csv-coord/coord_catalog.h"
#include "csv-coord/coord_event.h"
#include "csv-coord/coord_hosts.h"
#include "csv-coord/lease.h"
#include "csv-coord/quorum.h"
#include "lib/config.h"
#include "lib/msg.h"
#include "lib/tls.h"

/* One agent connection. */
struct conn {
	struct conn *next;
	uint64_t cid; /* names the connection to an answer that arrives later */
	int fd;
	bool join; /* accepted on the join port */
	bool handshaken, hello_done, closing, dead, again;
	struct tls_conn *tls;
	char label[96];
	uint8_t version;
	uint64_t caps;
	uint32_t host_id; /* agent port: the host its certificate names */
	bool busy;	  /* a request of this connection waits for the target */
	int64_t deadline_ns;
	uint32_t events;
	size_t inlen;
	uint8_t in[AGENT_PROTO_MAX_FRAME];
	uint8_t *out;
	size_t outlen, outoff;
};

/* A request at the target (through the parent) and what to do with its answer. */
enum pend_kind {
	PEND_FENCE,	      /* fence a lost or removed host; ctl_id answers a removal */
	PEND_UNFENCE_REJOIN,  /* then REJOIN_ACK */
	PEND_UNFENCE_JOIN,    /* a removed host enrols again: then JOIN_RESPONSE */
	PEND_STATUS_SESSIONS, /* then the cluster_status reply */
	PEND_CATALOG,	      /* a catalog operation's request: its callback */
	PEND_LOGINS_OPEN,     /* open the logins of the target run `epoch` (its generation) */
};

struct join_ctx {
	char name[COORD_HOST_NAME_MAX + 1];
	char iqn[AGENT_MAX_IQNS][AGENT_IQN_MAX + 1];
	unsigned n_iqn;
	uint8_t fp[TLS_FINGERPRINT_LEN];
	char *cert_pem;
	size_t cert_len;
};

struct pending {
	struct pending *next;
	uint32_t rid;
	enum pend_kind kind;
	uint32_t host_id;
	uint64_t epoch;
	uint64_t cid;	 /* the agent connection to answer, 0: none */
	uint32_t areq;	 /* its request id */
	uint32_t ctl_id; /* a control request to answer, 0: none */
	int64_t sent_ns;
	struct join_ctx *join;
	coord_catalog_reply_fn cb; /* PEND_CATALOG */
	void *cb_ctx;
};

/* A catalog request in flight (coord_catalog.h answers it later, by id): whom to answer. The
 * ids are ours, so a control request and an agent's never share one. An agent's answer goes
 * to the connection it came on; when that is gone, the answer is dropped (the operation still
 * completes in the catalog and at the target, as it would for a control client that left). */
struct catreq {
	struct catreq *next;
	uint32_t id;
	bool agent;
	uint32_t ctl_id; /* !agent: the control request */
	uint64_t cid;	 /* agent: the connection, its request id and type, its host */
	uint32_t areq;
	uint8_t type;
	struct agent_vdisk_list list; /* VDISK_LIST: the filter and the page asked for */
	char host[COORD_HOST_NAME_MAX + 1];
};

/* Everything the loop holds (coord_main.c defines it). */
struct coord_state {
	const struct hf_config *cfg;
	struct msg_chan ch;
	int epfd, tfd, join_fd, agent_fd;
	struct ca *ca;
	struct join_store *tokens;
	struct tls_config *tls_join, *tls_agent;
	struct coord_hosts hosts;
	struct quorum q;
	bool quorate;
	struct lease_config lc;
	struct coord_events ev;
	struct conn *conns, *dead;
	unsigned nconns;
	uint64_t next_cid;
	struct pending *pend;
	uint32_t next_rid;
	struct catreq *catreqs;
	uint32_t next_catid;
	char hosts_path[4200];
	int64_t started_ns;
	/* The run of the target we deal with (msg.h, MSG_PLANE_UP): it holds iSCSI logins until
	 * we have given it the fences, and the LUNs with their policies, and opened them. */
	struct {
		uint64_t generation; /* 0: not told yet */
		int64_t up_ns;	     /* when we were told */
		bool open;
		bool inflight;
		int64_t retry_ns;
	} tgt;
};
extern struct coord_state co;

/* ---- coord_main.c: helpers and the parent channel ---- */

/* CLOCK_MONOTONIC in ns. */
int64_t now_ns(void);
/* CLOCK_REALTIME in ms. */
int64_t wall_ms(void);
/* ns as ms, for the log and the status. */
double ms(int64_t ns);
/* Record an event in the ring and say it in the log, with the same words. */
void event(enum coord_event_kind kind, const char *host, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* After every quorum change: log the moment quorum was gained or lost. */
void quorum_note(void);
/* Write the host table to its file; a negative errno (logged) when it cannot. */
int hosts_save(void);
/* Answer control request id with o (taken; NULL: out of memory). */
void ctl_reply(uint32_t id, json_t *o);
/* Answer control request id with an error. */
void ctl_error(uint32_t id, const char *why);
/* Ask the target (through the parent) with req (taken) and remember what to do with the
 * answer; NULL when nothing could be sent. */
struct pending *relay(json_t *req, enum pend_kind kind, uint32_t host_id, uint64_t epoch);
/* A new catalog request in flight, with its id; NULL: no memory. */
struct catreq *catreq_new(void);
/* A control request coord_catalog.h handles: its answer goes back to control request ctl_id. */
void catalog_ctl_request(uint32_t ctl_id, const char *cmd, json_t *req);

/* ---- coord_agents.c: connections, frames, heartbeats and rejoin ---- */

/* The live connection of id cid, or NULL when it is gone. */
struct conn *conn_by_cid(uint64_t cid);
/* Close c now; it is freed after the current batch of events. */
void coord_conn_close(struct conn *c);
/* Send what is queued. Returns -1 when the connection was closed. */
int coord_conn_flush(struct conn *c);
/* Queue m on c (its version set to c's) and send what can be sent. */
void conn_send(struct conn *c, struct agent_msg *m);
/* Send an ERROR about request req (of type ref); close_after: then close c. */
void conn_error(struct conn *c, uint32_t req, enum agent_err code, uint8_t ref, const char *text,
		bool close_after);
/* Tell h's agent on c that h is fenced, and why. */
void send_fenced(struct conn *c, struct coord_host *h);
/* The target's answer to the unfence of a rejoin: then REJOIN_ACK. */
void on_unfence_rejoin_reply(struct pending *p, json_t *r);
/* Handshake, flush and read c as far as it goes. */
void conn_drive(struct conn *c);
/* Accept the connections waiting on listener lfd (join: the join port). */
void accept_cb(int lfd, bool join);

/* ---- coord_join.c ---- */

/* The lease timing every agent must follow (docs/agent-protocol.md, "Lease timing"). */
void box_timing(struct agent_lease_timing *t);
/* A JOIN_REQUEST on the join port. */
void on_join_request(struct conn *c, const struct agent_msg *m);
/* The target's answer to an unfence; why: its error. */
bool unfence_ok(json_t *r, const char **why);
/* The target's answer to the unfence of a removed host that enrols again: then
 * JOIN_RESPONSE. */
void on_unfence_join_reply(struct pending *p, json_t *r);

/* ---- coord_fence.c: fencing at the target, a target that (re)starts ---- */

/* Have the target fence h's epoch; ctl_id: a removal to answer, 0: none. */
void send_fence(struct coord_host *h, uint32_t ctl_id);
/* The lease of h ran out: out of quorum, and fenced at the target at once. */
void host_declared_lost(struct coord_host *h, int64_t now);
/* The target's answer to a fence. */
void on_fence_reply(struct pending *p, json_t *r);
/* MSG_PLANE_UP: a run of the target we have not dealt with. */
void on_plane_up(struct msg *m);
/* The target's answer to logins_open. */
void on_logins_open_reply(struct pending *p, json_t *r);
/* From tick(): open the target's logins once it has every fence and every export was tried. */
void target_logins_maybe_open(int64_t now);

/* ---- coord_ctl.c: control ---- */

/* The cluster_status reply, with the target's sessions (NULL: sessions_error says why). */
json_t *status_json(json_t *sessions, const char *sessions_error);
/* A control request from the parent (MSG_CTL_REQUEST). */
void on_ctl_request(struct msg *m);

#endif
