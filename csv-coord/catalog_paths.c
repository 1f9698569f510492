/* Host paths in the catalog: the administrator's preferred portals of each host, and reading
 * back the path state the coordinator recorded (catalog.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "csv-coord/catalog_int.h"
#include "csv-coord/catalog_portal.h"

_Static_assert(CATALOG_PORTAL_MAX == 64, "catalog_host_portals() takes char (*)[64]");

int catalog_host_set_portals(struct catalog *cat, uint32_t host_id, const char *const *specs,
			     size_t n, bool quorate, char *err, size_t errlen)
{
	char canon[CATALOG_PORTALS_MAX][CATALOG_PORTAL_MAX];
	struct catalog_portal p;
	sqlite3_stmt *st = NULL;
	int rc;

	if (host_id == CATALOG_NO_HOST)
		return catalog_errf(err, errlen, -EINVAL, "host ids start at 1");
	if (n > CATALOG_PORTALS_MAX)
		return catalog_errf(err, errlen, -EINVAL, "at most %d preferred portals per host",
				    CATALOG_PORTALS_MAX);
	for (size_t i = 0; i < n; i++) {
		if (catalog_portal_parse(specs[i], &p) < 0)
			return catalog_errf(err, errlen, -EINVAL,
					    "'%s' is not a portal: give ADDR:PORT, ADDR or NET/LEN "
					    "(numeric IPv4 or IPv6, IPv6 with a port in brackets)",
					    specs[i]);
		catalog_portal_format(&p, canon[i], sizeof(canon[i]));
	}
	if (!quorate)
		return catalog_errf(err, errlen, -EPERM,
				    "no quorum: the catalog cannot be changed");
	rc = catalog_txn_begin(cat, err, errlen);
	if (rc < 0)
		return rc;
	rc = -EIO;
	if (sqlite3_prepare_v2(cat->db, "DELETE FROM host_portals WHERE host_id = ?", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, host_id);
		if (sqlite3_step(st) == SQLITE_DONE)
			rc = 0;
		sqlite3_finalize(st);
		st = NULL;
	}
	if (rc == 0 && sqlite3_prepare_v2(cat->db,
					  "INSERT OR IGNORE INTO host_portals (host_id, portal)"
					  " VALUES (?, ?)",
					  -1, &st, NULL) != SQLITE_OK)
		rc = -EIO;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, host_id);
		sqlite3_bind_text(st, 2, canon[i], -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = -EIO;
	}
	sqlite3_finalize(st); /* NULL is fine */
	if (rc < 0) {
		catalog_errf(err, errlen, rc, "catalog: %s", sqlite3_errmsg(cat->db));
		catalog_txn_rollback(cat);
		return rc;
	}
	return catalog_txn_commit(cat, err, errlen);
}

int catalog_host_portals(struct catalog *cat, uint32_t host_id, char (*out)[64], size_t max)
{
	sqlite3_stmt *st;
	int n = 0, rc;

	if (sqlite3_prepare_v2(cat->rdb,
			       "SELECT portal FROM host_portals WHERE host_id = ? ORDER BY portal",
			       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, host_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((size_t)n < max)
			snprintf(out[n], CATALOG_PORTAL_MAX, "%s",
				 (const char *)sqlite3_column_text(st, 0));
		n++;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? n : -EIO;
}

int catalog_host_path(struct catalog *cat, uint32_t host_id, bool *fenced, bool *nonpreferred_only)
{
	sqlite3_stmt *st;
	int rc;

	*fenced = *nonpreferred_only = false;
	if (sqlite3_prepare_v2(cat->rdb,
			       "SELECT fenced, redirected FROM host_paths WHERE host_id = ?", -1,
			       &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, host_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*fenced = sqlite3_column_int(st, 0) != 0;
		*nonpreferred_only = sqlite3_column_int(st, 1) != 0;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -EIO;
}
