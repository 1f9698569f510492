/* holdfast-agent: the thin daemon on each KVM host. `join` enrols the host with the box's
 * coordinator; `run` keeps its lease with heartbeats and fences the host (kills its VMs) before
 * the lease can run out on the box, and rejoins under a new epoch after a fence. docs/agent.md
 * describes the commands, the state folder, the exit codes and the log lines. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent_args.h"
#include "agent/agent_fence.h"
#include "agent/agent_lease.h"
#include "agent/agent_link.h"
#include "agent/agent_state.h"
#include "agent/agent_timing.h"
#include "agent/agent_vdisk.h"
#include "csv-coord/agent_proto.h"
#include "csv-coord/ca.h"
#include "csv-coord/lease.h"
#include "lib/log.h"
#include "lib/tls.h"

/* Exit codes (docs/agent.md, "Exit codes"). */
enum {
	EX_OK = 0,
	EX_USAGE = 2,
	EX_NETWORK = 3,
	EX_TLS = 4,
	EX_TOKEN_INVALID = 5,
	EX_TOKEN_EXPIRED = 6,
	EX_TOKEN_USED = 7,
	EX_REFUSED = 8,
	EX_LOCAL = 9,
};

#define SOFTWARE	"holdfast-agent 1"
#define JOIN_TIMEOUT_MS 10000
#define NS_PER_MS	((int64_t)1000000)
#define BACKOFF_MIN_NS	(100 * NS_PER_MS)

static int64_t clock_ns(void)
{
	struct timespec ts;

	/* coordinator-timing.md A4: CLOCK_BOOTTIME keeps counting while the host is suspended,
	 * so a host that wakes up late sees its deadline passed before it does anything else. */
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: holdfast-agent join BOX_ADDR:JOIN_PORT TOKEN --ca-sha256 HEX --name HOST\n"
		"                           --initiator IQN [--initiator IQN ...] --state-dir DIR\n"
		"                           [--box ADDR:AGENT_PORT] [-v]\n"
		"       holdfast-agent run --state-dir DIR [--box ADDR:AGENT_PORT]\n"
		"                          [--heartbeat-ms MS] [--miss-threshold M]\n"
		"                          [--fence-action kill-qemu|exec:COMMAND|watchdog[:DEV]]\n"
		"                          [--vm-pidfile FILE ...] [-v]\n"
		"       holdfast-agent vdisk list [--pool POOL]              --state-dir DIR "
		"[--box "
		"ADDR:PORT]\n"
		"       holdfast-agent vdisk create POOL NAME SIZE [--vm VM] --state-dir DIR "
		"[--json]\n"
		"       holdfast-agent vdisk extend ID SIZE --epoch N        --state-dir DIR "
		"[--json]\n"
		"       holdfast-agent vdisk attach|detach|delete ID --epoch N --state-dir DIR "
		"[--json]\n"
		"       holdfast-agent vdisk transfer ID HOST --epoch N      --state-dir DIR "
		"[--json]\n"
		"       holdfast-agent vdisk clone ID NAME --epoch N, pool add NAME PATH, pool "
		"remove "
		"NAME\n"
		"                          (the administrator's: the box refuses them as "
		"forbidden)\n");
}

static int make_dir(const char *dir)
{
	char path[PATH_MAX];
	size_t i;

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	for (i = 1; path[i]; i++) {
		if (path[i] != '/')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0755) && errno != EEXIST)
			return -errno;
		path[i] = '/';
	}
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static void read_boot_id(char out[40])
{
	char buf[64];
	ssize_t n;
	int fd, i;

	snprintf(out, 40, "unknown");
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (i = 0; i < 39 && buf[i] > 0x20 && buf[i] < 0x7f; i++)
		out[i] = buf[i];
	out[i] = '\0';
	if (i == 0)
		snprintf(out, 40, "unknown");
}

/* HELLO, then wait for HELLO_ACK and take the version it chose; *agreed (may be NULL) gets
 * the capabilities both sides have. */
static int hello_sync(struct agent_link *l, uint64_t caps, uint64_t *agreed)
{
	struct agent_msg m = {0};
	int err;

	m.type = AGENT_MSG_HELLO;
	m.u.hello.version_min = AGENT_PROTO_VERSION_MIN;
	m.u.hello.version_max = AGENT_PROTO_VERSION_MAX;
	m.u.hello.caps = caps;
	m.u.hello.role = AGENT_ROLE_AGENT;
	snprintf(m.u.hello.software, sizeof(m.u.hello.software), "%s", SOFTWARE);
	err = agent_link_send(l, &m);
	if (err)
		return err;
	err = agent_link_wait_msg(l, &m, JOIN_TIMEOUT_MS);
	if (err < 0)
		return err;
	if (m.type == AGENT_MSG_ERROR) {
		fprintf(stderr, "holdfast-agent: the box refused HELLO: %s%s%s\n",
			agent_proto_strerror(m.u.error.code), m.u.error.text[0] ? ": " : "",
			m.u.error.text);
		return -EPROTO;
	}
	if (m.type != AGENT_MSG_HELLO_ACK || m.u.hello_ack.version < AGENT_PROTO_VERSION_MIN ||
	    m.u.hello_ack.version > AGENT_PROTO_VERSION_MAX)
		return -EPROTO;
	l->version = m.u.hello_ack.version;
	if (agreed)
		*agreed = m.u.hello_ack.agreed_caps;
	return 0;
}

/* --- join ------------------------------------------------------------------------------- */

static int join_exit_for_link_error(const struct agent_link *l, int err)
{
	/* A failure before the TCP connection stood is the network's; during the handshake it
	 * is TLS's (a wrong pin, a refused certificate). */
	if (err == -ETIMEDOUT || err == -EHOSTUNREACH || err == -ENETUNREACH)
		return EX_NETWORK;
	if (l->state == AGENT_LINK_CONNECTING || l->state == AGENT_LINK_IDLE)
		return EX_NETWORK;
	if (l->state == AGENT_LINK_HANDSHAKE)
		return EX_TLS;
	return EX_NETWORK;
}

