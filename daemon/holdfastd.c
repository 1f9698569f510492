/* holdfastd: the Holdfast daemon. The parent parses the configuration, starts one process per
 * plane and supervises them; it stays in the foreground and logs to stderr. It also serves
 * the local control socket: each line a client writes is one JSON request, relayed to the
 * plane that answers it, whose reply goes back as one line (docs/control-protocol.md). */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/config.h"
#include "lib/log.h"
#include "lib/msg.h"
#include "lib/proc.h"
#include "csv-coord/coord.h"
#include "target/target.h"

#define CTL_LINE_MAX	(64 * 1024) /* a request is small; anything longer is refused */
#define CTL_CLIENTS_MAX 32
#define CTL_TIMEOUT_MS	10000
/* A plane's request to another plane is given up on sooner than an admin's, so that the asking
 * plane can still answer its admin clearly (coord: "committed, not yet applied at the target")
 * before the admin's own request times out. */
#define RELAY_TIMEOUT_MS 5000

/* The planes, in start order. coord runs only when the configuration has a cluster section,
 * so the default box binds nothing beyond iSCSI and the control socket. */
static const struct proc_desc planes[] = {
	{.name = "target", .id = PROC_TARGET, .main = target_main},
	{.name = "coord", .id = PROC_COORD, .main = coord_main},
};

/* The control commands and the plane that answers each. */
static const struct {
	const char *cmd;
	enum hf_proc plane;
} ctl_routes[] = {
	{"targets", PROC_TARGET},
	{"luns", PROC_TARGET},
	{"sessions", PROC_TARGET},
	{"pr_show", PROC_TARGET},
	{"pr_clear", PROC_TARGET},
	{"fence", PROC_TARGET},
	{"unfence", PROC_TARGET},
	{"fences", PROC_TARGET},
	{"lun_access", PROC_TARGET},
	{"lun_add", PROC_TARGET},
	{"lun_remove", PROC_TARGET},
	{"lun_resize", PROC_TARGET},
	/* coord, once it has given a (re)started target its fences, LUNs and policies. */
	{"logins_open", PROC_TARGET},
	{"cluster_token_create", PROC_COORD},
	{"cluster_status", PROC_COORD},
	{"cluster_host_remove", PROC_COORD},
	{"pool_add", PROC_COORD},
	{"pool_list", PROC_COORD},
	{"pool_remove", PROC_COORD},
	{"vdisk_list", PROC_COORD},
	{"vdisk_create", PROC_COORD},
	{"vdisk_extend", PROC_COORD},
	{"vdisk_delete", PROC_COORD},
	{"vdisk_attach", PROC_COORD},
	{"vdisk_detach", PROC_COORD},
	{"vdisk_transfer", PROC_COORD},
	{"vdisk_clone", PROC_COORD},
	{"vdisk_maintenance", PROC_COORD},
	{"vdisk_access", PROC_COORD},
	{"host_portals", PROC_COORD},
	{"vdisk_show", PROC_COORD},
};

/* Commands that are one plane's business with another: refused on the control socket. An admin
 * who could open a restarted target's logins could let a fenced host in. */
static const char *const relay_only[] = {"logins_open"};

/* A plane's request to another plane, relayed: the parent sends it under its own id and
 * answers the asking plane under the id it chose. */
struct relay {
	uint32_t id; /* ours, towards the answering plane */
	enum hf_proc to;
	enum hf_proc from;
	uint32_t from_id;
	uint64_t deadline_ms;
	struct relay *next;
};

struct ctl_client {
	int fd;
	char in[CTL_LINE_MAX];
	size_t inlen;
	char *out;
	size_t outlen, outoff;
	uint32_t pending_id; /* 0: no request in flight */
	enum hf_proc pending_plane;
	uint64_t deadline_ms;
	int eof; /* the client shut down its side: close once everything is answered */
	struct ctl_client *next;
};

static struct {
	struct proc_sup *sup;
	int listen_fd;
	struct ctl_client *clients;
	int nclients;
	uint32_t next_id;
	struct relay *relays;
	/* Each plane's starts so far, and whether it runs now. */
	uint64_t generation[PROC_MAX];
	bool up[PROC_MAX];
} ctl = {.listen_fd = -1};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: holdfastd [-c FILE] [-n] [-d] [-v]\n"
		   "  -c FILE  configuration file (default: the embedded default)\n"
		   "  -n       check the configuration and exit\n"
		   "  -d       debug: log everything, in the foreground\n"
		   "  -v       more verbose logging\n");
}

