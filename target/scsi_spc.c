/* The SPC-4 commands every Holdfast LUN implements: inventory and identity (INQUIRY and its
 * VPD pages, REPORT LUNS, REPORT SUPPORTED OPERATION CODES, REPORT TARGET PORT GROUPS),
 * status (TEST UNIT READY, REQUEST SENSE), mode pages (caching, control, informational
 * exceptions), SCSI-2 reservations and SEND DIAGNOSTIC. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/cursor.h"
#include "lib/log.h"
#include "target/lun.h"
#include "target/scsi_cmd.h"
#include "target/scsi_sbc.h"
#include "target/scsi_sense.h"
#include "target/scsi_xcopy.h"

#define SPC_VENDOR   "HOLDFAST"
#define SPC_PRODUCT  "Holdfast LUN"
#define SPC_REVISION "0001"

/* The VPD pages Holdfast returns (spc4r37 7.8), in ascending order as page 00h lists them. */
static const uint8_t spc_vpd_pages[] = {0x00, 0x80, 0x83, 0x8f, 0xb0, 0xb1, 0xb2};

/* Timeouts reported by REPORT SUPPORTED OPERATION CODES with RCTD (spc4r37 6.35.4), in
 * seconds: no nominal time is promised, and no command should take a minute. */
#define SPC_NOMINAL_TIMEOUT	0
#define SPC_RECOMMENDED_TIMEOUT 60

/* Read a big-endian field of n (1-4) bytes at off in the CDB. The CDB array is larger than
 * any CDB, so the read never fails; the cursor keeps it that way. */
static uint32_t cdb_get(const struct scsi_task *t, size_t off, size_t n)
{
	struct cursor c;
	uint32_t v = 0;
	uint8_t b;

	cur_init(&c, t->cdb, sizeof(t->cdb));
	if (cur_seek(&c, off))
		return 0;
	while (n--) {
		if (cur_u8(&c, &b))
			return 0;
		v = v << 8 | b;
	}
	return v;
}

/* Complete a command that produced `full` bytes of parameter data, of which the initiator
 * asked for at most `alloc` (spc4r37 4.2.5.6: the data is truncated, not an error). */
static void spc_reply(struct scsi_task *t, uint32_t full, uint32_t alloc)
{
	t->in_len = full < alloc ? full : alloc;
	scsi_task_good(t);
}

static uint8_t *spc_alloc(struct scsi_task *t, size_t len)
{
	uint8_t *p = scsi_task_alloc_in(t, len);

	if (!p)
		scsi_task_check(t, &SENSE_INTERNAL_TARGET_FAILURE);
	return p;
}

/* Copy s into a fixed-width, space-padded ASCII field (spc4r37 4.4.1). */
static void put_ascii(uint8_t *p, size_t width, const char *s)
{
	size_t n = strlen(s);

	memset(p, ' ', width);
	memcpy(p, s, n < width ? n : width);
}

/* The target port a task arrived on: its target port group, from the target's port list
 * (the transport's rel_port_id names it); the portal group tag when the list lacks it. */
static uint16_t spc_port_group(const struct scsi_task *t)
{
	const struct scsi_target_info *ti = t->target;

	for (size_t i = 0; ti && i < ti->nports; i++)
		if (ti->ports[i].rel_port_id == t->nexus->rel_port_id)
			return ti->ports[i].tpg_id;
	return t->nexus->tpgt;
}

/* spc4r37 6.6.2: standard INQUIRY data. */
static void spc_inquiry_standard(struct scsi_task *t, uint32_t alloc)
{
	static const uint16_t versions[] = {
		0x00a0, /* SAM-5 */
		0x0960, /* iSCSI */
		0x0460, /* SPC-4 */
		0x04c0, /* SBC-3 */
	};
	const size_t len = 74;
	uint8_t *b = spc_alloc(t, len);

	if (!b)
		return;
	/* spc4r37 6.6.2, table 141: qualifier 011b with type 1Fh says "no logical unit here"
	 * for a LUN the target does not map. */
	b[0] = t->lun ? 0x00 : 0x7f;
	b[2] = 0x06;	    /* VERSION: SPC-4 */
	b[3] = 0x10 | 0x02; /* HISUP, RESPONSE DATA FORMAT 2 */
	b[4] = len - 5;
	b[5] = 0x10; /* TPGS 01b: implicit ALUA only (REPORT TARGET PORT GROUPS) */
	if (t->target && t->target->nports > 1)
		b[6] = 0x10; /* MULTIP */
	b[7] = 0x02;	     /* CMDQUE */
	put_ascii(b + 8, 8, SPC_VENDOR);
	put_ascii(b + 16, 16, SPC_PRODUCT);
	put_ascii(b + 32, 4, SPC_REVISION);
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		put_be16(b + 58 + 2 * i, versions[i]);
	spc_reply(t, len, alloc);
}

/* Append one designation descriptor (spc4r37 7.8.6.1, table 459); returns its length. The
 * designator is padded with zeros to len_padded. */
