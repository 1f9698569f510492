/* Tests for block-device pools: the pure decisions of csv-coord/pool_device.c (argument
 * checks, which devices may be taken, what a mount point holds, a pool's state at start), and
 * the catalog's rules for a block pool that is not mounted (nothing of it is marked missing,
 * removed or quarantined; its disks refuse changes; a new disk cannot be made in it). The
 * mounting itself needs root and a device: tests/integration/test_pool_block.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "csv-coord/catalog.h"
#include "csv-coord/pool_device.h"

#define IQN  "iqn.2024-01.org.holdfast:cluster"
#define UUID "0b7e5a43-3f0a-4c3e-9d6b-0a1b2c3d4e5f"

/* ---- pure ---- */

static void test_fs_parse_takes_only_ext4_and_xfs(void **state)
{
	enum pool_fs fs = POOL_FS_NONE;

	(void)state;
	assert_int_equal(pool_fs_parse("xfs", &fs), 0);
	assert_int_equal(fs, POOL_FS_XFS);
	assert_int_equal(pool_fs_parse("ext4", &fs), 0);
	assert_int_equal(fs, POOL_FS_EXT4);
	assert_int_equal(pool_fs_parse("XFS", &fs), -EINVAL);
	assert_int_equal(pool_fs_parse("btrfs", &fs), -EINVAL);
	assert_int_equal(pool_fs_parse("", &fs), -EINVAL);
	assert_int_equal(pool_fs_parse(NULL, &fs), -EINVAL);
	assert_string_equal(pool_fs_name(POOL_FS_XFS), "xfs");
	assert_string_equal(pool_fs_name(POOL_FS_NONE), "");
}

static void test_device_path_must_be_under_dev(void **state)
{
	char long_path[POOL_DEVICE_PATH_MAX + 8];

	(void)state;
	assert_true(pool_device_path_valid("/dev/sdb"));
	assert_true(pool_device_path_valid("/dev/loop0"));
	assert_true(pool_device_path_valid("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"));
	assert_true(pool_device_path_valid("/dev/mapper/vg0-pool"));
	assert_false(pool_device_path_valid(NULL));
	assert_false(pool_device_path_valid(""));
	assert_false(pool_device_path_valid("/dev/"));
	assert_false(pool_device_path_valid("sdb"));
	assert_false(pool_device_path_valid("/tmp/disk.img"));
	assert_false(pool_device_path_valid("/dev/../etc/passwd"));
	assert_false(pool_device_path_valid("/dev/sdb/.."));
	assert_false(pool_device_path_valid("/dev//sdb"));
	assert_false(pool_device_path_valid("/dev/sdb/"));
	assert_false(pool_device_path_valid("/dev/sd\nb"));
	memset(long_path, 'a', sizeof(long_path) - 1);
	memcpy(long_path, "/dev/", 5);
	long_path[sizeof(long_path) - 1] = '\0';
	assert_false(pool_device_path_valid(long_path));
}

static void test_admit_refuses_a_mounted_device_even_with_format(void **state)
{
	struct pool_device_probe p = {.is_block = true, .mounted = true, .in_use = true};
	char err[256];

	(void)state;
	snprintf(p.mounted_at, sizeof(p.mounted_at), "/srv/data");
	assert_int_equal(pool_device_admit("/dev/sdb", &p, POOL_FS_XFS, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "mounted at /srv/data"));
}

static void test_admit_refuses_a_device_in_use_even_with_format(void **state)
{
	struct pool_device_probe p = {.is_block = true, .in_use = true};
	char err[256];

	(void)state;
	assert_int_equal(pool_device_admit("/dev/sdb", &p, POOL_FS_EXT4, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "in use"));
}

