#include "lib/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <libconfig.h>

#include "lib/atomic_file.h"
#include "lib/log.h"

/* clang-format off */
const char hf_config_default_text[] =
	"# The embedded default: one sparse 1 GiB LUN on 127.0.0.1:3260, no CHAP, open ACL.\n"
	"data_dir = \"holdfast-data\";\n"
	"portals = ( { name = \"lo\"; address = \"127.0.0.1\"; port = 3260; tpgt = 1; } );\n"
	"backstores = ( { name = \"disk0\"; type = \"file\"; path = \"disk0.img\";\n"
	"                 size = \"1G\"; block_size = 512; } );\n"
	"targets = ( { iqn = \"iqn.2026-11.org.holdfast:default\"; alias = \"default\";\n"
	"              portals = [ \"lo\" ]; luns = ( { id = 0; backstore = \"disk0\"; } ); } );\n";
/* clang-format on */

#define HF_LUN_ID_MAX	   16383 /* sam5r21 4.7.3: flat space addressing reaches LUN 16383 */
#define HF_WORKERS_MAX	   64
#define HF_WORKERS_DEF	   16
#define HF_CHAP_SECRET_MIN 12 /* rfc7143 9.2.1: at least 96 bits when not random */
#define HF_DELAY_MS_MAX	   60000

/* How long a paused LUN holds a write before answering BUSY: default and most, in ms. Below
 * the usual initiator command timeouts (30 s for Linux and QEMU), so a held write is answered
 * before its initiator gives up on it. */
#define HF_MAINTENANCE_HOLD_MS_DEF 10000
#define HF_MAINTENANCE_HOLD_MS_MAX 600000

/* Cluster defaults and bounds; the heartbeat bounds are csv-coord/lease.h's (10 ms..60 s, 3..100
 * misses), which keep the timing argument of docs/coordinator-timing.md valid. */
#define HF_CLUSTER_AGENT_PORT 7401
#define HF_CLUSTER_JOIN_PORT  7402
#define HF_CLUSTER_HB_MIN_MS  10
#define HF_CLUSTER_HB_MAX_MS  60000
#define HF_CLUSTER_MISS_MIN   3
#define HF_CLUSTER_MISS_MAX   100
#define HF_CLUSTER_NAME_MAX   63

/* One parse: where errors go and which folder relative paths start from. */
struct parse {
	const char *name; /* the file as the user named it, for error messages */
	const char *base; /* absolute folder for relative paths */
	char *err;
	size_t errlen;
	struct hf_config *cfg;
};

static int bad(struct parse *p, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Report `file:line: what` for the setting s and return -EINVAL, so that callers can write
 * `return bad(...)`. Only the first error is kept: it is the one the user must fix first. */
static int bad(struct parse *p, const config_setting_t *s, const char *fmt, ...)
{
	const char *file = p->name;
	int line = s ? config_setting_source_line(s) : 0;
	va_list ap;
	int n;

	/* A setting from an @include'd file names that file, not the one we were given. */
	if (s && config_setting_source_file(s))
		file = config_setting_source_file(s);
	if (line <= 0)
		line = 1;
	if (!p->err || !p->errlen)
		return -EINVAL;
	n = snprintf(p->err, p->errlen, "%s:%d: ", file, line);
	if (n >= 0 && (size_t)n < p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Refuse any key of group g that is not in allowed: a typo must not silently become a
 * default. */
static int check_keys(struct parse *p, const config_setting_t *g, const char *what,
		      const char *const *allowed)
{
	int i, n = config_setting_length(g);

	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, i);
		const char *key = config_setting_name(s);
		const char *const *a;

		for (a = allowed; *a; a++)
			if (!strcmp(*a, key))
				break;
		if (!*a)
			return bad(p, s, "unknown key '%s' in %s", key, what);
	}
	return 0;
}

/* Returns 1 and leaves out alone when key is absent (and not required), 0 when copied. */
static int get_str(struct parse *p, const config_setting_t *g, const char *what, const char *key,
		   int required, char *out, size_t outlen)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	const char *v;

	if (!s) {
		if (required)
			return bad(p, g, "%s: '%s' is required", what, key);
		return 1;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return bad(p, s, "%s: '%s' must be a string", what, key);
	v = config_setting_get_string(s);
	if (strlen(v) >= outlen)
		return bad(p, s, "%s: '%s' is too long (at most %zu bytes)", what, key, outlen - 1);
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

static int get_int(struct parse *p, const config_setting_t *g, const char *what, const char *key,
		   int required, long long min, long long max, long long *out)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	long long v;

	if (!s) {
		if (required)
			return bad(p, g, "%s: '%s' is required", what, key);
		return 1;
	}
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64)
		return bad(p, s, "%s: '%s' must be an integer", what, key);
	v = config_setting_get_int64(s);
	if (v < min || v > max)
		return bad(p, s, "%s: '%s' is %lld, must be %lld..%lld", what, key, v, min, max);
	*out = v;
	return 0;
}

/* A list of groups, "( { ... }, { ... } )"; absent is fine and reads as empty. */
static int get_group_list(struct parse *p, const config_setting_t *g, const char *key,
			  const config_setting_t **out)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	int i;

	*out = s;
	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_LIST)
		return bad(p, s, "'%s' must be a list of groups: ( { ... }, ... )", key);
	for (i = 0; i < config_setting_length(s); i++)
		if (!config_setting_is_group(config_setting_get_elem(s, i)))
			return bad(p, config_setting_get_elem(s, i),
				   "every element of '%s' must be a group { ... }", key);
	return 0;
}