static size_t put_designator(uint8_t *p, uint8_t proto_codeset, uint8_t piv_assoc_type,
			     const void *d, size_t len, size_t len_padded)
{
	p[0] = proto_codeset;
	p[1] = piv_assoc_type;
	p[2] = 0;
	p[3] = (uint8_t)len_padded;
	memset(p + 4, 0, len_padded);
	memcpy(p + 4, d, len);
	return 4 + len_padded;
}

/* spc4r37 7.8.6: Device Identification VPD page. */
static size_t spc_vpd_devid(const struct scsi_task *t, uint8_t *b)
{
	/* Byte 0: PROTOCOL IDENTIFIER (5h iSCSI, when PIV is set) and CODE SET; byte 1: PIV,
	 * ASSOCIATION (00b logical unit, 01b target port, 10b target device), DESIGNATOR TYPE. */
	enum {
		CS_BINARY = 1,
		CS_ASCII = 2,
		CS_UTF8 = 3,
		PROTO_ISCSI = 0x50,
		PIV = 0x80,
		ASSOC_LU = 0x00,
		ASSOC_PORT = 0x10,
		ASSOC_DEVICE = 0x20,
	};
	char name[256 + 16];
	uint8_t t10[8 + 32];
	uint8_t id[4] = {0};
	size_t n = 4, len;

	/* Logical unit: NAA IEEE Registered Extended (type 3), then T10 vendor id (type 1),
	 * both derived from the box id and the LUN's name, so stable across restarts. */
	n += put_designator(b + n, CS_BINARY, ASSOC_LU | 0x3, scsi_lun_naa(t->lun), 16, 16);
	put_ascii(t10, 8, SPC_VENDOR);
	memcpy(t10 + 8, scsi_lun_serial(t->lun), 32);
	n += put_designator(b + n, CS_ASCII, ASSOC_LU | 0x1, t10, sizeof(t10), sizeof(t10));

	/* Target port: relative target port (type 4), target port group (type 5), SCSI name
	 * string "<iqn>,t,0x<tpgt>" (type 8, spc4r37 7.6.4.6 with RFC 7143 13.7). */
	put_be16(id + 2, t->nexus->rel_port_id);
	n += put_designator(b + n, PROTO_ISCSI | CS_BINARY, PIV | ASSOC_PORT | 0x4, id, 4, 4);
	put_be16(id + 2, spc_port_group(t));
	n += put_designator(b + n, PROTO_ISCSI | CS_BINARY, PIV | ASSOC_PORT | 0x5, id, 4, 4);
	if (t->target && t->target->name) {
		/* SCSI name strings are NUL-terminated and padded to a multiple of four
		 * (spc4r37 7.8.6.10). */
		len = (size_t)snprintf(name, sizeof(name), "%s,t,0x%04x", t->target->name,
				       t->nexus->tpgt);
		if (len < sizeof(name))
			n += put_designator(b + n, PROTO_ISCSI | CS_UTF8, PIV | ASSOC_PORT | 0x8,
					    name, len, (len + 4) & ~(size_t)3);
		len = strnlen(t->target->name, 224);
		n += put_designator(b + n, PROTO_ISCSI | CS_UTF8, PIV | ASSOC_DEVICE | 0x8,
				    t->target->name, len, (len + 4) & ~(size_t)3);
	}
	return n;
}

/* sbc3r36 6.5.3 (sbc4r15 6.6.4 for the atomic fields): Block Limits VPD page. The values
 * are the SBC command set's own limits (target/scsi_sbc.h), so the page cannot promise what
 * the handlers refuse. */
static size_t spc_vpd_block_limits(const struct scsi_task *t, uint8_t *b)
{
	uint32_t bsz = scsi_lun_block_size(t->lun);

	b[4] = SBC_WSNZ ? 0x01 : 0x00;
	b[5] = SBC_MAX_CAW_BLOCKS;
	/* OPTIMAL TRANSFER LENGTH GRANULARITY: the physical block the stores work in. */
	put_be16(b + 6, (uint16_t)(bsz < SBC_PHYS_BLOCK_BYTES ? SBC_PHYS_BLOCK_BYTES / bsz : 1));
	put_be32(b + 8, SBC_MAX_XFER_BLOCKS(bsz));
	put_be32(b + 12, (1u << 20) / bsz); /* OPTIMAL TRANSFER LENGTH: 1 MiB */
	put_be32(b + 20, SBC_MAX_UNMAP_LBAS);
	put_be32(b + 24, SBC_MAX_UNMAP_DESC);
	put_be32(b + 28, SBC_UNMAP_GRANULARITY);
	put_be32(b + 32, 0x80000000u); /* UGAVALID, UNMAP GRANULARITY ALIGNMENT 0 */
	put_be64(b + 36, SBC_MAX_WS_BLOCKS(bsz));
	put_be32(b + 44, SBC_ATOMIC_MAX_BLOCKS(bsz));
	put_be32(b + 48, SBC_ATOMIC_ALIGNMENT(bsz));
	put_be32(b + 52, SBC_ATOMIC_GRANULARITY(bsz));
	put_be32(b + 56, SBC_ATOMIC_MAX_WITH_BOUNDARY);
	put_be32(b + 60, SBC_ATOMIC_MAX_BOUNDARY);
	return 64;
}

