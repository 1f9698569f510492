/* holdfastctl: asks a running holdfastd about its targets, LUNs, sessions and persistent
 * reservations over the local control socket (and clears a LUN's reservations when an
 * administrator must), and prints tables for people or raw JSON for scripts. The protocol is
 * one JSON object per line each way (docs/control-protocol.md). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/config.h"

/* Exit codes are part of the interface: scripts branch on them. */
enum {
	EXIT_OK = 0,
	EXIT_DAEMON_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
};

#define DEFAULT_SOCKET	"holdfast-data/holdfastd.sock"
#define REPLY_MAX	(2 * 1024 * 1024) /* the daemon's replies are at most 1 MiB */
#define REPLY_TIMEOUT_S 15		  /* the daemon itself gives up after 10 s */

static const char *const commands[] = {"targets", "luns", "sessions", NULL};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: holdfastctl [-s SOCKET | -c CONFIG] [--json] targets|luns|sessions\n"
		"       holdfastctl [-s SOCKET | -c CONFIG] [--json] pr show|clear TARGET LUN\n"
		"  pr show    a LUN's persistent reservations: registrants, holder, type, "
		"generation\n"
		"  pr clear   drop every registration and the reservation of a LUN (logged by the\n"
		"             daemon; the registrants see RESERVATIONS PREEMPTED)\n"
		"  -s SOCKET  the daemon's control socket (default: %s)\n"
		"  -c CONFIG  read the control socket's path from this configuration\n"
		"  --json     print the daemon's JSON answer instead of a table\n"
		"exit status: 0 ok, 1 the daemon reported an error, 2 usage, 3 daemon not "
		"reachable\n",
		DEFAULT_SOCKET);
}

static int ctl_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = REPLY_TIMEOUT_S};
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= n;
	}
	return 0;
}

/* Send one request line and read one reply line. Returns the parsed reply or NULL with
 * *why set. */
static json_t *ctl_call(int fd, json_t *request, const char **why)
{
	char *req, *buf;
	size_t len = 0;
	json_t *reply;
	int err;

	req = json_dumps(request, JSON_COMPACT);
	if (!req) {
		*why = strerror(ENOMEM);
		return NULL;
	}
	err = send_all(fd, req, strlen(req));
	if (!err)
		err = send_all(fd, "\n", 1);
	free(req);
	if (err) {
		*why = strerror(-err);
		return NULL;
	}
	buf = malloc(REPLY_MAX);
	if (!buf) {
		*why = strerror(ENOMEM);
		return NULL;
	}
	for (;;) {
		ssize_t n = recv(fd, buf + len, REPLY_MAX - len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*why = errno == EAGAIN ? "no answer in time" : strerror(errno);
			free(buf);
			return NULL;
		}
		if (n == 0) {
			*why = "the daemon closed the connection without answering";
			free(buf);
			return NULL;
		}
		if (memchr(buf + len, '\n', n)) {
			len += n;
			break;
		}
		len += n;
		if (len == REPLY_MAX) {
			*why = "the answer is too long";
			free(buf);
			return NULL;
		}
	}
	reply = json_loadb(buf, (char *)memchr(buf, '\n', len) - buf, 0, NULL);
	free(buf);
	if (!json_is_object(reply)) {
		json_decref(reply);
		*why = "the answer is not a JSON object";
		return NULL;
	}
	return reply;
}

/* Field accessors that print "-" for what the daemon did not say, so a newer or older
 * daemon's answer still makes a table. */
static const char *str_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_string(v) && json_string_length(v) > 0)
		return json_string_value(v);
	return "-";
}

static const char *int_of(json_t *o, const char *key, char *buf, size_t len)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v))
		return "-";
	snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return buf;
}

