/* pr_crash: the initiator side of the persistent-reservation crash test (test_pr_crash.sh).
 *
 *   pr_crash run URL LOG --seed N [--count N] [--rel-port N]
 *   pr_crash verify URL LOG [--rel-port N]
 *
 * WHAT IS COMPARED, AND WHY
 *
 * "run" logs three initiators (fixed iSCSI names and fixed ISIDs, so that each is the same
 * I_T nexus after every restart) into one LUN and sends one PERSISTENT RESERVE OUT at a time,
 * each with APTPL=1, picked at random: REGISTER and REGISTER AND IGNORE EXISTING KEY with keys
 * from a small pool (shared between initiators on purpose, so that a PREEMPT can hit several
 * nexuses), unregistering (a zero service action key), RESERVE and RELEASE of all six types,
 * PREEMPT (of the holder's key, of another key, of key zero) and CLEAR. Some are meant to fail
 * (a wrong key, a wrong type), since a refused command must change nothing on disk either.
 *
 * The program keeps its own model of the state, written from spc4r37 5.13 (registering,
 * reserving, releasing, clearing, preempting); it never asks the target what a command should
 * have done. The model state is what READ FULL STATUS, READ KEYS, READ RESERVATION and
 * REPORT CAPABILITIES together show:
 *   - PRgeneration (the same in all three reads);
 *   - for each of the three nexuses: registered or not, and its reservation key; READ FULL
 *     STATUS must name it by its exact TransportID (iSCSI name, ",i,0x", ISID) on the expected
 *     relative target port, and READ KEYS must list the same multiset of keys;
 *   - the reservation type and its holder (one nexus, or every registrant for the all
 *     registrants types): the R_HOLDER bits and SCOPE/TYPE of READ FULL STATUS and the key and
 *     type of READ RESERVATION (key zero for the all registrants types, spc4r37 5.13.10);
 *   - PTPL_A of REPORT CAPABILITIES (APTPL is active once a registration asked for it).
 * These are all the state SPC-4 says must persist through power loss (spc4r37 5.13.5); the
 * order of the keys and descriptors is not specified, so it is not compared.
 *
 * The log, fdatasync'ed line by line, holds:
 *   S <state>        the state read from the target when the run starts;
 *   I <n> <command>  written BEFORE command n is sent;
 *   A <n> <state>    command n was answered GOOD; <state> is the model's state after it;
 *   N <n> <status>   command n was refused, as the model predicted; the state is unchanged.
 * After every command the target's state is read back and must equal the model, and the
 * status must be the one the model predicted, so the model is checked against the live target
 * before any crash; a disagreement fails the run (exit 1).
 *
 * When the target is killed the run ends on the lost connection (exit 3). "verify", on the
 * restarted target, reads the state back the same way and accepts exactly:
 *   - the state of the last A (or S) line: every acknowledged change survived; or
 *   - that state with the last I command applied, when that command has no A or N line: the
 *     command was in flight at the kill, so it may or may not have been saved (and its GOOD
 *     may have been sent and lost with the connection).
 * Anything else (an acknowledged change lost, a half-applied command, a wrong generation, a
 * registration under another nexus) fails. It prints "applied", "not-applied" or "same" (no
 * command in flight, or one whose outcome equals the old state, e.g. a refused one).
 *
 * REGISTER and REGISTER AND IGNORE EXISTING KEY from an unregistered nexus with a zero service
 * action key are never sent: SPC-4 says both "do nothing" and "PRgeneration counts every
 * REGISTER", so the expected generation would be the engine's choice, not the standard's. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define NINIT	 3
#define NAME_FMT "iqn.2026-11.org.holdfast:prcrash-%d"
#define ISID_EN	 0x7ead /* iscsi_set_isid_en(): ISID 40 00 7e ad, then the qualifier */

/* Exit codes the shell driver tells apart. */
#define EXIT_FAIL	 1 /* the target disagreed with the model, or lost state */
#define EXIT_SETUP	 2 /* usage, login or log file trouble before the first command */
#define EXIT_TARGET_GONE 3 /* the connection died: expected once the target is killed */