static void spc_inquiry_vpd(struct scsi_task *t, uint8_t page, uint32_t alloc)
{
	uint8_t *b = spc_alloc(t, 1024);
	size_t n = 4;

	if (!b)
		return;
	b[1] = page;
	switch (page) {
	case 0x00: /* spc4r37 7.8.13: Supported VPD Pages */
		memcpy(b + 4, spc_vpd_pages, sizeof(spc_vpd_pages));
		n += sizeof(spc_vpd_pages);
		break;
	case 0x80: /* spc4r37 7.8.15: Unit Serial Number */
		memcpy(b + 4, scsi_lun_serial(t->lun), 32);
		n += 32;
		break;
	case 0x83:
		n = spc_vpd_devid(t, b);
		break;
	case 0x8f: /* spc4r37 7.8.17: Third-party Copy */
		n = scsi_xcopy_vpd(b, 1024);
		break;
	case 0xb0:
		n = spc_vpd_block_limits(t, b);
		break;
	case 0xb1:			 /* sbc3r36 6.5.2: Block Device Characteristics */
		put_be16(b + 4, 0x0001); /* MEDIUM ROTATION RATE: non-rotating medium */
		n = 64;
		break;
	case 0xb2: /* sbc3r36 6.5.4: Logical Block Provisioning */
		/* LBPU, LBPWS, LBPWS10; LBPRZ only where discarded blocks read back as
		 * zeros (not a block device's BLKDISCARD). */
		b[5] = 0x80 | 0x40 | 0x20;
		if (SBC_LBPRZ && bs_discard_zeroes(scsi_lun_bs(t->lun)))
			b[5] |= 0x04;
		if (SBC_ANC_SUP)
			b[5] |= 0x02;
		b[6] = 0x02; /* PROVISIONING TYPE: thin */
		n = 8;
		break;
	default:
		scsi_task_check_cdb_field(t, 2, -1);
		return;
	}
	put_be16(b + 2, (uint16_t)(n - 4));
	spc_reply(t, n, alloc);
}

/* spc4r37 6.6: INQUIRY. */
static void spc_inquiry(struct scsi_task *t)
{
	uint8_t flags = cdb_get(t, 1, 1);
	uint8_t page = cdb_get(t, 2, 1);
	uint32_t alloc = cdb_get(t, 3, 2);

	if (flags & 0x02) { /* CMDDT, obsolete since SPC-3 */
		scsi_task_check_cdb_field(t, 1, 1);
		return;
	}
	if (!(flags & 0x01)) {
		/* spc4r37 6.6.1: with EVPD zero the PAGE CODE field must be zero. */
		if (page)
			scsi_task_check_cdb_field(t, 2, -1);
		else
			spc_inquiry_standard(t, alloc);
		return;
	}
	if (!t->lun) {
		scsi_task_check(t, &SENSE_LUN_NOT_SUPPORTED);
		return;
	}
	spc_inquiry_vpd(t, page, alloc);
}

/* sam5r21 4.7.7: single-level LUN encoding: peripheral device addressing below 256, flat
 * space addressing below 16384. */
static int encode_lun(uint64_t lun, uint8_t *p)
{
	memset(p, 0, 8);
	if (lun < 256) {
		p[1] = (uint8_t)lun;
		return 0;
	}
	if (lun < 16384) {
		p[0] = 0x40 | (uint8_t)(lun >> 8);
		p[1] = (uint8_t)lun;
		return 0;
	}
	return -ERANGE;
}

/* spc4r37 6.33: REPORT LUNS. */
static void spc_report_luns(struct scsi_task *t)
{
	uint8_t select = cdb_get(t, 2, 1);
	uint32_t alloc = cdb_get(t, 6, 4);
	size_t nluns = scsi_target_nluns(t->target);
	size_t n = 8;
	uint8_t *b;

	switch (select) {
	case 0x00: /* logical units, no well-known LUNs */
	case 0x02: /* all: Holdfast has no well-known LUNs */
		break;
	case 0x01: /* well-known LUNs only: none */
		nluns = 0;
		break;
	default:
		scsi_task_check_cdb_field(t, 2, -1);
		return;
	}
	b = spc_alloc(t, 8 + 8 * nluns);
	if (!b)
		return;
	for (size_t i = 0; i < nluns; i++) {
		struct scsi_lun *dev = scsi_lun_entry_dev(&t->target->luns[i]);

		/* A removed LUN, and a shared volume outside the initiator's cluster (lun.h),
		 * are not listed. */
		if (!dev || (t->nexus && scsi_lun_access_of(dev, t->nexus->initiator_name) ==
						 SCSI_LUN_ACCESS_NONE))
			continue;
		if (encode_lun(t->target->luns[i].lun, b + n)) {
			log_warnx("%s: LUN %llu cannot be encoded; not reported", __func__,
				  (unsigned long long)t->target->luns[i].lun);
			continue;
		}
		n += 8;
	}
	put_be32(b, (uint32_t)(n - 8));
	spc_reply(t, n, alloc);
}

/* spc4r37 6.37: TEST UNIT READY. The medium is always there. */
static void spc_test_unit_ready(struct scsi_task *t)
{
	scsi_task_good(t);
}