static int cmd_join(int argc, char **argv)
{
	static const struct option opts[] = {
		{"ca-sha256", required_argument, NULL, 'c'},
		{"name", required_argument, NULL, 'n'},
		{"initiator", required_argument, NULL, 'i'},
		{"state-dir", required_argument, NULL, 'd'},
		{"box", required_argument, NULL, 'b'},
		{"verbose", no_argument, NULL, 'v'},
		{NULL, 0, NULL, 0},
	};
	const char *pin_hex = NULL, *name = NULL, *dir = NULL, *box = NULL;
	const char *iqns[AGENT_MAX_IQNS];
	unsigned n_iqn = 0, i;
	char host[AGENT_ARGS_HOST_MAX + 1], tmp[AGENT_ARGS_HOST_MAX + 1], box_cn[TLS_CN_MAX];
	uint8_t pin[TLS_FINGERPRINT_LEN], fp[TLS_FINGERPRINT_LEN];
	struct agent_msg m = {0};
	struct agent_state st = {0};
	struct agent_link *link = NULL;
	struct tls_config *cfg = NULL;
	char *key = NULL, *csr = NULL, path[PATH_MAX];
	size_t key_len = 0, csr_len = 0;
	uint16_t port, tport;
	int c, err, ret = EX_LOCAL;

	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			pin_hex = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'i':
			if (n_iqn == AGENT_MAX_IQNS) {
				fprintf(stderr, "holdfast-agent: at most %d --initiator\n",
					AGENT_MAX_IQNS);
				return EX_USAGE;
			}
			iqns[n_iqn++] = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'b':
			box = optarg;
			break;
		case 'v':
			log_init("holdfast-agent", LOG_LVL_DEBUG, 0);
			break;
		default:
			usage();
			return EX_USAGE;
		}
	}
	if (argc - optind != 2 || !pin_hex || !name || !dir || !n_iqn) {
		usage();
		return EX_USAGE;
	}
	if (agent_args_hostport(argv[optind], host, &port)) {
		fprintf(stderr, "holdfast-agent: bad box address '%s' (HOST:PORT)\n", argv[optind]);
		return EX_USAGE;
	}
	if (box && agent_args_hostport(box, tmp, &tport)) {
		fprintf(stderr, "holdfast-agent: bad --box '%s' (HOST:PORT)\n", box);
		return EX_USAGE;
	}
	if (agent_args_token(argv[optind + 1], m.u.join_req.token_id, m.u.join_req.secret,
			     &m.u.join_req.secret_len)) {
		fprintf(stderr,
			"holdfast-agent: the token is not of the form hfj1.<id>.<secret>\n");
		return EX_USAGE;
	}
	if (agent_args_fingerprint(pin_hex, pin)) {
		fprintf(stderr, "holdfast-agent: --ca-sha256 needs 64 hex digits\n");
		return EX_USAGE;
	}
	if (!ca_name_valid(name)) {
		fprintf(stderr,
			"holdfast-agent: bad host name '%s' (1-63 letters, digits, '-', "
			"'.')\n",
			name);
		return EX_USAGE;
	}
	for (i = 0; i < n_iqn; i++) {
		size_t len = strlen(iqns[i]);

		if (len < 5 || len > AGENT_IQN_MAX ||
		    (strncmp(iqns[i], "iqn.", 4) && strncmp(iqns[i], "eui.", 4) &&
		     strncmp(iqns[i], "naa.", 4))) {
			fprintf(stderr, "holdfast-agent: bad initiator name '%s'\n", iqns[i]);
			return EX_USAGE;
		}
		snprintf(m.u.join_req.iqn[i], sizeof(m.u.join_req.iqn[i]), "%s", iqns[i]);
	}
	m.u.join_req.n_iqn = n_iqn;
	snprintf(m.u.join_req.host_name, sizeof(m.u.join_req.host_name), "%s", name);

	/* Joining twice over one state folder would throw away the key the box knows. */
	if (agent_state_load(dir, &st) == 0) {
		fprintf(stderr,
			"holdfast-agent: %s already holds a joined host (%s, id %" PRIu32
			"); use another folder or remove it\n",
			dir, st.name, st.host_id);
		return EX_USAGE;
	}
	err = make_dir(dir);
	if (err) {
		fprintf(stderr, "holdfast-agent: %s: %s\n", dir, strerror(-err));
		return EX_LOCAL;
	}

	err = ca_make_csr(name, &key, &key_len, &csr, &csr_len);
	if (err) {
		fprintf(stderr, "holdfast-agent: cannot make a key: %s\n", strerror(-err));
		return EX_LOCAL;
	}
	m.u.join_req.csr_pem.p = (const uint8_t *)csr;
	m.u.join_req.csr_pem.len = csr_len;

	link = malloc(sizeof(*link));
	if (!link)
		goto out;
	agent_link_init(link);
	err = tls_config_new(&cfg, TLS_ROLE_CLIENT);
	if (!err)
		err = tls_config_pin_ca(cfg, pin);
	if (err) {
		fprintf(stderr, "holdfast-agent: TLS setup: %s\n", strerror(-err));
		goto out;
	}
	err = agent_link_open(link, cfg, host, port, NULL);
	if (!err)
		err = agent_link_wait_up(link, JOIN_TIMEOUT_MS);
	if (err) {
		ret = join_exit_for_link_error(link, err);
		fprintf(stderr, "holdfast-agent: %s %s:%u: %s\n",
			ret == EX_TLS ? "TLS handshake with" : "cannot reach", host, (unsigned)port,
			strerror(-err));
		goto out;
	}
	if (tls_conn_peer_cn(link->tls, box_cn, sizeof(box_cn))) {
		fprintf(stderr, "holdfast-agent: the box's certificate carries no usable name\n");
		ret = EX_TLS;
		goto out;
	}
	err = hello_sync(link, AGENT_CAP_LEASE, NULL);
	if (err) {
		ret = err == -EPROTO ? EX_REFUSED : EX_NETWORK;
		if (err != -EPROTO)
			fprintf(stderr, "holdfast-agent: HELLO: %s\n", strerror(-err));
		goto out;
	}
	m.type = AGENT_MSG_JOIN_REQUEST;
	err = agent_link_send(link, &m);
	if (!err)
		err = agent_link_wait_msg(link, &m, JOIN_TIMEOUT_MS);
	if (err < 0) {
		fprintf(stderr, "holdfast-agent: join: %s\n", strerror(-err));
		ret = EX_NETWORK;
		goto out;
	}
	if (m.type == AGENT_MSG_ERROR) {
		fprintf(stderr, "holdfast-agent: join refused: %s%s%s\n",
			agent_proto_strerror(m.u.error.code), m.u.error.text[0] ? ": " : "",
			m.u.error.text);
		switch (m.u.error.code) {
		case AGENT_E_TOKEN_INVALID:
			ret = EX_TOKEN_INVALID;
			break;
		case AGENT_E_TOKEN_EXPIRED:
			ret = EX_TOKEN_EXPIRED;
			break;
		case AGENT_E_TOKEN_USED:
			ret = EX_TOKEN_USED;
			break;
		default:
			ret = EX_REFUSED;
			break;
		}
		goto out;
	}
	if (m.type != AGENT_MSG_JOIN_RESPONSE) {
		fprintf(stderr, "holdfast-agent: join: unexpected %s from the box\n",
			agent_proto_type_name(m.type));
		ret = EX_REFUSED;
		goto out;
	}
	/* coordinator-security.md step 7: the CA the box hands over must be the one pinned. */
	if (tls_pem_fingerprint((const char *)m.u.join_resp.ca_pem.p, m.u.join_resp.ca_pem.len,
				fp) ||
	    memcmp(fp, pin, sizeof(fp))) {
		fprintf(stderr, "holdfast-agent: the CA in the join response is not the pinned "
				"one\n");
		ret = EX_TLS;
		goto out;
	}
	/* The key first: a certificate without its key is useless, a key without a certificate
	 * is only a failed join. The state file last: it is what says "joined". */
	err = agent_state_write_file(dir, AGENT_STATE_KEY_FILE, key, key_len, 0600);
	if (!err)
		err = agent_state_write_file(dir, AGENT_STATE_CERT_FILE, m.u.join_resp.cert_pem.p,
					     m.u.join_resp.cert_pem.len, 0644);
	if (!err)
		err = agent_state_write_file(dir, AGENT_STATE_CA_FILE, m.u.join_resp.ca_pem.p,
					     m.u.join_resp.ca_pem.len, 0644);
	st.host_id = m.u.join_resp.host_id;
	st.epoch = m.u.join_resp.epoch;
	snprintf(st.name, sizeof(st.name), "%s", name);
	snprintf(st.box_name, sizeof(st.box_name), "%s", box_cn);
	/* The agent port: --box, else the join address's host with the port the box announces
	 * (an older box does not: then run and the vdisk commands need --box). */
	if (box)
		snprintf(st.box_addr, sizeof(st.box_addr), "%s", box);
	else if (m.u.join_resp.agent_port)
		snprintf(st.box_addr, sizeof(st.box_addr), strchr(host, ':') ? "[%s]:%u" : "%s:%u",
			 host, (unsigned)m.u.join_resp.agent_port);
	/* The box's lease timing, so that the first run knows it before it reaches the box. */
	if (agent_timing_announced(&m.u.join_resp.timing))
		st.timing = m.u.join_resp.timing;
	if (!err)
		err = agent_state_save(dir, &st);
	if (err) {
		snprintf(path, sizeof(path), "%s", dir);
		fprintf(stderr, "holdfast-agent: joined, but cannot store the state in %s: %s\n",
			path, strerror(-err));
		goto out;
	}
	tls_conn_close_notify(link->tls);
	printf("joined as host %s (host id %" PRIu32 ", epoch %" PRIu64 ") with box %s; state "
	       "in %s\n",
	       name, st.host_id, st.epoch, box_cn, dir);
	if (st.box_addr[0])
		printf("box agent address %s stored: run and vdisk need no --box\n", st.box_addr);
	else
		printf("the box did not announce its agent port: give run and vdisk --box "
		       "ADDR:AGENT_PORT\n");
	ret = EX_OK;
