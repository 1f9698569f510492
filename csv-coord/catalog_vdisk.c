/* The requests that change virtual disks, and their group commit (catalog.h: catalog_commit).
 *
 * A batch is one transaction, plus a second one only when it deletes:
 *   1. Each request is checked and applied in order, each under its own savepoint so that a
 *      refused request is undone alone. A create inserts its row ready, a delete moves its row
 *      to deleting, an extend grows the backing file (fsynced) before its row says so.
 *   2. Still inside the transaction, the creates' backing files are made (sparse, at their
 *      size) and made durable together with their pool folders (catalog_files.c); a create
 *      whose file fails loses its row again. Then one COMMIT, one fsync of the WAL: every
 *      request of the batch is durable.
 *   3. Only when the batch deletes: the files are unlinked, the pool folders fsynced, and a
 *      second transaction removes the deleted rows.
 * A create's file is durable before its row, so a crash leaves either a file without a row
 * (never acknowledged, no data: the next open removes it, catalog.c: reconcile) or both. A
 * crash between 2 and 3 leaves deleting rows, which the next open finishes (they were
 * acknowledged). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csv-coord/catalog_int.h"
#include "lib/log.h"

#define REQ_ERR(r, rc, ...) catalog_errf((r)->err, sizeof((r)->err), (rc), __VA_ARGS__)

static int uuid_v4(char out[CATALOG_ID_LEN + 1])
{
	uint8_t b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	/* RFC 4122 4.4: version 4 in the high nibble of octet 6, variant 10 in octet 8. */
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, CATALOG_ID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
	return 0;
}

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	return rc == SQLITE_CONSTRAINT ? -EEXIST : -EIO;
}

static int prepare(struct catalog *cat, const char *sql, sqlite3_stmt **st)
{
	return sqlite3_prepare_v2(cat->db, sql, -1, st, NULL) == SQLITE_OK ? 0 : -EIO;
}

/* A kept statement of the writer (catalog_stmt.c). */
static int kept(struct catalog *cat, enum catalog_sql which, sqlite3_stmt **st)
{
	*st = catalog_stmt(cat, cat->db, which);
	return *st ? 0 : -EIO;
}

/* step_done() for a kept statement: run it once and give it back. */
static int kept_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	catalog_stmt_done(st);
	if (rc == SQLITE_DONE)
		return 0;
	return rc == SQLITE_CONSTRAINT ? -EEXIST : -EIO;
}

/* The checks every request on an existing disk starts with: quorum, the disk exists and is
 * ready, and the caller knows its current epoch. */
static int load_checked(struct catalog *cat, struct catalog_req *r)
{
	int rc;

	if (!r->quorate)
		return REQ_ERR(r, -EPERM, "no quorum: the catalog changes only with quorum");
	rc = catalog_vdisk_get_on(cat, cat->db, r->vdisk_id, &r->vdisk);
	if (rc == -ENOENT)
		return REQ_ERR(r, rc, "no virtual disk %.*s", CATALOG_ID_LEN, r->vdisk_id);
	if (rc < 0)
		return REQ_ERR(r, rc, "catalog: %s", sqlite3_errmsg(cat->db));
	switch (r->vdisk.state) {
	case CATALOG_VDISK_READY:
		break;
	case CATALOG_VDISK_DELETING:
		return REQ_ERR(r, -ENOENT, "virtual disk %s is being deleted", r->vdisk.id);
	case CATALOG_VDISK_CREATING:
	case CATALOG_VDISK_CLONING:
		return REQ_ERR(r, -EBUSY, "virtual disk %s is still being %s", r->vdisk.id,
			       r->vdisk.state == CATALOG_VDISK_CLONING ? "cloned" : "created");
	case CATALOG_VDISK_MISSING:
		/* Only delete is allowed on a disk whose file is gone; the caller checks. */
		if (r->op == CATALOG_OP_DELETE)
			break;
		return REQ_ERR(r, -EIO, "virtual disk %s has lost its backing file", r->vdisk.id);
	default:
		return REQ_ERR(r, -EIO, "virtual disk %s is in an unknown state", r->vdisk.id);
	}
	if (r->expected_epoch != r->vdisk.epoch)
		return REQ_ERR(r, -ESTALE,
			       "stale epoch: the request is for epoch %" PRIu64
			       " but virtual disk %s is at epoch %" PRIu64,
			       r->expected_epoch, r->vdisk.id, r->vdisk.epoch);
	return 0;
}