static void ctl_client_close(struct ctl_client *c)
{
	struct ctl_client **pc;

	for (pc = &ctl.clients; *pc; pc = &(*pc)->next) {
		if (*pc == c) {
			*pc = c->next;
			break;
		}
	}
	proc_sup_del_fd(ctl.sup, c->fd);
	close(c->fd);
	free(c->out);
	free(c);
	ctl.nclients--;
}

/* The functions below return -1 when they closed the client (it is freed), 0 otherwise. */

static int ctl_client_flush(struct ctl_client *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			proc_sup_mod_fd(ctl.sup, c->fd, EPOLLOUT | (c->eof ? 0 : EPOLLIN));
			return 0;
		}
		if (n < 0) {
			log_debug("%s: client: %s", __func__, strerror(errno));
			ctl_client_close(c);
			return -1;
		}
		c->outoff += n;
	}
	free(c->out);
	c->out = NULL;
	c->outlen = c->outoff = 0;
	proc_sup_mod_fd(ctl.sup, c->fd, c->eof ? 0 : EPOLLIN);
	return 0;
}

/* Queue one reply line (a compact JSON object, which never holds a newline) and end the
 * request in flight. */
static int ctl_reply_json(struct ctl_client *c, json_t *obj)
{
	char *text = json_dumps(obj, JSON_COMPACT);
	size_t len;
	char *p;

	c->pending_id = 0;
	if (!text) {
		ctl_client_close(c);
		return -1;
	}
	len = strlen(text);
	p = realloc(c->out, c->outlen + len + 1);
	if (!p) {
		free(text);
		ctl_client_close(c);
		return -1;
	}
	memcpy(p + c->outlen, text, len);
	p[c->outlen + len] = '\n';
	c->out = p;
	c->outlen += len + 1;
	free(text);
	return ctl_client_flush(c);
}