/* spc4r37 6.16.2, table 172: the PERSISTENT RESERVE OUT service actions used here. */
enum sa {
	SA_REGISTER = 0,
	SA_RESERVE = 1,
	SA_RELEASE = 2,
	SA_CLEAR = 3,
	SA_PREEMPT = 4,
	SA_REG_IGNORE = 6
};
/* spc4r37 6.15.3.4, table 164. */
static const int types[] = {1, 3, 5, 6, 7, 8};
/* The key pool: the high bytes make sure all 64 bits are stored and restored. */
static const uint64_t key_pool[] = {0x5eed0000000000a1ull, 0x5eed0000000000a2ull,
				    0x5eed0000000000b1ull, 0x5eed0000000000b2ull,
				    0xc0ffee00000000c1ull};
#define NKEYS (sizeof(key_pool) / sizeof(key_pool[0]))

enum outcome { OUT_GOOD, OUT_CONFLICT, OUT_ILLEGAL };
static const char *const outcome_name[] = {"GOOD", "RESERVATION-CONFLICT", "ILLEGAL-REQUEST"};

struct model {
	uint32_t gen;
	bool ptpl_a;
	bool reg[NINIT];
	uint64_t key[NINIT];
	int type;   /* 0: no reservation */
	int holder; /* the holding nexus; -1 without a reservation or for the all registrants types
		     */
};

struct cmd {
	int init;
	int sa;
	uint64_t rk, sark;
	int type;
};

struct conn {
	struct iscsi_context *iscsi;
	int lun;
};

static int rel_port = 1;

static bool type_ar(int t)
{
	return t == 7 || t == 8;
}

static bool holds(const struct model *m, int i)
{
	if (!m->type || !m->reg[i])
		return false;
	return type_ar(m->type) || m->holder == i;
}

static int nregs(const struct model *m)
{
	int n = 0;

	for (int i = 0; i < NINIT; i++)
		n += m->reg[i];
	return n;
}

/* spc4r37 5.13.11.2.2 (unregistering): the holder of a one-holder reservation releases it by
 * unregistering; an all registrants reservation lasts while anyone is registered. */
static void unregister(struct model *m, int i)
{
	m->reg[i] = false;
	m->key[i] = 0;
	if (!m->type)
		return;
	if (type_ar(m->type)) {
		if (!nregs(m)) {
			m->type = 0;
			m->holder = -1;
		}
	} else if (m->holder == i) {
		m->type = 0;
		m->holder = -1;
	}
}

static void set_reservation(struct model *m, int type, int i)
{
	m->type = type;
	m->holder = type_ar(type) ? -1 : i;
}

/* The state after c, from spc4r37 5.13; out equals in unless the outcome is GOOD. */
static enum outcome model_apply(const struct model *in, const struct cmd *c, struct model *out)
{
	struct model m = *in;
	int i = c->init, j;
	bool registered = m.reg[i], key_ok = registered && m.key[i] == c->rk;

