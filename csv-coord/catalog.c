/* The shared-volume catalog: opening and reconciling the store, pools, lookups, the access-state
 * rules. The requests that change virtual disks and their group commit are in
 * csv-coord/catalog_vdisk.c; the schema is in csv-coord/catalog_schema.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "csv-coord/catalog_int.h"
#include "lib/log.h"

#define QUARANTINE_DIR ".quarantine"

int catalog_errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int catalog_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc;

	rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		return 0;
	catalog_errf(err, errlen, -EIO, "catalog: %s", msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return -EIO;
}

int64_t catalog_now(void)
{
	return (int64_t)time(NULL);
}

int catalog_fsync_dir(const char *dir)
{
	int fd, rc = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int catalog_fsync_parent(const char *path)
{
	char dir[CATALOG_PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		return catalog_fsync_dir(".");
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return catalog_fsync_dir(dir);
}

/* Pure rules. */

enum catalog_access catalog_access_effective(bool host_fenced, bool vdisk_maintenance,
					     bool nonpreferred_only)
{
	/* A fenced host may do no I/O at all, which is stronger than any pause; maintenance
	 * pauses writes whatever the path; redirection only says how the I/O travels. */
	if (host_fenced)
		return CATALOG_ACCESS_FENCED;
	if (vdisk_maintenance)
		return CATALOG_ACCESS_MAINTENANCE;
	if (nonpreferred_only)
		return CATALOG_ACCESS_REDIRECTED;
	return CATALOG_ACCESS_DIRECT;
}

bool catalog_pool_alert(uint64_t capacity, uint64_t free, unsigned threshold_pct)
{
	if (threshold_pct == 0)
		return false;
	if (threshold_pct >= 100)
		return true;
	/* In 128 bits, so that no capacity a box can have overflows the product. */
	return (unsigned __int128)free * 100 <= (unsigned __int128)threshold_pct * capacity;
}

const char *catalog_access_name(enum catalog_access a)
{
	switch (a) {
	case CATALOG_ACCESS_DIRECT:
		return "direct";
	case CATALOG_ACCESS_REDIRECTED:
		return "redirected";
	case CATALOG_ACCESS_FENCED:
		return "fenced";
	case CATALOG_ACCESS_MAINTENANCE:
		return "maintenance";
	default:
		return NULL;
	}
}