static int ctl_reply_error(struct ctl_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int ctl_reply_error(struct ctl_client *c, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	json_t *o;
	int rc;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	o = json_pack("{s:s}", "error", why);
	if (!o) {
		ctl_client_close(c);
		return -1;
	}
	rc = ctl_reply_json(c, o);
	json_decref(o);
	return rc;
}

/* The plane that answers cmd, or PROC_MAX; for a request from the control socket (not a
 * plane's relay) relay-only commands are not found. */
static enum hf_proc ctl_route(const char *cmd, bool relayed)
{
	size_t i;

	for (i = 0; !relayed && i < sizeof(relay_only) / sizeof(relay_only[0]); i++)
		if (!strcmp(relay_only[i], cmd))
			return PROC_MAX;
	for (i = 0; i < sizeof(ctl_routes) / sizeof(ctl_routes[0]); i++)
		if (!strcmp(ctl_routes[i].cmd, cmd))
			return ctl_routes[i].plane;
	return PROC_MAX;
}

static uint32_t ctl_new_id(void)
{
	if (++ctl.next_id == 0)
		ctl.next_id = 1;
	return ctl.next_id;
}

/* Answer a plane's relayed request with an error of our own. */
static void relay_reply_error(enum hf_proc to, uint32_t id, const char *why)
{
	json_t *o = json_pack("{s:s}", "error", why);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (!text)
		return;
	if (proc_sup_send(ctl.sup, to, MSG_CTL_RELAY_REPLY, id, text, strlen(text)))
		log_debug("%s: %s is gone; its relayed request %u has nobody to answer", __func__,
			  msg_proc_name(to), id);
	free(text);
}

/* A plane asks another plane (coord asks target to fence a host): route the request by its
 * "cmd" as for holdfastctl, never back to the plane that asked. */
static void relay_request(enum hf_proc from, struct msg *m)
{
	char why[160];
	json_t *req, *cmd;
	struct relay *r;
	enum hf_proc to;
	char *text;
	int err;

	if (!msg_handled_by(from, MSG_CTL_RELAY_REPLY)) {
		log_warnx("%s: %s may not relay requests", __func__, msg_proc_name(from));
		return;
	}
	req = json_loadb((const char *)m->data, m->len, 0, NULL);
	cmd = req ? json_object_get(req, "cmd") : NULL;
	if (!json_is_object(req) || !json_is_string(cmd)) {
		json_decref(req);
		relay_reply_error(from, m->id,
				  "a request is one JSON object with a \"cmd\" string");
		return;
	}
	to = ctl_route(json_string_value(cmd), true);
	if (to == PROC_MAX || to == from) {
		snprintf(why, sizeof(why), "no other plane answers '%.64s'",
			 json_string_value(cmd));
		json_decref(req);
		relay_reply_error(from, m->id, why);
		return;
	}
	/* A request made for one run of a plane must not reach the next one: coord opening the
	 * logins of a target it gave its fences to must not open those of a target that has
	 * restarted since and has none (msg.h, MSG_PLANE_UP). */
	if (json_object_get(req, "generation")) {
		json_t *g = json_object_get(req, "generation");

		if (!json_is_integer(g) || !ctl.up[to] ||
		    (uint64_t)json_integer_value(g) != ctl.generation[to]) {
			snprintf(why, sizeof(why),
				 "stale generation: the %s plane has restarted since (it is at "
				 "generation %llu%s)",
				 msg_proc_name(to), (unsigned long long)ctl.generation[to],
				 ctl.up[to] ? "" : ", not running");
			json_decref(req);
			relay_reply_error(from, m->id, why);
			return;
		}
	}
	/* The answering plane logs requesters from "peer"; a plane has no kernel credentials to
	 * give, so it is named instead, and nothing it wrote there is passed on. */
	json_object_set_new(req, "peer", json_pack("{s:s}", "plane", msg_proc_name(from)));
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	r = calloc(1, sizeof(*r));
	if (!text || !r) {
		free(text);
		free(r);
		relay_reply_error(from, m->id, "out of memory");
		return;
	}
	r->id = ctl_new_id();
	r->to = to;
	r->from = from;
	r->from_id = m->id;
	r->deadline_ms = now_ms() + RELAY_TIMEOUT_MS;
	err = proc_sup_send(ctl.sup, to, MSG_CTL_REQUEST, r->id, text, strlen(text));
	free(text);
	if (err) {
		snprintf(why, sizeof(why), "the %s plane is not running (%s)", msg_proc_name(to),
			 strerror(-err));
		free(r);
		relay_reply_error(from, m->id, why);
		return;
	}
	r->next = ctl.relays;
	ctl.relays = r;
}

/* A reply to a relayed request: 1 when it was one (and has been passed on), 0 otherwise. */
static int relay_reply(enum hf_proc from, struct msg *m)
{
	struct relay **pr, *r;

	for (pr = &ctl.relays; (r = *pr); pr = &r->next)
		if (r->id == m->id && r->to == from)
			break;
	if (!r)
		return 0;
	*pr = r->next;
	if (proc_sup_send(ctl.sup, r->from, MSG_CTL_RELAY_REPLY, r->from_id, m->data, m->len))
		log_debug("%s: %s left before its answer from %s arrived", __func__,
			  msg_proc_name(r->from), msg_proc_name(from));
	free(r);
	return 1;
}

static int ctl_request(struct ctl_client *c, const char *line, size_t len)
{
	struct ucred peer;
	socklen_t peerlen = sizeof(peer);
	enum hf_proc plane;
	json_t *req, *cmd;
	char *text;
	uint32_t id;
	int err;

	req = json_loadb(line, len, 0, NULL);
	cmd = req ? json_object_get(req, "cmd") : NULL;
	if (!json_is_object(req) || !json_is_string(cmd)) {
		json_decref(req);
		return ctl_reply_error(c, "a request is one JSON object with a \"cmd\" string");
	}
	plane = ctl_route(json_string_value(cmd), false);
	if (plane == PROC_MAX) {
		err = ctl_reply_error(c, "unknown command '%.64s'", json_string_value(cmd));
		json_decref(req);
		return err;
	}
	/* The plane is told who is asking (an audit log names them) from the kernel's
	 * credentials for the connection, never from what the client wrote. */
	json_object_del(req, "peer");
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &peer, &peerlen) == 0)
		json_object_set_new(req, "peer",
				    json_pack("{s:I, s:I}", "uid", (json_int_t)peer.uid, "pid",
					      (json_int_t)peer.pid));
	/* Relay the request re-encoded, so the plane gets exactly one well-formed object. */
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text)
		return ctl_reply_error(c, "out of memory");
	id = ctl_new_id();
	err = proc_sup_send(ctl.sup, plane, MSG_CTL_REQUEST, id, text, strlen(text));
	free(text);
	if (err)
		return ctl_reply_error(c, "the %s plane is not running (%s)", msg_proc_name(plane),
				       strerror(-err));
	c->pending_id = id;
	c->pending_plane = plane;
	c->deadline_ms = now_ms() + CTL_TIMEOUT_MS;
	return 0;
}

