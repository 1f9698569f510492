#include "target/iscsi_pdu.h"

#include <errno.h>
#include <string.h>

#include "lib/cursor.h"

/* RFC 7143 11.2.1.2: byte 0 carries the I bit (0x40) and the 6-bit opcode. */
#define BHS_IMMEDIATE 0x40
#define BHS_OPCODE    0x3f
#define BHS_FINAL     0x80

/* The fields every initiator PDU has at the same place: opcode, flags, AHS and data length,
 * bytes 8..15 (LUN, or ISID and TSIH for a login), ITT. */
static void parse_common(struct cursor *c, struct iscsi_pdu *p)
{
	uint8_t b0, b1, ahs;

	cur_seek(c, 0);
	cur_u8(c, &b0);
	cur_u8(c, &b1);
	p->opcode = b0 & BHS_OPCODE;
	p->immediate = b0 & BHS_IMMEDIATE;
	p->final = b1 & BHS_FINAL;
	p->flags = b1 & 0x7f;
	cur_seek(c, 4);
	cur_u8(c, &ahs);
	p->ahs_len = ahs; /* multiplied by 4 by the caller once the opcode is known */
	cur_be24(c, &p->data_len);
	cur_be64(c, &p->lun);
	cur_be32(c, &p->itt);
}

static void parse_at_be32(struct cursor *c, size_t off, uint32_t *v)
{
	cur_seek(c, off);
	cur_be32(c, v);
}