static void test_admit_refuses_data_without_format(void **state)
{
	struct pool_device_probe p = {.is_block = true, .has_signature = true};
	char err[256];

	(void)state;
	snprintf(p.sig_kind, sizeof(p.sig_kind), "file system");
	snprintf(p.sig_type, sizeof(p.sig_type), "ext4");
	assert_int_equal(pool_device_admit("/dev/sdb", &p, POOL_FS_NONE, err, sizeof(err)),
			 -EEXIST);
	assert_non_null(strstr(err, "file system (ext4)"));
	assert_non_null(strstr(err, "--format"));
	/* A partition table is data too. */
	snprintf(p.sig_kind, sizeof(p.sig_kind), "partition table");
	snprintf(p.sig_type, sizeof(p.sig_type), "gpt");
	assert_int_equal(pool_device_admit("/dev/sdb", &p, POOL_FS_NONE, err, sizeof(err)),
			 -EEXIST);
	assert_non_null(strstr(err, "partition table (gpt)"));
}

static void test_admit_takes_data_with_an_explicit_format(void **state)
{
	struct pool_device_probe p = {.is_block = true, .has_signature = true};
	char err[256] = "";

	(void)state;
	assert_int_equal(pool_device_admit("/dev/sdb", &p, POOL_FS_XFS, err, sizeof(err)), 0);
}