/* Take complete lines off the input, one request in flight at a time; close a client that
 * has said all it will say and has had all its answers. */
static int ctl_process_lines(struct ctl_client *c)
{
	static char line[CTL_LINE_MAX];
	char *nl;
	size_t len;

	while (!c->pending_id && (nl = memchr(c->in, '\n', c->inlen))) {
		len = nl - c->in;
		memcpy(line, c->in, len);
		memmove(c->in, nl + 1, c->inlen - len - 1);
		c->inlen -= len + 1;
		if (len == 0)
			continue;
		if (ctl_request(c, line, len) < 0)
			return -1;
	}
	if (c->eof && !c->pending_id && !c->outlen) {
		ctl_client_close(c);
		return -1;
	}
	return 0;
}

/* A request in flight was answered (or given up on) from outside the client's own events. */
static void ctl_answered(struct ctl_client *c, int rc)
{
	if (rc == 0)
		ctl_process_lines(c);
}

static struct ctl_client *ctl_client_by_fd(int fd)
{
	struct ctl_client *c;

	for (c = ctl.clients; c; c = c->next)
		if (c->fd == fd)
			return c;
	return NULL;
}

static void ctl_client_cb(void *arg, int fd, uint32_t events)
{
	struct ctl_client *c = ctl_client_by_fd(fd);
	ssize_t n;

	if (!c)
		return;
	if ((events & EPOLLOUT) && ctl_client_flush(c) < 0)
		return;
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->eof) {
		n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			ctl_client_close(c);
			return;
		}
		if (n == 0) {
			/* The client shut down its side; answer what it asked, then close. */
			c->eof = 1;
			proc_sup_mod_fd(ctl.sup, c->fd, c->outlen ? EPOLLOUT : 0);
		}
		if (n > 0)
			c->inlen += n;
		if (c->inlen == sizeof(c->in) && !memchr(c->in, '\n', c->inlen)) {
			c->inlen = 0;
			c->eof = 1;
			if (ctl_reply_error(c, "request longer than %d bytes", CTL_LINE_MAX) < 0)
				return;
		}
	}
	ctl_process_lines(c);
}

static void ctl_accept_cb(void *arg, int fd, uint32_t events)
{
	struct ctl_client *c;
	int cfd;

	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if (ctl.nclients >= CTL_CLIENTS_MAX) {
			log_warnx("%s: more than %d control clients; refusing one", __func__,
				  CTL_CLIENTS_MAX);
			close(cfd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c || proc_sup_add_fd(ctl.sup, cfd, EPOLLIN, ctl_client_cb, NULL)) {
			free(c);
			close(cfd);
			continue;
		}
		c->fd = cfd;
		c->next = ctl.clients;
		ctl.clients = c;
		ctl.nclients++;
	}
}

static void ctl_on_msg(void *arg, enum hf_proc from, struct msg *m)
{
	struct ctl_client *c;
	json_t *reply;
	int rc;

	switch (m->type) {
	case MSG_CTL_RELAY_REQUEST:
		relay_request(from, m);
		return;
	case MSG_CTL_REPLY:
		if (relay_reply(from, m))
			return;
		for (c = ctl.clients; c; c = c->next)
			if (c->pending_id == m->id && c->pending_plane == from)
				break;
		if (!c) {
			/* The client left or timed out; the answer has nobody to go to. */
			log_debug("%s: reply %u from %s has no client", __func__, m->id,
				  msg_proc_name(from));
			return;
		}
		reply = json_loadb((const char *)m->data, m->len, 0, NULL);
		if (!json_is_object(reply)) {
			json_decref(reply);
			log_warnx("%s: %s sent a reply that is not a JSON object", __func__,
				  msg_proc_name(from));
			rc = ctl_reply_error(c, "the %s plane sent an invalid reply",
					     msg_proc_name(from));
		} else {
			rc = ctl_reply_json(c, reply);
			json_decref(reply);
		}
		ctl_answered(c, rc);
		return;
	default:
		fatalx("%s: message %s (%u) from %s has no handler", __func__,
		       msg_type_name(m->type), m->type, msg_proc_name(from));
	}
}

