/* Tests for csv-coord/catalog*.c: the store (WAL, schema migrations, single writer), pools and
 * their alert, the virtual-disk requests with their quorum and epoch rules, LUN numbers, access
 * states, group commit, clone, and what opening the catalog repairs after a crash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csv-coord/catalog.h"
#include "csv-coord/catalog_int.h"

#define IQN "iqn.2024-01.org.holdfast:cluster"
#define MiB (1024ull * 1024)

struct fx {
	char dir[64];
	char pool_dir[96];
	struct catalog *cat;
	int64_t pool;
	char err[CATALOG_ERR_MAX];
};

static void rm_rf(const char *path)
{
	char cmd[PATH_MAX];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/hf-catalog-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->pool_dir, sizeof(f->pool_dir), "%s/pool", f->dir);
	assert_int_equal(mkdir(f->pool_dir, 0700), 0);
	assert_int_equal(catalog_open(&f->cat, f->dir, NULL, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_pool_add(f->cat, "p1", f->pool_dir, CATALOG_POOL_FOLDER, 10, true,
					  &f->pool, f->err, sizeof(f->err)),
			 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	catalog_close(f->cat);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static void reopen(struct fx *f, struct catalog_reconcile *rec)
{
	catalog_close(f->cat);
	f->cat = NULL;
	assert_int_equal(catalog_open(&f->cat, f->dir, rec, f->err, sizeof(f->err)), 0);
}

static struct catalog_vdisk mk(struct fx *f, const char *name, uint64_t size)
{
	struct catalog_vdisk_spec s = {.pool_id = f->pool, .size = size};
	struct catalog_vdisk v;

	snprintf(s.name, sizeof(s.name), "%s", name);
	snprintf(s.target_iqn, sizeof(s.target_iqn), IQN);
	assert_int_equal(catalog_vdisk_create(f->cat, &s, true, &v, f->err, sizeof(f->err)), 0);
	return v;
}

/* Run SQL on the database behind the catalog's back (the catalog is closed meanwhile). */
static void raw_sql(struct fx *f, const char *sql)
{
	char path[PATH_MAX];
	sqlite3 *db;

	catalog_close(f->cat);
	f->cat = NULL;
	snprintf(path, sizeof(path), "%s/catalog.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
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

static void write_at(const char *path, off_t off, char byte, size_t len)
{
	char *buf = malloc(len);
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	memset(buf, byte, len);
	assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	free(buf);
}

/* The store. */

static void test_open_sets_wal_and_newest_schema(void **state)
{
	struct fx *f = *state;
	char path[PATH_MAX];
	sqlite3_stmt *st;
	sqlite3 *db;

	assert_int_equal(catalog_schema_version(f->cat), CATALOG_SCHEMA_VERSION);
	/* WAL is a property of the file, so another connection sees it. */
	snprintf(path, sizeof(path), "%s/catalog.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_second_writer_is_refused_busy(void **state)
{
	struct fx *f = *state;
	struct catalog *other = NULL;

	assert_int_equal(catalog_open(&other, f->dir, NULL, f->err, sizeof(f->err)), -EBUSY);
	assert_null(other);
}

static void test_v1_database_is_migrated_with_its_rows(void **state)
{
	struct fx *f = *state;
	char path[PATH_MAX], sql[1024];
	struct catalog_vdisk v;
	enum catalog_access a;
	sqlite3 *db;

	/* A database that an older firmware wrote: schema 1, one pool, one disk. */
	catalog_close(f->cat);
	f->cat = NULL;
	rm_rf(f->dir);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	assert_int_equal(mkdir(f->pool_dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/catalog.db", f->dir);
	assert_int_equal(catalog_open_db(&db, path, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_schema_migrate(db, 1, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_schema_read_version(db), 1);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO pools VALUES (1, 'old', 'folder', '%s', 5, 0);"
		 "INSERT INTO vdisks VALUES ('00000000-0000-4000-8000-000000000001', 1, 'd1', 4096,"
		 " '%s/00000000-0000-4000-8000-000000000001.img', '" IQN "', 7, 3, 9, 'ready',"
		 " 'vm1', 0, 0);",
		 f->pool_dir, f->pool_dir);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	snprintf(path, sizeof(path), "%s/00000000-0000-4000-8000-000000000001.img", f->pool_dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	assert_int_equal(truncate(path, 4096), 0);

	assert_int_equal(catalog_open(&f->cat, f->dir, NULL, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_schema_version(f->cat), CATALOG_SCHEMA_VERSION);
	assert_int_equal(catalog_vdisk_get(f->cat, "00000000-0000-4000-8000-000000000001", &v), 0);
	assert_int_equal(v.epoch, 9);
	assert_int_equal(v.owner, 3);
	assert_int_equal(v.lun, 7);
	assert_string_equal(v.vm, "vm1");
	assert_false(v.maintenance);
	/* The version 2 parts work on the old row. */
	assert_int_equal(catalog_vdisk_attach(f->cat, v.id, 3, 9, true, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_access_get(f->cat, 3, v.id, &a), 0);
	assert_int_equal(a, CATALOG_ACCESS_DIRECT);
	f->pool = 1;
}

static void test_newer_schema_is_refused(void **state)
{
	struct fx *f = *state;

	raw_sql(f, "UPDATE schema_version SET version = 99");
	assert_int_equal(catalog_open(&f->cat, f->dir, NULL, f->err, sizeof(f->err)), -EPROTO);
	assert_non_null(strstr(f->err, "newer"));
	{
		char sql[64];

		snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d",
			 CATALOG_SCHEMA_VERSION);
		raw_sql(f, sql);
	}
	reopen(f, NULL);
}

/* Pure rules. */

static void test_access_fenced_beats_maintenance_beats_redirected(void **state)
{
	assert_int_equal(catalog_access_effective(false, false, false), CATALOG_ACCESS_DIRECT);
	assert_int_equal(catalog_access_effective(false, false, true), CATALOG_ACCESS_REDIRECTED);
	assert_int_equal(catalog_access_effective(false, true, true), CATALOG_ACCESS_MAINTENANCE);
	assert_int_equal(catalog_access_effective(false, true, false), CATALOG_ACCESS_MAINTENANCE);
	assert_int_equal(catalog_access_effective(true, true, true), CATALOG_ACCESS_FENCED);
	assert_int_equal(catalog_access_effective(true, false, false), CATALOG_ACCESS_FENCED);
}

static void test_pool_alert_fires_at_threshold_not_above(void **state)
{
	assert_true(catalog_pool_alert(1000, 100, 10));	 /* exactly 10% free */
	assert_false(catalog_pool_alert(1000, 101, 10)); /* just above */
	assert_true(catalog_pool_alert(1000, 0, 10));
	assert_false(catalog_pool_alert(1000, 0, 0)); /* 0 turns the alert off */
	assert_true(catalog_pool_alert(1000, 1000, 100));
	/* No overflow at box sizes: 16 EiB capacity. */
	assert_false(catalog_pool_alert(UINT64_MAX, UINT64_MAX / 2, 10));
	assert_true(catalog_pool_alert(UINT64_MAX, UINT64_MAX / 20, 10));
}

/* Pools. */

static void test_pool_add_refused_without_quorum(void **state)
{
	struct fx *f = *state;

	assert_int_equal(catalog_pool_add(f->cat, "p2", f->dir, CATALOG_POOL_FOLDER, 5, false, NULL,
					  f->err, sizeof(f->err)),
			 -EPERM);
	assert_int_equal(catalog_pool_list(f->cat, NULL, 0), 1);
}

static void test_pool_add_rejects_bad_folder_name_and_duplicate(void **state)
{
	struct fx *f = *state;

	assert_int_equal(catalog_pool_add(f->cat, "p2", "/nonexistent/x", CATALOG_POOL_FOLDER, 5,
					  true, NULL, f->err, sizeof(f->err)),
			 -ENOENT);
	assert_int_equal(catalog_pool_add(f->cat, "../x", f->dir, CATALOG_POOL_FOLDER, 5, true,
					  NULL, f->err, sizeof(f->err)),
			 -EINVAL);
	assert_int_equal(catalog_pool_add(f->cat, "p1", f->dir, CATALOG_POOL_FOLDER, 5, true, NULL,
					  f->err, sizeof(f->err)),
			 -EEXIST);
	assert_int_equal(catalog_pool_add(f->cat, "p3", f->dir, CATALOG_POOL_FOLDER, 101, true,
					  NULL, f->err, sizeof(f->err)),
			 -EINVAL);
	assert_int_equal(catalog_pool_list(f->cat, NULL, 0), 1);
}

static void test_pool_usage_counts_allocated_blocks_and_alert(void **state)
{
	struct fx *f = *state;
	struct catalog_pool_usage u;
	struct catalog_vdisk v = mk(f, "d", 64 * MiB);

	write_at(v.path, 0, 'x', 2 * MiB);
	assert_int_equal(catalog_pool_usage(f->cat, f->pool, &u, f->err, sizeof(f->err)), 0);
	assert_true(u.allocated >= 2 * MiB && u.allocated < 64 * MiB);
	assert_int_equal(u.provisioned, 64 * MiB);
	assert_int_equal(u.n_vdisks, 1);
	assert_true(u.capacity > 0 && u.free <= u.capacity);
	assert_int_equal(u.alert, catalog_pool_alert(u.capacity, u.free, 10));
	/* A threshold of 100% always fires: the stored threshold is what the usage uses. */
	assert_int_equal(catalog_pool_set_alert(f->cat, f->pool, 100, true, f->err, sizeof(f->err)),
			 0);
	assert_int_equal(catalog_pool_usage(f->cat, f->pool, &u, f->err, sizeof(f->err)), 0);
	assert_true(u.alert);
}

static void test_pool_space_is_usage_without_the_disk_walk(void **state)
{
	struct fx *f = *state;
	struct catalog_pool_usage sp, u;

	mk(f, "d", 64 * MiB);
	assert_int_equal(catalog_pool_set_alert(f->cat, f->pool, 100, true, f->err, sizeof(f->err)),
			 0);
	assert_int_equal(catalog_pool_space(f->cat, f->pool, &sp, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_pool_usage(f->cat, f->pool, &u, f->err, sizeof(f->err)), 0);
	assert_int_equal(sp.capacity, u.capacity);
	assert_true(sp.capacity > 0 && sp.free <= sp.capacity);
	assert_true(sp.alert); /* 100% always fires: the stored threshold is used */
	assert_int_equal(sp.n_vdisks, 0);
	assert_int_equal(sp.provisioned, 0);
	assert_int_equal(catalog_pool_space(f->cat, 999, &sp, f->err, sizeof(f->err)), -ENOENT);
}

static void test_pool_remove_refused_while_it_holds_disks(void **state)
{
	struct fx *f = *state;

	mk(f, "d", MiB);
	assert_int_equal(catalog_pool_remove(f->cat, f->pool, true, f->err, sizeof(f->err)),
			 -EBUSY);
}

/* Create. */

static void test_create_makes_sparse_file_and_ready_row(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", 1024 * MiB), g;
	struct stat sb;

	assert_int_equal(stat(v.path, &sb), 0);
	assert_int_equal(sb.st_size, 1024 * MiB);
	assert_int_equal(sb.st_blocks, 0);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &g), 0);
	assert_int_equal(g.state, CATALOG_VDISK_READY);
	assert_int_equal(g.epoch, 1);
	assert_int_equal(g.owner, CATALOG_NO_HOST);
	assert_int_equal(g.lun, 0);
	assert_string_equal(g.target_iqn, IQN);
	assert_int_equal(strlen(g.id), CATALOG_ID_LEN);
}

static void test_create_refuses_taken_name_and_bad_size(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk_spec s = {
		.pool_id = f->pool, .size = MiB, .name = "d", .target_iqn = IQN};

	mk(f, "d", MiB);
	assert_int_equal(catalog_vdisk_create(f->cat, &s, true, NULL, f->err, sizeof(f->err)),
			 -EEXIST);
	snprintf(s.name, sizeof(s.name), "e");
	s.size = 1000;
	assert_int_equal(catalog_vdisk_create(f->cat, &s, true, NULL, f->err, sizeof(f->err)),
			 -EINVAL);
	s.size = MiB;
	s.pool_id = 999;
	assert_int_equal(catalog_vdisk_create(f->cat, &s, true, NULL, f->err, sizeof(f->err)),
			 -ENOENT);
	assert_int_equal(count_files(f->pool_dir), 1);
}

static void test_create_without_quorum_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk_spec s = {
		.pool_id = f->pool, .size = MiB, .name = "d", .target_iqn = IQN};

	assert_int_equal(catalog_vdisk_create(f->cat, &s, false, NULL, f->err, sizeof(f->err)),
			 -EPERM);
	assert_non_null(strstr(f->err, "quorum"));
	assert_int_equal(catalog_vdisk_list(f->cat, 0, NULL, 0), 0);
	assert_int_equal(count_files(f->pool_dir), 0);
}

static void test_lun_numbers_unique_and_not_reused_after_delete(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk a = mk(f, "a", MiB), b = mk(f, "b", MiB), c;

	assert_int_equal(a.lun, 0);
	assert_int_equal(b.lun, 1);
	assert_int_equal(catalog_vdisk_delete(f->cat, a.id, 1, true, f->err, sizeof(f->err)), 0);
	c = mk(f, "c", MiB);
	assert_int_equal(c.lun, 2);
	/* The mark survives a restart. */
	reopen(f, NULL);
	assert_int_equal(mk(f, "d", MiB).lun, 3);
}

/* Extend. */

static void test_extend_grows_file_and_returns_new_size(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB), g;
	uint64_t ns = 0;
	struct stat sb;

	assert_int_equal(
		catalog_vdisk_extend(f->cat, v.id, 1, 8 * MiB, true, &ns, f->err, sizeof(f->err)),
		0);
	assert_int_equal(ns, 8 * MiB);
	assert_int_equal(stat(v.path, &sb), 0);
	assert_int_equal(sb.st_size, 8 * MiB);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &g), 0);
	assert_int_equal(g.size, 8 * MiB);
	assert_int_equal(g.epoch, 1); /* an extend does not change the owner's epoch */
}

static void test_extend_refuses_shrink(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", 8 * MiB);
	struct stat sb;

	assert_int_equal(
		catalog_vdisk_extend(f->cat, v.id, 1, MiB, true, NULL, f->err, sizeof(f->err)),
		-EINVAL);
	assert_non_null(strstr(f->err, "only grows"));
	assert_int_equal(stat(v.path, &sb), 0);
	assert_int_equal(sb.st_size, 8 * MiB);
}

static void test_extend_with_stale_epoch_is_refused_and_file_unchanged(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB);
	struct stat sb;

	assert_int_equal(
		catalog_vdisk_extend(f->cat, v.id, 7, 2 * MiB, true, NULL, f->err, sizeof(f->err)),
		-ESTALE);
	assert_non_null(strstr(f->err, "stale epoch"));
	assert_int_equal(stat(v.path, &sb), 0);
	assert_int_equal(sb.st_size, MiB);
}

/* Delete. */

static void test_delete_refused_while_attached(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB);

	assert_int_equal(catalog_vdisk_attach(f->cat, v.id, 1, 1, true, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_vdisk_delete(f->cat, v.id, 1, true, f->err, sizeof(f->err)),
			 -EBUSY);
	assert_non_null(strstr(f->err, "attached"));
	assert_int_equal(access(v.path, F_OK), 0);
}

static void test_delete_refused_while_owned(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB);

	assert_int_equal(
		catalog_vdisk_transfer(f->cat, v.id, 0, 2, 1, true, NULL, f->err, sizeof(f->err)),
		0);
	assert_int_equal(catalog_vdisk_delete(f->cat, v.id, 2, true, f->err, sizeof(f->err)),
			 -EBUSY);
	assert_non_null(strstr(f->err, "owned"));
}

static void test_delete_removes_row_and_file(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB), g;

	assert_int_equal(catalog_vdisk_delete(f->cat, v.id, 1, true, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &g), -ENOENT);
	assert_int_equal(access(v.path, F_OK), -1);
	assert_int_equal(catalog_vdisk_delete(f->cat, v.id, 1, true, f->err, sizeof(f->err)),
			 -ENOENT);
}

/* Ownership. */

static void test_transfer_moves_owner_and_bumps_epoch(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB), g;
	uint64_t e = 0;

	assert_int_equal(
		catalog_vdisk_transfer(f->cat, v.id, 0, 1, 1, true, &e, f->err, sizeof(f->err)), 0);
	assert_int_equal(e, 2);
	assert_int_equal(
		catalog_vdisk_transfer(f->cat, v.id, 1, 2, 2, true, &e, f->err, sizeof(f->err)), 0);
	assert_int_equal(e, 3);
	reopen(f, NULL);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &g), 0);
	assert_int_equal(g.owner, 2);
	assert_int_equal(g.epoch, 3);
}