static void test_admit_needs_a_format_for_an_empty_device(void **state)
{
	struct pool_device_probe p = {.is_block = true};
	char err[256];

	(void)state;
	assert_int_equal(pool_device_admit("/dev/sdb", &p, POOL_FS_NONE, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(pool_device_admit("/dev/sdb", &p, POOL_FS_EXT4, err, sizeof(err)), 0);
}

static void test_admit_refuses_what_is_not_a_block_device(void **state)
{
	struct pool_device_probe p = {.is_block = false};
	char err[256];

	(void)state;
	assert_int_equal(pool_device_admit("/dev/null", &p, POOL_FS_XFS, err, sizeof(err)),
			 -ENOTBLK);
}

static void test_mount_decide(void **state)
{
	dev_t root = makedev(8, 1), ours = makedev(7, 3), other = makedev(7, 4);

	(void)state;
	assert_int_equal(pool_mount_decide(root, root, ours), POOL_MOUNT_NONE);
	assert_int_equal(pool_mount_decide(ours, root, ours), POOL_MOUNT_OURS);
	assert_int_equal(pool_mount_decide(other, root, ours), POOL_MOUNT_OTHER);
	/* The device is unknown (missing): a mount there is nobody's we know. */
	assert_int_equal(pool_mount_decide(ours, root, 0), POOL_MOUNT_OTHER);
	assert_int_equal(pool_mount_decide(root, root, 0), POOL_MOUNT_NONE);
}

static void test_state_decide(void **state)
{
	(void)state;
	assert_int_equal(pool_state_decide(0, 0), POOL_STATE_ONLINE);
	assert_int_equal(pool_state_decide(-ENODEV, 0), POOL_STATE_MISSING);
	/* A missing device was never mounted: the mount's outcome does not matter. */
	assert_int_equal(pool_state_decide(-ENODEV, -EIO), POOL_STATE_MISSING);
	assert_int_equal(pool_state_decide(0, -EIO), POOL_STATE_UNAVAILABLE);
	assert_int_equal(pool_state_decide(0, -EBUSY), POOL_STATE_UNAVAILABLE);
	assert_int_equal(pool_state_decide(-EIO, 0), POOL_STATE_UNAVAILABLE);
	assert_string_equal(pool_state_name(POOL_STATE_MISSING), "missing");
	assert_string_equal(pool_state_name(POOL_STATE_ONLINE), "online");
}

static void test_probe_of_a_missing_device_says_not_found(void **state)
{
	struct pool_device_probe p;
	char err[256];

	(void)state;
	assert_int_equal(pool_device_probe("/dev/holdfast-no-such-device", &p, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "not found"));
}

static void test_probe_of_a_character_device_is_not_block(void **state)
{
	struct pool_device_probe p;
	char err[256];

	(void)state;
	assert_int_equal(pool_device_probe("/dev/null", &p, err, sizeof(err)), 0);
	assert_false(p.is_block);
	assert_int_equal(pool_device_admit("/dev/null", &p, POOL_FS_XFS, err, sizeof(err)),
			 -ENOTBLK);
}

/* ---- the catalog with a block pool that is not mounted ---- */

struct fx {
	char dir[64];
	char mnt[96];
	struct catalog *cat;
	int64_t pool;
	char err[CATALOG_ERR_MAX];
};

static bool attach_yes(void *arg, const struct catalog_pool *p)
{
	(void)p;
	(*(int *)arg)++;
	return true;
}

static bool attach_no(void *arg, const struct catalog_pool *p)
{
	(void)p;
	(*(int *)arg)++;
	return false;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	int calls = 0;

	strcpy(f->dir, "/tmp/hf-pooldev-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	/* A folder stands in for the mount point: the catalog does not mount, it is told. */
	snprintf(f->mnt, sizeof(f->mnt), "%s/pools", f->dir);
	assert_int_equal(mkdir(f->mnt, 0700), 0);
	snprintf(f->mnt, sizeof(f->mnt), "%s/pools/b1", f->dir);
	assert_int_equal(mkdir(f->mnt, 0700), 0);
	assert_int_equal(catalog_open_with(&f->cat, f->dir, attach_yes, &calls, NULL, f->err,
					   sizeof(f->err)),
			 0);
	assert_int_equal(calls, 0); /* no block pool yet */
	assert_int_equal(catalog_pool_add_block(f->cat, "b1", f->mnt, "/dev/loop9", UUID, "xfs", 10,
						true, &f->pool, f->err, sizeof(f->err)),
			 0);
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

static struct catalog_vdisk mk(struct fx *f, const char *name)
{
	struct catalog_vdisk_spec s = {.pool_id = f->pool, .size = 1024 * 1024};
	struct catalog_vdisk v;

	snprintf(s.name, sizeof(s.name), "%s", name);
	snprintf(s.target_iqn, sizeof(s.target_iqn), IQN);
	assert_int_equal(catalog_vdisk_create(f->cat, &s, true, &v, f->err, sizeof(f->err)), 0);
	return v;
}

static void reopen(struct fx *f, catalog_pool_attach_fn attach, int *calls,
		   struct catalog_reconcile *rec)
{
	catalog_close(f->cat);
	f->cat = NULL;
	assert_int_equal(
		catalog_open_with(&f->cat, f->dir, attach, calls, rec, f->err, sizeof(f->err)), 0);
}

static void test_block_pool_row_keeps_device_uuid_and_type(void **state)
{
	struct fx *f = *state;
	struct catalog_pool p;

	assert_int_equal(catalog_pool_get(f->cat, f->pool, &p), 0);
	assert_int_equal(p.kind, CATALOG_POOL_BLOCK);
	assert_string_equal(p.device, "/dev/loop9");
	assert_string_equal(p.fs_uuid, UUID);
	assert_string_equal(p.fs_type, "xfs");
	assert_true(p.online);
}

static void test_a_file_system_is_one_pool_only(void **state)
{
	struct fx *f = *state;
	char other[128];

	snprintf(other, sizeof(other), "%s/pools", f->dir);
	assert_int_equal(catalog_pool_add_block(f->cat, "b2", other, "/dev/loop8", UUID, "xfs", 0,
						true, NULL, f->err, sizeof(f->err)),
			 -EEXIST);
}

static void test_block_pool_needs_uuid_and_quorum(void **state)
{
	struct fx *f = *state;
	char other[128];

	snprintf(other, sizeof(other), "%s/pools", f->dir);
	assert_int_equal(catalog_pool_add_block(f->cat, "b2", other, "/dev/loop8", "", "xfs", 0,
						true, NULL, f->err, sizeof(f->err)),
			 -EINVAL);
	assert_int_equal(catalog_pool_add_block(f->cat, "b2", other, "/dev/loop8",
						"11111111-2222-3333-4444-555555555555", "xfs", 0,
						false, NULL, f->err, sizeof(f->err)),
			 -EPERM);
	/* The old entry point still refuses the block kind: it has no UUID to give. */
	assert_int_equal(catalog_pool_add(f->cat, "b3", other, CATALOG_POOL_BLOCK, 0, true, NULL,
					  f->err, sizeof(f->err)),
			 -EINVAL);
}

static void test_offline_pool_disks_are_not_marked_missing(void **state)
{
	struct fx *f = *state;
	struct catalog_reconcile rec;
	struct catalog_vdisk v = mk(f, "d1"), got;
	struct catalog_pool p;
	char orphan[PATH_MAX];
	int calls = 0, fd;

	/* A file with data and no row: an online pool would quarantine it. */
	snprintf(orphan, sizeof(orphan), "%s/0b7e5a43-3f0a-4c3e-9d6b-0a1b2c3d4e5f.img", f->mnt);
	fd = open(orphan, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "data", 4), 4);
	close(fd);
	/* The device is gone: its folder is what an unmounted mount point is, empty of disks. */
	assert_int_equal(rename(v.path, "/tmp/hf-pooldev-aside.img"), 0);
	rename(orphan, "/tmp/hf-pooldev-orphan.img");

	reopen(f, attach_no, &calls, &rec);
	assert_int_equal(calls, 1);
	assert_int_equal(rec.missing, 0);
	assert_int_equal(rec.pools_offline, 1);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &got), 0);
	assert_int_equal(got.state, CATALOG_VDISK_READY);
	assert_int_equal(catalog_pool_get(f->cat, f->pool, &p), 0);
	assert_false(p.online);

	/* The device is back: the disk is served, the orphan judged as usual. */
	assert_int_equal(rename("/tmp/hf-pooldev-aside.img", v.path), 0);
	assert_int_equal(rename("/tmp/hf-pooldev-orphan.img", orphan), 0);
	calls = 0;
	reopen(f, attach_yes, &calls, &rec);
	assert_int_equal(calls, 1);
	assert_int_equal(rec.missing, 0);
	assert_int_equal(rec.orphans_quarantined, 1);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &got), 0);
	assert_int_equal(got.state, CATALOG_VDISK_READY);
	assert_int_equal(catalog_pool_get(f->cat, f->pool, &p), 0);
	assert_true(p.online);
}