/* Tell coord which run of the target it deals with: when the target starts, and when coord
 * starts while the target runs. */
static void plane_up_notify(void)
{
	char text[96];
	int err;

	if (!ctl.up[PROC_TARGET] || !ctl.up[PROC_COORD])
		return;
	snprintf(text, sizeof(text), "{\"plane\":\"target\",\"generation\":%llu}",
		 (unsigned long long)ctl.generation[PROC_TARGET]);
	err = proc_sup_send(ctl.sup, PROC_COORD, MSG_PLANE_UP, 0, text, strlen(text));
	if (err)
		log_warnx("%s: coord: %s", __func__, strerror(-err));
}

static void ctl_on_child_up(void *arg, enum hf_proc who)
{
	if ((unsigned)who >= PROC_MAX)
		return;
	ctl.generation[who]++;
	ctl.up[who] = true;
	if (who == PROC_TARGET || who == PROC_COORD)
		plane_up_notify();
}

static void ctl_on_child_down(void *arg, enum hf_proc who)
{
	struct ctl_client *c, *next;
	struct relay **pr, *r;
	char why[96];

	if ((unsigned)who < PROC_MAX)
		ctl.up[who] = false;

	for (pr = &ctl.relays; (r = *pr);) {
		if (r->to != who && r->from != who) {
			pr = &r->next;
			continue;
		}
		*pr = r->next;
		if (r->to == who) {
			snprintf(why, sizeof(why), "the %s plane stopped before answering",
				 msg_proc_name(who));
			relay_reply_error(r->from, r->from_id, why);
		}
		free(r);
	}

	for (c = ctl.clients; c; c = next) {
		next = c->next;
		if (c->pending_id && c->pending_plane == who)
			ctl_answered(c, ctl_reply_error(c, "the %s plane stopped before answering",
							msg_proc_name(who)));
	}
}

static void ctl_on_tick(void *arg)
{
	struct ctl_client *c, *next;
	struct relay **pr, *r;
	uint64_t now = now_ms();
	char why[96];

	for (pr = &ctl.relays; (r = *pr);) {
		if (now < r->deadline_ms) {
			pr = &r->next;
			continue;
		}
		*pr = r->next;
		snprintf(why, sizeof(why), "the %s plane did not answer within %d ms",
			 msg_proc_name(r->to), RELAY_TIMEOUT_MS);
		relay_reply_error(r->from, r->from_id, why);
		free(r);
	}

	for (c = ctl.clients; c; c = next) {
		next = c->next;
		if (c->pending_id && now >= c->deadline_ms)
			ctl_answered(c, ctl_reply_error(
						c, "the %s plane did not answer within %d ms",
						msg_proc_name(c->pending_plane), CTL_TIMEOUT_MS));
	}
}

/* Bind the control socket, mode 0600: whoever can use it can reconfigure the box. */
static int ctl_listen(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old;
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warnx("%s: %s exists and is not a socket", __func__, path);
			close(fd);
			return -EEXIST;
		}
		/* A socket someone answers on belongs to a running daemon; a dead one is left
		 * over from a crash and can go. */
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 || errno == EAGAIN) {
			log_warnx("%s: another holdfastd is listening on %s", __func__, path);
			close(fd);
			return -EADDRINUSE;
		}
		close(fd);
		unlink(path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
	}
	old = umask(0177);
	err = bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ? -errno : 0;
	umask(old);
	if (!err && chmod(path, 0600) < 0)
		err = -errno;
	if (!err && listen(fd, 16) < 0)
		err = -errno;
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