/* spc4r37 6.39: REQUEST SENSE. Reports and clears a pending unit attention, else NO SENSE;
 * for an unmapped LUN, LOGICAL UNIT NOT SUPPORTED with GOOD status (spc4r37 6.39.1). */
static void spc_request_sense(struct scsi_task *t)
{
	bool desc = cdb_get(t, 1, 1) & 0x01;
	uint32_t alloc = cdb_get(t, 4, 1);
	struct scsi_sense s = SENSE_NO_SENSE;
	uint8_t *b = spc_alloc(t, SCSI_SENSE_DESC_MAX);
	size_t n;

	if (!b)
		return;
	if (!t->lun)
		s = SENSE_LUN_NOT_SUPPORTED;
	else if (!scsi_lun_ua_take(t->lun, t->nexus, &s))
		s = SENSE_NO_SENSE;
	n = desc ? scsi_sense_build_desc(&s, b, SCSI_SENSE_DESC_MAX)
		 : scsi_sense_build(&s, b, SCSI_SENSE_DESC_MAX);
	spc_reply(t, n, alloc);
}

/* Mode pages. PC values of MODE SENSE (spc4r37 6.11, table 167). */
enum { PC_CURRENT = 0, PC_CHANGEABLE = 1, PC_DEFAULT = 2, PC_SAVED = 3 };

#define MODE_PAGE_CACHING 0x08
#define MODE_PAGE_CONTROL 0x0a
#define MODE_PAGE_IEC	  0x1c
#define MODE_PAGE_ALL	  0x3f
#define MODE_PAGE_MAXLEN  20

static const uint8_t mode_pages[] = {MODE_PAGE_CACHING, MODE_PAGE_CONTROL, MODE_PAGE_IEC};

/* Build one mode page (page code, PAGE LENGTH, parameters) for the given PC; returns its
 * length, or 0 for a page Holdfast does not have. */
static size_t mode_page_build(const struct scsi_lun *lun, uint8_t page, int pc, uint8_t *p)
{
	memset(p, 0, MODE_PAGE_MAXLEN);
	p[0] = page;
	switch (page) {
	case MODE_PAGE_CACHING: /* sbc3r36 6.4.5 */
		p[1] = 0x12;
		if (pc == PC_CHANGEABLE)
			p[2] = 0x04; /* only WCE can be changed */
		else if (pc == PC_DEFAULT)
			p[2] = 0x04; /* WCE on by default; RCD 0: the read cache is used */
		else
			p[2] = scsi_lun_wce(lun) ? 0x04 : 0x00;
		return 20;
	case MODE_PAGE_CONTROL: /* spc4r37 7.5.8 */
		p[1] = 0x0a;
		if (pc == PC_CHANGEABLE)
			return 12;
		/* TST 000b (one task set), D_SENSE 0 (fixed format sense only), GLTSD 1 (no
		 * log parameters are saved). QUEUE ALGORITHM MODIFIER 1: commands are reordered
		 * freely, as the workers run them concurrently; QErr 00b. TAS 0: tasks aborted
		 * on behalf of another nexus end without a response. */
		p[2] = 0x02;
		p[3] = 0x10;
		put_be16(p + 8, 0xffff); /* BUSY TIMEOUT PERIOD: unlimited */
		return 12;
	case MODE_PAGE_IEC: /* spc4r37 7.5.11: Informational Exceptions Control */
		p[1] = 0x0a;
		if (pc != PC_CHANGEABLE)
			p[2] = 0x08; /* DEXCPT: no informational exception reporting */
		return 12;
	default:
		return 0;
	}
}