static void test_offline_pool_disks_refuse_changes(void **state)
{
	struct fx *f = *state;
	struct catalog_reconcile rec;
	struct catalog_vdisk v = mk(f, "d1"), got;
	struct catalog_req r;
	int calls = 0;

	reopen(f, attach_no, &calls, &rec);
	memset(&r, 0, sizeof(r));
	r.op = CATALOG_OP_DELETE;
	snprintf(r.vdisk_id, sizeof(r.vdisk_id), "%s", v.id);
	r.expected_epoch = 1;
	r.quorate = true;
	/* While offline, the disk refuses every change. */
	assert_int_equal(catalog_commit(f->cat, &r, 1), 0);
	assert_int_equal(r.rc, -ENODEV);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &got), 0);
	assert_int_equal(got.state, CATALOG_VDISK_READY);
	assert_int_equal(access(v.path, F_OK), 0);
}

static void test_offline_pool_keeps_unfinished_deletes_for_later(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d1"), got;
	struct catalog_reconcile rec;
	char path[PATH_MAX];
	sqlite3 *db;
	int calls = 0;

	/* A delete acknowledged but not finished, as a crash leaves it. */
	catalog_close(f->cat);
	f->cat = NULL;
	snprintf(path, sizeof(path), "%s/catalog.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE vdisks SET state = 'deleting'", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(
		catalog_open_with(&f->cat, f->dir, attach_no, &calls, &rec, f->err, sizeof(f->err)),
		0);
	assert_int_equal(rec.deletes_finished, 0);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &got), 0);
	assert_int_equal(got.state, CATALOG_VDISK_DELETING);
	/* Once the pool is mounted again the delete is finished. */
	reopen(f, attach_yes, &calls, &rec);
	assert_int_equal(rec.deletes_finished, 1);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &got), -ENOENT);
	assert_int_equal(access(v.path, F_OK), -1);
}