out:
	if (link) {
		agent_link_close(link);
		free(link);
	}
	if (cfg)
		tls_config_free(cfg);
	if (key) {
		explicit_bzero(key, key_len);
		free(key);
	}
	free(csr);
	return ret;
}

/* --- run -------------------------------------------------------------------------------- */

enum phase {
	PH_DOWN = 0,	/* no connection; reconnect at reconnect_at */
	PH_LINKING = 1, /* TCP and TLS under way */
	PH_HELLO = 2,	/* HELLO sent */
	PH_UP = 3,	/* heartbeats (or REJOIN) flow */
};

struct run {
	const char *dir;
	char host[AGENT_ARGS_HOST_MAX + 1];
	uint16_t port;
	struct agent_state st;
	struct agent_timing_override ovr; /* --heartbeat-ms, --miss-threshold (0: not given) */
	struct agent_timing timing;	  /* what the agent uses (agent_timing.h) */
	bool timing_from_box;		  /* timing is what the box announced on this run */
	bool timing_old_box_warned;
	struct agent_lease_ctl lease;
	struct agent_fence fence;
	struct tls_config *tls;
	struct agent_link *link;
	enum phase phase;
	int64_t phase_deadline; /* LINKING/HELLO must finish by then */
	int64_t reconnect_at;
	int64_t backoff_ns;
	int64_t rejoin_at;  /* the next REJOIN may be sent then */
	uint32_t rejoin_id; /* request id of the REJOIN in flight, 0: none */
	int64_t rejoin_send_ns;
	uint64_t told_fenced_epoch; /* "fenced by the box" was logged for this epoch */
	char boot_id[40];
	int lease_fd; /* DIR/lease, the hint kept across restarts */
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	if (sig == SIGTERM || sig == SIGINT)
		stop_requested = 1;
}

static int64_t link_timeout_ns(const struct run *r)
{
	int64_t t = 2 * r->timing.heartbeat_ns;

	if (t < LEASE_NS_PER_S)
		t = LEASE_NS_PER_S;
	if (t > 10 * LEASE_NS_PER_S)
		t = 10 * LEASE_NS_PER_S;
	return t;
}

static int64_t backoff_max_ns(const struct run *r)
{
	/* Reconnecting at least every H keeps a short outage from costing the lease. */
	int64_t t = r->timing.heartbeat_ns;

	return t < BACKOFF_MIN_NS ? BACKOFF_MIN_NS : t;
}

static void link_down(struct run *r, int64_t now, const char *why)
{
	if (r->phase == PH_UP)
		log_warnx("disconnected from the box %s:%u: %s", r->host, (unsigned)r->port, why);
	else
		log_debug("%s: %s:%u: %s", __func__, r->host, (unsigned)r->port, why);
	agent_link_close(r->link);
	r->phase = PH_DOWN;
	r->rejoin_id = 0;
	r->reconnect_at = now + r->backoff_ns;
	r->backoff_ns *= 2;
	if (r->backoff_ns > backoff_max_ns(r))
		r->backoff_ns = backoff_max_ns(r);
}

static void save_hint(struct run *r)
{
	struct agent_lease_hint h;
	char buf[128];
	int n;

	if (r->lease_fd < 0)
		return;
	snprintf(h.boot_id, sizeof(h.boot_id), "%s", r->boot_id);
	h.epoch = r->st.epoch;
	h.send_ns = agent_lease_acked_send(&r->lease);
	n = agent_lease_hint_format(&h, buf, sizeof(buf));
	/* Not durable on purpose: the hint only means something within this boot, and the page
	 * cache outlives the agent. Padding the line keeps its length fixed, so an overwrite in
	 * place never leaves a tail of an older, longer one. */
	if (n > 0 && n < 100) {
		memset(buf + n - 1, ' ', 100 - n);
		buf[99] = '\n';
		if (pwrite(r->lease_fd, buf, 100, 0) != 100)
			log_debug("%s: %s", __func__, strerror(errno));
	}
}

