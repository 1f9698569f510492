/* kill9_write: the initiator side of the crash test. It writes distinct patterns to random LBAs
 * and records, durably and only after the target acknowledged it, which pattern each LBA got;
 * after the target was killed and restarted, verify mode checks that every acknowledged write
 * reads back.
 *
 *   kill9_write write URL LOG [--count N] [--span BLOCKS] [--mode fua|sync] [--batch N]
 *   kill9_write verify URL LOG
 *
 * The log has one line per event: "W lba seed" before a write is sent (the write may or may
 * not have reached the medium when the target dies) and "A lba seed" once it is durable by the
 * target's own promise: WRITE(16) with FUA=1 answered GOOD (--mode fua), or WRITE(16) without
 * FUA followed by a SYNCHRONIZE CACHE(16) answered GOOD (--mode sync, every --batch writes).
 * Each "A" line is fsync'ed before the next command is sent.
 *
 * Verify accepts, for each LBA, the last acknowledged pattern or a pattern written after it
 * (sent but unacknowledged when the target died: it may or may not have landed). Anything else
 * (an older pattern, zeroes, garbage) is a lost acknowledged write and fails. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define INITIATOR "iqn.2026-11.org.holdfast:kill9-write"

struct lun {
	struct iscsi_context *iscsi;
	int lun;
	uint32_t block_size;
	uint64_t nblocks;
};

static int lun_open(struct lun *l, const char *url_text)
{
	struct iscsi_url *url;
	struct scsi_task *task;
	struct scsi_readcapacity16 *rc16;

	l->iscsi = iscsi_create_context(INITIATOR);
	if (!l->iscsi)
		return -ENOMEM;
	url = iscsi_parse_full_url(l->iscsi, url_text);
	if (!url) {
		fprintf(stderr, "kill9_write: bad URL %s: %s\n", url_text,
			iscsi_get_error(l->iscsi));
		return -EINVAL;
	}
	/* A reconnect would hide the crash from us and replay commands: fail instead. */
	iscsi_set_noautoreconnect(l->iscsi, 1);
	iscsi_set_timeout(l->iscsi, 30);
	iscsi_set_targetname(l->iscsi, url->target);
	iscsi_set_session_type(l->iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(l->iscsi, ISCSI_HEADER_DIGEST_NONE_CRC32C);
	l->lun = url->lun;
	if (iscsi_full_connect_sync(l->iscsi, url->portal, url->lun) != 0) {
		fprintf(stderr, "kill9_write: login to %s failed: %s\n", url_text,
			iscsi_get_error(l->iscsi));
		iscsi_destroy_url(url);
		return -ECONNREFUSED;
	}
	iscsi_destroy_url(url);
	task = iscsi_readcapacity16_sync(l->iscsi, l->lun);
	if (!task || task->status != SCSI_STATUS_GOOD) {
		fprintf(stderr, "kill9_write: READ CAPACITY(16) failed: %s\n",
			iscsi_get_error(l->iscsi));
		return -EIO;
	}
	rc16 = scsi_datain_unmarshall(task);
	if (!rc16) {
		scsi_free_scsi_task(task);
		return -EIO;
	}
	l->block_size = rc16->block_length;
	l->nblocks = rc16->returned_lba + 1;
	scsi_free_scsi_task(task);
	return 0;
}

/* The pattern of one (lba, seed) pair: a header naming both, then xorshift64 noise, so a block
 * that holds another LBA's or another write's data is recognised and reported by name. */
static void pattern_fill(unsigned char *buf, uint32_t len, uint64_t lba, uint64_t seed)
{
	uint64_t x = (seed * 0x9e3779b97f4a7c15ull) ^ (lba + 1), hdr[2] = {lba, seed};
	uint32_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, 8);
	}
	memcpy(buf, hdr, sizeof(hdr));
}

static int log_line(int fd, char kind, uint64_t lba, uint64_t seed, int durable)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "%c %" PRIu64 " %" PRIu64 "\n", kind, lba, seed);

	if (write(fd, line, n) != n)
		return -errno;
	if (durable && fsync(fd) != 0)
		return -errno;
	return 0;
}

