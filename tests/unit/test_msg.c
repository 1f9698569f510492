/* Tests for lib/msg.c: framing, chunked large messages, the send queue, descriptor passing,
 * and refusal of truncated, oversized and mis-framed input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/cursor.h"
#include "lib/msg.h"

/* parent end (receives replies) and target end (receives requests) of one socketpair */
struct pair {
	struct msg_chan parent, target;
};

static int setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	int fds[2];

	assert_int_equal(msg_socketpair(fds), 0);
	assert_int_equal(msg_chan_init(&p->parent, fds[0], PROC_PARENT, PROC_TARGET), 0);
	assert_int_equal(msg_chan_init(&p->target, fds[1], PROC_TARGET, PROC_PARENT), 0);
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct pair *p = *state;

	msg_chan_close(&p->parent);
	msg_chan_close(&p->target);
	free(p);
	return 0;
}

/* Write a datagram past the message layer, to forge what a broken peer would send. */
static void raw_send(int fd, const void *data, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	assert_int_equal(sendmsg(fd, &mh, 0), (ssize_t)len);
}

static void header(uint8_t *h, uint32_t type, uint32_t len, uint32_t id)
{
	put_be32(h, type);
	put_be32(h + 4, len);
	put_be32(h + 8, id);
}

static void test_small_message_round_trips(void **state)
{
	struct pair *p = *state;
	static const char req[] = "{\"cmd\":\"targets\"}";
	struct msg m;

	assert_int_equal(msg_send(&p->parent, MSG_CTL_REQUEST, 42, req, strlen(req), -1), 0);
	assert_int_equal(msg_recv(&p->target, &m), 0);
	assert_int_equal(m.type, MSG_CTL_REQUEST);
	assert_int_equal(m.id, 42);
	assert_int_equal(m.len, strlen(req));
	assert_int_equal(m.fd, -1);
	/* The payload is NUL-terminated, so JSON text can be parsed in place. */
	assert_string_equal((char *)m.data, req);
	msg_free(&m);
	assert_int_equal(msg_recv(&p->target, &m), -EAGAIN);
}

static void test_empty_payload_round_trips(void **state)
{
	struct pair *p = *state;
	struct msg m;

	assert_int_equal(msg_send(&p->parent, MSG_SHUTDOWN, 0, NULL, 0, -1), 0);
	assert_int_equal(msg_recv(&p->target, &m), 0);
	assert_int_equal(m.type, MSG_SHUTDOWN);
	assert_int_equal(m.len, 0);
	msg_free(&m);
}

static void test_max_size_message_crosses_in_chunks_through_the_queue(void **state)
{
	struct pair *p = *state;
	uint8_t *big = malloc(MSG_PAYLOAD_MAX);
	struct msg m;
	size_t i;
	int err, rounds = 0;

	for (i = 0; i < MSG_PAYLOAD_MAX; i++)
		big[i] = (uint8_t)(i * 7 + i / 65536);
	/* Two of them: more than a unix socket buffers, so the queue must hold the rest. */
	assert_int_equal(msg_send(&p->target, MSG_CTL_REPLY, 1, big, MSG_PAYLOAD_MAX, -1), 0);
	assert_int_equal(msg_send(&p->target, MSG_CTL_REPLY, 2, big, 10, -1), 0);
	for (i = 1; i <= 2; rounds++) {
		assert_true(rounds < 10000);
		err = msg_flush(&p->target);
		assert_true(err == 0 || err == -EAGAIN);
		err = msg_recv(&p->parent, &m);
		if (err == -EAGAIN)
			continue;
		assert_int_equal(err, 0);
		assert_int_equal(m.id, i);
		assert_int_equal(m.len, i == 1 ? MSG_PAYLOAD_MAX : 10);
		assert_memory_equal(m.data, big, m.len);
		msg_free(&m);
		i++;
	}
	assert_false(msg_chan_pending(&p->target));
	free(big);
}

static void test_oversized_message_is_not_sent(void **state)
{
	struct pair *p = *state;
	struct msg m;

	assert_int_equal(msg_send(&p->target, MSG_CTL_REPLY, 1, "", MSG_PAYLOAD_MAX + 1, -1),
			 -EMSGSIZE);
	assert_int_equal(msg_recv(&p->parent, &m), -EAGAIN);
}

