/* Worker threads of the target: each owns an epoll reactor, the connections it serves and a
 * libaio context whose completions arrive on an eventfd. A session lives on one worker with
 * all its connections, so the per-command path takes no lock. Other threads reach a worker
 * only through its message queue. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "target/backstore.h"
#include "target/transport.h"

#define WORKER_MAX_EVENTS 64
#define WORKER_AIO_DEPTH  1024
#define WORKER_TICK_NS	  1000000000ull
/* A connection must finish its login within this time (RFC 7143 leaves the value to the
 * target); one that stalls, or sends garbage and waits, is closed. */
#define LOGIN_TIMEOUT_NS (15 * 1000000000ull)

/* Tags of the epoll user data that are not connections. */
static char tag_wake, tag_aio;

uint64_t tgt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

struct worker *worker_pick(void)
{
	unsigned i = __atomic_fetch_add(&tgt_global.next_worker, 1, __ATOMIC_RELAXED);

	return tgt_global.workers[i % tgt_global.nworkers];
}

int worker_watch(struct worker *w, struct conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};

	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		return 0;
	if (errno == ENOENT && epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) == 0)
		return 0;
	return -errno;
}

void worker_unwatch(struct worker *w, struct conn *c)
{
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
}

void worker_post(struct worker *w, struct worker_msg *m)
{
	uint64_t one = 1;

	m->next = NULL;
	pthread_mutex_lock(&w->qlock);
	if (w->qtail)
		w->qtail->next = m;
	else
		w->qhead = m;
	w->qtail = m;
	pthread_mutex_unlock(&w->qlock);
	if (write(w->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("%s: worker %d", __func__, w->id);
}

static void worker_handle(struct worker *w, struct worker_msg *m)
{
	struct conn *c;

	switch (m->type) {
	case WORKER_MSG_NEW_CONN:
		c = conn_create(m->fd, w, m->listener);
		if (!c)
			close(m->fd);
		break;
	case WORKER_MSG_ADOPT_CONN:
		conn_adopted(m->conn, w);
		break;
	case WORKER_MSG_KILL_SESSION:
		session_kill(m->session);
		session_put(m->session);
		break;
	case WORKER_MSG_LUN_RESET:
		tmf_abort_lun_local(w, m->lun, m->wait, NULL);
		tmf_wait_put(m->wait);
		break;
	case WORKER_MSG_CALL:
		m->fn(m->arg);
		break;
	default:
		fatalx("%s: unknown worker message %d", __func__, m->type);
	}
	free(m);
}

static void worker_drain_queue(struct worker *w)
{
	struct worker_msg *m, *next;
	uint64_t n;

	if (read(w->wakefd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("%s: worker %d", __func__, w->id);
	pthread_mutex_lock(&w->qlock);
	m = w->qhead;
	w->qhead = w->qtail = NULL;
	pthread_mutex_unlock(&w->qlock);
	for (; m; m = next) {
		next = m->next;
		worker_handle(w, m);
	}
}

/* Once a second: close connections stuck in login. */
static void worker_tick(struct worker *w)
{
	uint64_t now = tgt_now_ns();

	for (struct conn *c = w->conns; c; c = c->wnext)
		if (c->state == CONN_LOGIN && now - c->created_ns > LOGIN_TIMEOUT_NS)
			conn_close(c, "login not completed in time");
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[WORKER_MAX_EVENTS];
	char name[16];

	snprintf(name, sizeof(name), "hf-worker%d", w->id);
	pthread_setname_np(pthread_self(), name);
	tgt_current_worker = w;
	uint64_t next_tick = tgt_now_ns() + WORKER_TICK_NS;

	while (!w->stop) {
		int timeout = bs_ctx_timeout_ms(w->io);
		int n;

		if (timeout < 0 || timeout > WORKER_TICK_NS / 1000000)
			timeout = WORKER_TICK_NS / 1000000;
		/* Writes held by a paused LUN: answer those at their limit, wake for the next. */
		timeout = tgt_hold_timeout_ms(w, timeout);
		/* What that answered goes out before the wait. */
		worker_flush_dirty(w);
		n = epoll_wait(w->epfd, evs, WORKER_MAX_EVENTS, timeout);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("%s: epoll_wait", __func__);
		}
		if (n == 0)
			bs_ctx_reap(w->io);
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &tag_wake)
				worker_drain_queue(w);
			else if (p == &tag_aio)
				bs_ctx_reap(w->io);
			else
				conn_event(p, evs[i].events);
		}
		if (tgt_now_ns() >= next_tick) {
			worker_tick(w);
			next_tick = tgt_now_ns() + WORKER_TICK_NS;
		}
		worker_flush_dirty(w);
	}
	return NULL;
}

int worker_start(struct worker **out, int id)
{
	struct worker *w;
	struct epoll_event ev = {.events = EPOLLIN};
	int rc;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->id = id;
	pthread_mutex_init(&w->qlock, NULL);
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0) {
		rc = -errno;
		goto err_free;
	}
	w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wakefd < 0) {
		rc = -errno;
		goto err_close_ep;
	}
	rc = bs_ctx_create(WORKER_AIO_DEPTH, &w->io);
	if (rc < 0)
		goto err_close_wake;
	ev.data.ptr = &tag_wake;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev) < 0) {
		rc = -errno;
		goto err_ctx;
	}
	ev.data.ptr = &tag_aio;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, bs_ctx_fd(w->io), &ev) < 0) {
		rc = -errno;
		goto err_ctx;
	}
	rc = -pthread_create(&w->thread, NULL, worker_run, w);
	if (rc < 0)
		goto err_ctx;
	*out = w;
	return 0;

err_ctx:
	bs_ctx_destroy(w->io);
err_close_wake:
	close(w->wakefd);
err_close_ep:
	close(w->epfd);
err_free:
	free(w);
	return rc;
}

/* Free what commands may still be reading once every worker has passed a quiescent point:
 * a worker reads shared policy only inside its loop's handlers, so after it has run a message
 * queued behind the swap it no longer holds the old pointer. */
struct retire {
	void *p;
	int left;
};

static void retire_step(void *arg)
{
	struct retire *r = arg;

	if (__atomic_sub_fetch(&r->left, 1, __ATOMIC_ACQ_REL) == 0) {
		free(r->p);
		free(r);
	}
}

void tgt_retire(void *p)
{
	struct retire *r = malloc(sizeof(*r));

	if (!r)
		fatal("%s", __func__);
	r->p = p;
	r->left = tgt_global.nworkers;
	for (int i = 0; i < tgt_global.nworkers; i++) {
		struct worker_msg *m = calloc(1, sizeof(*m));

		if (!m)
			fatal("%s", __func__);
		m->type = WORKER_MSG_CALL;
		m->fn = retire_step;
		m->arg = r;
		worker_post(tgt_global.workers[i], m);
	}
}

static void worker_set_stop(void *arg)
{
	struct worker *w = arg;

	w->stop = true;
}

void worker_stop(struct worker *w)
{
	struct worker_msg *m = calloc(1, sizeof(*m));

	if (!m)
		fatal("%s", __func__);
	m->type = WORKER_MSG_CALL;
	m->fn = worker_set_stop;
	m->arg = w;
	worker_post(w, m);
	pthread_join(w->thread, NULL);
}