int iscsi_pdu_parse(const uint8_t *bhs, size_t len, struct iscsi_pdu *p, uint8_t *reason)
{
	struct cursor c;
	uint16_t raw_ahs;

	memset(p, 0, sizeof(*p));
	*reason = 0;
	if (bhs == NULL || len < ISCSI_BHS_LEN) {
		*reason = ISCSI_REJECT_PROTOCOL_ERROR;
		return -EBADMSG;
	}
	/* Every read below is within the 48 bytes checked above, so the cursor cannot fail;
	 * it still bounds each access. */
	cur_init(&c, bhs, ISCSI_BHS_LEN);
	parse_common(&c, p);
	raw_ahs = p->ahs_len;
	p->ahs_len = 0;

	/* RFC 7143 11.2.1.2: only the SCSI Command may carry AHS among initiator PDUs. */
	if (raw_ahs && p->opcode != ISCSI_OP_SCSI_CMD) {
		switch (p->opcode) {
		case ISCSI_OP_NOP_OUT:
		case ISCSI_OP_TMF_REQ:
		case ISCSI_OP_LOGIN_REQ:
		case ISCSI_OP_TEXT_REQ:
		case ISCSI_OP_DATA_OUT:
		case ISCSI_OP_LOGOUT_REQ:
		case ISCSI_OP_SNACK_REQ:
			*reason = ISCSI_REJECT_PROTOCOL_ERROR;
			break;
		default:
			*reason = ISCSI_REJECT_CMD_NOT_SUPPORTED;
			break;
		}
		return -EBADMSG;
	}

	switch (p->opcode) {
	case ISCSI_OP_NOP_OUT:
		/* RFC 7143 11.18 */
		parse_at_be32(&c, 20, &p->ttt);
		parse_at_be32(&c, 24, &p->cmdsn);
		parse_at_be32(&c, 28, &p->expstatsn);
		break;
	case ISCSI_OP_SCSI_CMD:
		/* RFC 7143 11.3: byte 1 is F, R, W, two reserved bits and ATTR. */
		p->ahs_len = raw_ahs * 4;
		p->read = p->flags & 0x40;
		p->write = p->flags & 0x20;
		p->attr = p->flags & 0x07;
		parse_at_be32(&c, 20, &p->edtl);
		parse_at_be32(&c, 24, &p->cmdsn);
		parse_at_be32(&c, 28, &p->expstatsn);
		cur_seek(&c, 32);
		cur_bytes(&c, p->cdb, sizeof(p->cdb));
		break;
	case ISCSI_OP_TMF_REQ:
		/* RFC 7143 11.5: the function is byte 1 without the (always set) F bit. */
		p->tmf_func = p->flags & 0x7f;
		parse_at_be32(&c, 20, &p->rtt);
		parse_at_be32(&c, 24, &p->cmdsn);
		parse_at_be32(&c, 28, &p->expstatsn);
		parse_at_be32(&c, 32, &p->refcmdsn);
		parse_at_be32(&c, 36, &p->expdatasn);
		break;
	case ISCSI_OP_LOGIN_REQ:
		/* RFC 7143 11.12: T, C, CSG (2 bits), NSG (2 bits); versions; ISID and TSIH in
		 * place of the LUN. */
		p->cont = p->flags & 0x40;
		p->csg = (p->flags >> 2) & 3;
		p->nsg = p->flags & 3;
		cur_seek(&c, 2);
		cur_u8(&c, &p->version_max);
		cur_u8(&c, &p->version_min);
		cur_seek(&c, 8);
		cur_bytes(&c, p->isid, sizeof(p->isid));
		cur_be16(&c, &p->tsih);
		p->lun = 0;
		cur_seek(&c, 20);
		cur_be16(&c, &p->cid);
		parse_at_be32(&c, 24, &p->cmdsn);
		parse_at_be32(&c, 28, &p->expstatsn);
		break;
	case ISCSI_OP_TEXT_REQ:
		/* RFC 7143 11.10 */
		p->cont = p->flags & 0x40;
		parse_at_be32(&c, 20, &p->ttt);
		parse_at_be32(&c, 24, &p->cmdsn);
		parse_at_be32(&c, 28, &p->expstatsn);
		break;
	case ISCSI_OP_DATA_OUT:
		/* RFC 7143 11.7: no CmdSN in a Data-Out. */
		parse_at_be32(&c, 20, &p->ttt);
		parse_at_be32(&c, 28, &p->expstatsn);
		parse_at_be32(&c, 36, &p->datasn);
		parse_at_be32(&c, 40, &p->buffer_offset);
		break;
	case ISCSI_OP_LOGOUT_REQ:
		/* RFC 7143 11.14: the reason code is byte 1 without the F bit; no LUN. */
		p->logout_reason = p->flags & 0x7f;
		p->lun = 0;
		cur_seek(&c, 20);
		cur_be16(&c, &p->cid);
		parse_at_be32(&c, 24, &p->cmdsn);
		parse_at_be32(&c, 28, &p->expstatsn);
		break;
	case ISCSI_OP_SNACK_REQ:
		/* RFC 7143 11.16: the type is the low nibble of byte 1. */
		p->snack_type = p->flags & 0x0f;
		parse_at_be32(&c, 20, &p->ttt);
		parse_at_be32(&c, 28, &p->expstatsn);
		parse_at_be32(&c, 40, &p->begrun);
		parse_at_be32(&c, 44, &p->runlength);
		break;
	default:
		/* Target opcodes and reserved or vendor opcodes: RFC 7143 11.17.1. */
		*reason = ISCSI_REJECT_CMD_NOT_SUPPORTED;
		return -EBADMSG;
	}
	return 0;
}

/* Bytes 0..7 of a target PDU: opcode, flags, the two bytes after them, AHS 0, data length. */
static void put_head(uint8_t *bhs, uint8_t opcode, uint8_t flags, uint32_t data_len)
{
	memset(bhs, 0, ISCSI_BHS_LEN);
	bhs[0] = opcode;
	bhs[1] = flags;
	put_be24(bhs + 5, data_len & 0xffffff);
}

/* StatSN, ExpCmdSN and MaxCmdSN sit at bytes 24, 28 and 32 in every target PDU. */
static void put_sn(uint8_t *bhs, const struct iscsi_sn *sn, bool with_statsn)
{
	if (with_statsn)
		put_be32(bhs + 24, sn->statsn);
	put_be32(bhs + 28, sn->expcmdsn);
	put_be32(bhs + 32, sn->maxcmdsn);
}

/* RFC 7143 11.4.5.2 / 11.7.5: O (0x04) for overflow, U (0x02) for underflow; the count is the
 * absolute value. */
static uint8_t residual_flags(int64_t residual, uint32_t *count)
{
	if (residual > 0) {
		*count = (uint32_t)residual;
		return 0x02;
	}
	if (residual < 0) {
		*count = (uint32_t)(-residual);
		return 0x04;
	}
	*count = 0;
	return 0;
}

