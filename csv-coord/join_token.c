#include "csv-coord/join_token.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csv-coord/ca.h"
#include "lib/atomic_file.h"
#include "lib/cursor.h"
#include "lib/log.h"
#include "lib/tls.h"

#define STORE_MAGIC    "holdfast-join-tokens 1\n"
#define STORE_FILE_MAX (256 * 1024)

struct token {
	uint8_t id[JOIN_TOKEN_ID_LEN];
	uint8_t hash[TLS_FINGERPRINT_LEN]; /* SHA-256 of the secret */
	int64_t created;
	int64_t expires;
	int64_t used_at;
	char used_by[JOIN_HOST_MAX + 1];
};

struct join_store {
	char *path; /* NULL: memory only */
	struct token *v;
	size_t n;
};

static void to_hex(const uint8_t *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hex_val(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly 2 * n hex digits from the cursor into out. */
static int cur_hex(struct cursor *c, uint8_t *out, size_t n)
{
	const uint8_t *p;
	size_t i;
	int hi, lo;

	if (cur_ptr(c, 2 * n, &p))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		hi = hex_val(p[2 * i]);
		lo = hex_val(p[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = hi << 4 | lo;
	}
	return 0;
}

static int cur_expect(struct cursor *c, const char *s)
{
	const uint8_t *p;
	size_t n = strlen(s);

	if (cur_ptr(c, n, &p) || memcmp(p, s, n))
		return -EINVAL;
	return 0;
}

/* "hfj1.<id>.<secret>", nothing before or after. */
static int parse_token(const char *text, size_t len, uint8_t id[JOIN_TOKEN_ID_LEN],
		       uint8_t secret[JOIN_TOKEN_SECRET_LEN])
{
	struct cursor c;

	cur_init(&c, text, len);
	if (cur_expect(&c, JOIN_TOKEN_PREFIX) || cur_hex(&c, id, JOIN_TOKEN_ID_LEN) ||
	    cur_expect(&c, ".") || cur_hex(&c, secret, JOIN_TOKEN_SECRET_LEN) || cur_left(&c))
		return -EINVAL;
	return 0;
}

/* Compare without an early exit, so the time taken says nothing about how many leading bytes
 * of a guessed secret were right. */
static bool ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t diff = 0;
	size_t i;

	for (i = 0; i < n; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

static struct token *find(const struct join_store *s, const uint8_t id[JOIN_TOKEN_ID_LEN])
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (!memcmp(s->v[i].id, id, JOIN_TOKEN_ID_LEN))
			return &s->v[i];
	return NULL;
}

/* The whole store as text: a magic line, then one line per token:
 *   <id hex> <secret hash hex> <created> <expires> <used_at> <used_by or ->  */
static int persist(const struct join_store *s)
{
	char id[JOIN_TOKEN_ID_HEX], hash[2 * TLS_FINGERPRINT_LEN + 1], *buf;
	size_t cap = sizeof(STORE_MAGIC) + s->n * 256, off;
	const struct token *t;
	size_t i;
	int err;

	if (!s->path)
		return 0;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	off = snprintf(buf, cap, "%s", STORE_MAGIC);
	for (i = 0; i < s->n; i++) {
		t = &s->v[i];
		to_hex(t->id, sizeof(t->id), id);
		to_hex(t->hash, sizeof(t->hash), hash);
		off += snprintf(
			buf + off, cap - off, "%s %s %" PRId64 " %" PRId64 " %" PRId64 " %s\n", id,
			hash, t->created, t->expires, t->used_at, t->used_by[0] ? t->used_by : "-");
	}
	err = atomic_file_write(s->path, buf, off, 0600);
	free(buf);
	if (err)
		log_warnx("%s: %s: %s", __func__, s->path, strerror(-err));
	return err;
}

static int parse_line(const char *line, size_t len, struct token *t)
{
	char id[JOIN_TOKEN_ID_HEX + 1], hash[2 * TLS_FINGERPRINT_LEN + 2], host[JOIN_HOST_MAX + 2];
	struct cursor c;
	char copy[256];
	int end = 0;

	if (len >= sizeof(copy))
		return -EBADMSG;
	memcpy(copy, line, len);
	copy[len] = '\0';
	memset(t, 0, sizeof(*t));
	if (sscanf(copy, "%17s %65s %" SCNd64 " %" SCNd64 " %" SCNd64 " %64s%n", id, hash,
		   &t->created, &t->expires, &t->used_at, host, &end) != 6 ||
	    (size_t)end != len)
		return -EBADMSG;
	if (strlen(id) != 2 * JOIN_TOKEN_ID_LEN || strlen(hash) != 2 * TLS_FINGERPRINT_LEN)
		return -EBADMSG;
	cur_init(&c, id, strlen(id));
	if (cur_hex(&c, t->id, sizeof(t->id)))
		return -EBADMSG;
	cur_init(&c, hash, strlen(hash));
	if (cur_hex(&c, t->hash, sizeof(t->hash)))
		return -EBADMSG;
	if (strcmp(host, "-")) {
		if (!ca_name_valid(host) || strlen(host) > JOIN_HOST_MAX)
			return -EBADMSG;
		strcpy(t->used_by, host);
	}
	/* A used token names its host and a time; an unused one neither. */
	if ((t->used_at != 0) != (t->used_by[0] != '\0'))
		return -EBADMSG;
	return 0;
}

static int load(struct join_store *s)
{
	struct stat st;
	char *buf, *p, *nl, *end;
	struct token *t;
	ssize_t r;
	size_t got = 0;
	int fd, err = 0;

	fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0)
		err = -errno;
	else if (st.st_size > STORE_FILE_MAX)
		err = -EFBIG;
	if (err) {
		close(fd);
		return err;
	}
	buf = malloc(st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		r = read(fd, buf + got, st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : -EIO;
			break;
		}
		got += r;
	}
	close(fd);
	if (err)
		goto out;
	buf[got] = '\0';
	end = buf + got;
	if (got < strlen(STORE_MAGIC) || memcmp(buf, STORE_MAGIC, strlen(STORE_MAGIC))) {
		err = -EBADMSG;
		goto out;
	}
	for (p = buf + strlen(STORE_MAGIC); p < end; p = nl + 1) {
		nl = memchr(p, '\n', end - p);
		if (!nl || s->n >= JOIN_STORE_MAX) {
			err = -EBADMSG;
			goto out;
		}
		t = realloc(s->v, (s->n + 1) * sizeof(*t));
		if (!t) {
			err = -ENOMEM;
			goto out;
		}
		s->v = t;
		err = parse_line(p, nl - p, &s->v[s->n]);
		if (err)
			goto out;
		s->n++;
	}
out:
	if (err == -EBADMSG)
		log_warnx("%s: %s is damaged; refusing to use it", __func__, s->path);
	free(buf);
	return err;
}

int join_store_open(struct join_store **out, const char *path)
{
	struct join_store *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	if (path) {
		s->path = strdup(path);
		if (!s->path) {
			free(s);
			return -ENOMEM;
		}
		err = load(s);
		if (err) {
			join_store_close(s);
			return err;
		}
	}
	*out = s;
	return 0;
}

void join_store_close(struct join_store *s)
{
	if (!s)
		return;
	free(s->path);
	free(s->v);
	free(s);
}

/* Drop tokens that expired more than JOIN_TOKEN_KEEP ago. Returns how many went. */
static size_t prune(struct join_store *s, time_t now)
{
	size_t i, j = 0;

	for (i = 0; i < s->n; i++)
		if (s->v[i].expires + JOIN_TOKEN_KEEP > now)
			s->v[j++] = s->v[i];
	i = s->n - j;
	s->n = j;
	return i;
}

int join_token_create(struct join_store *s, time_t now, unsigned ttl,
		      char text[JOIN_TOKEN_TEXT_MAX])
{
	uint8_t secret[JOIN_TOKEN_SECRET_LEN];
	char id_hex[JOIN_TOKEN_ID_HEX], secret_hex[2 * JOIN_TOKEN_SECRET_LEN + 1];
	struct token t = {0}, *v;
	int err;

	if (ttl == 0)
		ttl = JOIN_TOKEN_TTL_DEFAULT;
	if (ttl > JOIN_TOKEN_TTL_MAX)
		return -EINVAL;
	/* Pruning only removes tokens that are refused anyway, so it need not be undone if
	 * the write below fails. */
	prune(s, now);
	if (s->n >= JOIN_STORE_MAX)
		return -ENOSPC;
	do {
		err = tls_random(t.id, sizeof(t.id));
	} while (!err && find(s, t.id));
	if (!err)
		err = tls_random(secret, sizeof(secret));
	if (!err)
		err = tls_sha256(secret, sizeof(secret), t.hash);
	if (err)
		goto out;
	t.created = now;
	t.expires = (int64_t)now + ttl;
	v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v) {
		err = -ENOMEM;
		goto out;
	}
	s->v = v;
	s->v[s->n++] = t;
	err = persist(s);
	if (err) {
		s->n--;
		goto out;
	}
	to_hex(t.id, sizeof(t.id), id_hex);
	to_hex(secret, sizeof(secret), secret_hex);
	snprintf(text, JOIN_TOKEN_TEXT_MAX, "%s%s.%s", JOIN_TOKEN_PREFIX, id_hex, secret_hex);
	log_info("%s: join token %s created, expires in %u s", __func__, id_hex, ttl);
out:
	memset(secret, 0, sizeof(secret));
	memset(secret_hex, 0, sizeof(secret_hex));
	return err;
}

/* The check, returning the token found so consume can mark it. */
static int check(const struct join_store *s, const char *text, size_t len, time_t now,
		 struct token **found, char id_hex[JOIN_TOKEN_ID_HEX])
{
	uint8_t id[JOIN_TOKEN_ID_LEN], secret[JOIN_TOKEN_SECRET_LEN], hash[TLS_FINGERPRINT_LEN];
	struct token *t;
	int err;

	*found = NULL;
	if (parse_token(text, len, id, secret))
		return -EINVAL;
	/* The id is public, so logs name even a forged token by it. */
	to_hex(id, sizeof(id), id_hex);
	t = find(s, id);
	*found = t;
	if (!t)
		return -ENOENT;
	err = tls_sha256(secret, sizeof(secret), hash);
	memset(secret, 0, sizeof(secret));
	if (err)
		return err;
	if (!ct_equal(hash, t->hash, sizeof(hash)))
		return -EACCES;
	if (t->used_at)
		return -EALREADY;
	if (now >= t->expires)
		return -EKEYEXPIRED;
	return 0;
}

int join_token_check(const struct join_store *s, const char *text, size_t len, time_t now)
{
	char id_hex[JOIN_TOKEN_ID_HEX];
	struct token *t;

	return check(s, text, len, now, &t, id_hex);
}

int join_token_consume(struct join_store *s, const char *text, size_t len, time_t now,
		       const char *host)
{
	char id_hex[JOIN_TOKEN_ID_HEX] = "-";
	struct token *t;
	int err;

	if (!ca_name_valid(host) || strlen(host) > JOIN_HOST_MAX) {
		log_warnx("%s: join refused: the host name is not valid", __func__);
		return -EINVAL;
	}
	err = check(s, text, len, now, &t, id_hex);
	if (err) {
		if (err == -EALREADY)
			log_warnx("%s: host %s: join refused: token %s: %s (by %s)", __func__, host,
				  id_hex, join_token_strerror(err), t->used_by);
		else
			log_warnx("%s: host %s: join refused: token %s: %s", __func__, host, id_hex,
				  join_token_strerror(err));
		return err;
	}
	t->used_at = now > 0 ? now : 1;
	snprintf(t->used_by, sizeof(t->used_by), "%s", host);
	err = persist(s);
	if (err) {
		/* Not durable, so not used: the join fails and the token may be tried again. */
		t->used_at = 0;
		t->used_by[0] = '\0';
		return err;
	}
	log_info("%s: host %s: join token %s used", __func__, host, id_hex);
	return 0;
}

const char *join_token_strerror(int err)
{
	switch (err) {
	case 0:
		return "token accepted";
	case -EINVAL:
		return "malformed token";
	case -ENOENT:
		return "unknown token";
	case -EACCES:
		return "forged token (wrong secret)";
	case -EALREADY:
		return "token already used";
	case -EKEYEXPIRED:
		return "token expired";
	default:
		return strerror(-err);
	}
}

size_t join_store_count(const struct join_store *s)
{
	return s->n;
}

int join_store_get(const struct join_store *s, size_t i, struct join_token_info *out)
{
	const struct token *t;

	if (i >= s->n)
		return -ENOENT;
	t = &s->v[i];
	to_hex(t->id, sizeof(t->id), out->id);
	out->created = t->created;
	out->expires = t->expires;
	out->used_at = t->used_at;
	snprintf(out->used_by, sizeof(out->used_by), "%s", t->used_by);
	return 0;
}
