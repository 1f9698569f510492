/* Tests for the creates whose files are made ahead of their commit (csv-coord/catalog.h:
 * catalog_create_prepare, catalog_create_files): the commit inserts the row for the premade
 * file, a create refused at the commit leaves no file behind, what prepare turns down is left
 * to the commit's rules, and a premade file whose commit never came is removed at the next open. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csv-coord/catalog.h"

#define IQN "iqn.2024-01.org.holdfast:cluster"
#define MiB (1024ull * 1024)

struct fx {
	char dir[64];
	char pool_dir[96];
	struct catalog *cat;
	int64_t pool;
	char err[CATALOG_ERR_MAX];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/hf-catalog-premade-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->pool_dir, sizeof(f->pool_dir), "%s/pool", f->dir);
	assert_int_equal(mkdir(f->pool_dir, 0700), 0);
	assert_int_equal(catalog_open(&f->cat, f->dir, NULL, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_pool_add(f->cat, "p1", f->pool_dir, CATALOG_POOL_FOLDER, 0, true,
					  &f->pool, f->err, sizeof(f->err)),
			 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[PATH_MAX];

	if (f->cat)
		catalog_close(f->cat);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void create_req(struct catalog_req *r, int64_t pool, const char *name, uint64_t size)
{
	memset(r, 0, sizeof(*r));
	r->op = CATALOG_OP_CREATE;
	r->quorate = true;
	r->spec = (struct catalog_vdisk_spec){.pool_id = pool, .size = size, .target_iqn = IQN};
	snprintf(r->spec.name, sizeof(r->spec.name), "%s", name);
}

static int count_files(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".img"))
			n++;
	closedir(d);
	return n;
}

/* Prepare and make the files of r[0..n), each of which must be premade. */
static void premake(struct fx *f, struct catalog_req *r, size_t n)
{
	struct catalog_req *p[8];

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(catalog_create_prepare(f->cat, &r[i]), 0);
		p[i] = &r[i];
	}
	catalog_create_files(p, n);
	for (size_t i = 0; i < n; i++)
		assert_true(r[i].premade);
}

static void test_premade_files_get_their_rows_at_the_commit(void **state)
{
	struct fx *f = *state;
	struct catalog_req r[3];
	char ids[3][CATALOG_ID_LEN + 1], paths[3][CATALOG_PATH_MAX];
	struct catalog_vdisk g;
	struct stat sb;

	for (int i = 0; i < 3; i++) {
		char name[8];

		snprintf(name, sizeof(name), "d%d", i);
		create_req(&r[i], f->pool, name, (uint64_t)(i + 1) * MiB);
	}
	premake(f, r, 3);
	/* The files are there, durable, before any row. */
	assert_int_equal(count_files(f->pool_dir), 3);
	assert_int_equal(catalog_vdisk_list(f->cat, f->pool, NULL, 0), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(stat(r[i].vdisk.path, &sb), 0);
		assert_int_equal(sb.st_size, (off_t)((i + 1) * MiB));
		assert_int_equal(sb.st_blocks, 0);
		snprintf(ids[i], sizeof(ids[i]), "%s", r[i].vdisk.id);
		snprintf(paths[i], sizeof(paths[i]), "%s", r[i].vdisk.path);
	}
	assert_int_equal(catalog_commit(f->cat, r, 3), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].rc, 0);
		assert_false(r[i].premade); /* consumed by the commit */
		assert_string_equal(r[i].vdisk.id, ids[i]);
		assert_int_equal(catalog_vdisk_get(f->cat, ids[i], &g), 0);
		assert_int_equal(g.state, CATALOG_VDISK_READY);
		assert_string_equal(g.path, paths[i]);
		assert_int_equal(g.size, (uint64_t)(i + 1) * MiB);
	}
	/* No second file was made for any of them. */
	assert_int_equal(count_files(f->pool_dir), 3);
}

