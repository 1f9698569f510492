#include "lib/proc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/log.h"

#define PROC_BACKOFF_MIN_MS 1000
#define PROC_BACKOFF_MAX_MS 30000
#define PROC_STABLE_MS	    60000 /* a child that ran this long starts its backoff afresh */
#define PROC_STOP_GRACE_MS  10000
#define PROC_CHILD_FD	    3

/* Something in the epoll set: an outside fd, a child's channel or the signalfd. */
struct watch {
	int fd;
	proc_fd_cb cb;
	void *arg;
	struct watch *next;
};

struct child {
	struct proc_sup *sup;
	const struct proc_desc *desc;
	pid_t pid; /* 0 when not running */
	struct msg_chan chan;
	int chan_open;
	struct watch w;
	uint64_t started_ms;
	uint64_t restart_at_ms; /* 0: no restart pending */
	unsigned fails;		/* deaths in a row, each within PROC_STABLE_MS of its start */
};

struct proc_sup {
	const struct hf_config *cfg;
	struct proc_hooks hooks;
	struct child *children;
	size_t nchildren;
	int epfd;
	int sigfd;
	struct watch sigw;
	struct watch *watches;
	struct watch *dead; /* removed during a dispatch batch; freed after it */
	int stopping;
	int killed;	 /* SIGKILL already sent to the stragglers */
	int fatal_child; /* a child exited PROC_EXIT_FATAL */
	uint64_t stop_deadline_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int proc_sup_add_fd(struct proc_sup *sup, int fd, uint32_t events, proc_fd_cb cb, void *arg)
{
	struct epoll_event ev = {.events = events};
	struct watch *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->cb = cb;
	w->arg = arg;
	ev.data.ptr = w;
	if (epoll_ctl(sup->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		free(w);
		return err;
	}
	w->next = sup->watches;
	sup->watches = w;
	return 0;
}

static struct watch *find_watch(struct proc_sup *sup, int fd, struct watch ***link)
{
	struct watch **pw;

	for (pw = &sup->watches; *pw; pw = &(*pw)->next) {
		if ((*pw)->fd == fd) {
			if (link)
				*link = pw;
			return *pw;
		}
	}
	return NULL;
}

int proc_sup_mod_fd(struct proc_sup *sup, int fd, uint32_t events)
{
	struct watch *w = find_watch(sup, fd, NULL);
	struct epoll_event ev = {.events = events};

	if (!w)
		return -ENOENT;
	ev.data.ptr = w;
	return epoll_ctl(sup->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void proc_sup_del_fd(struct proc_sup *sup, int fd)
{
	struct watch **link, *w = find_watch(sup, fd, &link);

	if (!w)
		return;
	epoll_ctl(sup->epfd, EPOLL_CTL_DEL, fd, NULL);
	*link = w->next;
	/* An event for it may still sit later in the current epoll batch: keep the memory
	 * until the batch is done, and make the event a no-op. */
	w->cb = NULL;
	w->next = sup->dead;
	sup->dead = w;
}

static void free_dead(struct proc_sup *sup)
{
	struct watch *w, *next;

	for (w = sup->dead; w; w = next) {
		next = w->next;
		free(w);
	}
	sup->dead = NULL;
}

static void child_close_chan(struct child *c)
{
	if (!c->chan_open)
		return;
	epoll_ctl(c->sup->epfd, EPOLL_CTL_DEL, c->chan.fd, NULL);
	msg_chan_close(&c->chan);
	c->chan_open = 0;
	if (c->sup->hooks.on_child_down)
		c->sup->hooks.on_child_down(c->sup->hooks.arg, c->desc->id);
}

static void child_set_events(struct child *c)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->w};

	if (msg_chan_pending(&c->chan))
		ev.events |= EPOLLOUT;
	epoll_ctl(c->sup->epfd, EPOLL_CTL_MOD, c->chan.fd, &ev);
}

/* A child whose channel misbehaves is killed; SIGCHLD then schedules its restart. */
static void child_broken(struct child *c, const char *why)
{
	log_warnx("%s: %s (pid %d): %s", __func__, c->desc->name, (int)c->pid, why);
	child_close_chan(c);
	if (c->pid > 0)
		kill(c->pid, SIGKILL);
}

static void child_chan_cb(void *arg, int fd, uint32_t events)
{
	struct child *c = arg;
	struct proc_sup *sup = c->sup;
	struct msg m;
	int err;

	/* The channel may have been closed by an earlier event of the same batch. */
	if (!c->chan_open)
		return;
	if (events & EPOLLOUT) {
		err = msg_flush(&c->chan);
		if (err && err != -EAGAIN) {
			child_broken(c, strerror(-err));
			return;
		}
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			err = msg_recv(&c->chan, &m);
			if (err == -EAGAIN)
				break;
			if (err == -EPIPE || err == -ECONNRESET) {
				/* The child closed its end; normally it is exiting and SIGCHLD
				 * follows. Its requests will not be answered. */
				log_debug("%s: %s closed its channel", __func__, c->desc->name);
				child_close_chan(c);
				return;
			}
			if (err) {
				child_broken(c, strerror(-err));
				return;
			}
			if (sup->hooks.on_msg)
				sup->hooks.on_msg(sup->hooks.arg, c->desc->id, &m);
			msg_free(&m);
			if (!c->chan_open)
				return;
		}
	}
	child_set_events(c);
}

/* In the child, between fork and the plane's main: a clean process that dies with us. */
static void child_setup(struct child *c, int fd, pid_t parent)
{
	sigset_t all;
	int sig;

	/* Ask for SIGTERM when the parent dies, then check it did not die before we asked. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
		fatal("%s: prctl(PR_SET_PDEATHSIG)", __func__);
	if (getppid() != parent)
		_exit(1);
	for (sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	/* Planes write to sockets whose peers may vanish: they want EPIPE, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);

	/* Keep stdio and the channel, as fd 3; the parent's other descriptors (epoll, signalfd,
	 * control socket, other children's channels) are none of this child's business. */
	if (fd != PROC_CHILD_FD) {
		if (dup2(fd, PROC_CHILD_FD) < 0)
			fatal("%s: dup2", __func__);
	}
	close_range(PROC_CHILD_FD + 1, ~0U, 0);
	log_procname(c->desc->name);
}

static int child_start(struct child *c)
{
	struct proc_sup *sup = c->sup;
	pid_t parent = getpid(), pid;
	int sv[2], err;

	err = msg_socketpair(sv);
	if (err)
		return err;
	pid = fork();
	if (pid < 0) {
		err = -errno;
		close(sv[0]);
		close(sv[1]);
		return err;
	}
	if (pid == 0) {
		close(sv[0]);
		child_setup(c, sv[1], parent);
		exit(c->desc->main(sup->cfg, PROC_CHILD_FD));
	}
	close(sv[1]);
	err = msg_chan_init(&c->chan, sv[0], PROC_PARENT, c->desc->id);
	if (err) {
		close(sv[0]);
		kill(pid, SIGKILL);
		return err;
	}
	c->w.fd = sv[0];
	c->w.cb = child_chan_cb;
	c->w.arg = c;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->w};
	if (epoll_ctl(sup->epfd, EPOLL_CTL_ADD, sv[0], &ev) < 0) {
		err = -errno;
		msg_chan_close(&c->chan);
		kill(pid, SIGKILL);
		return err;
	}
	c->chan_open = 1;
	c->pid = pid;
	c->started_ms = now_ms();
	c->restart_at_ms = 0;
	log_info("%s: started %s (pid %d)", __func__, c->desc->name, (int)pid);
	if (sup->hooks.on_child_up)
		sup->hooks.on_child_up(sup->hooks.arg, c->desc->id);
	return 0;
}

