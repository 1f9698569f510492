/* The vdisk and pool commands of holdfast-agent (agent_vdisk.h). */
#include "agent/agent_vdisk.h"

#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_args.h"
#include "csv-coord/catalog.h"
#include "lib/config.h"

static int bad(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Copy a name argument; the box checks the alphabet, this only the length. */
static int name_arg(char *dst, size_t cap, const char *s, const char *what, char *err,
		    size_t errlen)
{
	if (!*s || strlen(s) >= cap)
		return bad(err, errlen, "%s must be 1 to %zu characters", what, cap - 1);
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static int size_arg(const char *s, uint64_t *out, char *err, size_t errlen)
{
	if (hf_config_parse_size(s, out) || *out == 0 || *out > INT64_MAX)
		return bad(err, errlen, "bad size '%s': bytes, or a number with K, M, G or T", s);
	return 0;
}

struct verb {
	const char *group, *name;
	uint8_t type;
	unsigned nargs;
	bool epoch; /* --epoch is required */
	const char *usage;
};

static const struct verb verbs[] = {
	{"vdisk", "list", AGENT_MSG_VDISK_LIST, 0, false, "vdisk list [--pool POOL]"},
	{"vdisk", "create", AGENT_MSG_VDISK_CREATE, 3, false,
	 "vdisk create POOL NAME SIZE [--vm VM]"},
	{"vdisk", "extend", AGENT_MSG_VDISK_EXTEND, 2, true, "vdisk extend ID SIZE --epoch N"},
	{"vdisk", "attach", AGENT_MSG_VDISK_ATTACH, 1, true, "vdisk attach ID --epoch N"},
	{"vdisk", "detach", AGENT_MSG_VDISK_DETACH, 1, true, "vdisk detach ID --epoch N"},
	{"vdisk", "transfer", AGENT_MSG_VDISK_TRANSFER, 2, true,
	 "vdisk transfer ID HOST --epoch N"},
	{"vdisk", "delete", AGENT_MSG_VDISK_DELETE, 1, true, "vdisk delete ID --epoch N"},
	{"vdisk", "clone", AGENT_MSG_VDISK_CLONE, 2, true, "vdisk clone ID NAME --epoch N"},
	{"pool", "add", AGENT_MSG_POOL_ADD, 2, false, "pool add NAME PATH"},
	{"pool", "remove", AGENT_MSG_POOL_REMOVE, 1, false, "pool remove NAME"},
};

int agent_vdisk_parse(int argc, char **argv, struct agent_vdisk_cmd *cmd, char *err, size_t errlen)
{
	static const struct option opts[] = {
		{"state-dir", required_argument, NULL, 'd'},
		{"box", required_argument, NULL, 'b'},
		{"epoch", required_argument, NULL, 'e'},
		{"pool", required_argument, NULL, 'p'},
		{"vm", required_argument, NULL, 'm'},
		{"timeout-ms", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},
		{"verbose", no_argument, NULL, 'v'},
		{NULL, 0, NULL, 0},
	};
	const char *epoch = NULL, *pool = NULL, *vm = NULL, *pos[4];
	const struct verb *vb = NULL;
	struct agent_msg *m = &cmd->req;
	unsigned long v;
	unsigned npos = 0;
	uint64_t u;
	int c, r;

	memset(cmd, 0, sizeof(*cmd));
	cmd->timeout_ms = AGENT_VDISK_TIMEOUT_MS;
	if (argc < 2)
		return bad(err, errlen, "%s needs a command", argc ? argv[0] : "vdisk");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(verbs[i].group, argv[0]) && !strcmp(verbs[i].name, argv[1]))
			vb = &verbs[i];
	if (!vb)
		return bad(err, errlen, "unknown command '%s %s'", argv[0], argv[1]);
	optind = 0; /* glibc: start afresh, also for a second parse in one process */
	opterr = 0;
	while ((c = getopt_long(argc - 1, argv + 1, "+:v", opts, NULL)) != -1 ||
	       optind < argc - 1) {
		if (c == -1) {
			/* An operand: keep it and go on with the options after it. */
			if (npos == 4)
				return bad(err, errlen, "usage: holdfast-agent %s", vb->usage);
			pos[npos++] = argv[1 + optind++];
			continue;
		}
		switch (c) {
		case 'd':
			cmd->state_dir = optarg;
			break;
		case 'b':
			cmd->box = optarg;
			break;
		case 'e':
			epoch = optarg;
			break;
		case 'p':
			pool = optarg;
			break;
		case 'm':
			vm = optarg;
			break;
		case 't':
			if (agent_args_uint(optarg, 100, 600000, &v))
				return bad(err, errlen, "--timeout-ms must be 100..600000");
			cmd->timeout_ms = v;
			break;
		case 'j':
			cmd->json = true;
			break;
		case 'v':
			cmd->verbose = true;
			break;
		case ':':
			return bad(err, errlen, "%s needs a value", argv[1 + optind - 1]);
		default:
			return bad(err, errlen, "unknown option %s; usage: holdfast-agent %s",
				   argv[1 + optind - 1], vb->usage);
		}
	}
	if (npos != vb->nargs)
		return bad(err, errlen, "usage: holdfast-agent %s --state-dir DIR", vb->usage);
	if (!cmd->state_dir)
		return bad(err, errlen,
			   "--state-dir DIR is needed (the folder holdfast-agent join "
			   "made)");
	if (vb->epoch && !epoch)
		return bad(err, errlen,
			   "--epoch N is needed: the disk's epoch as vdisk list shows it");
	if (!vb->epoch && epoch)
		return bad(err, errlen, "%s %s takes no --epoch", vb->group, vb->name);
	if (pool && vb->type != AGENT_MSG_VDISK_LIST)
		return bad(err, errlen, "--pool is for vdisk list");
	if (vm && vb->type != AGENT_MSG_VDISK_CREATE)
		return bad(err, errlen, "--vm is for vdisk create");
	memset(m, 0, sizeof(*m));
	m->type = vb->type;
	if (epoch) {
		if (agent_args_uint(epoch, 1, ULONG_MAX, &v) || v > INT64_MAX)
			return bad(err, errlen, "bad epoch '%s'", epoch);
		m->u.vd_op.epoch = v;
	}
	r = 0;
	switch (vb->type) {
	case AGENT_MSG_VDISK_LIST:
		if (pool)
			r = name_arg(m->u.vd_list.pool, sizeof(m->u.vd_list.pool), pool,
				     "a pool name", err, errlen);
		break;
	case AGENT_MSG_VDISK_CREATE:
		r = name_arg(m->u.vd_create.pool, sizeof(m->u.vd_create.pool), pos[0],
			     "a pool name", err, errlen);
		if (!r)
			r = name_arg(m->u.vd_create.name, sizeof(m->u.vd_create.name), pos[1],
				     "a disk name", err, errlen);
		if (!r)
			r = size_arg(pos[2], &m->u.vd_create.size, err, errlen);
		if (!r && vm)
			r = name_arg(m->u.vd_create.vm, sizeof(m->u.vd_create.vm), vm, "a VM name",
				     err, errlen);
		break;
	case AGENT_MSG_POOL_ADD:
	case AGENT_MSG_POOL_REMOVE:
		r = name_arg(m->u.pool.name, sizeof(m->u.pool.name), pos[0], "a pool name", err,
			     errlen);
		if (!r && vb->type == AGENT_MSG_POOL_ADD)
			r = name_arg(m->u.pool.path, sizeof(m->u.pool.path), pos[1], "a path", err,
				     errlen);
		break;
	default:
		r = name_arg(m->u.vd_op.id, sizeof(m->u.vd_op.id), pos[0], "a disk id", err,
			     errlen);
		if (!r && vb->type == AGENT_MSG_VDISK_EXTEND) {
			r = size_arg(pos[1], &u, err, errlen);
			m->u.vd_op.size = u;
		}
		if (!r && vb->type == AGENT_MSG_VDISK_TRANSFER)
			r = name_arg(m->u.vd_op.to_host, sizeof(m->u.vd_op.to_host), pos[1],
				     "a host name", err, errlen);
		if (!r && vb->type == AGENT_MSG_VDISK_CLONE)
			r = name_arg(m->u.vd_op.name, sizeof(m->u.vd_op.name), pos[1],
				     "a disk name", err, errlen);
		break;
	}
	return r;
}

const char *agent_vdisk_code_name(unsigned code)
{
	switch (code) {
	case AGENT_E_FORBIDDEN:
		return "forbidden";
	case AGENT_E_STALE_EPOCH:
		return "stale_epoch";
	case AGENT_E_NO_QUORUM:
		return "no_quorum";
	case AGENT_E_NOT_FOUND:
		return "not_found";
	case AGENT_E_EXISTS:
		return "exists";
	case AGENT_E_INVALID:
		return "invalid";
	case AGENT_E_NO_SPACE:
		return "no_space";
	case AGENT_E_IN_USE:
		return "in_use";
	case AGENT_E_BUSY:
		return "busy";
	case AGENT_E_FENCED:
		return "fenced";
	case AGENT_E_CAPABILITY:
		return "capability";
	case AGENT_E_NOT_ENROLLED:
		return "not_enrolled";
	default:
		return "error";
	}
}

int agent_vdisk_exit_code(unsigned code)
{
	switch (code) {
	case AGENT_E_FORBIDDEN:
		return 10;
	case AGENT_E_STALE_EPOCH:
		return 11;
	case AGENT_E_NO_QUORUM:
		return 12;
	case AGENT_E_NOT_FOUND:
		return 13;
	case AGENT_E_BUSY:
	case AGENT_E_IN_USE:
		return 14;
	default:
		return 8;
	}
}

static const char *state_name(uint8_t state)
{
	const char *n = catalog_vdisk_state_name((enum catalog_vdisk_state)state);

	return n ? n : "unknown";
}

json_t *agent_vdisk_info_json(const struct agent_vdisk_info *i)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:o, s:I, s:s, s:b, s:s}", "id", i->id,
			 "name", i->name, "pool", i->pool, "size", (json_int_t)i->size, "target",
			 i->target_iqn, "lun", (json_int_t)i->lun, "owner",
			 i->owner[0] ? json_string(i->owner) : json_null(), "epoch",
			 (json_int_t)i->epoch, "state", state_name(i->state), "attached",
			 i->attached != 0, "vm", i->vm);
}

void agent_vdisk_print(FILE *f, const struct agent_vdisk_info *i, bool header)
{
	if (header)
		fprintf(f, "%-36s  %-16s  %-10s  %14s  %5s  %-16s  %6s  %-8s  %-8s  %s\n", "ID",
			"NAME", "POOL", "SIZE", "LUN", "OWNER", "EPOCH", "STATE", "ATTACHED",
			"TARGET");
	fprintf(f, "%-36s  %-16s  %-10s  %14llu  %5u  %-16s  %6llu  %-8s  %-8s  %s\n", i->id,
		i->name, i->pool, (unsigned long long)i->size, (unsigned)i->lun,
		i->owner[0] ? i->owner : "-", (unsigned long long)i->epoch, state_name(i->state),
		i->attached ? "yes" : "no", i->target_iqn);
}
