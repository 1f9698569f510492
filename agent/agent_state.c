#include "agent/agent_state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/atomic_file.h"

#define STATE_FILE_MAX 4096

/* One line of a text file as a bounded slice: [p, p + len). */
struct line {
	const char *p;
	size_t len;
};

/* Take the next line from buf (without its '\n'); false at the end. */
static bool next_line(const char *buf, size_t len, size_t *pos, struct line *l)
{
	size_t i;

	if (*pos >= len)
		return false;
	l->p = buf + *pos;
	for (i = *pos; i < len && buf[i] != '\n'; i++)
		;
	l->len = i - *pos;
	*pos = i < len ? i + 1 : i;
	return true;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static void trim(struct line *l)
{
	while (l->len && is_blank(l->p[0])) {
		l->p++;
		l->len--;
	}
	while (l->len && is_blank(l->p[l->len - 1]))
		l->len--;
}

/* An unsigned decimal in [min, max], the whole slice and nothing else. */
static int parse_u64(const char *p, size_t len, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20)
		return -EBADMSG;
	for (i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EBADMSG;
		if (v > (UINT64_MAX - (uint64_t)(p[i] - '0')) / 10)
			return -EBADMSG;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (v < min || v > max)
		return -EBADMSG;
	*out = v;
	return 0;
}

/* A name value: printable ASCII without blanks, 1..cap-1 bytes. */
static int copy_name(const char *p, size_t len, char *out, size_t cap)
{
	size_t i;

	if (len == 0 || len >= cap)
		return -EBADMSG;
	for (i = 0; i < len; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return -EBADMSG;
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

enum {
	K_HOST_ID = 1,
	K_EPOCH = 2,
	K_NAME = 4,
	K_BOX_NAME = 8,
	K_BOX = 16,
	K_T_HEARTBEAT = 32,
	K_T_MISS = 64,
	K_T_LEASE = 128,
	K_T_SKEW = 256,
};
#define K_TIMING (K_T_HEARTBEAT | K_T_MISS | K_T_LEASE | K_T_SKEW)

int agent_state_parse(const char *buf, size_t len, struct agent_state *st)
{
	struct line l, key, val;
	unsigned seen = 0, k;
	size_t pos = 0, i;
	uint64_t v = 0;
	int err;

	memset(st, 0, sizeof(*st));
	while (next_line(buf, len, &pos, &l)) {
		trim(&l);
		if (l.len == 0 || l.p[0] == '#')
			continue;
		for (i = 0; i < l.len && !is_blank(l.p[i]); i++)
			;
		key.p = l.p;
		key.len = i;
		val.p = l.p + i;
		val.len = l.len - i;
		trim(&val);
		if (val.len == 0)
			return -EBADMSG;
#define KEY_IS(s) (key.len == sizeof(s) - 1 && !memcmp(key.p, s, key.len))
		if (KEY_IS("host_id"))
			k = K_HOST_ID;
		else if (KEY_IS("epoch"))
			k = K_EPOCH;
		else if (KEY_IS("name"))
			k = K_NAME;
		else if (KEY_IS("box_name"))
			k = K_BOX_NAME;
		else if (KEY_IS("box"))
			k = K_BOX;
		else if (KEY_IS("box_heartbeat_ns"))
			k = K_T_HEARTBEAT;
		else if (KEY_IS("box_miss"))
			k = K_T_MISS;
		else if (KEY_IS("box_lease_timeout_ns"))
			k = K_T_LEASE;
		else if (KEY_IS("box_skew_ppm"))
			k = K_T_SKEW;
		else
			return -EBADMSG;
#undef KEY_IS
		if (seen & k)
			return -EBADMSG;
		seen |= k;
		switch (k) {
		case K_HOST_ID:
			err = parse_u64(val.p, val.len, 1, UINT32_MAX, &v);
			st->host_id = (uint32_t)v;
			break;
		case K_EPOCH:
			/* Epochs stay below 2^63 so epoch + 1 never wraps and fits every signed
			 * reader. */
			err = parse_u64(val.p, val.len, 1, INT64_MAX - 1, &v);
			st->epoch = v;
			break;
		case K_NAME:
			err = copy_name(val.p, val.len, st->name, sizeof(st->name));
			break;
		case K_BOX_NAME:
			err = copy_name(val.p, val.len, st->box_name, sizeof(st->box_name));
			break;
		case K_BOX:
			err = copy_name(val.p, val.len, st->box_addr, sizeof(st->box_addr));
			break;
		/* The same ranges as the wire (agent-protocol.md, "Lease timing"); whether the
		 * agent can keep a lease under them is agent_timing_decide()'s question. */
		case K_T_HEARTBEAT:
			err = parse_u64(val.p, val.len, 1, INT64_MAX, &v);
			st->timing.heartbeat_ns = v;
			break;
		case K_T_MISS:
			err = parse_u64(val.p, val.len, 1, UINT16_MAX, &v);
			st->timing.miss = (uint16_t)v;
			break;
		case K_T_LEASE:
			err = parse_u64(val.p, val.len, 1, INT64_MAX, &v);
			st->timing.lease_timeout_ns = v;
			break;
		case K_T_SKEW:
			err = parse_u64(val.p, val.len, 1, AGENT_SKEW_PPM_MAX, &v);
			st->timing.skew_ppm = (uint32_t)v;
			break;
		default:
			err = -EBADMSG;
			break;
		}
		if (err)
			return err;
	}
	if ((seen & (K_HOST_ID | K_EPOCH | K_NAME | K_BOX_NAME)) !=
	    (K_HOST_ID | K_EPOCH | K_NAME | K_BOX_NAME))
		return -EBADMSG;
	/* Half a timing would be a timing nobody announced. */
	if ((seen & K_TIMING) && (seen & K_TIMING) != K_TIMING)
		return -EBADMSG;
	return 0;
}

static bool name_ok(const char *s, size_t cap)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (i + 1 >= cap || s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return i > 0;
}

int agent_state_format(const struct agent_state *st, char *buf, size_t cap)
{
	int n;

	if (st->host_id == 0 || st->epoch == 0 || st->epoch > INT64_MAX - 1 ||
	    !name_ok(st->name, sizeof(st->name)) || !name_ok(st->box_name, sizeof(st->box_name)))
		return -EINVAL;
	if (st->box_addr[0] && !name_ok(st->box_addr, sizeof(st->box_addr)))
		return -EINVAL;
	n = snprintf(buf, cap,
		     "# holdfast-agent state: written by the agent, do not edit while it runs\n"
		     "host_id %" PRIu32 "\nepoch %" PRIu64 "\nname %s\nbox_name %s\n",
		     st->host_id, st->epoch, st->name, st->box_name);
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	if (st->box_addr[0]) {
		int m = snprintf(buf + n, cap - n, "box %s\n", st->box_addr);

		if (m < 0 || (size_t)m >= cap - n)
			return -ENOSPC;
		n += m;
	}
	if (st->timing.heartbeat_ns || st->timing.miss || st->timing.lease_timeout_ns ||
	    st->timing.skew_ppm) {
		int m;

		if (!st->timing.heartbeat_ns || !st->timing.miss || !st->timing.lease_timeout_ns ||
		    !st->timing.skew_ppm || st->timing.heartbeat_ns > INT64_MAX ||
		    st->timing.lease_timeout_ns > INT64_MAX ||
		    st->timing.skew_ppm > AGENT_SKEW_PPM_MAX)
			return -EINVAL;
		m = snprintf(buf + n, cap - n,
			     "box_heartbeat_ns %" PRIu64
			     "\nbox_miss %u\nbox_lease_timeout_ns %" PRIu64
			     "\nbox_skew_ppm %" PRIu32 "\n",
			     st->timing.heartbeat_ns, (unsigned)st->timing.miss,
			     st->timing.lease_timeout_ns, st->timing.skew_ppm);
		if (m < 0 || (size_t)m >= cap - n)
			return -ENOSPC;
		n += m;
	}
	return n;
}

static int path_join(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* Read a whole small file; -EFBIG above cap - 1 bytes. buf is NUL-terminated. */
static int read_small(const char *path, char *buf, size_t cap, size_t *len)
{
	size_t got = 0;
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		n = read(fd, buf + got, cap - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap - 1) {
			char c;

			if (read(fd, &c, 1) > 0)
				err = -EFBIG;
			break;
		}
	}
	close(fd);
	if (err)
		return err;
	buf[got] = '\0';
	*len = got;
	return 0;
}

int agent_state_load(const char *dir, struct agent_state *st)
{
	char path[PATH_MAX], buf[STATE_FILE_MAX];
	size_t len;
	int err;

	err = path_join(path, sizeof(path), dir, AGENT_STATE_FILE);
	if (err)
		return err;
	err = read_small(path, buf, sizeof(buf), &len);
	if (err)
		return err;
	return agent_state_parse(buf, len, st);
}

int agent_state_write_file(const char *dir, const char *name, const void *data, size_t len,
			   mode_t mode)
{
	char path[PATH_MAX];
	int err;

	err = path_join(path, sizeof(path), dir, name);
	if (err)
		return err;
	return atomic_file_write(path, data, len, mode);
}

int agent_state_save(const char *dir, const struct agent_state *st)
{
	char buf[STATE_FILE_MAX];
	int n;

	n = agent_state_format(st, buf, sizeof(buf));
	if (n < 0)
		return n;
	return agent_state_write_file(dir, AGENT_STATE_FILE, buf, (size_t)n, 0600);
}

int agent_pids_parse(const char *buf, size_t len, pid_t *pids, size_t cap, size_t *n)
{
	struct line l;
	size_t pos = 0, i;
	uint64_t v;
	bool dup;

	while (next_line(buf, len, &pos, &l)) {
		trim(&l);
		if (l.len == 0 || l.p[0] == '#')
			continue;
		if (parse_u64(l.p, l.len, 2, INT_MAX, &v))
			return -EBADMSG;
		dup = false;
		for (i = 0; i < *n; i++)
			dup |= pids[i] == (pid_t)v;
		if (dup)
			continue;
		if (*n >= cap)
			return -ENOSPC;
		pids[(*n)++] = (pid_t)v;
	}
	return 0;
}

int agent_pids_load(const char *path, pid_t *pids, size_t cap, size_t *n)
{
	static char buf[64 * 1024];
	size_t len;
	int err;

	err = read_small(path, buf, sizeof(buf), &len);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	return agent_pids_parse(buf, len, pids, cap, n);
}

int agent_lease_hint_parse(const char *buf, size_t len, struct agent_lease_hint *h)
{
	struct line l;
	size_t pos = 0, i, j;
	uint64_t v;

	memset(h, 0, sizeof(*h));
	if (!next_line(buf, len, &pos, &l))
		return -EBADMSG;
	trim(&l);
	for (i = 0; i < l.len && !is_blank(l.p[i]); i++)
		;
	if (copy_name(l.p, i, h->boot_id, sizeof(h->boot_id)))
		return -EBADMSG;
	while (i < l.len && is_blank(l.p[i]))
		i++;
	for (j = i; j < l.len && !is_blank(l.p[j]); j++)
		;
	if (parse_u64(l.p + i, j - i, 1, INT64_MAX - 1, &h->epoch))
		return -EBADMSG;
	while (j < l.len && is_blank(l.p[j]))
		j++;
	if (parse_u64(l.p + j, l.len - j, 0, INT64_MAX, &v))
		return -EBADMSG;
	h->send_ns = (int64_t)v;
	return 0;
}

int agent_lease_hint_format(const struct agent_lease_hint *h, char *buf, size_t cap)
{
	int n;

	if (!name_ok(h->boot_id, sizeof(h->boot_id)) || h->epoch == 0 || h->send_ns < 0)
		return -EINVAL;
	n = snprintf(buf, cap, "%s %" PRIu64 " %" PRId64 "\n", h->boot_id, h->epoch, h->send_ns);
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return n;
}