/* A list or array of strings, "[ "a", "b" ]". */
static int get_string_list(struct parse *p, const config_setting_t *g, const char *what,
			   const char *key, const config_setting_t **out)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	int i;

	*out = s;
	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(s) != CONFIG_TYPE_LIST)
		return bad(p, s, "%s: '%s' must be a list of strings: [ \"...\", ... ]", what, key);
	for (i = 0; i < config_setting_length(s); i++)
		if (config_setting_type(config_setting_get_elem(s, i)) != CONFIG_TYPE_STRING)
			return bad(p, s, "%s: every element of '%s' must be a string", what, key);
	return 0;
}

/* "512", "64K", "256M", "1G", "2T" (powers of 1024), or a plain integer setting. */
int hf_config_parse_size(const char *text, uint64_t *out)
{
	uint64_t v = 0, mult = 1;
	const char *c = text;

	if (!isdigit((unsigned char)*c))
		return -EINVAL;
	for (; isdigit((unsigned char)*c); c++) {
		if (v > (UINT64_MAX - (*c - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (*c - '0');
	}
	switch (toupper((unsigned char)*c)) {
	case '\0':
		break;
	case 'K':
		mult = 1ULL << 10;
		break;
	case 'M':
		mult = 1ULL << 20;
		break;
	case 'G':
		mult = 1ULL << 30;
		break;
	case 'T':
		mult = 1ULL << 40;
		break;
	default:
		return -EINVAL;
	}
	if (*c && c[1])
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

static int hex_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return s[n] == '\0';
}

/* rfc7143 4.2.7.4-4.2.7.6: iqn.yyyy-mm.reversed.domain[:anything], eui.<16 hex>,
 * naa.<16 or 32 hex>. We accept only the ASCII subset of the stringprep profile, in its
 * normalized (lower-case) form for iqn. names, so that comparisons can be byte-wise. */
int hf_config_check_iscsi_name(const char *name, const char **why)
{
	size_t len = strlen(name), i;
	const char *c;
	int label = 0;

	if (len == 0 || len >= HF_IQN_MAX) {
		*why = "length must be 1..223 bytes";
		return -EINVAL;
	}
	if (!strncmp(name, "eui.", 4)) {
		if (len != 4 + 16 || !hex_digits(name + 4, 16)) {
			*why = "an eui. name is 'eui.' and 16 hex digits";
			return -EINVAL;
		}
		return 0;
	}
	if (!strncmp(name, "naa.", 4)) {
		if (!((len == 4 + 16 && hex_digits(name + 4, 16)) ||
		      (len == 4 + 32 && hex_digits(name + 4, 32)))) {
			*why = "an naa. name is 'naa.' and 16 or 32 hex digits";
			return -EINVAL;
		}
		return 0;
	}
	if (strncmp(name, "iqn.", 4)) {
		*why = "must start with iqn., eui. or naa.";
		return -EINVAL;
	}
	c = name + 4;
	if (!(isdigit((unsigned char)c[0]) && isdigit((unsigned char)c[1]) &&
	      isdigit((unsigned char)c[2]) && isdigit((unsigned char)c[3]) && c[4] == '-' &&
	      isdigit((unsigned char)c[5]) && isdigit((unsigned char)c[6]) && c[7] == '.') ||
	    (c[5] - '0') * 10 + (c[6] - '0') < 1 || (c[5] - '0') * 10 + (c[6] - '0') > 12) {
		*why = "an iqn. name continues with the date yyyy-mm and a dot";
		return -EINVAL;
	}
	/* The reversed domain name: dot-separated labels of letters, digits and hyphens. */
	for (c += 8; *c && *c != ':'; c++) {
		if (*c == '.') {
			if (!label)
				break;
			label = 0;
		} else if (islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '-') {
			label++;
		} else {
			break;
		}
	}
	if (!label || (*c && *c != ':')) {
		*why = "an iqn. name needs a reversed domain name (lower-case letters, digits, "
		       "'-', '.') after the date";
		return -EINVAL;
	}
	for (i = c - name; i < len; i++) {
		char ch = name[i];

		if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '-' ||
		      ch == '.' || ch == ':')) {
			*why = "only lower-case letters, digits, '-', '.' and ':' are allowed";
			return -EINVAL;
		}
	}
	return 0;
}

/* Join base and a relative path; absolute paths are kept as they are. */
static int resolve_path(const char *base, const char *path, char *out, size_t outlen)
{
	int n;

	if (path[0] == '/')
		n = snprintf(out, outlen, "%s", path);
	else
		n = snprintf(out, outlen, "%s/%s", base, path);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

static int parse_chap(struct parse *p, const config_setting_t *g, const char *what,
		      struct hf_chap *chap)
{
	static const char *const keys[] = {"user", "secret", NULL};
	const config_setting_t *sec;
	int err;
	size_t n;

	if (!config_setting_is_group(g))
		return bad(p, g, "%s must be a group { user = ...; secret = ...; }", what);
	err = check_keys(p, g, what, keys);
	if (!err)
		err = get_str(p, g, what, "user", 1, chap->user, sizeof(chap->user));
	if (!err)
		err = get_str(p, g, what, "secret", 1, chap->secret, sizeof(chap->secret));
	if (err)
		return err;
	if (!chap->user[0])
		return bad(p, g, "%s: 'user' must not be empty", what);
	sec = config_setting_get_member(g, "secret");
	n = strlen(chap->secret);
	if (n < HF_CHAP_SECRET_MIN)
		return bad(p, sec, "%s: the secret is %zu bytes, at least %d are required", what, n,
			   HF_CHAP_SECRET_MIN);
	return 0;
}

static int parse_chap_list(struct parse *p, const config_setting_t *g, const char *what,
			   struct hf_chap **out, size_t *nout)
{
	const config_setting_t *l;
	int i, j, n, err;

	err = get_group_list(p, g, "chap", &l);
	if (err || !l)
		return err;
	n = config_setting_length(l);
	if (n == 0)
		return 0;
	*out = calloc(n, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	*nout = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(l, i);

		err = parse_chap(p, e, what, &(*out)[i]);
		if (err)
			return err;
		for (j = 0; j < i; j++)
			if (!strcmp((*out)[j].user, (*out)[i].user))
				return bad(p, e, "%s: CHAP user '%s' is listed twice", what,
					   (*out)[i].user);
	}
	return 0;
}

static int parse_portal(struct parse *p, const config_setting_t *g, struct hf_portal *pt)
{
	static const char *const keys[] = {"name", "address", "port", "tpgt", NULL};
	struct in6_addr a6;
	struct in_addr a4;
	long long v;
	int err;

	err = check_keys(p, g, "portal", keys);
	if (!err)
		err = get_str(p, g, "portal", "name", 1, pt->name, sizeof(pt->name));
	if (err)
		return err;
	if (!pt->name[0])
		return bad(p, g, "portal: 'name' must not be empty");
	err = get_str(p, g, "portal", "address", 1, pt->address, sizeof(pt->address));
	if (err)
		return err;
	if (inet_pton(AF_INET, pt->address, &a4) != 1 && inet_pton(AF_INET6, pt->address, &a6) != 1)
		return bad(p, config_setting_get_member(g, "address"),
			   "portal '%s': address '%s' is not a numeric IPv4 or IPv6 address",
			   pt->name, pt->address);
	/* rfc7143 13.5 (well-known port): 3260 is iSCSI's registered port. */
	v = 3260;
	err = get_int(p, g, "portal", "port", 0, 1, 65535, &v);
	if (err < 0)
		return err;
	pt->port = v;
	v = 1;
	err = get_int(p, g, "portal", "tpgt", 0, 1, 65535, &v);
	if (err < 0)
		return err;
	pt->tpgt = v;
	pt->line = config_setting_source_line(g);
	return 0;
}

static int parse_portals(struct parse *p, const config_setting_t *root)
{
	struct hf_config *cfg = p->cfg;
	const config_setting_t *l;
	int i, j, n, err;

	err = get_group_list(p, root, "portals", &l);
	if (err)
		return err;
	n = l ? config_setting_length(l) : 0;
	if (n == 0)
		return bad(p, l ? l : root, "at least one portal is required");
	cfg->portals = calloc(n, sizeof(*cfg->portals));
	if (!cfg->portals)
		return -ENOMEM;
	cfg->nportals = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(l, i);
		struct hf_portal *pt = &cfg->portals[i];

		err = parse_portal(p, g, pt);
		if (err)
			return err;
		for (j = 0; j < i; j++) {
			if (!strcmp(cfg->portals[j].name, pt->name))
				return bad(p, g, "portal '%s' is defined twice (first at line %d)",
					   pt->name, cfg->portals[j].line);
			if (!strcmp(cfg->portals[j].address, pt->address) &&
			    cfg->portals[j].port == pt->port)
				return bad(p, g,
					   "portal '%s' listens on %s port %u like portal '%s'",
					   pt->name, pt->address, pt->port, cfg->portals[j].name);
		}
	}
	return 0;
}

static int parse_backstore(struct parse *p, const config_setting_t *g, struct hf_backstore *bs)
{
	static const char *const keys[] = {"name",	 "type",     "path", "size",
					   "block_size", "delay_ms", NULL};
	const config_setting_t *s;
	char type[16], path[PATH_MAX];
	long long v;
	int err;

	err = check_keys(p, g, "backstore", keys);
	if (!err)
		err = get_str(p, g, "backstore", "name", 1, bs->name, sizeof(bs->name));
	if (err)
		return err;
	if (!bs->name[0])
		return bad(p, g, "backstore: 'name' must not be empty");
	err = get_str(p, g, "backstore", "type", 1, type, sizeof(type));
	if (err)
		return err;
	if (!strcmp(type, "file"))
		bs->type = HF_BS_FILE;
	else if (!strcmp(type, "memory"))
		bs->type = HF_BS_MEMORY;
	else
		return bad(p, config_setting_get_member(g, "type"),
			   "backstore '%s': type '%s' is unknown (file or memory)", bs->name, type);

	err = get_str(p, g, "backstore", "path", bs->type == HF_BS_FILE, path, sizeof(path));
	if (err < 0)
		return err;
	if (bs->type == HF_BS_MEMORY && err == 0)
		return bad(p, config_setting_get_member(g, "path"),
			   "backstore '%s': a memory backstore has no path", bs->name);
	if (bs->type == HF_BS_FILE) {
		if (!path[0])
			return bad(p, config_setting_get_member(g, "path"),
				   "backstore '%s': 'path' must not be empty", bs->name);
		if (resolve_path(p->cfg->data_dir, path, bs->path, sizeof(bs->path)))
			return bad(p, config_setting_get_member(g, "path"),
				   "backstore '%s': path is too long", bs->name);
	}

	v = 512;
	err = get_int(p, g, "backstore", "block_size", 0, 0, INT32_MAX, &v);
	if (err < 0)
		return err;
	if (v != 512 && v != 4096)
		return bad(p, config_setting_get_member(g, "block_size"),
			   "backstore '%s': block_size %lld is not 512 or 4096", bs->name, v);
	bs->block_size = v;

	s = config_setting_get_member(g, "size");
	if (!s)
		return bad(p, g, "backstore '%s': 'size' is required", bs->name);
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		err = hf_config_parse_size(config_setting_get_string(s), &bs->size);
		if (err)
			return bad(p, s,
				   "backstore '%s': size '%s' is not a number with an optional "
				   "K, M, G or T suffix",
				   bs->name, config_setting_get_string(s));
	} else if (config_setting_type(s) == CONFIG_TYPE_INT ||
		   config_setting_type(s) == CONFIG_TYPE_INT64) {
		if (config_setting_get_int64(s) < 0)
			return bad(p, s, "backstore '%s': size must not be negative", bs->name);
		bs->size = config_setting_get_int64(s);
	} else {
		return bad(p, s, "backstore '%s': size must be a string like \"1G\" or an integer",
			   bs->name);
	}
	if (bs->size == 0)
		return bad(p, s, "backstore '%s': size must not be zero", bs->name);
	if (bs->size % bs->block_size)
		return bad(p, s, "backstore '%s': size %llu is not a multiple of block_size %u",
			   bs->name, (unsigned long long)bs->size, bs->block_size);

	v = 0;
	err = get_int(p, g, "backstore", "delay_ms", 0, 0, HF_DELAY_MS_MAX, &v);
	if (err < 0)
		return err;
	bs->delay_ms = v;
	bs->line = config_setting_source_line(g);
	return 0;
}

