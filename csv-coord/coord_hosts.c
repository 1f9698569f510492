#include "csv-coord/coord_hosts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "csv-coord/ca.h"
#include "lib/atomic_file.h"
#include "lib/config.h"

#define COORD_HOSTS_FILE_MAX (1024 * 1024)

void coord_hosts_init(struct coord_hosts *t)
{
	memset(t, 0, sizeof(*t));
	t->next_id = 1;
}

struct coord_host *coord_hosts_by_name(struct coord_hosts *t, const char *name)
{
	unsigned i;

	for (i = 0; i < t->n; i++)
		if (!strcmp(t->h[i].name, name))
			return &t->h[i];
	return NULL;
}

struct coord_host *coord_hosts_by_id(struct coord_hosts *t, uint32_t id)
{
	unsigned i;

	for (i = 0; i < t->n; i++)
		if (t->h[i].id == id)
			return &t->h[i];
	return NULL;
}

struct coord_host *coord_hosts_by_fp(struct coord_hosts *t, const uint8_t fp[TLS_FINGERPRINT_LEN])
{
	unsigned i;

	/* A removed host's certificate still chains to our CA; only this table can refuse it. */
	for (i = 0; i < t->n; i++)
		if (t->h[i].enrolled && !t->h[i].removed &&
		    !memcmp(t->h[i].fp, fp, TLS_FINGERPRINT_LEN))
			return &t->h[i];
	return NULL;
}

int coord_hosts_add(struct coord_hosts *t, const char *name, unsigned votes,
		    struct coord_host **out)
{
	struct coord_host *h;