int catalog_access_parse(const char *s, enum catalog_access *out)
{
	static const enum catalog_access all[] = {CATALOG_ACCESS_DIRECT, CATALOG_ACCESS_REDIRECTED,
						  CATALOG_ACCESS_FENCED,
						  CATALOG_ACCESS_MAINTENANCE};

	for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++) {
		if (!strcmp(s, catalog_access_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	}
	return -EINVAL;
}

const char *catalog_vdisk_state_name(enum catalog_vdisk_state s)
{
	switch (s) {
	case CATALOG_VDISK_CREATING:
		return "creating";
	case CATALOG_VDISK_READY:
		return "ready";
	case CATALOG_VDISK_DELETING:
		return "deleting";
	case CATALOG_VDISK_CLONING:
		return "cloning";
	case CATALOG_VDISK_MISSING:
		return "missing";
	default:
		return NULL;
	}
}

static int state_parse(const char *s, enum catalog_vdisk_state *out)
{
	for (int i = CATALOG_VDISK_CREATING; s && i <= CATALOG_VDISK_MISSING; i++) {
		if (!strcmp(s, catalog_vdisk_state_name(i))) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

static void copy_col(char *dst, size_t len, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, len, "%s", t ? (const char *)t : "");
}

/* Rows. */

int catalog_vdisk_from_row(sqlite3_stmt *st, struct catalog_vdisk *v)
{
	memset(v, 0, sizeof(*v));
	copy_col(v->id, sizeof(v->id), st, 0);
	copy_col(v->name, sizeof(v->name), st, 1);
	v->pool_id = sqlite3_column_int64(st, 2);
	v->size = (uint64_t)sqlite3_column_int64(st, 3);
	copy_col(v->path, sizeof(v->path), st, 4);
	copy_col(v->target_iqn, sizeof(v->target_iqn), st, 5);
	v->lun = (uint32_t)sqlite3_column_int(st, 6);
	v->owner = sqlite3_column_type(st, 7) == SQLITE_NULL
			   ? CATALOG_NO_HOST
			   : (uint32_t)sqlite3_column_int64(st, 7);
	v->epoch = (uint64_t)sqlite3_column_int64(st, 8);
	if (state_parse((const char *)sqlite3_column_text(st, 9), &v->state) < 0)
		return -EIO;
	v->maintenance = sqlite3_column_int(st, 10) != 0;
	copy_col(v->vm, sizeof(v->vm), st, 11);
	v->created = sqlite3_column_int64(st, 12);
	v->updated = sqlite3_column_int64(st, 13);
	return 0;
}

/* One disk row from a kept statement whose parameters are bound; the statement is given back. */
static int vdisk_row(sqlite3_stmt *st, struct catalog_vdisk *out)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		rc = catalog_vdisk_from_row(st, out);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : -EIO;
	catalog_stmt_done(st);
	return rc;
}

int catalog_vdisk_get_on(struct catalog *cat, sqlite3 *db, const char *id,
			 struct catalog_vdisk *out)
{
	sqlite3_stmt *st;

	if (!id)
		return -EINVAL;
	st = catalog_stmt(cat, db, CATALOG_SQL_VDISK_GET);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	return vdisk_row(st, out);
}

int catalog_vdisk_get(struct catalog *cat, const char *id, struct catalog_vdisk *out)
{
	return catalog_vdisk_get_on(cat, cat->rdb, id, out);
}

int catalog_vdisk_by_name_on(struct catalog *cat, sqlite3 *db, int64_t pool_id, const char *name,
			     struct catalog_vdisk *out)
{
	sqlite3_stmt *st;

	if (!name)
		return -EINVAL;
	st = catalog_stmt(cat, db, CATALOG_SQL_VDISK_BY_NAME);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, pool_id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	return vdisk_row(st, out);
}

int catalog_vdisk_by_name(struct catalog *cat, int64_t pool_id, const char *name,
			  struct catalog_vdisk *out)
{
	return catalog_vdisk_by_name_on(cat, cat->rdb, pool_id, name, out);
}

static int vdisk_list_on(sqlite3 *db, int64_t pool_id, struct catalog_vdisk *out, size_t max)
{
	sqlite3_stmt *st;
	int rc, n = 0;

	if (sqlite3_prepare_v2(db,
			       "SELECT " CATALOG_VDISK_COLS
			       " FROM vdisks WHERE ?1 = 0 OR pool_id = ?1 ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, pool_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((size_t)n < max && catalog_vdisk_from_row(st, &out[n]) < 0) {
			n = -EIO;
			break;
		}
		n++;
	}
	if (n >= 0 && rc != SQLITE_DONE)
		n = -EIO;
	sqlite3_finalize(st);
	return n;
}

int catalog_vdisk_list(struct catalog *cat, int64_t pool_id, struct catalog_vdisk *out, size_t max)
{
	return vdisk_list_on(cat->rdb, pool_id, out, max);
}

int catalog_vdisk_hosts_on(struct catalog *cat, sqlite3 *db, const char *vdisk_id, uint32_t *hosts,
			   size_t max)
{
	sqlite3_stmt *st = catalog_stmt(cat, db, CATALOG_SQL_VDISK_HOSTS);
	int rc, n = 0;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, vdisk_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((size_t)n < max)
			hosts[n] = (uint32_t)sqlite3_column_int64(st, 0);
		n++;
	}
	if (rc != SQLITE_DONE)
		n = -EIO;
	catalog_stmt_done(st);
	return n;
}

int catalog_vdisk_hosts(struct catalog *cat, const char *vdisk_id, uint32_t *hosts, size_t max)
{
	return catalog_vdisk_hosts_on(cat, cat->rdb, vdisk_id, hosts, max);
}

int catalog_access_get(struct catalog *cat, uint32_t host_id, const char *vdisk_id,
		       enum catalog_access *out)
{
	sqlite3_stmt *st = catalog_stmt(cat, cat->rdb, CATALOG_SQL_ACCESS_GET);
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, host_id);
	sqlite3_bind_text(st, 2, vdisk_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = catalog_access_parse((const char *)sqlite3_column_text(st, 0), out) < 0 ? -EIO
											     : 0;
	else
		rc = rc == SQLITE_DONE ? -ENOENT : -EIO;
	catalog_stmt_done(st);
	return rc;
}

/* Pools. */

bool catalog_pool_offline(const struct catalog *cat, int64_t id)
{
	for (unsigned i = 0; i < cat->noffline; i++)
		if (cat->offline[i] == id)
			return true;
	return false;
}

void catalog_pool_set_online(struct catalog *cat, int64_t id, bool online)
{
	unsigned i;

	for (i = 0; i < cat->noffline && cat->offline[i] != id; i++)
		;
	if (online && i < cat->noffline)
		cat->offline[i] = cat->offline[--cat->noffline];
	else if (!online && i == cat->noffline && cat->noffline < CATALOG_POOLS_MAX)
		cat->offline[cat->noffline++] = id;
}

