/* One connection from holdfast-agent to the box: a non-blocking TCP connect, the TLS handshake
 * through lib/tls.h, and agent-protocol frames in and out (csv-coord/agent_proto.h). It never
 * blocks; the caller polls agent_link_fd() for agent_link_events() and calls agent_link_step(). */
#ifndef HOLDFAST_AGENT_LINK_H
#define HOLDFAST_AGENT_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csv-coord/agent_proto.h"
#include "lib/tls.h"

enum agent_link_state {
	AGENT_LINK_IDLE = 0,
	AGENT_LINK_CONNECTING = 1, /* TCP connect in progress */
	AGENT_LINK_HANDSHAKE = 2,  /* TLS handshake in progress */
	AGENT_LINK_UP = 3,	   /* frames flow */
};

#define AGENT_LINK_OUT_MAX (2 * AGENT_PROTO_MAX_FRAME)

struct agent_link {
	enum agent_link_state state;
	int fd;
	struct tls_conn *tls;
	char label[300];
	uint8_t version;    /* frames are written in this version (HELLO_ACK's choice) */
	uint32_t next_id;   /* request ids */
	size_t in_len;	    /* bytes in in[] */
	size_t in_consumed; /* the frame last returned; dropped at the next receive */
	size_t out_len, out_off;
	uint8_t in[2 * AGENT_PROTO_MAX_FRAME];
	uint8_t out[AGENT_LINK_OUT_MAX];
};

void agent_link_init(struct agent_link *l);
/* Resolve host (blocking name lookup) and start connecting. peer_name: the name the box's
 * certificate must carry, NULL to check only the chain (the join, which pins the CA). */
int agent_link_open(struct agent_link *l, struct tls_config *cfg, const char *host, uint16_t port,
		    const char *peer_name);
void agent_link_close(struct agent_link *l);

int agent_link_fd(const struct agent_link *l);
short agent_link_events(const struct agent_link *l);
bool agent_link_up(const struct agent_link *l);

/* Make progress after poll: connect, handshake, flush, read. 0, or a negative errno after which
 * the link must be closed (-ECONNRESET when the box closed it). TLS refusals keep their errnos
 * (lib/tls.h). */
int agent_link_step(struct agent_link *l);

/* Queue one message (version, request id filled in when 0: a fresh id). -ENOBUFS when the box
 * is not reading and the queue is full; -ENOTCONN before the handshake. */
int agent_link_send(struct agent_link *l, struct agent_msg *m);

/* The next whole frame, decoded into m: 1 when one was read, 0 when none is complete yet, or a
 * negative errno with *err the code the box should be told (agent_proto_decode), after which
 * -EBADMSG/-EMSGSIZE framing errors mean the link must be closed. Blobs in m stay valid until
 * the next call. */
int agent_link_recv(struct agent_link *l, struct agent_msg *m, enum agent_err *err);

/* For the join: step and poll until a message arrives or timeout_ms passes. 1, -ETIMEDOUT, or
 * an error of agent_link_step / agent_link_recv. */
int agent_link_wait_msg(struct agent_link *l, struct agent_msg *m, int timeout_ms);
/* For the join: step and poll until the link is up. */
int agent_link_wait_up(struct agent_link *l, int timeout_ms);

#endif