static int parse_backstores(struct parse *p, const config_setting_t *root)
{
	struct hf_config *cfg = p->cfg;
	const config_setting_t *l;
	int i, j, n, err;

	err = get_group_list(p, root, "backstores", &l);
	if (err)
		return err;
	n = l ? config_setting_length(l) : 0;
	if (n == 0)
		return 0;
	cfg->backstores = calloc(n, sizeof(*cfg->backstores));
	if (!cfg->backstores)
		return -ENOMEM;
	cfg->nbackstores = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(l, i);
		struct hf_backstore *bs = &cfg->backstores[i];

		err = parse_backstore(p, g, bs);
		if (err)
			return err;
		for (j = 0; j < i; j++) {
			struct hf_backstore *o = &cfg->backstores[j];

			if (!strcmp(o->name, bs->name))
				return bad(p, g,
					   "backstore '%s' is defined twice (first at line %d)",
					   bs->name, o->line);
			/* Two stores over one file would each cache and write it alone. */
			if (bs->type == HF_BS_FILE && o->type == HF_BS_FILE &&
			    !strcmp(o->path, bs->path))
				return bad(p, g, "backstore '%s' uses the file of backstore '%s'",
					   bs->name, o->name);
		}
	}
	return 0;
}

static int find_portal(const struct hf_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nportals; i++)
		if (!strcmp(cfg->portals[i].name, name))
			return i;
	return -1;
}