static bool load_hint(struct run *r, int64_t *send_ns)
{
	struct agent_lease_hint h;
	char buf[128];
	ssize_t n;

	if (r->lease_fd < 0)
		return false;
	n = pread(r->lease_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return false;
	if (agent_lease_hint_parse(buf, (size_t)n, &h))
		return false;
	if (strcmp(h.boot_id, r->boot_id) || h.epoch != r->st.epoch)
		return false;
	*send_ns = h.send_ns;
	return true;
}

static void run_fence(struct run *r)
{
	int err;

	err = agent_fence_run(&r->fence);
	if (err)
		log_warnx("fence action failed: %s; the box fences this host at the target",
			  strerror(-err));
	log_info("fence action done");
	agent_lease_fence_done(&r->lease);
	r->rejoin_at = 0;
}

static void send_rejoin(struct run *r, int64_t now)
{
	struct agent_msg m = {0};
	int err;

	m.type = AGENT_MSG_REJOIN;
	m.u.rejoin.host_id = r->st.host_id;
	m.u.rejoin.epoch = r->st.epoch;
	m.u.rejoin.new_epoch = r->st.epoch + 1;
	err = agent_link_send(r->link, &m);
	if (err) {
		link_down(r, now, strerror(-err));
		return;
	}
	r->rejoin_id = m.request_id;
	r->rejoin_send_ns = now;
	/* Until REJOIN_ACK or a refusal, do not send another. */
	r->rejoin_at = INT64_MAX;
	log_info("rejoin requested: epoch %" PRIu64 " -> %" PRIu64, r->st.epoch, r->st.epoch + 1);
}

static void box_fenced(struct run *r, uint64_t epoch, const char *why)
{
	if (!agent_lease_box_fenced(&r->lease, epoch)) {
		log_debug("%s: old epoch %" PRIu64 " (ours %" PRIu64 ")", __func__, epoch,
			  r->st.epoch);
		return;
	}
	if (r->told_fenced_epoch != epoch) {
		log_warnx("fenced by the box (epoch %" PRIu64 ")%s%s", epoch, why ? ": " : "",
			  why ? why : "");
		r->told_fenced_epoch = epoch;
	}
	if (agent_lease_fence_pending(&r->lease))
		run_fence(r);
}

static void send_heartbeat(struct run *r, int64_t now)
{
	struct agent_msg m = {0};
	uint64_t seq, lease_ns;
	int err;

	if (agent_lease_sent(&r->lease, now, &seq, &lease_ns))
		return;
	m.type = AGENT_MSG_HEARTBEAT;
	m.u.hb.host_id = r->st.host_id;
	m.u.hb.epoch = r->st.epoch;
	m.u.hb.seq = seq;
	m.u.hb.send_ns = (uint64_t)now;
	m.u.hb.lease_ns = lease_ns;
	err = agent_link_send(r->link, &m);
	if (err == -ENOBUFS) {
		log_debug("heartbeat %" PRIu64 " dropped: the box is not reading", seq);
		return;
	}
	if (err) {
		link_down(r, now, strerror(-err));
		return;
	}
	log_debug("heartbeat %" PRIu64 " sent, lease %" PRIu64 " ms", seq, lease_ns / NS_PER_MS);
}

/* What the clock says must happen, checked first whenever the agent wakes. */
static void check_lease(struct run *r, int64_t now)
{
	switch (agent_lease_poll(&r->lease, now, r->phase == PH_UP && !r->rejoin_id)) {
	case AGENT_LEASE_FENCE:
		log_warnx("self-fence: no lease ack for %" PRId64 " ms, deadline in %" PRId64
			  " ms: running fence action",
			  (now - agent_lease_acked_send(&r->lease)) / NS_PER_MS,
			  (agent_lease_box_expiry(&r->lease) - now) / NS_PER_MS);
		run_fence(r);
		break;
	case AGENT_LEASE_SEND:
		send_heartbeat(r, now);
		break;
	case AGENT_LEASE_IDLE:
		break;
	default:
		break;
	}
}

static void send_hello(struct run *r, int64_t now)
{
	struct agent_msg m = {0};
	int err;

	m.type = AGENT_MSG_HELLO;
	m.u.hello.version_min = AGENT_PROTO_VERSION_MIN;
	m.u.hello.version_max = AGENT_PROTO_VERSION_MAX;
	m.u.hello.caps = AGENT_CAP_LEASE;
	if (r->fence.spec.kind == AGENT_FENCE_WATCHDOG)
		m.u.hello.caps |= AGENT_CAP_WATCHDOG;
	m.u.hello.role = AGENT_ROLE_AGENT;
	snprintf(m.u.hello.software, sizeof(m.u.hello.software), "%s", SOFTWARE);
	err = agent_link_send(r->link, &m);
	if (err) {
		link_down(r, now, strerror(-err));
		return;
	}
	r->phase = PH_HELLO;
}

static void reply_error(struct run *r, uint32_t id, enum agent_err code, uint8_t type,
			const char *text)
{
	struct agent_msg e;

	agent_proto_make_error(&e, id, code, type, text);
	agent_link_send(r->link, &e);
}

static void on_rejoin_ack(struct run *r, const struct agent_rejoin_ack *a, int64_t now)
{
	struct agent_state next = r->st;
	int err;

	if (a->epoch != r->st.epoch + 1 || a->host_id != r->st.host_id) {
		log_warnx("%s: the box granted epoch %" PRIu64 " to host %" PRIu32
			  ", expected %" PRIu64 " for %" PRIu32,
			  __func__, a->epoch, a->host_id, r->st.epoch + 1, r->st.host_id);
		link_down(r, now, "bad REJOIN_ACK");
		return;
	}
	/* The box grants a rejoin only to a host it has fenced: say so, when no FENCED notice
	 * reached us (the agent fenced itself first, or the notice was lost with the link). */
	if (r->told_fenced_epoch != r->st.epoch) {
		log_warnx("fenced by the box (epoch %" PRIu64 "): confirmed by its REJOIN_ACK",
			  r->st.epoch);
		r->told_fenced_epoch = r->st.epoch;
	}
	/* Persist before acting on it: an agent that restarts must claim the new epoch. */
	next.epoch = a->epoch;
	err = agent_state_save(r->dir, &next);
	if (err) {
		log_warnx("%s: cannot store epoch %" PRIu64 ": %s", __func__, a->epoch,
			  strerror(-err));
		link_down(r, now, "state not stored");
		return;
	}
	r->st = next;
	r->rejoin_id = 0;
	agent_lease_begin(&r->lease, &r->timing, r->st.epoch, r->rejoin_send_ns);
	log_info("rejoined with epoch %" PRIu64, r->st.epoch);
	check_lease(r, now);
}

static void on_error(struct run *r, const struct agent_msg *m, int64_t now)
{
	const struct agent_error *e = &m->u.error;

	if (r->rejoin_id && m->request_id == r->rejoin_id) {
		r->rejoin_id = 0;
		switch (e->code) {
		case AGENT_E_NOT_FENCED:
		case AGENT_E_FENCE_PENDING:
		case AGENT_E_BUSY:
		case AGENT_E_INTERNAL:
			/* The box has not declared us lost yet (we fenced first), or it is still
			 * fencing at the target: ask again a heartbeat later. */
			log_info("rejoin not yet: %s", agent_proto_strerror(e->code));
			r->rejoin_at = now + r->timing.heartbeat_ns;
			return;
		default:
			log_warnx("rejoin refused: %s%s%s", agent_proto_strerror(e->code),
				  e->text[0] ? ": " : "", e->text);
			r->rejoin_at = now + 10 * r->timing.heartbeat_ns;
			return;
		}
	}
	switch (e->code) {
	case AGENT_E_FENCED:
		box_fenced(r, r->st.epoch, e->text[0] ? e->text : NULL);
		return;
	case AGENT_E_STALE_EPOCH:
		/* The box holds another epoch than ours: it fenced us under it, or a rejoin it
		 * granted was never stored here. Either way our writes are not wanted. */
		box_fenced(r, r->st.epoch, "stale epoch");
		return;
	case AGENT_E_STALE_SEQ:
		log_debug("heartbeat refused as stale");
		return;
	default:
		log_warnx("the box sent %s%s%s (to %s)", agent_proto_strerror(e->code),
			  e->text[0] ? ": " : "", e->text, agent_proto_type_name(e->ref_type));
		if (e->code == AGENT_E_NOT_ENROLLED || e->code == AGENT_E_UNKNOWN_HOST)
			link_down(r, now, "the box does not know this host");
		return;
	}
}

static bool same_box_timing(const struct agent_lease_timing *a, const struct agent_lease_timing *b)
{
	return a->heartbeat_ns == b->heartbeat_ns && a->miss == b->miss &&
	       a->lease_timeout_ns == b->lease_timeout_ns && a->skew_ppm == b->skew_ppm;
}

static void warn_ignored(const struct run *r, const struct agent_timing *t, bool at_start)
{
	if (t->ignored & AGENT_TIMING_IGNORED_HEARTBEAT)
		log_warnx("--heartbeat-ms %lld is above the box's heartbeat interval (%lld ms): "
			  "%s",
			  (long long)(r->ovr.heartbeat_ns / NS_PER_MS),
			  (long long)(t->box.heartbeat_ns / NS_PER_MS),
			  at_start ? "refused" : "ignored");
	if (t->ignored & AGENT_TIMING_IGNORED_FENCE)
		log_warnx("--heartbeat-ms/--miss-threshold would self-fence later than the box's "
			  "timing allows (%lld ms after the last acknowledged heartbeat): %s",
			  (long long)(t->fence_after_ns / NS_PER_MS),
			  at_start ? "refused" : "ignored");
}

/* The box announced its lease timing at HELLO_ACK: take it (docs/agent.md, "Lease timing").
 * false: the connection cannot carry a lease. */
static bool adopt_timing(struct run *r, const struct agent_lease_timing *bt)
{
	struct agent_timing t;
	char why[160], desc[200];
	bool changed;
	int err;

	if (!agent_timing_announced(bt)) {
		if (bt->heartbeat_ns || bt->miss || bt->lease_timeout_ns || bt->skew_ppm) {
			log_warnx("the box announced an incomplete lease timing");
			return false;
		}
		if (!r->timing_old_box_warned) {
			agent_timing_describe(&r->timing, desc, sizeof(desc));
			log_warnx("the box does not announce its lease timing (older firmware): "
				  "keeping %s; --heartbeat-ms and --miss-threshold must match the "
				  "box's cluster settings",
				  desc);
			r->timing_old_box_warned = true;
		}
		return true;
	}
	if (agent_timing_decide(bt, &r->ovr, &t, why, sizeof(why))) {
		log_warnx("the box's lease timing cannot carry a lease: %s (H %" PRIu64
			  " ns, M %u, lease %" PRIu64 " ns, rho %" PRIu32 " ppm)",
			  why, bt->heartbeat_ns, (unsigned)bt->miss, bt->lease_timeout_ns,
			  bt->skew_ppm);
		return false;
	}
	changed = !r->timing_from_box || t.heartbeat_ns != r->timing.heartbeat_ns ||
		  t.fence_after_ns != r->timing.fence_after_ns ||
		  !same_box_timing(&t.box, &r->timing.box);
	if (changed) {
		warn_ignored(r, &t, false);
		agent_timing_describe(&t, desc, sizeof(desc));
		log_info("lease timing from the box: %s%s", desc,
			 t.overridden ? " (made stricter by the command line)" : "");
	}
	/* Stored for the next start, which needs it before it reaches the box. A failure only
	 * costs that: this run uses the new timing at once. */
	if (!same_box_timing(bt, &r->st.timing)) {
		struct agent_state next = r->st;

		next.timing = *bt;
		err = agent_state_save(r->dir, &next);
		if (err)
			log_warnx("cannot store the box's lease timing in %s: %s", r->dir,
				  strerror(-err));
		else
			r->st = next;
	}
	r->timing = t;
	r->timing_from_box = true;
	agent_lease_set_timing(&r->lease, &t);
	r->fence.budget_ns = t.fence_budget_ns;
	return true;
}

static void on_message(struct run *r, const struct agent_msg *m, int64_t now)
{
	bool first;
	int err;

	if (r->phase == PH_HELLO) {
		if (m->type == AGENT_MSG_HELLO_ACK &&
		    m->u.hello_ack.version >= AGENT_PROTO_VERSION_MIN &&
		    m->u.hello_ack.version <= AGENT_PROTO_VERSION_MAX &&
		    (m->u.hello_ack.agreed_caps & AGENT_CAP_LEASE)) {
			if (!adopt_timing(r, &m->u.hello_ack.timing)) {
				link_down(r, now, "unusable lease timing");
				return;
			}
			r->link->version = m->u.hello_ack.version;
			r->phase = PH_UP;
			r->backoff_ns = BACKOFF_MIN_NS;
			r->lease.next_hb_ns = now;
			r->rejoin_at = 0;
			log_info("connected to the box %s:%u (%s), epoch %" PRIu64, r->host,
				 (unsigned)r->port, r->st.box_name, r->st.epoch);
			return;
		}
		if (m->type == AGENT_MSG_ERROR)
			log_warnx("the box refused HELLO: %s",
				  agent_proto_strerror(m->u.error.code));
		link_down(r, now, "no HELLO_ACK");
		return;
	}
	switch (m->type) {
	case AGENT_MSG_HEARTBEAT_ACK:
		if (m->u.hb_ack.host_id != r->st.host_id)
			return;
		err = agent_lease_ack(&r->lease, m->u.hb_ack.epoch, m->u.hb_ack.seq,
				      m->u.hb_ack.fenced, now, &first);
		if (err == 0) {
			if (first)
				log_info("lease ok (epoch %" PRIu64 ", %s)", r->st.epoch,
					 m->u.hb_ack.quorate ? "quorate" : "not quorate");
			save_hint(r);
			agent_fence_watchdog_pet(&r->fence,
						 agent_lease_watchdog_timeout_s(&r->lease, now));
		} else if (err == -EPERM && m->u.hb_ack.fenced &&
			   m->u.hb_ack.epoch == r->st.epoch) {
			box_fenced(r, m->u.hb_ack.epoch, NULL);
		}
		return;
	case AGENT_MSG_FENCED:
		if (m->u.fenced.host_id != r->st.host_id)
			return;
		box_fenced(r, m->u.fenced.epoch, agent_proto_strerror(m->u.fenced.reason));
		return;
	case AGENT_MSG_REJOIN_ACK:
		if (!r->rejoin_id || m->request_id != r->rejoin_id) {
			log_warnx("unexpected REJOIN_ACK");
			return;
		}
		on_rejoin_ack(r, &m->u.rejoin_ack, now);
		return;
	case AGENT_MSG_ERROR:
		on_error(r, m, now);
		return;
	default:
		reply_error(r, m->request_id, AGENT_E_UNEXPECTED, m->type,
			    "not expected by an agent");
		return;
	}
}

static void drive_link(struct run *r, int64_t now)
{
	struct agent_msg m;
	enum agent_err perr;
	int err, got;

	if (r->phase == PH_DOWN)
		return;
	err = agent_link_step(r->link);
	if (r->phase == PH_LINKING && !err && agent_link_up(r->link))
		send_hello(r, now);
	/* Frames that arrived before a close still count (a FENCED notice, an ERROR). */
	while (r->phase == PH_HELLO || r->phase == PH_UP) {
		got = agent_link_recv(r->link, &m, &perr);
		if (got == 0)
			break;
		if (got < 0) {
			if (got == -EBADMSG && perr != AGENT_E_MALFORMED)
				continue;
			reply_error(r, 0, perr, 0, NULL);
			link_down(r, now, "bad frame from the box");
			return;
		}
		on_message(r, &m, now);
		/* An ACK may have arrived only now that the clock says the deadline has
		 * passed; the lease is checked again before the next frame. */
		check_lease(r, clock_ns());
	}
	if (err && r->phase != PH_DOWN)
		link_down(r, now, err == -ECONNRESET ? "connection closed" : strerror(-err));
}

static int run_loop(struct run *r)
{
	sigset_t block, orig;
	struct sigaction sa = {0};
	struct pollfd p;
	int64_t now, wake;
	int n, timeout_ms;

	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* SIGCONT interrupts the wait, so a resumed agent checks its clock at once. */
	sigaction(SIGCONT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGCONT);
	sigprocmask(SIG_BLOCK, &block, &orig);

	r->phase = PH_DOWN;
	r->reconnect_at = 0;
	r->backoff_ns = BACKOFF_MIN_NS;
	while (!stop_requested) {
		now = clock_ns();
		/* coordinator-timing.md (2): the deadline comes first, before any byte is read. */
		check_lease(r, now);
		drive_link(r, now);
		now = clock_ns();
		if (r->phase == PH_DOWN && now >= r->reconnect_at) {
			int err =
				agent_link_open(r->link, r->tls, r->host, r->port, r->st.box_name);

			if (err) {
				r->phase = PH_LINKING;
				link_down(r, now, strerror(-err));
			} else {
				r->phase = PH_LINKING;
				r->phase_deadline = now + link_timeout_ns(r);
				drive_link(r, now);
			}
		}
		if ((r->phase == PH_LINKING || r->phase == PH_HELLO) && now > r->phase_deadline)
			link_down(r, now, "timed out");
		if (r->phase == PH_UP && agent_lease_fenced(&r->lease) &&
		    !agent_lease_fence_pending(&r->lease) && !r->rejoin_id && now >= r->rejoin_at)
			send_rejoin(r, now);

		wake = agent_lease_next_wake(&r->lease, now, r->phase == PH_UP && !r->rejoin_id);
		if (r->phase == PH_DOWN && r->reconnect_at < wake)
			wake = r->reconnect_at;
		if ((r->phase == PH_LINKING || r->phase == PH_HELLO) && r->phase_deadline < wake)
			wake = r->phase_deadline;
		if (r->phase == PH_UP && agent_lease_fenced(&r->lease) && !r->rejoin_id &&
		    r->rejoin_at < wake)
			wake = r->rejoin_at;
		if (wake == INT64_MAX)
			timeout_ms = 1000;
		else if (wake <= now)
			timeout_ms = 0;
		else
			/* Round up: waking a hair early would only loop once more. */
			timeout_ms = (int)((wake - now + NS_PER_MS - 1) / NS_PER_MS);
		if (timeout_ms > 1000)
			timeout_ms = 1000;
		if (r->phase != PH_DOWN && r->link->tls && tls_conn_pending(r->link->tls))
			timeout_ms = 0;
		p.fd = r->phase == PH_DOWN ? -1 : agent_link_fd(r->link);
		p.events = r->phase == PH_DOWN ? 0 : agent_link_events(r->link);
		p.revents = 0;
		{
			struct timespec ts = {timeout_ms / 1000,
					      (long)(timeout_ms % 1000) * NS_PER_MS};

			n = ppoll(&p, 1, &ts, &orig);
		}
		if (n < 0 && errno != EINTR) {
			log_warn("%s: poll", __func__);
			break;
		}
	}
	log_info("stopping on signal");
	if (r->phase != PH_DOWN && agent_link_up(r->link))
		tls_conn_close_notify(r->link->tls);
	agent_link_close(r->link);
	sigprocmask(SIG_SETMASK, &orig, NULL);
	return EX_OK;
}

/* The timing to start with, before the box is reached: what it announced last (stored in the
 * state folder), made stricter by the flags; with nothing stored, the flags or the defaults.
 * 0 or an exit code: a flag that would fence later than the stored timing allows is refused. */
static int start_timing(struct run *r)
{
	struct agent_lease_timing bt;
	struct lease_config assumed;
	char why[160];

	if (agent_timing_announced(&r->st.timing)) {
		if (agent_timing_decide(&r->st.timing, &r->ovr, &r->timing, why, sizeof(why))) {
			fprintf(stderr, "holdfast-agent: %s/%s: the stored lease timing: %s\n",
				r->dir, AGENT_STATE_FILE, why);
			return EX_LOCAL;
		}
		if (r->timing.ignored) {
			warn_ignored(r, &r->timing, true);
			fprintf(stderr,
				"holdfast-agent: --heartbeat-ms/--miss-threshold may only make the "
				"agent stricter than the box (H %" PRIu64 " ms, M %u): leave them "
				"out to follow the box\n",
				r->st.timing.heartbeat_ns / NS_PER_MS, (unsigned)r->st.timing.miss);
			return EX_USAGE;
		}
		r->timing_from_box = false;
		return 0;
	}
	lease_config_default(&assumed);
	if (r->ovr.heartbeat_ns)
		assumed.heartbeat_ns = r->ovr.heartbeat_ns;
	if (r->ovr.miss)
		assumed.miss = r->ovr.miss;
	agent_timing_box_from_config(&assumed, &bt);
	if (agent_timing_decide(&bt, NULL, &r->timing, why, sizeof(why))) {
		fprintf(stderr, "holdfast-agent: --heartbeat-ms/--miss-threshold: %s\n", why);
		return EX_USAGE;
	}
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state-dir", required_argument, NULL, 'd'},
		{"box", required_argument, NULL, 'b'},
		{"heartbeat-ms", required_argument, NULL, 'h'},
		{"miss-threshold", required_argument, NULL, 'm'},
		{"fence-action", required_argument, NULL, 'f'},
		{"vm-pidfile", required_argument, NULL, 'p'},
		{"verbose", no_argument, NULL, 'v'},
		{NULL, 0, NULL, 0},
	};
	const char *pidfiles[AGENT_FENCE_MAX_PIDFILES];
	const char *box = NULL;
	char path[PATH_MAX], cpath[PATH_MAX], kpath[PATH_MAX], desc[200];
	struct agent_fence_spec spec;
	struct run *r;
	size_t n_pidfiles = 0;
	unsigned long v;
	int64_t hint = 0, now;
	bool have_hint;
	int c, err, ret = EX_LOCAL;

	r = calloc(1, sizeof(*r));
	if (!r)
		return EX_LOCAL;
	r->lease_fd = -1;
	agent_args_fence("kill-qemu", &spec);
	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			r->dir = optarg;
			break;
		case 'b':
			box = optarg;
			break;
		case 'h':
			if (agent_args_uint(optarg, LEASE_MIN_HEARTBEAT_NS / NS_PER_MS,
					    LEASE_MAX_HEARTBEAT_NS / NS_PER_MS, &v)) {
				fprintf(stderr,
					"holdfast-agent: --heartbeat-ms must be %lld..%lld\n",
					LEASE_MIN_HEARTBEAT_NS / NS_PER_MS,
					LEASE_MAX_HEARTBEAT_NS / NS_PER_MS);
				ret = EX_USAGE;
				goto out;
			}
			r->ovr.heartbeat_ns = (int64_t)v * NS_PER_MS;
			break;
		case 'm':
			if (agent_args_uint(optarg, LEASE_MIN_MISS, LEASE_MAX_MISS, &v)) {
				fprintf(stderr, "holdfast-agent: --miss-threshold must be %u..%u\n",
					LEASE_MIN_MISS, LEASE_MAX_MISS);
				ret = EX_USAGE;
				goto out;
			}
			r->ovr.miss = (unsigned)v;
			break;
		case 'f':
			if (agent_args_fence(optarg, &spec)) {
				fprintf(stderr, "holdfast-agent: --fence-action is kill-qemu, "
						"exec:COMMAND or watchdog[:DEV]\n");
				ret = EX_USAGE;
				goto out;
			}
			break;
		case 'p':
			if (n_pidfiles == AGENT_FENCE_MAX_PIDFILES) {
				fprintf(stderr, "holdfast-agent: at most %d --vm-pidfile\n",
					AGENT_FENCE_MAX_PIDFILES);
				ret = EX_USAGE;
				goto out;
			}
			pidfiles[n_pidfiles++] = optarg;
			break;
		case 'v':
			log_init("holdfast-agent", LOG_LVL_DEBUG, 0);
			break;
		default:
			usage();
			ret = EX_USAGE;
			goto out;
		}
	}
	if (optind != argc || !r->dir) {
		usage();
		ret = EX_USAGE;
		goto out;
	}
	err = agent_state_load(r->dir, &r->st);
	if (err) {
		fprintf(stderr, "holdfast-agent: %s/%s: %s (has this host joined?)\n", r->dir,
			AGENT_STATE_FILE, err == -EBADMSG ? "damaged" : strerror(-err));
		ret = err == -ENOENT ? EX_USAGE : EX_LOCAL;
		goto out;
	}
	if (!box)
		box = r->st.box_addr[0] ? r->st.box_addr : NULL;
	if (!box || agent_args_hostport(box, r->host, &r->port)) {
		fprintf(stderr, "holdfast-agent: %s: --box ADDR:AGENT_PORT is needed\n",
			box ? "bad box address" : "no box address stored");
		ret = EX_USAGE;
		goto out;
	}
	err = start_timing(r);
	if (err) {
		ret = err;
		goto out;
	}

	snprintf(path, sizeof(path), "%s/%s", r->dir, AGENT_STATE_CA_FILE);
	snprintf(cpath, sizeof(cpath), "%s/%s", r->dir, AGENT_STATE_CERT_FILE);
	snprintf(kpath, sizeof(kpath), "%s/%s", r->dir, AGENT_STATE_KEY_FILE);
	err = tls_config_new(&r->tls, TLS_ROLE_CLIENT);
	if (!err)
		err = tls_config_set_ca_file(r->tls, path);
	if (!err)
		err = tls_config_set_own_files(r->tls, cpath, kpath);
	if (err) {
		fprintf(stderr, "holdfast-agent: TLS setup from %s: %s\n", r->dir, strerror(-err));
		ret = EX_TLS;
		goto out;
	}
	err = agent_fence_init(&r->fence, &spec, r->dir, pidfiles, n_pidfiles,
			       r->timing.fence_budget_ns);
	if (err) {
		fprintf(stderr, "holdfast-agent: fence action: %s\n", strerror(-err));
		ret = EX_LOCAL;
		goto out;
	}
	r->link = malloc(sizeof(*r->link));
	if (!r->link)
		goto out_fence;
	agent_link_init(r->link);

	read_boot_id(r->boot_id);
	snprintf(path, sizeof(path), "%s/%s", r->dir, AGENT_STATE_LEASE_FILE);
	r->lease_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	now = clock_ns();
	have_hint = load_hint(r, &hint);
	agent_lease_begin(&r->lease, &r->timing, r->st.epoch,
			  agent_lease_resume_base(&r->timing, have_hint, hint, now));
	agent_timing_describe(&r->timing, desc, sizeof(desc));
	log_info("running as host %s (id %" PRIu32 ", epoch %" PRIu64 "), box %s:%u, %s, timing "
		 "%s, fence action %s%s%s",
		 r->st.name, r->st.host_id, r->st.epoch, r->host, (unsigned)r->port, desc,
		 agent_timing_announced(&r->st.timing) ? "as the box last announced it"
		 : r->ovr.heartbeat_ns || r->ovr.miss
			 ? "from the command line until the box "
			   "announces its own"
			 : "assumed (defaults) until the box announces "
			   "its own",
		 spec.kind == AGENT_FENCE_EXEC	     ? "exec:"
		 : spec.kind == AGENT_FENCE_WATCHDOG ? "watchdog:"
						     : "kill-qemu",
		 spec.arg, have_hint ? ", lease resumed from the last ack" : "");

	ret = run_loop(r);
	free(r->link);