	*out = *in;
	switch (c->sa) {
	case SA_REGISTER:
	case SA_REG_IGNORE:
		/* spc4r37 5.13.7 and table 43: only REGISTER checks the key; an unregistered
		 * nexus names key zero. */
		if (c->sa == SA_REGISTER && (registered ? !key_ok : c->rk != 0))
			return OUT_CONFLICT;
		if (!registered) {
			if (c->sark) {
				m.reg[i] = true;
				m.key[i] = c->sark;
			}
		} else if (c->sark) {
			m.key[i] = c->sark;
		} else {
			unregister(&m, i);
		}
		/* spc4r37 5.13.5: the APTPL bit of the last registration rules; every one sent
		 * here sets it. */
		m.ptpl_a = true;
		m.gen++;
		break;
	case SA_RESERVE:
		/* spc4r37 5.13.9. */
		if (!key_ok)
			return OUT_CONFLICT;
		if (m.type) {
			if (holds(&m, i) && m.type == c->type)
				return OUT_GOOD;
			return OUT_CONFLICT;
		}
		set_reservation(&m, c->type, i);
		break;
	case SA_RELEASE:
		/* spc4r37 5.13.11.2.1: not holding is GOOD and nothing; the wrong type is
		 * INVALID RELEASE OF PERSISTENT RESERVATION. */
		if (!key_ok)
			return OUT_CONFLICT;
		if (!m.type || !holds(&m, i))
			return OUT_GOOD;
		if (m.type != c->type)
			return OUT_ILLEGAL;
		m.type = 0;
		m.holder = -1;
		break;
	case SA_CLEAR:
		/* spc4r37 5.13.11.2.3. */
		if (!key_ok)
			return OUT_CONFLICT;
		for (j = 0; j < NINIT; j++) {
			m.reg[j] = false;
			m.key[j] = 0;
		}
		m.type = 0;
		m.holder = -1;
		m.gen++;
		break;
	case SA_PREEMPT: {
		uint64_t holder_key = m.type && !type_ar(m.type) ? m.key[m.holder] : 0;
		int matched = 0;

		/* spc4r37 5.13.11.4: the preempting nexus is never unregistered by its own
		 * PREEMPT. */
		if (!key_ok)
			return OUT_CONFLICT;
		if (m.type && type_ar(m.type) && c->sark == 0) {
			for (j = 0; j < NINIT; j++)
				if (j != i) {
					m.reg[j] = false;
					m.key[j] = 0;
				}
			set_reservation(&m, c->type, i);
		} else if (m.type && !type_ar(m.type) && c->sark == holder_key) {
			for (j = 0; j < NINIT; j++)
				if (j != i && m.reg[j] && m.key[j] == c->sark) {
					m.reg[j] = false;
					m.key[j] = 0;
				}
			set_reservation(&m, c->type, i);
		} else {
			/* Removing registrations only: key zero names none, and a key nobody has
			 * is a conflict. */
			if (c->sark == 0)
				return OUT_ILLEGAL;
			for (j = 0; j < NINIT; j++)
				if (m.reg[j] && m.key[j] == c->sark) {
					matched++;
					if (j != i) {
						m.reg[j] = false;
						m.key[j] = 0;
					}
				}
			if (!matched)
				return OUT_CONFLICT;
		}
		m.gen++;
		break;
	}
	default:
		abort();
	}
	*out = m;
	return OUT_GOOD;
}

static bool model_equal(const struct model *a, const struct model *b)
{
	if (a->gen != b->gen || a->ptpl_a != b->ptpl_a || a->type != b->type ||
	    a->holder != b->holder)
		return false;
	for (int i = 0; i < NINIT; i++)
		if (a->reg[i] != b->reg[i] || (a->reg[i] && a->key[i] != b->key[i]))
			return false;
	return true;
}

/* One line of text; model_parse() reads it back. */
static void model_format(const struct model *m, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "gen=%" PRIu32 " ptpl_a=%d type=%d holder=%d keys=", m->gen,
			 m->ptpl_a, m->type, m->holder);

	for (int i = 0; i < NINIT && n > 0 && (size_t)n < cap; i++) {
		if (m->reg[i])
			n += snprintf(buf + n, cap - n, "%s%" PRIx64, i ? "," : "", m->key[i]);
		else
			n += snprintf(buf + n, cap - n, "%s-", i ? "," : "");
	}
}

static int model_parse(const char *s, struct model *m)
{
	int ptpl, off = 0;
	const char *p;

	memset(m, 0, sizeof(*m));
	if (sscanf(s, "gen=%" SCNu32 " ptpl_a=%d type=%d holder=%d keys=%n", &m->gen, &ptpl,
		   &m->type, &m->holder, &off) != 4 ||
	    !off)
		return -EINVAL;
	m->ptpl_a = ptpl;
	p = s + off;
	for (int i = 0; i < NINIT; i++) {
		char *end;

		if (*p == '-') {
			end = (char *)p + 1;
		} else {
			m->reg[i] = true;
			m->key[i] = strtoull(p, &end, 16);
			if (end == p)
				return -EINVAL;
		}
		p = end;
		if (i < NINIT - 1 && *p++ != ',')
			return -EINVAL;
	}
	return 0;
}