void iscsi_build_scsi_rsp(uint8_t *bhs, uint32_t itt, uint8_t response, uint8_t status,
			  int64_t residual, const struct iscsi_sn *sn, uint32_t expdatasn,
			  uint32_t data_len)
{
	uint32_t count;
	uint8_t flags = residual_flags(residual, &count);

	/* RFC 7143 11.4 */
	put_head(bhs, ISCSI_OP_SCSI_RSP, BHS_FINAL | flags, data_len);
	bhs[2] = response;
	bhs[3] = status;
	put_be32(bhs + 16, itt);
	put_sn(bhs, sn, true);
	put_be32(bhs + 36, expdatasn);
	put_be32(bhs + 44, count);
}

void iscsi_build_data_in(uint8_t *bhs, uint32_t itt, uint64_t lun, uint32_t ttt, bool final,
			 bool ack, bool status_valid, uint8_t status, int64_t residual,
			 const struct iscsi_sn *sn, uint32_t datasn, uint32_t offset,
			 uint32_t data_len)
{
	uint8_t flags = 0;
	uint32_t count = 0;

	/* RFC 7143 11.7: S may only be set together with F; status, StatSN and the residual
	 * are meaningful only with S. */
	if (final)
		flags |= BHS_FINAL;
	if (ack)
		flags |= 0x40;
	if (status_valid && final)
		flags |= 0x01 | residual_flags(residual, &count);
	put_head(bhs, ISCSI_OP_DATA_IN, flags, data_len);
	if (flags & 0x01)
		bhs[3] = status;
	put_be64(bhs + 8, lun);
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, ttt);
	put_sn(bhs, sn, flags & 0x01);
	put_be32(bhs + 36, datasn);
	put_be32(bhs + 40, offset);
	put_be32(bhs + 44, count);
}

void iscsi_build_r2t(uint8_t *bhs, uint32_t itt, uint64_t lun, uint32_t ttt,
		     const struct iscsi_sn *sn, uint32_t r2tsn, uint32_t offset, uint32_t len)
{
	/* RFC 7143 11.8: StatSN here is the next StatSN, not advanced by the R2T. */
	put_head(bhs, ISCSI_OP_R2T, BHS_FINAL, 0);
	put_be64(bhs + 8, lun);
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, ttt);
	put_sn(bhs, sn, true);
	put_be32(bhs + 36, r2tsn);
	put_be32(bhs + 40, offset);
	put_be32(bhs + 44, len);
}

void iscsi_build_nop_in(uint8_t *bhs, uint32_t itt, uint32_t ttt, uint64_t lun,
			const struct iscsi_sn *sn, uint32_t data_len)
{
	/* RFC 7143 11.19 */
	put_head(bhs, ISCSI_OP_NOP_IN, BHS_FINAL, data_len);
	put_be64(bhs + 8, lun);
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, ttt);
	put_sn(bhs, sn, true);
}

void iscsi_build_tmf_rsp(uint8_t *bhs, uint32_t itt, uint8_t response, const struct iscsi_sn *sn)
{
	/* RFC 7143 11.6 */
	put_head(bhs, ISCSI_OP_TMF_RSP, BHS_FINAL, 0);
	bhs[2] = response;
	put_be32(bhs + 16, itt);
	put_sn(bhs, sn, true);
}

void iscsi_build_login_rsp(uint8_t *bhs, bool transit, bool cont, uint8_t csg, uint8_t nsg,
			   uint8_t version_active, const uint8_t isid[6], uint16_t tsih,
			   uint32_t itt, const struct iscsi_sn *sn, uint16_t status,
			   uint32_t data_len)
{
	uint8_t flags = (csg & 3) << 2;

	/* RFC 7143 11.13: NSG is reserved unless T is set; T and C never together. */
	if (transit && !cont)
		flags |= 0x80 | (nsg & 3);
	else if (cont)
		flags |= 0x40;
	put_head(bhs, ISCSI_OP_LOGIN_RSP, flags, data_len);
	bhs[2] = 0; /* Version-max: we speak version 0 only */
	bhs[3] = version_active;
	memcpy(bhs + 8, isid, 6);
	put_be16(bhs + 14, tsih);
	put_be32(bhs + 16, itt);
	put_sn(bhs, sn, true);
	bhs[36] = status >> 8;
	bhs[37] = status & 0xff;
}

