/* PERSISTENT RESERVE OUT (spc4r37 5.13.7-5.13.11, 6.16): every service action, computed on a
 * copy of the state so that the caller can drop it when the command fails or cannot be
 * persisted. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/cursor.h"
#include "pr/pr_int.h"
#include "target/scsi_sense.h"

/* spc4r37 6.16.3, figure/table 175: the basic parameter list is 24 bytes; SPEC_I_PT adds a
 * 4-byte TRANSPORTID PARAMETER DATA LENGTH and the TransportIDs. */
#define PARAM_BASIC_LEN 24
#define PARAM_SPEC_LEN	28
/* spc4r37 6.16.4, table 177: the REGISTER AND MOVE parameter list header. */
#define PARAM_MOVE_LEN 24
/* The smallest TransportID (spc4r37 7.6.4.6): a 4-byte header and a padded name. */
#define TID_MIN_LEN 8

struct pr_params {
	uint64_t rk;   /* RESERVATION KEY */
	uint64_t sark; /* SERVICE ACTION RESERVATION KEY */
	bool spec_i_pt;
	bool all_tg_pt;
	bool aptpl;
	/* REGISTER AND MOVE only */
	bool unreg;
	uint16_t rel_port;
	/* The TransportIDs, borrowed from the parameter list. */
	const uint8_t *tids;
	uint32_t tids_len;
	size_t tids_off; /* their offset in the parameter list, for sense field pointers */
};

static void fail(struct pr_result *res, const struct scsi_sense *s)
{
	res->status = SCSI_STATUS_CHECK_CONDITION;
	res->sense = *s;
}

/* ILLEGAL REQUEST with a field pointer (spc4r37 4.5.2.4.2); bit -1 points at the whole byte. */
static void fail_field(struct pr_result *res, bool in_cdb, uint16_t byte, int bit)
{
	fail(res, in_cdb ? &SENSE_INVALID_FIELD_IN_CDB : &SENSE_INVALID_FIELD_IN_PARAM_LIST);
	res->sense.sks_valid = true;
	res->sense.sks_cd = in_cdb;
	res->sense.sks_field = byte;
	res->sense.sks_bit = bit >= 0 && bit <= 7 ? (uint8_t)bit : 0xff;
}

static void conflict(struct pr_result *res)
{
	res->status = SCSI_STATUS_RESERVATION_CONFLICT;
}

static void itn_set(struct pr_itn *itn, const char *port, uint16_t rel_port)
{
	memset(itn, 0, sizeof(*itn));
	snprintf(itn->port, sizeof(itn->port), "%s", port);
	itn->rel_port = rel_port;
}

static void ua_add(struct pr_result *res, const struct pr_itn *itn, const struct scsi_sense *ua)
{
	if (res->nua == PR_MAX_REGS)
		return;
	res->ua[res->nua].itn = *itn;
	res->ua[res->nua].ua = *ua;
	res->nua++;
}

static void abort_add(struct pr_result *res, const struct pr_itn *itn)
{
	if (res->nabort == PR_MAX_REGS)
		return;
	res->abort[res->nabort++] = *itn;
}

/* Remove registration i, keeping the others in registration order (READ KEYS reports them in
 * that order). The freed slot is zeroed so that equal states compare equal byte for byte. */
static void reg_remove(struct pr_state *s, uint32_t i)
{
	memmove(&s->regs[i], &s->regs[i + 1], (s->nregs - i - 1) * sizeof(s->regs[0]));
	s->nregs--;
	memset(&s->regs[s->nregs], 0, sizeof(s->regs[0]));
}

static int reg_add(struct pr_state *s, const char *port, uint16_t rel_port, uint64_t key,
		   bool all_tg_pt)
{
	struct pr_reg *r;

	if (strnlen(port, PR_PORT_MAX) >= PR_PORT_MAX)
		return -ENAMETOOLONG;
	if (s->nregs == PR_MAX_REGS)
		return -ENOSPC;
	r = &s->regs[s->nregs++];
	memset(r, 0, sizeof(*r));
	itn_set(&r->itn, port, rel_port);
	r->key = key;
	r->all_tg_pt = all_tg_pt;
	return 0;
}