static int lun_in_use(struct catalog *cat, const char *iqn, int64_t lun)
{
	sqlite3_stmt *st;
	int rc;

	if (kept(cat, CATALOG_SQL_LUN_IN_USE, &st) < 0)
		return -EIO;
	sqlite3_bind_text(st, 1, iqn, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, lun);
	rc = sqlite3_step(st);
	catalog_stmt_done(st);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* A LUN number for a new disk of target iqn. Numbers are handed out from a per-target
 * high-water mark that only rises, so a number is not given again soon after its disk is
 * deleted (an initiator may still remember it); only when the mark reaches the end of the range
 * is the lowest free number taken. A number is never shared by two disks that exist. */
static int lun_alloc(struct catalog *cat, const char *iqn, uint32_t *out)
{
	sqlite3_stmt *st;
	int64_t next = 0;
	int rc;

	if (kept(cat, CATALOG_SQL_LUN_HWM_GET, &st) < 0)
		return -EIO;
	sqlite3_bind_text(st, 1, iqn, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		next = sqlite3_column_int64(st, 0);
	catalog_stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -EIO;
	while (next <= CATALOG_LUN_MAX) {
		rc = lun_in_use(cat, iqn, next);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		next++;
	}
	if (next > CATALOG_LUN_MAX) {
		if (prepare(cat, "SELECT lun FROM vdisks WHERE target_iqn = ? ORDER BY lun", &st) <
		    0)
			return -EIO;
		sqlite3_bind_text(st, 1, iqn, -1, SQLITE_STATIC);
		next = 0;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW && sqlite3_column_int64(st, 0) == next)
			next++;
		sqlite3_finalize(st);
		if (next > CATALOG_LUN_MAX)
			return -ENOSPC;
	}
	*out = (uint32_t)next;
	if (kept(cat, CATALOG_SQL_LUN_HWM_SET, &st) < 0)
		return -EIO;
	sqlite3_bind_text(st, 1, iqn, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, next + 1);
	return kept_done(st);
}

/* Insert a new disk's row in state (ready for a create, whose file the batch makes before it
 * commits, or cloning) and fill v. */
static int insert_vdisk(struct catalog *cat, struct catalog_req *r, const struct catalog_pool *p,
			const char *state, struct catalog_vdisk *v)
{
	sqlite3_stmt *st;
	int rc;

	memset(v, 0, sizeof(*v));
	if (uuid_v4(v->id) < 0)
		return REQ_ERR(r, -EIO, "no randomness for a disk id");
	snprintf(v->name, sizeof(v->name), "%s", r->spec.name);
	v->pool_id = p->id;
	v->size = r->spec.size;
	/* catalog_pool_add() keeps pool paths short enough for this. */
	if (snprintf(v->path, sizeof(v->path), "%s/%s.img", p->path, v->id) >= (int)sizeof(v->path))
		return REQ_ERR(r, -ENAMETOOLONG, "pool path %s is too long", p->path);
	snprintf(v->target_iqn, sizeof(v->target_iqn), "%s", r->spec.target_iqn);
	v->owner = r->spec.owner;
	v->epoch = 1;
	v->state = !strcmp(state, "cloning") ? CATALOG_VDISK_CLONING : CATALOG_VDISK_READY;
	snprintf(v->vm, sizeof(v->vm), "%s", r->spec.vm);
	v->created = v->updated = catalog_now();

	rc = lun_alloc(cat, v->target_iqn, &v->lun);
	if (rc == -ENOSPC)
		return REQ_ERR(r, rc, "target %s has no free LUN number", v->target_iqn);
	if (rc < 0)
		return REQ_ERR(r, rc, "catalog: %s", sqlite3_errmsg(cat->db));
	if (kept(cat, CATALOG_SQL_VDISK_INSERT, &st) < 0)
		return REQ_ERR(r, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	sqlite3_bind_text(st, 1, v->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v->pool_id);
	sqlite3_bind_text(st, 3, v->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)v->size);
	sqlite3_bind_text(st, 5, v->path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, v->target_iqn, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, v->lun);
	if (v->owner == CATALOG_NO_HOST)
		sqlite3_bind_null(st, 8);
	else
		sqlite3_bind_int64(st, 8, v->owner);
	sqlite3_bind_text(st, 9, state, -1, SQLITE_STATIC);
	if (v->vm[0])
		sqlite3_bind_text(st, 10, v->vm, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 10);
	sqlite3_bind_int64(st, 11, v->created);
	sqlite3_bind_int64(st, 12, v->updated);
	rc = kept_done(st);
	if (rc == -EEXIST)
		return REQ_ERR(r, rc, "pool %s already has a virtual disk named %s", p->name,
			       v->name);
	if (rc < 0)
		return REQ_ERR(r, rc, "catalog: %s", sqlite3_errmsg(cat->db));
	return 0;
}

static int check_new_disk(struct catalog *cat, struct catalog_req *r, struct catalog_pool *p)
{
	struct catalog_vdisk other;
	int rc;

	if (!catalog_name_valid(r->spec.name))
		return REQ_ERR(r, -EINVAL,
			       "a virtual disk name is 1 to %d characters of A-Z a-z 0-9 . _ -",
			       CATALOG_NAME_MAX);
	if (r->spec.size == 0 || r->spec.size % 512 || r->spec.size > (uint64_t)INT64_MAX)
		return REQ_ERR(r, -EINVAL, "size %" PRIu64 " is not a positive multiple of 512",
			       r->spec.size);
	if (!r->spec.target_iqn[0] ||
	    strnlen(r->spec.target_iqn, sizeof(r->spec.target_iqn)) > CATALOG_IQN_MAX)
		return REQ_ERR(r, -EINVAL, "a virtual disk needs a target name");
	if (strnlen(r->spec.vm, sizeof(r->spec.vm)) > CATALOG_VM_MAX)
		return REQ_ERR(r, -EINVAL, "the VM name is longer than %d", CATALOG_VM_MAX);
	rc = catalog_pool_get_on(cat, cat->db, r->spec.pool_id, p);
	if (rc == -ENOENT)
		return REQ_ERR(r, rc, "no pool %lld", (long long)r->spec.pool_id);
	if (rc < 0)
		return REQ_ERR(r, rc, "catalog: %s", sqlite3_errmsg(cat->db));
	if (p->kind != CATALOG_POOL_FOLDER)
		return REQ_ERR(r, -EOPNOTSUPP, "pool %s is not a folder pool", p->name);
	rc = catalog_vdisk_by_name_on(cat, cat->db, p->id, r->spec.name, &other);
	if (rc == 0)
		return REQ_ERR(r, -EEXIST, "pool %s already has a virtual disk named %s", p->name,
			       r->spec.name);
	if (rc != -ENOENT)
		return REQ_ERR(r, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	return 0;
}

static int apply_create(struct catalog *cat, struct catalog_req *r)
{
	struct catalog_pool p;
	int rc;

	if (!r->quorate)
		return REQ_ERR(r, -EPERM, "no quorum: the catalog changes only with quorum");
	rc = check_new_disk(cat, r, &p);
	if (rc < 0)
		return rc;
	return insert_vdisk(cat, r, &p, "ready", &r->vdisk);
}

/* Set columns of one disk and its updated time. */
static int update_vdisk(struct catalog *cat, struct catalog_req *r, const char *set, int64_t a,
			bool a_null)
{
	char sql[160];
	sqlite3_stmt *st;
	int rc;

	snprintf(sql, sizeof(sql), "UPDATE vdisks SET %s, updated = ?2 WHERE id = ?3", set);
	if (prepare(cat, sql, &st) < 0)
		return REQ_ERR(r, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	if (a_null)
		sqlite3_bind_null(st, 1);
	else
		sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, catalog_now());
	sqlite3_bind_text(st, 3, r->vdisk.id, -1, SQLITE_STATIC);
	rc = step_done(st);
	if (rc < 0)
		return REQ_ERR(r, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	return catalog_vdisk_get_on(cat, cat->db, r->vdisk.id, &r->vdisk) < 0
		       ? REQ_ERR(r, -EIO, "catalog: %s", sqlite3_errmsg(cat->db))
		       : 0;
}

static int resize_file(const char *path, uint64_t size)
{
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 || fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int apply_extend(struct catalog *cat, struct catalog_req *r, uint64_t *old_size)
{
	int rc;

	rc = load_checked(cat, r);
	if (rc < 0)
		return rc;
	*old_size = r->vdisk.size;
	if (r->new_size < r->vdisk.size)
		return REQ_ERR(r, -EINVAL,
			       "a virtual disk only grows: %" PRIu64 " is below its size %" PRIu64,
			       r->new_size, r->vdisk.size);
	if (r->new_size % 512 || r->new_size > (uint64_t)INT64_MAX)
		return REQ_ERR(r, -EINVAL, "size %" PRIu64 " is not a multiple of 512",
			       r->new_size);
	if (r->new_size == r->vdisk.size)
		return 0;
	/* The file grows first: a crash before the row commits leaves a file longer than its
	 * row, which the next open cuts back; never a row promising blocks the file lacks. */
	rc = resize_file(r->vdisk.path, r->new_size);
	if (rc < 0)
		return REQ_ERR(r, rc, "extend %s: %s", r->vdisk.path, strerror(-rc));
	return update_vdisk(cat, r, "size = ?1", (int64_t)r->new_size, false);
}

static int count_attached(struct catalog *cat, const char *id)
{
	return catalog_vdisk_hosts_on(cat, cat->db, id, NULL, 0);
}

static int apply_delete(struct catalog *cat, struct catalog_req *r)
{
	int rc, n;

	rc = load_checked(cat, r);
	if (rc < 0)
		return rc;
	n = count_attached(cat, r->vdisk.id);
	if (n < 0)
		return REQ_ERR(r, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	if (n > 0)
		return REQ_ERR(r, -EBUSY,
			       "virtual disk %s is attached to %d host(s): detach it first",
			       r->vdisk.id, n);
	if (r->vdisk.owner != CATALOG_NO_HOST)
		return REQ_ERR(r, -EBUSY,
			       "virtual disk %s is owned by host %u: transfer it to nobody first",
			       r->vdisk.id, r->vdisk.owner);
	return update_vdisk(cat, r, "state = 'deleting'", 0, false);
}

static int apply_attach(struct catalog *cat, struct catalog_req *r)
{
	sqlite3_stmt *st;
	int rc;

	if (r->host_id == CATALOG_NO_HOST)
		return REQ_ERR(r, -EINVAL, "host ids start at 1");
	rc = load_checked(cat, r);
	if (rc < 0)
		return rc;
	/* Attaching an attached host is not an error: the coordinator may repeat a request whose
	 * answer it lost. */
	if (prepare(cat,
		    "INSERT INTO attachments (host_id, vdisk_id, attached) VALUES (?, ?, ?)"
		    " ON CONFLICT DO NOTHING",
		    &st) < 0)
		return REQ_ERR(r, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	sqlite3_bind_int64(st, 1, r->host_id);
	sqlite3_bind_text(st, 2, r->vdisk.id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, catalog_now());
	rc = step_done(st);
	if (rc == 0)
		rc = catalog_access_refresh(cat, r->vdisk.id, r->host_id);
	if (rc < 0)
		return REQ_ERR(r, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	return 0;
}

static int apply_detach(struct catalog *cat, struct catalog_req *r)
{
	sqlite3_stmt *st;
	int rc;

	if (r->host_id == CATALOG_NO_HOST)
		return REQ_ERR(r, -EINVAL, "host ids start at 1");
	rc = load_checked(cat, r);
	if (rc < 0)
		return rc;
	if (prepare(cat, "DELETE FROM attachments WHERE host_id = ? AND vdisk_id = ?", &st) < 0)
		return REQ_ERR(r, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	sqlite3_bind_int64(st, 1, r->host_id);
	sqlite3_bind_text(st, 2, r->vdisk.id, -1, SQLITE_STATIC);
	if (step_done(st) < 0)
		return REQ_ERR(r, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	if (sqlite3_changes(cat->db) == 0)
		return REQ_ERR(r, -ENOENT, "host %u is not attached to virtual disk %s", r->host_id,
			       r->vdisk.id);
	return 0;
}

static int apply_transfer(struct catalog *cat, struct catalog_req *r)
{
	int rc;

	rc = load_checked(cat, r);
	if (rc < 0)
		return rc;
	if (r->vdisk.owner != r->old_owner)
		return REQ_ERR(r, -EACCES,
			       "host %u is not the owner of virtual disk %s (the owner is %s%u)",
			       r->old_owner, r->vdisk.id,
			       r->vdisk.owner == CATALOG_NO_HOST ? "nobody, " : "host ",
			       r->vdisk.owner);
	/* The new epoch is what the target checks writes against: the old owner's requests,
	 * made under the old epoch, are stale from this commit on. */
	return update_vdisk(cat, r, "owner = ?1, epoch = epoch + 1", r->new_owner,
			    r->new_owner == CATALOG_NO_HOST);
}

static int apply_maintenance(struct catalog *cat, struct catalog_req *r)
{
	int rc;

	rc = load_checked(cat, r);
	if (rc < 0)
		return rc;
	rc = update_vdisk(cat, r, "maintenance = ?1", r->maintenance, false);
	if (rc == 0 && catalog_access_refresh(cat, r->vdisk.id, CATALOG_NO_HOST) < 0)
		rc = REQ_ERR(r, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
	return rc;
}

static int apply(struct catalog *cat, struct catalog_req *r, uint64_t *old_size)
{
	switch (r->op) {
	case CATALOG_OP_CREATE:
		return apply_create(cat, r);
	case CATALOG_OP_EXTEND:
		return apply_extend(cat, r, old_size);
	case CATALOG_OP_DELETE:
		return apply_delete(cat, r);
	case CATALOG_OP_ATTACH:
		return apply_attach(cat, r);
	case CATALOG_OP_DETACH:
		return apply_detach(cat, r);
	case CATALOG_OP_TRANSFER:
		return apply_transfer(cat, r);
	case CATALOG_OP_MAINTENANCE:
		return apply_maintenance(cat, r);
	default:
		return REQ_ERR(r, -EINVAL, "unknown catalog request %d", (int)r->op);
	}
}

static int fail_batch(struct catalog_req *reqs, size_t n, int rc, const char *why)
{
	for (size_t i = 0; i < n; i++) {
		reqs[i].rc = rc;
		REQ_ERR(&reqs[i], rc, "the batch was not committed: %s", why);
	}
	return rc;
}

static bool makes_file(const struct catalog_req *r)
{
	return r->op == CATALOG_OP_CREATE && r->rc == 0;
}

/* The pool folder of a disk's path (pool paths are resolved and never end in a slash). */
static size_t folder_len(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? (size_t)(slash - path) : 0;
}

/* Step 2: the creates' files, inside the batch's transaction. A create whose file or folder
 * could not be made durable is refused and its row deleted again. Returns -EIO when that
 * delete fails (the batch must then be rolled back). */
static int make_files(struct catalog *cat, struct catalog_req *reqs, size_t n)
{
	struct catalog_file files[CATALOG_BATCH_MAX];
	size_t which[CATALOG_BATCH_MAX], dir_of[CATALOG_BATCH_MAX];
	struct catalog_dir *dirs = NULL, *more;
	size_t nf = 0, nd = 0, k;
	sqlite3_stmt *drop;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		struct catalog_req *r = &reqs[i];
		size_t len;

		if (!makes_file(r))
			continue;
		len = folder_len(r->vdisk.path);
		/* Pools are few: one fsync per folder for the whole batch. */
		for (k = 0; k < nd; k++)
			if (strlen(dirs[k].path) == len &&
			    !strncmp(dirs[k].path, r->vdisk.path, len))
				break;
		if (k == nd) {
			more = realloc(dirs, (nd + 1) * sizeof(*dirs));
			if (!more) {
				r->rc = REQ_ERR(r, -ENOMEM, "out of memory");
				continue; /* its row goes below, with the failed files' */
			}
			dirs = more;
			snprintf(dirs[nd].path, sizeof(dirs[nd].path), "%.*s", (int)len,
				 r->vdisk.path);
			nd++;
		}
		files[nf].path = r->vdisk.path;
		files[nf].size = r->vdisk.size;
		dir_of[nf] = k;
		which[nf++] = i;
	}
	catalog_files_make(files, nf, dirs, nd);

	if (kept(cat, CATALOG_SQL_VDISK_DROP, &drop) < 0)
		rc = -EIO;
	for (size_t i = 0, j = 0; i < n && rc == 0; i++) {
		struct catalog_req *r = &reqs[i];
		int frc;

		if (r->op != CATALOG_OP_CREATE || !r->vdisk.id[0])
			continue; /* not a create, or refused in step 1 (no row) */
		if (j < nf && which[j] == i) {
			frc = files[j].rc ? files[j].rc : dirs[dir_of[j]].rc;
			if (frc && files[j].rc == 0)
				unlink(files[j].path); /* made, but its name may not be durable */
			j++;
			if (frc == 0)
				continue;
			if (frc == -EEXIST)
				REQ_ERR(r, frc, "create %s: a file of that name exists already",
					r->vdisk.path);
			else
				REQ_ERR(r, frc, "create %s: %s", r->vdisk.path, strerror(-frc));
			r->rc = frc;
		}
		sqlite3_bind_text(drop, 1, r->vdisk.id, -1, SQLITE_STATIC);
		if (sqlite3_step(drop) != SQLITE_DONE)
			rc = -EIO;
		sqlite3_reset(drop);
		r->vdisk.id[0] = '\0';
	}
	catalog_stmt_done(drop);
	free(dirs);
	return rc;
}

/* Undo step 2 when the transaction was rolled back: no row names these files. */
static void unmake_files(struct catalog_req *reqs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (makes_file(&reqs[i]) && reqs[i].vdisk.id[0])
			unlink(reqs[i].vdisk.path);
}

/* Step 3: remove the deletes' files, then their rows. */
static void finish_deletes(struct catalog *cat, struct catalog_req *reqs, size_t n)
{
	char why[CATALOG_ERR_MAX];
	sqlite3_stmt *drop = NULL;

	for (size_t i = 0; i < n; i++) {
		struct catalog_req *r = &reqs[i];

		if (r->op != CATALOG_OP_DELETE || r->rc < 0)
			continue;
		if (unlink(r->vdisk.path) < 0 && errno != ENOENT)
			log_warn("%s: %s", __func__, r->vdisk.path);
	}
	/* The removals are durable before the rows go, so a row never disappears while its
	 * file may come back. Pools are few: fsync each folder once. */
	for (size_t i = 0; i < n; i++) {
		struct catalog_req *r = &reqs[i];
		bool seen = false;

		if (r->op != CATALOG_OP_DELETE || r->rc < 0)
			continue;
		for (size_t j = 0; j < i && !seen; j++)
			seen = reqs[j].op == CATALOG_OP_DELETE && reqs[j].rc == 0 &&
			       reqs[j].vdisk.pool_id == r->vdisk.pool_id;
		if (!seen && catalog_fsync_parent(r->vdisk.path) < 0)
			log_warn("%s: fsync of the folder of %s", __func__, r->vdisk.path);
	}

	if (catalog_txn_begin(cat, why, sizeof(why)) < 0)
		goto err;
	if (kept(cat, CATALOG_SQL_VDISK_DROP, &drop) < 0)
		goto err_rollback;
	for (size_t i = 0; i < n; i++) {
		struct catalog_req *r = &reqs[i];

		if (r->op != CATALOG_OP_DELETE || r->rc < 0)
			continue;
		sqlite3_bind_text(drop, 1, r->vdisk.id, -1, SQLITE_STATIC);
		if (sqlite3_step(drop) != SQLITE_DONE) {
			snprintf(why, sizeof(why), "%s", sqlite3_errmsg(cat->db));
			catalog_stmt_done(drop);
			goto err_rollback;
		}
		catalog_stmt_done(drop);
	}
	if (catalog_txn_commit(cat, why, sizeof(why)) < 0)
		goto err;
	return;

err_rollback:
	if (!drop)
		snprintf(why, sizeof(why), "%s", sqlite3_errmsg(cat->db));
	catalog_txn_rollback(cat);
err:
	/* The deletes stand: they were durable in the first transaction (their rows say
	 * deleting), and the next open finishes them. Until then the store is suspect. */
	log_warnx("%s: deleted rows not removed: %s", __func__, why);
	cat->broken = true;
}

int catalog_commit(struct catalog *cat, struct catalog_req *reqs, size_t n)
{
	uint64_t old_size[CATALOG_BATCH_MAX];
	char why[CATALOG_ERR_MAX];
	bool creates = false, deletes = false;
	int rc;

	if (n == 0 || n > CATALOG_BATCH_MAX)
		return fail_batch(reqs, n > CATALOG_BATCH_MAX ? CATALOG_BATCH_MAX : n, -EINVAL,
				  "a batch holds 1 to 256 requests");
	rc = catalog_txn_begin(cat, why, sizeof(why));
	if (rc < 0)
		return fail_batch(reqs, n, rc, why);
	for (size_t i = 0; i < n; i++) {
		struct catalog_req *r = &reqs[i];

		r->rc = 0;
		r->err[0] = '\0';
		old_size[i] = 0;
		if (r->op != CATALOG_OP_CREATE)
			memset(&r->vdisk, 0, sizeof(r->vdisk));
		else
			r->vdisk.id[0] = '\0';
	}
	for (size_t i = 0; i < n; i++) {
		struct catalog_req *r = &reqs[i];

		if (catalog_stmt_run(cat, cat->db, CATALOG_SQL_SAVEPOINT) < 0)
			goto err_sql;
		r->rc = apply(cat, r, &old_size[i]);
		if (r->rc < 0) {
			if (catalog_stmt_run(cat, cat->db, CATALOG_SQL_ROLLBACK_TO) < 0)
				goto err_sql;
			/* A refused create keeps no row: forget its id so no file is made. */
			if (r->op == CATALOG_OP_CREATE)
				r->vdisk.id[0] = '\0';
		}
		if (catalog_stmt_run(cat, cat->db, CATALOG_SQL_RELEASE) < 0)
			goto err_sql;
		creates = creates || (r->rc == 0 && r->op == CATALOG_OP_CREATE);
		deletes = deletes || (r->rc == 0 && r->op == CATALOG_OP_DELETE);
	}
	/* The files before the COMMIT: a ready row always names a durable file. */
	if (creates && make_files(cat, reqs, n) < 0)
		goto err_sql;
	rc = catalog_txn_commit(cat, why, sizeof(why));
	if (rc < 0) {
		/* Whether the rows reached the disk is unknown, so the new files stay: the next
		 * open keeps those whose row is there and removes the others (empty, rowless). */
		goto err_undo;
	}
	if (deletes)
		finish_deletes(cat, reqs, n);
	return 0;

err_sql:
	snprintf(why, sizeof(why), "catalog: %s", sqlite3_errmsg(cat->db));
	catalog_txn_rollback(cat);
	unmake_files(reqs, n);
	rc = -EIO;
err_undo:
	/* The extends grew their files before the commit that failed; shrink them back, which
	 * the next open would also do. */
	for (size_t i = 0; i < n; i++)
		if (reqs[i].op == CATALOG_OP_EXTEND && reqs[i].rc == 0 && old_size[i] &&
		    reqs[i].vdisk.size != old_size[i])
			resize_file(reqs[i].vdisk.path, old_size[i]);
	return fail_batch(reqs, n, rc, why);
}

/* One request on its own. */
static int commit_one(struct catalog *cat, struct catalog_req *r, char *err, size_t errlen)
{
	catalog_commit(cat, r, 1);
	if (r->rc < 0)
		catalog_errf(err, errlen, r->rc, "%s", r->err);
	return r->rc;
}

static struct catalog_req *req_new(enum catalog_op op, const char *id, uint64_t epoch, bool quorate)
{
	struct catalog_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->op = op;
	r->quorate = quorate;
	r->expected_epoch = epoch;
	if (id)
		snprintf(r->vdisk_id, sizeof(r->vdisk_id), "%s", id);
	return r;
}

#define REQ_OR_ENOMEM(r)                                                                           \
	do {                                                                                       \
		if (!(r))                                                                          \
			return catalog_errf(err, errlen, -ENOMEM, "out of memory");                \
	} while (0)

int catalog_vdisk_create(struct catalog *cat, const struct catalog_vdisk_spec *spec, bool quorate,
			 struct catalog_vdisk *out, char *err, size_t errlen)
{
	struct catalog_req *r = req_new(CATALOG_OP_CREATE, NULL, 0, quorate);
	int rc;

	REQ_OR_ENOMEM(r);
	r->spec = *spec;
	rc = commit_one(cat, r, err, errlen);
	if (rc == 0 && out)
		*out = r->vdisk;
	free(r);
	return rc;
}

int catalog_vdisk_extend(struct catalog *cat, const char *id, uint64_t expected_epoch,
			 uint64_t size, bool quorate, uint64_t *new_size, char *err, size_t errlen)
{
	struct catalog_req *r = req_new(CATALOG_OP_EXTEND, id, expected_epoch, quorate);
	int rc;

	REQ_OR_ENOMEM(r);
	r->new_size = size;
	rc = commit_one(cat, r, err, errlen);
	if (rc == 0 && new_size)
		*new_size = r->vdisk.size;
	free(r);
	return rc;
}

int catalog_vdisk_delete(struct catalog *cat, const char *id, uint64_t expected_epoch, bool quorate,
			 char *err, size_t errlen)
{
	struct catalog_req *r = req_new(CATALOG_OP_DELETE, id, expected_epoch, quorate);
	int rc;

	REQ_OR_ENOMEM(r);
	rc = commit_one(cat, r, err, errlen);
	free(r);
	return rc;
}

static int attach_detach(struct catalog *cat, enum catalog_op op, const char *id, uint32_t host,
			 uint64_t expected_epoch, bool quorate, char *err, size_t errlen)
{
	struct catalog_req *r = req_new(op, id, expected_epoch, quorate);
	int rc;

	REQ_OR_ENOMEM(r);
	r->host_id = host;
	rc = commit_one(cat, r, err, errlen);
	free(r);
	return rc;
}

int catalog_vdisk_attach(struct catalog *cat, const char *id, uint32_t host_id,
			 uint64_t expected_epoch, bool quorate, char *err, size_t errlen)
{
	return attach_detach(cat, CATALOG_OP_ATTACH, id, host_id, expected_epoch, quorate, err,
			     errlen);
}

int catalog_vdisk_detach(struct catalog *cat, const char *id, uint32_t host_id,
			 uint64_t expected_epoch, bool quorate, char *err, size_t errlen)
{
	return attach_detach(cat, CATALOG_OP_DETACH, id, host_id, expected_epoch, quorate, err,
			     errlen);
}

int catalog_vdisk_transfer(struct catalog *cat, const char *id, uint32_t old_owner,
			   uint32_t new_owner, uint64_t expected_epoch, bool quorate,
			   uint64_t *new_epoch, char *err, size_t errlen)
{
	struct catalog_req *r = req_new(CATALOG_OP_TRANSFER, id, expected_epoch, quorate);
	int rc;

	REQ_OR_ENOMEM(r);
	r->old_owner = old_owner;
	r->new_owner = new_owner;
	rc = commit_one(cat, r, err, errlen);
	if (rc == 0 && new_epoch)
		*new_epoch = r->vdisk.epoch;
	free(r);
	return rc;
}

int catalog_vdisk_set_maintenance(struct catalog *cat, const char *id, uint64_t expected_epoch,
				  bool on, bool quorate, char *err, size_t errlen)
{
	struct catalog_req *r = req_new(CATALOG_OP_MAINTENANCE, id, expected_epoch, quorate);
	int rc;

	REQ_OR_ENOMEM(r);
	r->maintenance = on;
	rc = commit_one(cat, r, err, errlen);
	free(r);
	return rc;
}

/* Clone. */

#define COPY_CHUNK (8u << 20)

/* Copy src to dst (already sized), data extents only, so the clone stays as sparse as its
 * source. */
static int copy_data(int src, int dst, uint64_t size, catalog_progress_fn progress, void *ctx)
{
	off_t pos = 0, data, hole;
	uint64_t done = 0;

	while ((uint64_t)pos < size) {
		data = lseek(src, pos, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break; /* only a hole is left */
			return -errno;
		}
		hole = lseek(src, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if ((uint64_t)hole > size)
			hole = (off_t)size;
		pos = data;
		while (pos < hole) {
			size_t len = (size_t)(hole - pos) < COPY_CHUNK ? (size_t)(hole - pos)
								       : COPY_CHUNK;
			off_t in = pos, out = pos;
			ssize_t k = copy_file_range(src, &in, dst, &out, len, 0);

			if (k < 0)
				return -errno;
			if (k == 0)
				return -EIO; /* the source shrank under us */
			pos += k;
			done += (uint64_t)k;
			if (progress && progress(ctx, (uint64_t)pos, size))
				return -ECANCELED;
		}
	}
	if (progress && progress(ctx, size, size))
		return -ECANCELED;
	return 0;
}

int catalog_vdisk_clone_begin(struct catalog *cat, const char *src_id, uint64_t expected_epoch,
			      const char *name, const char *target_iqn, bool quorate,
			      struct catalog_vdisk *src_out, struct catalog_vdisk *out, char *err,
			      size_t errlen)
{
	struct catalog_req *r = req_new(CATALOG_OP_EXTEND, src_id, expected_epoch, quorate);
	struct catalog_vdisk src;
	struct catalog_pool p;
	int rc;

	REQ_OR_ENOMEM(r);
	/* The checks, and the new row in state cloning, durable before any byte is copied, so a
	 * crash during the copy leaves a row that names the partial file. */
	rc = catalog_txn_begin(cat, err, errlen);
	if (rc < 0)
		goto out_free;
	/* r->op is EXTEND here: load_checked's rules for an existing, ready disk. */
	rc = load_checked(cat, r);
	if (rc < 0)
		goto err_rollback;
	src = r->vdisk;
	r->op = CATALOG_OP_CREATE;
	snprintf(r->spec.name, sizeof(r->spec.name), "%s", name ? name : "");
	r->spec.pool_id = src.pool_id;
	r->spec.size = src.size;
	snprintf(r->spec.target_iqn, sizeof(r->spec.target_iqn), "%s",
		 target_iqn && target_iqn[0] ? target_iqn : src.target_iqn);
	r->spec.owner = CATALOG_NO_HOST;
	rc = check_new_disk(cat, r, &p);
	if (rc == 0)
		rc = insert_vdisk(cat, r, &p, "cloning", out);
	if (rc < 0)
		goto err_rollback;
	rc = catalog_txn_commit(cat, err, errlen);
	if (rc == 0 && src_out)
		*src_out = src;
	goto out_free;

err_rollback:
	catalog_errf(err, errlen, rc, "%s", r->err);
	catalog_txn_rollback(cat);
out_free:
	free(r);
	return rc;
}

int catalog_clone_copy(const char *src_path, const char *dst_path, uint64_t size,
		       catalog_progress_fn progress, void *ctx, bool *reflinked, char *err,
		       size_t errlen)
{
	int rc = 0, sfd, dfd;

	if (reflinked)
		*reflinked = false;
	sfd = open(src_path, O_RDONLY | O_CLOEXEC);
	if (sfd < 0)
		return catalog_errf(err, errlen, -errno, "open %s: %s", src_path, strerror(errno));
	dfd = open(dst_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (dfd < 0) {
		rc = catalog_errf(err, errlen, -errno, "create %s: %s", dst_path, strerror(errno));
		close(sfd);
		return rc;
	}
	/* A reflink shares the source's blocks until either side writes: instant, and no space
	 * used. File systems without it (ext4) answer EOPNOTSUPP, EINVAL or EXDEV. */
	if (ioctl(dfd, FICLONE, sfd) == 0) {
		if (reflinked)
			*reflinked = true;
		if (progress && progress(ctx, size, size))
			rc = catalog_errf(err, errlen, -ECANCELED, "clone cancelled");
	} else if (ftruncate(dfd, (off_t)size) < 0) {
		rc = catalog_errf(err, errlen, -errno, "size %s: %s", dst_path, strerror(errno));
	} else {
		rc = copy_data(sfd, dfd, size, progress, ctx);
		if (rc == -ECANCELED)
			catalog_errf(err, errlen, rc, "clone cancelled");
		else if (rc < 0)
			catalog_errf(err, errlen, rc, "copy to %s: %s", dst_path, strerror(-rc));
	}
	if (rc == 0 && fsync(dfd) < 0)
		rc = catalog_errf(err, errlen, -errno, "fsync %s: %s", dst_path, strerror(errno));
	if (rc == 0 && (rc = catalog_fsync_parent(dst_path)) < 0)
		catalog_errf(err, errlen, rc, "fsync the folder of %s", dst_path);
	close(dfd);
	close(sfd);
	if (rc < 0)
		unlink(dst_path);
	return rc;
}

/* The disk of a clone whose copy ended, still in state cloning. */
static int load_cloning(struct catalog *cat, const char *id, struct catalog_vdisk *v, char *err,
			size_t errlen)
{
	int rc = catalog_vdisk_get_on(cat, cat->db, id, v);

	if (rc == -ENOENT)
		return catalog_errf(err, errlen, rc, "no virtual disk %s", id);
	if (rc < 0)
		return catalog_errf(err, errlen, rc, "catalog: %s", sqlite3_errmsg(cat->db));
	if (v->state != CATALOG_VDISK_CLONING)
		return catalog_errf(err, errlen, -EINVAL, "virtual disk %s is not being cloned",
				    id);
	return 0;
}

int catalog_vdisk_clone_finish(struct catalog *cat, const char *id, struct catalog_vdisk *out,
			       char *err, size_t errlen)
{
	struct catalog_req *r = req_new(CATALOG_OP_CREATE, id, 0, true);
	int rc;

	REQ_OR_ENOMEM(r);
	rc = catalog_txn_begin(cat, err, errlen);
	if (rc < 0)
		goto out_free;
	rc = load_cloning(cat, id, &r->vdisk, err, errlen);
	if (rc == 0 && (rc = update_vdisk(cat, r, "state = 'ready'", 0, false)) < 0)
		catalog_errf(err, errlen, rc, "%s", r->err);
	if (rc < 0) {
		catalog_txn_rollback(cat);
		goto out_free;
	}
	rc = catalog_txn_commit(cat, err, errlen);
	if (rc == 0 && out)
		*out = r->vdisk;
out_free:
	free(r);
	return rc;
}

int catalog_vdisk_clone_abort(struct catalog *cat, const char *id, char *err, size_t errlen)
{
	struct catalog_vdisk v;
	sqlite3_stmt *st;
	int rc;

	rc = catalog_txn_begin(cat, err, errlen);
	if (rc < 0)
		return rc;
	rc = load_cloning(cat, id, &v, err, errlen);
	if (rc < 0)
		goto err_rollback;
	/* The file first: a row without a file is rolled back by the next open too, and a
	 * crash between the two leaves exactly that. */
	if (unlink(v.path) < 0 && errno != ENOENT) {
		rc = catalog_errf(err, errlen, -errno, "remove %s: %s", v.path, strerror(errno));
		goto err_rollback;
	}
	if (prepare(cat, "DELETE FROM vdisks WHERE id = ?", &st) < 0) {
		rc = catalog_errf(err, errlen, -EIO, "catalog: %s", sqlite3_errmsg(cat->db));
		goto err_rollback;
	}
	sqlite3_bind_text(st, 1, v.id, -1, SQLITE_STATIC);
	rc = step_done(st);
	if (rc < 0) {
		catalog_errf(err, errlen, rc, "catalog: %s", sqlite3_errmsg(cat->db));
		goto err_rollback;
	}
	return catalog_txn_commit(cat, err, errlen);

err_rollback:
	catalog_txn_rollback(cat);
	return rc;
}

int catalog_vdisk_clone(struct catalog *cat, const char *src_id, uint64_t expected_epoch,
			const char *name, const char *target_iqn, bool quorate,
			catalog_progress_fn progress, void *ctx, struct catalog_vdisk *out,
			bool *reflinked, char *err, size_t errlen)
{
	struct catalog_vdisk src, v;
	bool reflink = false;
	int rc;

	if (reflinked)
		*reflinked = false;
	rc = catalog_vdisk_clone_begin(cat, src_id, expected_epoch, name, target_iqn, quorate, &src,
				       &v, err, errlen);
	if (rc < 0)
		return rc;
	rc = catalog_clone_copy(src.path, v.path, v.size, progress, ctx, &reflink, err, errlen);
	if (rc < 0) {
		/* If even this fails, the next open rolls the clone back. */
		catalog_vdisk_clone_abort(cat, v.id, NULL, 0);
		return rc;
	}
	rc = catalog_vdisk_clone_finish(cat, v.id, out, err, errlen);
	if (rc == 0 && reflinked)
		*reflinked = reflink;
	return rc;
}
