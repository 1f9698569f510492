#include "lib/msg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/cursor.h"
#include "lib/log.h"

/* Which process receives which message type. A type missing here cannot be sent to that
 * process (msg_send refuses it) and ends it if it arrives anyway (msg_recv). */
static const uint8_t msg_table[PROC_MAX][MSG_TYPE_MAX] = {
	[PROC_PARENT] = {[MSG_CTL_REPLY] = 1, [MSG_CTL_RELAY_REQUEST] = 1},
	[PROC_TARGET] = {[MSG_CTL_REQUEST] = 1, [MSG_SHUTDOWN] = 1},
	[PROC_COORD] = {[MSG_CTL_REQUEST] = 1,
			[MSG_SHUTDOWN] = 1,
			[MSG_CTL_RELAY_REPLY] = 1,
			[MSG_PLANE_UP] = 1},
	[PROC_BROKER] = {[MSG_CTL_REQUEST] = 1, [MSG_SHUTDOWN] = 1},
	[PROC_WEB] = {[MSG_CTL_REQUEST] = 1, [MSG_SHUTDOWN] = 1},
};

static const char *const msg_proc_names[PROC_MAX] = {
	[PROC_PARENT] = "parent", [PROC_TARGET] = "target", [PROC_COORD] = "coord",
	[PROC_BROKER] = "broker", [PROC_WEB] = "web",
};

/* A descriptor count above one is refused, but room for a few lets us see and close them. */
#define MSG_MAX_FDS_SEEN 8

struct msg_out {
	struct msg_out *next;
	size_t total; /* header + payload */
	size_t off;   /* bytes already sent */
	int fd;
	uint8_t buf[];
};

int msg_handled_by(enum hf_proc p, uint32_t type)
{
	if ((unsigned)p >= PROC_MAX || type >= MSG_TYPE_MAX)
		return 0;
	return msg_table[p][type];
}

const char *msg_type_name(uint32_t type)
{
	switch (type) {
	case MSG_CTL_REQUEST:
		return "CTL_REQUEST";
	case MSG_CTL_REPLY:
		return "CTL_REPLY";
	case MSG_SHUTDOWN:
		return "SHUTDOWN";
	case MSG_CTL_RELAY_REQUEST:
		return "CTL_RELAY_REQUEST";
	case MSG_CTL_RELAY_REPLY:
		return "CTL_RELAY_REPLY";
	case MSG_PLANE_UP:
		return "PLANE_UP";
	default:
		return "unknown";
	}
}

const char *msg_proc_name(enum hf_proc p)
{
	if ((unsigned)p >= PROC_MAX)
		return "unknown";
	return msg_proc_names[p];
}

int msg_socketpair(int fds[2])
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
		return -errno;
	return 0;
}

int msg_chan_init(struct msg_chan *ch, int fd, enum hf_proc self, enum hf_proc peer)
{
	memset(ch, 0, sizeof(*ch));
	ch->fd = fd;
	ch->self = self;
	ch->peer = peer;
	ch->partial.fd = -1;
	ch->chunk = malloc(MSG_CHUNK);
	if (!ch->chunk)
		return -ENOMEM;
	return 0;
}

static void msg_partial_reset(struct msg_chan *ch)
{
	msg_free(&ch->partial);
	ch->in_partial = 0;
	ch->got = 0;
}

void msg_chan_close(struct msg_chan *ch)
{
	struct msg_out *o, *next;

	for (o = ch->head; o; o = next) {
		next = o->next;
		if (o->fd >= 0)
			close(o->fd);
		free(o);
	}
	ch->head = ch->tail = NULL;
	ch->queued = 0;
	msg_partial_reset(ch);
	free(ch->chunk);
	ch->chunk = NULL;
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
}

void msg_free(struct msg *m)
{
	free(m->data);
	m->data = NULL;
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

/* Send one datagram of the head message; the descriptor rides on the first one. */
static int msg_send_chunk(struct msg_chan *ch, struct msg_out *o)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	size_t n = o->total - o->off;
	struct iovec iov;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t r;

	if (n > MSG_CHUNK)
		n = MSG_CHUNK;
	iov.iov_base = o->buf + o->off;
	iov.iov_len = n;
	if (o->off == 0 && o->fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &o->fd, sizeof(int));
	}
	do
		r = sendmsg(ch->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	/* A SOCK_SEQPACKET send is all or nothing; anything else means the socket is wrong. */
	if ((size_t)r != n)
		return -EPROTO;
	o->off += n;
	return 0;
}

int msg_flush(struct msg_chan *ch)
{
	while (ch->head) {
		struct msg_out *o = ch->head;
		int err = msg_send_chunk(ch, o);

		if (err)
			return err;
		if (o->off < o->total)
			continue;
		ch->head = o->next;
		if (!ch->head)
			ch->tail = NULL;
		ch->queued--;
		if (o->fd >= 0)
			close(o->fd);
		free(o);
	}
	return 0;
}