static void test_transfer_with_stale_epoch_is_refused(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB), g;

	assert_int_equal(
		catalog_vdisk_transfer(f->cat, v.id, 0, 1, 1, true, NULL, f->err, sizeof(f->err)),
		0);
	/* The second caller still believes epoch 1. */
	assert_int_equal(
		catalog_vdisk_transfer(f->cat, v.id, 1, 2, 1, true, NULL, f->err, sizeof(f->err)),
		-ESTALE);
	assert_non_null(strstr(f->err, "epoch 2"));
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &g), 0);
	assert_int_equal(g.owner, 1);
	assert_int_equal(g.epoch, 2);
}

static void test_transfer_from_non_owner_is_refused(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB);

	assert_int_equal(
		catalog_vdisk_transfer(f->cat, v.id, 5, 1, 1, true, NULL, f->err, sizeof(f->err)),
		-EACCES);
}

static void test_transfer_without_quorum_is_refused(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB), g;

	assert_int_equal(
		catalog_vdisk_transfer(f->cat, v.id, 0, 1, 1, false, NULL, f->err, sizeof(f->err)),
		-EPERM);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &g), 0);
	assert_int_equal(g.owner, CATALOG_NO_HOST);
	assert_int_equal(g.epoch, 1);
}

/* Attachments and access. */

