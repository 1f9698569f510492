/* loadgen: an iSCSI load generator on libiscsi's asynchronous API. It keeps --qd commands
 * outstanding on one session with its own poll() loop and reports IOPS, MB/s and latency
 * percentiles from a histogram, so the same load can be run against any target.
 *
 *   loadgen URL --rw randread|randwrite|read|write|fill [--bs BYTES] [--qd N]
 *           [--seconds S] [--span BYTES] [--initiator IQN] [--json]
 *
 * "fill" writes the span once sequentially (a prefill before read tests) and stops. Reads land
 * straight in per-slot buffers (iovec tasks), writes send per-slot buffers filled once, so the
 * tool does no copying or allocation of data per command. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define INITIATOR "iqn.2026-11.org.holdfast:loadgen"

/* Latency histogram: 64 power-of-two ranges of nanoseconds, each cut into 32 linear buckets,
 * which bounds the error of a percentile to about 3 %. */
#define SUB_BITS 5
#define SUB	 (1 << SUB_BITS)
#define NBUCKETS (64 * SUB)

enum rw { RW_RANDREAD, RW_RANDWRITE, RW_READ, RW_WRITE, RW_FILL };

struct slot {
	struct gen *g;
	unsigned char *buf;
	struct scsi_iovec iov;
	struct timespec start;
};

struct gen {
	const char *initiator; /* initiator name; INITIATOR unless --initiator */
	struct iscsi_context *iscsi;
	int lun;
	enum rw rw;
	uint32_t bs;
	uint32_t block_size;
	uint64_t span_blocks; /* the LBA range used, a multiple of bs / block_size */
	uint64_t next_lba;    /* sequential loads */
	uint64_t rng;
	int qd;
	int outstanding;
	int stopping;
	int failed;
	uint64_t ios, errors;
	uint64_t hist[NBUCKETS];
	struct slot *slots;
};

static uint64_t ts_ns(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000ull + t->tv_nsec;
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return ts_ns(&t);
}

static int bucket_of(uint64_t ns)
{
	int msb;

	if (ns < SUB)
		return ns;
	msb = 63 - __builtin_clzll(ns);
	return (msb - SUB_BITS + 1) * SUB + ((ns >> (msb - SUB_BITS)) & (SUB - 1));
}

/* The middle of a bucket's range, in nanoseconds. */
static double bucket_value(int b)
{
	int range = b / SUB, sub = b % SUB;
	double lo, width;

	if (range == 0)
		return b;
	lo = ldexp(SUB + sub, range - 1);
	width = ldexp(1, range - 1);
	return lo + width / 2;
}

static double percentile_us(const struct gen *g, double p)
{
	uint64_t total = 0, want, seen = 0;
	int b;

	for (b = 0; b < NBUCKETS; b++)
		total += g->hist[b];
	if (!total)
		return 0;
	want = (uint64_t)ceil(p * total);
	if (want == 0)
		want = 1;
	for (b = 0; b < NBUCKETS; b++) {
		seen += g->hist[b];
		if (seen >= want)
			return bucket_value(b) / 1000.0;
	}
	return 0;
}

static uint64_t next_random(struct gen *g)
{
	g->rng ^= g->rng << 13;
	g->rng ^= g->rng >> 7;
	g->rng ^= g->rng << 17;
	return g->rng;
}

static uint64_t pick_lba(struct gen *g)
{
	uint64_t step = g->bs / g->block_size, lba;

	if (g->rw == RW_RANDREAD || g->rw == RW_RANDWRITE)
		return next_random(g) % (g->span_blocks / step) * step;
	lba = g->next_lba;
	g->next_lba += step;
	if (g->next_lba >= g->span_blocks) {
		g->next_lba = 0;
		if (g->rw == RW_FILL)
			g->stopping = 1;
	}
	return lba;
}

static void complete(struct iscsi_context *iscsi, int status, void *data, void *priv);