static void cmd_format(const struct cmd *c, char *buf, size_t cap)
{
	snprintf(buf, cap, "%d %d %" PRIx64 " %" PRIx64 " %d", c->init, c->sa, c->rk, c->sark,
		 c->type);
}

static int cmd_parse(const char *s, struct cmd *c)
{
	return sscanf(s, "%d %d %" SCNx64 " %" SCNx64 " %d", &c->init, &c->sa, &c->rk, &c->sark,
		      &c->type) == 5 &&
			       c->init >= 0 && c->init < NINIT
		       ? 0
		       : -EINVAL;
}

/* ---- iSCSI ---- */

static int conn_open(struct conn *c, const char *url_text, int idx)
{
	char name[96];
	struct iscsi_url *url;

	snprintf(name, sizeof(name), NAME_FMT, idx);
	c->iscsi = iscsi_create_context(name);
	if (!c->iscsi)
		return -ENOMEM;
	/* The same ISID on every login keeps the I_T nexus the same across restarts. */
	iscsi_set_isid_en(c->iscsi, ISID_EN, idx + 1);
	url = iscsi_parse_full_url(c->iscsi, url_text);
	if (!url) {
		fprintf(stderr, "pr_crash: bad URL %s: %s\n", url_text, iscsi_get_error(c->iscsi));
		return -EINVAL;
	}
	/* A silent reconnect would replay a command the dead target may have saved. */
	iscsi_set_noautoreconnect(c->iscsi, 1);
	iscsi_set_timeout(c->iscsi, 30);
	iscsi_set_targetname(c->iscsi, url->target);
	iscsi_set_session_type(c->iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(c->iscsi, ISCSI_HEADER_DIGEST_NONE);
	c->lun = url->lun;
	if (iscsi_full_connect_sync(c->iscsi, url->portal, url->lun) != 0) {
		fprintf(stderr, "pr_crash: %s: login failed: %s\n", name,
			iscsi_get_error(c->iscsi));
		iscsi_destroy_url(url);
		return -ECONNREFUSED;
	}
	iscsi_destroy_url(url);
	return 0;
}

/* Send one command. A UNIT ATTENTION means the command was not run (SAM-5 5.14), so it is
 * sent again; PR changes queue them (RESERVATIONS PREEMPTED, RELEASED...). Returns the task
 * (status GOOD, CHECK CONDITION or RESERVATION CONFLICT) or NULL when the connection is gone. */
static struct scsi_task *command(struct conn *c, unsigned char *cdb, int dir, void *out,
				 int out_len, int in_len)
{
	for (int tries = 0; tries < 16; tries++) {
		struct iscsi_data d = {.size = out_len, .data = out};
		struct scsi_task *t =
			scsi_create_task(10, cdb, dir, dir == SCSI_XFER_WRITE ? out_len : in_len);

		if (!t)
			return NULL;
		if (!iscsi_scsi_command_sync(c->iscsi, c->lun, t, out ? &d : NULL)) {
			scsi_free_scsi_task(t);
			return NULL;
		}
		if (t->status == SCSI_STATUS_CHECK_CONDITION &&
		    t->sense.key == SCSI_SENSE_UNIT_ATTENTION) {
			scsi_free_scsi_task(t);
			continue;
		}
		if (t->status != SCSI_STATUS_GOOD && t->status != SCSI_STATUS_CHECK_CONDITION &&
		    t->status != SCSI_STATUS_RESERVATION_CONFLICT) {
			scsi_free_scsi_task(t);
			return NULL;
		}
		return t;
	}
	fprintf(stderr, "pr_crash: 16 unit attentions in a row\n");
	return NULL;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (56 - 8 * i);
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const unsigned char *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* spc4r37 6.16: PERSISTENT RESERVE OUT with the basic 24-byte parameter list and APTPL=1.
 * Returns the outcome, or -1 when the connection is gone or the answer is none of them. */
static int pr_out(struct conn *c, const struct cmd *cm)
{
	unsigned char cdb[10] = {0x5f, cm->sa, cm->type & 0x0f, 0, 0, 0, 0, 0, 24, 0};
	unsigned char param[24] = {0};
	struct scsi_task *t;
	int r = -1;

	put_be64(param, cm->rk);
	put_be64(param + 8, cm->sark);
	param[20] = 0x01; /* APTPL */
	t = command(c, cdb, SCSI_XFER_WRITE, param, sizeof(param), 0);
	if (!t)
		return -1;
	if (t->status == SCSI_STATUS_GOOD)
		r = OUT_GOOD;
	else if (t->status == SCSI_STATUS_RESERVATION_CONFLICT)
		r = OUT_CONFLICT;
	else if (t->sense.key == SCSI_SENSE_ILLEGAL_REQUEST)
		r = OUT_ILLEGAL;
	else
		fprintf(stderr, "pr_crash: PR OUT: sense %x/%04x\n", t->sense.key, t->sense.ascq);
	scsi_free_scsi_task(t);
	return r;
}

/* spc4r37 6.15: PERSISTENT RESERVE IN into buf; the length received, or -1. */
static int pr_in(struct conn *c, int sa, unsigned char *buf, int cap)
{
	unsigned char cdb[10] = {0x5e, sa, 0, 0, 0, 0, 0, cap >> 8, cap & 0xff, 0};
	struct scsi_task *t = command(c, cdb, SCSI_XFER_READ, NULL, 0, cap);
	int n;

	if (!t)
		return -1;
	if (t->status != SCSI_STATUS_GOOD) {
		fprintf(stderr, "pr_crash: PR IN %d: status %#x sense %x/%04x\n", sa, t->status,
			t->sense.key, t->sense.ascq);
		scsi_free_scsi_task(t);
		return -2;
	}
	n = t->datain.size < cap ? t->datain.size : cap;
	memcpy(buf, t->datain.data, n);
	scsi_free_scsi_task(t);
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Which of our nexuses a READ FULL STATUS TransportID names (spc4r37 7.6.4.6: iSCSI,
 * format 01b, "name,i,0xISID"), or -1. */
static int tid_owner(const unsigned char *tid, uint32_t len)
{
	char want[128], got[260];
	uint32_t n;

	if (len < 4 || (tid[0] & 0x0f) != 5 || (tid[0] >> 6) != 1)
		return -1;
	n = (uint32_t)tid[2] << 8 | tid[3];
	if (n > len - 4 || n >= sizeof(got))
		return -1;
	memcpy(got, tid + 4, n);
	got[n] = '\0';
	for (int i = 0; i < NINIT; i++) {
		int k = snprintf(want, sizeof(want), NAME_FMT ",i,0x40%06x%04x", i, ISID_EN, i + 1);

		if (k > 0 && !strcasecmp(got, want))
			return i;
	}
	return -1;
}

/* Read the whole PR state through READ FULL STATUS, READ KEYS, READ RESERVATION and REPORT
 * CAPABILITIES, check that the four agree, and return it as a model. 0, -1 when the
 * connection is gone, -2 when the target's answers are inconsistent or unknown. */
static int read_state(struct conn *c, struct model *m)
{
	unsigned char full[4096], keys[1024], res[64], caps[8];
	uint64_t klist[64], mlist[NINIT];
	int nf, nk, nr, nc, nkeys, nm = 0, holders = 0, holder_type = -1;
	uint32_t flen, off;

	memset(m, 0, sizeof(*m));
	m->holder = -1;
	nf = pr_in(c, 3, full, sizeof(full));
	if (nf < 0)
		return nf;
	nk = pr_in(c, 0, keys, sizeof(keys));
	if (nk < 0)
		return nk;
	nr = pr_in(c, 1, res, sizeof(res));
	if (nr < 0)
		return nr;
	nc = pr_in(c, 2, caps, sizeof(caps));
	if (nc < 0)
		return nc;
	if (nf < 8 || nk < 8 || nr < 8 || nc < 8) {
		fprintf(stderr, "pr_crash: short PR IN data\n");
		return -2;
	}
	m->gen = get_be32(full);
	flen = get_be32(full + 4);
	if (flen > (uint32_t)nf - 8) {
		fprintf(stderr, "pr_crash: READ FULL STATUS truncated (%u bytes)\n", flen);
		return -2;
	}
	/* spc4r37 6.15.5, table 171: 24 bytes, then the TransportID. */
	for (off = 8; off < 8 + flen;) {
		const unsigned char *d = full + off;
		uint32_t tlen;
		int who;

		if (off + 24 > 8 + flen)
			return -2;
		tlen = get_be32(d + 20);
		if (tlen > 8 + flen - off - 24)
			return -2;
		who = tid_owner(d + 24, tlen);
		if (who < 0 || m->reg[who]) {
			fprintf(stderr, "pr_crash: READ FULL STATUS names an unknown or repeated "
					"nexus\n");
			return -2;
		}
		if ((d[18] << 8 | d[19]) != rel_port || (d[12] & 0x02)) {
			fprintf(stderr, "pr_crash: nexus %d: relative port %d, ALL_TG_PT %d\n", who,
				d[18] << 8 | d[19], !!(d[12] & 0x02));
			return -2;
		}
		m->reg[who] = true;
		m->key[who] = get_be64(d);
		mlist[nm++] = m->key[who];
		if (d[12] & 0x01) {
			if (holder_type >= 0 && holder_type != (d[13] & 0x0f))
				return -2;
			holder_type = d[13] & 0x0f;
			holders++;
			m->holder = who;
		}
		off += 24 + tlen;
	}
	/* READ RESERVATION (spc4r37 6.15.3) says whether there is one and of which type. */
	if (get_be32(res) != m->gen || get_be32(keys) != m->gen) {
		fprintf(stderr, "pr_crash: generations differ: full %u keys %u reservation %u\n",
			m->gen, get_be32(keys), get_be32(res));
		return -2;
	}
	if (get_be32(res + 4) == 16 && nr >= 24) {
		m->type = res[21] & 0x0f;
		if ((res[21] >> 4) != 0 || !m->type)
			return -2;
		if (type_ar(m->type)) {
			if (get_be64(res + 8) != 0 || holders != nm || holder_type != m->type) {
				fprintf(stderr,
					"pr_crash: all registrants reservation: key %" PRIx64
					", %d holders of %d\n",
					get_be64(res + 8), holders, nm);
				return -2;
			}
			m->holder = -1;
		} else if (holders != 1 || holder_type != m->type ||
			   get_be64(res + 8) != m->key[m->holder]) {
			fprintf(stderr,
				"pr_crash: reservation key %" PRIx64 " type %d, %d holders\n",
				get_be64(res + 8), m->type, holders);
			return -2;
		}
	} else if (get_be32(res + 4) != 0 || holders) {
		fprintf(stderr, "pr_crash: READ RESERVATION length %u with %d holders\n",
			get_be32(res + 4), holders);
		return -2;
	} else {
		m->holder = -1;
	}
	/* READ KEYS (spc4r37 6.15.2) lists the same keys, in any order. */
	nkeys = get_be32(keys + 4) / 8;
	if (get_be32(keys + 4) % 8 || nkeys != nm || 8 + 8 * nkeys > nk) {
		fprintf(stderr, "pr_crash: READ KEYS lists %d keys, READ FULL STATUS %d\n", nkeys,
			nm);
		return -2;
	}
	for (int i = 0; i < nkeys; i++)
		klist[i] = get_be64(keys + 8 + 8 * i);
	qsort(klist, nkeys, sizeof(klist[0]), cmp_u64);
	qsort(mlist, nm, sizeof(mlist[0]), cmp_u64);
	if (memcmp(klist, mlist, nm * sizeof(klist[0]))) {
		fprintf(stderr, "pr_crash: READ KEYS and READ FULL STATUS keys differ\n");
		return -2;
	}
	/* spc4r37 6.15.4: PTPL_A is bit 0 of byte 3. */
	m->ptpl_a = caps[3] & 0x01;
	return 0;
}

/* ---- the log ---- */

static int log_fd = -1;

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	/* Each line must be on disk before the command it announces is sent. */
	if (write(log_fd, line, n) != n || fdatasync(log_fd)) {
		perror("pr_crash: log");
		exit(EXIT_SETUP);
	}
}

/* ---- run ---- */

static uint64_t rnd_key(void)
{
	return key_pool[random() % NKEYS];
}

static int rnd_type(void)
{
	return types[random() % (sizeof(types) / sizeof(types[0]))];
}

/* A random command, mostly one that should succeed, sometimes one that should not. */
static void pick(const struct model *m, struct cmd *c)
{
	int i = random() % NINIT, p = random() % 100;
	uint64_t own = m->reg[i] ? m->key[i] : 0;

	memset(c, 0, sizeof(*c));
	c->init = i;
	/* The right key most of the time; a wrong one must conflict and change nothing. */
	c->rk = random() % 10 ? own : rnd_key();
	if (!m->reg[i] || p < 30) {
		c->sa = random() % 2 ? SA_REGISTER : SA_REG_IGNORE;
		c->sark = rnd_key();
		if (!m->reg[i] && c->rk == own && random() % 10 == 0)
			c->rk = rnd_key(); /* REGISTER from an unregistered nexus with a key */
	} else if (p < 40) {
		c->sa = random() % 2 ? SA_REGISTER : SA_REG_IGNORE;
		c->sark = 0; /* unregister */
	} else if (p < 62) {
		c->sa = SA_RESERVE;
		c->type = random() % 4 || !m->type ? rnd_type() : m->type;
	} else if (p < 78) {
		c->sa = SA_RELEASE;
		c->type = random() % 4 && m->type ? m->type : rnd_type();
	} else if (p < 96) {
		int q = random() % 10;

		c->sa = SA_PREEMPT;
		c->type = rnd_type();
		if (q < 5 && m->type && !type_ar(m->type))
			c->sark = m->key[m->holder];
		else if (q < 7)
			c->sark = 0;
		else
			c->sark = rnd_key();
	} else {
		c->sa = SA_CLEAR;
	}
}

static int do_run(const char *url, const char *logpath, long seed, long count)
{
	struct conn conns[NINIT];
	struct model m, next, got;
	char s1[256], s2[256];
	long n;
	int rc;

	for (int i = 0; i < NINIT; i++)
		if (conn_open(&conns[i], url, i))
			return EXIT_SETUP;
	rc = read_state(&conns[0], &m);
	if (rc)
		return rc == -1 ? EXIT_SETUP : EXIT_FAIL;
	log_fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (log_fd < 0) {
		perror(logpath);
		return EXIT_SETUP;
	}
	model_format(&m, s1, sizeof(s1));
	log_line("S %s", s1);
	srandom(seed);
	printf("pr_crash: ready, seed %ld, start %s\n", seed, s1);
	fflush(stdout);
	for (n = 1; n <= count; n++) {
		struct cmd c;
		enum outcome want;
		int out;

		pick(&m, &c);
		if (!m.reg[c.init] && c.sark == 0 && (c.sa == SA_REGISTER || c.sa == SA_REG_IGNORE))
			continue; /* never sent: see the top of the file */
		want = model_apply(&m, &c, &next);
		cmd_format(&c, s1, sizeof(s1));
		log_line("I %ld %s", n, s1);
		out = pr_out(&conns[c.init], &c);
		if (out == -1) {
			printf("pr_crash: connection lost with command %ld in flight\n", n);
			return EXIT_TARGET_GONE;
		}
		if (out != (int)want) {
			fprintf(stderr, "pr_crash: command %ld (%s): target says %s, model %s\n", n,
				s1, out < 0 ? "?" : outcome_name[out], outcome_name[want]);
			return EXIT_FAIL;
		}
		if (out == OUT_GOOD) {
			model_format(&next, s2, sizeof(s2));
			log_line("A %ld %s", n, s2);
			m = next;
		} else {
			log_line("N %ld %s", n, outcome_name[out]);
		}
		rc = read_state(&conns[0], &got);
		if (rc == -1) {
			printf("pr_crash: connection lost after command %ld\n", n);
			return EXIT_TARGET_GONE;
		}
		if (rc || !model_equal(&got, &m)) {
			model_format(&m, s1, sizeof(s1));
			model_format(&got, s2, sizeof(s2));
			fprintf(stderr, "pr_crash: after command %ld: model %s\n  target %s\n", n,
				s1, s2);
			return EXIT_FAIL;
		}
	}
	printf("pr_crash: %ld commands done\n", count);
	return 0;
}

/* ---- verify ---- */

static int do_verify(const char *url, const char *logpath)
{
	FILE *f = fopen(logpath, "r");
	char line[512], s1[256], s2[256], s3[256];
	struct model last, with, got;
	struct cmd inflight;
	bool have_state = false, pending = false;
	struct conn c;
	long n;
	int off, rc;

	if (!f) {
		perror(logpath);
		return EXIT_SETUP;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		off = 0;
		if (line[0] == 'S' && !model_parse(line + 2, &last)) {
			have_state = true;
			pending = false;
		} else if (line[0] == 'I' && sscanf(line, "I %ld %n", &n, &off) == 1 && off &&
			   !cmd_parse(line + off, &inflight)) {
			pending = true;
		} else if (line[0] == 'A' && sscanf(line, "A %ld %n", &n, &off) == 1 && off &&
			   !model_parse(line + off, &last)) {
			pending = false;
		} else if (line[0] == 'N') {
			pending = false;
		} else {
			fprintf(stderr, "pr_crash: %s: bad line: %s\n", logpath, line);
			fclose(f);
			return EXIT_FAIL;
		}
	}
	fclose(f);
	if (!have_state) {
		fprintf(stderr, "pr_crash: %s holds no state\n", logpath);
		return EXIT_FAIL;
	}
	with = last;
	if (pending)
		model_apply(&last, &inflight, &with);
	if (conn_open(&c, url, 0))
		return EXIT_SETUP;
	rc = read_state(&c, &got);
	if (rc)
		return rc == -1 ? EXIT_SETUP : EXIT_FAIL;
	model_format(&last, s1, sizeof(s1));
	model_format(&with, s2, sizeof(s2));
	model_format(&got, s3, sizeof(s3));
	iscsi_logout_sync(c.iscsi);
	iscsi_destroy_context(c.iscsi);
	if (model_equal(&got, &last) && model_equal(&got, &with)) {
		printf("pr_crash: verify: same: restored %s\n", s3);
		return 0;
	}
	if (model_equal(&got, &last)) {
		printf("pr_crash: verify: not-applied: restored %s\n", s3);
		return 0;
	}
	if (model_equal(&got, &with)) {
		printf("pr_crash: verify: applied: restored %s\n", s3);
		return 0;
	}
	fprintf(stderr,
		"pr_crash: verify: LOST: restored %s\n  last acknowledged %s\n"
		"  with the in-flight command %s\n",
		s3, s1, pending ? s2 : "(none in flight)");
	return EXIT_FAIL;
}

static void usage(void)
{
	fprintf(stderr, "usage: pr_crash run URL LOG --seed N [--count N] [--rel-port N]\n"
			"       pr_crash verify URL LOG [--rel-port N]\n");
	exit(EXIT_SETUP);
}

int main(int argc, char **argv)
{
	long seed = 1, count = 1000000;

	if (argc < 4)
		usage();
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = atol(argv[++i]);
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = atol(argv[++i]);
		else if (!strcmp(argv[i], "--rel-port") && i + 1 < argc)
			rel_port = atoi(argv[++i]);
		else
			usage();
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "run"))
		return do_run(argv[2], argv[3], seed, count);
	if (!strcmp(argv[1], "verify"))
		return do_verify(argv[2], argv[3]);
	usage();
	return EXIT_SETUP;
}