static int pool_from_row(const struct catalog *cat, sqlite3_stmt *st, struct catalog_pool *p)
{
	const char *kind = (const char *)sqlite3_column_text(st, 3);

	memset(p, 0, sizeof(*p));
	p->id = sqlite3_column_int64(st, 0);
	copy_col(p->name, sizeof(p->name), st, 1);
	copy_col(p->path, sizeof(p->path), st, 2);
	if (kind && !strcmp(kind, "folder"))
		p->kind = CATALOG_POOL_FOLDER;
	else if (kind && !strcmp(kind, "block"))
		p->kind = CATALOG_POOL_BLOCK;
	else
		return -EIO;
	p->alert_pct = (unsigned)sqlite3_column_int(st, 4);
	copy_col(p->device, sizeof(p->device), st, 5);
	copy_col(p->fs_uuid, sizeof(p->fs_uuid), st, 6);
	copy_col(p->fs_type, sizeof(p->fs_type), st, 7);
	p->online = !catalog_pool_offline(cat, p->id);
	return 0;
}

static int pool_row(const struct catalog *cat, sqlite3_stmt *st, struct catalog_pool *out)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		rc = pool_from_row(cat, st, out);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : -EIO;
	catalog_stmt_done(st);
	return rc;
}

int catalog_pool_get_on(struct catalog *cat, sqlite3 *db, int64_t id, struct catalog_pool *out)
{
	sqlite3_stmt *st = catalog_stmt(cat, db, CATALOG_SQL_POOL_BY_ID);

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	return pool_row(cat, st, out);
}

int catalog_pool_get(struct catalog *cat, int64_t id, struct catalog_pool *out)
{
	return catalog_pool_get_on(cat, cat->rdb, id, out);
}

int catalog_pool_by_name(struct catalog *cat, const char *name, struct catalog_pool *out)
{
	sqlite3_stmt *st;

	if (!name)
		return -EINVAL;
	st = catalog_stmt(cat, cat->rdb, CATALOG_SQL_POOL_BY_NAME);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return pool_row(cat, st, out);
}

int catalog_pool_list(struct catalog *cat, struct catalog_pool *out, size_t max)
{
	sqlite3_stmt *st;
	int rc, n = 0;

	st = catalog_stmt(cat, cat->rdb, CATALOG_SQL_POOL_LIST);
	if (!st)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((size_t)n < max && pool_from_row(cat, st, &out[n]) < 0) {
			n = -EIO;
			break;
		}
		n++;
	}
	if (n >= 0 && rc != SQLITE_DONE)
		n = -EIO;
	catalog_stmt_done(st);
	return n;
}