out_fence:
	agent_fence_close(&r->fence, 1);
out:
	if (r->lease_fd >= 0)
		close(r->lease_fd);
	if (r->tls)
		tls_config_free(r->tls);
	free(r);
	return ret;
}

/* --- vdisk and pool: one catalog request as this host ------------------------------------ */

/* What the box answered; 1 when the answer is complete (or refused), 0 to wait for more, 2 when
 * a VDISK_LIST page ended and the next must be asked for (from m's start_after). */
static int vdisk_answer(const struct agent_vdisk_cmd *cmd, const struct agent_msg *m, json_t *list,
			unsigned *lines, int *ret)
{
	const char *what = agent_proto_type_name(cmd->req.type);

	switch (m->type) {
	case AGENT_MSG_ERROR:
		fprintf(stderr, "holdfast-agent: %s refused: %s%s%s\n", what,
			agent_proto_strerror(m->u.error.code), m->u.error.text[0] ? ": " : "",
			m->u.error.text);
		if (cmd->json) {
			json_t *o = json_pack("{s:s, s:s, s:i}", "error",
					      m->u.error.text[0]
						      ? m->u.error.text
						      : agent_proto_strerror(m->u.error.code),
					      "code", agent_vdisk_code_name(m->u.error.code),
					      "agent_error", (int)m->u.error.code);

			json_dumpf(o, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
			json_decref(o);
		}
		*ret = agent_vdisk_exit_code(m->u.error.code);
		return 1;
	case AGENT_MSG_VDISK_INFO:
		if (cmd->req.type == AGENT_MSG_VDISK_LIST) {
			if (cmd->json)
				json_array_append_new(list, agent_vdisk_info_json(&m->u.vd_info));
			else
				agent_vdisk_print(stdout, &m->u.vd_info, (*lines)++ == 0);
			return 0;
		}
		if (cmd->json) {
			json_t *o =
				json_pack("{s:o}", "vdisk", agent_vdisk_info_json(&m->u.vd_info));

			json_dumpf(o, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
			json_decref(o);
		} else {
			agent_vdisk_print(stdout, &m->u.vd_info, true);
		}
		*ret = EX_OK;
		return 1;
	case AGENT_MSG_VDISK_LIST_END:
		if (cmd->req.type != AGENT_MSG_VDISK_LIST)
			break;
		if (m->u.vd_end.more) {
			/* The box pages: its next page must start past this one. */
			if (cmd->req.u.vd_list.start_after[0] &&
			    strcmp(m->u.vd_end.start_after, cmd->req.u.vd_list.start_after) <= 0) {
				fprintf(stderr,
					"holdfast-agent: %s: the box's next page does not "
					"move on\n",
					what);
				*ret = EX_REFUSED;
				return 1;
			}
			return 2;
		}
		if (cmd->json) {
			json_t *o = json_pack("{s:O}", "vdisks", list);

			json_dumpf(o, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
			json_decref(o);
		} else if (*lines == 0) {
			printf("no virtual disks\n");
		}
		*ret = EX_OK;
		return 1;
	case AGENT_MSG_VDISK_DELETED:
		if (cmd->req.type != AGENT_MSG_VDISK_DELETE)
			break;
		if (cmd->json)
			printf("{\n  \"deleted\": \"%s\"\n}\n", m->u.vd_op.id);
		else
			printf("deleted %s\n", m->u.vd_op.id);
		*ret = EX_OK;
		return 1;
	default:
		break;
	}
	fprintf(stderr, "holdfast-agent: %s: the box answered with %s\n", what,
		agent_proto_type_name(m->type));
	*ret = EX_REFUSED;
	return 1;
}

static int cmd_vdisk(int argc, char **argv)
{
	struct agent_vdisk_cmd cmd;
	struct agent_state st;
	struct agent_link *link = NULL;
	struct tls_config *tls = NULL;
	char host[AGENT_ARGS_HOST_MAX + 1], err_text[256];
	char ca[PATH_MAX], crt[PATH_MAX], key[PATH_MAX];
	const char *box;
	json_t *list = json_array();
	unsigned lines = 0;
	uint64_t agreed = 0;
	uint32_t rid;
	uint16_t port;
	int64_t end;
	unsigned pages = 1;
	int err, got, ret = EX_LOCAL;

	if (agent_vdisk_parse(argc, argv, &cmd, err_text, sizeof(err_text))) {
		fprintf(stderr, "holdfast-agent: %s\n", err_text);
		json_decref(list);
		return EX_USAGE;
	}
	if (cmd.verbose)
		log_init("holdfast-agent", LOG_LVL_DEBUG, 0);
	err = agent_state_load(cmd.state_dir, &st);
	if (err) {
		fprintf(stderr, "holdfast-agent: %s/%s: %s (has this host joined?)\n",
			cmd.state_dir, AGENT_STATE_FILE,
			err == -EBADMSG ? "damaged" : strerror(-err));
		json_decref(list);
		return err == -ENOENT ? EX_USAGE : EX_LOCAL;
	}
	box = cmd.box ? cmd.box : st.box_addr[0] ? st.box_addr : NULL;
	if (!box || agent_args_hostport(box, host, &port)) {
		fprintf(stderr, "holdfast-agent: %s: --box ADDR:AGENT_PORT is needed\n",
			box ? "bad box address" : "no box address stored");
		json_decref(list);
		return EX_USAGE;
	}
	snprintf(ca, sizeof(ca), "%s/%s", cmd.state_dir, AGENT_STATE_CA_FILE);
	snprintf(crt, sizeof(crt), "%s/%s", cmd.state_dir, AGENT_STATE_CERT_FILE);
	snprintf(key, sizeof(key), "%s/%s", cmd.state_dir, AGENT_STATE_KEY_FILE);
	err = tls_config_new(&tls, TLS_ROLE_CLIENT);
	if (!err)
		err = tls_config_set_ca_file(tls, ca);
	if (!err)
		err = tls_config_set_own_files(tls, crt, key);
	if (err) {
		fprintf(stderr, "holdfast-agent: TLS setup from %s: %s\n", cmd.state_dir,
			strerror(-err));
		ret = EX_TLS;
		goto out;
	}
	link = malloc(sizeof(*link));
	if (!link)
		goto out;
	agent_link_init(link);
	/* A request-only connection (docs/agent-protocol.md, "Request-only connections"): HELLO
	 * offers AGENT_CAP_CATALOG alone, so the box never takes it for the host's lease
	 * session, which `holdfast-agent run` keeps on its own connection meanwhile. */
	err = agent_link_open(link, tls, host, port, st.box_name);
	if (!err)
		err = agent_link_wait_up(link, (int)cmd.timeout_ms);
	if (err) {
		ret = join_exit_for_link_error(link, err);
		fprintf(stderr, "holdfast-agent: %s %s:%u: %s\n",
			ret == EX_TLS ? "TLS handshake with" : "cannot reach", host, (unsigned)port,
			strerror(-err));
		goto out;
	}
	err = hello_sync(link, AGENT_CAP_CATALOG, &agreed);
	if (err) {
		ret = err == -EPROTO ? EX_REFUSED : EX_NETWORK;
		if (err != -EPROTO)
			fprintf(stderr, "holdfast-agent: HELLO: %s\n", strerror(-err));
		goto out;
	}
	if (!(agreed & AGENT_CAP_CATALOG)) {
		fprintf(stderr,
			"holdfast-agent: the box does not take catalog requests from agents "
			"(older firmware); use holdfastctl on the box\n");
		ret = EX_REFUSED;
		goto out;
	}
	/* agent-protocol.md, "Paging": ask for the largest page a box serves. */
	if (cmd.req.type == AGENT_MSG_VDISK_LIST && !cmd.req.u.vd_list.limit)
		cmd.req.u.vd_list.limit = AGENT_LIST_PAGE_MAX;
	err = agent_link_send(link, &cmd.req);
	if (err) {
		fprintf(stderr, "holdfast-agent: cannot send the request: %s\n", strerror(-err));
		ret = err == -EINVAL ? EX_USAGE : EX_NETWORK;
		goto out;
	}
	rid = cmd.req.request_id;
	end = clock_ns() + (int64_t)cmd.timeout_ms * NS_PER_MS;
	for (;;) {
		struct agent_msg m;
		int64_t left = (end - clock_ns()) / NS_PER_MS;

		err = left > 0 ? agent_link_wait_msg(link, &m, (int)left) : -ETIMEDOUT;
		if (err < 0) {
			fprintf(stderr, "holdfast-agent: %s: %s%s\n",
				agent_proto_type_name(cmd.req.type), strerror(-err),
				err == -ETIMEDOUT
					? " (the outcome is unknown: look with vdisk list)"
					: "");
			ret = EX_NETWORK;
			break;
		}
		/* Notices (FENCED) and anything else not answering this request are not ours,
		 * except an ERROR without a request id: the box could not read what we sent. */
		if (m.request_id != rid && !(m.type == AGENT_MSG_ERROR && m.request_id == 0))
			continue;
		got = vdisk_answer(&cmd, &m, list, &lines, &ret);
		if (got == 1)
			break;
		if (got == 2) {
			snprintf(cmd.req.u.vd_list.start_after,
				 sizeof(cmd.req.u.vd_list.start_after), "%s",
				 m.u.vd_end.start_after);
			cmd.req.request_id = 0; /* a new request: the link numbers it */
			err = agent_link_send(link, &cmd.req);
			if (err) {
				fprintf(stderr,
					"holdfast-agent: cannot ask for the next page: %s\n",
					strerror(-err));
				ret = EX_NETWORK;
				break;
			}
			rid = cmd.req.request_id;
			pages++;
			log_debug("vdisk list: page %u, after %s", pages,
				  cmd.req.u.vd_list.start_after);
			end = clock_ns() + (int64_t)cmd.timeout_ms * NS_PER_MS;
		}
	}
	if (agent_link_up(link))
		tls_conn_close_notify(link->tls);
out:
	if (link)
		agent_link_close(link);
	free(link);
	if (tls)
		tls_config_free(tls);
	json_decref(list);
	return ret;
}

int main(int argc, char **argv)
{
	log_init("holdfast-agent", LOG_LVL_INFO, 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		usage();
		return EX_USAGE;
	}
	if (!strcmp(argv[1], "join"))
		return cmd_join(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "vdisk") || !strcmp(argv[1], "pool"))
		return cmd_vdisk(argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage();
		return EX_OK;
	}
	usage();
	return EX_USAGE;
}