static void reservation_clear(struct pr_state *s)
{
	s->type = PR_TYPE_NONE;
	s->scope = 0;
	for (uint32_t i = 0; i < s->nregs; i++)
		s->regs[i].holder = false;
}

static void reservation_set(struct pr_state *s, uint8_t type, uint8_t scope, int holder)
{
	reservation_clear(s);
	s->type = type;
	s->scope = scope;
	/* An all-registrants reservation has no single holder (pr_is_holder()). */
	if (!pr_type_ar(type) && holder >= 0)
		s->regs[holder].holder = true;
}

/* Queue a unit attention for every registered I_T nexus except the issuing one. */
static void ua_registrants(const struct pr_state *s, const struct pr_ctx *ctx,
			   struct pr_result *res, const struct scsi_sense *ua)
{
	for (uint32_t i = 0; i < s->nregs; i++) {
		const struct pr_reg *r = &s->regs[i];

		if (r->itn.rel_port == ctx->self.rel_port &&
		    strcmp(r->itn.port, ctx->self.port) == 0)
			continue;
		ua_add(res, &r->itn, ua);
	}
}

/* spc4r37 5.13.11 (unregistering). The holder of a non-all-registrants reservation releases
 * it (and a registrants-only reservation tells the remaining registrants); an all-registrants
 * reservation lasts until its last registrant is gone. */
static void unregister(struct pr_state *s, uint32_t i, const struct pr_ctx *ctx,
		       struct pr_result *res)
{
	bool was_holder = pr_is_holder(s, &s->regs[i]);
	uint8_t type = s->type;

	reg_remove(s, i);
	if (type == PR_TYPE_NONE)
		return;
	if (pr_type_ar(type)) {
		if (s->nregs == 0)
			reservation_clear(s);
		return;
	}
	if (was_holder) {
		reservation_clear(s);
		if (pr_type_ro(type))
			ua_registrants(s, ctx, res, &SENSE_RESERVATIONS_RELEASED);
	}
}

/* Read the parameter list of every service action but REGISTER AND MOVE (spc4r37 6.16.3). */
static int parse_basic(const uint8_t *param, uint32_t pll, struct pr_params *p,
		       struct pr_result *res)
{
	struct cursor c;
	uint32_t obsolete = 0;
	uint16_t obsolete16 = 0;
	uint8_t flags = 0, rsvd = 0;

	cur_init(&c, param, pll);
	if (pll < PARAM_BASIC_LEN) {
		fail(res, &SENSE_PARAM_LIST_LENGTH_ERROR);
		return -EINVAL;
	}
	cur_be64(&c, &p->rk);
	cur_be64(&c, &p->sark);
	cur_be32(&c, &obsolete);
	cur_u8(&c, &flags);
	cur_u8(&c, &rsvd);
	cur_be16(&c, &obsolete16);
	p->spec_i_pt = flags & 0x08;
	p->all_tg_pt = flags & 0x04;
	p->aptpl = flags & 0x01;
	if (!p->spec_i_pt) {
		/* spc4r37 6.16.3: without SPEC_I_PT the list is exactly 24 bytes. */
		if (pll != PARAM_BASIC_LEN) {
			fail(res, &SENSE_PARAM_LIST_LENGTH_ERROR);
			return -EINVAL;
		}
		return 0;
	}
	/* spc4r37 6.16.3: with SPEC_I_PT the list is 28 bytes plus the TransportIDs that the
	 * TRANSPORTID PARAMETER DATA LENGTH announces; anything else is a length error. */
	if (cur_be32(&c, &p->tids_len) || (uint64_t)PARAM_SPEC_LEN + p->tids_len != pll) {
		fail(res, &SENSE_PARAM_LIST_LENGTH_ERROR);
		return -EINVAL;
	}
	p->tids_off = PARAM_SPEC_LEN;
	cur_ptr(&c, p->tids_len, &p->tids);
	return 0;
}

/* spc4r37 6.16.4: the REGISTER AND MOVE parameter list. */
static int parse_move(const uint8_t *param, uint32_t pll, struct pr_params *p,
		      struct pr_result *res)
{
	struct cursor c;
	uint8_t rsvd = 0, flags = 0;