static void schedule_restart(struct child *c)
{
	uint64_t now = now_ms(), delay;

	if (now - c->started_ms >= PROC_STABLE_MS)
		c->fails = 0;
	delay = PROC_BACKOFF_MIN_MS << (c->fails < 5 ? c->fails : 5);
	if (delay > PROC_BACKOFF_MAX_MS)
		delay = PROC_BACKOFF_MAX_MS;
	c->fails++;
	c->restart_at_ms = now + delay;
	log_warnx("%s: restarting %s in %llu ms", __func__, c->desc->name,
		  (unsigned long long)delay);
}

static void begin_stop(struct proc_sup *sup, int sig)
{
	size_t i;

	if (sup->stopping) {
		/* A second request to stop: the user has run out of patience. */
		for (i = 0; i < sup->nchildren; i++)
			if (sup->children[i].pid > 0)
				kill(sup->children[i].pid, SIGKILL);
		sup->killed = 1;
		return;
	}
	sup->stopping = 1;
	sup->stop_deadline_ms = now_ms() + PROC_STOP_GRACE_MS;
	for (i = 0; i < sup->nchildren; i++) {
		struct child *c = &sup->children[i];

		c->restart_at_ms = 0;
		if (c->pid <= 0)
			continue;
		if (c->chan_open) {
			msg_send(&c->chan, MSG_SHUTDOWN, 0, NULL, 0, -1);
			child_set_events(c);
		}
		kill(c->pid, sig);
	}
}

