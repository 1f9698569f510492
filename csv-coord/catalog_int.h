/* Internals shared by the catalog's source files (csv-coord/catalog*.c); not an API. */
#ifndef HOLDFAST_CSV_COORD_CATALOG_INT_H
#define HOLDFAST_CSV_COORD_CATALOG_INT_H

#include <sqlite3.h>
#include <stdarg.h>

#include "csv-coord/catalog.h"

/* The statements kept prepared (catalog_stmt.c). */
enum catalog_sql {
	CATALOG_SQL_BEGIN,
	CATALOG_SQL_COMMIT,
	CATALOG_SQL_ROLLBACK,
	CATALOG_SQL_SAVEPOINT,
	CATALOG_SQL_ROLLBACK_TO,
	CATALOG_SQL_RELEASE,
	CATALOG_SQL_VDISK_GET,
	CATALOG_SQL_VDISK_BY_NAME,
	CATALOG_SQL_VDISK_HOSTS,
	CATALOG_SQL_ACCESS_GET,
	CATALOG_SQL_POOL_BY_ID,
	CATALOG_SQL_POOL_BY_NAME,
	CATALOG_SQL_POOL_LIST,
	CATALOG_SQL_LUN_HWM_GET,
	CATALOG_SQL_LUN_IN_USE,
	CATALOG_SQL_LUN_HWM_SET,
	CATALOG_SQL_VDISK_INSERT,
	CATALOG_SQL_VDISK_DROP,
	CATALOG_SQL_ACCESS_SELECT,
	CATALOG_SQL_ACCESS_SET,
	CATALOG_SQL_N
};

/* Two connections to the same database. db is the only writer: every transaction, and every
 * read a change depends on, runs on it. rdb is read-only (query_only) and serves the public
 * lookups (catalog_vdisk_get, catalog_pool_list, ...): in WAL mode a reader never waits for
 * the writer and sees the last committed state, so a caller may read from one thread while
 * another thread commits on db (catalog.h, "Threads"). */
struct catalog {
	sqlite3 *db;
	sqlite3 *rdb;
	sqlite3_stmt *wst[CATALOG_SQL_N]; /* db's kept statements */
	sqlite3_stmt *rst[CATALOG_SQL_N]; /* rdb's */
	char dir[CATALOG_PATH_MAX];
	int lock_fd;
	bool broken; /* a commit or rollback failed: refuse everything until reopened */
	/* Block pools that are not mounted (catalog_pool_set_online): their disks' files are
	 * neither served nor looked at. Changed only by the loop while no commit is in flight. */
	int64_t offline[CATALOG_POOLS_MAX];
	unsigned noffline;
};

/* The columns catalog_vdisk_from_row() reads, in its order. */
#define CATALOG_VDISK_COLS                                                                         \
	"id, name, pool_id, size, path, target_iqn, lun, owner, epoch, state, maintenance, vm,"    \
	" created, updated"
#define CATALOG_POOL_COLS "id, name, path, kind, alert_pct, device, fs_uuid, fs_type"

/* The kept statement which of connection db (cat->db or cat->rdb), reset and unbound; NULL
 * when it cannot be prepared. Give it back with catalog_stmt_done() (reset, unbound) once its
 * rows are read: a reader statement left running would hold on to an old snapshot. */
sqlite3_stmt *catalog_stmt(struct catalog *cat, sqlite3 *db, enum catalog_sql which);
void catalog_stmt_done(sqlite3_stmt *st);
/* Step a kept statement without parameters once (BEGIN, SAVEPOINT, ...): 0 or -EIO. */
int catalog_stmt_run(struct catalog *cat, sqlite3 *db, enum catalog_sql which);
void catalog_stmts_free(struct catalog *cat);

/* The lookups on a given connection: the public ones use cat->rdb; a change reads on cat->db,
 * inside its own transaction, so that it sees what the batch did so far. */
int catalog_vdisk_get_on(struct catalog *cat, sqlite3 *db, const char *id,
			 struct catalog_vdisk *out);
int catalog_vdisk_by_name_on(struct catalog *cat, sqlite3 *db, int64_t pool_id, const char *name,
			     struct catalog_vdisk *out);
int catalog_vdisk_hosts_on(struct catalog *cat, sqlite3 *db, const char *vdisk_id, uint32_t *hosts,
			   size_t max);
int catalog_pool_get_on(struct catalog *cat, sqlite3 *db, int64_t id, struct catalog_pool *out);

int catalog_vdisk_from_row(sqlite3_stmt *st, struct catalog_vdisk *v);
int catalog_open_db(sqlite3 **out, const char *path, char *err, size_t errlen);
int64_t catalog_now(void);
/* Is pool id a block pool that is not mounted now? */
bool catalog_pool_offline(const struct catalog *cat, int64_t id);
int catalog_fsync_dir(const char *dir);
int catalog_fsync_parent(const char *path);
int catalog_access_parse(const char *s, enum catalog_access *out);
/* Recompute the access state of the attachments of vdisk_id (NULL: any) and host_id
 * (CATALOG_NO_HOST: any) inside the caller's transaction. */
int catalog_access_refresh(struct catalog *cat, const char *vdisk_id, uint32_t host_id);

/* BEGIN IMMEDIATE (refused when the catalog is broken), COMMIT (a failure marks it broken), and
 * ROLLBACK. */
int catalog_txn_begin(struct catalog *cat, char *err, size_t errlen);
int catalog_txn_commit(struct catalog *cat, char *err, size_t errlen);
void catalog_txn_rollback(struct catalog *cat);

/* Bring db from its version to target (1..CATALOG_SCHEMA_VERSION), each migration in its own
 * transaction with the new version written in it. A fresh database is version 0. Tests use a
 * target below the newest to make an old database. */
int catalog_schema_migrate(sqlite3 *db, int target, char *err, size_t errlen);
/* The version recorded in the database, 0 when it has no schema_version table, or -EIO. */
int catalog_schema_read_version(sqlite3 *db);

/* A new backing file (catalog_files.c): path and size in, rc out (0 or -errno). */
struct catalog_file {
	const char *path;
	uint64_t size;
	int rc;
	int fd; /* internal */
};

/* A pool folder whose new entries must become durable: rc out. */
struct catalog_dir {
	char path[CATALOG_PATH_MAX];
	int rc;
};

/* Make every file (O_EXCL, sparse at its size) and fsync each folder once: when a file's rc
 * and its folder's rc are 0, its name and inode are on the disk (its length may need the
 * repair at open; catalog_files.c says why). A file that was made but failed is unlinked; a
 * name that already existed is left alone (-EEXIST). */
void catalog_files_make(struct catalog_file *files, size_t nfiles, struct catalog_dir *dirs,
			size_t ndirs);

/* Format a message into err (may be NULL) and return rc. */
int catalog_errf(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Run SQL without results; -EIO with SQLite's message on failure. */
int catalog_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);

#endif
