/* holdfastctl: asks a running holdfastd about its targets, LUNs, sessions and persistent
 * reservations over the local control socket (and clears a LUN's reservations when an
 * administrator must), and prints tables for people or raw JSON for scripts. The protocol is
 * one JSON object per line each way (docs/control-protocol.md). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/config.h"

/* Exit codes are part of the interface: scripts branch on them. */
enum {
	EXIT_OK = 0,
	EXIT_DAEMON_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
	/* The catalog took the change but the target has not yet: the daemon retries it. */
	EXIT_NOT_APPLIED = 4,
};

#define DEFAULT_SOCKET	"holdfast-data/holdfastd.sock"
#define REPLY_MAX	(2 * 1024 * 1024) /* the daemon's replies are at most 1 MiB */
#define REPLY_TIMEOUT_S 15		  /* the daemon itself gives up after 10 s */
#define WAIT_POLL_MS	500		  /* vdisk clone --wait looks at the clone this often */

static const char *const commands[] = {"targets", "luns", "sessions", NULL};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: holdfastctl [-s SOCKET | -c CONFIG] [--json] targets|luns|sessions\n"
		"       holdfastctl [-s SOCKET | -c CONFIG] [--json] pr show|clear TARGET LUN\n"
		"       holdfastctl [-s SOCKET | -c CONFIG] [--json] cluster token create [--ttl "
		"SECONDS]\n"
		"       holdfastctl [-s SOCKET | -c CONFIG] [--json] cluster status\n"
		"       holdfastctl [-s SOCKET | -c CONFIG] [--json] cluster host remove NAME\n"
		"       holdfastctl [-s SOCKET | -c CONFIG] [--json] pool add NAME PATH [--alert "
		"PCT] |\n"
		"           pool add NAME --device /dev/DEV [--format xfs|ext4] [--alert PCT] | "
		"pool list |\n"
		"           pool remove NAME\n"
		"       holdfastctl [-s SOCKET | -c CONFIG] [--json] vdisk create POOL NAME SIZE | "
		"vdisk list [POOL] | vdisk show ID\n"
		"       holdfastctl [-s SOCKET | -c CONFIG] [--json] vdisk clone ID NAME [--wait] "
		"[--rate BYTES_PER_S]\n"
		"       holdfastctl [-s SOCKET | -c CONFIG] [--json] vdisk extend ID SIZE | delete "
		"ID | attach ID HOST | detach ID HOST | transfer ID FROM TO --epoch E\n"
		"       holdfastctl [-s SOCKET | -c CONFIG] [--json] vdisk maintenance ID on|off "
		"--epoch E | vdisk access ID\n"
		"       holdfastctl [-s SOCKET | -c CONFIG] [--json] host portals HOST "
		"[ADDR:PORT|ADDR|NET/LEN ... | none]\n"
		"  vdisk maintenance  pause (on) or resume (off) a disk's writes: reads go on, "
		"writes wait\n"
		"  vdisk access       per member host: role, access state, portals in use\n"
		"  host portals       show or set the box portals a host should use (else: "
		"redirected)\n"
		"  pr show    a LUN's persistent reservations: registrants, holder, type, "
		"generation\n"
		"  pr clear   drop every registration and the reservation of a LUN (logged by the\n"
		"             daemon; the registrants see RESERVATIONS PREEMPTED)\n"
		"  cluster token create  a one-time join token and the agent's command line\n"
		"  cluster status        quorum, hosts (leases, epochs, iSCSI sessions), events\n"
		"  cluster host remove   fence a host at the target and refuse its certificate\n"
		"  vdisk clone  answers once the clone is recorded (state cloning); vdisk\n"
		"               show and list give its progress; --wait follows it to the end;\n"
		"               --rate caps the copy (100M: 100 MiB a second); vdisk delete of\n"
		"               the clone cancels it\n"
		"  -s SOCKET  the daemon's control socket (default: %s)\n"
		"  -c CONFIG  read the control socket's path from this configuration\n"
		"  --json     print the daemon's JSON answer instead of a table\n"
		"exit status: 0 ok, 1 the daemon reported an error, 2 usage, 3 daemon not "
		"reachable,\n"
		"             4 committed in the catalog but not yet applied at the target "
		"(retried)\n",
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

/* A number, rounded to `decimals` places, with an optional unit. */
static const char *num_of(json_t *o, const char *key, int decimals, const char *unit, char *buf,
			  size_t len)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_number(v))
		return "-";
	snprintf(buf, len, "%.*f%s", decimals, json_number_value(v), unit);
	return buf;
}

