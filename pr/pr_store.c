/* The APTPL file. Text, one fact per line, so an operator can read it:
 *
 *   holdfast-pr 1
 *   generation <decimal>
 *   aptpl <0|1>
 *   reservation <type> <scope>
 *   reg <key, 16 hex digits> <relative target port> <holder 0|1> <all_tg_pt 0|1> <port name>
 *   ...
 *   end <number of reg lines>
 *
 * The trailing count catches a file cut short by anything that bypassed the atomic write. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/atomic_file.h"
#include "pr/pr_int.h"
#include "pr/pr_store.h"

#define STORE_MAGIC   "holdfast-pr"
#define STORE_VERSION 1
#define LINE_MAX_LEN  (PR_PORT_MAX + 64)

static int posix_write(void *arg, const char *path, const void *data, size_t len)
{
	return atomic_file_write(path, data, len, 0600);
}

static int posix_read(void *arg, const char *path, void *buf, size_t cap, size_t *len)
{
	size_t got = 0;
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (got == cap) {
			/* One more byte tells "exactly full" from "too big". */
			char extra;

			n = read(fd, &extra, 1);
			if (n > 0)
				err = -EFBIG;
			else if (n < 0 && errno == EINTR)
				continue;
			else if (n < 0)
				err = -errno;
			break;
		}
		n = read(fd, (char *)buf + got, cap - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return err;
}

const struct pr_store_io pr_store_posix = {
	.write = posix_write,
	.read = posix_read,
	.arg = NULL,
};

int pr_store_encode(const struct pr_state *s, char *buf, size_t cap, size_t *len)
{
	size_t pos = 0;
	int n;

#define EMIT(...)                                                                                  \
	do {                                                                                       \
		n = snprintf(buf + pos, cap - pos, __VA_ARGS__);                                   \
		if (n < 0 || (size_t)n >= cap - pos)                                               \
			return -ENOSPC;                                                            \
		pos += (size_t)n;                                                                  \
	} while (0)

	if (cap == 0)
		return -ENOSPC;
	EMIT("%s %d\n", STORE_MAGIC, STORE_VERSION);
	EMIT("generation %" PRIu32 "\n", s->generation);
	EMIT("aptpl %d\n", s->aptpl ? 1 : 0);
	EMIT("reservation %u %u\n", s->type, s->scope);
	for (uint32_t i = 0; i < s->nregs; i++) {
		const struct pr_reg *r = &s->regs[i];

		EMIT("reg %016" PRIx64 " %u %d %d %s\n", r->key, r->itn.rel_port, r->holder ? 1 : 0,
		     r->all_tg_pt ? 1 : 0, r->itn.port);
	}
	EMIT("end %" PRIu32 "\n", s->nregs);
#undef EMIT
	*len = pos;
	return 0;
}

/* Take the next line (without its newline) into line; false at the end or when it is too
 * long or holds a NUL. */
static bool next_line(const char *buf, size_t len, size_t *pos, char *line, size_t cap)
{
	const char *nl;
	size_t n;

	if (*pos >= len)
		return false;
	nl = memchr(buf + *pos, '\n', len - *pos);
	if (!nl)
		return false;
	n = (size_t)(nl - (buf + *pos));
	if (n >= cap || memchr(buf + *pos, '\0', n))
		return false;
	memcpy(line, buf + *pos, n);
	line[n] = '\0';
	*pos += n + 1;
	return true;
}