/* spc4r37 6.11 / 6.12: MODE SENSE(6) and MODE SENSE(10). */
static void spc_mode_sense(struct scsi_task *t)
{
	bool ten = t->cdb[0] == 0x5a;
	uint8_t b1 = cdb_get(t, 1, 1);
	uint8_t b2 = cdb_get(t, 2, 1);
	uint8_t subpage = cdb_get(t, 3, 1);
	uint32_t alloc = ten ? cdb_get(t, 7, 2) : cdb_get(t, 4, 1);
	int pc = b2 >> 6;
	uint8_t page = b2 & 0x3f;
	bool dbd = b1 & 0x08;
	bool llbaa = ten && (b1 & 0x10);
	size_t hdr = ten ? 8 : 4;
	size_t bdlen = dbd ? 0 : llbaa ? 16 : 8;
	uint64_t nblocks = scsi_lun_nblocks(t->lun);
	uint32_t bsz = scsi_lun_block_size(t->lun);
	size_t n, plen;
	uint8_t *b;

	if (pc == PC_SAVED) {
		/* spc4r37 6.11: no saved values, so no saved page can be reported. */
		struct scsi_sense s =
			scsi_sense_field(&SENSE_SAVING_PARAMS_UNSUPPORTED, true, 2, 7);

		scsi_task_check(t, &s);
		return;
	}
	/* Holdfast's pages have no subpages: subpage 00h, or FFh ("all subpages"). */
	if (subpage != 0x00 && subpage != 0xff) {
		scsi_task_check_cdb_field(t, 3, -1);
		return;
	}
	b = spc_alloc(t, hdr + bdlen + sizeof(mode_pages) * MODE_PAGE_MAXLEN);
	if (!b)
		return;
	n = hdr;
	if (bdlen == 8) {
		/* spc4r37 7.5.5.1: short LBA block descriptor; a capacity past 32 bits reports
		 * FFFFFFFFh and READ CAPACITY(16) tells the rest. */
		if (pc != PC_CHANGEABLE) {
			put_be32(b + n, nblocks > 0xffffffffu ? 0xffffffffu : (uint32_t)nblocks);
			put_be24(b + n + 5, bsz);
		}
		n += 8;
	} else if (bdlen == 16) {
		if (pc != PC_CHANGEABLE) {
			put_be64(b + n, nblocks);
			put_be32(b + n + 12, bsz);
		}
		n += 16;
	}
	if (page == MODE_PAGE_ALL) {
		for (size_t i = 0; i < sizeof(mode_pages); i++)
			n += mode_page_build(t->lun, mode_pages[i], pc, b + n);
	} else {
		plen = mode_page_build(t->lun, page, pc, b + n);
		if (!plen) {
			scsi_task_check_cdb_field(t, 2, 5);
			return;
		}
		n += plen;
	}
	/* spc4r37 7.5.5: mode parameter header. DPOFUA: the SBC command set honours FUA. */
	if (ten) {
		put_be16(b, (uint16_t)(n - 2));
		b[3] = 0x10;
		b[4] = llbaa ? 0x01 : 0x00; /* LONGLBA */
		put_be16(b + 6, (uint16_t)bdlen);
	} else {
		b[0] = (uint8_t)(n - 1);
		b[2] = 0x10;
		b[3] = (uint8_t)bdlen;
	}
	spc_reply(t, n, alloc);
}

/* spc4r37 6.9 / 6.10: MODE SELECT(6) and MODE SELECT(10). The whole parameter list is
 * checked before anything changes, so a bad list changes nothing. */
static void spc_mode_select(struct scsi_task *t)
{
	bool ten = t->cdb[0] == 0x55;
	uint8_t b1 = cdb_get(t, 1, 1);
	uint32_t plen = ten ? cdb_get(t, 7, 2) : cdb_get(t, 4, 1);
	size_t hdr = ten ? 8 : 4;
	uint8_t cur[MODE_PAGE_MAXLEN], chg[MODE_PAGE_MAXLEN];
	const uint8_t *pg;
	bool have_wce = false, new_wce = false;
	struct cursor c;
	uint16_t bdlen = 0;
	uint8_t v, longlba = 0;

	if (b1 & 0x01) { /* SP: Holdfast keeps no saved pages */
		scsi_task_check_cdb_field(t, 1, 0);
		return;
	}
	if (!(b1 & 0x10)) { /* PF 0 would mean vendor-specific pages (SCSI-1) */
		scsi_task_check_cdb_field(t, 1, 4);
		return;
	}
	if (plen == 0) { /* spc4r37 6.9: no data, no change */
		scsi_task_good(t);
		return;
	}
	if (!t->out || t->out_len < plen || plen < hdr) {
		scsi_task_check(t, &SENSE_PARAM_LIST_LENGTH_ERROR);
		return;
	}
	cur_init(&c, t->out, plen);

	/* spc4r37 7.5.5: the header. MODE DATA LENGTH is reserved in MODE SELECT; the medium
	 * type must be 00h; the device-specific parameter (WP, DPOFUA) is not changeable. */
	cur_seek(&c, ten ? 2 : 1);
	cur_u8(&c, &v);
	if (v) {
		scsi_task_check_param_field(t, ten ? 2 : 1, -1);
		return;
	}
	if (ten) {
		cur_u8(&c, &v); /* device-specific parameter */
		cur_u8(&c, &longlba);
		cur_seek(&c, 6);
		cur_be16(&c, &bdlen);
	} else {
		cur_seek(&c, 3);
		cur_u8(&c, &v);
		bdlen = v;
	}
	if (bdlen != 0 && bdlen != 8 && !(bdlen == 16 && (longlba & 0x01))) {
		scsi_task_check_param_field(t, ten ? 6 : 3, -1);
		return;
	}
	cur_seek(&c, hdr);
	if (bdlen) {
		uint32_t blen = 0;

		if (cur_left(&c) < bdlen) {
			scsi_task_check(t, &SENSE_PARAM_LIST_LENGTH_ERROR);
			return;
		}
		/* The block size cannot change; zero means "keep". Short descriptor: BLOCK
		 * LENGTH in bytes 5-7; long: bytes 12-15 (spc4r37 7.5.5.1, 7.5.5.2). */
		cur_skip(&c, bdlen == 8 ? 5 : 12);
		if (bdlen == 8)
			cur_be24(&c, &blen);
		else
			cur_be32(&c, &blen);
		if (blen && blen != scsi_lun_block_size(t->lun)) {
			scsi_task_check_param_field(t, hdr + (bdlen == 8 ? 5 : 12), -1);
			return;
		}
	}
	while (cur_left(&c)) {
		size_t off = c.pos;
		uint8_t code, len;
		size_t want;

		if (cur_u8(&c, &code) || cur_u8(&c, &len)) {
			scsi_task_check(t, &SENSE_PARAM_LIST_LENGTH_ERROR);
			return;
		}
		if (code & 0x40) { /* SPF: no subpages */
			scsi_task_check_param_field(t, off, 6);
			return;
		}
		want = mode_page_build(t->lun, code & 0x3f, PC_CURRENT, cur);
		mode_page_build(t->lun, code & 0x3f, PC_CHANGEABLE, chg);
		if (!want) {
			scsi_task_check_param_field(t, off, 5);
			return;
		}
		if (len != want - 2) {
			scsi_task_check_param_field(t, off + 1, -1);
			return;
		}
		if (cur_ptr(&c, len, &pg)) {
			scsi_task_check(t, &SENSE_PARAM_LIST_LENGTH_ERROR);
			return;
		}
		/* spc4r37 6.9: a bit that is not changeable must keep its current value. */
		for (size_t i = 2; i < want; i++) {
			uint8_t bad = (pg[i - 2] ^ cur[i]) & ~chg[i];

			if (bad) {
				int bit = 7;

				while (!(bad & 1u << bit))
					bit--;
				scsi_task_check_param_field(t, off + i, bit);
				return;
			}
		}
		if ((code & 0x3f) == MODE_PAGE_CACHING) {
			have_wce = true;
			new_wce = pg[0] & 0x04;
		}
	}
	/* spc4r37 6.9: parameters shared by all I_T nexuses changed: every other nexus gets
	 * MODE PARAMETERS CHANGED. */
	if (have_wce && scsi_lun_set_wce(t->lun, new_wce))
		scsi_lun_ua_all(t->lun, t->nexus, &SENSE_MODE_PARAMS_CHANGED);
	scsi_task_good(t);
}

