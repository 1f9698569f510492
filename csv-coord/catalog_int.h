/* Internals shared by the catalog's source files (csv-coord/catalog*.c); not an API. */
#ifndef HOLDFAST_CSV_COORD_CATALOG_INT_H
#define HOLDFAST_CSV_COORD_CATALOG_INT_H

#include <sqlite3.h>
#include <stdarg.h>

#include "csv-coord/catalog.h"

struct catalog {
	sqlite3 *db;
	char dir[CATALOG_PATH_MAX];
	int lock_fd;
	bool broken; /* a commit or rollback failed: refuse everything until reopened */
};

/* The columns catalog_vdisk_from_row() reads, in its order. */
#define CATALOG_VDISK_COLS                                                                         \
	"id, name, pool_id, size, path, target_iqn, lun, owner, epoch, state, maintenance, vm,"    \
	" created, updated"

int catalog_vdisk_from_row(sqlite3_stmt *st, struct catalog_vdisk *v);
int catalog_open_db(sqlite3 **out, const char *path, char *err, size_t errlen);
int64_t catalog_now(void);
int catalog_fsync_dir(const char *dir);
int catalog_fsync_parent(const char *path);
bool catalog_name_valid(const char *name);
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
