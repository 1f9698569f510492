/* pr_latency: the latency of a PERSISTENT RESERVE OUT that must be saved (APTPL=1) next to
 * the cost of the disk flushes it cannot avoid, measured in the same run on the same file
 * system (issue 3, acceptance 5; the goal is at most 1.2 times a bare fsync).
 *
 *   pr_latency URL DIR [--count N]
 *
 * DIR must be the target's data folder, or a folder on the same file system. Four loads run
 * interleaved in ten rounds (so that a slow moment of the disk is shared fairly) and each
 * prints p50/p99 in microseconds:
 *   fsync         pwrite of 300 bytes at offset 0 of one file, then fsync: the bare flush;
 *   atomic        what lib/atomic_file.c does: a new temp file, 300 bytes, fsync, rename
 *                 over the real name, fsync of the folder (two flushes);
 *   pr-aptpl      REGISTER AND IGNORE EXISTING KEY with APTPL=1 and alternating keys, so
 *                 every command changes the state and the target must save it before GOOD;
 *   pr-noaptpl    the same with APTPL=0 (after the first one, nothing is saved): the iSCSI
 *                 round trip and the engine, without the disk.
 * The ratios pr-aptpl / fsync (the goal) and pr-aptpl / atomic follow. A benchmark
 * prints figures; it never fails on one. */
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

#define INITIATOR "iqn.2026-11.org.holdfast:pr-latency"
#define ROUNDS	  10
#define PAYLOAD	  300

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct series {
	const char *name;
	double *v;
	long n;
	double p50, p99;
};

static void series_done(struct series *s)
{
	qsort(s->v, s->n, sizeof(*s->v), cmp_double);
	s->p50 = s->v[s->n / 2];
	s->p99 = s->v[(s->n * 99) / 100 < s->n ? (s->n * 99) / 100 : s->n - 1];
}

/* pwrite 300 bytes over the start of one file, then fsync. */
static int bare_fsync(int fd, const char *buf, double *us)
{
	double t0 = now_us();

	if (pwrite(fd, buf, PAYLOAD, 0) != PAYLOAD || fsync(fd))
		return -errno;
	*us = now_us() - t0;
	return 0;
}

/* The atomic replacement, written out here (the benchmark links libiscsi only): temp file,
 * write, fsync, rename, fsync of the folder. */
static int atomic_replace(int dirfd, const char *dir, const char *buf, double *us)
{
	char tmp[4096], dst[4096];
	double t0 = now_us();
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/pr-latency.atomic.tmp", dir);
	snprintf(dst, sizeof(dst), "%s/pr-latency.atomic", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, buf, PAYLOAD) != PAYLOAD || fsync(fd)) {
		close(fd);
		return -errno;
	}
	close(fd);
	if (rename(tmp, dst) || fsync(dirfd))
		return -errno;
	*us = now_us() - t0;
	return 0;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (56 - 8 * i);
}

/* spc4r37 6.16.2: REGISTER AND IGNORE EXISTING KEY (service action 06h) with key. */
static int register_ignore(struct iscsi_context *iscsi, int lun, uint64_t key, int aptpl,
			   double *us)
{
	unsigned char cdb[10] = {0x5f, 0x06, 0, 0, 0, 0, 0, 0, 24, 0}, param[24] = {0};
	struct iscsi_data d = {.size = sizeof(param), .data = param};
	struct scsi_task *t;
	double t0;
	int ok;

	put_be64(param + 8, key);
	param[20] = aptpl ? 0x01 : 0x00;
	for (int tries = 0; tries < 4; tries++) {
		t = scsi_create_task(10, cdb, SCSI_XFER_WRITE, sizeof(param));
		if (!t)
			return -ENOMEM;
		t0 = now_us();
		if (!iscsi_scsi_command_sync(iscsi, lun, t, &d)) {
			scsi_free_scsi_task(t);
			return -EIO;
		}
		*us = now_us() - t0;
		/* A unit attention (the login's POWER ON) means the command did not run. */
		if (t->status == SCSI_STATUS_CHECK_CONDITION &&
		    t->sense.key == SCSI_SENSE_UNIT_ATTENTION) {
			scsi_free_scsi_task(t);
			continue;
		}
		ok = t->status == SCSI_STATUS_GOOD;
		if (!ok)
			fprintf(stderr, "pr_latency: PR OUT: status %#x sense %x/%04x\n", t->status,
				t->sense.key, t->sense.ascq);
		scsi_free_scsi_task(t);
		return ok ? 0 : -EIO;
	}
	return -EIO;
}

