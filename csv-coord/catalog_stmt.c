/* The catalog's hot statements, prepared once per connection (SQLITE_PREPARE_PERSISTENT) and
 * kept until the catalog is closed, instead of being parsed again at every call. A statement
 * belongs to one connection; the writer's and the reader's are kept apart (catalog_int.h). */
#include <errno.h>

#include "csv-coord/catalog_int.h"

static const char *const sql_text[CATALOG_SQL_N] = {
	[CATALOG_SQL_BEGIN] = "BEGIN IMMEDIATE",
	[CATALOG_SQL_COMMIT] = "COMMIT",
	[CATALOG_SQL_ROLLBACK] = "ROLLBACK",
	/* One name will do: a request's savepoint is released before the next one's. */
	[CATALOG_SQL_SAVEPOINT] = "SAVEPOINT req",
	[CATALOG_SQL_ROLLBACK_TO] = "ROLLBACK TO req",
	[CATALOG_SQL_RELEASE] = "RELEASE req",
	[CATALOG_SQL_VDISK_GET] = "SELECT " CATALOG_VDISK_COLS " FROM vdisks WHERE id = ?",
	[CATALOG_SQL_VDISK_BY_NAME] =
		"SELECT " CATALOG_VDISK_COLS " FROM vdisks WHERE pool_id = ? AND name = ?",
	[CATALOG_SQL_VDISK_HOSTS] =
		"SELECT host_id FROM attachments WHERE vdisk_id = ? ORDER BY host_id",
	[CATALOG_SQL_ACCESS_GET] =
		"SELECT access FROM attachments WHERE host_id = ? AND vdisk_id = ?",
	[CATALOG_SQL_POOL_BY_ID] = "SELECT " CATALOG_POOL_COLS " FROM pools WHERE id = ?",
	[CATALOG_SQL_POOL_BY_NAME] = "SELECT " CATALOG_POOL_COLS " FROM pools WHERE name = ?",
	[CATALOG_SQL_POOL_LIST] = "SELECT " CATALOG_POOL_COLS " FROM pools ORDER BY id",
	[CATALOG_SQL_LUN_HWM_GET] = "SELECT next_lun FROM lun_hwm WHERE target_iqn = ?",
	[CATALOG_SQL_LUN_IN_USE] = "SELECT 1 FROM vdisks WHERE target_iqn = ? AND lun = ?",
	[CATALOG_SQL_LUN_HWM_SET] =
		"INSERT INTO lun_hwm (target_iqn, next_lun) VALUES (?1, ?2) ON CONFLICT"
		" (target_iqn) DO UPDATE SET next_lun = max(next_lun, excluded.next_lun)",
	[CATALOG_SQL_VDISK_INSERT] =
		"INSERT INTO vdisks (id, pool_id, name, size, path, target_iqn, lun, owner,"
		" epoch, state, vm, created, updated)"
		" VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
	[CATALOG_SQL_VDISK_DROP] = "DELETE FROM vdisks WHERE id = ?",
	[CATALOG_SQL_ACCESS_SELECT] =
		"SELECT a.host_id, a.vdisk_id, coalesce(h.fenced, 0), v.maintenance,"
		" coalesce(h.redirected, 0) FROM attachments a"
		" JOIN vdisks v ON v.id = a.vdisk_id"
		" LEFT JOIN host_paths h ON h.host_id = a.host_id"
		" WHERE (?1 IS NULL OR a.vdisk_id = ?1) AND (?2 = 0 OR a.host_id = ?2)",
	[CATALOG_SQL_ACCESS_SET] =
		"UPDATE attachments SET access = ? WHERE host_id = ? AND vdisk_id = ?",
};

sqlite3_stmt *catalog_stmt(struct catalog *cat, sqlite3 *db, enum catalog_sql which)
{
	sqlite3_stmt **slot;

	if (which >= CATALOG_SQL_N || !db)
		return NULL;
	slot = db == cat->db ? &cat->wst[which] : &cat->rst[which];
	if (!*slot && sqlite3_prepare_v3(db, sql_text[which], -1, SQLITE_PREPARE_PERSISTENT, slot,
					 NULL) != SQLITE_OK) {
		*slot = NULL;
		return NULL;
	}
	return *slot;
}

void catalog_stmt_done(sqlite3_stmt *st)
{
	if (!st)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int catalog_stmt_run(struct catalog *cat, sqlite3 *db, enum catalog_sql which)
{
	sqlite3_stmt *st = catalog_stmt(cat, db, which);
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	catalog_stmt_done(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -EIO;
}

void catalog_stmts_free(struct catalog *cat)
{
	for (int i = 0; i < CATALOG_SQL_N; i++) {
		sqlite3_finalize(cat->wst[i]);
		sqlite3_finalize(cat->rst[i]);
		cat->wst[i] = cat->rst[i] = NULL;
	}
}
