#include "agent/agent_link.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

void agent_link_init(struct agent_link *l)
{
	l->state = AGENT_LINK_IDLE;
	l->fd = -1;
	l->tls = NULL;
	l->label[0] = '\0';
	l->version = AGENT_PROTO_VERSION_MAX;
	l->next_id = 1;
	l->in_len = l->in_consumed = 0;
	l->out_len = l->out_off = 0;
}

int agent_link_open(struct agent_link *l, struct tls_config *cfg, const char *host, uint16_t port,
		    const char *peer_name)
{
	struct addrinfo hints = {0}, *res = NULL;
	char portstr[8];
	int one = 1, err, fd;

	agent_link_close(l);
	snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
	snprintf(l->label, sizeof(l->label), "box %s:%u", host, (unsigned)port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	err = getaddrinfo(host, portstr, &hints, &res);
	if (err) {
		log_warnx("%s: %s: %s", __func__, l->label, gai_strerror(err));
		return err == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		goto err_free;
	}
	/* Heartbeats are small and late ones cost the lease: do not let Nagle hold them. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, res->ai_addr, res->ai_addrlen) && errno != EINPROGRESS) {
		err = -errno;
		goto err_close;
	}
	err = tls_conn_new(&l->tls, cfg, fd, l->label);
	if (err)
		goto err_close;
	if (peer_name) {
		err = tls_conn_set_peer_name(l->tls, peer_name);
		if (err)
			goto err_tls;
	}
	freeaddrinfo(res);
	l->fd = fd;
	l->state = AGENT_LINK_CONNECTING;
	return 0;

err_tls:
	tls_conn_free(l->tls);
	l->tls = NULL;
err_close:
	close(fd);
err_free:
	freeaddrinfo(res);
	return err;
}

void agent_link_close(struct agent_link *l)
{
	if (l->tls)
		tls_conn_free(l->tls);
	if (l->fd >= 0)
		close(l->fd);
	agent_link_init(l);
}

int agent_link_fd(const struct agent_link *l)
{
	return l->fd;
}

bool agent_link_up(const struct agent_link *l)
{
	return l->state == AGENT_LINK_UP;
}

short agent_link_events(const struct agent_link *l)
{
	short ev = 0;

	switch (l->state) {
	case AGENT_LINK_CONNECTING:
		return POLLOUT;
	case AGENT_LINK_HANDSHAKE:
		return tls_conn_want(l->tls) == TLS_WANT_WRITE ? POLLOUT : POLLIN;
	case AGENT_LINK_UP:
		ev = POLLIN;
		if (l->out_len > l->out_off || tls_conn_want(l->tls) == TLS_WANT_WRITE)
			ev |= POLLOUT;
		return ev;
	default:
		return 0;
	}
}

static int flush(struct agent_link *l)
{
	ssize_t n;

	while (l->out_off < l->out_len) {
		n = tls_conn_write(l->tls, l->out + l->out_off, l->out_len - l->out_off);
		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return (int)n;
		l->out_off += (size_t)n;
	}
	l->out_off = l->out_len = 0;
	return 0;
}

static int fill(struct agent_link *l)
{
	ssize_t n;

	if (l->in_consumed) {
		memmove(l->in, l->in + l->in_consumed, l->in_len - l->in_consumed);
		l->in_len -= l->in_consumed;
		l->in_consumed = 0;
	}
	while (l->in_len < sizeof(l->in)) {
		n = tls_conn_read(l->tls, l->in + l->in_len, sizeof(l->in) - l->in_len);
		if (n == -EAGAIN)
			return 0;
		if (n == 0)
			return -ECONNRESET;
		if (n < 0)
			return (int)n;
		l->in_len += (size_t)n;
	}
	return 0;
}

int agent_link_step(struct agent_link *l)
{
	int err, soerr;
	socklen_t sl = sizeof(soerr);

	switch (l->state) {
	case AGENT_LINK_CONNECTING:
		if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
			return -errno;
		if (soerr == EINPROGRESS || soerr == EALREADY)
			return 0;
		if (soerr)
			return -soerr;
		/* SO_ERROR is 0 both when connected and while still connecting: ask the peer. */
		{
			struct sockaddr_storage ss;
			socklen_t ssl = sizeof(ss);

			if (getpeername(l->fd, (struct sockaddr *)&ss, &ssl))
				return errno == ENOTCONN ? 0 : -errno;
		}
		l->state = AGENT_LINK_HANDSHAKE;
		/* fall through */
	case AGENT_LINK_HANDSHAKE:
		err = tls_conn_handshake(l->tls);
		if (err == -EAGAIN)
			return 0;
		if (err)
			return err;
		l->state = AGENT_LINK_UP;
		/* fall through */
	case AGENT_LINK_UP:
		err = flush(l);
		if (err)
			return err;
		return fill(l);
	default:
		return -ENOTCONN;
	}
}