/* Parse an unsigned decimal or hex number that must fill the token up to end or a space. */
static bool parse_num(const char **p, int base, uint64_t max, uint64_t *v)
{
	char *end;
	unsigned long long x;

	char ch = **p;

	/* strtoull() would also take blanks and signs; the file has neither. */
	if (!((ch >= '0' && ch <= '9') ||
	      (base == 16 && ((ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))))
		return false;
	errno = 0;
	x = strtoull(*p, &end, base);
	if (errno || end == *p || x > max || (*end != ' ' && *end != '\0'))
		return false;
	*v = x;
	*p = *end == ' ' ? end + 1 : end;
	return true;
}

static bool parse_word(const char **p, const char *word)
{
	size_t n = strlen(word);

	if (strncmp(*p, word, n) != 0 || (*p)[n] != ' ')
		return false;
	*p += n + 1;
	return true;
}

static int decode(const char *buf, size_t len, struct pr_state *s)
{
	char line[LINE_MAX_LEN];
	const char *p;
	uint64_t v, key, rel, holder, atp, count;
	size_t pos = 0;
	unsigned holders = 0;
	char name[PR_NAME_MAX];

	if (!next_line(buf, len, &pos, line, sizeof(line)) ||
	    (p = line, !parse_word(&p, STORE_MAGIC)) || !parse_num(&p, 10, 1000, &v) ||
	    v != STORE_VERSION || *p)
		return -EBADMSG;
	if (!next_line(buf, len, &pos, line, sizeof(line)) ||
	    (p = line, !parse_word(&p, "generation")) || !parse_num(&p, 10, UINT32_MAX, &v) || *p)
		return -EBADMSG;
	s->generation = (uint32_t)v;
	if (!next_line(buf, len, &pos, line, sizeof(line)) ||
	    (p = line, !parse_word(&p, "aptpl")) || !parse_num(&p, 10, 1, &v) || *p)
		return -EBADMSG;
	s->aptpl = v;
	if (!next_line(buf, len, &pos, line, sizeof(line)) ||
	    (p = line, !parse_word(&p, "reservation")) || !parse_num(&p, 10, 15, &v))
		return -EBADMSG;
	s->type = (uint8_t)v;
	if (!parse_num(&p, 10, 15, &v) || *p)
		return -EBADMSG;
	s->scope = (uint8_t)v;
	if ((s->type != PR_TYPE_NONE && !pr_type_valid(s->type)) || s->scope != PR_SCOPE_LU)
		return -EBADMSG;

	for (;;) {
		if (!next_line(buf, len, &pos, line, sizeof(line)))
			return -EBADMSG;
		p = line;
		if (parse_word(&p, "end")) {
			if (!parse_num(&p, 10, PR_MAX_REGS, &count) || *p || count != s->nregs)
				return -EBADMSG;
			break;
		}
		if (!parse_word(&p, "reg") || !parse_num(&p, 16, UINT64_MAX, &key) ||
		    !parse_num(&p, 10, UINT16_MAX, &rel) || !parse_num(&p, 10, 1, &holder) ||
		    !parse_num(&p, 10, 1, &atp) || strlen(p) >= PR_PORT_MAX ||
		    pr_port_name(p, name, sizeof(name)) || s->nregs == PR_MAX_REGS ||
		    pr_index(s, p, (uint16_t)rel) >= 0)
			return -EBADMSG;
		struct pr_reg *r = &s->regs[s->nregs++];

		snprintf(r->itn.port, sizeof(r->itn.port), "%s", p);
		r->itn.rel_port = (uint16_t)rel;
		r->key = key;
		r->holder = holder;
		r->all_tg_pt = atp;
		holders += holder;
	}
	if (pos != len)
		return -EBADMSG;
	/* A single-holder reservation has exactly one holder; the others have none recorded. */
	if (s->type == PR_TYPE_NONE || pr_type_ar(s->type)) {
		if (holders)
			return -EBADMSG;
		if (s->type != PR_TYPE_NONE && s->nregs == 0)
			return -EBADMSG;
	} else if (holders != 1) {
		return -EBADMSG;
	}
	return 0;
}

int pr_store_decode(const char *buf, size_t len, struct pr_state *out)
{
	int rc;

	pr_state_init(out);
	rc = decode(buf, len, out);
	if (rc)
		pr_state_init(out);
	return rc;
}

int pr_store_save(const struct pr_store_io *io, const char *path, const struct pr_state *s)
{
	size_t len;
	char *buf;
	int rc;

	buf = malloc(PR_STORE_MAX);
	if (!buf)
		return -ENOMEM;
	rc = pr_store_encode(s, buf, PR_STORE_MAX, &len);
	if (rc == 0)
		rc = io->write(io->arg, path, buf, len);
	free(buf);
	return rc;
}

int pr_store_load(const struct pr_store_io *io, const char *path, struct pr_state *s)
{
	size_t len = 0;
	char *buf;
	int rc;

	pr_state_init(s);
	buf = malloc(PR_STORE_MAX);
	if (!buf)
		return -ENOMEM;
	rc = io->read(io->arg, path, buf, PR_STORE_MAX, &len);
	if (rc == -ENOENT) {
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	rc = pr_store_decode(buf, len, s);
	if (rc == 0 && !s->aptpl)
		pr_state_init(s);
out:
	free(buf);
	return rc;
}