static void test_offline_pool_refuses_new_disks_and_usage(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk_spec s = {.pool_id = f->pool, .size = 1024 * 1024};
	struct catalog_pool_usage u;
	struct catalog_vdisk v;
	int calls = 0;

	reopen(f, attach_no, &calls, NULL);
	snprintf(s.name, sizeof(s.name), "d2");
	snprintf(s.target_iqn, sizeof(s.target_iqn), IQN);
	assert_int_equal(catalog_vdisk_create(f->cat, &s, true, &v, f->err, sizeof(f->err)),
			 -ENODEV);
	assert_non_null(strstr(f->err, "offline"));
	assert_int_equal(catalog_pool_space(f->cat, f->pool, &u, f->err, sizeof(f->err)), -ENODEV);
	assert_int_equal(catalog_pool_usage(f->cat, f->pool, &u, f->err, sizeof(f->err)), -ENODEV);
}

static void test_catalog_open_without_attach_leaves_block_pools_offline(void **state)
{
	struct fx *f = *state;
	struct catalog_vdisk v = mk(f, "d1"), got;
	struct catalog_reconcile rec;
	struct catalog_pool p;

	assert_int_equal(unlink(v.path), 0);
	catalog_close(f->cat);
	f->cat = NULL;
	assert_int_equal(catalog_open(&f->cat, f->dir, &rec, f->err, sizeof(f->err)), 0);
	assert_int_equal(rec.missing, 0);
	assert_int_equal(catalog_vdisk_get(f->cat, v.id, &got), 0);
	assert_int_equal(got.state, CATALOG_VDISK_READY);
	assert_int_equal(catalog_pool_get(f->cat, f->pool, &p), 0);
	assert_false(p.online);
}

static void test_removing_an_offline_pool_forgets_it(void **state)
{
	struct fx *f = *state;
	struct catalog_pool p;
	int calls = 0;

	reopen(f, attach_no, &calls, NULL);
	assert_int_equal(catalog_pool_remove(f->cat, f->pool, true, f->err, sizeof(f->err)), 0);
	assert_int_equal(catalog_pool_get(f->cat, f->pool, &p), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fs_parse_takes_only_ext4_and_xfs),
		cmocka_unit_test(test_device_path_must_be_under_dev),
		cmocka_unit_test(test_admit_refuses_a_mounted_device_even_with_format),
		cmocka_unit_test(test_admit_refuses_a_device_in_use_even_with_format),
		cmocka_unit_test(test_admit_refuses_data_without_format),
		cmocka_unit_test(test_admit_takes_data_with_an_explicit_format),
		cmocka_unit_test(test_admit_needs_a_format_for_an_empty_device),
		cmocka_unit_test(test_admit_refuses_what_is_not_a_block_device),
		cmocka_unit_test(test_mount_decide),
		cmocka_unit_test(test_state_decide),
		cmocka_unit_test(test_probe_of_a_missing_device_says_not_found),
		cmocka_unit_test(test_probe_of_a_character_device_is_not_block),
		cmocka_unit_test_setup_teardown(test_block_pool_row_keeps_device_uuid_and_type,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_file_system_is_one_pool_only, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_block_pool_needs_uuid_and_quorum, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_offline_pool_disks_are_not_marked_missing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_offline_pool_disks_refuse_changes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_offline_pool_keeps_unfinished_deletes_for_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offline_pool_refuses_new_disks_and_usage,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_catalog_open_without_attach_leaves_block_pools_offline, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_removing_an_offline_pool_forgets_it, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