static void print_token(json_t *reply)
{
	char exp[32] = "-";
	json_t *e = json_object_get(reply, "expires");

	if (json_is_integer(e)) {
		time_t t = (time_t)json_integer_value(e);
		struct tm tm;

		if (localtime_r(&t, &tm))
			strftime(exp, sizeof(exp), "%Y-%m-%d %H:%M:%S %z", &tm);
	}
	printf("token:      %s\n", str_of(reply, "token"));
	printf("id:         %s\n", str_of(reply, "id"));
	printf("expires:    %s\n", exp);
	printf("CA sha256:  %s\n", str_of(reply, "ca_sha256"));
	printf("\nOn the host (one use; replace HOST, IQN and DIR):\n  %s\n",
	       str_of(reply, "command"));
}

static void print_cluster_status(json_t *reply)
{
	json_t *q = json_object_get(reply, "quorum"), *h, *x;
	char a[32], b[32], c[32], d[32];
	size_t i, j, k;

	printf("cluster %s: agents on %s port %s, joins on port %s\n", str_of(reply, "cluster"),
	       str_of(reply, "address"), int_of(reply, "agent_port", a, sizeof(a)),
	       int_of(reply, "join_port", b, sizeof(b)));
	printf("heartbeat %s ms, %s misses: lease %s ms\n",
	       int_of(reply, "heartbeat_ms", a, sizeof(a)),
	       int_of(reply, "miss_threshold", b, sizeof(b)),
	       num_of(reply, "lease_timeout_ms", 0, "", c, sizeof(c)));
	printf("quorum: %s, %s of %s votes present, %s needed; wait_for_all %s%s\n",
	       json_is_true(json_object_get(q, "quorate")) ? "QUORATE" : "NOT QUORATE",
	       int_of(q, "votes_present", a, sizeof(a)), int_of(q, "votes_total", b, sizeof(b)),
	       int_of(q, "votes_needed", c, sizeof(c)), bool_of(q, "wait_for_all"),
	       json_is_true(json_object_get(q, "wait_for_all")) &&
			       !json_is_true(json_object_get(q, "wait_for_all_met"))
		       ? " (not met: some host has never joined)"
		       : "");
	if (json_is_string(json_object_get(reply, "sessions_error")))
		printf("iSCSI sessions unknown: %s\n", str_of(reply, "sessions_error"));

	printf("\n%-16s %4s %-24s %6s %10s %10s %-40s %s\n", "HOST", "ID", "STATE", "EPOCH",
	       "LEASE_AGE", "LAST_HB", "INITIATORS", "SESSIONS (PORTAL <- PEER)");
	json_array_foreach(json_object_get(reply, "hosts"), i, h)
	{
		char inits[512] = "", sess[1024] = "";
		size_t off = 0;

		json_array_foreach(json_object_get(h, "iqns"), j, x)
		{
			int n = snprintf(inits + off, sizeof(inits) - off, "%s%s", j ? "," : "",
					 json_string_value(x));

			if (n < 0 || (size_t)n >= sizeof(inits) - off)
				break;
			off += n;
		}
		off = 0;
		json_array_foreach(json_object_get(h, "sessions"), j, x)
		{
			json_t *cn;

			json_array_foreach(json_object_get(x, "connections"), k, cn)
			{
				int n = snprintf(sess + off, sizeof(sess) - off, "%s%s <- %s",
						 off ? ", " : "", str_of(cn, "portal"),
						 str_of(cn, "peer"));

				if (n < 0 || (size_t)n >= sizeof(sess) - off)
					break;
				off += n;
			}
		}
		printf("%-16s %4s %-24s %6s %10s %10s %-40s %s\n", str_of(h, "name"),
		       int_of(h, "id", a, sizeof(a)), str_of(h, "state"),
		       int_of(h, "epoch", b, sizeof(b)),
		       num_of(h, "lease_age_ms", 0, "ms", c, sizeof(c)),
		       num_of(h, "last_heartbeat_ms_ago", 0, "ms", d, sizeof(d)),
		       inits[0] ? inits : "-", sess[0] ? sess : "-");
	}

	printf("\nquorum history (oldest first):\n");
	json_array_foreach(json_object_get(q, "history"), i, x)
		printf("  %10s ms ago  %-11s %-14s %-16s %s/%s votes\n",
		       num_of(x, "ms_ago", 0, "", a, sizeof(a)),
		       json_is_true(json_object_get(x, "quorate")) ? "quorate" : "not quorate",
		       str_of(x, "reason"), str_of(x, "host"), int_of(x, "present", b, sizeof(b)),
		       int_of(x, "total", c, sizeof(c)));

	printf("\nevents (oldest first):\n");
	json_array_foreach(json_object_get(reply, "events"), i, x)
	{
		json_t *t = json_object_get(x, "time_ms");
		char when[40] = "-";

		if (json_is_integer(t)) {
			time_t s = (time_t)(json_integer_value(t) / 1000);
			struct tm tm;

			if (localtime_r(&s, &tm))
				strftime(when, sizeof(when), "%H:%M:%S", &tm);
			snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03d",
				 (int)(json_integer_value(t) % 1000));
		}
		printf("  %s %-14s %-16s %s\n", when, str_of(x, "kind"), str_of(x, "host"),
		       str_of(x, "text"));
	}
}

