/* Tests for the catalog's read connection (csv-coord/catalog_int.h): the public lookups see the
 * last committed state, never a transaction in progress, and answer while one is open; so the
 * coord plane may read from its loop while its commit thread commits a batch. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csv-coord/catalog.h"

#define IQN    "iqn.2024-01.org.holdfast:cluster"
#define BATCH  200 /* transfers of one disk per commit */
#define ROUNDS 12

struct fx {
	char dir[64];
	char pool_dir[96];
	struct catalog *cat;
	int64_t pool;
	struct catalog_vdisk v;
	char err[CATALOG_ERR_MAX];
	atomic_bool writing;
	int commit_errors;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct catalog_vdisk_spec s = {.size = 1 << 20, .name = "d", .target_iqn = IQN};

	strcpy(f->dir, "/tmp/hf-catalog-reader-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->pool_dir, sizeof(f->pool_dir), "%s/pool", f->dir);
	assert_int_equal(mkdir(f->pool_dir, 0700), 0);
	assert_int_equal(catalog_open(&f->cat, f->dir, NULL, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_pool_add(f->cat, "p1", f->pool_dir, CATALOG_POOL_FOLDER, 0, true,
					  &f->pool, f->err, sizeof(f->err)),
			 0);
	s.pool_id = f->pool;
	assert_int_equal(catalog_vdisk_create(f->cat, &s, true, &f->v, f->err, sizeof(f->err)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[PATH_MAX];

	catalog_close(f->cat);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* ROUNDS batches, each of BATCH transfers of the same disk between hosts 1 and 2: inside a
 * batch the epoch passes through every value, but only 1 + k * BATCH is ever committed. */
static void *writer(void *arg)
{
	static struct catalog_req r[BATCH];
	struct fx *f = arg;
	uint64_t epoch = 1;

	for (int k = 0; k < ROUNDS; k++) {
		memset(r, 0, sizeof(r));
		for (int i = 0; i < BATCH; i++, epoch++) {
			r[i].op = CATALOG_OP_TRANSFER;
			r[i].quorate = true;
			snprintf(r[i].vdisk_id, sizeof(r[i].vdisk_id), "%s", f->v.id);
			r[i].expected_epoch = epoch;
			r[i].old_owner = epoch == 1 ? CATALOG_NO_HOST : (epoch % 2 ? 1 : 2);
			r[i].new_owner = epoch % 2 ? 2 : 1;
		}
		if (catalog_commit(f->cat, r, BATCH) != 0 || r[BATCH - 1].rc != 0)
			f->commit_errors++;
	}
	atomic_store(&f->writing, false);
	return NULL;
}

static void test_lookups_during_a_commit_see_only_committed_states(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk g;
	unsigned reads = 0, failed = 0, torn = 0;
	uint64_t last = 1;
	bool backwards = false;
	pthread_t t;

	atomic_store(&f->writing, true);
	assert_int_equal(pthread_create(&t, NULL, writer, f), 0);
	while (atomic_load(&f->writing)) {
		if (catalog_vdisk_get(f->cat, f->v.id, &g) < 0) {
			failed++;
			continue;
		}
		reads++;
		if ((g.epoch - 1) % BATCH)
			torn++; /* a state from inside a batch */
		if (g.epoch < last)
			backwards = true;
		last = g.epoch;
	}
	pthread_join(t, NULL);
	assert_int_equal(f->commit_errors, 0);
	assert_int_equal(failed, 0);
	assert_int_equal(torn, 0);
	assert_false(backwards);
	assert_true(reads > 0);
	/* Once the commit returned, the reader sees it. */
	assert_int_equal(catalog_vdisk_get(f->cat, f->v.id, &g), 0);
	assert_int_equal(g.epoch, 1 + (uint64_t)ROUNDS * BATCH);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Another connection holds the write lock with a change not committed: the lookups answer at
 * once (no busy wait) with the committed row. */
static void test_lookups_answer_while_a_write_is_open(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk g;
	char path[PATH_MAX];
	sqlite3 *db;
	double t0;

	snprintf(path, sizeof(path), "%s/catalog.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(db, "BEGIN IMMEDIATE; UPDATE vdisks SET epoch = 99", NULL, NULL, NULL),
		SQLITE_OK);
	t0 = now_s();
	assert_int_equal(catalog_vdisk_get(f->cat, f->v.id, &g), 0);
	assert_int_equal(g.epoch, 1);
	assert_int_equal(catalog_vdisk_list(f->cat, f->pool, NULL, 0), 1);
	assert_true(now_s() - t0 < 1.0);
	assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_lookups_during_a_commit_see_only_committed_states, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookups_answer_while_a_write_is_open, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