	cur_init(&c, param, pll);
	if (pll < PARAM_MOVE_LEN) {
		fail(res, &SENSE_PARAM_LIST_LENGTH_ERROR);
		return -EINVAL;
	}
	cur_be64(&c, &p->rk);
	cur_be64(&c, &p->sark);
	cur_u8(&c, &rsvd);
	cur_u8(&c, &flags);
	cur_be16(&c, &p->rel_port);
	cur_be32(&c, &p->tids_len);
	p->unreg = flags & 0x02;
	p->aptpl = flags & 0x01;
	if ((uint64_t)PARAM_MOVE_LEN + p->tids_len != pll) {
		fail(res, &SENSE_PARAM_LIST_LENGTH_ERROR);
		return -EINVAL;
	}
	p->tids_off = PARAM_MOVE_LEN;
	cur_ptr(&c, p->tids_len, &p->tids);
	return 0;
}

static bool port_exists(const struct pr_ctx *ctx, uint16_t rel_port)
{
	if (ctx->nports == 0)
		return rel_port == ctx->self.rel_port;
	for (size_t i = 0; i < ctx->nports; i++)
		if (ctx->ports[i] == rel_port)
			return true;
	return false;
}

/* Register (port, rel_port) with key in s: a fresh registration, or, for ALL_TG_PT, the same
 * initiator port's registration through another target port taking the new key (SPC-4 treats
 * it as one registration made through every port). dup_is_error rejects a nexus that this
 * command already named (SPEC_I_PT, spc4r37 6.16.3). */
static int register_one(struct pr_state *s, const char *port, uint16_t rel_port, uint64_t key,
			bool all_tg_pt, bool dup_is_error)
{
	int i = pr_index(s, port, rel_port);

	if (i >= 0) {
		if (dup_is_error)
			return -EEXIST;
		s->regs[i].key = key;
		s->regs[i].all_tg_pt = all_tg_pt;
		return 0;
	}
	return reg_add(s, port, rel_port, key, all_tg_pt);
}

/* Register an initiator port on the issuing target port, or on every target port with
 * ALL_TG_PT (spc4r37 5.13.7). */
static int register_port(struct pr_state *s, const struct pr_ctx *ctx, const char *port,
			 uint64_t key, bool all_tg_pt, bool dup_is_error)
{
	int rc;

	if (!all_tg_pt || ctx->nports == 0)
		return register_one(s, port, ctx->self.rel_port, key, all_tg_pt, dup_is_error);
	for (size_t i = 0; i < ctx->nports; i++) {
		rc = register_one(s, port, ctx->ports[i], key, true, dup_is_error);
		if (rc)
			return rc;
	}
	return 0;
}

static void fail_register(struct pr_result *res, int rc, uint16_t field)
{
	if (rc == -ENOSPC)
		fail(res, &SENSE_INSUFFICIENT_REGISTRATION_RESOURCES);
	else
		fail_field(res, false, field, -1);
}

/* spc4r37 5.13.7 and 6.16.3: SPEC_I_PT. Each TransportID names an initiator port (with an
 * ISID) or an initiator device (without: every known port of that name). Either every
 * TransportID is valid and every named nexus gets registered, or nothing is: the caller drops
 * *s on failure. */
static int register_spec_i_pt(struct pr_state *s, const struct pr_ctx *ctx,
			      const struct pr_params *p, struct pr_result *res)
{
	struct cursor c;
	struct pr_tid tid;
	char name[PR_NAME_MAX];
	size_t off;
	int rc;

	cur_init(&c, p->tids, p->tids_len);
	while (cur_left(&c) > 0) {
		off = p->tids_off + c.pos;
		rc = pr_tid_parse(&c, &tid);
		if (rc) {
			fail_field(res, false, (uint16_t)off, -1);
			return rc;
		}
		if (tid.has_isid) {
			rc = register_port(s, ctx, tid.port, p->sark, p->all_tg_pt, true);
			if (rc) {
				fail_register(res, rc, (uint16_t)off);
				return rc;
			}
			continue;
		}
		/* A device-name TransportID: every I_T nexus of that initiator the target knows
		 * or its ACL admits, through this port (or every port with ALL_TG_PT). */
		unsigned matched = 0;

		for (size_t k = 0; k < ctx->nknown; k++) {
			const struct pr_nexus_ref *kn = &ctx->known[k];

			if (pr_port_name(kn->port, name, sizeof(name)) || strcmp(name, tid.name))
				continue;
			if (!p->all_tg_pt && kn->rel_port != ctx->self.rel_port)
				continue;
			if (pr_index(s, kn->port, kn->rel_port) >= 0) {
				fail_field(res, false, (uint16_t)off, -1);
				return -EEXIST;
			}
			rc = reg_add(s, kn->port, kn->rel_port, p->sark, p->all_tg_pt);
			if (rc) {
				fail_register(res, rc, (uint16_t)off);
				return rc;
			}
			matched++;
		}
		if (!matched) {
			fail_field(res, false, (uint16_t)off, -1);
			return -ENOENT;
		}
	}
	return 0;
}

