/* pr_scenarios: multi-initiator persistent reservation scenarios against a running target, as
 * the clusters that depend on them drive it (issue 3, acceptance item 3). Each scenario logs
 * in two or three initiators (distinct iSCSI names, or one name with several ISIDs) through two
 * portals of one target, prints one PASS or FAIL line, and the program exits non-zero when any
 * scenario failed.
 *
 *   pr_scenarios PORTAL1 PORTAL2 TARGET_IQN [SCENARIO...]
 *
 * PORTAL1 and PORTAL2 (host:port) are portals of the target in two target portal groups (tpgt
 * 1 and 2, so relative target port ids 1 and 2). The LUNs are fixed, one per scenario so that no
 * scenario inherits another's state or unit attentions:
 *   0  windows-wero   1  windows-earo   2  fence-scsi   3  relogin-isid   4  all-tg-pt
 *   5  preempt-abort-inflight (its backstore must have delay_ms = 300, see docs/config.md)
 * Every command is built here byte by byte (spc4r37 6.15, 6.16; sbc3r36 5.10, 5.32) so that
 * the flags of the parameter list are exactly what the scenario says. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define BLOCK	   512
#define MAX_UA	   32
#define PRIN_ALLOC 8192

/* spc4r37 6.16.2, table 171: PERSISTENT RESERVE OUT service actions. */
enum {
	SA_REGISTER = 0x00,
	SA_RESERVE = 0x01,
	SA_RELEASE = 0x02,
	SA_CLEAR = 0x03,
	SA_PREEMPT = 0x04,
	SA_PREEMPT_AND_ABORT = 0x05,
	SA_REGISTER_IGNORE = 0x06,
};

/* spc4r37 6.15.1, table 163: PERSISTENT RESERVE IN service actions. */
enum {
	SA_READ_KEYS = 0x00,
	SA_READ_RESERVATION = 0x01,
	SA_READ_FULL_STATUS = 0x03,
};

/* spc4r37 6.15.3.3, table 167: reservation types used here. */
enum {
	TYPE_WE_RO = 0x5,
	TYPE_EA_RO = 0x6,
};

/* spc4r37 6.16.3, table 174: byte 20 of the basic parameter list. */
#define FLAG_SPEC_I_PT 0x08
#define FLAG_ALL_TG_PT 0x04

/* Additional sense codes (ASC << 8 | ASCQ) the scenarios look for (spc4r37 table D.1). */
#define ASC_REGISTRATIONS_PREEMPTED	0x2a05
#define ASC_RESERVATIONS_PREEMPTED	0x2a03
#define ASC_RESERVATIONS_RELEASED	0x2a04
#define ASC_COMMANDS_CLEARED_BY_ANOTHER 0x2f00

static const char *portal1, *portal2, *target_iqn;
static int check_failures; /* failures of the running scenario */

/* One initiator port logged in to the target: an I_T nexus for one LUN. */
struct ini {
	const char *tag;
	struct iscsi_context *ctx;
	int lun;
	char iqn[128];
	uint8_t isid[6];
	char port[192]; /* "iqn,i,0xISID": the initiator port name the target sees */
	int ua[MAX_UA]; /* unit attentions met, in order (ASC << 8 | ASCQ) */
	int nua;
};

/* A READ FULL STATUS descriptor (spc4r37 6.15.5, table 170). */
struct fs_desc {
	uint64_t key;
	bool all_tg_pt;
	bool holder;
	uint8_t type;
	uint16_t rel_port;
	char port[256]; /* the TransportID's iSCSI name, with ",i,0x" and the ISID if format 01b */
};

#define EXPECT(cond, ...)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("    check failed (%s:%d): ", __func__, __LINE__);                  \
			printf(__VA_ARGS__);                                                       \
			printf("\n");                                                              \
			check_failures++;                                                          \
		}                                                                                  \
	} while (0)

#define REQUIRE(cond, ...)                                                                         \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			EXPECT(cond, __VA_ARGS__);                                                 \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