static int task_good(struct lun *l, struct scsi_task *task, const char *what)
{
	int ok = task && task->status == SCSI_STATUS_GOOD;

	/* iscsi_get_error() keeps the last message, which may be stale: only trust it with a
	 * CHECK CONDITION. */
	if (!task)
		fprintf(stderr, "kill9_write: %s: not sent: %s\n", what, iscsi_get_error(l->iscsi));
	else if (task->status == SCSI_STATUS_CHECK_CONDITION)
		fprintf(stderr, "kill9_write: %s: %s\n", what, iscsi_get_error(l->iscsi));
	else if (!ok)
		fprintf(stderr, "kill9_write: %s: status %#x (connection lost?)\n", what,
			task->status);
	if (task)
		scsi_free_scsi_task(task);
	return ok;
}

static int do_write(struct lun *l, const char *logpath, long count, uint64_t span, int fua,
		    int batch)
{
	unsigned char *buf;
	uint64_t *pending_lba, *pending_seed, seed0, lba;
	long i, acked = 0;
	int fd, npending = 0, j;

	fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0) {
		perror(logpath);
		return 2;
	}
	if (span == 0 || span > l->nblocks)
		span = l->nblocks;
	buf = malloc(l->block_size);
	pending_lba = calloc(batch, sizeof(*pending_lba));
	pending_seed = calloc(batch, sizeof(*pending_seed));
	if (!buf || !pending_lba || !pending_seed)
		return 2;
	/* Seeds are unique across runs that append to the same log. */
	seed0 = ((uint64_t)time(NULL) << 20) ^ ((uint64_t)getpid() << 40);
	srandom(seed0);
	for (i = 0; i < count; i++) {
		uint64_t seed = seed0 + i;

		lba = ((uint64_t)random() << 31 | random()) % span;
		pattern_fill(buf, l->block_size, lba, seed);
		if (log_line(fd, 'W', lba, seed, 0))
			return 2;
		if (!task_good(l,
			       iscsi_write16_sync(l->iscsi, l->lun, lba, buf, l->block_size,
						  l->block_size, 0, 0, fua, 0, 0),
			       "WRITE(16)"))
			break;
		if (fua) {
			if (log_line(fd, 'A', lba, seed, 1))
				return 2;
			acked++;
			continue;
		}
		pending_lba[npending] = lba;
		pending_seed[npending++] = seed;
		if (npending < batch)
			continue;
		if (!task_good(l, iscsi_synchronizecache16_sync(l->iscsi, l->lun, 0, 0, 0, 0),
			       "SYNCHRONIZE CACHE(16)"))
			break;
		for (j = 0; j < npending; j++)
			if (log_line(fd, 'A', pending_lba[j], pending_seed[j], j == npending - 1))
				return 2;
		acked += npending;
		npending = 0;
	}
	printf("kill9_write: %ld writes acknowledged (%s)\n", acked, fua ? "FUA" : "SYNC CACHE");
	close(fd);
	return 0;
}

struct event {
	uint64_t lba;
	uint64_t seed;
	size_t order; /* line number: keeps each LBA's events in command order after sorting */
	char kind;
};