bool catalog_name_valid(const char *name)
{
	size_t n = name ? strnlen(name, CATALOG_NAME_MAX + 1) : 0;

	/* Names reach shell scripts, JSON and the web UI: keep them to a plain alphabet. */
	if (n == 0 || n > CATALOG_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int catalog_txn_begin(struct catalog *cat, char *err, size_t errlen)
{
	if (cat->broken)
		return catalog_errf(err, errlen, -EIO,
				    "the catalog store failed earlier; it must be reopened");
	if (catalog_stmt_run(cat, cat->db, CATALOG_SQL_BEGIN) < 0)
		return catalog_errf(err, errlen, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	return 0;
}

int catalog_txn_commit(struct catalog *cat, char *err, size_t errlen)
{
	if (catalog_stmt_run(cat, cat->db, CATALOG_SQL_COMMIT) == 0)
		return 0;
	catalog_errf(err, errlen, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	/* Whether the commit reached the disk is unknown; the rows in memory may not be what a
	 * restart will see. Stop here and let a reopen reconcile. */
	log_warnx("%s: %s", __func__, sqlite3_errmsg(cat->db));
	catalog_stmt_run(cat, cat->db, CATALOG_SQL_ROLLBACK);
	cat->broken = true;
	return -EIO;
}

void catalog_txn_rollback(struct catalog *cat)
{
	if (catalog_stmt_run(cat, cat->db, CATALOG_SQL_ROLLBACK) < 0)
		cat->broken = true;
}

/* The row of a new pool, after its own checks: the ones every kind shares, and the insert. */
static int pool_insert(struct catalog *cat, const char *name, const char *kind, const char *path,
		       const char *device, const char *fs_uuid, const char *fs_type,
		       unsigned alert_pct, bool quorate, int64_t *id, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc, n;

	if (!quorate)
		return catalog_errf(err, errlen, -EPERM,
				    "no quorum: pools change only with quorum");
	if (!catalog_name_valid(name))
		return catalog_errf(err, errlen, -EINVAL,
				    "a pool name is 1 to %d characters of A-Z a-z 0-9 . _ -",
				    CATALOG_NAME_MAX);
	if (alert_pct > 100)
		return catalog_errf(err, errlen, -EINVAL,
				    "the alert threshold is a percent (0-100)");
	if (strlen(path) + 1 + CATALOG_ID_LEN + 4 >= CATALOG_PATH_MAX)
		return catalog_errf(err, errlen, -ENAMETOOLONG, "pool path %s is too long", path);

	rc = catalog_txn_begin(cat, err, errlen);
	if (rc < 0)
		return rc;
	n = catalog_pool_list(cat, NULL, 0);
	if (n >= CATALOG_POOLS_MAX) {
		rc = catalog_errf(err, errlen, -ENOSPC, "a box has at most %d pools",
				  CATALOG_POOLS_MAX);
		goto err_rollback;
	}
	if (sqlite3_prepare_v2(cat->db,
			       "INSERT INTO pools (name, kind, path, alert_pct, created, device,"
			       " fs_uuid, fs_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = catalog_errf(err, errlen, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
		goto err_rollback;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, path, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, (int)alert_pct);
	sqlite3_bind_int64(st, 5, catalog_now());
	sqlite3_bind_text(st, 6, device, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, fs_uuid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, fs_type, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT) {
		rc = catalog_errf(err, errlen, -EEXIST, "a pool named %s, at %s%s%s exists", name,
				  path, fs_uuid[0] ? " or on file system " : "", fs_uuid);
		goto err_rollback;
	}
	if (rc != SQLITE_DONE) {
		rc = catalog_errf(err, errlen, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
		goto err_rollback;
	}
	if (id)
		*id = sqlite3_last_insert_rowid(cat->db);
	return catalog_txn_commit(cat, err, errlen);

err_rollback:
	catalog_txn_rollback(cat);
	return rc;
}

int catalog_pool_add(struct catalog *cat, const char *name, const char *path,
		     enum catalog_pool_kind kind, unsigned alert_pct, bool quorate, int64_t *id,
		     char *err, size_t errlen)
{
	char real[PATH_MAX];
	struct stat sb;

	switch (kind) {
	case CATALOG_POOL_FOLDER:
		break;
	case CATALOG_POOL_BLOCK:
		return catalog_errf(err, errlen, -EINVAL,
				    "a block pool is added with catalog_pool_add_block");
	default:
		return catalog_errf(err, errlen, -EINVAL, "unknown pool kind %d", (int)kind);
	}
	if (!quorate)
		return catalog_errf(err, errlen, -EPERM,
				    "no quorum: pools change only with quorum");
	if (!path || !realpath(path, real))
		return catalog_errf(err, errlen, -ENOENT, "pool folder %s: %s", path ? path : "",
				    strerror(errno));
	if (stat(real, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return catalog_errf(err, errlen, -ENOTDIR, "%s is not a folder", real);
	return pool_insert(cat, name, "folder", real, "", "", "", alert_pct, quorate, id, err,
			   errlen);
}

int catalog_pool_add_block(struct catalog *cat, const char *name, const char *mountpoint,
			   const char *device, const char *fs_uuid, const char *fs_type,
			   unsigned alert_pct, bool quorate, int64_t *id, char *err, size_t errlen)
{
	char real[PATH_MAX];
	struct stat sb;

	if (!device || !device[0] || strlen(device) > CATALOG_DEVICE_MAX || !fs_uuid ||
	    !fs_uuid[0] || strlen(fs_uuid) > CATALOG_FS_UUID_MAX || !fs_type || !fs_type[0] ||
	    strlen(fs_type) > CATALOG_FS_TYPE_MAX)
		return catalog_errf(err, errlen, -EINVAL,
				    "a block pool needs its device, file system UUID and type");
	if (!mountpoint || !realpath(mountpoint, real))
		return catalog_errf(err, errlen, -ENOENT, "mount point %s: %s",
				    mountpoint ? mountpoint : "", strerror(errno));
	if (stat(real, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return catalog_errf(err, errlen, -ENOTDIR, "%s is not a folder", real);
	return pool_insert(cat, name, "block", real, device, fs_uuid, fs_type, alert_pct, quorate,
			   id, err, errlen);
}

static int pool_update(struct catalog *cat, const char *sql, int64_t id, int arg, char *err,
		       size_t errlen)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK)
		return catalog_errf(err, errlen, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	sqlite3_bind_int64(st, 1, id);
	if (arg >= 0)
		sqlite3_bind_int(st, 2, arg);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return catalog_errf(err, errlen, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	return sqlite3_changes(cat->db)
		       ? 0
		       : catalog_errf(err, errlen, -ENOENT, "no pool %lld", (long long)id);
}

int catalog_pool_remove(struct catalog *cat, int64_t id, bool quorate, char *err, size_t errlen)
{
	struct catalog_vdisk v;
	int rc, n;

	if (!quorate)
		return catalog_errf(err, errlen, -EPERM,
				    "no quorum: pools change only with quorum");
	rc = catalog_txn_begin(cat, err, errlen);
	if (rc < 0)
		return rc;
	n = vdisk_list_on(cat->db, id, &v, 1);
	if (n != 0) {
		rc = n < 0 ? catalog_errf(err, errlen, -EIO, "catalog: cannot list disks")
			   : catalog_errf(err, errlen, -EBUSY,
					  "pool %lld still holds %d virtual disk(s)", (long long)id,
					  n);
		goto err_rollback;
	}
	rc = pool_update(cat, "DELETE FROM pools WHERE id = ?", id, -1, err, errlen);
	if (rc < 0)
		goto err_rollback;
	rc = catalog_txn_commit(cat, err, errlen);
	if (rc == 0)
		catalog_pool_set_online(cat, id, true); /* forget it was offline */
	return rc;

err_rollback:
	catalog_txn_rollback(cat);
	return rc;
}

int catalog_pool_set_alert(struct catalog *cat, int64_t id, unsigned alert_pct, bool quorate,
			   char *err, size_t errlen)
{
	int rc;

	if (!quorate)
		return catalog_errf(err, errlen, -EPERM,
				    "no quorum: pools change only with quorum");
	if (alert_pct > 100)
		return catalog_errf(err, errlen, -EINVAL,
				    "the alert threshold is a percent (0-100)");
	rc = catalog_txn_begin(cat, err, errlen);
	if (rc < 0)
		return rc;
	rc = pool_update(cat, "UPDATE pools SET alert_pct = ?2 WHERE id = ?1", id, (int)alert_pct,
			 err, errlen);
	if (rc < 0) {
		catalog_txn_rollback(cat);
		return rc;
	}
	return catalog_txn_commit(cat, err, errlen);
}

static int pool_space(struct catalog *cat, int64_t id, struct catalog_pool *p,
		      struct catalog_pool_usage *out, char *err, size_t errlen)
{
	struct statvfs vfs;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = catalog_pool_get(cat, id, p);
	if (rc < 0)
		return catalog_errf(err, errlen, rc, "no pool %lld", (long long)id);
	if (!p->online)
		return catalog_errf(
			err, errlen, -ENODEV,
			"pool %s is offline: its device (file system %s) is not mounted", p->name,
			p->fs_uuid);
	if (statvfs(p->path, &vfs) < 0)
		return catalog_errf(err, errlen, -errno, "statvfs %s: %s", p->path,
				    strerror(errno));
	out->capacity = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	out->free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	out->used = out->capacity - (uint64_t)vfs.f_bfree * vfs.f_frsize;
	out->alert = catalog_pool_alert(out->capacity, out->free, p->alert_pct);
	return 0;
}

int catalog_pool_space(struct catalog *cat, int64_t id, struct catalog_pool_usage *out, char *err,
		       size_t errlen)
{
	struct catalog_pool p;

	return pool_space(cat, id, &p, out, err, errlen);
}

int catalog_pool_usage(struct catalog *cat, int64_t id, struct catalog_pool_usage *out, char *err,
		       size_t errlen)
{
	struct catalog_pool p;
	sqlite3_stmt *st;
	struct stat sb;
	int rc;

	rc = pool_space(cat, id, &p, out, err, errlen);
	if (rc < 0)
		return rc;
	if (sqlite3_prepare_v2(cat->rdb, "SELECT path, size FROM vdisks WHERE pool_id = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return catalog_errf(err, errlen, -EIO, "catalog: %s", sqlite3_errmsg(cat->rdb));
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(st, 0);

		out->n_vdisks++;
		out->provisioned += (uint64_t)sqlite3_column_int64(st, 1);
		/* st_blocks counts 512-byte units whatever the file system's block size. */
		if (path && stat(path, &sb) == 0)
			out->allocated += (uint64_t)sb.st_blocks * 512;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return catalog_errf(err, errlen, -EIO, "catalog: %s", sqlite3_errmsg(cat->rdb));
	return 0;
}

/* Access states. */

int catalog_access_refresh(struct catalog *cat, const char *vdisk_id, uint32_t host_id)
{
	sqlite3_stmt *q, *u;
	int rc;

	/* Every attachment selected (of one disk, of one host, or both) gets its state from the
	 * pure rule, so the rule lives in one place and not also in SQL. */
	q = catalog_stmt(cat, cat->db, CATALOG_SQL_ACCESS_SELECT);
	u = catalog_stmt(cat, cat->db, CATALOG_SQL_ACCESS_SET);
	if (!q || !u)
		return -EIO;
	if (vdisk_id)
		sqlite3_bind_text(q, 1, vdisk_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, host_id);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		enum catalog_access a = catalog_access_effective(sqlite3_column_int(q, 2) != 0,
								 sqlite3_column_int(q, 3) != 0,
								 sqlite3_column_int(q, 4) != 0);

		sqlite3_bind_text(u, 1, catalog_access_name(a), -1, SQLITE_STATIC);
		sqlite3_bind_int64(u, 2, sqlite3_column_int64(q, 0));
		sqlite3_bind_text(u, 3, (const char *)sqlite3_column_text(q, 1), -1,
				  SQLITE_TRANSIENT);
		if (sqlite3_step(u) != SQLITE_DONE) {
			rc = SQLITE_ERROR;
			break;
		}
		catalog_stmt_done(u);
	}
	catalog_stmt_done(u);
	catalog_stmt_done(q);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int catalog_host_set_path(struct catalog *cat, uint32_t host_id, bool fenced,
			  bool nonpreferred_only, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc;

	if (host_id == CATALOG_NO_HOST)
		return catalog_errf(err, errlen, -EINVAL, "host ids start at 1");
	rc = catalog_txn_begin(cat, err, errlen);
	if (rc < 0)
		return rc;
	rc = -EIO;
	if (sqlite3_prepare_v2(
		    cat->db,
		    "INSERT INTO host_paths (host_id, fenced, redirected) VALUES (?, ?, ?)"
		    " ON CONFLICT (host_id) DO UPDATE SET fenced = excluded.fenced,"
		    " redirected = excluded.redirected",
		    -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, host_id);
		sqlite3_bind_int(st, 2, fenced);
		sqlite3_bind_int(st, 3, nonpreferred_only);
		if (sqlite3_step(st) == SQLITE_DONE)
			rc = 0;
		sqlite3_finalize(st);
	}
	if (rc == 0)
		rc = catalog_access_refresh(cat, NULL, host_id);
	if (rc < 0) {
		catalog_errf(err, errlen, rc, "catalog: %s", sqlite3_errmsg(cat->db));
		catalog_txn_rollback(cat);
		return rc;
	}
	return catalog_txn_commit(cat, err, errlen);
}

/* Reconciliation at open (docs/catalog.md). Each step is idempotent, so a crash during it is
 * repaired by the next open. */

static bool is_disk_file_name(const char *n)
{
	static const char pat[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.img";

	if (strlen(n) != sizeof(pat) - 1)
		return false;
	for (size_t i = 0; i < sizeof(pat) - 1; i++) {
		if (pat[i] == 'x') {
			if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f')))
				return false;
		} else if (n[i] != pat[i]) {
			return false;
		}
	}
	return true;
}

static int row_exists_for_path(struct catalog *cat, const char *path)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(cat->db, "SELECT 1 FROM vdisks WHERE path = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* A file in a pool folder named like a disk but with no row. One that holds no data (a create
 * that crashed before its row was durable) is removed; one that holds data is moved into the
 * pool's quarantine folder, because it might be a disk whose row was lost and only the admin
 * can tell. */
static int orphan(struct catalog *cat, const char *pool, const char *name,
		  struct catalog_reconcile *rec)
{
	char path[CATALOG_PATH_MAX], qdir[CATALOG_PATH_MAX], qpath[CATALOG_PATH_MAX + 64];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", pool, name);
	if (lstat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
		return 0;
	if (sb.st_blocks == 0) {
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
		rec->orphans_removed++;
		log_warnx("%s: removed %s: no catalog row and no data", __func__, path);
		return 0;
	}
	snprintf(qdir, sizeof(qdir), "%s/" QUARANTINE_DIR, pool);
	if (mkdir(qdir, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(qpath, sizeof(qpath), "%s/%s.%lld", qdir, name, (long long)catalog_now());
	if (rename(path, qpath) < 0)
		return -errno;
	catalog_fsync_dir(qdir);
	rec->orphans_quarantined++;
	log_warnx("%s: moved %s to %s: it holds data but has no catalog row", __func__, path,
		  qpath);
	return 0;
}

static int reconcile_orphans(struct catalog *cat, struct catalog_reconcile *rec)
{
	static struct catalog_pool pools[64];
	int n, rc = 0;

	n = catalog_pool_list(cat, pools, 64);
	if (n < 0)
		return n;
	if (n > 64)
		n = 64; /* more pools than this are refused by no one; scan the rest next open */
	for (int i = 0; i < n && rc == 0; i++) {
		struct dirent *e;
		DIR *d;

		/* An offline block pool's folder is an empty mount point: nothing to see, and
		 * nothing of its own may be judged by what is not there. */
		if (!pools[i].online) {
			rec->pools_offline++;
			continue;
		}
		d = opendir(pools[i].path);
		if (!d) {
			log_warn("%s: pool %s: %s", __func__, pools[i].name, pools[i].path);
			continue;
		}
		while (rc == 0 && (e = readdir(d))) {
			char path[CATALOG_PATH_MAX];
			int has;

			if (!is_disk_file_name(e->d_name))
				continue;
			if (snprintf(path, sizeof(path), "%s/%s", pools[i].path, e->d_name) >=
			    (int)sizeof(path))
				continue;
			has = row_exists_for_path(cat, path);
			if (has < 0)
				rc = has;
			else if (has == 0)
				rc = orphan(cat, pools[i].path, e->d_name, rec);
		}
		closedir(d);
		if (rc == 0)
			rc = catalog_fsync_dir(pools[i].path);
	}
	return rc;
}

/* Unlink the file of every row in state, fsync its folder, then delete the row; rows of an
 * offline pool wait for a later open that finds the pool mounted. */
static int reconcile_remove(struct catalog *cat, const char *state, unsigned *count)
{
	sqlite3_stmt *st, *del;
	int rc;

	if (sqlite3_prepare_v2(cat->db, "SELECT id, path, pool_id FROM vdisks WHERE state = ?", -1,
			       &st, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_prepare_v2(cat->db, "DELETE FROM vdisks WHERE id = ?", -1, &del, NULL) !=
	    SQLITE_OK) {
		sqlite3_finalize(st);
		return -EIO;
	}
	sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(st, 1);

		if (catalog_pool_offline(cat, sqlite3_column_int64(st, 2)))
			continue;
		if (unlink(path) < 0 && errno != ENOENT) {
			log_warn("%s: %s", __func__, path);
			rc = SQLITE_ERROR;
			break;
		}
		catalog_fsync_parent(path);
		sqlite3_bind_text(del, 1, (const char *)sqlite3_column_text(st, 0), -1,
				  SQLITE_TRANSIENT);
		if (sqlite3_step(del) != SQLITE_DONE) {
			rc = SQLITE_ERROR;
			break;
		}
		sqlite3_reset(del);
		(*count)++;
	}
	sqlite3_finalize(del);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* A ready disk's file must exist and have the row's length. A longer file is an extend whose
 * row never became durable: nothing beyond the row's size was ever offered to a host, so it is
 * cut back. A shorter one cannot come from the catalog's own order of writes, but is grown so
 * the LUN can be served. */
static int reconcile_ready(struct catalog *cat, struct catalog_reconcile *rec)
{
	sqlite3_stmt *st, *mark;
	int rc;

	if (sqlite3_prepare_v2(cat->db,
			       "SELECT id, path, size, pool_id FROM vdisks WHERE state = 'ready'",
			       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_prepare_v2(cat->db, "UPDATE vdisks SET state = 'missing' WHERE id = ?", -1,
			       &mark, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -EIO;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(st, 1);
		off_t size = (off_t)sqlite3_column_int64(st, 2);
		struct stat sb;
		int fd;

		/* A disk of an offline pool is not missing: its device is. */
		if (catalog_pool_offline(cat, sqlite3_column_int64(st, 3)))
			continue;
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT) {
			log_warnx("%s: disk %s: backing file %s is gone", __func__,
				  sqlite3_column_text(st, 0), path);
			sqlite3_bind_text(mark, 1, (const char *)sqlite3_column_text(st, 0), -1,
					  SQLITE_TRANSIENT);
			if (sqlite3_step(mark) != SQLITE_DONE) {
				rc = SQLITE_ERROR;
				break;
			}
			sqlite3_reset(mark);
			rec->missing++;
			continue;
		}
		if (fd < 0) {
			log_warn("%s: %s", __func__, path);
			continue;
		}
		if (fstat(fd, &sb) == 0 && sb.st_size != size) {
			if (ftruncate(fd, size) == 0 && fsync(fd) == 0)
				rec->sizes_fixed++;
			else
				log_warn("%s: resize %s", __func__, path);
		}
		close(fd);
	}
	sqlite3_finalize(mark);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static int reconcile(struct catalog *cat, struct catalog_reconcile *rec, char *err, size_t errlen)
{
	int rc;

	rc = catalog_txn_begin(cat, err, errlen);
	if (rc < 0)
		return rc;
	rc = reconcile_remove(cat, "creating", &rec->creates_rolled_back);
	if (rc == 0)
		rc = reconcile_remove(cat, "cloning", &rec->clones_rolled_back);
	if (rc == 0)
		rc = reconcile_remove(cat, "deleting", &rec->deletes_finished);
	if (rc == 0)
		rc = reconcile_ready(cat, rec);
	if (rc < 0) {
		catalog_txn_rollback(cat);
		return catalog_errf(err, errlen, rc, "reconcile: %s", sqlite3_errmsg(cat->db));
	}
	rc = catalog_txn_commit(cat, err, errlen);
	/* Orphans are looked for only once the rows above are settled, so that a file whose row
	 * was just removed is not mistaken for one. */
	if (rc == 0)
		rc = reconcile_orphans(cat, rec);
	if (rc < 0)
		return catalog_errf(err, errlen, rc, "reconcile: %s", strerror(-rc));
	return 0;
}

static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t len)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		copy_col(out, len, st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -EIO;
}

int catalog_open_db(sqlite3 **out, const char *path, char *err, size_t errlen)
{
	char mode[16] = "";
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		catalog_errf(err, errlen, -EIO, "open %s: %s", path, sqlite3_errstr(rc));
		sqlite3_close(db);
		return -EIO;
	}
	sqlite3_busy_timeout(db, 5000);
	/* WAL: one fsync per commit, readers never block the writer. synchronous=FULL: the WAL
	 * is fsynced at every commit, so a commit that returned is on the disk. */
	if (pragma_text(db, "PRAGMA journal_mode = WAL", mode, sizeof(mode)) < 0 ||
	    strcmp(mode, "wal") != 0) {
		catalog_errf(err, errlen, -EIO, "%s: cannot use WAL mode (%s)", path, mode);
		goto err_close;
	}
	if (catalog_exec(db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", err, errlen) <
	    0)
		goto err_close;
	*out = db;
	return 0;

err_close:
	sqlite3_close(db);
	return -EIO;
}

/* The reader connection (catalog_int.h): the same file, refusing every write. */
static int open_reader(sqlite3 **out, const char *path, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		catalog_errf(err, errlen, -EIO, "open %s for reading: %s", path,
			     sqlite3_errstr(rc));
		sqlite3_close(db);
		return -EIO;
	}
	sqlite3_busy_timeout(db, 5000);
	if (catalog_exec(db, "PRAGMA query_only = ON; PRAGMA foreign_keys = ON", err, errlen) < 0) {
		sqlite3_close(db);
		return -EIO;
	}
	*out = db;
	return 0;
}

/* Every block pool is offline until attach says it is mounted. */
static int attach_pools(struct catalog *cat, catalog_pool_attach_fn attach, void *arg)
{
	static struct catalog_pool pools[CATALOG_POOLS_MAX];
	int n;

	n = catalog_pool_list(cat, pools, CATALOG_POOLS_MAX);
	if (n < 0)
		return n;
	for (int i = 0; i < n && i < CATALOG_POOLS_MAX; i++) {
		if (pools[i].kind != CATALOG_POOL_BLOCK)
			continue;
		catalog_pool_set_online(cat, pools[i].id, attach && attach(arg, &pools[i]));
	}
	return 0;
}

int catalog_open(struct catalog **out, const char *data_dir, struct catalog_reconcile *rec,
		 char *err, size_t errlen)
{
	return catalog_open_with(out, data_dir, NULL, NULL, rec, err, errlen);
}

int catalog_open_with(struct catalog **out, const char *data_dir, catalog_pool_attach_fn attach,
		      void *arg, struct catalog_reconcile *rec, char *err, size_t errlen)
{
	struct catalog_reconcile dummy;
	char path[CATALOG_PATH_MAX];
	struct catalog *cat;
	int rc;

	if (!rec)
		rec = &dummy;
	memset(rec, 0, sizeof(*rec));
	if (!data_dir || strlen(data_dir) + 16 >= CATALOG_PATH_MAX)
		return catalog_errf(err, errlen, -EINVAL, "bad data folder");
	cat = calloc(1, sizeof(*cat));
	if (!cat)
		return catalog_errf(err, errlen, -ENOMEM, "out of memory");
	snprintf(cat->dir, sizeof(cat->dir), "%s", data_dir);

	/* One writer: the lock lives as long as the process holds the catalog open, and the
	 * kernel drops it when the process dies, however it dies. */
	snprintf(path, sizeof(path), "%s/catalog.lock", data_dir);
	cat->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (cat->lock_fd < 0) {
		rc = catalog_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
		goto err_free;
	}
	if (flock(cat->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = catalog_errf(err, errlen, errno == EWOULDBLOCK ? -EBUSY : -errno,
				  "the catalog in %s is open in another process", data_dir);
		goto err_close_lock;
	}
	snprintf(path, sizeof(path), "%s/" CATALOG_DB_NAME, data_dir);
	rc = catalog_open_db(&cat->db, path, err, errlen);
	if (rc < 0)
		goto err_close_lock;
	rc = catalog_schema_migrate(cat->db, CATALOG_SCHEMA_VERSION, err, errlen);
	if (rc < 0)
		goto err_close_db;
	/* The database and WAL files may be new: make their names durable too. */
	rc = catalog_fsync_dir(data_dir);
	if (rc < 0) {
		catalog_errf(err, errlen, rc, "fsync %s: %s", data_dir, strerror(-rc));
		goto err_close_db;
	}
	rc = open_reader(&cat->rdb, path, err, errlen);
	if (rc < 0)
		goto err_close_db;
	/* Block pools are mounted before reconciliation looks at files: an unmounted pool's
	 * folder is empty, and its disks would all look missing. */
	rc = attach_pools(cat, attach, arg);
	if (rc < 0) {
		catalog_errf(err, errlen, rc, "cannot read the pools");
		goto err_close_db;
	}
	rc = reconcile(cat, rec, err, errlen);
	if (rc < 0)
		goto err_close_db;
	*out = cat;
	return 0;

err_close_db:
	catalog_stmts_free(cat);
	sqlite3_close(cat->rdb);
	sqlite3_close(cat->db);
err_close_lock:
	close(cat->lock_fd);
err_free:
	free(cat);
	return rc;
}

void catalog_close(struct catalog *cat)
{
	if (!cat)
		return;
	catalog_stmts_free(cat);
	/* The reader first: the writer, closing last, checkpoints the WAL into the database. */
	sqlite3_close(cat->rdb);
	sqlite3_close(cat->db);
	close(cat->lock_fd);
	free(cat);
}

int catalog_schema_version(struct catalog *cat)
{
	return catalog_schema_read_version(cat->db);
}