static void test_attach_is_idempotent_and_detach_of_stranger_fails(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB);
	uint32_t hosts[4];

	assert_int_equal(catalog_vdisk_attach(f->cat, v.id, 1, 1, true, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_vdisk_attach(f->cat, v.id, 1, 1, true, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_vdisk_attach(f->cat, v.id, 2, 1, true, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_vdisk_hosts(f->cat, v.id, hosts, 4), 2);
	assert_int_equal(hosts[0], 1);
	assert_int_equal(hosts[1], 2);
	assert_int_equal(catalog_vdisk_detach(f->cat, v.id, 3, 1, true, f->err, sizeof(f->err)),
			 -ENOENT);
	assert_int_equal(catalog_vdisk_detach(f->cat, v.id, 1, 1, true, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_vdisk_hosts(f->cat, v.id, hosts, 4), 1);
	assert_int_equal(catalog_vdisk_attach(f->cat, v.id, 1, 9, true, f->err, sizeof(f->err)),
			 -ESTALE);
}

static void test_access_state_follows_host_path_and_maintenance(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB);
	enum catalog_access a;

	assert_int_equal(catalog_access_get(f->cat, 1, v.id, &a), -ENOENT);
	assert_int_equal(catalog_vdisk_attach(f->cat, v.id, 1, 1, true, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_access_get(f->cat, 1, v.id, &a), 0);
	assert_int_equal(a, CATALOG_ACCESS_DIRECT);
	assert_int_equal(catalog_host_set_path(f->cat, 1, false, true, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_access_get(f->cat, 1, v.id, &a), 0);
	assert_int_equal(a, CATALOG_ACCESS_REDIRECTED);
	assert_int_equal(
		catalog_vdisk_set_maintenance(f->cat, v.id, 1, true, true, f->err, sizeof(f->err)),
		0);
	assert_int_equal(catalog_access_get(f->cat, 1, v.id, &a), 0);
	assert_int_equal(a, CATALOG_ACCESS_MAINTENANCE);
	assert_int_equal(catalog_host_set_path(f->cat, 1, true, true, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_access_get(f->cat, 1, v.id, &a), 0);
	assert_int_equal(a, CATALOG_ACCESS_FENCED);
	assert_int_equal(catalog_host_set_path(f->cat, 1, false, false, f->err, sizeof(f->err)), 0);
	assert_int_equal(
		catalog_vdisk_set_maintenance(f->cat, v.id, 1, false, true, f->err, sizeof(f->err)),
		0);
	assert_int_equal(catalog_access_get(f->cat, 1, v.id, &a), 0);
	assert_int_equal(a, CATALOG_ACCESS_DIRECT);
}

/* Group commit. */

static void test_batch_applies_each_request_alone(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB), g;
	struct catalog_req r[4];

	memset(r, 0, sizeof(r));
	r[0].op = CATALOG_OP_CREATE;
	r[0].quorate = true;
	r[0].spec = (struct catalog_vdisk_spec){
		.pool_id = f->pool, .size = MiB, .name = "n1", .target_iqn = IQN};
	r[1].op = CATALOG_OP_TRANSFER; /* stale: refused alone */
	r[1].quorate = true;
	snprintf(r[1].vdisk_id, sizeof(r[1].vdisk_id), "%s", v.id);
	r[1].expected_epoch = 5;
	r[1].new_owner = 1;
	r[2].op = CATALOG_OP_ATTACH;
	r[2].quorate = true;
	snprintf(r[2].vdisk_id, sizeof(r[2].vdisk_id), "%s", v.id);
	r[2].expected_epoch = 1;
	r[2].host_id = 4;
	r[3] = r[0];
	snprintf(r[3].spec.name, sizeof(r[3].spec.name), "d"); /* taken */
	assert_int_equal(catalog_commit(f->cat, r, 4), 0);
	assert_int_equal(r[0].rc, 0);
	assert_int_equal(r[0].vdisk.state, CATALOG_VDISK_READY);
	assert_int_equal(r[1].rc, -ESTALE);
	assert_int_equal(r[2].rc, 0);
	assert_int_equal(r[3].rc, -EEXIST);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &g), 0);
	assert_int_equal(g.epoch, 1);
	assert_int_equal(catalog_vdisk_hosts(f->cat, v.id, NULL, 0), 1);
	assert_int_equal(catalog_vdisk_list(f->cat, f->pool, NULL, 0), 2);
	assert_int_equal(count_files(f->pool_dir), 2);
}

/* Many creates in one batch: every file is made (in parallel) at its own size, sparse, before
 * the one commit that makes every row ready. */
static void test_batch_of_creates_makes_every_file_at_its_size(void **state)
{
	struct fx *f = *state;
	enum { N = 40 };
	struct catalog_req *r = calloc(N, sizeof(*r));
	struct catalog_vdisk g;
	struct stat sb;

	for (int i = 0; i < N; i++) {
		r[i].op = CATALOG_OP_CREATE;
		r[i].quorate = true;
		r[i].spec = (struct catalog_vdisk_spec){
			.pool_id = f->pool, .size = (uint64_t)(i + 1) * MiB, .target_iqn = IQN};
		snprintf(r[i].spec.name, sizeof(r[i].spec.name), "b%d", i);
	}
	snprintf(r[7].spec.name, sizeof(r[7].spec.name), "b6"); /* taken by r[6]: refused */
	assert_int_equal(catalog_commit(f->cat, r, N), 0);
	for (int i = 0; i < N; i++) {
		if (i == 7) {
			assert_int_equal(r[i].rc, -EEXIST);
			continue;
		}
		assert_int_equal(r[i].rc, 0);
		assert_int_equal(catalog_vdisk_get(f->cat, r[i].vdisk.id, &g), 0);
		assert_int_equal(g.state, CATALOG_VDISK_READY);
		assert_int_equal(stat(g.path, &sb), 0);
		assert_int_equal(sb.st_size, (off_t)((i + 1) * MiB));
		assert_int_equal(sb.st_blocks, 0);
	}
	assert_int_equal(count_files(f->pool_dir), N - 1);
	free(r);
}

/* A create whose file cannot be made is refused and leaves no row; the others of its batch
 * are not held back. */
static void test_create_whose_file_fails_leaves_no_row(void **state)
{
	struct fx *f = *state;
	struct catalog_pool_usage u;
	struct catalog_req r[2] = {0};
	char other[160];
	int64_t pool2;

	snprintf(other, sizeof(other), "%s/other", f->dir);
	assert_int_equal(mkdir(other, 0700), 0);
	assert_int_equal(catalog_pool_add(f->cat, "p2", other, CATALOG_POOL_FOLDER, 0, true, &pool2,
					  f->err, sizeof(f->err)),
			 0);
	assert_int_equal(rmdir(other), 0); /* the folder is gone: no file can be made in it */
	for (int i = 0; i < 2; i++) {
		r[i].op = CATALOG_OP_CREATE;
		r[i].quorate = true;
		r[i].spec = (struct catalog_vdisk_spec){
			.pool_id = i ? f->pool : pool2, .size = MiB, .target_iqn = IQN};
		snprintf(r[i].spec.name, sizeof(r[i].spec.name), "x");
	}
	assert_int_equal(catalog_commit(f->cat, r, 2), 0);
	assert_int_equal(r[0].rc, -ENOENT);
	assert_non_null(strstr(r[0].err, "create"));
	assert_int_equal(r[1].rc, 0);
	assert_int_equal(catalog_vdisk_list(f->cat, pool2, NULL, 0), 0);
	assert_int_equal(catalog_vdisk_list(f->cat, f->pool, NULL, 0), 1);
	assert_int_equal(count_files(f->pool_dir), 1);
	/* Once the folder is back, the name is free. */
	assert_int_equal(mkdir(other, 0700), 0);
	r[0].spec.pool_id = pool2;
	assert_int_equal(catalog_commit(f->cat, r, 1), 0);
	assert_int_equal(r[0].rc, 0);
	assert_int_equal(count_files(other), 1);
	assert_int_equal(catalog_pool_usage(f->cat, pool2, &u, f->err, sizeof(f->err)), 0);
	assert_int_equal(u.n_vdisks, 1);
}

/* Clone. */

struct prog {
	uint64_t last, total;
	unsigned calls;
	unsigned cancel_after;
};

static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct prog *p = ctx;

	assert_true(done >= p->last);
	p->last = done;
	p->total = total;
	p->calls++;
	return p->cancel_after && p->calls >= p->cancel_after;
}

static void test_clone_copies_data_with_progress(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", 64 * MiB), c;
	struct prog p = {0};
	char a[4096], b[4096];
	bool reflinked;
	int fa, fb;

	write_at(v.path, 5 * MiB, 'q', 20 * MiB);
	assert_int_equal(catalog_vdisk_clone(f->cat, v.id, 1, "c", "", true, on_progress, &p, &c,
					     &reflinked, f->err, sizeof(f->err)),
			 0);
	assert_int_equal(c.state, CATALOG_VDISK_READY);
	assert_int_equal(c.size, 64 * MiB);
	assert_int_equal(c.owner, CATALOG_NO_HOST);
	assert_int_equal(c.epoch, 1);
	assert_int_not_equal(c.lun, v.lun);
	assert_int_equal(p.last, 64 * MiB);
	assert_int_equal(p.total, 64 * MiB);
	assert_true(p.calls >= 2 || reflinked);
	fa = open(v.path, O_RDONLY);
	fb = open(c.path, O_RDONLY);
	for (off_t o = 0; o < (off_t)(64 * MiB); o += 3 * MiB) {
		assert_int_equal(pread(fa, a, sizeof(a), o), sizeof(a));
		assert_int_equal(pread(fb, b, sizeof(b), o), sizeof(b));
		assert_memory_equal(a, b, sizeof(a));
	}
	close(fa);
	close(fb);
}

static void test_clone_cancelled_leaves_no_row_or_file(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", 64 * MiB);
	struct prog p = {.cancel_after = 1};

	write_at(v.path, 0, 'q', 20 * MiB);
	assert_int_equal(catalog_vdisk_clone(f->cat, v.id, 1, "c", "", true, on_progress, &p, NULL,
					     NULL, f->err, sizeof(f->err)),
			 -ECANCELED);
	assert_int_equal(catalog_vdisk_list(f->cat, 0, NULL, 0), 1);
	assert_int_equal(count_files(f->pool_dir), 1);
}

static void test_clone_with_stale_epoch_is_refused(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB);

	assert_int_equal(catalog_vdisk_clone(f->cat, v.id, 2, "c", "", true, NULL, NULL, NULL, NULL,
					     f->err, sizeof(f->err)),
			 -ESTALE);
	assert_int_equal(count_files(f->pool_dir), 1);
}