static int find_backstore(const struct hf_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nbackstores; i++)
		if (!strcmp(cfg->backstores[i].name, name))
			return i;
	return -1;
}

static int parse_target_portals(struct parse *p, const config_setting_t *g, struct hf_target *t)
{
	const config_setting_t *l;
	int i, j, n, err;

	err = get_string_list(p, g, "target", "portals", &l);
	if (err)
		return err;
	/* Without a list the target is reachable on every portal. */
	n = l ? config_setting_length(l) : (int)p->cfg->nportals;
	if (n == 0)
		return bad(p, l, "target '%s': 'portals' must name at least one portal", t->iqn);
	t->portals = calloc(n, sizeof(*t->portals));
	if (!t->portals)
		return -ENOMEM;
	t->nportals = n;
	for (i = 0; i < n; i++) {
		const char *name;

		if (!l) {
			t->portals[i] = i;
			continue;
		}
		name = config_setting_get_string_elem(l, i);
		t->portals[i] = find_portal(p->cfg, name);
		if (t->portals[i] < 0)
			return bad(p, l, "target '%s': portal '%s' is not defined", t->iqn, name);
		for (j = 0; j < i; j++)
			if (t->portals[j] == t->portals[i])
				return bad(p, l, "target '%s': portal '%s' is listed twice", t->iqn,
					   name);
	}
	return 0;
}

static int parse_lun(struct parse *p, const config_setting_t *g, struct hf_target *t,
		     struct hf_lun *lun, int *bs_user_line)
{
	static const char *const keys[] = {"id", "backstore", NULL};
	char name[HF_NAME_MAX];
	long long v;
	int err;

	err = check_keys(p, g, "lun", keys);
	if (!err)
		err = get_int(p, g, "lun", "id", 1, 0, HF_LUN_ID_MAX, &v);
	if (!err)
		err = get_str(p, g, "lun", "backstore", 1, name, sizeof(name));
	if (err)
		return err;
	lun->id = v;
	lun->backstore = find_backstore(p->cfg, name);
	if (lun->backstore < 0)
		return bad(p, config_setting_get_member(g, "backstore"),
			   "target '%s': lun %u: backstore '%s' is not defined", t->iqn, lun->id,
			   name);
	/* One store behind two LUNs would need shared reservations and caches: refuse it. */
	if (bs_user_line[lun->backstore])
		return bad(p, config_setting_get_member(g, "backstore"),
			   "target '%s': lun %u: backstore '%s' is already used by the lun at line "
			   "%d",
			   t->iqn, lun->id, name, bs_user_line[lun->backstore]);
	lun->line = config_setting_source_line(g);
	bs_user_line[lun->backstore] = lun->line > 0 ? lun->line : 1;
	return 0;
}