/* spc4r37 5.13.7 (REGISTER) and 6.16.2 (REGISTER AND IGNORE EXISTING KEY). */
static void do_register(struct pr_state *s, const struct pr_ctx *ctx, const struct pr_params *p,
			bool ignore_key, struct pr_result *res)
{
	int me = pr_index(s, ctx->self.port, ctx->self.rel_port);

	if (me < 0) {
		/* An unregistered I_T nexus names no existing key. */
		if (!ignore_key && p->rk != 0) {
			conflict(res);
			return;
		}
		if (p->spec_i_pt && ignore_key) {
			fail_field(res, false, 20, 3);
			return;
		}
		if (p->sark != 0) {
			int rc =
				register_port(s, ctx, ctx->self.port, p->sark, p->all_tg_pt, false);

			if (rc) {
				fail_register(res, rc, 8);
				return;
			}
			if (p->spec_i_pt && register_spec_i_pt(s, ctx, p, res))
				return;
		}
		/* A zero key from an unregistered nexus registers nothing, yet the command
		 * succeeds and so counts for PRgeneration (spc4r37 6.15.2). */
	} else {
		if (!ignore_key && s->regs[me].key != p->rk) {
			conflict(res);
			return;
		}
		/* spc4r37 6.16.3: SPEC_I_PT from a registered I_T nexus is an invalid field. */
		if (p->spec_i_pt) {
			fail_field(res, false, 20, 3);
			return;
		}
		if (p->sark == 0)
			unregister(s, (uint32_t)me, ctx, res);
		else
			s->regs[me].key = p->sark;
	}
	/* spc4r37 5.13.5: the APTPL bit of the last successful registering command rules. */
	s->aptpl = p->aptpl;
	s->generation++;
}

/* spc4r37 5.13.9: reserving. */
static void do_reserve(struct pr_state *s, const struct pr_ctx *ctx, const struct pr_params *p,
		       uint8_t type, uint8_t scope, struct pr_result *res)
{
	int me = pr_index(s, ctx->self.port, ctx->self.rel_port);

	if (me < 0 || s->regs[me].key != p->rk) {
		conflict(res);
		return;
	}
	if (s->type != PR_TYPE_NONE) {
		/* The holder asking again for the same reservation is a no-op; anything else
		 * conflicts, a different type from the holder included. */
		if (pr_is_holder(s, &s->regs[me]) && s->type == type && s->scope == scope)
			return;
		conflict(res);
		return;
	}
	reservation_set(s, type, scope, me);
}

/* spc4r37 5.13.11 (releasing). */
static void do_release(struct pr_state *s, const struct pr_ctx *ctx, const struct pr_params *p,
		       uint8_t type, uint8_t scope, struct pr_result *res)
{
	int me = pr_index(s, ctx->self.port, ctx->self.rel_port);
	uint8_t old;

	if (me < 0 || s->regs[me].key != p->rk) {
		conflict(res);
		return;
	}
	/* No reservation, or one this nexus does not hold: GOOD and nothing changes. */
	if (s->type == PR_TYPE_NONE || !pr_is_holder(s, &s->regs[me]))
		return;
	if (s->type != type || s->scope != scope) {
		fail(res, &SENSE_INVALID_RELEASE_OF_PR);
		return;
	}
	old = s->type;
	reservation_clear(s);
	if (pr_type_ro(old) || pr_type_ar(old))
		ua_registrants(s, ctx, res, &SENSE_RESERVATIONS_RELEASED);
}

/* spc4r37 5.13.11 (clearing): every registration and the reservation go; every other
 * registrant learns it through RESERVATIONS PREEMPTED. */