static void reap_children(struct proc_sup *sup)
{
	int status;
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct child *c = NULL;

		for (i = 0; i < sup->nchildren; i++)
			if (sup->children[i].pid == pid)
				c = &sup->children[i];
		if (!c)
			continue;
		c->pid = 0;
		child_close_chan(c);
		if (WIFEXITED(status) && (sup->stopping || WEXITSTATUS(status) == 0))
			log_info("%s: %s (pid %d) exited with status %d", __func__, c->desc->name,
				 (int)pid, WEXITSTATUS(status));
		else if (WIFEXITED(status))
			log_warnx("%s: %s (pid %d) exited with status %d", __func__, c->desc->name,
				  (int)pid, WEXITSTATUS(status));
		else if (WIFSIGNALED(status) && sup->stopping)
			log_info("%s: %s (pid %d) ended by signal %d (%s)", __func__, c->desc->name,
				 (int)pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
		else if (WIFSIGNALED(status))
			log_warnx("%s: %s (pid %d) was killed by signal %d (%s)%s", __func__,
				  c->desc->name, (int)pid, WTERMSIG(status),
				  strsignal(WTERMSIG(status)),
				  WCOREDUMP(status) ? ", core dumped" : "");
		if (sup->stopping)
			continue;
		if (WIFEXITED(status) && WEXITSTATUS(status) == PROC_EXIT_FATAL) {
			log_warnx("%s: %s cannot run with this configuration; stopping", __func__,
				  c->desc->name);
			sup->fatal_child = 1;
			begin_stop(sup, SIGTERM);
			continue;
		}
		schedule_restart(c);
	}
}

static void signal_cb(void *arg, int fd, uint32_t events)
{
	struct proc_sup *sup = arg;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap_children(sup);
			break;
		case SIGTERM:
		case SIGINT:
			log_info("%s: %s: stopping", __func__, strsignal(si.ssi_signo));
			begin_stop(sup, si.ssi_signo);
			break;
		case SIGHUP:
			/* Reloading needs the planes to take a new config; until then say so. */
			log_warnx("%s: SIGHUP: reloading is not supported; restart holdfastd",
				  __func__);
			break;
		default:
			log_warnx("%s: unexpected signal %u", __func__, si.ssi_signo);
			break;
		}
	}
}

int proc_sup_create(const struct hf_config *cfg, const struct proc_desc *table, size_t n,
		    const struct proc_hooks *hooks, struct proc_sup **out)
{
	struct proc_sup *sup;
	size_t i;
	int err;

	sup = calloc(1, sizeof(*sup));
	if (!sup)
		return -ENOMEM;
	sup->cfg = cfg;
	sup->sigfd = -1;
	if (hooks)
		sup->hooks = *hooks;
	sup->children = calloc(n, sizeof(*sup->children));
	if (!sup->children) {
		err = -ENOMEM;
		goto err_free;
	}
	sup->nchildren = n;
	for (i = 0; i < n; i++) {
		sup->children[i].sup = sup;
		sup->children[i].desc = &table[i];
		sup->children[i].chan.fd = -1;
	}
	sup->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sup->epfd < 0) {
		err = -errno;
		goto err_free_children;
	}
	*out = sup;
	return 0;

err_free_children:
	free(sup->children);
err_free:
	free(sup);
	return err;
}

void proc_sup_destroy(struct proc_sup *sup)
{
	struct watch *w, *next;
	size_t i;

	if (!sup)
		return;
	for (i = 0; i < sup->nchildren; i++)
		if (sup->children[i].chan_open)
			msg_chan_close(&sup->children[i].chan);
	for (w = sup->watches; w; w = next) {
		next = w->next;
		free(w);
	}
	free_dead(sup);
	if (sup->sigfd >= 0)
		close(sup->sigfd);
	close(sup->epfd);
	free(sup->children);
	free(sup);
}

int proc_sup_send(struct proc_sup *sup, enum hf_proc to, uint32_t type, uint32_t id,
		  const void *data, size_t len)
{
	size_t i;
	int err;

	for (i = 0; i < sup->nchildren; i++) {
		struct child *c = &sup->children[i];

		if (c->desc->id != to)
			continue;
		if (!c->chan_open || sup->stopping)
			return -ENOTCONN;
		err = msg_send(&c->chan, type, id, data, len, -1);
		if (err == -EMSGSIZE || err == -EINVAL)
			return err;
		if (err) {
			child_broken(c, strerror(-err));
			return -ENOTCONN;
		}
		child_set_events(c);
		return 0;
	}
	return -ENOTCONN;
}

static int running_children(const struct proc_sup *sup)
{
	size_t i;
	int n = 0;

	for (i = 0; i < sup->nchildren; i++)
		n += sup->children[i].pid > 0;
	return n;
}