static void test_type_the_peer_does_not_handle_is_not_sent(void **state)
{
	struct pair *p = *state;

	/* The parent never receives requests, and the target never receives replies. */
	assert_int_equal(msg_send(&p->target, MSG_CTL_REQUEST, 1, "{}", 2, -1), -EINVAL);
	assert_int_equal(msg_send(&p->parent, MSG_CTL_REPLY, 1, "{}", 2, -1), -EINVAL);
	assert_int_equal(msg_send(&p->parent, 9999, 1, "{}", 2, -1), -EINVAL);
}

static void test_truncated_header_is_refused(void **state)
{
	struct pair *p = *state;
	uint8_t h[MSG_HDR_LEN];
	struct msg m;

	header(h, MSG_CTL_REQUEST, 0, 1);
	raw_send(p->parent.fd, h, 8, NULL, 0);
	assert_int_equal(msg_recv(&p->target, &m), -EBADMSG);
}

static void test_length_larger_than_datagram_is_refused(void **state)
{
	struct pair *p = *state;
	uint8_t buf[MSG_HDR_LEN + 10];
	struct msg m;

	/* The header claims 100 bytes but only 10 follow: a truncated message. */
	header(buf, MSG_CTL_REQUEST, 100, 1);
	memset(buf + MSG_HDR_LEN, 'x', 10);
	raw_send(p->parent.fd, buf, sizeof(buf), NULL, 0);
	assert_int_equal(msg_recv(&p->target, &m), -EBADMSG);
}

static void test_length_smaller_than_datagram_is_refused(void **state)
{
	struct pair *p = *state;
	uint8_t buf[MSG_HDR_LEN + 10];
	struct msg m;

	header(buf, MSG_CTL_REQUEST, 4, 1);
	memset(buf + MSG_HDR_LEN, 'x', 10);
	raw_send(p->parent.fd, buf, sizeof(buf), NULL, 0);
	assert_int_equal(msg_recv(&p->target, &m), -EBADMSG);
}

static void test_length_above_limit_is_refused(void **state)
{
	struct pair *p = *state;
	uint8_t *buf = calloc(1, MSG_CHUNK);
	struct msg m;

	header(buf, MSG_CTL_REQUEST, MSG_PAYLOAD_MAX + 1, 1);
	raw_send(p->parent.fd, buf, MSG_CHUNK, NULL, 0);
	assert_int_equal(msg_recv(&p->target, &m), -EBADMSG);
	free(buf);
}

static void test_datagram_larger_than_a_chunk_is_refused(void **state)
{
	struct pair *p = *state;
	size_t len = MSG_CHUNK + 100;
	uint8_t *buf = calloc(1, len);
	struct msg m;

	header(buf, MSG_CTL_REQUEST, len - MSG_HDR_LEN, 1);
	raw_send(p->parent.fd, buf, len, NULL, 0);
	assert_int_equal(msg_recv(&p->target, &m), -EBADMSG);
	free(buf);
}

static void test_short_continuation_chunk_is_refused(void **state)
{
	struct pair *p = *state;
	uint8_t *buf = calloc(1, MSG_CHUNK);
	struct msg m;

	/* 100 KiB announced: the second datagram must carry exactly the rest. */
	header(buf, MSG_CTL_REQUEST, 100 * 1024, 1);
	raw_send(p->parent.fd, buf, MSG_CHUNK, NULL, 0);
	raw_send(p->parent.fd, buf, 1000, NULL, 0);
	assert_int_equal(msg_recv(&p->target, &m), -EBADMSG);
	free(buf);
}

static void test_descriptor_is_passed(void **state)
{
	struct pair *p = *state;
	int pipefd[2];
	char got[8] = {0};
	struct msg m;

	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(msg_send(&p->parent, MSG_CTL_REQUEST, 7, "{}", 2, pipefd[1]), 0);
	close(pipefd[1]);
	assert_int_equal(msg_recv(&p->target, &m), 0);
	assert_true(m.fd >= 0);
	/* The received descriptor is the pipe's write end: what goes in comes out. */
	assert_int_equal(write(m.fd, "hello", 5), 5);
	msg_free(&m);
	assert_int_equal(read(pipefd[0], got, sizeof(got)), 5);
	assert_string_equal(got, "hello");
	close(pipefd[0]);
}