static void do_clear(struct pr_state *s, const struct pr_ctx *ctx, const struct pr_params *p,
		     struct pr_result *res)
{
	int me = pr_index(s, ctx->self.port, ctx->self.rel_port);

	if (me < 0 || s->regs[me].key != p->rk) {
		conflict(res);
		return;
	}
	ua_registrants(s, ctx, res, &SENSE_RESERVATIONS_PREEMPTED);
	reservation_clear(s);
	while (s->nregs)
		reg_remove(s, s->nregs - 1);
	s->generation++;
}

/* Remove every registration with key except the issuing nexus's; each removed nexus gets
 * REGISTRATIONS PREEMPTED and, for PREEMPT AND ABORT, has its tasks aborted. Returns how
 * many registrations hold the key, the issuer's included. */
static unsigned preempt_regs(struct pr_state *s, const struct pr_ctx *ctx, uint64_t key,
			     bool all_but_self, bool abort, struct pr_result *res)
{
	unsigned matched = 0;

	for (uint32_t i = 0; i < s->nregs;) {
		struct pr_reg *r = &s->regs[i];
		bool self = r->itn.rel_port == ctx->self.rel_port &&
			    strcmp(r->itn.port, ctx->self.port) == 0;

		if (!all_but_self && r->key != key) {
			i++;
			continue;
		}
		matched++;
		if (self) {
			i++;
			continue;
		}
		ua_add(res, &r->itn, &SENSE_REGISTRATIONS_PREEMPTED);
		if (abort)
			abort_add(res, &r->itn);
		reg_remove(s, i);
	}
	return matched;
}

/* spc4r37 5.13.11 (preempting): PREEMPT and PREEMPT AND ABORT. */
static void do_preempt(struct pr_state *s, const struct pr_ctx *ctx, const struct pr_params *p,
		       uint8_t type, uint8_t scope, bool abort, struct pr_result *res)
{
	int me = pr_index(s, ctx->self.port, ctx->self.rel_port);
	uint64_t holder_key = 0;
	uint8_t old_type = s->type, old_scope = s->scope;

	if (me < 0 || s->regs[me].key != p->rk) {
		conflict(res);
		return;
	}
	if (s->type != PR_TYPE_NONE && !pr_type_ar(s->type)) {
		for (uint32_t i = 0; i < s->nregs; i++)
			if (s->regs[i].holder)
				holder_key = s->regs[i].key;
	}

	if (s->type != PR_TYPE_NONE && pr_type_ar(s->type) && p->sark == 0) {
		/* spc4r37 5.13.11 (preempting an all registrants reservation): a zero key preempts
		 * an all-registrants reservation: every other registration goes and the issuer
		 * alone holds the new one. */
		preempt_regs(s, ctx, 0, true, abort, res);
		reservation_set(s, type, scope, pr_index(s, ctx->self.port, ctx->self.rel_port));
	} else if (s->type != PR_TYPE_NONE && !pr_type_ar(s->type) && p->sark == holder_key) {
		/* spc4r37 5.13.11 (preempting persistent reservations): the key of the holder
		 * preempts the reservation: its registrations go, the issuer holds the new
		 * reservation, and if type or scope changed the remaining registrants hear
		 * RESERVATIONS RELEASED. */
		preempt_regs(s, ctx, p->sark, false, abort, res);
		reservation_set(s, type, scope, pr_index(s, ctx->self.port, ctx->self.rel_port));
		if (type != old_type || scope != old_scope)
			ua_registrants(s, ctx, res, &SENSE_RESERVATIONS_RELEASED);
	} else {
		/* spc4r37 5.13.11 (removing registrations): any other key only removes
		 * registrations; zero names none, and a key nobody holds is a conflict. */
		if (p->sark == 0) {
			fail_field(res, false, 8, -1);
			return;
		}
		if (!preempt_regs(s, ctx, p->sark, false, abort, res)) {
			res->nua = 0;
			res->nabort = 0;
			conflict(res);
			return;
		}
	}
	s->generation++;
}

/* spc4r37 5.13.8: REGISTER AND MOVE. The holder hands its reservation to the I_T nexus the
 * TransportID and RELATIVE TARGET PORT IDENTIFIER name, registering it with the service
 * action key, and optionally unregisters itself. */