void iscsi_build_text_rsp(uint8_t *bhs, bool final, bool cont, uint64_t lun, uint32_t itt,
			  uint32_t ttt, const struct iscsi_sn *sn, uint32_t data_len)
{
	uint8_t flags = 0;

	/* RFC 7143 11.11: F and C are exclusive. */
	if (cont)
		flags = 0x40;
	else if (final)
		flags = BHS_FINAL;
	put_head(bhs, ISCSI_OP_TEXT_RSP, flags, data_len);
	put_be64(bhs + 8, lun);
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, ttt);
	put_sn(bhs, sn, true);
}

void iscsi_build_logout_rsp(uint8_t *bhs, uint32_t itt, uint8_t response, uint16_t time2wait,
			    uint16_t time2retain, const struct iscsi_sn *sn)
{
	/* RFC 7143 11.15 */
	put_head(bhs, ISCSI_OP_LOGOUT_RSP, BHS_FINAL, 0);
	bhs[2] = response;
	put_be32(bhs + 16, itt);
	put_sn(bhs, sn, true);
	put_be16(bhs + 40, time2wait);
	put_be16(bhs + 42, time2retain);
}

void iscsi_build_reject(uint8_t *bhs, uint8_t reason, uint32_t datasn_r2tsn,
			const struct iscsi_sn *sn, uint32_t data_len)
{
	/* RFC 7143 11.17: the data segment is the rejected header; bytes 16..19 are all ones. */
	put_head(bhs, ISCSI_OP_REJECT, BHS_FINAL, data_len);
	bhs[2] = reason;
	put_be32(bhs + 16, ISCSI_RSVD_TAG);
	put_sn(bhs, sn, true);
	put_be32(bhs + 36, datasn_r2tsn);
}

void iscsi_build_async(uint8_t *bhs, uint64_t lun, uint8_t event, uint8_t vcode, uint16_t p1,
		       uint16_t p2, uint16_t p3, const struct iscsi_sn *sn, uint32_t data_len)
{
	/* RFC 7143 11.9 */
	put_head(bhs, ISCSI_OP_ASYNC_MSG, BHS_FINAL, data_len);
	put_be64(bhs + 8, lun);
	put_be32(bhs + 16, ISCSI_RSVD_TAG);
	put_sn(bhs, sn, true);
	bhs[36] = event;
	bhs[37] = vcode;
	put_be16(bhs + 38, p1);
	put_be16(bhs + 40, p2);
	put_be16(bhs + 42, p3);
}

/* sam5r21 4.7 (single level LUN structures): the address method is the top two bits of the
 * first byte; peripheral device addressing (00b) with bus identifier 0 gives LUNs 0..255, flat
 * space addressing (01b) gives 14 bits. Only single-level LUNs exist here, so the other six
 * bytes must be zero. */
int iscsi_lun_decode(uint64_t raw, uint64_t *lun)
{
	uint8_t b0 = raw >> 56, b1 = (raw >> 48) & 0xff;

	if (raw & 0x0000ffffffffffffull)
		return -EINVAL;
	switch (b0 >> 6) {
	case 0:		       /* peripheral device addressing */
		if (b0 & 0x3f) /* a bus identifier other than 0 names another SCSI domain */
			return -EINVAL;
		*lun = b1;
		return 0;
	case 1: /* flat space addressing */
		*lun = (uint64_t)(b0 & 0x3f) << 8 | b1;
		return 0;
	default: /* logical unit addressing, extended addressing, well-known LUNs */
		return -EINVAL;
	}
}

uint64_t iscsi_lun_encode(uint64_t lun)
{
	/* Initiators accept either form; peripheral for 0..255 matches what they expect from
	 * REPORT LUNS of most targets. LUNs are below 16384 (config check). */
	if (lun < 256)
		return lun << 48;
	return (uint64_t)(0x40 | ((lun >> 8) & 0x3f)) << 56 | (uint64_t)(lun & 0xff) << 48;
}