static int submit(struct slot *s)
{
	struct gen *g = s->g;
	struct scsi_task *task;
	uint64_t lba = pick_lba(g);
	int reading = g->rw == RW_RANDREAD || g->rw == RW_READ;

	clock_gettime(CLOCK_MONOTONIC, &s->start);
	if (reading) {
		task = iscsi_read16_iov_task(g->iscsi, g->lun, lba, g->bs, g->block_size, 0, 0, 0,
					     0, 0, complete, s, &s->iov, 1);
	} else {
		task = iscsi_write16_iov_task(g->iscsi, g->lun, lba, NULL, g->bs, g->block_size, 0,
					      0, 0, 0, 0, complete, s, &s->iov, 1);
	}
	if (!task) {
		fprintf(stderr, "loadgen: cannot queue a command: %s\n", iscsi_get_error(g->iscsi));
		g->failed = 1;
		return -EIO;
	}
	g->outstanding++;
	return 0;
}

static void complete(struct iscsi_context *iscsi, int status, void *data, void *priv)
{
	struct slot *s = priv;
	struct gen *g = s->g;
	struct scsi_task *task = data;
	struct timespec end;

	clock_gettime(CLOCK_MONOTONIC, &end);
	g->outstanding--;
	if (status == SCSI_STATUS_GOOD) {
		g->ios++;
		g->hist[bucket_of(ts_ns(&end) - ts_ns(&s->start))]++;
	} else {
		g->errors++;
		if (g->errors <= 5)
			fprintf(stderr, "loadgen: command failed (status %#x): %s\n", status,
				iscsi_get_error(iscsi));
		/* A lost connection fails every command; one of them is enough to stop. */
		if (status != SCSI_STATUS_CHECK_CONDITION)
			g->failed = 1;
	}
	if (task)
		scsi_free_scsi_task(task);
	if (!g->stopping && !g->failed)
		submit(s);
}