/* The clone in three steps, as the coord plane runs it (the copy in a worker thread). */
static void test_clone_begin_commits_a_cloning_row_and_finish_makes_it_ready(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", 16 * MiB), src, c, g;
	bool reflinked;

	write_at(v.path, MiB, 'z', 2 * MiB);
	assert_int_equal(catalog_vdisk_clone_begin(f->cat, v.id, 1, "c", "", true, &src, &c, f->err,
						   sizeof(f->err)),
			 0);
	assert_string_equal(src.id, v.id);
	assert_int_equal(c.state, CATALOG_VDISK_CLONING);
	/* The intent is durable before any byte: a reopen now would roll it back. */
	assert_int_equal(catalog_vdisk_get(f->cat, c.id, &g), 0);
	assert_int_equal(g.state, CATALOG_VDISK_CLONING);
	/* Nothing may change a disk that is being cloned. */
	assert_int_equal(
		catalog_vdisk_extend(f->cat, c.id, 1, 32 * MiB, true, NULL, f->err, sizeof(f->err)),
		-EBUSY);
	assert_int_equal(catalog_clone_copy(src.path, c.path, c.size, NULL, NULL, &reflinked,
					    f->err, sizeof(f->err)),
			 0);
	assert_int_equal(catalog_vdisk_clone_finish(f->cat, c.id, &g, f->err, sizeof(f->err)), 0);
	assert_int_equal(g.state, CATALOG_VDISK_READY);
	/* Finishing twice is refused: the disk is no longer being cloned. */
	assert_int_equal(catalog_vdisk_clone_finish(f->cat, c.id, NULL, f->err, sizeof(f->err)),
			 -EINVAL);
	assert_int_equal(count_files(f->pool_dir), 2);
}