static int parse_target(struct parse *p, const config_setting_t *g, struct hf_target *t,
			int *bs_user_line)
{
	static const char *const keys[] = {"iqn", "alias", "portals",	  "luns",
					   "acl", "chap",  "mutual_chap", NULL};
	const config_setting_t *l, *m;
	const char *why;
	size_t i, j;
	int n, err;

	err = check_keys(p, g, "target", keys);
	if (!err)
		err = get_str(p, g, "target", "iqn", 1, t->iqn, sizeof(t->iqn));
	if (err)
		return err;
	if (hf_config_check_iscsi_name(t->iqn, &why))
		return bad(p, config_setting_get_member(g, "iqn"),
			   "target '%s': bad iSCSI name: %s", t->iqn, why);
	err = get_str(p, g, "target", "alias", 0, t->alias, sizeof(t->alias));
	if (err < 0)
		return err;
	t->line = config_setting_source_line(g);

	err = parse_target_portals(p, g, t);
	if (err)
		return err;

	err = get_group_list(p, g, "luns", &l);
	if (err)
		return err;
	n = l ? config_setting_length(l) : 0;
	if (n == 0)
		return bad(p, l ? l : g, "target '%s': at least one lun is required", t->iqn);
	t->luns = calloc(n, sizeof(*t->luns));
	if (!t->luns)
		return -ENOMEM;
	t->nluns = n;
	for (i = 0; i < t->nluns; i++) {
		const config_setting_t *e = config_setting_get_elem(l, i);

		err = parse_lun(p, e, t, &t->luns[i], bs_user_line);
		if (err)
			return err;
		for (j = 0; j < i; j++)
			if (t->luns[j].id == t->luns[i].id)
				return bad(p, e, "target '%s': lun %u is defined twice", t->iqn,
					   t->luns[i].id);
	}

	err = get_string_list(p, g, "target", "acl", &l);
	if (err)
		return err;
	n = l ? config_setting_length(l) : 0;
	if (n > 0) {
		t->acl = calloc(n, sizeof(*t->acl));
		if (!t->acl)
			return -ENOMEM;
		t->nacl = n;
	}
	for (i = 0; i < t->nacl; i++) {
		const char *name = config_setting_get_string_elem(l, i);

		if (hf_config_check_iscsi_name(name, &why))
			return bad(p, l, "target '%s': acl: bad initiator name '%s': %s", t->iqn,
				   name, why);
		memcpy(t->acl[i], name, strlen(name) + 1);
		for (j = 0; j < i; j++)
			if (!strcmp(t->acl[j], name))
				return bad(p, l, "target '%s': acl: '%s' is listed twice", t->iqn,
					   name);
	}

	err = parse_chap_list(p, g, "target chap", &t->chap, &t->nchap);
	if (err)
		return err;
	m = config_setting_get_member(g, "mutual_chap");
	if (m) {
		err = parse_chap(p, m, "mutual_chap", &t->mutual);
		if (err)
			return err;
		if (!t->nchap)
			return bad(p, m, "target '%s': mutual_chap needs chap for the initiators",
				   t->iqn);
		/* rfc7143 9.2.1: the target's secret must differ from every initiator's, or a
		 * reflected challenge would authenticate an impostor. */
		for (i = 0; i < t->nchap; i++)
			if (!strcmp(t->chap[i].secret, t->mutual.secret))
				return bad(p, m,
					   "target '%s': the mutual_chap secret equals the secret "
					   "of CHAP user '%s'",
					   t->iqn, t->chap[i].user);
		t->has_mutual = 1;
	}
	return 0;
}

static int parse_targets(struct parse *p, const config_setting_t *root)
{
	struct hf_config *cfg = p->cfg;
	const config_setting_t *l;
	int *bs_user_line;
	int i, j, n, err;

	err = get_group_list(p, root, "targets", &l);
	if (err)
		return err;
	n = l ? config_setting_length(l) : 0;
	if (n == 0)
		return bad(p, l ? l : root, "at least one target is required");
	cfg->targets = calloc(n, sizeof(*cfg->targets));
	bs_user_line = calloc(cfg->nbackstores + 1, sizeof(*bs_user_line));
	if (!cfg->targets || !bs_user_line) {
		free(bs_user_line);
		return -ENOMEM;
	}
	cfg->ntargets = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(l, i);

		err = parse_target(p, g, &cfg->targets[i], bs_user_line);
		if (err)
			break;
		for (j = 0; j < i; j++) {
			if (!strcmp(cfg->targets[j].iqn, cfg->targets[i].iqn)) {
				err = bad(p, g, "target '%s' is defined twice (first at line %d)",
					  cfg->targets[i].iqn, cfg->targets[j].line);
				break;
			}
		}
		if (err)
			break;
	}
	free(bs_user_line);
	return err;
}

static int parse_log_level(struct parse *p, const config_setting_t *root)
{
	char v[16];
	int err;

	p->cfg->log_level = LOG_LVL_INFO;
	err = get_str(p, root, "config", "log_level", 0, v, sizeof(v));
	if (err)
		return err < 0 ? err : 0;
	if (!strcmp(v, "warn") || !strcmp(v, "warning"))
		p->cfg->log_level = LOG_LVL_WARN;
	else if (!strcmp(v, "info"))
		p->cfg->log_level = LOG_LVL_INFO;
	else if (!strcmp(v, "debug"))
		p->cfg->log_level = LOG_LVL_DEBUG;
	else
		return bad(p, config_setting_get_member(root, "log_level"),
			   "log_level '%s' is unknown (warn, info or debug)", v);
	return 0;
}

