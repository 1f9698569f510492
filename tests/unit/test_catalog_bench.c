/* Benchmark of the catalog's requests through its API, durable (WAL, synchronous=FULL): create,
 * attach and transfer, one request per commit and then in group commits of 32, with operations
 * per second and p50/p99 latency. Beside them, the peer that bounds them on this file system: a
 * bare 4 KiB write + fdatasync in the same folder. It prints figures and asserts only that every
 * request succeeded; times never fail it (CONVENTIONS.md: benchmarks are not tests). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csv-coord/catalog.h"

#define N     600
#define BATCH 32
#define IQN   "iqn.2024-01.org.holdfast:bench"

static int64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* lat holds one latency per request (for a batch: the batch's commit time, which each of its
 * requests waited). */
static void report(const char *what, int64_t *lat, size_t n, int64_t wall_ns, double peer_ops)
{
	double ops = (double)n * 1e9 / (double)wall_ns;

	qsort(lat, n, sizeof(lat[0]), cmp64);
	printf("%-28s %8.0f ops/s  p50 %7.3f ms  p99 %7.3f ms  (%.2fx the bare fdatasync rate)\n",
	       what, ops, lat[n / 2] / 1e6, lat[n * 99 / 100] / 1e6, ops / peer_ops);
}

static double bare_fdatasync(const char *dir, int64_t *lat, size_t n)
{
	char path[128], buf[4096];
	int64_t t0, t;
	int fd;

	snprintf(path, sizeof(path), "%s/peer", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	memset(buf, 'p', sizeof(buf));
	t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		t = now_ns();
		assert_int_equal(pwrite(fd, buf, sizeof(buf), (off_t)(i % 64) * 4096),
				 (ssize_t)sizeof(buf));
		assert_int_equal(fdatasync(fd), 0);
		lat[i] = now_ns() - t;
	}
	t = now_ns() - t0;
	close(fd);
	unlink(path);
	qsort(lat, n, sizeof(lat[0]), cmp64);
	printf("%-28s %8.0f ops/s  p50 %7.3f ms  p99 %7.3f ms\n", "peer: 4 KiB write+fdatasync",
	       (double)n * 1e9 / (double)t, lat[n / 2] / 1e6, lat[n * 99 / 100] / 1e6);
	return (double)n * 1e9 / (double)t;
}

static void test_catalog_bench_prints_figures(void **state)
{
	static int64_t lat[N];
	static struct catalog_vdisk v[N];
	static struct catalog_req r[BATCH];
	char dir[64] = "/tmp/hf-catalog-bench-XXXXXX", pool[96], err[CATALOG_ERR_MAX], cmd[128];
	struct catalog *cat;
	int64_t pool_id, t0, t;
	uint64_t e;
	double peer;

	assert_non_null(mkdtemp(dir));
	snprintf(pool, sizeof(pool), "%s/pool", dir);
	assert_int_equal(mkdir(pool, 0700), 0);
	assert_int_equal(catalog_open(&cat, dir, NULL, err, sizeof(err)), 0);
	assert_int_equal(catalog_pool_add(cat, "bench", pool, CATALOG_POOL_FOLDER, 5, true,
					  &pool_id, err, sizeof(err)),
			 0);
	peer = bare_fdatasync(dir, lat, N);

	/* One request per commit. */
	t0 = now_ns();
	for (int i = 0; i < N; i++) {
		struct catalog_vdisk_spec s = {.pool_id = pool_id, .size = 1ull << 30};

		snprintf(s.name, sizeof(s.name), "a%d", i);
		snprintf(s.target_iqn, sizeof(s.target_iqn), IQN);
		t = now_ns();
		assert_int_equal(catalog_vdisk_create(cat, &s, true, &v[i], err, sizeof(err)), 0);
		lat[i] = now_ns() - t;
	}
	report("create, 1 per commit", lat, N, now_ns() - t0, peer);
	t0 = now_ns();
	for (int i = 0; i < N; i++) {
		t = now_ns();
		assert_int_equal(
			catalog_vdisk_attach(cat, v[i].id, 1 + i % 4, 1, true, err, sizeof(err)),
			0);
		lat[i] = now_ns() - t;
	}
	report("attach, 1 per commit", lat, N, now_ns() - t0, peer);
	t0 = now_ns();
	for (int i = 0; i < N; i++) {
		t = now_ns();
		assert_int_equal(catalog_vdisk_transfer(cat, v[i].id, 0, 1 + i % 4, 1, true, &e,
							err, sizeof(err)),
				 0);
		lat[i] = now_ns() - t;
		v[i].epoch = e;
		v[i].owner = 1 + i % 4;
	}
	report("transfer, 1 per commit", lat, N, now_ns() - t0, peer);

	/* Group commit: BATCH requests per commit, as the coord plane submits the requests of
	 * one loop iteration. */
	for (int kind = 0; kind < 3; kind++) {
		static const char *const names[] = {"create, group of 32", "attach, group of 32",
						    "transfer, group of 32"};

		t0 = now_ns();
		for (int i = 0; i < N; i += BATCH) {
			int n = N - i < BATCH ? N - i : BATCH;

			memset(r, 0, sizeof(r));
			for (int k = 0; k < n; k++) {
				struct catalog_req *q = &r[k];
				struct catalog_vdisk *d = &v[i + k];

				q->quorate = true;
				memcpy(q->vdisk_id, d->id, sizeof(q->vdisk_id));
				q->expected_epoch = d->epoch;
				if (kind == 0) {
					q->op = CATALOG_OP_CREATE;
					q->spec.pool_id = pool_id;
					q->spec.size = 1ull << 30;
					snprintf(q->spec.name, sizeof(q->spec.name), "b%d", i + k);
					snprintf(q->spec.target_iqn, sizeof(q->spec.target_iqn),
						 IQN);
				} else if (kind == 1) {
					q->op = CATALOG_OP_ATTACH;
					q->host_id = 5 + (i + k) % 4;
				} else {
					q->op = CATALOG_OP_TRANSFER;
					q->old_owner = d->owner;
					q->new_owner = 5 + (i + k) % 4;
				}
			}
			t = now_ns();
			assert_int_equal(catalog_commit(cat, r, (size_t)n), 0);
			t = now_ns() - t;
			for (int k = 0; k < n; k++) {
				assert_int_equal(r[k].rc, 0);
				lat[i + k] = t;
				if (kind == 2)
					v[i + k].epoch = r[k].vdisk.epoch;
			}
		}
		report(names[kind], lat, N, now_ns() - t0, peer);
	}
	catalog_close(cat);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_catalog_bench_prints_figures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
