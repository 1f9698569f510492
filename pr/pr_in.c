/* PERSISTENT RESERVE IN (spc4r37 6.15): READ KEYS, READ RESERVATION, REPORT CAPABILITIES and
 * READ FULL STATUS. The whole parameter data is laid out (so that the length fields tell the
 * truth) and only what fits the ALLOCATION LENGTH is kept. */
#include <string.h>

#include "lib/cursor.h"
#include "pr/pr_int.h"
#include "target/scsi_sense.h"

/* A writer that counts every byte but stores only the first lim. */
struct sink {
	uint8_t *buf;
	size_t lim;
	size_t pos;
};

static void put(struct sink *k, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++, k->pos++)
		if (k->pos < k->lim)
			k->buf[k->pos] = b[i];
}

static void put_u8(struct sink *k, uint8_t v)
{
	put(k, &v, 1);
}

static void put16(struct sink *k, uint16_t v)
{
	uint8_t b[2];

	put_be16(b, v);
	put(k, b, 2);
}

static void put32(struct sink *k, uint32_t v)
{
	uint8_t b[4];

	put_be32(b, v);
	put(k, b, 4);
}

static void put64(struct sink *k, uint64_t v)
{
	uint8_t b[8];

	put_be64(b, v);
	put(k, b, 8);
}

static void put_zero(struct sink *k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put_u8(k, 0);
}

/* spc4r37 6.15.2: READ KEYS lists every registered key, one per I_T nexus. */
static void read_keys(const struct pr_state *s, struct sink *k)
{
	put32(k, s->generation);
	put32(k, s->nregs * 8);
	for (uint32_t i = 0; i < s->nregs; i++)
		put64(k, s->regs[i].key);
}

/* spc4r37 6.15.3: READ RESERVATION. An all-registrants reservation reports key zero
 * (spc4r37 5.13.10). */
static void read_reservation(const struct pr_state *s, struct sink *k)
{
	uint64_t key = 0;

	put32(k, s->generation);
	if (s->type == PR_TYPE_NONE) {
		put32(k, 0);
		return;
	}
	if (!pr_type_ar(s->type)) {
		for (uint32_t i = 0; i < s->nregs; i++)
			if (s->regs[i].holder)
				key = s->regs[i].key;
	}
	put32(k, 16);
	put64(k, key);
	put_zero(k, 4); /* obsolete */
	put_u8(k, 0);
	put_u8(k, (uint8_t)(s->scope << 4 | s->type));
	put_zero(k, 2); /* obsolete */
}

/* spc4r37 6.15.4: REPORT CAPABILITIES. Every bit says what the engine really does:
 * CRH: RESERVE/RELEASE follow spc4r37 5.13.3 (pr_check_conflict());
 * SIP_C: SPEC_I_PT is supported; ATP_C: ALL_TG_PT is supported;
 * PTPL_C: APTPL can be honoured (only with a data folder), PTPL_A: it is active;
 * TMV: the type mask is valid and lists all six types;
 * ALLOW COMMANDS 010b: TEST UNIT READY passes Write Exclusive and Exclusive Access, and MODE
 * SENSE, READ DEFECT DATA and REPORT SUPPORTED OPERATION CODES (the ones of that list Holdfast
 * implements) pass Write Exclusive (pr_cmd_class()). */
static void report_caps(const struct pr_state *s, const struct pr_ctx *ctx, struct sink *k)
{
	bool ptpl_c = ctx && ctx->ptpl_capable;

	put16(k, 8);
	put_u8(k, 0x10 | 0x08 | 0x04 | (ptpl_c ? 0x01 : 0x00));
	put_u8(k, 0x80 | 0x02 << 4 | (s->aptpl ? 0x01 : 0x00));
	/* spc4r37 table 169: WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX | EX_AC_AR. */
	put_u8(k, 0x80 | 0x40 | 0x20 | 0x08 | 0x02);
	put_u8(k, 0x01);
	put_zero(k, 2);
}

/* spc4r37 6.15.5: READ FULL STATUS, one descriptor per registered I_T nexus with its
 * TransportID. */
static void read_full_status(const struct pr_state *s, struct sink *k)
{
	size_t len_at, start;
	uint8_t tid[4 + PR_PORT_MAX + 4];

	put32(k, s->generation);
	len_at = k->pos;
	put32(k, 0);
	start = k->pos;
	for (uint32_t i = 0; i < s->nregs; i++) {
		const struct pr_reg *r = &s->regs[i];
		bool holder = pr_is_holder(s, r);
		size_t tlen = pr_tid_build(r->itn.port, tid, sizeof(tid));

		put64(k, r->key);
		put_zero(k, 4);
		/* Each descriptor names one I_T nexus, so ALL_TG_PT is zero and the relative
		 * target port identifier is meaningful. */
		put_u8(k, holder ? 0x01 : 0x00);
		put_u8(k, holder ? (uint8_t)(s->scope << 4 | s->type) : 0);
		put_zero(k, 4);
		put16(k, r->itn.rel_port);
		put32(k, (uint32_t)tlen);
		put(k, tid, tlen);
	}
	/* Patch ADDITIONAL LENGTH now that the descriptors are counted. */
	if (len_at + 4 <= k->lim)
		put_be32(k->buf + len_at, (uint32_t)(k->pos - start));
	else if (len_at < k->lim) {
		uint8_t b[4];

		put_be32(b, (uint32_t)(k->pos - start));
		memcpy(k->buf + len_at, b, k->lim - len_at);
	}
}

uint8_t pr_in(const struct pr_state *s, const struct pr_ctx *ctx, const uint8_t *cdb,
	      size_t cdb_len, uint8_t *buf, size_t cap, size_t *len, struct scsi_sense *sense)
{
	struct cursor c;
	struct sink k;
	uint16_t alloc;
	uint8_t b1;

	*len = 0;
	memset(sense, 0, sizeof(*sense));
	/* spc4r37 6.15.1: PERSISTENT RESERVE IN is a 10-byte CDB. */
	cur_init(&c, cdb, cdb_len);
	if (cur_seek(&c, 1) || cur_u8(&c, &b1) || cur_seek(&c, 7) || cur_be16(&c, &alloc)) {
		*sense = SENSE_INVALID_FIELD_IN_CDB;
		return SCSI_STATUS_CHECK_CONDITION;
	}
	k.buf = buf;
	k.lim = alloc < cap ? alloc : cap;
	k.pos = 0;
	switch (b1 & 0x1f) {
	case PR_IN_READ_KEYS:
		read_keys(s, &k);
		break;
	case PR_IN_READ_RESERVATION:
		read_reservation(s, &k);
		break;
	case PR_IN_REPORT_CAPABILITIES:
		report_caps(s, ctx, &k);
		break;
	case PR_IN_READ_FULL_STATUS:
		read_full_status(s, &k);
		break;
	default:
		*sense = SENSE_INVALID_FIELD_IN_CDB;
		sense->sks_valid = true;
		sense->sks_cd = true;
		sense->sks_field = 1;
		sense->sks_bit = 4;
		return SCSI_STATUS_CHECK_CONDITION;
	}
	*len = k.pos < k.lim ? k.pos : k.lim;
	return SCSI_STATUS_GOOD;
}