static void do_move(struct pr_state *s, const struct pr_ctx *ctx, const struct pr_params *p,
		    uint8_t type, uint8_t scope, struct pr_result *res)
{
	int me = pr_index(s, ctx->self.port, ctx->self.rel_port), dest;
	char name[PR_NAME_MAX];
	const char *dest_port = NULL;
	struct pr_tid tid;
	struct cursor c;
	int rc;

	if (me < 0 || s->regs[me].key != p->rk) {
		conflict(res);
		return;
	}
	/* Only the holder of a reservation that has one holder can move it. */
	if (s->type == PR_TYPE_NONE || pr_type_ar(s->type) || !s->regs[me].holder) {
		conflict(res);
		return;
	}
	if (p->sark == 0) {
		fail_field(res, false, 8, -1);
		return;
	}
	cur_init(&c, p->tids, p->tids_len);
	rc = pr_tid_parse(&c, &tid);
	if (rc || cur_left(&c) != 0) {
		fail_field(res, false, PARAM_MOVE_LEN, -1);
		return;
	}
	if (!port_exists(ctx, p->rel_port)) {
		fail_field(res, false, 18, -1);
		return;
	}
	if (tid.has_isid) {
		dest_port = tid.port;
	} else {
		/* A device name must resolve to exactly one initiator port on that target
		 * port, or the destination is ambiguous. */
		for (size_t k = 0; k < ctx->nknown; k++) {
			const struct pr_nexus_ref *kn = &ctx->known[k];

			if (kn->rel_port != p->rel_port ||
			    pr_port_name(kn->port, name, sizeof(name)) || strcmp(name, tid.name))
				continue;
			if (dest_port) {
				fail_field(res, false, PARAM_MOVE_LEN, -1);
				return;
			}
			dest_port = kn->port;
		}
		if (!dest_port) {
			fail_field(res, false, PARAM_MOVE_LEN, -1);
			return;
		}
	}
	/* spc4r37 6.16.4: moving to the issuing I_T nexus is an invalid field. */
	if (p->rel_port == ctx->self.rel_port && strcmp(dest_port, ctx->self.port) == 0) {
		fail_field(res, false, PARAM_MOVE_LEN, -1);
		return;
	}
	dest = pr_index(s, dest_port, p->rel_port);
	if (dest < 0) {
		rc = reg_add(s, dest_port, p->rel_port, p->sark, false);
		if (rc) {
			fail_register(res, rc, PARAM_MOVE_LEN);
			return;
		}
		dest = (int)s->nregs - 1;
	} else {
		s->regs[dest].key = p->sark;
	}
	reservation_set(s, type, scope, dest);
	if (p->unreg) {
		/* The issuer no longer holds anything, so unregistering releases nothing. */
		reg_remove(s, (uint32_t)me);
	}
	s->aptpl = p->aptpl;
	s->generation++;
}

static bool state_equal(const struct pr_state *a, const struct pr_state *b)
{
	if (a->generation != b->generation || a->aptpl != b->aptpl || a->type != b->type ||
	    a->scope != b->scope || a->nregs != b->nregs)
		return false;
	return memcmp(a->regs, b->regs, a->nregs * sizeof(a->regs[0])) == 0;
}

void pr_out(const struct pr_state *cur, const struct pr_ctx *ctx, const uint8_t *cdb,
	    size_t cdb_len, const uint8_t *param, size_t param_len, struct pr_state *next,
	    struct pr_result *res)
{
	struct pr_params p = {0};
	struct cursor c;
	uint8_t b1 = 0, b2 = 0, sa, scope, type;
	uint32_t pll = 0;

	pr_result_reset(res);
	memcpy(next, cur, sizeof(*next));

	/* spc4r37 6.16.1: PERSISTENT RESERVE OUT is a 10-byte CDB. */
	cur_init(&c, cdb, cdb_len);
	if (cur_seek(&c, 1) || cur_u8(&c, &b1) || cur_u8(&c, &b2) || cur_seek(&c, 5) ||
	    cur_be32(&c, &pll)) {
		fail(res, &SENSE_INVALID_FIELD_IN_CDB);
		return;
	}
	sa = b1 & 0x1f;
	scope = b2 >> 4;
	type = b2 & 0x0f;

