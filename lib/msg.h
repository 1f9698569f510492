/* The message layer between Holdfast's processes: typed, length-framed messages over a
 * SOCK_SEQPACKET socketpair, with an optional file descriptor, a non-blocking send queue and a
 * receiver that checks every length it is given. One table says which process handles which
 * message type; receiving a type the process does not handle is a bug and ends it (fatalx).
 *
 * Wire format of one message: a 12-byte header (type, payload length, request id; each a
 * big-endian u32) and the payload, at most MSG_PAYLOAD_MAX bytes. Because a unix socket's
 * send buffer may be smaller than that, a message travels as a sequence of datagrams of
 * exactly MSG_CHUNK bytes, the last one shorter; the header is in the first datagram, which
 * alone may carry the file descriptor. */
#ifndef HOLDFAST_LIB_MSG_H
#define HOLDFAST_LIB_MSG_H

#include <stddef.h>
#include <stdint.h>

#define MSG_HDR_LEN	12
#define MSG_PAYLOAD_MAX (1024 * 1024)
#define MSG_CHUNK	(64 * 1024)

/* The processes of holdfastd. PROC_PARENT is the supervisor. */
enum hf_proc {
	PROC_PARENT = 0,
	PROC_TARGET,
	PROC_COORD,
	PROC_BROKER,
	PROC_WEB,
	PROC_MAX,
};

/* Message types. Numbers are stable (both ends of a socketpair come from one binary, but logs
 * and traces name them); add new types at the end of their group. */
enum msg_type {
	MSG_NONE = 0,
	/* Control: a request from holdfastctl (or the web plane) relayed by the parent. The
	 * payload is one JSON object as text; the reply carries the request's id. */
	MSG_CTL_REQUEST = 1,
	MSG_CTL_REPLY = 2,
	/* Parent to child: finish what is in flight and exit 0. No payload. */
	MSG_SHUTDOWN = 3,
	/* Child to parent: a control request (same JSON as MSG_CTL_REQUEST) that a plane makes of
	 * another plane, e.g. coord asking target to fence a host. The parent routes it by its
	 * "cmd" like a holdfastctl request and answers with MSG_CTL_RELAY_REPLY carrying the
	 * child's id: the target's answer, or {"error": ...} when it cannot be routed or the
	 * plane did not answer. Separate types keep "the parent never receives requests from
	 * holdfastctl's path" and "only a plane that asks may receive relayed replies" checkable
	 * by the table. */
	MSG_CTL_RELAY_REQUEST = 4,
	MSG_CTL_RELAY_REPLY = 5,
	/* Parent to coord: a plane (the target) started, or coord started while it runs. The
	 * payload is {"plane": NAME, "generation": N}, N counting that plane's starts from 1. A
	 * target that starts has none of the state coord gave it at run time (fences, LUNs and
	 * their access policies); it holds iSCSI logins until coord has given it again and says
	 * so with a relayed {"cmd":"logins_open","generation":N}, which the parent passes on only
	 * while N is still the target's generation (docs/coordinator.md). */
	MSG_PLANE_UP = 6,
	/* 16..31 coord, 32..47 broker, 48..63 web: reserved. */
	MSG_TYPE_MAX = 64,
};

/* A received message. data is NUL-terminated (one byte past len) so a JSON payload can be
 * used as a string; it is owned by the message and freed by msg_free(). */
struct msg {
	uint32_t type;
	uint32_t len;
	uint32_t id;
	uint8_t *data;
	int fd; /* a received descriptor (the receiver owns it), or -1 */
};

struct msg_out; /* one queued message, private */

/* One end of a socketpair and its queues. */
struct msg_chan {
	int fd;
	enum hf_proc self; /* who reads from this end: decides which types are legal */
	enum hf_proc peer;
	struct msg_out *head, *tail;
	size_t queued; /* messages waiting to be sent */
	/* Receive state: a message whose later chunks have not all arrived yet. */
	uint8_t *chunk;
	struct msg partial;
	uint32_t got;
	int in_partial;
};

/* A SOCK_SEQPACKET socketpair, non-blocking and close-on-exec. Returns 0 or -errno. */
int msg_socketpair(int fds[2]);

/* Wrap fd (taken over: msg_chan_close() closes it). */
int msg_chan_init(struct msg_chan *ch, int fd, enum hf_proc self, enum hf_proc peer);
void msg_chan_close(struct msg_chan *ch);

/* Queue a message and send as much of the queue as the socket takes. fd, if not -1, is sent
 * along (the caller keeps its own copy: it is duplicated). Returns 0 (queued or sent),
 * -EMSGSIZE when len > MSG_PAYLOAD_MAX, -EINVAL for a type the peer does not handle, or a
 * negative errno from the socket (the channel is then broken). */
int msg_send(struct msg_chan *ch, uint32_t type, uint32_t id, const void *data, size_t len, int fd);

/* Send what is queued. Returns 0 when the queue is empty, -EAGAIN when the socket is full
 * (wait for EPOLLOUT and call again), or another negative errno. */
int msg_flush(struct msg_chan *ch);
static inline int msg_chan_pending(const struct msg_chan *ch)
{
	return ch->head != NULL;
}

/* Receive one whole message. Returns 0 with *m filled, -EAGAIN when no complete message is
 * waiting, -EPIPE when the peer has closed, -EBADMSG for a malformed frame (short header,
 * length above the limit or not matching the datagrams, a descriptor where none may be),
 * or another negative errno. A well-framed message of a type this process does not handle
 * is a programming error and ends the process with fatalx(). */
int msg_recv(struct msg_chan *ch, struct msg *m);
void msg_free(struct msg *m);

/* The table: does process p handle (receive) message type t? */
int msg_handled_by(enum hf_proc p, uint32_t type);
const char *msg_type_name(uint32_t type);
const char *msg_proc_name(enum hf_proc p);

#endif