	if (!ca_name_valid(name) || votes < 1 || votes > 16)
		return -EINVAL;
	if (coord_hosts_by_name(t, name))
		return -EEXIST;
	if (t->n == COORD_HOSTS_MAX || t->next_id == UINT32_MAX)
		return -ENOSPC;
	h = &t->h[t->n++];
	memset(h, 0, sizeof(*h));
	h->id = t->next_id++;
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->votes = votes;
	h->epoch = 1;
	*out = h;
	return 0;
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int fp_from_hex(const char *s, uint8_t fp[TLS_FINGERPRINT_LEN])
{
	size_t i;

	if (strlen(s) != 2 * TLS_FINGERPRINT_LEN)
		return -EINVAL;
	for (i = 0; i < TLS_FINGERPRINT_LEN; i++) {
		int hi = hex_nibble(s[2 * i]), lo = hex_nibble(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		fp[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int coord_hosts_dump(const struct coord_hosts *t, char **text)
{
	json_t *root, *arr;
	unsigned i, k;

	arr = json_array();
	root = json_pack("{s:i, s:I, s:o}", "version", COORD_HOSTS_VERSION, "next_id",
			 (json_int_t)t->next_id, "hosts", arr);
	if (!root)
		return -ENOMEM;
	for (i = 0; i < t->n; i++) {
		const struct coord_host *h = &t->h[i];
		char fp[2 * TLS_FINGERPRINT_LEN + 1];
		json_t *iqns = json_array();

		for (k = 0; k < h->n_iqn; k++)
			json_array_append_new(iqns, json_string(h->iqn[k]));
		tls_fingerprint_hex(h->fp, fp);
		if (json_array_append_new(
			    arr, json_pack("{s:I, s:s, s:s, s:o, s:I, s:b, s:b, s:b, s:i, s:b}",
					   "id", (json_int_t)h->id, "name", h->name, "fingerprint",
					   fp, "iqns", iqns, "epoch", (json_int_t)h->epoch,
					   "enrolled", h->enrolled, "fenced", h->fenced, "removed",
					   h->removed, "votes", h->votes, "started", h->started))) {
			json_decref(root);
			return -ENOMEM;
		}
	}
	*text = json_dumps(root, JSON_INDENT(1));
	json_decref(root);
	return *text ? 0 : -ENOMEM;
}

static int parse_host(struct coord_host *h, json_t *o)
{
	json_int_t id, epoch;
	const char *name, *fp;
	json_t *iqns, *v;
	int enrolled, fenced, removed, votes, started = 1;
	size_t k;

	/* "started" came later: a table without it may hold running hosts, so it means true. */
	if (json_unpack(o, "{s:I, s:s, s:s, s:o, s:I, s:b, s:b, s:b, s:i, s?b}", "id", &id, "name",
			&name, "fingerprint", &fp, "iqns", &iqns, "epoch", &epoch, "enrolled",
			&enrolled, "fenced", &fenced, "removed", &removed, "votes", &votes,
			"started", &started) < 0)
		return -EBADMSG;
	/* The target keeps epochs as 32-bit numbers (target/fence.h). */
	if (id < 1 || id >= UINT32_MAX || epoch < 1 || epoch > UINT32_MAX || votes < 1 ||
	    votes > 16 || !ca_name_valid(name) || !json_is_array(iqns) ||
	    json_array_size(iqns) < (enrolled ? 1 : 0) || json_array_size(iqns) > AGENT_MAX_IQNS)
		return -EBADMSG;
	memset(h, 0, sizeof(*h));
	h->id = (uint32_t)id;
	snprintf(h->name, sizeof(h->name), "%s", name);
	if (fp_from_hex(fp, h->fp))
		return -EBADMSG;
	json_array_foreach(iqns, k, v)
	{
		const char *why;

		if (!json_is_string(v) || json_string_length(v) > AGENT_IQN_MAX ||
		    hf_config_check_iscsi_name(json_string_value(v), &why))
			return -EBADMSG;
		snprintf(h->iqn[k], sizeof(h->iqn[k]), "%s", json_string_value(v));
	}
	h->n_iqn = json_array_size(iqns);
	h->epoch = (uint64_t)epoch;
	h->enrolled = enrolled;
	h->fenced = fenced;
	h->removed = removed;
	h->votes = votes;
	h->started = started;
	return 0;
}

int coord_hosts_parse(struct coord_hosts *t, const char *text, size_t len)
{
	json_t *root, *arr, *o;
	json_int_t next_id;
	int version, err = -EBADMSG;
	unsigned j;
	size_t i;

	coord_hosts_init(t);
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	if (!root || json_unpack(root, "{s:i, s:I, s:o}", "version", &version, "next_id", &next_id,
				 "hosts", &arr) < 0)
		goto out;
	if (version != COORD_HOSTS_VERSION || !json_is_array(arr) ||
	    json_array_size(arr) > COORD_HOSTS_MAX || next_id < 1 || next_id > UINT32_MAX)
		goto out;
	json_array_foreach(arr, i, o)
	{
		struct coord_host *h = &t->h[i];

		if (parse_host(h, o))
			goto out;
		if (h->id >= next_id)
			goto out;
		for (j = 0; j < i; j++) {
			const struct coord_host *p = &t->h[j];

			if (p->id == h->id || !strcmp(p->name, h->name) ||
			    (p->enrolled && h->enrolled && !p->removed && !h->removed &&
			     !memcmp(p->fp, h->fp, sizeof(h->fp))))
				goto out;
		}
		t->n++;
	}
	t->next_id = (uint32_t)next_id;
	err = 0;
out:
	json_decref(root);
	if (err)
		coord_hosts_init(t);
	return err;
}

int coord_hosts_load(struct coord_hosts *t, const char *path)
{
	char *buf;
	ssize_t n;
	size_t len = 0;
	int fd, err;

	coord_hosts_init(t);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(COORD_HOSTS_FILE_MAX + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while ((n = read(fd, buf + len, COORD_HOSTS_FILE_MAX + 1 - len)) > 0)
		len += n;
	err = n < 0 ? -errno : 0;
	close(fd);
	if (!err && len > COORD_HOSTS_FILE_MAX)
		err = -EFBIG;
	if (!err)
		err = coord_hosts_parse(t, buf, len);
	free(buf);
	return err;
}

int coord_hosts_save(const struct coord_hosts *t, const char *path)
{
	char *text;
	int err;

	err = coord_hosts_dump(t, &text);
	if (err)
		return err;
	err = atomic_file_write(path, text, strlen(text), 0600);
	free(text);
	return err;
}