	switch (sa) {
	case PR_OUT_RESERVE:
	case PR_OUT_RELEASE:
	case PR_OUT_PREEMPT:
	case PR_OUT_PREEMPT_AND_ABORT:
	case PR_OUT_REGISTER_AND_MOVE:
		/* spc4r37 6.16.2: these use SCOPE and TYPE; only LU_SCOPE exists. */
		if (scope != PR_SCOPE_LU) {
			fail_field(res, true, 2, 7);
			return;
		}
		if (!pr_type_valid(type)) {
			fail_field(res, true, 2, 3);
			return;
		}
		break;
	case PR_OUT_REGISTER:
	case PR_OUT_CLEAR:
	case PR_OUT_REGISTER_AND_IGNORE:
		/* SCOPE and TYPE are ignored. */
		break;
	default:
		fail_field(res, true, 1, 4);
		return;
	}

	/* The parameter list must have arrived whole. */
	if (param_len < pll || (pll && !param)) {
		fail(res, &SENSE_PARAM_LIST_LENGTH_ERROR);
		return;
	}
	if (sa == PR_OUT_REGISTER_AND_MOVE ? parse_move(param, pll, &p, res)
					   : parse_basic(param, pll, &p, res))
		return;

	/* spc4r37 6.16.3: SPEC_I_PT is meaningful only for REGISTER (REGISTER AND IGNORE
	 * EXISTING KEY rejects it in do_register()); APTPL cannot be honoured without a place to
	 * keep the state (PTPL_C=0). */
	if (p.spec_i_pt && sa != PR_OUT_REGISTER && sa != PR_OUT_REGISTER_AND_IGNORE) {
		fail_field(res, false, 20, 3);
		return;
	}
	if (p.aptpl && !ctx->ptpl_capable &&
	    (sa == PR_OUT_REGISTER || sa == PR_OUT_REGISTER_AND_IGNORE ||
	     sa == PR_OUT_REGISTER_AND_MOVE)) {
		fail_field(res, false, sa == PR_OUT_REGISTER_AND_MOVE ? 17 : 20, 0);
		return;
	}

	switch (sa) {
	case PR_OUT_REGISTER:
		do_register(next, ctx, &p, false, res);
		break;
	case PR_OUT_REGISTER_AND_IGNORE:
		do_register(next, ctx, &p, true, res);
		break;
	case PR_OUT_RESERVE:
		do_reserve(next, ctx, &p, type, scope, res);
		break;
	case PR_OUT_RELEASE:
		do_release(next, ctx, &p, type, scope, res);
		break;
	case PR_OUT_CLEAR:
		do_clear(next, ctx, &p, res);
		break;
	case PR_OUT_PREEMPT:
		do_preempt(next, ctx, &p, type, scope, false, res);
		break;
	case PR_OUT_PREEMPT_AND_ABORT:
		do_preempt(next, ctx, &p, type, scope, true, res);
		break;
	case PR_OUT_REGISTER_AND_MOVE:
		do_move(next, ctx, &p, type, scope, res);
		break;
	default:
		fail_field(res, true, 1, 4);
		break;
	}

	if (res->status != SCSI_STATUS_GOOD) {
		/* A failed command changes nothing and tells nobody (spc4r37 6.15.2: nor does it
		 * count for PRgeneration). */
		memcpy(next, cur, sizeof(*next));
		res->nua = 0;
		res->nabort = 0;
		return;
	}
	res->changed = !state_equal(cur, next);
	/* spc4r37 5.13.5: with APTPL every change must survive power loss; turning APTPL off
	 * must too, or a restart would bring back the last persisted state. */
	res->persist = res->changed && (cur->aptpl || next->aptpl);
}

void pr_admin_clear(const struct pr_state *cur, struct pr_state *next, struct pr_result *res)
{
	pr_result_reset(res);
	memcpy(next, cur, sizeof(*next));
	for (uint32_t i = 0; i < next->nregs; i++)
		ua_add(res, &next->regs[i].itn, &SENSE_RESERVATIONS_PREEMPTED);
	reservation_clear(next);
	while (next->nregs)
		reg_remove(next, next->nregs - 1);
	if (cur->nregs)
		next->generation++;
	res->changed = !state_equal(cur, next);
	res->persist = res->changed && next->aptpl;
}