static int event_cmp(const void *a, const void *b)
{
	const struct event *x = a, *y = b;

	if (x->lba != y->lba)
		return x->lba < y->lba ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int block_matches(struct lun *l, unsigned char *want, const unsigned char *got, uint64_t lba,
			 uint64_t seed)
{
	pattern_fill(want, l->block_size, lba, seed);
	return !memcmp(want, got, l->block_size);
}

/* Check one LBA whose events are ev[0..n): the block must hold the last acknowledged pattern
 * or one sent after it. Returns 1 when it does, 0 when an acknowledged write was lost, -1 on a
 * read error, 2 when the LBA has no acknowledged write (nothing to check). */
static int verify_lba(struct lun *l, unsigned char *want, const struct event *ev, size_t n)
{
	struct scsi_task *task;
	const unsigned char *got;
	uint64_t hdr[2];
	size_t last_ack = n, k;
	int match;

	for (k = 0; k < n; k++)
		if (ev[k].kind == 'A')
			last_ack = k;
	if (last_ack == n)
		return 2;
	task = iscsi_read16_sync(l->iscsi, l->lun, ev[0].lba, l->block_size, l->block_size, 0, 0, 0,
				 0, 0);
	if (!task || task->status != SCSI_STATUS_GOOD || task->datain.size < (int)l->block_size) {
		fprintf(stderr, "kill9_write: READ(16) of lba %" PRIu64 " failed: %s\n", ev[0].lba,
			iscsi_get_error(l->iscsi));
		if (task)
			scsi_free_scsi_task(task);
		return -1;
	}
	got = task->datain.data;
	match = block_matches(l, want, got, ev[0].lba, ev[last_ack].seed);
	/* Writes sent after the last acknowledgement may or may not have landed. */
	for (k = last_ack + 1; !match && k < n; k++)
		if (ev[k].kind == 'W' && ev[k].seed != ev[last_ack].seed)
			match = block_matches(l, want, got, ev[0].lba, ev[k].seed);
	if (!match) {
		memcpy(hdr, got, sizeof(hdr));
		fprintf(stderr,
			"kill9_write: LOST lba %" PRIu64 ": acknowledged seed %" PRIu64
			", the block names lba %" PRIu64 " seed %" PRIu64 "\n",
			ev[0].lba, ev[last_ack].seed, hdr[0], hdr[1]);
	}
	scsi_free_scsi_task(task);
	return match;
}

static int do_verify(struct lun *l, const char *logpath)
{
	FILE *f = fopen(logpath, "r");
	struct event *ev = NULL, e;
	size_t n = 0, cap = 0, i, j;
	unsigned char *want;
	long bad = 0, checked = 0;
	int r;

	if (!f) {
		perror(logpath);
		return 2;
	}
	while (fscanf(f, " %c %" SCNu64 " %" SCNu64, &e.kind, &e.lba, &e.seed) == 3) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			ev = realloc(ev, cap * sizeof(*ev));
			if (!ev)
				return 2;
		}
		e.order = n;
		ev[n++] = e;
	}
	fclose(f);
	qsort(ev, n, sizeof(*ev), event_cmp);
	want = malloc(l->block_size);
	if (!want)
		return 2;
	for (i = 0; i < n; i = j) {
		for (j = i; j < n && ev[j].lba == ev[i].lba; j++)
			;
		r = verify_lba(l, want, ev + i, j - i);
		if (r < 0)
			return 1;
		if (r == 2)
			continue;
		checked++;
		bad += !r;
	}
	printf("kill9_write: verified %ld acknowledged LBAs, %ld lost\n", checked, bad);
	if (checked == 0) {
		fprintf(stderr, "kill9_write: the log holds no acknowledged write\n");
		return 1;
	}
	return bad ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: kill9_write write URL LOG [--count N] [--span BLOCKS] "
			"[--mode fua|sync] [--batch N]\n"
			"       kill9_write verify URL LOG\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long count = 1000000;
	uint64_t span = 8192;
	int fua = 1, batch = 8, i;
	struct lun l;

	if (argc < 4)
		usage();
	for (i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = atol(argv[++i]);
		else if (!strcmp(argv[i], "--span") && i + 1 < argc)
			span = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
			batch = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
			i++;
			if (!strcmp(argv[i], "fua"))
				fua = 1;
			else if (!strcmp(argv[i], "sync"))
				fua = 0;
			else
				usage();
		} else
			usage();
	}
	if (batch < 1)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (lun_open(&l, argv[2]) != 0)
		return 2;
	if (!strcmp(argv[1], "write"))
		return do_write(&l, argv[3], count, span, fua, batch);
	if (!strcmp(argv[1], "verify"))
		return do_verify(&l, argv[3]);
	usage();
	return 2;
}