int agent_link_send(struct agent_link *l, struct agent_msg *m)
{
	size_t len;
	int err;

	if (l->state != AGENT_LINK_UP)
		return -ENOTCONN;
	if (!m->version)
		m->version = l->version;
	if (!m->request_id) {
		m->request_id = l->next_id++;
		if (!l->next_id)
			l->next_id = 1;
	}
	if (l->out_off && l->out_off == l->out_len)
		l->out_off = l->out_len = 0;
	if (l->out_off) {
		memmove(l->out, l->out + l->out_off, l->out_len - l->out_off);
		l->out_len -= l->out_off;
		l->out_off = 0;
	}
	err = agent_proto_encode(m, l->out + l->out_len, sizeof(l->out) - l->out_len, &len);
	if (err == -EMSGSIZE)
		return -ENOBUFS;
	if (err)
		return err;
	l->out_len += len;
	return flush(l);
}

int agent_link_recv(struct agent_link *l, struct agent_msg *m, enum agent_err *err)
{
	size_t flen;
	int ret;

	*err = AGENT_E_NONE;
	if (l->in_consumed) {
		memmove(l->in, l->in + l->in_consumed, l->in_len - l->in_consumed);
		l->in_len -= l->in_consumed;
		l->in_consumed = 0;
	}
	ret = agent_proto_frame_len(l->in, l->in_len, &flen);
	if (ret == -EAGAIN)
		return 0;
	if (ret == -EBADMSG) {
		*err = AGENT_E_MALFORMED;
		return ret;
	}
	if (ret == -EMSGSIZE) {
		*err = AGENT_E_TOO_BIG;
		return ret;
	}
	if (ret)
		return ret;
	if (l->in_len < flen)
		return 0;
	l->in_consumed = flen;
	ret = agent_proto_decode(l->in, flen, m, err);
	return ret ? ret : 1;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_io(struct agent_link *l, int64_t end)
{
	struct pollfd p = {.fd = l->fd, .events = agent_link_events(l)};
	int64_t left = end - mono_ms();
	int n;

	if (left <= 0)
		return -ETIMEDOUT;
	if (l->tls && tls_conn_pending(l->tls))
		return 0;
	n = poll(&p, 1, (int)left);
	if (n < 0 && errno != EINTR)
		return -errno;
	return 0;
}

int agent_link_wait_up(struct agent_link *l, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	int err;

	for (;;) {
		err = agent_link_step(l);
		if (err)
			return err;
		if (l->state == AGENT_LINK_UP)
			return 0;
		err = wait_io(l, end);
		if (err)
			return err;
	}
}

int agent_link_wait_msg(struct agent_link *l, struct agent_msg *m, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	enum agent_err perr;
	int ret;

	for (;;) {
		ret = agent_link_recv(l, m, &perr);
		if (ret)
			return ret;
		ret = wait_io(l, end);
		if (ret)
			return ret;
		ret = agent_link_step(l);
		if (ret) {
			/* Frames that arrived before the close (an ERROR, typically) still count.
			 */
			int r2 = agent_link_recv(l, m, &perr);

			return r2 ? r2 : ret;
		}
	}
}