/* spc4r37 6.35: REPORT SUPPORTED OPERATION CODES. */
static size_t rsoc_timeouts(uint8_t *p)
{
	put_be16(p, 0x000a);
	p[2] = 0;
	p[3] = 0;
	put_be32(p + 4, SPC_NOMINAL_TIMEOUT);
	put_be32(p + 8, SPC_RECOMMENDED_TIMEOUT);
	return 12;
}

static void spc_rsoc(struct scsi_task *t)
{
	uint8_t b2 = cdb_get(t, 2, 1);
	bool rctd = b2 & 0x80;
	uint8_t option = b2 & 0x07;
	uint8_t op = cdb_get(t, 3, 1);
	uint16_t sa = cdb_get(t, 4, 2);
	uint32_t alloc = cdb_get(t, 6, 4);
	const struct scsi_cmd_desc *const *all;
	const struct scsi_cmd_desc *d = NULL;
	unsigned nall = scsi_cmd_all(&all);
	size_t n = 0, ulen;
	uint8_t *b;

	switch (option) {
	case 0: /* all commands: table 363 */
		b = spc_alloc(t, 4 + nall * 20);
		if (!b)
			return;
		n = 4;
		for (unsigned i = 0; i < nall; i++) {
			uint8_t *p = b + n;

			p[0] = all[i]->opcode;
			put_be16(p + 2, all[i]->sa == SCSI_NO_SA ? 0 : all[i]->sa);
			p[5] = (rctd ? 0x02 : 0) | (all[i]->sa != SCSI_NO_SA ? 0x01 : 0);
			put_be16(p + 6, all[i]->cdb_len);
			n += 8;
			if (rctd)
				n += rsoc_timeouts(b + n);
		}
		put_be32(b, (uint32_t)(n - 4));
		spc_reply(t, n, alloc);
		return;
	case 1: /* one opcode without service actions */
		if (scsi_cmd_has_sa(op)) {
			scsi_task_check_cdb_field(t, 3, -1);
			return;
		}
		d = scsi_cmd_lookup(op, SCSI_NO_SA);
		break;
	case 2: /* one opcode and service action */
		if (!scsi_cmd_has_sa(op)) {
			scsi_task_check_cdb_field(t, 3, -1);
			return;
		}
		d = scsi_cmd_lookup(op, sa);
		break;
	case 3: /* one opcode, with its service action if it has them (spc4r37 6.35.1) */
		d = scsi_cmd_lookup(op, scsi_cmd_has_sa(op) ? sa : SCSI_NO_SA);
		break;
	default:
		scsi_task_check_cdb_field(t, 2, 2);
		return;
	}
	/* spc4r37 6.35.3, table 365: one_command parameter data. */
	b = spc_alloc(t, 4 + 32 + 12);
	if (!b)
		return;
	if (!d) {
		b[1] = 0x01; /* SUPPORT 001b: not supported */
		spc_reply(t, 4, alloc);
		return;
	}
	b[1] = (rctd ? 0x80 : 0) | 0x03; /* CTDP, SUPPORT 011b: supported as the standard says */
	put_be16(b + 2, d->cdb_len);
	ulen = d->cdb_len < sizeof(d->usage) ? d->cdb_len : sizeof(d->usage);
	memcpy(b + 4, d->usage, ulen);
	b[4] = d->opcode;
	n = 4 + d->cdb_len;
	if (rctd)
		n += rsoc_timeouts(b + n);
	spc_reply(t, n, alloc);
}

