/* Sense data builders (spc4r37 4.5) and the sense helpers of the command sets. */
#include <string.h>

#include "lib/cursor.h"
#include "target/scsi_cmd.h"
#include "target/scsi_sense.h"

/* spc4r37 4.5.2.4.2, table 31: the sense-key specific field pointer, as three bytes. */
static void sense_put_sks(const struct scsi_sense *s, uint8_t *p)
{
	p[0] = 0x80; /* SKSV */
	if (s->sks_cd)
		p[0] |= 0x40;
	if (s->sks_bit <= 7)
		p[0] |= 0x08 | s->sks_bit; /* BPV and BIT POINTER */
	put_be16(p + 1, s->sks_field);
}

size_t scsi_sense_build(const struct scsi_sense *s, uint8_t *buf, size_t buflen)
{
	uint8_t sd[SCSI_SENSE_FIXED_LEN];
	size_t n = buflen < sizeof(sd) ? buflen : sizeof(sd);

	/* spc4r37 4.5.3, table 50: fixed format, current error. */
	memset(sd, 0, sizeof(sd));
	sd[0] = 0x70;
	sd[2] = s->key & 0x0f;
	/* The INFORMATION field holds four bytes; a larger value (an LBA past 2^32) cannot be
	 * reported in fixed format, and VALID stays zero (spc4r37 4.5.3). */
	if (s->info_valid && s->info <= UINT32_MAX) {
		sd[0] |= 0x80;
		put_be32(sd + 3, (uint32_t)s->info);
	}
	sd[7] = SCSI_SENSE_FIXED_LEN - 8; /* ADDITIONAL SENSE LENGTH */
	sd[12] = s->asc;
	sd[13] = s->ascq;
	if (s->sks_valid)
		sense_put_sks(s, sd + 15);
	memcpy(buf, sd, n);
	return n;
}

size_t scsi_sense_build_desc(const struct scsi_sense *s, uint8_t *buf, size_t buflen)
{
	uint8_t sd[SCSI_SENSE_DESC_MAX];
	size_t len = 8;
	size_t n;

	/* spc4r37 4.5.2, table 27: descriptor format, current error. */
	memset(sd, 0, sizeof(sd));
	sd[0] = 0x72;
	sd[1] = s->key & 0x0f;
	sd[2] = s->asc;
	sd[3] = s->ascq;
	if (s->info_valid) {
		/* spc4r37 4.5.2.2: information descriptor, type 00h, 0Ah additional bytes. */
		sd[len] = 0x00;
		sd[len + 1] = 0x0a;
		sd[len + 2] = 0x80; /* VALID */
		put_be64(sd + len + 4, s->info);
		len += 12;
	}
	if (s->sks_valid) {
		/* spc4r37 4.5.2.4: sense key specific descriptor, type 02h. */
		sd[len] = 0x02;
		sd[len + 1] = 0x06;
		sense_put_sks(s, sd + len + 4);
		len += 8;
	}
	sd[7] = len - 8; /* ADDITIONAL SENSE LENGTH */
	n = buflen < len ? buflen : len;
	memcpy(buf, sd, n);
	return n;
}

struct scsi_sense scsi_sense_field(const struct scsi_sense *base, bool in_cdb, uint16_t byte,
				   int bit)
{
	struct scsi_sense s = *base;

	s.sks_valid = true;
	s.sks_cd = in_cdb;
	s.sks_field = byte;
	s.sks_bit = bit >= 0 && bit <= 7 ? (uint8_t)bit : 0xff;
	return s;
}

struct scsi_sense scsi_sense_info(const struct scsi_sense *base, uint64_t info)
{
	struct scsi_sense s = *base;

	s.info_valid = true;
	s.info = info;
	return s;
}

bool scsi_sense_is_reset(const struct scsi_sense *s)
{
	return s->key == SENSE_KEY_UNIT_ATTENTION && s->asc == 0x29;
}

void scsi_task_set_sense(struct scsi_task *t, uint8_t key, uint8_t asc, uint8_t ascq)
{
	memset(&t->sense, 0, sizeof(t->sense));
	t->sense.key = key;
	t->sense.asc = asc;
	t->sense.ascq = ascq;
	t->sense.sks_bit = 0xff;
	t->status = SCSI_STATUS_CHECK_CONDITION;
	t->in_len = 0;
}

void scsi_task_check_cdb_field(struct scsi_task *t, uint16_t byte, int bit)
{
	struct scsi_sense s = scsi_sense_field(&SENSE_INVALID_FIELD_IN_CDB, true, byte, bit);

	scsi_task_check(t, &s);
}

void scsi_task_check_param_field(struct scsi_task *t, uint16_t byte, int bit)
{
	struct scsi_sense s =
		scsi_sense_field(&SENSE_INVALID_FIELD_IN_PARAM_LIST, false, byte, bit);

	scsi_task_check(t, &s);
}