static void test_clone_copy_cancelled_removes_its_file_and_abort_removes_the_row(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", 64 * MiB), src, c, g;
	struct prog p = {.cancel_after = 1};

	write_at(v.path, 0, 'q', 20 * MiB);
	assert_int_equal(catalog_vdisk_clone_begin(f->cat, v.id, 1, "c", "", true, &src, &c, f->err,
						   sizeof(f->err)),
			 0);
	assert_int_equal(catalog_clone_copy(src.path, c.path, c.size, on_progress, &p, NULL, f->err,
					    sizeof(f->err)),
			 -ECANCELED);
	assert_int_equal(access(c.path, F_OK), -1);
	assert_int_equal(catalog_vdisk_clone_abort(f->cat, c.id, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_vdisk_get(f->cat, c.id, &g), -ENOENT);
	assert_int_equal(catalog_vdisk_list(f->cat, 0, NULL, 0), 1);
	assert_int_equal(count_files(f->pool_dir), 1);
	/* A ready disk is not a clone to abort. */
	assert_int_equal(catalog_vdisk_clone_abort(f->cat, v.id, f->err, sizeof(f->err)), -EINVAL);
	assert_int_equal(count_files(f->pool_dir), 1);
}

/* Reconciliation at open. */

static void test_reopen_rolls_back_creating_row_and_its_file(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB), g;
	struct catalog_reconcile rec;

	raw_sql(f, "UPDATE vdisks SET state = 'creating'");
	reopen(f, &rec);
	assert_int_equal(rec.creates_rolled_back, 1);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &g), -ENOENT);
	assert_int_equal(count_files(f->pool_dir), 0);
}