static void note(const char *fmt, ...)
{
	va_list ap;

	printf("    ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, v >> 32);
	put_be32(p + 4, (uint32_t)v);
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static const char *status_name(int status)
{
	switch (status) {
	case SCSI_STATUS_GOOD:
		return "GOOD";
	case SCSI_STATUS_CHECK_CONDITION:
		return "CHECK CONDITION";
	case SCSI_STATUS_RESERVATION_CONFLICT:
		return "RESERVATION CONFLICT";
	case SCSI_STATUS_TASK_ABORTED:
		return "TASK ABORTED";
	case SCSI_STATUS_BUSY:
		return "BUSY";
	case SCSI_STATUS_TASK_SET_FULL:
		return "TASK SET FULL";
	case SCSI_STATUS_CANCELLED:
		return "CANCELLED";
	case SCSI_STATUS_TIMEOUT:
		return "TIMEOUT";
	case -1:
		return "transport error";
	default:
		return "other status";
	}
}

/* ---- sessions ---- */

/* Log in as initiator iqn with ISID (random type, RFC 7143 10.12.5: T = 10b) and the given
 * 24-bit value and qualifier, through portal, to LUN lun. */
static int ini_login(struct ini *in, const char *tag, const char *iqn, const char *portal,
		     uint32_t rnd, uint16_t qual, int lun)
{
	memset(in, 0, sizeof(*in));
	in->tag = tag;
	in->lun = lun;
	snprintf(in->iqn, sizeof(in->iqn), "%s", iqn);
	in->ctx = iscsi_create_context(iqn);
	if (!in->ctx)
		return -ENOMEM;
	iscsi_set_targetname(in->ctx, target_iqn);
	iscsi_set_session_type(in->ctx, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(in->ctx, ISCSI_HEADER_DIGEST_NONE);
	/* A silent reconnect would create a new nexus behind the scenario's back. */
	iscsi_set_noautoreconnect(in->ctx, 1);
	iscsi_set_timeout(in->ctx, 20);
	iscsi_set_isid_random(in->ctx, rnd, qual);
	in->isid[0] = 0x80;
	in->isid[1] = rnd >> 16;
	in->isid[2] = rnd >> 8;
	in->isid[3] = rnd;
	in->isid[4] = qual >> 8;
	in->isid[5] = qual;
	snprintf(in->port, sizeof(in->port), "%s,i,0x%02x%02x%02x%02x%02x%02x", iqn, in->isid[0],
		 in->isid[1], in->isid[2], in->isid[3], in->isid[4], in->isid[5]);
	if (iscsi_full_connect_sync(in->ctx, portal, lun) != 0) {
		note("%s: login to %s via %s failed: %s", tag, target_iqn, portal,
		     iscsi_get_error(in->ctx));
		iscsi_destroy_context(in->ctx);
		in->ctx = NULL;
		return -ECONNREFUSED;
	}
	return 0;
}

static void ini_logout(struct ini *in)
{
	if (!in->ctx)
		return;
	iscsi_logout_sync(in->ctx);
	iscsi_destroy_context(in->ctx);
	in->ctx = NULL;
}

static void ua_note(struct ini *in, int asc)
{
	if (in->nua < MAX_UA)
		in->ua[in->nua++] = asc;
}

/* True (and forgotten) if the unit attention asc was met on this nexus. */
static bool ua_take(struct ini *in, int asc)
{
	for (int i = 0; i < in->nua; i++)
		if (in->ua[i] == asc) {
			memmove(&in->ua[i], &in->ua[i + 1], (in->nua - i - 1) * sizeof(int));
			in->nua--;
			return true;
		}
	return false;
}

/* Run one command and wait for it. Returns the task (the caller frees it) or NULL when the
 * transport failed. No retry: the caller sees a unit attention as it comes. */
static struct scsi_task *exec_once(struct ini *in, const uint8_t *cdb, int cdb_len, int dir,
				   uint8_t *out, size_t out_len, int in_len)
{
	struct scsi_task *t, *done;
	struct iscsi_data d = {.size = out_len, .data = out};

	if (!in->ctx)
		return NULL;
	t = scsi_create_task(cdb_len, (unsigned char *)cdb, dir,
			     dir == SCSI_XFER_WRITE ? (int)out_len : in_len);
	if (!t)
		return NULL;
	done = iscsi_scsi_command_sync(in->ctx, in->lun, t, dir == SCSI_XFER_WRITE ? &d : NULL);
	if (!done) {
		note("%s: opcode 0x%02x: %s", in->tag, cdb[0], iscsi_get_error(in->ctx));
		scsi_free_scsi_task(t);
		return NULL;
	}
	return t;
}

/* Run one command; a unit attention (sam5r21 5.14: it is reported once, the command is not
 * run) is noted and the command sent again. */
static struct scsi_task *exec(struct ini *in, const uint8_t *cdb, int cdb_len, int dir,
			      uint8_t *out, size_t out_len, int in_len)
{
	for (int tries = 0; tries < 8; tries++) {
		struct scsi_task *t = exec_once(in, cdb, cdb_len, dir, out, out_len, in_len);

		if (!t || t->status != SCSI_STATUS_CHECK_CONDITION ||
		    t->sense.key != SCSI_SENSE_UNIT_ATTENTION)
			return t;
		ua_note(in, t->sense.ascq);
		scsi_free_scsi_task(t);
	}
	note("%s: unit attentions without end", in->tag);
	return NULL;
}

static int task_status(struct scsi_task *t)
{
	int s;

	if (!t)
		return -1;
	s = t->status;
	scsi_free_scsi_task(t);
	return s;
}

/* ---- commands ---- */

/* spc4r37 6.16: PERSISTENT RESERVE OUT with the 24-byte basic parameter list (6.16.3). */
static int pr_out(struct ini *in, int sa, int type, uint64_t rk, uint64_t sark, uint8_t flags)
{
	uint8_t cdb[10] = {0}, par[24] = {0};

	cdb[0] = 0x5f;
	cdb[1] = sa & 0x1f;
	cdb[2] = type & 0x0f; /* SCOPE 0h: LU_SCOPE */
	put_be32(cdb + 5, sizeof(par));
	put_be64(par, rk);
	put_be64(par + 8, sark);
	par[20] = flags;
	return task_status(exec(in, cdb, sizeof(cdb), SCSI_XFER_WRITE, par, sizeof(par), 0));
}

/* spc4r37 6.15: PERSISTENT RESERVE IN; copies the parameter data to buf. Returns its length or
 * a negative value (-status, or -1000 for a transport error). */
static int pr_in(struct ini *in, int sa, uint8_t *buf, size_t cap)
{
	uint8_t cdb[10] = {0};
	struct scsi_task *t;
	int n;

	cdb[0] = 0x5e;
	cdb[1] = sa & 0x1f;
	put_be16(cdb + 7, PRIN_ALLOC);
	t = exec(in, cdb, sizeof(cdb), SCSI_XFER_READ, NULL, 0, PRIN_ALLOC);
	if (!t)
		return -1000;
	if (t->status != SCSI_STATUS_GOOD) {
		n = -t->status;
		scsi_free_scsi_task(t);
		return n ? n : -1;
	}
	n = t->datain.size < (int)cap ? t->datain.size : (int)cap;
	memcpy(buf, t->datain.data, n);
	scsi_free_scsi_task(t);
	return n;
}

/* spc4r37 6.15.2: READ KEYS. Returns the number of keys or a negative value. */
static int read_keys(struct ini *in, uint64_t *keys, int max, uint32_t *gen)
{
	uint8_t buf[PRIN_ALLOC];
	int n = pr_in(in, SA_READ_KEYS, buf, sizeof(buf)), cnt;

	if (n < 0)
		return n;
	if (n < 8)
		return -1;
	*gen = get_be32(buf);
	cnt = get_be32(buf + 4) / 8;
	if (8 + cnt * 8 > n || cnt > max)
		return -1;
	for (int i = 0; i < cnt; i++)
		keys[i] = get_be64(buf + 8 + 8 * i);
	return cnt;
}

struct resv {
	bool present;
	uint64_t key;
	uint8_t type;
	uint32_t gen;
};

/* spc4r37 6.15.3: READ RESERVATION. */
static int read_resv(struct ini *in, struct resv *r)
{
	uint8_t buf[64];
	int n = pr_in(in, SA_READ_RESERVATION, buf, sizeof(buf));

	memset(r, 0, sizeof(*r));
	if (n < 0)
		return n;
	if (n < 8)
		return -1;
	r->gen = get_be32(buf);
	if (get_be32(buf + 4) == 0)
		return 0;
	if (n < 24 || get_be32(buf + 4) != 16)
		return -1;
	r->present = true;
	r->key = get_be64(buf + 8);
	r->type = buf[21] & 0x0f;
	return 0;
}

/* spc4r37 6.15.5: READ FULL STATUS. Returns the number of descriptors or a negative value. */
static int read_full_status(struct ini *in, struct fs_desc *d, int max)
{
	uint8_t buf[PRIN_ALLOC];
	int n = pr_in(in, SA_READ_FULL_STATUS, buf, sizeof(buf)), cnt = 0;
	size_t pos = 8, end;

	if (n < 0)
		return n;
	if (n < 8)
		return -1;
	end = 8 + (size_t)get_be32(buf + 4);
	if (end > (size_t)n)
		return -1;
	while (pos < end) {
		uint32_t dlen;
		uint16_t tlen;
		const uint8_t *p = buf + pos;

		if (pos + 24 > end || cnt >= max)
			return -1;
		dlen = get_be32(p + 20);
		if (pos + 24 + dlen > end || dlen < 4)
			return -1;
		memset(&d[cnt], 0, sizeof(d[cnt]));
		d[cnt].key = get_be64(p);
		d[cnt].all_tg_pt = p[12] & 0x02;
		d[cnt].holder = p[12] & 0x01;
		d[cnt].type = p[13] & 0x0f;
		d[cnt].rel_port = get_be16(p + 18);
		/* spc4r37 7.6.4.6: iSCSI TransportID, protocol 5h; the name is NUL-terminated. */
		tlen = get_be16(p + 26);
		if ((p[24] & 0x0f) == 0x5 && 4u + tlen <= dlen) {
			size_t l = strnlen((const char *)p + 28, tlen);

			if (l >= sizeof(d[cnt].port))
				l = sizeof(d[cnt].port) - 1;
			memcpy(d[cnt].port, p + 28, l);
		}
		cnt++;
		pos += 24 + dlen;
	}
	return cnt;
}

static bool has_key(const uint64_t *keys, int n, uint64_t k)
{
	for (int i = 0; i < n; i++)
		if (keys[i] == k)
			return true;
	return false;
}

static void fill_block(uint8_t *b, uint32_t lba, uint8_t tag)
{
	memset(b, tag, BLOCK);
	put_be32(b, lba);
	b[4] = tag;
}

/* sbc3r36 5.32: WRITE(10) of count blocks from lba, each stamped with its LBA and tag. */
static int write_blocks(struct ini *in, uint32_t lba, int count, uint8_t tag)
{
	uint8_t cdb[10] = {0}, *buf = malloc((size_t)count * BLOCK);
	int st;

	if (!buf)
		return -1;
	for (int i = 0; i < count; i++)
		fill_block(buf + i * BLOCK, lba + i, tag);
	cdb[0] = 0x2a;
	put_be32(cdb + 2, lba);
	put_be16(cdb + 7, count);
	st = task_status(
		exec(in, cdb, sizeof(cdb), SCSI_XFER_WRITE, buf, (size_t)count * BLOCK, 0));
	free(buf);
	return st;
}

/* sbc3r36 5.10: READ(10). Returns the status; with GOOD, out holds the blocks. */
static int read_blocks(struct ini *in, uint32_t lba, int count, uint8_t *out)
{
	uint8_t cdb[10] = {0};
	struct scsi_task *t;
	int st;

	cdb[0] = 0x28;
	put_be32(cdb + 2, lba);
	put_be16(cdb + 7, count);
	t = exec(in, cdb, sizeof(cdb), SCSI_XFER_READ, NULL, 0, count * BLOCK);
	if (!t)
		return -1;
	st = t->status;
	if (st == SCSI_STATUS_GOOD) {
		if (t->datain.size != count * BLOCK)
			st = -1;
		else if (out)
			memcpy(out, t->datain.data, (size_t)count * BLOCK);
	}
	scsi_free_scsi_task(t);
	return st;
}

/* Which tag the block at lba holds: the tag, or -1 if it is not a stamped block for lba. */
static int block_tag(const uint8_t *b, uint32_t lba)
{
	if (get_be32(b) != lba)
		return -1;
	for (int i = 5; i < BLOCK; i++)
		if (b[i] != b[4])
			return -1;
	return b[4];
}

static int tur_once(struct ini *in, int *asc)
{
	uint8_t cdb[6] = {0};
	struct scsi_task *t = exec_once(in, cdb, sizeof(cdb), SCSI_XFER_NONE, NULL, 0, 0);
	int st;

	*asc = 0;
	if (!t)
		return -1;
	st = t->status;
	if (st == SCSI_STATUS_CHECK_CONDITION)
		*asc = t->sense.key << 16 | t->sense.ascq;
	scsi_free_scsi_task(t);
	return st;
}

/* Collect every pending unit attention of a nexus with TEST UNIT READY. */
static void ua_drain(struct ini *in)
{
	uint8_t cdb[6] = {0};

	task_status(exec(in, cdb, sizeof(cdb), SCSI_XFER_NONE, NULL, 0, 0));
}

#define OUT_GOOD(in, ...) EXPECT_STATUS(SCSI_STATUS_GOOD, in, pr_out(in, __VA_ARGS__))
#define OUT_CONFLICT(in, ...)                                                                      \
	EXPECT_STATUS(SCSI_STATUS_RESERVATION_CONFLICT, in, pr_out(in, __VA_ARGS__))
#define EXPECT_STATUS(want, in, call)                                                              \
	do {                                                                                       \
		int st_ = (call);                                                                  \
		EXPECT(st_ == (want), "%s: %s -> %s (0x%x), expected %s", (in)->tag, #call,        \
		       status_name(st_), st_, status_name(want));                                  \
	} while (0)

/* ---- scenario 1: Windows failover cluster validation ---- */

/* The storage test "Validate SCSI-3 Persistent Reservation" of Windows failover clustering runs
 * through ClusPrep, whose server side is documented in [MS-CSVP] 3.2.4: CprepDiskPRRegister
 * (REGISTER AND IGNORE EXISTING KEY), CprepDiskPRReserve, CprepDiskIsPRPresent (READ
 * RESERVATION), CprepDiskPRPreempt, CprepDiskPRRelease, CprepDiskPRClear (CLEAR) and
 * CprepDiskPRUnRegister ("REGISTER AND IGNORE EXISTING KEY action with a key of 0", 3.2.4.17),
 * with the ordering of [MS-CSVP] 3.2.4 (register before reserve, reserve before preempt and
 * release, clear before register). The reservation type is not named in [MS-CSVP]; cluster
 * arbitration is commonly reported as Write Exclusive - Registrants Only, Exclusive Access -
 * Registrants Only is also seen, so the sequence runs once with each (LUN 0 and LUN 1). */
static void scenario_windows(int lun, int type)
{
	struct ini a = {0}, b = {0};
	const uint64_t ka = 0x0123456789abc001ull, kb = 0x0123456789abc002ull;
	uint64_t keys[16], keys2[16];
	uint32_t gen, gen2, gen0;
	struct resv ra, rb;
	int n, n2;

	/* Two cluster nodes, each through its own portal. */
	REQUIRE(ini_login(&a, "node-a", "iqn.1991-05.com.microsoft:node-a", portal1, 0x0a0001, 1,
			  lun) == 0,
		"node A cannot log in");
	REQUIRE(ini_login(&b, "node-b", "iqn.1991-05.com.microsoft:node-b", portal2, 0x0b0001, 1,
			  lun) == 0,
		"node B cannot log in");
	n = read_keys(&a, keys, 16, &gen0);
	REQUIRE(n == 0, "the LUN starts with %d registrations", n);

	/* CprepDiskPRRegister on both nodes. */
	OUT_GOOD(&a, SA_REGISTER_IGNORE, 0, 0, ka, 0);
	OUT_GOOD(&b, SA_REGISTER_IGNORE, 0, 0, kb, 0);
	/* CprepDiskPRReserve from node A. */
	OUT_GOOD(&a, SA_RESERVE, type, ka, 0, 0);

	/* Both nodes read the same keys and the same reservation. */
	n = read_keys(&a, keys, 16, &gen);
	n2 = read_keys(&b, keys2, 16, &gen2);
	EXPECT(n == 2 && has_key(keys, n, ka) && has_key(keys, n, kb),
	       "READ KEYS from A: %d keys, expected A's and B's", n);
	EXPECT(n2 == n && gen2 == gen && n2 >= 0 && memcmp(keys, keys2, n * sizeof(*keys)) == 0,
	       "READ KEYS differs between A (%d keys, gen %u) and B (%d keys, gen %u)", n, gen, n2,
	       gen2);
	EXPECT(gen == gen0 + 2, "PRgeneration %u after two registrations from %u", gen, gen0);
	EXPECT(read_resv(&a, &ra) == 0 && read_resv(&b, &rb) == 0, "READ RESERVATION failed");
	EXPECT(ra.present && ra.key == ka && ra.type == type,
	       "READ RESERVATION from A: present %d key %" PRIx64 " type %u", ra.present, ra.key,
	       ra.type);
	EXPECT(rb.present == ra.present && rb.key == ra.key && rb.type == ra.type &&
		       rb.gen == ra.gen,
	       "READ RESERVATION from B differs from A's");
	/* A registrants-only reservation lets the other registrant write (spc4r37 table 68). */
	EXPECT_STATUS(SCSI_STATUS_GOOD, &b, write_blocks(&b, 10, 1, 'b'));

	/* CprepDiskPRPreempt from node B: A's registration and reservation go, B holds it. */
	OUT_GOOD(&b, SA_PREEMPT, type, kb, ka, 0);
	n = read_keys(&a, keys, 16, &gen);
	EXPECT(n == 1 && keys[0] == kb, "after PREEMPT, READ KEYS from A: %d keys", n);
	EXPECT(ua_take(&a, ASC_REGISTRATIONS_PREEMPTED),
	       "node A got no REGISTRATIONS PREEMPTED unit attention after B preempted it");
	EXPECT(read_resv(&a, &ra) == 0 && read_resv(&b, &rb) == 0, "READ RESERVATION failed");
	EXPECT(ra.present && ra.key == kb && ra.type == type && rb.present && rb.key == kb,
	       "after PREEMPT the holder is %" PRIx64 " (A) / %" PRIx64 " (B), expected B's key",
	       ra.key, rb.key);
	/* A, no longer registered, is shut out of writes (and, with EA-RO, of reads). */
	EXPECT_STATUS(SCSI_STATUS_RESERVATION_CONFLICT, &a, write_blocks(&a, 11, 1, 'a'));
	EXPECT_STATUS(type == TYPE_EA_RO ? SCSI_STATUS_RESERVATION_CONFLICT : SCSI_STATUS_GOOD, &a,
		      read_blocks(&a, 10, 1, NULL));
	/* A PR OUT with A's old key is refused. */
	OUT_CONFLICT(&a, SA_RESERVE, type, ka, 0, 0);

	/* CprepDiskPRRelease from the holder. */
	OUT_GOOD(&b, SA_RELEASE, type, kb, 0, 0);
	EXPECT(read_resv(&a, &ra) == 0 && !ra.present, "the reservation survived RELEASE");

	/* CprepDiskPRClear, preceded by the register/reserve the ordering asks for. */
	OUT_GOOD(&a, SA_REGISTER_IGNORE, 0, 0, ka, 0);
	OUT_GOOD(&a, SA_RESERVE, type, ka, 0, 0);
	OUT_GOOD(&b, SA_CLEAR, 0, kb, 0, 0);
	n = read_keys(&a, keys, 16, &gen);
	n2 = read_keys(&b, keys2, 16, &gen2);
	EXPECT(n == 0 && n2 == 0, "after CLEAR: %d keys from A, %d from B", n, n2);
	EXPECT(read_resv(&b, &rb) == 0 && !rb.present, "the reservation survived CLEAR");
	EXPECT(ua_take(&a, ASC_RESERVATIONS_PREEMPTED),
	       "node A got no RESERVATIONS PREEMPTED unit attention after CLEAR");

	/* CprepDiskPRUnRegister: REGISTER AND IGNORE EXISTING KEY with key 0, and the plain
	 * REGISTER with a service action key of 0 from a registered nexus. */
	OUT_GOOD(&a, SA_REGISTER_IGNORE, 0, 0, ka, 0);
	OUT_GOOD(&b, SA_REGISTER_IGNORE, 0, 0, kb, 0);
	n = read_keys(&b, keys, 16, &gen);
	EXPECT(n == 2, "re-registration: %d keys", n);
	OUT_GOOD(&a, SA_REGISTER_IGNORE, 0, 0, 0, 0);
	OUT_GOOD(&b, SA_REGISTER, 0, kb, 0, 0);
	n = read_keys(&a, keys, 16, &gen2);
	EXPECT(n == 0, "after unregistering with key 0: %d keys", n);
	EXPECT(gen2 == gen + 2, "PRgeneration %u after two unregistrations from %u", gen2, gen);
	/* Unregistering an unregistered nexus with key 0 is a no-op, GOOD (spc4r37 table 52). */
	OUT_GOOD(&a, SA_REGISTER_IGNORE, 0, 0, 0, 0);
	OUT_GOOD(&a, SA_REGISTER, 0, 0, 0, 0);
out:
	ini_logout(&a);
	ini_logout(&b);
}

static void scenario_windows_wero(void)
{
	scenario_windows(0, TYPE_WE_RO);
}

static void scenario_windows_earo(void)
{
	scenario_windows(1, TYPE_EA_RO);
}

/* ---- scenario 2: fence_scsi ---- */

static bool fs_lists(const struct fs_desc *d, int n, const char *port, uint64_t key)
{
	for (int i = 0; i < n; i++)
		if (strcasecmp(d[i].port, port) == 0 && d[i].key == key)
			return true;
	return false;
}

/* fence_scsi's unfence of one node on one device path (fence-agents fence_scsi: register_dev()
 * and reserve_dev()): register with REGISTER AND IGNORE EXISTING KEY; if the key was already
 * registered (from an I_T nexus of an earlier boot: another ISID) a PREEMPT of its own key
 * drops those stale nexuses, and the node registers again when it does not hold the
 * reservation; on the first path the node reserves Write Exclusive - Registrants Only when
 * nobody does. */
static void fence_unfence(struct ini *in, uint64_t key, bool first_path)
{
	uint64_t keys[16];
	uint32_t gen;
	struct resv r;
	int n = read_keys(in, keys, 16, &gen);

	EXPECT(n >= 0, "%s: READ KEYS failed", in->tag);
	OUT_GOOD(in, SA_REGISTER_IGNORE, 0, 0, key, 0);
	if (first_path && n >= 0 && has_key(keys, n, key)) {
		OUT_GOOD(in, SA_PREEMPT, TYPE_WE_RO, key, key, 0);
		EXPECT(read_resv(in, &r) == 0, "%s: READ RESERVATION failed", in->tag);
		if (!r.present || r.key != key)
			OUT_GOOD(in, SA_REGISTER_IGNORE, 0, 0, key, 0);
	}
	if (first_path) {
		EXPECT(read_resv(in, &r) == 0, "%s: READ RESERVATION failed", in->tag);
		if (!r.present)
			OUT_GOOD(in, SA_RESERVE, TYPE_WE_RO, key, 0, 0);
	}
}

static void scenario_fence_scsi(void)
{
	const int lun = 2;
	const uint64_t k1 = 0x5c5a0001ull, k2 = 0x5c5a0002ull;
	const char *n1 = "iqn.2026-11.org.holdfast:node1", *n2 = "iqn.2026-11.org.holdfast:node2";
	struct ini stale = {0}, v1 = {0}, v2 = {0}, s = {0}, w = {0};
	struct fs_desc d[32];
	uint64_t keys[16];
	uint32_t gen;
	struct resv r;
	char stale_port[192];
	int n, asc;

	/* Node 1's previous boot registered its key on a nexus that no longer logs in. */
	REQUIRE(ini_login(&stale, "node1-old-boot", n1, portal1, 0x100001, 7, lun) == 0,
		"login failed");
	OUT_GOOD(&stale, SA_REGISTER_IGNORE, 0, 0, k1, 0);
	snprintf(stale_port, sizeof(stale_port), "%s", stale.port);
	ini_logout(&stale);

	/* Unfence node 1 (multipath: one path per portal, new ISIDs), then node 2. */
	REQUIRE(ini_login(&v1, "node1-path1", n1, portal1, 0x100002, 1, lun) == 0, "login failed");
	REQUIRE(ini_login(&v2, "node1-path2", n1, portal2, 0x100002, 2, lun) == 0, "login failed");
	REQUIRE(ini_login(&s, "node2", n2, portal1, 0x200001, 1, lun) == 0, "login failed");
	fence_unfence(&v1, k1, true);
	fence_unfence(&v2, k1, false);
	fence_unfence(&s, k2, true);

	n = read_full_status(&s, d, 32);
	EXPECT(n == 3, "after unfencing: %d registrations, expected node 1's two paths and node 2",
	       n);
	EXPECT(n >= 0 && !fs_lists(d, n, stale_port, k1),
	       "the self-PREEMPT left the stale nexus %s registered", stale_port);
	EXPECT(n >= 0 && fs_lists(d, n, v1.port, k1) && fs_lists(d, n, v2.port, k1) &&
		       fs_lists(d, n, s.port, k2),
	       "READ FULL STATUS does not list node 1's paths and node 2");
	EXPECT(read_resv(&s, &r) == 0 && r.present && r.key == k1 && r.type == TYPE_WE_RO,
	       "node 1 does not hold a WE-RO reservation");
	EXPECT_STATUS(SCSI_STATUS_GOOD, &v1, write_blocks(&v1, 0, 1, '1'));
	EXPECT_STATUS(SCSI_STATUS_GOOD, &s, write_blocks(&s, 1, 1, '2'));
	/* An unregistered initiator may read but not write under WE-RO (spc4r37 table 68). */
	REQUIRE(ini_login(&w, "outsider", "iqn.2026-11.org.holdfast:outsider", portal2, 0x300001, 1,
			  lun) == 0,
		"login failed");
	EXPECT_STATUS(SCSI_STATUS_RESERVATION_CONFLICT, &w, write_blocks(&w, 2, 1, 'w'));
	EXPECT_STATUS(SCSI_STATUS_GOOD, &w, read_blocks(&w, 0, 1, NULL));

	/* Fence node 1 from node 2 (fence_scsi off: sg_persist -o -A -T 5 -K k2 -S k1). */
	OUT_GOOD(&s, SA_PREEMPT_AND_ABORT, TYPE_WE_RO, k2, k1, 0);
	n = read_keys(&s, keys, 16, &gen);
	EXPECT(n == 1 && keys[0] == k2, "after the fence READ KEYS lists %d keys, expected k2 only",
	       n);
	EXPECT(read_resv(&s, &r) == 0 && r.present && r.key == k2 && r.type == TYPE_WE_RO,
	       "after the fence the holder is %" PRIx64 " type %u, expected node 2, WE-RO", r.key,
	       r.type);
	/* Both of the victim's paths learn it on their next command. */
	EXPECT(tur_once(&v1, &asc) == SCSI_STATUS_CHECK_CONDITION &&
		       (asc == (0x06 << 16 | ASC_REGISTRATIONS_PREEMPTED) ||
			asc == (0x06 << 16 | ASC_COMMANDS_CLEARED_BY_ANOTHER)),
	       "node 1 path 1: no REGISTRATIONS PREEMPTED unit attention (sense %06x)", asc);
	ua_drain(&v1);
	ua_drain(&v2);
	EXPECT(ua_take(&v2, ASC_REGISTRATIONS_PREEMPTED),
	       "node 1 path 2: no REGISTRATIONS PREEMPTED unit attention");
	EXPECT_STATUS(SCSI_STATUS_RESERVATION_CONFLICT, &v1, write_blocks(&v1, 0, 1, 'x'));
	EXPECT_STATUS(SCSI_STATUS_RESERVATION_CONFLICT, &v2, write_blocks(&v2, 0, 1, 'x'));
	EXPECT_STATUS(SCSI_STATUS_GOOD, &v1, read_blocks(&v1, 0, 1, NULL));
	EXPECT_STATUS(SCSI_STATUS_GOOD, &v2, read_blocks(&v2, 0, 1, NULL));
	EXPECT_STATUS(SCSI_STATUS_GOOD, &s, write_blocks(&s, 1, 1, '3'));
	OUT_CONFLICT(&v1, SA_REGISTER, 0, k1, k1, 0);
	OUT_GOOD(&s, SA_CLEAR, 0, k2, 0, 0);
out:
	ini_logout(&stale);
	ini_logout(&v1);
	ini_logout(&v2);
	ini_logout(&s);
	ini_logout(&w);
}

/* ---- scenario 3: a re-login with a new ISID ---- */

/* spc4r37 5.13.3 and 7.6.4.6: a registration belongs to the I_T nexus, whose initiator port
 * name carries the ISID. Logging out does not drop it (issue 3: registrations survive
 * logout); a session with a new ISID is another nexus, not registered; the old ISID is the
 * registered nexus again. */
static void scenario_relogin_isid(void)
{
	const int lun = 3;
	const char *name = "iqn.2026-11.org.holdfast:relogin";
	const uint64_t kx = 0xfeed0001ull;
	struct ini x = {0};
	struct fs_desc d[16];
	uint64_t keys[16];
	uint32_t gen;
	struct resv r;
	char first_port[192];
	int n;

	REQUIRE(ini_login(&x, "isid-1", name, portal1, 0x400001, 1, lun) == 0, "login failed");
	snprintf(first_port, sizeof(first_port), "%s", x.port);
	OUT_GOOD(&x, SA_REGISTER_IGNORE, 0, 0, kx, 0);
	n = read_full_status(&x, d, 16);
	EXPECT(n == 1 && strcasecmp(d[0].port, x.port) == 0 && d[0].key == kx,
	       "READ FULL STATUS: %d descriptors, first port \"%s\", expected \"%s\"", n,
	       n > 0 ? d[0].port : "", x.port);
	ini_logout(&x);

	REQUIRE(ini_login(&x, "isid-2", name, portal1, 0x400002, 1, lun) == 0, "login failed");
	n = read_keys(&x, keys, 16, &gen);
	EXPECT(n == 1 && keys[0] == kx, "after logout and re-login READ KEYS lists %d keys", n);
	n = read_full_status(&x, d, 16);
	EXPECT(n == 1 && strcasecmp(d[0].port, first_port) == 0,
	       "READ FULL STATUS after re-login: %d descriptors, first \"%s\", expected only "
	       "\"%s\"",
	       n, n > 0 ? d[0].port : "", first_port);
	/* The new nexus is not registered: PR OUT with the key conflicts (spc4r37 6.16.1,
	 * 5.13.7). */
	OUT_CONFLICT(&x, SA_REGISTER, 0, kx, kx + 1, 0);
	OUT_CONFLICT(&x, SA_RESERVE, TYPE_WE_RO, kx, 0, 0);
	EXPECT(read_resv(&x, &r) == 0 && !r.present, "a reservation appeared");
	ini_logout(&x);

	/* The first ISID again: the registered nexus is back. */
	REQUIRE(ini_login(&x, "isid-1-again", name, portal1, 0x400001, 1, lun) == 0,
		"login failed");
	OUT_GOOD(&x, SA_RESERVE, TYPE_WE_RO, kx, 0, 0);
	EXPECT(read_resv(&x, &r) == 0 && r.present && r.key == kx,
	       "the re-logged-in nexus does not hold the reservation");
	OUT_GOOD(&x, SA_RELEASE, TYPE_WE_RO, kx, 0, 0);
	OUT_GOOD(&x, SA_REGISTER, 0, kx, 0, 0);
	n = read_keys(&x, keys, 16, &gen);
	EXPECT(n == 0, "after unregistering: %d keys", n);
out:
	ini_logout(&x);
}

/* ---- scenario 4: ALL_TG_PT through the second portal ---- */

/* The relative target port ids READ FULL STATUS reports for port, as a bit mask (bit N: port
 * N), with bit 0 meaning "a descriptor with ALL_TG_PT set" (spc4r37 6.15.5: then the relative
 * target port identifier is not meaningful). */
static unsigned fs_ports_of(const struct fs_desc *d, int n, const char *port, uint64_t key)
{
	unsigned mask = 0;

	for (int i = 0; i < n; i++)
		if (strcasecmp(d[i].port, port) == 0 && d[i].key == key)
			mask |= d[i].all_tg_pt ? 1u
					       : (d[i].rel_port < 31 ? 1u << d[i].rel_port : 0);
	return mask;
}

static void scenario_all_tg_pt(void)
{
	const int lun = 4;
	const char *ny = "iqn.2026-11.org.holdfast:atp-yes",
		   *nz = "iqn.2026-11.org.holdfast:atp-no";
	const uint64_t ky = 0xa11a0001ull, kz = 0xa11a0002ull;
	struct ini y1 = {0}, y2 = {0}, z1 = {0}, z2 = {0};
	struct fs_desc d[32];
	struct resv r;
	unsigned mask;
	int n, asc, st;

	/* With ALL_TG_PT=1 through portal 1 (tpgt 1). */
	REQUIRE(ini_login(&y1, "y-portal1", ny, portal1, 0x500001, 1, lun) == 0, "login failed");
	OUT_GOOD(&y1, SA_REGISTER, 0, 0, ky, FLAG_ALL_TG_PT);
	/* The same initiator port (same name and ISID) through portal 2 (tpgt 2): another I_T
	 * nexus, another session (RFC 7143 4.4.1: the session identifier is ISID and TPGT). */
	REQUIRE(ini_login(&y2, "y-portal2", ny, portal2, 0x500001, 1, lun) == 0, "login failed");
	st = tur_once(&y1, &asc);
	EXPECT(st == SCSI_STATUS_GOOD || st == SCSI_STATUS_CHECK_CONDITION,
	       "TEST UNIT READY on the portal-1 session of %s: %s; that session was closed when "
	       "the same ISID logged in through portal 2, another portal group (not a session "
	       "reinstatement: the session identifier is ISID and TPGT)",
	       y1.port, status_name(st));
	n = read_full_status(&y2, d, 32);
	mask = n > 0 ? fs_ports_of(d, n, y2.port, ky) : 0;
	EXPECT(mask == 1 || mask == (1u << 1 | 1u << 2),
	       "READ FULL STATUS for %s: %d descriptors, port mask 0x%x; expected relative ports 1 "
	       "and 2 (or one ALL_TG_PT descriptor)",
	       y2.port, n, mask);
	OUT_GOOD(&y2, SA_RESERVE, TYPE_WE_RO, ky, 0, 0);
	EXPECT(read_resv(&y2, &r) == 0 && r.present && r.key == ky,
	       "no reservation after RESERVE through portal 2");
	OUT_GOOD(&y2, SA_RELEASE, TYPE_WE_RO, ky, 0, 0);

	/* Without ALL_TG_PT: only portal 1's nexus is registered. */
	REQUIRE(ini_login(&z1, "z-portal1", nz, portal1, 0x500002, 1, lun) == 0, "login failed");
	OUT_GOOD(&z1, SA_REGISTER, 0, 0, kz, 0);
	REQUIRE(ini_login(&z2, "z-portal2", nz, portal2, 0x500002, 1, lun) == 0, "login failed");
	n = read_full_status(&z2, d, 32);
	mask = n > 0 ? fs_ports_of(d, n, z2.port, kz) : 0;
	EXPECT(mask == 1u << 1,
	       "READ FULL STATUS for %s: port mask 0x%x, expected relative port 1 only", z2.port,
	       mask);
	OUT_CONFLICT(&z2, SA_RESERVE, TYPE_WE_RO, kz, 0, 0);
	OUT_CONFLICT(&z2, SA_REGISTER, 0, kz, kz, 0);
	/* Portal 2's nexus registers on its own; then both are listed. */
	OUT_GOOD(&z2, SA_REGISTER, 0, 0, kz, 0);
	n = read_full_status(&z2, d, 32);
	mask = n > 0 ? fs_ports_of(d, n, z2.port, kz) : 0;
	EXPECT(mask == (1u << 1 | 1u << 2), "after registering through portal 2: port mask 0x%x",
	       mask);
	OUT_GOOD(&z2, SA_CLEAR, 0, kz, 0, 0);
out:
	ini_logout(&y1);
	ini_logout(&y2);
	ini_logout(&z1);
	ini_logout(&z2);
}

/* ---- scenario 5: PREEMPT AND ABORT with the victim's writes in flight ---- */

#define V_WRITES 16
#define O_WRITES 8
#define V_LBA	 0
#define O_LBA	 100
#define DELAY_MS 300

struct slot {
	bool done;
	int status;
	int asc;
	double at;
	struct scsi_task *task;
	uint8_t buf[BLOCK];
};

static void slot_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct slot *s = priv;
	struct scsi_task *t = data;

	(void)ctx;
	s->done = true;
	s->status = status;
	s->at = now_ms();
	if (t && status == SCSI_STATUS_CHECK_CONDITION)
		s->asc = t->sense.key << 16 | t->sense.ascq;
}

static int send_async(struct ini *in, struct slot *s, const uint8_t *cdb, int cdb_len, uint8_t *out,
		      size_t out_len)
{
	struct iscsi_data d = {.size = out_len, .data = out};

	memset(s, 0, sizeof(*s) - sizeof(s->buf));
	s->task = scsi_create_task(cdb_len, (unsigned char *)cdb,
				   out ? SCSI_XFER_WRITE : SCSI_XFER_NONE, (int)out_len);
	if (!s->task)
		return -1;
	if (iscsi_scsi_command_async(in->ctx, in->lun, s->task, slot_cb, out ? &d : NULL, s) != 0) {
		note("%s: cannot queue: %s", in->tag, iscsi_get_error(in->ctx));
		scsi_free_scsi_task(s->task);
		s->task = NULL;
		return -1;
	}
	return 0;
}

static int write_async(struct ini *in, struct slot *s, uint32_t lba, uint8_t tag)
{
	uint8_t cdb[10] = {0};

	cdb[0] = 0x2a;
	put_be32(cdb + 2, lba);
	put_be16(cdb + 7, 1);
	fill_block(s->buf, lba, tag);
	return send_async(in, s, cdb, sizeof(cdb), s->buf, BLOCK);
}

/* Service every context for up to ms milliseconds (or one poll round when ms is 0). */
static void pump(struct ini **v, int n, int ms)
{
	struct pollfd p[8];

	for (int i = 0; i < n; i++) {
		p[i].fd = iscsi_get_fd(v[i]->ctx);
		p[i].events = iscsi_which_events(v[i]->ctx);
		p[i].revents = 0;
	}
	if (poll(p, n, ms) < 0)
		return;
	for (int i = 0; i < n; i++)
		if (iscsi_service(v[i]->ctx, p[i].revents) < 0)
			note("%s: %s", v[i]->tag, iscsi_get_error(v[i]->ctx));
}

static void pump_for(struct ini **v, int n, double ms)
{
	double end = now_ms() + ms;

	while (now_ms() < end)
		pump(v, n, 5);
}

static int count_done(const struct slot *s, int n)
{
	int c = 0;

	for (int i = 0; i < n; i++)
		c += s[i].done;
	return c;
}

static void scenario_preempt_abort_inflight(void)
{
	const int lun = 5;
	const uint64_t ks = 0x5000000000000001ull, kv = 0x5000000000000002ull,
		       ko = 0x5000000000000003ull;
	static struct slot vw[V_WRITES], ow[O_WRITES], pa;
	struct ini s = {0}, v = {0}, o = {0};
	struct ini *all[3] = {&s, &v, &o};
	uint8_t cdb[10] = {0}, par[24] = {0};
	uint8_t *buf = malloc(V_WRITES * BLOCK);
	double t_sent, t0, pa_ms, end;
	int good = 0, aborted = 0, silent = 0, other = 0, asc, st, n;
	uint64_t keys[8];
	uint32_t gen;
	struct resv r;

	REQUIRE(buf, "out of memory");
	REQUIRE(ini_login(&s, "survivor", "iqn.2026-11.org.holdfast:pa-survivor", portal1, 0x600001,
			  1, lun) == 0,
		"login failed");
	REQUIRE(ini_login(&v, "victim", "iqn.2026-11.org.holdfast:pa-victim", portal2, 0x600002, 1,
			  lun) == 0,
		"login failed");
	REQUIRE(ini_login(&o, "other", "iqn.2026-11.org.holdfast:pa-other", portal1, 0x600003, 1,
			  lun) == 0,
		"login failed");
	OUT_GOOD(&s, SA_REGISTER_IGNORE, 0, 0, ks, 0);
	OUT_GOOD(&v, SA_REGISTER_IGNORE, 0, 0, kv, 0);
	OUT_GOOD(&o, SA_REGISTER_IGNORE, 0, 0, ko, 0);
	OUT_GOOD(&v, SA_RESERVE, TYPE_WE_RO, kv, 0, 0);

	/* The old data, in one command per range (every I/O of this LUN takes DELAY_MS). */
	EXPECT_STATUS(SCSI_STATUS_GOOD, &s, write_blocks(&s, V_LBA, V_WRITES, 'o'));
	EXPECT_STATUS(SCSI_STATUS_GOOD, &s, write_blocks(&s, O_LBA, O_WRITES, 'o'));

	/* The victim's writes go out and are held before the medium. */
	for (int i = 0; i < V_WRITES; i++)
		REQUIRE(write_async(&v, &vw[i], V_LBA + i, 'V') == 0, "cannot queue write %d", i);
	t_sent = now_ms();
	while (iscsi_out_queue_length(v.ctx) > 0 && now_ms() - t_sent < DELAY_MS / 2)
		pump(all, 3, 2);
	REQUIRE(iscsi_out_queue_length(v.ctx) == 0,
		"the victim's writes were not all sent within %d ms", DELAY_MS / 2);
	pump_for(all, 3, 30);
	REQUIRE(count_done(vw, V_WRITES) == 0,
		"%d of the victim's writes completed before the preempt: the delay does not hold "
		"them",
		count_done(vw, V_WRITES));

	/* The other initiator's writes start, then the survivor fences the victim. */
	for (int i = 0; i < O_WRITES; i++)
		REQUIRE(write_async(&o, &ow[i], O_LBA + i, 'O') == 0, "cannot queue write %d", i);
	cdb[0] = 0x5f;
	cdb[1] = SA_PREEMPT_AND_ABORT;
	cdb[2] = TYPE_WE_RO;
	put_be32(cdb + 5, sizeof(par));
	put_be64(par, ks);
	put_be64(par + 8, kv);
	t0 = now_ms();
	REQUIRE(send_async(&s, &pa, cdb, sizeof(cdb), par, sizeof(par)) == 0,
		"cannot send PREEMPT AND ABORT");
	while (!pa.done && now_ms() - t0 < 10000)
		pump(all, 3, 1);
	REQUIRE(pa.done, "PREEMPT AND ABORT did not complete in 10 s");
	pa_ms = pa.at - t0;
	printf("    PREEMPT AND ABORT took %.1f ms (%d victim writes in flight, held %.0f ms "
	       "before "
	       "it; store delay %d ms)\n",
	       pa_ms, V_WRITES, t0 - t_sent, DELAY_MS);
	EXPECT(pa.status == SCSI_STATUS_GOOD, "PREEMPT AND ABORT: %s (sense %06x)",
	       status_name(pa.status), pa.asc);
	for (int i = 0; i < V_WRITES; i++)
		EXPECT(!(vw[i].done && vw[i].status == SCSI_STATUS_GOOD),
		       "victim write %d was answered GOOD before the PREEMPT AND ABORT completed",
		       i);

	/* Right after GOOD, none of the victim's writes is on the medium. */
	st = read_blocks(&s, V_LBA, V_WRITES, buf);
	EXPECT(st == SCSI_STATUS_GOOD, "READ of the victim's LBAs: %s", status_name(st));
	for (int i = 0; st == SCSI_STATUS_GOOD && i < V_WRITES; i++)
		EXPECT(block_tag(buf + i * BLOCK, V_LBA + i) == 'o',
		       "LBA %d holds tag %d right after the PREEMPT AND ABORT, expected the old "
		       "data",
		       V_LBA + i, block_tag(buf + i * BLOCK, V_LBA + i));

	/* Wait for the other initiator's writes and well past the victim's delay. */
	end = t_sent + 4 * DELAY_MS;
	while ((count_done(ow, O_WRITES) < O_WRITES && now_ms() - t0 < 10000) || now_ms() < end)
		pump(all, 3, 5);
	for (int i = 0; i < O_WRITES; i++)
		EXPECT(ow[i].done && ow[i].status == SCSI_STATUS_GOOD,
		       "the other initiator's write %d: %s (sense %06x)", i,
		       ow[i].done ? status_name(ow[i].status) : "no answer", ow[i].asc);
	for (int i = 0; i < V_WRITES; i++) {
		if (!vw[i].done)
			silent++;
		else if (vw[i].status == SCSI_STATUS_GOOD)
			good++;
		else if (vw[i].status == SCSI_STATUS_TASK_ABORTED)
			aborted++;
		else
			other++;
	}
	note("victim's writes: %d unanswered, %d TASK ABORTED, %d GOOD, %d other", silent, aborted,
	     good, other);
	EXPECT(good == 0 && other == 0, "the victim got %d GOOD and %d other answers", good, other);

	/* After the delay has passed: still the old data under the victim's LBAs, the other
	 * initiator's data under its own. */
	st = read_blocks(&s, V_LBA, V_WRITES, buf);
	EXPECT(st == SCSI_STATUS_GOOD, "READ of the victim's LBAs: %s", status_name(st));
	for (int i = 0; st == SCSI_STATUS_GOOD && i < V_WRITES; i++)
		EXPECT(block_tag(buf + i * BLOCK, V_LBA + i) == 'o',
		       "an aborted write reached the disk: LBA %d holds tag %d", V_LBA + i,
		       block_tag(buf + i * BLOCK, V_LBA + i));
	st = read_blocks(&s, O_LBA, O_WRITES, buf);
	EXPECT(st == SCSI_STATUS_GOOD, "READ of the other initiator's LBAs: %s", status_name(st));
	for (int i = 0; st == SCSI_STATUS_GOOD && i < O_WRITES; i++)
		EXPECT(block_tag(buf + i * BLOCK, O_LBA + i) == 'O',
		       "the other initiator's write to LBA %d did not land (tag %d)", O_LBA + i,
		       block_tag(buf + i * BLOCK, O_LBA + i));

	/* The victim's next command reports why (spc4r37 5.13.11.2.4; sam5r21 5.6). */
	st = tur_once(&v, &asc);
	EXPECT(st == SCSI_STATUS_CHECK_CONDITION &&
		       (asc == (0x06 << 16 | ASC_REGISTRATIONS_PREEMPTED) ||
			asc == (0x06 << 16 | ASC_COMMANDS_CLEARED_BY_ANOTHER)),
	       "the victim's next command: %s, sense %06x; expected UNIT ATTENTION 2A/05 or 2F/00",
	       status_name(st), asc);
	ua_drain(&v);
	EXPECT_STATUS(SCSI_STATUS_RESERVATION_CONFLICT, &v, write_blocks(&v, V_LBA, 1, 'V'));
	EXPECT_STATUS(SCSI_STATUS_GOOD, &v, read_blocks(&v, V_LBA, 1, NULL));
	n = read_keys(&s, keys, 8, &gen);
	EXPECT(n == 2 && has_key(keys, n, ks) && has_key(keys, n, ko),
	       "after the fence READ KEYS lists %d keys, expected the survivor's and the other's",
	       n);
	EXPECT(read_resv(&s, &r) == 0 && r.present && r.key == ks && r.type == TYPE_WE_RO,
	       "after the fence the holder is %" PRIx64 ", expected the survivor", r.key);
	OUT_GOOD(&s, SA_CLEAR, 0, ks, 0, 0);
out:
	/* The victim's aborted tasks are still on libiscsi's books: they are cancelled at
	 * logout, which the counts above no longer look at. */
	ini_logout(&s);
	ini_logout(&v);
	ini_logout(&o);
	free(buf);
}

static const struct scenario {
	const char *name;
	void (*run)(void);
} scenarios[] = {
	{"windows-wero", scenario_windows_wero},
	{"windows-earo", scenario_windows_earo},
	{"fence-scsi", scenario_fence_scsi},
	{"relogin-isid", scenario_relogin_isid},
	{"all-tg-pt", scenario_all_tg_pt},
	{"preempt-abort-inflight", scenario_preempt_abort_inflight},
};

#define NSCEN (sizeof(scenarios) / sizeof(scenarios[0]))

int main(int argc, char **argv)
{
	int failed = 0, ran = 0;

	if (argc < 4) {
		fprintf(stderr, "usage: %s PORTAL1 PORTAL2 TARGET_IQN [SCENARIO...]\n", argv[0]);
		return 2;
	}
	portal1 = argv[1];
	portal2 = argv[2];
	target_iqn = argv[3];
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < NSCEN; i++) {
		bool chosen = argc == 4;

		for (int a = 4; a < argc; a++)
			chosen |= strcmp(argv[a], scenarios[i].name) == 0;
		if (!chosen)
			continue;
		printf("--- %s\n", scenarios[i].name);
		check_failures = 0;
		scenarios[i].run();
		printf("%s: %s\n", check_failures ? "FAIL" : "PASS", scenarios[i].name);
		failed += check_failures != 0;
		ran++;
	}
	if (ran == 0) {
		fprintf(stderr, "%s: no such scenario\n", argv[0]);
		return 2;
	}
	printf("%d of %d scenarios passed\n", ran - failed, ran);
	return failed ? 1 : 0;
}