static const char *size_of(json_t *o, const char *key, char *buf, size_t len)
{
	static const char units[] = "BKMGTP";
	json_t *v = json_object_get(o, key);
	double s;
	int u = 0;

	if (!json_is_integer(v))
		return "-";
	s = (double)json_integer_value(v);
	while (s >= 1024 && units[u + 1]) {
		s /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0fB", s);
	else
		snprintf(buf, len, s == (double)(long long)s ? "%.0f%ciB" : "%.1f%ciB", s,
			 units[u]);
	return buf;
}

static void print_targets(json_t *reply)
{
	json_t *targets = json_object_get(reply, "targets"), *t;
	size_t i;

	printf("%-44s %-12s %-28s %4s %-10s %s\n", "TARGET", "ALIAS", "PORTALS", "LUNS", "ACL",
	       "CHAP");
	json_array_foreach(targets, i, t)
	{
		json_t *portals = json_object_get(t, "portals"), *p;
		json_t *acl = json_object_get(t, "acl");
		char ptext[256] = "", aclbuf[32];
		size_t j, off = 0;

		json_array_foreach(portals, j, p)
		{
			const char *addr = str_of(p, "address");
			int v6 = strchr(addr, ':') != NULL;
			char port[16], tpgt[16];
			int n;

			n = snprintf(ptext + off, sizeof(ptext) - off, "%s%s%s%s:%s,%s",
				     j ? " " : "", v6 ? "[" : "", addr, v6 ? "]" : "",
				     int_of(p, "port", port, sizeof(port)),
				     int_of(p, "tpgt", tpgt, sizeof(tpgt)));
			if (n < 0 || (size_t)n >= sizeof(ptext) - off)
				break;
			off += n;
		}
		if (!json_is_array(acl))
			snprintf(aclbuf, sizeof(aclbuf), "-");
		else if (json_array_size(acl) == 0)
			snprintf(aclbuf, sizeof(aclbuf), "open");
		else
			snprintf(aclbuf, sizeof(aclbuf), "%zu allowed", json_array_size(acl));
		printf("%-44s %-12s %-28s %4zu %-10s %s\n", str_of(t, "iqn"), str_of(t, "alias"),
		       off ? ptext : "-", json_array_size(json_object_get(t, "luns")), aclbuf,
		       json_is_true(json_object_get(t, "chap")) ? "yes" : "no");
	}
}

static void print_luns(json_t *reply)
{
	json_t *targets = json_object_get(reply, "targets"), *t, *l;
	size_t i, j;

	printf("%-44s %5s %-12s %-6s %10s %5s %s\n", "TARGET", "LUN", "BACKSTORE", "TYPE", "SIZE",
	       "BLOCK", "PATH");
	json_array_foreach(targets, i, t)
	{
		json_array_foreach(json_object_get(t, "luns"), j, l)
		{
			char id[24], size[32], bs[16];

			printf("%-44s %5s %-12s %-6s %10s %5s %s\n", str_of(t, "iqn"),
			       int_of(l, "id", id, sizeof(id)), str_of(l, "backstore"),
			       str_of(l, "type"), size_of(l, "size", size, sizeof(size)),
			       int_of(l, "block_size", bs, sizeof(bs)), str_of(l, "path"));
		}
	}
}

static void print_sessions(json_t *reply)
{
	json_t *sessions = json_object_get(reply, "sessions"), *s, *c;
	size_t i, j;

	if (json_array_size(sessions) == 0) {
		printf("no sessions\n");
		return;
	}
	printf("%-44s %-12s %5s %-9s %-36s %s\n", "INITIATOR", "ISID", "TSIH", "TYPE", "TARGET",
	       "CONNECTIONS");
	json_array_foreach(sessions, i, s)
	{
		char tsih[16];

		printf("%-44s %-12s %5s %-9s %-36s", str_of(s, "initiator"), str_of(s, "isid"),
		       int_of(s, "tsih", tsih, sizeof(tsih)), str_of(s, "type"),
		       str_of(s, "target"));
		json_array_foreach(json_object_get(s, "connections"), j, c)
		{
			char cid[16];

			printf(" %s:%s", int_of(c, "cid", cid, sizeof(cid)), str_of(c, "peer"));
		}
		printf("\n");
	}
}

static const char *bool_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_boolean(v))
		return "-";
	return json_is_true(v) ? "yes" : "no";
}

static void print_pr_show(json_t *reply)
{
	json_t *resv = json_object_get(reply, "reservation");
	json_t *regs = json_object_get(reply, "registrants"), *r;
	char lun[24], gen[24], type[16], port[16];
	size_t i;

	printf("target:       %s\n", str_of(reply, "target"));
	printf("LUN:          %s\n", int_of(reply, "lun", lun, sizeof(lun)));
	printf("PRgeneration: %s\n", int_of(reply, "generation", gen, sizeof(gen)));
	printf("APTPL:        %s\n", bool_of(reply, "aptpl"));
	if (!json_is_object(resv)) {
		printf("reservation:  none\n");
	} else {
		json_t *h = json_object_get(resv, "holder");

		printf("reservation:  %s (type %s, %s), scope %s\n", str_of(resv, "type_name"),
		       int_of(resv, "type_code", type, sizeof(type)), str_of(resv, "type"),
		       str_of(resv, "scope"));
		if (json_is_true(json_object_get(resv, "all_registrants")))
			printf("holder:       every registrant\n");
		else if (json_is_object(h))
			printf("holder:       %s on relative target port %s, key %s\n",
			       str_of(h, "initiator_port"),
			       int_of(h, "rel_tgt_port", port, sizeof(port)), str_of(h, "key"));
		else
			printf("holder:       -\n");
	}
	if (json_array_size(regs) == 0) {
		printf("registrants:  none\n");
		return;
	}
	printf("registrants:  %zu\n\n", json_array_size(regs));
	printf("%-18s %-6s %-7s %-9s %s\n", "KEY", "HOLDER", "RELPORT", "ALL_TG_PT",
	       "TRANSPORTID (INITIATOR PORT)");
	json_array_foreach(regs, i, r)
	{
		printf("%-18s %-6s %-7s %-9s %s\n", str_of(r, "key"), bool_of(r, "holder"),
		       int_of(r, "rel_tgt_port", port, sizeof(port)), bool_of(r, "all_tg_pt"),
		       str_of(r, "initiator_port"));
	}
}