static void test_two_descriptors_are_refused(void **state)
{
	struct pair *p = *state;
	uint8_t h[MSG_HDR_LEN];
	int pipefd[2];
	struct msg m;
	char c;

	assert_int_equal(pipe(pipefd), 0);
	header(h, MSG_CTL_REQUEST, 0, 1);
	raw_send(p->parent.fd, h, sizeof(h), pipefd, 2);
	close(pipefd[1]);
	assert_int_equal(msg_recv(&p->target, &m), -EBADMSG);
	/* The refused descriptors were closed: the pipe's last writer is gone, so EOF. */
	assert_int_equal(read(pipefd[0], &c, 1), 0);
	close(pipefd[0]);
}

static void test_descriptor_on_a_continuation_is_refused(void **state)
{
	struct pair *p = *state;
	uint8_t *buf = calloc(1, MSG_CHUNK);
	int pipefd[2];
	struct msg m;
	char c;

	assert_int_equal(pipe(pipefd), 0);
	header(buf, MSG_CTL_REQUEST, MSG_CHUNK, 1);
	raw_send(p->parent.fd, buf, MSG_CHUNK, NULL, 0);
	raw_send(p->parent.fd, buf, MSG_HDR_LEN, &pipefd[1], 1);
	close(pipefd[1]);
	assert_int_equal(msg_recv(&p->target, &m), -EBADMSG);
	assert_int_equal(read(pipefd[0], &c, 1), 0);
	close(pipefd[0]);
	free(buf);
}

static void test_closed_peer_reads_as_epipe(void **state)
{
	struct pair *p = *state;
	struct msg m;

	close(p->parent.fd);
	p->parent.fd = -1;
	assert_int_equal(msg_recv(&p->target, &m), -EPIPE);
}

static void test_unhandled_type_ends_the_process(void **state)
{
	struct pair *p = *state;
	uint8_t h[MSG_HDR_LEN];
	struct msg m;
	int status;
	pid_t pid;

	/* A reply arriving at the target is a bug in the sender: fatalx, exit status 1. */
	header(h, MSG_CTL_REPLY, 0, 1);
	raw_send(p->parent.fd, h, sizeof(h), NULL, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		msg_recv(&p->target, &m);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
}

static void test_table_declares_who_handles_what(void **state)
{
	assert_true(msg_handled_by(PROC_TARGET, MSG_CTL_REQUEST));
	assert_true(msg_handled_by(PROC_TARGET, MSG_SHUTDOWN));
	assert_true(msg_handled_by(PROC_PARENT, MSG_CTL_REPLY));
	assert_false(msg_handled_by(PROC_PARENT, MSG_SHUTDOWN));
	assert_false(msg_handled_by(PROC_TARGET, MSG_NONE));
	assert_false(msg_handled_by(PROC_TARGET, MSG_TYPE_MAX));
	assert_false(msg_handled_by(PROC_MAX, MSG_CTL_REQUEST));
}

/* Only coord hears that a plane started: the target has nothing to do with it, and the parent
 * is the one who says it. */
static void test_plane_up_goes_to_coord_only(void **state)
{
	struct pair *p = *state;

	assert_true(msg_handled_by(PROC_COORD, MSG_PLANE_UP));
	assert_false(msg_handled_by(PROC_TARGET, MSG_PLANE_UP));
	assert_false(msg_handled_by(PROC_PARENT, MSG_PLANE_UP));
	assert_int_equal(msg_send(&p->parent, MSG_PLANE_UP, 0, "{}", 2, -1), -EINVAL);
	assert_string_equal(msg_type_name(MSG_PLANE_UP), "PLANE_UP");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_small_message_round_trips),
		T(test_empty_payload_round_trips),
		T(test_max_size_message_crosses_in_chunks_through_the_queue),
		T(test_oversized_message_is_not_sent),
		T(test_plane_up_goes_to_coord_only),
		T(test_type_the_peer_does_not_handle_is_not_sent),
		T(test_truncated_header_is_refused),
		T(test_length_larger_than_datagram_is_refused),
		T(test_length_smaller_than_datagram_is_refused),
		T(test_length_above_limit_is_refused),
		T(test_datagram_larger_than_a_chunk_is_refused),
		T(test_short_continuation_chunk_is_refused),
		T(test_descriptor_is_passed),
		T(test_two_descriptors_are_refused),
		T(test_descriptor_on_a_continuation_is_refused),
		T(test_closed_peer_reads_as_epipe),
		T(test_unhandled_type_ends_the_process),
		cmocka_unit_test(test_table_declares_who_handles_what),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