static void test_reopen_finishes_deleting_row(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB), g;
	struct catalog_reconcile rec;

	raw_sql(f, "UPDATE vdisks SET state = 'deleting'");
	reopen(f, &rec);
	assert_int_equal(rec.deletes_finished, 1);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &g), -ENOENT);
	assert_int_equal(access(v.path, F_OK), -1);
}

static void test_reopen_removes_empty_orphan_and_quarantines_one_with_data(void **state)
{
	struct fx *f = *state;
	char empty[PATH_MAX], full[PATH_MAX], other[PATH_MAX], q[PATH_MAX];
	struct catalog_reconcile rec;

	snprintf(empty, sizeof(empty), "%s/11111111-1111-4111-8111-111111111111.img", f->pool_dir);
	snprintf(full, sizeof(full), "%s/22222222-2222-4222-8222-222222222222.img", f->pool_dir);
	snprintf(other, sizeof(other), "%s/notes.txt", f->pool_dir);
	close(open(empty, O_CREAT | O_WRONLY, 0600));
	assert_int_equal(truncate(empty, MiB), 0);
	close(open(full, O_CREAT | O_WRONLY, 0600));
	write_at(full, 0, 'z', 4096);
	close(open(other, O_CREAT | O_WRONLY, 0600));
	reopen(f, &rec);
	assert_int_equal(rec.orphans_removed, 1);
	assert_int_equal(rec.orphans_quarantined, 1);
	assert_int_equal(access(empty, F_OK), -1);
	assert_int_equal(access(full, F_OK), -1);
	assert_int_equal(access(other, F_OK), 0); /* not named like a disk: not ours to judge */
	snprintf(q, sizeof(q), "%s/.quarantine", f->pool_dir);
	assert_int_equal(count_files(q), 1);
}