static void print_pr_clear(json_t *reply)
{
	char lun[24], n[24], gen[24];

	printf("cleared the persistent reservations of %s LUN %s: %s registrations%s dropped; "
	       "PRgeneration now %s\n",
	       str_of(reply, "target"), int_of(reply, "lun", lun, sizeof(lun)),
	       int_of(reply, "registrations_dropped", n, sizeof(n)),
	       json_is_true(json_object_get(reply, "reservation_dropped")) ? " and the reservation"
									   : "",
	       int_of(reply, "generation", gen, sizeof(gen)));
}

/* The user on whose behalf the request is made, for the daemon's log: sudo's caller when
 * there is one, else the login of the real uid. The daemon logs it as a claim next to the
 * credentials the kernel vouches for. */
static const char *requester(void)
{
	const char *sudo = getenv("SUDO_USER");
	struct passwd *pw;

	if (sudo && *sudo)
		return sudo;
	pw = getpwuid(getuid());
	return pw ? pw->pw_name : NULL;
}

/* Build the request for the command line at argv[0..argc). Returns NULL on a usage error
 * (printed). */
static json_t *build_request(int argc, char **argv, const char **cmd)
{
	unsigned long long lun;
	char *end;
	int i;

	if (argc == 1) {
		for (i = 0; commands[i]; i++)
			if (!strcmp(commands[i], argv[0]))
				break;
		if (!commands[i]) {
			fprintf(stderr, "holdfastctl: unknown command '%s'\n", argv[0]);
			return NULL;
		}
		*cmd = commands[i];
		return json_pack("{s:s}", "cmd", *cmd);
	}
	if (strcmp(argv[0], "pr") != 0) {
		fprintf(stderr, "holdfastctl: unknown command '%s'\n", argv[0]);
		return NULL;
	}
	if (argc != 4 || (strcmp(argv[1], "show") != 0 && strcmp(argv[1], "clear") != 0)) {
		fprintf(stderr, "holdfastctl: pr takes show|clear TARGET LUN\n");
		return NULL;
	}
	errno = 0;
	lun = strtoull(argv[3], &end, 10);
	/* SAM LUN numbers are 64-bit, but the daemon's JSON numbers stop at INT64_MAX. */
	if (argv[3][0] < '0' || argv[3][0] > '9' || *end || errno || lun > INT64_MAX) {
		fprintf(stderr, "holdfastctl: '%s' is not a LUN number\n", argv[3]);
		return NULL;
	}
	if (!strcmp(argv[1], "show")) {
		*cmd = "pr_show";
		return json_pack("{s:s, s:s, s:I}", "cmd", *cmd, "target", argv[2], "lun",
				 (json_int_t)lun);
	}
	*cmd = "pr_clear";
	return json_pack("{s:s, s:s, s:I, s:s?}", "cmd", *cmd, "target", argv[2], "lun",
			 (json_int_t)lun, "by", requester());
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"socket", required_argument, NULL, 's'},
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *sock = DEFAULT_SOCKET, *conffile = NULL, *cmd, *why = NULL;
	struct hf_config *cfg = NULL;
	char sockbuf[PATH_MAX], err[1024];
	int json = 0, c, fd, rc;
	json_t *request, *reply, *e;

	while ((c = getopt_long(argc, argv, "s:c:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'c':
			conffile = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind == argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	request = build_request(argc - optind, argv + optind, &cmd);
	if (!request) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (conffile) {
		if (hf_config_load_file(conffile, &cfg, err, sizeof(err))) {
			fprintf(stderr, "%s\n", err);
			json_decref(request);
			return EXIT_USAGE;
		}
		snprintf(sockbuf, sizeof(sockbuf), "%s", cfg->control_socket);
		sock = sockbuf;
		hf_config_free(cfg);
	}

	fd = ctl_connect(sock);
	if (fd < 0) {
		fprintf(stderr, "holdfastctl: cannot reach holdfastd at %s: %s\n", sock,
			strerror(-fd));
		json_decref(request);
		return EXIT_UNREACHABLE;
	}
	reply = ctl_call(fd, request, &why);
	close(fd);
	json_decref(request);
	if (!reply) {
		fprintf(stderr, "holdfastctl: %s: %s\n", sock, why);
		return EXIT_UNREACHABLE;
	}
	e = json_object_get(reply, "error");
	rc = e ? EXIT_DAEMON_ERROR : EXIT_OK;
	if (json) {
		json_dumpf(reply, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
	} else if (e) {
		fprintf(stderr, "holdfastctl: %s\n",
			json_is_string(e) ? json_string_value(e) : "the daemon reported an error");
	} else if (!strcmp(cmd, "targets")) {
		print_targets(reply);
	} else if (!strcmp(cmd, "luns")) {
		print_luns(reply);
	} else if (!strcmp(cmd, "pr_show")) {
		print_pr_show(reply);
	} else if (!strcmp(cmd, "pr_clear")) {
		print_pr_clear(reply);
	} else {
		print_sessions(reply);
	}
	json_decref(reply);
	return rc;
}