static int parse_dirs(struct parse *p, const config_setting_t *root)
{
	struct hf_config *cfg = p->cfg;
	const config_setting_t *s;
	char v[PATH_MAX];
	int err;

	strcpy(v, "holdfast-data");
	err = get_str(p, root, "config", "data_dir", 0, v, sizeof(v));
	if (err < 0)
		return err;
	s = config_setting_get_member(root, "data_dir");
	if (!v[0])
		return bad(p, s, "data_dir must not be empty");
	if (resolve_path(p->base, v, cfg->data_dir, sizeof(cfg->data_dir)))
		return bad(p, s, "data_dir is too long");

	err = get_str(p, root, "config", "control_socket", 0, v, sizeof(v));
	if (err < 0)
		return err;
	if (err == 0) {
		s = config_setting_get_member(root, "control_socket");
		if (!v[0])
			return bad(p, s, "control_socket must not be empty");
		err = resolve_path(p->base, v, cfg->control_socket, sizeof(cfg->control_socket));
	} else {
		err = resolve_path(cfg->data_dir, "holdfastd.sock", cfg->control_socket,
				   sizeof(cfg->control_socket));
	}
	/* A unix socket's name must fit sockaddr_un, which is far shorter than PATH_MAX. */
	if (err || strlen(cfg->control_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return bad(p, s,
			   "control socket path '%s' is longer than %zu bytes; set "
			   "control_socket to a shorter path",
			   cfg->control_socket, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	return 0;
}

/* A cluster or host name goes into a certificate's CN: letters, digits, '-' and '.', starting
 * with a letter or digit, so it cannot change the meaning of the distinguished name
 * (csv-coord/ca.h, ca_name_valid). */
static int cluster_name_ok(const char *n)
{
	size_t i, len = strlen(n);

	if (len == 0 || len > HF_CLUSTER_NAME_MAX || !isalnum((unsigned char)n[0]))
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)n[i]) && n[i] != '-' && n[i] != '.')
			return 0;
	return 1;
}

static int addr_is_any(const char *a)
{
	return !strcmp(a, "0.0.0.0") || !strcmp(a, "::");
}

/* A cluster port must not be one an iSCSI portal listens on, or one of the two would fail to
 * bind at start rather than at the configuration check. */
static int cluster_port_clash(struct parse *p, const config_setting_t *s, const char *key,
			      uint16_t port)
{
	const struct hf_cluster *cl = &p->cfg->cluster;
	size_t i;

	for (i = 0; i < p->cfg->nportals; i++) {
		const struct hf_portal *pt = &p->cfg->portals[i];

		if (pt->port == port && (!strcmp(pt->address, cl->address) ||
					 addr_is_any(pt->address) || addr_is_any(cl->address)))
			return bad(p, s, "cluster: %s %u is also portal '%s''s port", key, port,
				   pt->name);
	}
	return 0;
}

static int parse_cluster_hosts(struct parse *p, const config_setting_t *g)
{
	static const char *const keys[] = {"name", "votes", NULL};
	struct hf_cluster *cl = &p->cfg->cluster;
	const config_setting_t *l;
	int i, n, err;
	size_t j;

	err = get_group_list(p, g, "hosts", &l);
	if (err)
		return err;
	n = l ? config_setting_length(l) : 0;
	if (n > HF_CLUSTER_HOSTS_MAX)
		return bad(p, l, "cluster: at most %d hosts", HF_CLUSTER_HOSTS_MAX);
	if (n == 0)
		return 0;
	cl->hosts = calloc(n, sizeof(*cl->hosts));
	if (!cl->hosts)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const config_setting_t *h = config_setting_get_elem(l, i);
		struct hf_cluster_host *ch = &cl->hosts[i];
		long long v = 1;

		err = check_keys(p, h, "cluster host", keys);
		if (!err)
			err = get_str(p, h, "cluster host", "name", 1, ch->name, sizeof(ch->name));
		if (err)
			return err;
		if (!cluster_name_ok(ch->name))
			return bad(p, config_setting_get_member(h, "name"),
				   "cluster host name '%s' must be 1..%d letters, digits, '-' or "
				   "'.', starting with a letter or digit",
				   ch->name, HF_CLUSTER_NAME_MAX);
		err = get_int(p, h, "cluster host", "votes", 0, 1, HF_CLUSTER_VOTES_MAX, &v);
		if (err < 0)
			return err;
		ch->votes = v;
		ch->line = config_setting_source_line(h);
		for (j = 0; j < (size_t)i; j++)
			if (!strcmp(cl->hosts[j].name, ch->name))
				return bad(p, h,
					   "cluster host '%s' is listed twice (first at line %d)",
					   ch->name, cl->hosts[j].line);
		cl->nhosts++;
	}
	return 0;
}