/* spc4r37 6.36: REPORT TARGET PORT GROUPS. One group per target port group of the target,
 * each active/optimized: every portal reaches the same LUNs through the same data path, so
 * the answer is the same whichever portal asks. */
static void spc_rtpg(struct scsi_task *t)
{
	uint8_t format = cdb_get(t, 1, 1) >> 5;
	uint32_t alloc = cdb_get(t, 6, 4);
	const struct scsi_target_info *ti = t->target;
	struct scsi_port self = {t->nexus->rel_port_id, spc_port_group(t)};
	const struct scsi_port *ports = &self;
	size_t nports = 1, n;
	uint8_t *b;

	if (format > 1) { /* PARAMETER DATA FORMAT: 000b length only, 001b extended */
		scsi_task_check_cdb_field(t, 1, 7);
		return;
	}
	if (ti && ti->nports) {
		ports = ti->ports;
		nports = ti->nports;
	}
	b = spc_alloc(t, 8 + nports * (8 + 4));
	if (!b)
		return;
	n = format ? 8 : 4;
	for (size_t i = 0; i < nports; i++) {
		uint8_t *g = b + n;
		size_t count = 0;
		bool seen = false;

		for (size_t j = 0; j < i; j++)
			seen |= ports[j].tpg_id == ports[i].tpg_id;
		if (seen)
			continue;
		/* spc4r37 6.36.2, table 370: ASYMMETRIC ACCESS STATE 0h (active/optimized);
		 * AO_SUP, the only state Holdfast uses. */
		g[0] = 0x00;
		g[1] = 0x01;
		put_be16(g + 2, ports[i].tpg_id);
		n += 8;
		for (size_t j = i; j < nports; j++) {
			if (ports[j].tpg_id != ports[i].tpg_id)
				continue;
			memset(b + n, 0, 4);
			put_be16(b + n + 2, ports[j].rel_port_id);
			n += 4;
			count++;
		}
		g[7] = (uint8_t)count;
	}
	put_be32(b, (uint32_t)(n - 4));
	if (format) {
		b[4] = 0x10; /* FORMAT TYPE 001b */
		b[5] = 0;    /* IMPLICIT TRANSITION TIME: none happen */
	}
	spc_reply(t, n, alloc);
}

/* spc2r20 7.21 / 7.22: RESERVE(6)/(10). The per-LUN SCSI-2 reservation; third-party and
 * extent reservations are not supported. */
static void spc_reserve(struct scsi_task *t)
{
	uint8_t b1 = cdb_get(t, 1, 1);

	if (t->cdb[0] == 0x56 ? (b1 & 0x12) : (b1 & 0x01)) {
		scsi_task_check_cdb_field(t, 1, t->cdb[0] == 0x56 ? 4 : 0);
		return;
	}
	if (scsi_lun_scsi2_reserve(t->lun, t->nexus) == -EBUSY) {
		scsi_task_status(t, SCSI_STATUS_RESERVATION_CONFLICT);
		return;
	}
	scsi_task_good(t);
}

/* spc2r20 7.17 / 7.18: RELEASE(6)/(10). From a nexus that does not hold the reservation it
 * does nothing and returns GOOD. */
static void spc_release(struct scsi_task *t)
{
	uint8_t b1 = cdb_get(t, 1, 1);

	if (t->cdb[0] == 0x57 ? (b1 & 0x12) : (b1 & 0x01)) {
		scsi_task_check_cdb_field(t, 1, t->cdb[0] == 0x57 ? 4 : 0);
		return;
	}
	scsi_lun_scsi2_release(t->lun, t->nexus);
	scsi_task_good(t);
}

/* spc4r37 6.42: SEND DIAGNOSTIC. The self-test and the short and extended tests pass at
 * once; diagnostic pages are not supported. */
static void spc_send_diagnostic(struct scsi_task *t)
{
	uint8_t b1 = cdb_get(t, 1, 1);
	uint8_t code = b1 >> 5;

	if (cdb_get(t, 3, 2)) {
		scsi_task_check_cdb_field(t, 3, -1);
		return;
	}
	if (b1 & 0x04) { /* SELFTEST: the SELF-TEST CODE must be zero */
		if (code)
			scsi_task_check_cdb_field(t, 1, 7);
		else
			scsi_task_good(t);
		return;
	}
	switch (code) {
	case 0: /* nothing to do without a parameter list */
	case 1: /* background short self-test */
	case 2: /* background extended self-test */
	case 4: /* abort background self-test */
	case 5: /* foreground short self-test */
	case 6: /* foreground extended self-test */
		scsi_task_good(t);
		return;
	default:
		scsi_task_check_cdb_field(t, 1, 7);
		return;
	}
}

/* CDB usage data (spc4r37 6.35.3): a bit is set where the device server looks at the
 * CDB's bit. Every CONTROL byte shows NACA (bit 2), which the dispatcher checks. */