int proc_sup_run(struct proc_sup *sup)
{
	struct epoll_event evs[16];
	sigset_t set;
	size_t i;
	int n, k, err;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	sup->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sup->sigfd < 0)
		return -errno;
	sup->sigw.fd = sup->sigfd;
	sup->sigw.cb = signal_cb;
	sup->sigw.arg = sup;
	struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &sup->sigw};
	if (epoll_ctl(sup->epfd, EPOLL_CTL_ADD, sup->sigfd, &sev) < 0)
		return -errno;

	for (i = 0; i < sup->nchildren; i++) {
		err = child_start(&sup->children[i]);
		if (err) {
			log_warnx("%s: cannot start %s: %s", __func__, sup->children[i].desc->name,
				  strerror(-err));
			schedule_restart(&sup->children[i]);
		}
	}

	while (!sup->stopping || running_children(sup) > 0) {
		uint64_t now = now_ms(), next = now + 1000;
		int timeout;

		for (i = 0; i < sup->nchildren; i++) {
			uint64_t at = sup->children[i].restart_at_ms;

			if (at && at < next)
				next = at;
		}
		if (sup->stopping && !sup->killed && sup->stop_deadline_ms < next)
			next = sup->stop_deadline_ms;
		timeout = next > now ? (int)(next - now) : 0;
		n = epoll_wait(sup->epfd, evs, 16, timeout);
		if (n < 0 && errno != EINTR)
			return -errno;
		for (k = 0; k < n; k++) {
			struct watch *w = evs[k].data.ptr;

			if (w->cb)
				w->cb(w->arg, w->fd, evs[k].events);
		}
		free_dead(sup);

		now = now_ms();
		for (i = 0; i < sup->nchildren; i++) {
			struct child *c = &sup->children[i];

			if (!c->restart_at_ms || c->restart_at_ms > now || sup->stopping)
				continue;
			err = child_start(c);
			if (err) {
				log_warnx("%s: cannot start %s: %s", __func__, c->desc->name,
					  strerror(-err));
				schedule_restart(c);
			}
		}
		if (sup->stopping && !sup->killed && now >= sup->stop_deadline_ms) {
			log_warnx("%s: children still running after %d ms; killing them", __func__,
				  PROC_STOP_GRACE_MS);
			for (i = 0; i < sup->nchildren; i++)
				if (sup->children[i].pid > 0)
					kill(sup->children[i].pid, SIGKILL);
			sup->killed = 1;
		}
		if (sup->hooks.on_tick)
			sup->hooks.on_tick(sup->hooks.arg);
	}
	return sup->fatal_child ? -ECHILD : 0;
}

/* Send what is queued, waiting a little for room: control replies are rare and the parent
 * drains its end at once, so a short wait here is simpler than an EPOLLOUT watch. */
static int child_flush(struct msg_chan *ch)
{
	struct pollfd pfd = {.fd = ch->fd, .events = POLLOUT};
	int err, waited = 0;

	while ((err = msg_flush(ch)) == -EAGAIN && waited < 5000) {
		poll(&pfd, 1, 100);
		waited += 100;
	}
	return err;
}

int proc_child_handle(struct msg_chan *ch, int (*ctl)(const char *request, char **reply))
{
	struct msg m;
	char *reply;
	int err;

	for (;;) {
		err = msg_recv(ch, &m);
		if (err == -EAGAIN)
			return child_flush(ch) == -EPIPE ? 1 : 0;
		if (err == -EPIPE)
			return 1;
		if (err)
			return err;
		switch (m.type) {
		case MSG_SHUTDOWN:
			msg_free(&m);
			return 1;
		case MSG_CTL_REQUEST:
			reply = NULL;
			err = ctl((const char *)m.data, &reply);
			if (!reply) {
				json_t *e =
					json_pack("{s:s}", "error", strerror(err < 0 ? -err : EIO));

				reply = e ? json_dumps(e, JSON_COMPACT) : NULL;
				json_decref(e);
			}
			if (reply)
				err = msg_send(ch, MSG_CTL_REPLY, m.id, reply, strlen(reply), -1);
			else
				err = -ENOMEM;
			if (err == -EMSGSIZE) {
				static const char too_big[] = "{\"error\":\"reply too large\"}";

				err = msg_send(ch, MSG_CTL_REPLY, m.id, too_big,
					       sizeof(too_big) - 1, -1);
			}
			free(reply);
			msg_free(&m);
			if (err)
				return err == -EPIPE ? 1 : err;
			break;
		default:
			/* msg_recv already refused types this process does not handle. */
			fatalx("%s: message %s (%u) has no handler", __func__,
			       msg_type_name(m.type), m.type);
		}
	}
}