int msg_send(struct msg_chan *ch, uint32_t type, uint32_t id, const void *data, size_t len, int fd)
{
	struct msg_out *o;
	int err;

	if (len > MSG_PAYLOAD_MAX)
		return -EMSGSIZE;
	if (!msg_handled_by(ch->peer, type)) {
		log_warnx("%s: %s does not handle message %s (%u)", __func__,
			  msg_proc_name(ch->peer), msg_type_name(type), type);
		return -EINVAL;
	}
	o = malloc(sizeof(*o) + MSG_HDR_LEN + len);
	if (!o)
		return -ENOMEM;
	o->next = NULL;
	o->total = MSG_HDR_LEN + len;
	o->off = 0;
	o->fd = -1;
	if (fd >= 0) {
		o->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (o->fd < 0) {
			err = -errno;
			free(o);
			return err;
		}
	}
	put_be32(o->buf, type);
	put_be32(o->buf + 4, len);
	put_be32(o->buf + 8, id);
	if (len)
		memcpy(o->buf + MSG_HDR_LEN, data, len);
	if (ch->tail)
		ch->tail->next = o;
	else
		ch->head = o;
	ch->tail = o;
	ch->queued++;
	err = msg_flush(ch);
	return err == -EAGAIN ? 0 : err;
}

/* Take the descriptors out of a received datagram. More than one, or a truncated control
 * block, is a framing error; every descriptor received is closed in that case. */
static int msg_take_fds(struct msghdr *mh, int *fd)
{
	int fds[MSG_MAX_FDS_SEEN], nfds = 0, i, err = 0;
	struct cmsghdr *c;

	*fd = -1;
	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n, k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			err = -EBADMSG;
			continue;
		}
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < n && nfds < MSG_MAX_FDS_SEEN; k++)
			memcpy(&fds[nfds++], CMSG_DATA(c) + k * sizeof(int), sizeof(int));
	}
	if (mh->msg_flags & MSG_CTRUNC)
		err = -EBADMSG;
	if (nfds > 1)
		err = -EBADMSG;
	if (err) {
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		return err;
	}
	if (nfds == 1)
		*fd = fds[0];
	return 0;
}

int msg_recv(struct msg_chan *ch, struct msg *m)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(MSG_MAX_FDS_SEEN * sizeof(int))];
	} ctl;
	struct iovec iov = {.iov_base = ch->chunk, .iov_len = MSG_CHUNK};
	struct msghdr mh;
	struct cursor cur;
	uint32_t type, len, id, want;
	ssize_t n;
	int fd, err;

	for (;;) {
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		do
			n = recvmsg(ch->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		err = msg_take_fds(&mh, &fd);
		if (err)
			goto bad;
		/* Every datagram we send carries at least a header or a payload byte, so an empty
		 * read is the peer's end of file. */
		if (n == 0) {
			if (fd >= 0)
				close(fd);
			msg_partial_reset(ch);
			return -EPIPE;
		}
		if (mh.msg_flags & MSG_TRUNC) {
			err = -EBADMSG;
			goto bad_fd;
		}

		if (ch->in_partial) {
			/* Continuations carry payload only, each a full chunk but the last. */
			want = ch->partial.len - ch->got;
			if (want > MSG_CHUNK)
				want = MSG_CHUNK;
			if (fd >= 0 || (size_t)n != want) {
				err = -EBADMSG;
				goto bad_fd;
			}
			memcpy(ch->partial.data + ch->got, ch->chunk, n);
			ch->got += n;
		} else {
			cur_init(&cur, ch->chunk, n);
			if (cur_be32(&cur, &type) || cur_be32(&cur, &len) || cur_be32(&cur, &id)) {
				err = -EBADMSG;
				goto bad_fd;
			}
			if (len > MSG_PAYLOAD_MAX) {
				err = -EBADMSG;
				goto bad_fd;
			}
			want = MSG_HDR_LEN + len > MSG_CHUNK ? MSG_CHUNK : MSG_HDR_LEN + len;
			if ((size_t)n != want) {
				err = -EBADMSG;
				goto bad_fd;
			}
			if (!msg_handled_by(ch->self, type))
				fatalx("%s: %s received message type %u (%s) from %s, which it "
				       "does "
				       "not handle",
				       __func__, msg_proc_name(ch->self), type, msg_type_name(type),
				       msg_proc_name(ch->peer));
			ch->partial.type = type;
			ch->partial.len = len;
			ch->partial.id = id;
			ch->partial.fd = fd;
			ch->partial.data = malloc((size_t)len + 1);
			if (!ch->partial.data) {
				msg_partial_reset(ch);
				return -ENOMEM;
			}
			memcpy(ch->partial.data, ch->chunk + MSG_HDR_LEN, n - MSG_HDR_LEN);
			ch->got = n - MSG_HDR_LEN;
			ch->in_partial = 1;
		}
		if (ch->got == ch->partial.len) {
			ch->partial.data[ch->partial.len] = '\0';
			*m = ch->partial;
			ch->partial.data = NULL;
			ch->partial.fd = -1;
			ch->in_partial = 0;
			ch->got = 0;
			return 0;
		}
	}

bad_fd:
	if (fd >= 0)
		close(fd);
bad:
	msg_partial_reset(ch);
	log_warnx("%s: malformed message from %s", __func__, msg_proc_name(ch->peer));
	return err;
}