#define SPC_CMD(op, sa_, name_, len, flags_, fn, ...)                                              \
	{                                                                                          \
		.opcode = (op), .sa = (sa_), .name = (name_), .cdb_len = (len),                    \
		.usage = {__VA_ARGS__}, .flags = (flags_), .exec = (fn)                            \
	}
#define SPC_INVENTORY (SCSI_CMD_F_NO_LUN | SCSI_CMD_F_NO_UA | SCSI_CMD_F_NO_CONFLICT)

const struct scsi_cmd_desc scsi_spc_cmds[] = {
	SPC_CMD(0x00, SCSI_NO_SA, "TEST UNIT READY", 6, 0, spc_test_unit_ready, 0x00, 0, 0, 0, 0,
		0x04),
	SPC_CMD(0x03, SCSI_NO_SA, "REQUEST SENSE", 6, SPC_INVENTORY, spc_request_sense, 0x03, 0x01,
		0, 0, 0xff, 0x04),
	SPC_CMD(0x12, SCSI_NO_SA, "INQUIRY", 6, SPC_INVENTORY, spc_inquiry, 0x12, 0x03, 0xff, 0xff,
		0xff, 0x04),
	SPC_CMD(0x15, SCSI_NO_SA, "MODE SELECT(6)", 6, SCSI_CMD_F_DATA_OUT, spc_mode_select, 0x15,
		0x11, 0, 0, 0xff, 0x04),
	SPC_CMD(0x16, SCSI_NO_SA, "RESERVE(6)", 6, 0, spc_reserve, 0x16, 0x01, 0, 0, 0, 0x04),
	SPC_CMD(0x17, SCSI_NO_SA, "RELEASE(6)", 6, SCSI_CMD_F_NO_CONFLICT, spc_release, 0x17, 0x01,
		0, 0, 0, 0x04),
	SPC_CMD(0x1a, SCSI_NO_SA, "MODE SENSE(6)", 6, 0, spc_mode_sense, 0x1a, 0x08, 0xff, 0xff,
		0xff, 0x04),
	SPC_CMD(0x1d, SCSI_NO_SA, "SEND DIAGNOSTIC", 6, SCSI_CMD_F_DATA_OUT, spc_send_diagnostic,
		0x1d, 0xe4, 0, 0xff, 0xff, 0x04),
	SPC_CMD(0x55, SCSI_NO_SA, "MODE SELECT(10)", 10, SCSI_CMD_F_DATA_OUT, spc_mode_select, 0x55,
		0x11, 0, 0, 0, 0, 0, 0xff, 0xff, 0x04),
	SPC_CMD(0x56, SCSI_NO_SA, "RESERVE(10)", 10, 0, spc_reserve, 0x56, 0x12, 0, 0, 0, 0, 0, 0,
		0, 0x04),
	SPC_CMD(0x57, SCSI_NO_SA, "RELEASE(10)", 10, SCSI_CMD_F_NO_CONFLICT, spc_release, 0x57,
		0x12, 0, 0, 0, 0, 0, 0, 0, 0x04),
	SPC_CMD(0x5a, SCSI_NO_SA, "MODE SENSE(10)", 10, 0, spc_mode_sense, 0x5a, 0x18, 0xff, 0xff,
		0, 0, 0, 0xff, 0xff, 0x04),
	/* spc4r37 6.4, 6.20: the third-party copy commands (scsi_xcopy.c). */
	SPC_CMD(0x83, 0x00, "EXTENDED COPY(LID1)", 16,
		SCSI_CMD_F_DATA_OUT | SCSI_CMD_F_MEDIUM_WRITE | SCSI_CMD_F_MEDIUM_READ,
		scsi_xcopy_extended_copy, 0x83, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff,
		0xff, 0, 0x04),
	SPC_CMD(0x84, 0x00, "RECEIVE COPY RESULTS(COPY STATUS)", 16, 0, scsi_xcopy_receive_results,
		0x84, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x04),
	SPC_CMD(0x84, 0x03, "RECEIVE COPY RESULTS(OPERATING PARAMETERS)", 16, 0,
		scsi_xcopy_receive_results, 0x84, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff,
		0xff, 0, 0x04),
	SPC_CMD(0x84, 0x04, "RECEIVE COPY RESULTS(FAILED SEGMENT DETAILS)", 16, 0,
		scsi_xcopy_receive_results, 0x84, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff,
		0xff, 0, 0x04),
	SPC_CMD(0xa0, SCSI_NO_SA, "REPORT LUNS", 12, SPC_INVENTORY, spc_report_luns, 0xa0, 0, 0xff,
		0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x04),
	SPC_CMD(0xa3, 0x0a, "REPORT TARGET PORT GROUPS", 12, SCSI_CMD_F_NO_CONFLICT, spc_rtpg, 0xa3,
		0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x04),
	SPC_CMD(0xa3, 0x0c, "REPORT SUPPORTED OPERATION CODES", 12, SCSI_CMD_F_NO_CONFLICT,
		spc_rsoc, 0xa3, 0x1f, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04),
};

const unsigned scsi_spc_ncmds = sizeof(scsi_spc_cmds) / sizeof(scsi_spc_cmds[0]);