/* Tell the person who just started the box what to type next. */
static void print_banner(const struct hf_config *cfg, int is_default)
{
	const struct hf_target *t = &cfg->targets[0];
	const struct hf_portal *pt = &cfg->portals[t->portals[0]];
	int v6 = strchr(pt->address, ':') != NULL;
	char url[HF_ADDR_MAX + 16];
	size_t i;

	for (i = 0; i < cfg->ntargets; i++)
		log_info("%s: target %s (%zu lun%s)", __func__, cfg->targets[i].iqn,
			 cfg->targets[i].nluns, cfg->targets[i].nluns == 1 ? "" : "s");
	snprintf(url, sizeof(url), "iscsi://%s%s%s:%u", v6 ? "[" : "", pt->address, v6 ? "]" : "",
		 pt->port);
	printf("holdfastd: %s configuration, data in %s\n", is_default ? "default" : "loaded",
	       cfg->data_dir);
	printf("holdfastd: target %s\n", t->iqn);
	printf("holdfastd: try:\n  iscsi-ls -s %s\n  iscsi-inq %s/%s/%u\n", url, url, t->iqn,
	       t->luns[0].id);
	printf("holdfastd: control socket %s (holdfastctl -s %s targets)\n", cfg->control_socket,
	       cfg->control_socket);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const struct proc_hooks hooks = {
		.on_msg = ctl_on_msg,
		.on_child_up = ctl_on_child_up,
		.on_child_down = ctl_on_child_down,
		.on_tick = ctl_on_tick,
	};
	struct proc_desc run[sizeof(planes) / sizeof(planes[0])];
	size_t i, nrun = 0;
	const char *conffile = NULL;
	int check_only = 0, debug = 0, verbose = 0, c, err, rc = 1;
	struct hf_config *cfg = NULL;
	char why[1024];

	while ((c = getopt(argc, argv, "c:ndvh")) != -1) {
		switch (c) {
		case 'c':
			conffile = optarg;
			break;
		case 'n':
			check_only = 1;
			break;
		case 'd':
			debug = 1;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	log_init("parent", debug || verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO, 0);

	if (conffile)
		err = hf_config_load_file(conffile, &cfg, why, sizeof(why));
	else
		err = hf_config_load_string(hf_config_default_text, "(default)", &cfg, why,
					    sizeof(why));
	if (err) {
		fprintf(stderr, "%s\n", why);
		return 1;
	}
	if (check_only) {
		printf("configuration OK\n");
		hf_config_free(cfg);
		return 0;
	}
	if (!debug && !verbose)
		log_init("parent", cfg->log_level, 0);

	err = hf_config_prepare_data_dir(cfg, why, sizeof(why));
	if (err) {
		log_warnx("%s: %s", __func__, why);
		goto out_free;
	}
	for (i = 0; i < sizeof(planes) / sizeof(planes[0]); i++)
		if (planes[i].id != PROC_COORD || cfg->cluster.enabled)
			run[nrun++] = planes[i];
	err = proc_sup_create(cfg, run, nrun, &hooks, &ctl.sup);
	if (err) {
		log_warnx("%s: supervisor: %s", __func__, strerror(-err));
		goto out_free;
	}
	ctl.listen_fd = ctl_listen(cfg->control_socket);
	if (ctl.listen_fd < 0) {
		log_warnx("%s: control socket %s: %s", __func__, cfg->control_socket,
			  strerror(-ctl.listen_fd));
		goto out_sup;
	}
	err = proc_sup_add_fd(ctl.sup, ctl.listen_fd, EPOLLIN, ctl_accept_cb, NULL);
	if (err) {
		log_warnx("%s: control socket: %s", __func__, strerror(-err));
		goto out_listen;
	}
	print_banner(cfg, conffile == NULL);

	err = proc_sup_run(ctl.sup);
	if (err)
		log_warnx("%s: %s", __func__,
			  err == -ECHILD ? "a plane cannot run with this configuration"
					 : strerror(-err));
	else
		rc = 0;
	while (ctl.clients)
		ctl_client_close(ctl.clients);
	while (ctl.relays) {
		struct relay *r = ctl.relays;

		ctl.relays = r->next;
		free(r);
	}
out_listen:
	close(ctl.listen_fd);
	unlink(cfg->control_socket);
out_sup:
	proc_sup_destroy(ctl.sup);
out_free:
	hf_config_free(cfg);
	log_info("%s: stopped", __func__);
	return rc;
}