/* What passed prepare but is refused at the commit (the name taken by an earlier create of the
 * same batch, quorum lost, the pool removed) loses its file; the rest of the batch stands. */
static void test_premade_create_refused_at_commit_removes_its_file(void **state)
{
	struct fx *f = *state;
	struct catalog_req r[4];
	char paths[4][CATALOG_PATH_MAX];
	char other[160];
	int64_t pool2;

	snprintf(other, sizeof(other), "%s/other", f->dir);
	assert_int_equal(mkdir(other, 0700), 0);
	assert_int_equal(catalog_pool_add(f->cat, "p2", other, CATALOG_POOL_FOLDER, 0, true, &pool2,
					  f->err, sizeof(f->err)),
			 0);
	create_req(&r[0], f->pool, "a", MiB);
	create_req(&r[1], f->pool, "a", MiB); /* taken by r[0] at the commit */
	create_req(&r[2], f->pool, "b", MiB);
	create_req(&r[3], pool2, "c", MiB);
	premake(f, r, 4);
	for (int i = 0; i < 4; i++)
		snprintf(paths[i], sizeof(paths[i]), "%s", r[i].vdisk.path);
	assert_int_equal(count_files(f->pool_dir), 3);
	assert_int_equal(count_files(other), 1);
	r[2].quorate = false;
	assert_int_equal(catalog_pool_remove(f->cat, pool2, true, f->err, sizeof(f->err)), 0);

	assert_int_equal(catalog_commit(f->cat, r, 4), 0);
	assert_int_equal(r[0].rc, 0);
	assert_int_equal(r[1].rc, -EEXIST);
	assert_int_equal(r[2].rc, -EPERM);
	assert_int_equal(r[3].rc, -ENOENT);
	assert_int_equal(access(paths[0], F_OK), 0);
	for (int i = 1; i < 4; i++)
		assert_int_equal(access(paths[i], F_OK), -1);
	assert_int_equal(count_files(f->pool_dir), 1);
	assert_int_equal(count_files(other), 0);
	assert_int_equal(catalog_vdisk_list(f->cat, 0, NULL, 0), 1);
}

/* Prepare turns down what the commit would refuse, and leaves it to the commit (which says
 * why); a create it turned down gets no file. */
static void test_prepare_leaves_what_the_commit_refuses_to_the_commit(void **state)
{
	struct fx *f = *state;
	struct catalog_req r;
	struct catalog_vdisk v;
	struct catalog_vdisk_spec s = {.pool_id = f->pool, .size = MiB, .name = "t", .target_iqn = IQN};

	assert_int_equal(catalog_vdisk_create(f->cat, &s, true, &v, f->err, sizeof(f->err)), 0);
	create_req(&r, f->pool, "t", MiB);
	assert_int_equal(catalog_create_prepare(f->cat, &r), -EEXIST);
	assert_string_equal(r.vdisk.id, "");
	create_req(&r, f->pool, "n", MiB);
	r.quorate = false;
	assert_true(catalog_create_prepare(f->cat, &r) < 0);
	create_req(&r, f->pool, "bad name", MiB);
	assert_true(catalog_create_prepare(f->cat, &r) < 0);
	create_req(&r, f->pool, "n", 1000);
	assert_true(catalog_create_prepare(f->cat, &r) < 0);
	create_req(&r, f->pool + 7, "n", MiB);
	assert_int_equal(catalog_create_prepare(f->cat, &r), -ENOENT);
	assert_string_equal(r.vdisk.path, "");
	assert_false(r.premade);
	/* The commit gives the reason. */
	assert_int_equal(catalog_commit(f->cat, &r, 1), 0);
	assert_int_equal(r.rc, -ENOENT);
	assert_non_null(strstr(r.err, "no pool"));
	assert_int_equal(count_files(f->pool_dir), 1);
}

/* A file that cannot be made ahead leaves its create unpremade; the commit tries again itself
 * and refuses it with the file's error if that fails too. */