static void print_host_remove(json_t *reply)
{
	json_t *t = json_object_get(reply, "target");
	char e[32], w[32];

	printf("removed host %s (epoch %s); its certificate is refused from now on\n",
	       str_of(reply, "removed"), int_of(reply, "epoch", e, sizeof(e)));
	if (json_is_object(t) && json_object_get(t, "error"))
		printf("the target did not confirm the fence: %s (coord retries)\n",
		       str_of(t, "error"));
	else if (json_is_object(t))
		printf("fenced at the target: %s session(s), writes refused after %s ms\n",
		       int_of(t, "sessions", e, sizeof(e)),
		       num_of(t, "writes_refused_ms", 3, "", w, sizeof(w)));
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

static long long opt_ttl = -1;	    /* --ttl, for cluster token create */
static long long opt_epoch = -1;    /* --epoch, for the vdisk commands that change a disk */
static long long opt_alert = -1;    /* --alert, for pool add */
static const char *opt_device;	    /* --device, for pool add of a block device */
static const char *opt_format;	    /* --format, with --device */
static bool opt_wait;		    /* --wait, for vdisk clone */
static unsigned long long opt_rate; /* --rate, for vdisk clone; 0: none */

/* A size: bytes, or a number with K, M, G, T or P (powers of 1024, an optional "iB" or "B"). */
static int parse_size(const char *t, unsigned long long *out)
{
	unsigned long long v, mul = 1;
	char *end;

	errno = 0;
	v = strtoull(t, &end, 10);
	if (t[0] < '0' || t[0] > '9' || errno)
		return -1;
	switch (*end) {
	case 'P':
	case 'p':
		mul <<= 10; /* fall through */
	case 'T':
	case 't':
		mul <<= 10; /* fall through */
	case 'G':
	case 'g':
		mul <<= 10; /* fall through */
	case 'M':
	case 'm':
		mul <<= 10; /* fall through */
	case 'K':
	case 'k':
		mul <<= 10;
		end++;
		if (*end == 'i')
			end++;
		if (*end == 'B')
			end++;
		break;
	case 'B':
		end++;
		break;
	case '\0':
		break;
	default:
		return -1;
	}
	if (*end || v > INT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static json_t *build_pool_request(int argc, char **argv, const char **cmd)
{
	bool add = argc >= 2 && !strcmp(argv[1], "add");

	if (opt_alert >= 0 && !add) {
		fprintf(stderr, "holdfastctl: --alert belongs to pool add\n");
		return NULL;
	}
	if ((opt_device || opt_format) && !add) {
		fprintf(stderr, "holdfastctl: --device and --format belong to pool add\n");
		return NULL;
	}
	if (opt_format && !opt_device) {
		fprintf(stderr, "holdfastctl: --format formats a block device: give --device too\n");
		return NULL;
	}
	if (opt_device && argc != 3) {
		fprintf(stderr, "holdfastctl: pool add NAME --device /dev/DEV takes no PATH: the box "
				"mounts the device itself\n");
		return NULL;
	}
	if (opt_device) {
		*cmd = "pool_add";
		return json_pack("{s:s, s:s, s:s, s:s?, s:I}", "cmd", *cmd, "name", argv[2], "device",
				 opt_device, "format", opt_format, "alert",
				 (json_int_t)(opt_alert < 0 ? 0 : opt_alert));
	}
	if (argc == 4 && !strcmp(argv[1], "add")) {
		static char abs[PATH_MAX];

		/* The daemon has another working folder: a relative path is made absolute
		 * here. */
		if (argv[3][0] != '/' && realpath(argv[3], abs))
			argv[3] = abs;
		*cmd = "pool_add";
		return json_pack("{s:s, s:s, s:s, s:I}", "cmd", *cmd, "name", argv[2], "path",
				 argv[3], "alert", (json_int_t)(opt_alert < 0 ? 0 : opt_alert));
	}
	if (argc == 2 && !strcmp(argv[1], "list")) {
		*cmd = "pool_list";
		return json_pack("{s:s}", "cmd", *cmd);
	}
	if (argc == 3 && !strcmp(argv[1], "remove")) {
		*cmd = "pool_remove";
		return json_pack("{s:s, s:s}", "cmd", *cmd, "name", argv[2]);
	}
	fprintf(stderr, "holdfastctl: pool takes add NAME PATH [--alert PCT] | add NAME --device "
			"/dev/DEV [--format xfs|ext4] [--alert PCT] | list | remove NAME\n");
	return NULL;
}

static json_t *build_vdisk_request(int argc, char **argv, const char **cmd)
{
	const char *sub = argc > 1 ? argv[1] : "";
	bool epoch_needed = !strcmp(sub, "extend") || !strcmp(sub, "delete") ||
			    !strcmp(sub, "attach") || !strcmp(sub, "detach") ||
			    !strcmp(sub, "transfer") || !strcmp(sub, "maintenance");
	unsigned long long size;
	json_t *r = NULL;

	if (epoch_needed && opt_epoch < 0) {
		fprintf(stderr,
			"holdfastctl: vdisk %s needs --epoch E (the disk's epoch as you "
			"know it)\n",
			sub);
		return NULL;
	}
	if (!epoch_needed && opt_epoch >= 0 && strcmp(sub, "clone")) {
		fprintf(stderr, "holdfastctl: --epoch does not belong to vdisk %s\n", sub);
		return NULL;
	}
	if ((opt_wait || opt_rate) && strcmp(sub, "clone")) {
		fprintf(stderr, "holdfastctl: --wait and --rate belong to vdisk clone\n");
		return NULL;
	}
	if (argc == 5 && !strcmp(sub, "create")) {
		if (parse_size(argv[4], &size) || size == 0) {
			fprintf(stderr, "holdfastctl: '%s' is not a size\n", argv[4]);
			return NULL;
		}
		*cmd = "vdisk_create";
		r = json_pack("{s:s, s:s, s:s, s:I}", "cmd", *cmd, "pool", argv[2], "name", argv[3],
			      "size", (json_int_t)size);
	} else if ((argc == 2 || argc == 3) && !strcmp(sub, "list")) {
		*cmd = "vdisk_list";
		r = json_pack("{s:s, s:s?}", "cmd", *cmd, "pool", argc == 3 ? argv[2] : NULL);
	} else if (argc == 4 && !strcmp(sub, "extend")) {
		if (parse_size(argv[3], &size) || size == 0) {
			fprintf(stderr, "holdfastctl: '%s' is not a size\n", argv[3]);
			return NULL;
		}
		*cmd = "vdisk_extend";
		r = json_pack("{s:s, s:s, s:I}", "cmd", *cmd, "id", argv[2], "size",
			      (json_int_t)size);
	} else if (argc == 3 && !strcmp(sub, "delete")) {
		*cmd = "vdisk_delete";
		r = json_pack("{s:s, s:s}", "cmd", *cmd, "id", argv[2]);
	} else if (argc == 4 && (!strcmp(sub, "attach") || !strcmp(sub, "detach"))) {
		*cmd = !strcmp(sub, "attach") ? "vdisk_attach" : "vdisk_detach";
		r = json_pack("{s:s, s:s, s:s}", "cmd", *cmd, "id", argv[2], "host", argv[3]);
	} else if (argc == 5 && !strcmp(sub, "transfer")) {
		*cmd = "vdisk_transfer";
		r = json_pack("{s:s, s:s, s:s, s:s}", "cmd", *cmd, "id", argv[2], "from", argv[3],
			      "to", argv[4]);
	} else if (argc == 4 && !strcmp(sub, "clone")) {
		*cmd = "vdisk_clone";
		r = json_pack("{s:s, s:s, s:s}", "cmd", *cmd, "id", argv[2], "name", argv[3]);
		if (r && opt_rate)
			json_object_set_new(r, "rate", json_integer((json_int_t)opt_rate));
	} else if (argc == 3 && !strcmp(sub, "show")) {
		*cmd = "vdisk_show";
		r = json_pack("{s:s, s:s}", "cmd", *cmd, "id", argv[2]);
	} else if (argc == 4 && !strcmp(sub, "maintenance") &&
		   (!strcmp(argv[3], "on") || !strcmp(argv[3], "off"))) {
		*cmd = "vdisk_maintenance";
		r = json_pack("{s:s, s:s, s:b}", "cmd", *cmd, "id", argv[2], "on",
			      !strcmp(argv[3], "on"));
	} else if (argc == 3 && !strcmp(sub, "access")) {
		*cmd = "vdisk_access";
		r = json_pack("{s:s, s:s}", "cmd", *cmd, "id", argv[2]);
	} else {
		fprintf(stderr,
			"holdfastctl: vdisk takes create POOL NAME SIZE | list [POOL] | extend ID "
			"SIZE | delete ID | attach ID HOST | detach ID HOST | transfer ID FROM TO "
			"| clone ID NAME [--wait] [--rate BYTES_PER_S] | show ID | maintenance ID on|off "
			"| access ID\n");
		return NULL;
	}
	if (r && opt_epoch >= 0)
		json_object_set_new(r, "epoch", json_integer(opt_epoch));
	return r;
}

static const char *owner_of(json_t *v)
{
	json_t *o = json_object_get(v, "owner");

	return json_is_string(o) ? json_string_value(o) : "-";
}

/* A disk's state, with a clone's progress ("cloning 42%"). */
static const char *state_of(json_t *v, char *buf, size_t len)
{
	json_t *p = json_object_get(v, "progress");

	if (!json_is_object(p))
		return str_of(v, "state");
	snprintf(buf, len, "%s %.0f%%", str_of(v, "state"),
		 json_number_value(json_object_get(p, "percent")));
	return buf;
}

static void print_vdisk_row(json_t *v, bool header)
{
	char b1[32], b2[32], b3[32], b4[48], state[64];
	json_t *hosts = json_object_get(v, "hosts"), *access = json_object_get(v, "access"), *h;
	size_t i;

	if (header)
		printf("%-36s %-16s %-10s %9s %5s %-10s %6s %-12s %s\n", "ID", "NAME", "POOL",
		       "SIZE", "LUN", "OWNER", "EPOCH", "STATE", "HOSTS (ACCESS)");
	/* A disk in maintenance says so beside its state (and a clone its progress). */
	snprintf(state, sizeof(state), "%s%s", state_of(v, b4, sizeof(b4)),
		 json_is_true(json_object_get(v, "maintenance")) ? ",maint" : "");
	printf("%-36s %-16s %-10s %9s %5s %-10s %6s %-12s ", str_of(v, "id"), str_of(v, "name"),
	       str_of(v, "pool"), size_of(v, "size", b1, sizeof(b1)),
	       int_of(v, "lun", b2, sizeof(b2)), owner_of(v), int_of(v, "epoch", b3, sizeof(b3)),
	       state);
	if (!json_array_size(hosts))
		printf("-");
	json_array_foreach(hosts, i, h)
	{
		const char *name = json_is_string(h) ? json_string_value(h) : "?";
		json_t *a = json_object_get(access, name);

		printf("%s%s", i ? "," : "", name);
		if (json_is_string(a))
			printf("(%s)", json_string_value(a));
	}
	printf("\n");
}

/* vdisk access: one line per member host. */
static void print_vdisk_access(json_t *reply)
{
	json_t *hosts = json_object_get(reply, "hosts"), *h, *p;
	char b[32];
	size_t i, k;

	printf("%s (%s), epoch %s%s\n", str_of(reply, "name"), str_of(reply, "vdisk"),
	       int_of(reply, "epoch", b, sizeof(b)),
	       json_is_true(json_object_get(reply, "maintenance")) ? ", in maintenance" : "");
	if (!json_array_size(hosts)) {
		printf("no member hosts (nobody owns it, nobody is attached)\n");
		return;
	}
	printf("%-16s %-7s %-14s %-32s %s\n", "HOST", "ROLE", "ACCESS", "PORTALS IN USE",
	       "PREFERRED");
	json_array_foreach(hosts, i, h)
	{
		char portals[256] = "", pref[256] = "";
		size_t n;

		json_array_foreach(json_object_get(h, "portals"), k, p)
		{
			n = strlen(portals);
			snprintf(portals + n, sizeof(portals) - n, "%s%s", k ? "," : "",
				 json_string_value(p));
		}
		json_array_foreach(json_object_get(h, "preferred"), k, p)
		{
			n = strlen(pref);
			snprintf(pref + n, sizeof(pref) - n, "%s%s", k ? "," : "",
				 json_string_value(p));
		}
		printf("%-16s %-7s %-14s %-32s %s\n", str_of(h, "host"), str_of(h, "role"),
		       str_of(h, "shown"), portals[0] ? portals : "-", pref[0] ? pref : "any");
	}
}

/* host portals: the preferred portals of a host. */
static void print_host_portals(json_t *reply)
{
	json_t *list = json_object_get(reply, "portals"), *p;
	size_t i;

	printf("%s prefers ", str_of(reply, "host"));
	if (!json_array_size(list))
		printf("every portal (none configured)");
	json_array_foreach(list, i, p)
	{
		printf("%s%s", i ? ", " : "", json_string_value(p));
	}
	printf("\n");
}

/* host portals HOST [SPEC... | none]: show, set or clear a host's preferred portals. */
static json_t *build_host_request(int argc, char **argv, const char **cmd)
{
	json_t *r, *list;

	if (argc < 3 || strcmp(argv[1], "portals")) {
		fprintf(stderr,
			"holdfastctl: host takes portals HOST [ADDR:PORT|ADDR|NET/LEN ... | "
			"none]\n");
		return NULL;
	}
	*cmd = "host_portals";
	r = json_pack("{s:s, s:s}", "cmd", *cmd, "host", argv[2]);
	if (argc == 3)
		return r;
	list = json_array();
	if (!(argc == 4 && !strcmp(argv[3], "none")))
		for (int i = 3; i < argc; i++)
			json_array_append_new(list, json_string(argv[i]));
	json_object_set_new(r, "portals", list);
	return r;
}

static void print_vdisk_reply(const char *cmd, json_t *reply)
{
	json_t *v = json_object_get(reply, "vdisk"), *list = json_object_get(reply, "vdisks");
	char b1[32], b2[32];
	size_t i;

	if (!strcmp(cmd, "vdisk_list")) {
		if (!json_array_size(list))
			printf("no virtual disks\n");
		json_array_foreach(list, i, v)
		{
			print_vdisk_row(v, i == 0);
		}
		return;
	}
	if (!strcmp(cmd, "vdisk_delete")) {
		if (json_is_true(json_object_get(reply, "cancelled")))
			printf("deleted %s: its clone was cancelled and the partial copy "
			       "removed\n",
			       str_of(reply, "deleted"));
		else
			printf("deleted %s (LUN %s)\n", str_of(reply, "deleted"),
			       int_of(reply, "lun", b1, sizeof(b1)));
		return;
	}
	if (!v) {
		printf("done\n");
		return;
	}
	print_vdisk_row(v, true);
	if (!strcmp(cmd, "vdisk_extend") && json_object_get(reply, "old_size"))
		printf("grown from %s to %s; hosts get CAPACITY DATA HAS CHANGED\n",
		       size_of(reply, "old_size", b1, sizeof(b1)),
		       size_of(v, "size", b2, sizeof(b2)));
	else if (!strcmp(cmd, "vdisk_clone") && !strcmp(str_of(v, "state"), "cloning"))
		printf("cloning into LUN %s of %s; exported when the copy ends (holdfastctl vdisk "
		       "show %s)\n",
		       int_of(v, "lun", b1, sizeof(b1)), str_of(v, "target"), str_of(v, "id"));
	else if (!strcmp(cmd, "vdisk_create") || !strcmp(cmd, "vdisk_clone"))
		printf("exported as LUN %s of %s\n", int_of(v, "lun", b1, sizeof(b1)),
		       str_of(v, "target"));
}

static void print_pool_row(json_t *p, bool header)
{
	char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];

	const char *kind = str_of(p, "kind");

	if (header)
		printf("%-12s %-6s %-11s %9s %9s %9s %9s %11s %6s %6s %s\n", "POOL", "KIND", "STATE",
		       "CAPACITY", "USED", "FREE", "ALLOCATED", "PROVISIONED", "VDISKS", "ALERT%",
		       "PATH");
	printf("%-12s %-6s %-11s %9s %9s %9s %9s %11s %6s %5s%s %s", str_of(p, "name"), kind,
	       str_of(p, "state"),
	       size_of(p, "capacity", b1, sizeof(b1)), size_of(p, "used", b2, sizeof(b2)),
	       size_of(p, "free", b3, sizeof(b3)), size_of(p, "allocated", b4, sizeof(b4)),
	       size_of(p, "provisioned", b5, sizeof(b5)), int_of(p, "vdisks", b6, sizeof(b6)),
	       int_of(p, "alert_pct", b1, sizeof(b1)),
	       json_is_true(json_object_get(p, "alert")) ? "!" : " ", str_of(p, "path"));
	/* A block pool: where its file system lives, and why it is not online. */
	if (!strcmp(kind, "block"))
		printf(" (%s %s %s)", str_of(p, "device"), str_of(p, "fs_type"),
		       str_of(p, "fs_uuid"));
	printf("\n");
	if (json_object_get(p, "state_reason"))
		printf("  %s: %s\n", str_of(p, "name"), str_of(p, "state_reason"));
}

static void print_pool_reply(const char *cmd, json_t *reply)
{
	json_t *list = json_object_get(reply, "pools"), *p;
	size_t i;

	if (!strcmp(cmd, "pool_remove")) {
		printf("removed pool %s\n", str_of(reply, "removed"));
		return;
	}
	if (!strcmp(cmd, "pool_add")) {
		print_pool_row(json_object_get(reply, "pool"), true);
		return;
	}
	if (!json_array_size(list))
		printf("no pools\n");
	json_array_foreach(list, i, p)
	{
		print_pool_row(p, i == 0);
	}
}

static json_t *build_cluster_request(int argc, char **argv, const char **cmd)
{
	json_t *r;

	if (argc == 3 && !strcmp(argv[1], "token") && !strcmp(argv[2], "create")) {
		*cmd = "cluster_token_create";
		r = json_pack("{s:s}", "cmd", *cmd);
		if (r && opt_ttl >= 0)
			json_object_set_new(r, "ttl", json_integer(opt_ttl));
		return r;
	}
	if (opt_ttl >= 0) {
		fprintf(stderr, "holdfastctl: --ttl belongs to cluster token create\n");
		return NULL;
	}
	if (argc == 2 && !strcmp(argv[1], "status")) {
		*cmd = "cluster_status";
		return json_pack("{s:s}", "cmd", *cmd);
	}
	if (argc == 4 && !strcmp(argv[1], "host") && !strcmp(argv[2], "remove")) {
		*cmd = "cluster_host_remove";
		return json_pack("{s:s, s:s, s:s?}", "cmd", *cmd, "host", argv[3], "by",
				 requester());
	}
	fprintf(stderr, "holdfastctl: cluster takes token create [--ttl SECONDS] | status | host "
			"remove NAME\n");
	return NULL;
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
	if (!strcmp(argv[0], "cluster"))
		return build_cluster_request(argc, argv, cmd);
	if (!strcmp(argv[0], "pool"))
		return build_pool_request(argc, argv, cmd);
	if (!strcmp(argv[0], "vdisk"))
		return build_vdisk_request(argc, argv, cmd);
	if (!strcmp(argv[0], "host") && opt_epoch < 0 && opt_alert < 0)
		return build_host_request(argc, argv, cmd);
	if (opt_epoch >= 0 || opt_alert >= 0) {
		fprintf(stderr, "holdfastctl: --epoch and --alert belong to the vdisk and pool "
				"commands\n");
		return NULL;
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

/* One request on a connection of its own; NULL with a message printed when the daemon cannot
 * be reached. */
static json_t *call_once(const char *sock, json_t *request)
{
	const char *why = NULL;
	json_t *reply;
	int fd = ctl_connect(sock);

	if (fd < 0) {
		fprintf(stderr, "holdfastctl: cannot reach holdfastd at %s: %s\n", sock,
			strerror(-fd));
		return NULL;
	}
	reply = ctl_call(fd, request, &why);
	close(fd);
	if (!reply)
		fprintf(stderr, "holdfastctl: %s: %s\n", sock, why);
	return reply;
}

/* vdisk clone --wait: follow the clone with vdisk_show until it is ready and exported, or gone.
 * Progress goes to stderr, one line per whole percent, so that stdout keeps the answer. Returns
 * the exit status; *last is the last answer (NULL when the daemon could not be reached). */
static int wait_clone(const char *sock, const char *id, bool quiet, json_t **last)
{
	const struct timespec pause = {.tv_sec = WAIT_POLL_MS / 1000,
				       .tv_nsec = (WAIT_POLL_MS % 1000) * 1000000L};
	json_t *req = json_pack("{s:s, s:s}", "cmd", "vdisk_show", "id", id), *reply, *v, *p;
	char b1[32], b2[32];
	int shown = -1, ready_polls = 0, pct;

	*last = NULL;
	for (;;) {
		nanosleep(&pause, NULL);
		reply = call_once(sock, req);
		if (!reply) {
			json_decref(req);
			return EXIT_UNREACHABLE;
		}
		v = json_object_get(reply, "vdisk");
		p = json_object_get(v, "progress");
		if (json_object_get(reply, "error") || !json_is_object(v) ||
		    (strcmp(str_of(v, "state"), "cloning") &&
		     (json_is_true(json_object_get(v, "exported")) ||
		      ++ready_polls * WAIT_POLL_MS >= REPLY_TIMEOUT_S * 1000))) {
			json_decref(req);
			*last = reply;
			if (json_object_get(reply, "error"))
				return EXIT_DAEMON_ERROR;
			if (!strcmp(str_of(v, "state"), "ready"))
				return json_is_true(json_object_get(v, "exported"))
					       ? EXIT_OK
					       : EXIT_NOT_APPLIED;
			return EXIT_DAEMON_ERROR;
		}
		if (json_is_object(p)) {
			pct = (int)json_number_value(json_object_get(p, "percent"));
			if (!quiet && pct != shown)
				fprintf(stderr, "cloning %s: %s of %s (%d%%)\n", id,
					size_of(p, "done", b1, sizeof(b1)),
					size_of(p, "total", b2, sizeof(b2)), pct);
			shown = pct;
		}
		json_decref(reply);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},	  {"socket", required_argument, NULL, 's'},
		{"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
		{"ttl", required_argument, NULL, 't'},	  {"epoch", required_argument, NULL, 'e'},
		{"alert", required_argument, NULL, 'a'},  {"wait", no_argument, NULL, 'w'},
		{"rate", required_argument, NULL, 'r'},	  {"device", required_argument, NULL, 'D'},
		{"format", required_argument, NULL, 'F'}, {0},
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
		case 't': {
			char *end;

			errno = 0;
			opt_ttl = strtoll(optarg, &end, 10);
			if (optarg[0] < '0' || optarg[0] > '9' || *end || errno || opt_ttl < 1 ||
			    opt_ttl > 30 * 24 * 3600) {
				fprintf(stderr, "holdfastctl: --ttl takes 1..2592000 seconds\n");
				return EXIT_USAGE;
			}
			break;
		}
		case 'e':
		case 'a': {
			char *end;
			long long v;

			errno = 0;
			v = strtoll(optarg, &end, 10);
			if (optarg[0] < '0' || optarg[0] > '9' || *end || errno ||
			    (c == 'a' && v > 100)) {
				fprintf(stderr, "holdfastctl: %s takes %s\n",
					c == 'e' ? "--epoch" : "--alert",
					c == 'e' ? "an epoch number" : "a percentage 0..100");
				return EXIT_USAGE;
			}
			if (c == 'e')
				opt_epoch = v;
			else
				opt_alert = v;
			break;
		}
		case 'w':
			opt_wait = true;
			break;
		case 'D':
			opt_device = optarg;
			break;
		case 'F':
			if (strcmp(optarg, "xfs") != 0 && strcmp(optarg, "ext4") != 0) {
				fprintf(stderr, "holdfastctl: --format takes xfs or ext4\n");
				return EXIT_USAGE;
			}
			opt_format = optarg;
			break;
		case 'r':
			if (parse_size(optarg, &opt_rate) || opt_rate == 0) {
				fprintf(stderr, "holdfastctl: --rate takes bytes a second (e.g. "
						"100M)\n");
				return EXIT_USAGE;
			}
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
	if (e && !strcmp(str_of(reply, "code"), "not_applied"))
		rc = EXIT_NOT_APPLIED;
	if (!e && opt_wait && !strcmp(cmd, "vdisk_clone")) {
		json_t *last;
		char id[64];

		snprintf(id, sizeof(id), "%s", str_of(json_object_get(reply, "vdisk"), "id"));
		if (!json)
			print_vdisk_reply(cmd, reply);
		json_decref(reply);
		rc = wait_clone(sock, id, json, &last);
		if (!last)
			return rc;
		reply = last;
		e = json_object_get(reply, "error");
		cmd = "vdisk_show";
	}
	if (json) {
		json_dumpf(reply, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
	} else if (rc == EXIT_NOT_APPLIED && json_object_get(reply, "vdisk")) {
		/* The change stands: show the disk as the catalog has it, then why it is not at
		 * the target yet. */
		print_vdisk_row(json_object_get(reply, "vdisk"), true);
		fprintf(stderr, "holdfastctl: not applied yet: %s\n",
			json_is_string(e) ? json_string_value(e)
					  : "the target has not taken the disk yet; retried");
	} else if (e) {
		fprintf(stderr, "holdfastctl: %s\n",
			json_is_string(e) ? json_string_value(e) : "the daemon reported an error");
	} else if (!strncmp(cmd, "pool_", 5)) {
		print_pool_reply(cmd, reply);
	} else if (!strcmp(cmd, "vdisk_access")) {
		print_vdisk_access(reply);
	} else if (!strcmp(cmd, "host_portals")) {
		print_host_portals(reply);
	} else if (!strncmp(cmd, "vdisk_", 6)) {
		print_vdisk_reply(cmd, reply);
	} else if (!strcmp(cmd, "targets")) {
		print_targets(reply);
	} else if (!strcmp(cmd, "luns")) {
		print_luns(reply);
	} else if (!strcmp(cmd, "pr_show")) {
		print_pr_show(reply);
	} else if (!strcmp(cmd, "pr_clear")) {
		print_pr_clear(reply);
	} else if (!strcmp(cmd, "cluster_token_create")) {
		print_token(reply);
	} else if (!strcmp(cmd, "cluster_status")) {
		print_cluster_status(reply);
	} else if (!strcmp(cmd, "cluster_host_remove")) {
		print_host_remove(reply);
	} else {
		print_sessions(reply);
	}
	json_decref(reply);
	return rc;
}
