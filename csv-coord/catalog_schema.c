/* The catalog's schema and its migrations. A migration is a function from version n - 1 to n;
 * they run in order, each inside its own transaction that also records the new version, so a
 * crash leaves the database at one version or the next, never between. A migration, once
 * released, is never edited: a change to the schema is a new migration at the end. */
#include <errno.h>
#include <stdio.h>

#include "csv-coord/catalog_int.h"

/* Version 1: pools, virtual disks with their LUN export, owner and epoch, attachments, and the
 * per-target high-water mark that keeps LUN numbers from being reused. */
static const char schema_v1[] =
	"CREATE TABLE schema_version (version INTEGER NOT NULL);"
	"INSERT INTO schema_version (version) VALUES (0);"
	"CREATE TABLE pools ("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" kind TEXT NOT NULL CHECK (kind IN ('folder', 'block')),"
	" path TEXT NOT NULL UNIQUE,"
	" alert_pct INTEGER NOT NULL CHECK (alert_pct BETWEEN 0 AND 100),"
	" created INTEGER NOT NULL);"
	"CREATE TABLE vdisks ("
	" id TEXT PRIMARY KEY NOT NULL,"
	" pool_id INTEGER NOT NULL REFERENCES pools (id) ON DELETE RESTRICT,"
	" name TEXT NOT NULL,"
	" size INTEGER NOT NULL CHECK (size > 0),"
	" path TEXT NOT NULL UNIQUE,"
	" target_iqn TEXT NOT NULL,"
	" lun INTEGER NOT NULL CHECK (lun BETWEEN 0 AND 16383),"
	" owner INTEGER CHECK (owner IS NULL OR owner > 0),"
	" epoch INTEGER NOT NULL CHECK (epoch > 0),"
	" state TEXT NOT NULL"
	"  CHECK (state IN ('creating', 'ready', 'deleting', 'cloning', 'missing')),"
	" vm TEXT,"
	" created INTEGER NOT NULL,"
	" updated INTEGER NOT NULL,"
	" UNIQUE (pool_id, name),"
	" UNIQUE (target_iqn, lun));"
	"CREATE TABLE attachments ("
	" host_id INTEGER NOT NULL CHECK (host_id > 0),"
	" vdisk_id TEXT NOT NULL REFERENCES vdisks (id) ON DELETE CASCADE,"
	" attached INTEGER NOT NULL,"
	" PRIMARY KEY (host_id, vdisk_id)) WITHOUT ROWID;"
	"CREATE INDEX attachments_vdisk ON attachments (vdisk_id);"
	"CREATE TABLE lun_hwm (target_iqn TEXT PRIMARY KEY NOT NULL,"
	" next_lun INTEGER NOT NULL) WITHOUT ROWID;";

/* Version 2: access states. The admin's maintenance flag per disk, each host's path state
 * (fenced, reaching the box only over a non-preferred portal), and the effective access of each
 * attachment derived from them (catalog_access_effective). */
static const char schema_v2[] =
	"ALTER TABLE vdisks ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0"
	" CHECK (maintenance IN (0, 1));"
	"CREATE TABLE host_paths ("
	" host_id INTEGER PRIMARY KEY CHECK (host_id > 0),"
	" fenced INTEGER NOT NULL DEFAULT 0,"
	" redirected INTEGER NOT NULL DEFAULT 0);"
	"ALTER TABLE attachments ADD COLUMN access TEXT NOT NULL DEFAULT 'direct'"
	" CHECK (access IN ('direct', 'redirected', 'fenced', 'maintenance'));";

/* Version 3: the administrator's preferred portals of each host (catalog_portal.h), in their
 * canonical text. A host with none prefers every portal. */
static const char schema_v3[] =
	"CREATE TABLE host_portals ("
	" host_id INTEGER NOT NULL CHECK (host_id > 0),"
	" portal TEXT NOT NULL CHECK (length(portal) BETWEEN 1 AND 63),"
	" PRIMARY KEY (host_id, portal)) WITHOUT ROWID;";

/* Version 4: block-device pools. A block pool is a file system the box made on a device and
 * mounts at its path (pools.path, data_dir/pools/NAME); it is found again at start by the file
 * system's UUID, since the device's /dev name may change across boots. device is the name it
 * had when last seen, for people. Folder pools leave the three columns empty. */
static const char schema_v4[] =
	"ALTER TABLE pools ADD COLUMN device TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE pools ADD COLUMN fs_uuid TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE pools ADD COLUMN fs_type TEXT NOT NULL DEFAULT '';"
	"CREATE UNIQUE INDEX pools_fs_uuid ON pools (fs_uuid) WHERE fs_uuid != '';";

static const char *const migrations[CATALOG_SCHEMA_VERSION] = {schema_v1, schema_v2, schema_v3,
								schema_v4};

int catalog_schema_read_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int rc, v = -EIO;

	rc = sqlite3_prepare_v2(
		db,
		"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = "
		"'schema_version'",
		-1, &st, NULL);
	if (rc != SQLITE_OK)
		return -EIO;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0)
		v = 0;
	sqlite3_finalize(st);
	if (v == 0)
		return 0;
	if (sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &st, NULL) !=
	    SQLITE_OK)
		return -EIO;
	v = -EIO;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

int catalog_schema_migrate(sqlite3 *db, int target, char *err, size_t errlen)
{
	char sql[64], why[CATALOG_ERR_MAX];
	int v, rc;

	if (target < 1 || target > CATALOG_SCHEMA_VERSION)
		return catalog_errf(err, errlen, -EINVAL, "no schema version %d", target);
	v = catalog_schema_read_version(db);
	if (v < 0)
		return catalog_errf(err, errlen, -EIO, "cannot read the schema version: %s",
				    sqlite3_errmsg(db));
	/* A database written by newer firmware is not opened: its rows may mean things this
	 * code does not know (after a rollback to the other A/B slot, for instance). */
	if (v > CATALOG_SCHEMA_VERSION)
		return catalog_errf(err, errlen, -EPROTO,
				    "catalog schema %d is newer than this firmware's %d", v,
				    CATALOG_SCHEMA_VERSION);
	for (; v < target; v++) {
		why[0] = '\0';
		rc = catalog_exec(db, "BEGIN IMMEDIATE", why, sizeof(why));
		if (rc == 0)
			rc = catalog_exec(db, migrations[v], why, sizeof(why));
		if (rc == 0) {
			snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d", v + 1);
			rc = catalog_exec(db, sql, why, sizeof(why));
		}
		if (rc == 0)
			rc = catalog_exec(db, "COMMIT", why, sizeof(why));
		if (rc < 0) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return catalog_errf(err, errlen, rc, "migration to schema %d failed: %s",
					    v + 1, why);
		}
	}
	return 0;
}