static void test_premake_failure_falls_back_to_the_commit(void **state)
{
	struct fx *f = *state;
	struct catalog_req r[2], *p[2] = {&r[0], &r[1]};
	char other[160];
	int64_t pool2;

	snprintf(other, sizeof(other), "%s/other", f->dir);
	assert_int_equal(mkdir(other, 0700), 0);
	assert_int_equal(catalog_pool_add(f->cat, "p2", other, CATALOG_POOL_FOLDER, 0, true, &pool2,
					  f->err, sizeof(f->err)),
			 0);
	create_req(&r[0], pool2, "x", MiB);
	create_req(&r[1], f->pool, "y", MiB);
	assert_int_equal(catalog_create_prepare(f->cat, &r[0]), 0);
	assert_int_equal(catalog_create_prepare(f->cat, &r[1]), 0);
	assert_int_equal(rmdir(other), 0);
	catalog_create_files(p, 2);
	assert_false(r[0].premade);
	assert_string_equal(r[0].vdisk.id, "");
	assert_true(r[1].premade);
	assert_int_equal(catalog_commit(f->cat, r, 2), 0);
	assert_int_equal(r[0].rc, -ENOENT);
	assert_non_null(strstr(r[0].err, "create"));
	assert_int_equal(r[1].rc, 0);
	/* Made ahead or not, the folder back: the commit makes the file itself. */
	assert_int_equal(mkdir(other, 0700), 0);
	create_req(&r[0], pool2, "x", MiB);
	assert_int_equal(catalog_create_prepare(f->cat, &r[0]), 0);
	assert_int_equal(catalog_commit(f->cat, r, 1), 0); /* prepared, not premade */
	assert_int_equal(r[0].rc, 0);
	assert_int_equal(count_files(other), 1);
	assert_int_equal(catalog_vdisk_list(f->cat, 0, NULL, 0), 2);
}

/* A batch refused whole before any row (here: too many requests) removes its premade files. */
static void test_batch_refused_whole_removes_premade_files(void **state)
{
	struct fx *f = *state;
	struct catalog_req *r = calloc(CATALOG_BATCH_MAX + 1, sizeof(*r));

	create_req(&r[0], f->pool, "z", MiB);
	premake(f, r, 1);
	assert_int_equal(count_files(f->pool_dir), 1);
	assert_int_equal(catalog_commit(f->cat, r, CATALOG_BATCH_MAX + 1), -EINVAL);
	assert_int_equal(count_files(f->pool_dir), 0);
	assert_int_equal(catalog_vdisk_list(f->cat, 0, NULL, 0), 0);
	free(r);
}

/* A crash after the files and before the commit: rowless empty files, removed at open. */
static void test_premade_file_without_commit_is_removed_at_open(void **state)
{
	struct fx *f = *state;
	struct catalog_reconcile rec;
	struct catalog_req r[2];

	create_req(&r[0], f->pool, "o1", MiB);
	create_req(&r[1], f->pool, "o2", 4 * MiB);
	premake(f, r, 2);
	catalog_close(f->cat);
	f->cat = NULL;
	assert_int_equal(count_files(f->pool_dir), 2);
	assert_int_equal(catalog_open(&f->cat, f->dir, &rec, f->err, sizeof(f->err)), 0);
	assert_int_equal(rec.orphans_removed, 2);
	assert_int_equal(rec.orphans_quarantined, 0);
	assert_int_equal(count_files(f->pool_dir), 0);
	assert_int_equal(catalog_vdisk_list(f->cat, 0, NULL, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_premade_files_get_their_rows_at_the_commit),
		T(test_premade_create_refused_at_commit_removes_its_file),
		T(test_prepare_leaves_what_the_commit_refuses_to_the_commit),
		T(test_premake_failure_falls_back_to_the_commit),
		T(test_batch_refused_whole_removes_premade_files),
		T(test_premade_file_without_commit_is_removed_at_open),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