static int parse_cluster(struct parse *p, const config_setting_t *root)
{
	static const char *const keys[] = {"name",	   "address",	   "agent_port",
					   "join_port",	   "heartbeat_ms", "miss_threshold",
					   "wait_for_all", "hosts",	   "target",
					   NULL};
	struct hf_cluster *cl = &p->cfg->cluster;
	const config_setting_t *g, *s;
	struct in6_addr a6;
	struct in_addr a4;
	long long v;
	int err;

	g = config_setting_get_member(root, "cluster");
	if (!g)
		return 0;
	if (!config_setting_is_group(g))
		return bad(p, g, "cluster must be a group { name = \"...\"; ... }");
	cl->enabled = 1;
	cl->line = config_setting_source_line(g);
	err = check_keys(p, g, "cluster", keys);
	if (err)
		return err;

	strcpy(cl->name, "holdfast");
	err = get_str(p, g, "cluster", "name", 0, cl->name, sizeof(cl->name));
	if (err < 0)
		return err;
	if (!cluster_name_ok(cl->name))
		return bad(p, config_setting_get_member(g, "name"),
			   "cluster name '%s' must be 1..%d letters, digits, '-' or '.', starting "
			   "with a letter or digit",
			   cl->name, HF_CLUSTER_NAME_MAX);

	strcpy(cl->address, "127.0.0.1");
	err = get_str(p, g, "cluster", "address", 0, cl->address, sizeof(cl->address));
	if (err < 0)
		return err;
	if (inet_pton(AF_INET, cl->address, &a4) != 1 && inet_pton(AF_INET6, cl->address, &a6) != 1)
		return bad(p, config_setting_get_member(g, "address"),
			   "cluster: address '%s' is not a numeric IPv4 or IPv6 address",
			   cl->address);

	v = HF_CLUSTER_AGENT_PORT;
	err = get_int(p, g, "cluster", "agent_port", 0, 1, 65535, &v);
	if (err < 0)
		return err;
	cl->agent_port = v;
	v = HF_CLUSTER_JOIN_PORT;
	err = get_int(p, g, "cluster", "join_port", 0, 1, 65535, &v);
	if (err < 0)
		return err;
	cl->join_port = v;
	s = config_setting_get_member(g, "join_port");
	if (cl->join_port == cl->agent_port)
		return bad(p, s ? s : g, "cluster: join_port and agent_port are both %u",
			   cl->agent_port);
	s = config_setting_get_member(g, "agent_port");
	err = cluster_port_clash(p, s ? s : g, "agent_port", cl->agent_port);
	if (err)
		return err;
	s = config_setting_get_member(g, "join_port");
	err = cluster_port_clash(p, s ? s : g, "join_port", cl->join_port);
	if (err)
		return err;

	v = 1000;
	err = get_int(p, g, "cluster", "heartbeat_ms", 0, HF_CLUSTER_HB_MIN_MS,
		      HF_CLUSTER_HB_MAX_MS, &v);
	if (err < 0)
		return err;
	cl->heartbeat_ms = v;
	v = 5;
	err = get_int(p, g, "cluster", "miss_threshold", 0, HF_CLUSTER_MISS_MIN,
		      HF_CLUSTER_MISS_MAX, &v);
	if (err < 0)
		return err;
	cl->miss_threshold = v;

	cl->wait_for_all = 1;
	s = config_setting_get_member(g, "wait_for_all");
	if (s) {
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			return bad(p, s, "cluster: 'wait_for_all' must be true or false");
		cl->wait_for_all = config_setting_get_bool(s);
	}
	err = get_str(p, g, "cluster", "target", 0, cl->target, sizeof(cl->target));
	if (err < 0)
		return err;
	s = config_setting_get_member(g, "target");
	cl->target_line = s ? config_setting_source_line(s) : cl->line;
	return parse_cluster_hosts(p, g);
}

/* cluster.target names the target that exports the virtual disks. Without it the only
 * configured target is taken; with several targets and none named, virtual disks cannot be
 * created (coord says so) but the cluster still runs. */
static int check_cluster_target(struct parse *p, const config_setting_t *root)
{
	struct hf_cluster *cl = &p->cfg->cluster;
	const config_setting_t *g, *s;
	size_t i;

	if (!cl->enabled)
		return 0;
	if (!cl->target[0]) {
		if (p->cfg->ntargets == 1)
			snprintf(cl->target, sizeof(cl->target), "%s", p->cfg->targets[0].iqn);
		return 0;
	}
	for (i = 0; i < p->cfg->ntargets; i++)
		if (!strcasecmp(p->cfg->targets[i].iqn, cl->target)) {
			/* The target's own spelling, so that byte-wise comparisons hold. */
			snprintf(cl->target, sizeof(cl->target), "%s", p->cfg->targets[i].iqn);
			return 0;
		}
	g = config_setting_get_member(root, "cluster");
	s = g ? config_setting_get_member(g, "target") : NULL;
	return bad(p, s ? s : root, "cluster: target '%s' is not a configured target",
		   cl->target);
}

static int parse_root(struct parse *p, const config_setting_t *root)
{
	static const char *const keys[] = {
		"data_dir", "control_socket",	   "workers",	"log_level",
		"portals",  "backstores",	   "discovery", "targets",
		"cluster",  "maintenance_hold_ms", NULL};
	static const char *const disc_keys[] = {"chap", NULL};
	struct hf_config *cfg = p->cfg;
	const config_setting_t *d;
	long ncpu;
	long long v;
	int err;

	err = check_keys(p, root, "the configuration", keys);
	if (!err)
		err = parse_dirs(p, root);
	if (!err)
		err = parse_log_level(p, root);
	if (err)
		return err;

	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	v = ncpu < 1 ? 1 : ncpu > HF_WORKERS_DEF ? HF_WORKERS_DEF : ncpu;
	err = get_int(p, root, "config", "workers", 0, 1, HF_WORKERS_MAX, &v);
	if (err < 0)
		return err;
	cfg->workers = v;

	v = HF_MAINTENANCE_HOLD_MS_DEF;
	err = get_int(p, root, "config", "maintenance_hold_ms", 0, 0, HF_MAINTENANCE_HOLD_MS_MAX,
		      &v);
	if (err < 0)
		return err;
	cfg->maintenance_hold_ms = (uint32_t)v;

	err = parse_portals(p, root);
	if (!err)
		err = parse_backstores(p, root);
	if (!err)
		err = parse_cluster(p, root);
	if (err)
		return err;

	d = config_setting_get_member(root, "discovery");
	if (d) {
		if (!config_setting_is_group(d))
			return bad(p, d, "discovery must be a group { chap = ( ... ); }");
		err = check_keys(p, d, "discovery", disc_keys);
		if (!err)
			err = parse_chap_list(p, d, "discovery chap", &cfg->discovery_chap,
					      &cfg->ndiscovery_chap);
		if (err)
			return err;
	}
	err = parse_targets(p, root);
	if (!err)
		err = check_cluster_target(p, root);
	return err;
}