static int connect_lun(struct gen *g, const char *url_text, uint64_t *nblocks)
{
	struct iscsi_url *url;
	struct scsi_task *task;
	struct scsi_readcapacity16 *rc16;

	g->iscsi = iscsi_create_context(g->initiator ? g->initiator : INITIATOR);
	if (!g->iscsi)
		return -ENOMEM;
	url = iscsi_parse_full_url(g->iscsi, url_text);
	if (!url) {
		fprintf(stderr, "loadgen: bad URL %s: %s\n", url_text, iscsi_get_error(g->iscsi));
		return -EINVAL;
	}
	iscsi_set_targetname(g->iscsi, url->target);
	iscsi_set_session_type(g->iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(g->iscsi, ISCSI_HEADER_DIGEST_NONE);
	iscsi_set_noautoreconnect(g->iscsi, 1);
	g->lun = url->lun;
	if (iscsi_full_connect_sync(g->iscsi, url->portal, url->lun) != 0) {
		fprintf(stderr, "loadgen: login to %s failed: %s\n", url_text,
			iscsi_get_error(g->iscsi));
		iscsi_destroy_url(url);
		return -ECONNREFUSED;
	}
	iscsi_destroy_url(url);
	task = iscsi_readcapacity16_sync(g->iscsi, g->lun);
	if (!task || task->status != SCSI_STATUS_GOOD || !(rc16 = scsi_datain_unmarshall(task))) {
		fprintf(stderr, "loadgen: READ CAPACITY(16) failed: %s\n",
			iscsi_get_error(g->iscsi));
		return -EIO;
	}
	g->block_size = rc16->block_length;
	*nblocks = rc16->returned_lba + 1;
	scsi_free_scsi_task(task);
	return 0;
}

/* Run the poll loop until the deadline, then drain what is outstanding. */
static int run(struct gen *g, double seconds)
{
	uint64_t deadline = now_ns() + (uint64_t)(seconds * 1e9);
	struct pollfd pfd;
	int i;

	for (i = 0; i < g->qd && !g->stopping; i++)
		if (submit(&g->slots[i]))
			return -EIO;
	while (g->outstanding > 0) {
		if (!g->stopping && g->rw != RW_FILL && now_ns() >= deadline)
			g->stopping = 1;
		pfd.fd = iscsi_get_fd(g->iscsi);
		pfd.events = iscsi_which_events(g->iscsi);
		pfd.revents = 0;
		if (poll(&pfd, 1, 100) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			return -errno;
		}
		if (iscsi_service(g->iscsi, pfd.revents) < 0) {
			fprintf(stderr, "loadgen: connection failed: %s\n",
				iscsi_get_error(g->iscsi));
			return -EIO;
		}
		if (g->failed)
			return -EIO;
	}
	return 0;
}

static const char *rw_names[] = {"randread", "randwrite", "read", "write", "fill"};

static void usage(void)
{
	fprintf(stderr, "usage: loadgen URL --rw randread|randwrite|read|write|fill [--bs BYTES] "
			"[--qd N] [--seconds S] [--span BYTES] [--initiator IQN] [--json]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct gen g = {.rw = RW_RANDREAD, .bs = 4096, .qd = 32, .rng = 0x9e3779b97f4a7c15ull};
	double seconds = 10, elapsed, cpu;
	uint64_t span = 0, nblocks, t0, t1;
	struct rusage ru;
	const char *url = NULL;
	int json = 0, i, r;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rw") && i + 1 < argc) {
			const char *v = argv[++i];
			size_t k;

			for (k = 0; k < sizeof(rw_names) / sizeof(rw_names[0]); k++)
				if (!strcmp(v, rw_names[k]))
					break;
			if (k == sizeof(rw_names) / sizeof(rw_names[0]))
				usage();
			g.rw = k;
		} else if (!strcmp(argv[i], "--bs") && i + 1 < argc) {
			g.bs = strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--qd") && i + 1 < argc) {
			g.qd = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else if (!strcmp(argv[i], "--span") && i + 1 < argc) {
			span = strtoull(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "--initiator") && i + 1 < argc) {
			g.initiator = argv[++i];
		} else if (argv[i][0] != '-' && !url) {
			url = argv[i];
		} else {
			usage();
		}
	}
	if (!url || g.qd < 1 || g.bs == 0 || seconds <= 0)
		usage();
	if (connect_lun(&g, url, &nblocks))
		return 1;
	if (g.bs % g.block_size) {
		fprintf(stderr, "loadgen: --bs %u is not a multiple of the block size %u\n", g.bs,
			g.block_size);
		return 2;
	}
	g.span_blocks = nblocks;
	if (span && span / g.block_size < nblocks)
		g.span_blocks = span / g.block_size;
	g.span_blocks -= g.span_blocks % (g.bs / g.block_size);
	if (g.span_blocks == 0) {
		fprintf(stderr, "loadgen: the LUN is smaller than one --bs\n");
		return 2;
	}
	g.rng ^= (uint64_t)time(NULL);
	g.slots = calloc(g.qd, sizeof(*g.slots));
	if (!g.slots)
		return 1;
	for (i = 0; i < g.qd; i++) {
		struct slot *s = &g.slots[i];
		uint32_t k;

		s->g = &g;
		if (posix_memalign((void **)&s->buf, 4096, g.bs))
			return 1;
		/* Incompressible data, so no layer can cheat on zeroes. */
		for (k = 0; k + 8 <= g.bs; k += 8) {
			uint64_t x = next_random(&g);

			memcpy(s->buf + k, &x, 8);
		}
		s->iov.iov_base = s->buf;
		s->iov.iov_len = g.bs;
	}

	t0 = now_ns();
	r = run(&g, seconds);
	t1 = now_ns();
	elapsed = (t1 - t0) / 1e9;
	getrusage(RUSAGE_SELF, &ru);
	cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	      (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	if (json) {
		printf("{\"rw\": \"%s\", \"bs\": %u, \"qd\": %d, \"seconds\": %.3f, \"ios\": "
		       "%" PRIu64 ", \"errors\": %" PRIu64
		       ", \"iops\": %.1f, \"mbps\": %.2f, \"p50_us\": %.1f, "
		       "\"p99_us\": %.1f, \"cpu_pct\": %.1f}\n",
		       rw_names[g.rw], g.bs, g.qd, elapsed, g.ios, g.errors, g.ios / elapsed,
		       g.ios * (double)g.bs / elapsed / 1e6, percentile_us(&g, 0.50),
		       percentile_us(&g, 0.99), 100.0 * cpu / elapsed);
	} else {
		printf("%s bs=%u qd=%d: %.0f IOPS, %.1f MB/s, p50 %.1f us, p99 %.1f us, %" PRIu64
		       " errors, loadgen cpu %.0f%%\n",
		       rw_names[g.rw], g.bs, g.qd, g.ios / elapsed,
		       g.ios * (double)g.bs / elapsed / 1e6, percentile_us(&g, 0.50),
		       percentile_us(&g, 0.99), g.errors, 100.0 * cpu / elapsed);
	}
	iscsi_logout_sync(g.iscsi);
	iscsi_destroy_context(g.iscsi);
	return r || g.errors ? 1 : 0;
}