static void test_reopen_cuts_file_longer_than_row(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB);
	struct catalog_reconcile rec;
	struct stat sb;

	/* An extend that grew the file and crashed before its row committed. */
	assert_int_equal(truncate(v.path, 4 * MiB), 0);
	reopen(f, &rec);
	assert_int_equal(rec.sizes_fixed, 1);
	assert_int_equal(stat(v.path, &sb), 0);
	assert_int_equal(sb.st_size, MiB);
}

static void test_reopen_marks_ready_row_without_file_missing(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d", MiB), g;
	struct catalog_reconcile rec;

	assert_int_equal(unlink(v.path), 0);
	reopen(f, &rec);
	assert_int_equal(rec.missing, 1);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &g), 0);
	assert_int_equal(g.state, CATALOG_VDISK_MISSING);
	assert_int_equal(catalog_vdisk_attach(f->cat, v.id, 1, 1, true, f->err, sizeof(f->err)),
			 -EIO);
	/* The admin can still delete it. */
	assert_int_equal(catalog_vdisk_delete(f->cat, v.id, 1, true, f->err, sizeof(f->err)), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_open_sets_wal_and_newest_schema),
		T(test_second_writer_is_refused_busy),
		T(test_v1_database_is_migrated_with_its_rows),
		T(test_newer_schema_is_refused),
		cmocka_unit_test(test_access_fenced_beats_maintenance_beats_redirected),
		cmocka_unit_test(test_pool_alert_fires_at_threshold_not_above),
		T(test_pool_add_refused_without_quorum),
		T(test_pool_add_rejects_bad_folder_name_and_duplicate),
		T(test_pool_usage_counts_allocated_blocks_and_alert),
		T(test_pool_space_is_usage_without_the_disk_walk),
		T(test_pool_remove_refused_while_it_holds_disks),
		T(test_create_makes_sparse_file_and_ready_row),
		T(test_create_refuses_taken_name_and_bad_size),
		T(test_create_without_quorum_leaves_nothing),
		T(test_lun_numbers_unique_and_not_reused_after_delete),
		T(test_extend_grows_file_and_returns_new_size),
		T(test_extend_refuses_shrink),
		T(test_extend_with_stale_epoch_is_refused_and_file_unchanged),
		T(test_delete_refused_while_attached),
		T(test_delete_refused_while_owned),
		T(test_delete_removes_row_and_file),
		T(test_transfer_moves_owner_and_bumps_epoch),
		T(test_transfer_with_stale_epoch_is_refused),
		T(test_transfer_from_non_owner_is_refused),
		T(test_transfer_without_quorum_is_refused),
		T(test_attach_is_idempotent_and_detach_of_stranger_fails),
		T(test_access_state_follows_host_path_and_maintenance),
		T(test_batch_applies_each_request_alone),
		T(test_batch_of_creates_makes_every_file_at_its_size),
		T(test_create_whose_file_fails_leaves_no_row),
		T(test_clone_copies_data_with_progress),
		T(test_clone_cancelled_leaves_no_row_or_file),
		T(test_clone_with_stale_epoch_is_refused),
		T(test_clone_begin_commits_a_cloning_row_and_finish_makes_it_ready),
		T(test_clone_copy_cancelled_removes_its_file_and_abort_removes_the_row),
		T(test_reopen_rolls_back_creating_row_and_its_file),
		T(test_reopen_finishes_deleting_row),
		T(test_reopen_removes_empty_orphan_and_quarantines_one_with_data),
		T(test_reopen_cuts_file_longer_than_row),
		T(test_reopen_marks_ready_row_without_file_missing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