void hf_config_free(struct hf_config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	for (i = 0; i < cfg->ntargets; i++) {
		free(cfg->targets[i].portals);
		free(cfg->targets[i].luns);
		free(cfg->targets[i].acl);
		free(cfg->targets[i].chap);
	}
	free(cfg->targets);
	free(cfg->portals);
	free(cfg->backstores);
	free(cfg->discovery_chap);
	free(cfg->cluster.hosts);
	free(cfg);
}

/* Parse from either a file (path != NULL) or text; base is the folder relative paths use. */
static int load(const char *path, const char *text, const char *name, const char *base,
		struct hf_config **out, char *err, size_t errlen)
{
	struct parse p = {.name = name, .base = base, .err = err, .errlen = errlen};
	config_t lc;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	p.cfg = calloc(1, sizeof(*p.cfg));
	if (!p.cfg)
		return -ENOMEM;
	config_init(&lc);
	if (path) {
		/* Give the include folder so that @include works from any working directory. */
		config_set_include_dir(&lc, base);
		rc = config_read_file(&lc, path);
	} else {
		rc = config_read_string(&lc, text);
	}
	if (rc != CONFIG_TRUE) {
		const char *file = config_error_file(&lc) ? config_error_file(&lc) : name;

		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
			snprintf(err, errlen, "%s:0: cannot read the file", file);
		else
			snprintf(err, errlen, "%s:%d: %s", file, config_error_line(&lc),
				 config_error_text(&lc));
		rc = -EINVAL;
		goto out;
	}
	if (snprintf(p.cfg->path, sizeof(p.cfg->path), "%s", path ? path : name) >=
	    (int)sizeof(p.cfg->path)) {
		rc = bad(&p, NULL, "the file name is too long");
		goto out;
	}
	rc = parse_root(&p, config_root_setting(&lc));
	if (rc == -ENOMEM)
		snprintf(err, errlen, "%s:0: out of memory", name);
out:
	config_destroy(&lc);
	if (rc) {
		hf_config_free(p.cfg);
		return rc;
	}
	*out = p.cfg;
	return 0;
}

int hf_config_load_string(const char *text, const char *name, struct hf_config **out, char *err,
			  size_t errlen)
{
	char cwd[PATH_MAX];

	if (!getcwd(cwd, sizeof(cwd))) {
		snprintf(err, errlen, "%s:0: cannot find the working directory: %s", name,
			 strerror(errno));
		return -errno;
	}
	return load(NULL, text, name ? name : "(string)", cwd, out, err, errlen);
}

int hf_config_load_file(const char *path, struct hf_config **out, char *err, size_t errlen)
{
	char abs[PATH_MAX], *slash;
	int rc;

	/* Relative paths inside the file start from the file's own folder, so the same file
	 * means the same thing whichever folder holdfastd was started from. */
	if (!realpath(path, abs)) {
		rc = -errno;
		snprintf(err, errlen, "%s:0: %s", path, strerror(errno));
		*out = NULL;
		return rc;
	}
	slash = strrchr(abs, '/');
	if (slash == abs)
		slash[1] = '\0';
	else
		*slash = '\0';
	rc = load(path, NULL, path, abs, out, err, errlen);
	return rc;
}

static int mkdir_p(char *path, mode_t mode)
{
	char *s;

	for (s = path + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(path, mode) < 0 && errno != EEXIST) {
			*s = '/';
			return -errno;
		}
		*s = '/';
	}
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int hf_config_prepare_data_dir(struct hf_config *cfg, char *err, size_t errlen)
{
	char dir[PATH_MAX], idpath[PATH_MAX + 8];
	uint8_t id[sizeof(cfg->box_id) + 1];
	ssize_t n;
	int fd, rc;

	snprintf(dir, sizeof(dir), "%s", cfg->data_dir);
	rc = mkdir_p(dir, 0750);
	if (rc) {
		snprintf(err, errlen, "%s: cannot create: %s", cfg->data_dir, strerror(-rc));
		return rc;
	}
	snprintf(idpath, sizeof(idpath), "%s/box-id", cfg->data_dir);
	fd = open(idpath, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		/* Read one byte more than expected to catch a file of the wrong size. */
		n = read(fd, id, sizeof(id));
		rc = n < 0 ? -errno : 0;
		close(fd);
		if (rc) {
			snprintf(err, errlen, "%s: %s", idpath, strerror(-rc));
			return rc;
		}
		if (n != sizeof(cfg->box_id)) {
			snprintf(err, errlen, "%s: holds %zd bytes, expected %zu", idpath, n,
				 sizeof(cfg->box_id));
			return -EINVAL;
		}
		memcpy(cfg->box_id, id, sizeof(cfg->box_id));
		return 0;
	}
	if (errno != ENOENT) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", idpath, strerror(errno));
		return rc;
	}
	/* The box id names every LUN (NAA designators): it is made once and never changes. */
	if (getrandom(cfg->box_id, sizeof(cfg->box_id), 0) != sizeof(cfg->box_id)) {
		rc = -errno;
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		return rc;
	}
	rc = atomic_file_write(idpath, cfg->box_id, sizeof(cfg->box_id), 0644);
	if (rc)
		snprintf(err, errlen, "%s: cannot write: %s", idpath, strerror(-rc));
	return rc;
}