int main(int argc, char **argv)
{
	struct series s[4] = {{.name = "fsync"},
			      {.name = "atomic"},
			      {.name = "pr-aptpl"},
			      {.name = "pr-noaptpl"}};
	const uint64_t keys[2] = {0xbe4c000000000001ull, 0xbe4c000000000002ull};
	struct iscsi_context *iscsi;
	struct iscsi_url *url;
	char buf[PAYLOAD], path[4096];
	long count = 1000, per, i, k = 0;
	int fd, dirfd, lun, rc = 0;
	double us;

	if (argc < 3)
		goto usage;
	for (int a = 3; a < argc; a++) {
		if (!strcmp(argv[a], "--count") && a + 1 < argc)
			count = atol(argv[++a]);
		else
			goto usage;
	}
	if (count < ROUNDS)
		count = ROUNDS;
	per = count / ROUNDS;
	count = per * ROUNDS;
	for (int j = 0; j < 4; j++) {
		s[j].v = calloc(count, sizeof(double));
		if (!s[j].v)
			return 2;
	}
	memset(buf, 'p', sizeof(buf));
	snprintf(path, sizeof(path), "%s/pr-latency.fsync", argv[2]);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	dirfd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || dirfd < 0) {
		perror(argv[2]);
		return 2;
	}

	iscsi = iscsi_create_context(INITIATOR);
	url = iscsi ? iscsi_parse_full_url(iscsi, argv[1]) : NULL;
	if (!url) {
		fprintf(stderr, "pr_latency: bad URL %s\n", argv[1]);
		return 2;
	}
	iscsi_set_targetname(iscsi, url->target);
	iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_NONE);
	lun = url->lun;
	if (iscsi_full_connect_sync(iscsi, url->portal, lun)) {
		fprintf(stderr, "pr_latency: login failed: %s\n", iscsi_get_error(iscsi));
		return 2;
	}
	iscsi_destroy_url(url);

	for (int r = 0; r < ROUNDS && !rc; r++) {
		for (i = 0; i < per && !rc; i++) {
			rc = bare_fsync(fd, buf, &us);
			s[0].v[s[0].n++] = us;
		}
		for (i = 0; i < per && !rc; i++) {
			rc = atomic_replace(dirfd, argv[2], buf, &us);
			s[1].v[s[1].n++] = us;
		}
		for (i = 0; i < per && !rc; i++, k++) {
			rc = register_ignore(iscsi, lun, keys[k & 1], 1, &us);
			s[2].v[s[2].n++] = us;
		}
		/* The first APTPL=0 command saves once (APTPL going off must persist too); the
		 * rest change the key in memory only. It is not counted. */
		rc = rc ?: register_ignore(iscsi, lun, keys[k++ & 1], 0, &us);
		for (i = 0; i < per && !rc; i++, k++) {
			rc = register_ignore(iscsi, lun, keys[k & 1], 0, &us);
			s[3].v[s[3].n++] = us;
		}
	}
	if (rc) {
		fprintf(stderr, "pr_latency: stopped: %s\n", strerror(-rc));
		return 1;
	}
	/* Leave no registration behind: unregister with a zero key. */
	register_ignore(iscsi, lun, 0, 0, &us);
	iscsi_logout_sync(iscsi);
	iscsi_destroy_context(iscsi);
	close(fd);
	close(dirfd);

	printf("%-11s %8s %9s %9s\n", "load", "count", "p50 us", "p99 us");
	for (int j = 0; j < 4; j++) {
		series_done(&s[j]);
		printf("%-11s %8ld %9.0f %9.0f\n", s[j].name, s[j].n, s[j].p50, s[j].p99);
	}
	printf("ratio pr-aptpl / fsync:  p50 %.2fx  p99 %.2fx  (goal <= 1.2x)\n",
	       s[2].p50 / s[0].p50, s[2].p99 / s[0].p99);
	printf("ratio pr-aptpl / atomic: p50 %.2fx  p99 %.2fx\n", s[2].p50 / s[1].p50,
	       s[2].p99 / s[1].p99);
	return 0;

usage:
	fprintf(stderr, "usage: pr_latency URL DIR [--count N]\n");
	return 2;
}
