/* The shared-volume catalog: pools, the virtual disks in them (size, backing file, LUN export,
 * owner host, epoch, state) and each host's access to each disk, kept in SQLite (WAL,
 * synchronous=FULL) in the box's data folder. The coord plane is its only writer. Every change
 * is durable before the call returns, needs quorum (the caller says whether the cluster is
 * quorate: csv-coord/quorum.h), and a change to a virtual disk needs the disk's current epoch.
 * Several requests can be committed in one transaction (catalog_commit) so that concurrent
 * requests share one fsync. Opening the catalog reconciles it with the pool folders, so that
 * after a crash the rows and the backing files agree (docs/catalog.md).
 *
 * Errors are negative errno values with a message in the caller's buffer:
 *	-EPERM	no quorum			-ESTALE	 the expected epoch is not the disk's epoch
 *	-EACCES	the old owner is not the owner	-EBUSY	 delete of an attached or owned disk, a
 *	-ENOENT	no such pool, disk or attachment	 disk still being created or cloned
 *	-EEXIST	the name is taken		-EINVAL	 bad argument (e.g. a smaller size)
 *	-ENOSPC	no LUN number or space left	-EIO	 the store failed; reopen the catalog
 *
 * Threads. The catalog holds two connections: the writer (every change, and the reads a change
 * depends on) and a read-only one for the lookups below (catalog_vdisk_get, _list, _hosts,
 * catalog_access_get, catalog_pool_get, _by_name, _list, _usage, _space, catalog_host_portals,
 * catalog_host_path), which see the last committed state and never wait for the writer. So one
 * thread may run the lookups while another runs a change (catalog_commit, ...); the changes
 * must not run in two threads at once, nor the lookups. */
#ifndef HOLDFAST_CSV_COORD_CATALOG_H
#define HOLDFAST_CSV_COORD_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CATALOG_SCHEMA_VERSION 3
#define CATALOG_DB_NAME	       "catalog.db"
#define CATALOG_ID_LEN	       36 /* a UUID in text: 8-4-4-4-12 */
#define CATALOG_NAME_MAX       63
#define CATALOG_PATH_MAX       1024
#define CATALOG_IQN_MAX	       223 /* RFC 7143 6.1: an iSCSI name is at most 223 bytes */
#define CATALOG_VM_MAX	       127
#define CATALOG_ERR_MAX	       256
#define CATALOG_LUN_MAX	       16383 /* sam5r21 4.7.7: flat space addressing has 14 bits */
#define CATALOG_NO_HOST	       0u    /* QUORUM_NO_HOST: host ids start at 1 */
#define CATALOG_BATCH_MAX      256   /* requests in one catalog_commit() */

struct catalog;

enum catalog_pool_kind {
	CATALOG_POOL_FOLDER = 1, /* sparse files in a folder of a mounted file system */
	CATALOG_POOL_BLOCK = 2,	 /* a block device; recorded, not yet served */
};

struct catalog_pool {
	int64_t id;
	char name[CATALOG_NAME_MAX + 1];
	char path[CATALOG_PATH_MAX];
	enum catalog_pool_kind kind;
	unsigned alert_pct; /* alert when free space is at or below this percent; 0: never */
};

struct catalog_pool_usage {
	uint64_t capacity;    /* bytes of the file system (statvfs f_blocks) */
	uint64_t used;	      /* bytes in use on the file system, by anything */
	uint64_t free;	      /* bytes an unprivileged writer can still allocate (f_bavail) */
	uint64_t allocated;   /* bytes the pool's disk files really hold (st_blocks) */
	uint64_t provisioned; /* sum of the disks' sizes: what thin provisioning promised */
	unsigned n_vdisks;
	bool alert;
};

enum catalog_vdisk_state {
	CATALOG_VDISK_CREATING = 1, /* row written, backing file being made */
	CATALOG_VDISK_READY = 2,
	CATALOG_VDISK_DELETING = 3, /* delete acknowledged, backing file being removed */
	CATALOG_VDISK_CLONING = 4,  /* row written, data being copied from the source */
	CATALOG_VDISK_MISSING = 5,  /* found at open with its backing file gone: needs the admin */
};

struct catalog_vdisk {
	char id[CATALOG_ID_LEN + 1];
	char name[CATALOG_NAME_MAX + 1];
	int64_t pool_id;
	uint64_t size; /* bytes */
	char path[CATALOG_PATH_MAX];
	char target_iqn[CATALOG_IQN_MAX + 1];
	uint32_t lun;
	uint32_t owner; /* host id, CATALOG_NO_HOST when unowned */
	uint64_t epoch; /* 1 at creation, + 1 at every ownership transfer */
	enum catalog_vdisk_state state;
	bool maintenance;	     /* writes paused by the admin */
	char vm[CATALOG_VM_MAX + 1]; /* "" when the disk belongs to no VM */
	int64_t created;	     /* unix seconds */
	int64_t updated;
};

/* What a new disk is made of. */
struct catalog_vdisk_spec {
	int64_t pool_id;
	char name[CATALOG_NAME_MAX + 1];
	uint64_t size; /* bytes, a multiple of 512, > 0 */
	char target_iqn[CATALOG_IQN_MAX + 1];
	uint32_t owner; /* CATALOG_NO_HOST or the host that will own it */
	char vm[CATALOG_VM_MAX + 1];
};

/* Access of one host to one disk, as Windows shows it for a Cluster Shared Volume. */
enum catalog_access {
	CATALOG_ACCESS_DIRECT = 1,
	CATALOG_ACCESS_REDIRECTED = 2, /* the host reaches the box only over a non-preferred path */
	CATALOG_ACCESS_FENCED = 3,     /* the host is fenced: no I/O at all */
	CATALOG_ACCESS_MAINTENANCE = 4, /* writes paused by the admin */
};

/* Pure. The effective state: fenced wins over maintenance, which wins over redirected. */
enum catalog_access catalog_access_effective(bool host_fenced, bool vdisk_maintenance,
					     bool nonpreferred_only);
/* Pure. Does the free-space alert fire? It does when free * 100 <= threshold * capacity, and
 * never when the threshold is 0. */
bool catalog_pool_alert(uint64_t capacity, uint64_t free, unsigned threshold_pct);

const char *catalog_access_name(enum catalog_access a);
const char *catalog_vdisk_state_name(enum catalog_vdisk_state s);

/* What opening the catalog did to bring rows and files into agreement (docs/catalog.md). */
struct catalog_reconcile {
	unsigned creates_rolled_back; /* creating rows: file and row removed */
	unsigned clones_rolled_back;  /* cloning rows: partial copy and row removed */
	unsigned deletes_finished;    /* deleting rows: file and row removed */
	unsigned sizes_fixed;	      /* ready files whose length differed from the row */
	unsigned orphans_removed;     /* files without a row that held no data */
	unsigned orphans_quarantined; /* files without a row that held data: moved aside */
	unsigned missing;	      /* ready rows without a file: marked MISSING */
};

/* Open (creating if needed) data_dir/catalog.db, migrate it to CATALOG_SCHEMA_VERSION,
 * reconcile, and take the single-writer lock (data_dir/catalog.lock). -EBUSY if another
 * process holds it. rec may be NULL. */
int catalog_open(struct catalog **out, const char *data_dir, struct catalog_reconcile *rec,
		 char *err, size_t errlen);
void catalog_close(struct catalog *cat);
/* The schema version of the open database. */
int catalog_schema_version(struct catalog *cat);

/* Pools. A folder pool's path must be an existing folder; it is stored resolved. */
int catalog_pool_add(struct catalog *cat, const char *name, const char *path,
		     enum catalog_pool_kind kind, unsigned alert_pct, bool quorate, int64_t *id,
		     char *err, size_t errlen);
/* Refused with -EBUSY while the pool holds disks. */
int catalog_pool_remove(struct catalog *cat, int64_t id, bool quorate, char *err, size_t errlen);
int catalog_pool_set_alert(struct catalog *cat, int64_t id, unsigned alert_pct, bool quorate,
			   char *err, size_t errlen);
int catalog_pool_get(struct catalog *cat, int64_t id, struct catalog_pool *out);
int catalog_pool_by_name(struct catalog *cat, const char *name, struct catalog_pool *out);
/* Up to max pools by id; returns how many there are in all (may exceed max) or -errno. */
int catalog_pool_list(struct catalog *cat, struct catalog_pool *out, size_t max);
int catalog_pool_usage(struct catalog *cat, int64_t id, struct catalog_pool_usage *out, char *err,
		       size_t errlen);
/* The file system's part of catalog_pool_usage (capacity, used, free, alert) without the walk
 * over the pool's disks (n_vdisks, provisioned and allocated are 0): one statvfs, cheap enough
 * to run after every commit whatever the number of disks. */
int catalog_pool_space(struct catalog *cat, int64_t id, struct catalog_pool_usage *out, char *err,
		       size_t errlen);

/* Virtual disk lookups. */
int catalog_vdisk_get(struct catalog *cat, const char *id, struct catalog_vdisk *out);
int catalog_vdisk_by_name(struct catalog *cat, int64_t pool_id, const char *name,
			  struct catalog_vdisk *out);
/* Up to max disks of a pool (pool_id 0: of every pool) ordered by id; returns how many there are
 * in all or -errno. */
int catalog_vdisk_list(struct catalog *cat, int64_t pool_id, struct catalog_vdisk *out, size_t max);

/* Group commit. The coord plane gathers the requests of one loop iteration and commits them
 * together: each request is checked and applied in order inside one transaction (a failing
 * request is rolled back alone and gets its own rc), the transaction is made durable with one
 * fsync, then the backing files of creates and deletes are made or removed and a second
 * transaction finishes those disks. When catalog_commit() returns, every request with rc == 0
 * is durable and may be acknowledged. */
enum catalog_op {
	CATALOG_OP_CREATE = 1,
	CATALOG_OP_EXTEND = 2,
	CATALOG_OP_DELETE = 3,
	CATALOG_OP_ATTACH = 4,
	CATALOG_OP_DETACH = 5,
	CATALOG_OP_TRANSFER = 6,
	CATALOG_OP_MAINTENANCE = 7,
};

struct catalog_req {
	/* In. */
	enum catalog_op op;
	bool quorate;
	char vdisk_id[CATALOG_ID_LEN + 1]; /* every op but create */
	uint64_t expected_epoch;	   /* every op but create */
	struct catalog_vdisk_spec spec;	   /* create */
	uint64_t new_size;		   /* extend */
	uint32_t host_id;		   /* attach, detach */
	uint32_t old_owner, new_owner;	   /* transfer; CATALOG_NO_HOST for nobody */
	bool maintenance;		   /* maintenance */
	/* Out. */
	int rc;
	char err[CATALOG_ERR_MAX];
	struct catalog_vdisk vdisk; /* the disk after the request (before it, for delete) */
};

/* Commit n requests (1..CATALOG_BATCH_MAX). Returns 0 when the batch was processed (look at
 * each rc), or a negative errno when the whole batch failed, in which case every rc holds it
 * too and nothing of the batch is durable. */
int catalog_commit(struct catalog *cat, struct catalog_req *reqs, size_t n);

/* One request each, committed on its own. */
int catalog_vdisk_create(struct catalog *cat, const struct catalog_vdisk_spec *spec, bool quorate,
			 struct catalog_vdisk *out, char *err, size_t errlen);
/* The size only grows; *new_size is the size now, so the target can raise CAPACITY DATA HAS
 * CHANGED (sbc3r36 4.8) when it differs from the old one. An equal size is a no-op. */
int catalog_vdisk_extend(struct catalog *cat, const char *id, uint64_t expected_epoch,
			 uint64_t size, bool quorate, uint64_t *new_size, char *err, size_t errlen);
/* Refused with -EBUSY while any host is attached or the disk has an owner. */
int catalog_vdisk_delete(struct catalog *cat, const char *id, uint64_t expected_epoch, bool quorate,
			 char *err, size_t errlen);
int catalog_vdisk_attach(struct catalog *cat, const char *id, uint32_t host_id,
			 uint64_t expected_epoch, bool quorate, char *err, size_t errlen);
int catalog_vdisk_detach(struct catalog *cat, const char *id, uint32_t host_id,
			 uint64_t expected_epoch, bool quorate, char *err, size_t errlen);
/* old_owner -> new_owner (either may be CATALOG_NO_HOST), epoch + 1; *new_epoch is the new
 * epoch. -ESTALE when expected_epoch is not the disk's epoch, -EACCES when old_owner is not
 * the owner, -EPERM without quorum. */
int catalog_vdisk_transfer(struct catalog *cat, const char *id, uint32_t old_owner,
			   uint32_t new_owner, uint64_t expected_epoch, bool quorate,
			   uint64_t *new_epoch, char *err, size_t errlen);
int catalog_vdisk_set_maintenance(struct catalog *cat, const char *id, uint64_t expected_epoch,
				  bool on, bool quorate, char *err, size_t errlen);

/* Progress of a clone: bytes done of total. Returning nonzero cancels the clone (-ECANCELED). */
typedef int (*catalog_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* A new disk with the source's data, in the same pool, unowned, epoch 1, on a new LUN of
 * target_iqn ("" for the source's target). FICLONE (a reflink) is tried first; where the file
 * system has none the data is copied, skipping holes. The source should not be written
 * meanwhile (detached or in maintenance): the copy is of the file as it is read. A clone is
 * never part of a batch: it may take long, and it commits its intent before it copies. */
int catalog_vdisk_clone(struct catalog *cat, const char *src_id, uint64_t expected_epoch,
			const char *name, const char *target_iqn, bool quorate,
			catalog_progress_fn progress, void *ctx, struct catalog_vdisk *out,
			bool *reflinked, char *err, size_t errlen);

/* The same in three steps, so that the copy can run away from the catalog's single writer (the
 * coord plane copies in a worker thread and keeps its event loop free):
 *  1. catalog_vdisk_clone_begin(): the checks, and the new disk's row in state cloning, durable
 *     before it returns (*src_out is the source, *out the new disk);
 *  2. catalog_clone_copy(): no catalog at all, only the files: FICLONE first, else a copy of
 *     the data extents; the copy is fsynced with its folder; on failure it is removed;
 *  3. catalog_vdisk_clone_finish() makes the disk ready, or catalog_vdisk_clone_abort()
 *     removes its file and its row.
 * A crash between 1 and 3 leaves a cloning row, which the next catalog_open() rolls back. */
int catalog_vdisk_clone_begin(struct catalog *cat, const char *src_id, uint64_t expected_epoch,
			      const char *name, const char *target_iqn, bool quorate,
			      struct catalog_vdisk *src_out, struct catalog_vdisk *out, char *err,
			      size_t errlen);
int catalog_clone_copy(const char *src_path, const char *dst_path, uint64_t size,
		       catalog_progress_fn progress, void *ctx, bool *reflinked, char *err,
		       size_t errlen);
int catalog_vdisk_clone_finish(struct catalog *cat, const char *id, struct catalog_vdisk *out,
			       char *err, size_t errlen);
int catalog_vdisk_clone_abort(struct catalog *cat, const char *id, char *err, size_t errlen);

/* Host paths, set by the coordinator when it fences or unfences a host or learns which portal
 * the host reaches the box over. Recorded without quorum: a fence must always be recordable.
 * Every attachment of the host gets its access state recomputed. */
int catalog_host_set_path(struct catalog *cat, uint32_t host_id, bool fenced,
			  bool nonpreferred_only, char *err, size_t errlen);
/* The administrator's preferred portals of a host (csv-coord/catalog_portal.h for the forms):
 * replaces the host's list with specs[0..n) (n = 0: none, every portal counts as preferred).
 * Each spec is checked and stored in its canonical form; -EINVAL names the bad one. Needs
 * quorum, like every change the administrator makes. */
int catalog_host_set_portals(struct catalog *cat, uint32_t host_id, const char *const *specs,
			     size_t n, bool quorate, char *err, size_t errlen);
/* The preferred portals of a host in canonical form, up to max (each CATALOG_PORTAL_MAX
 * bytes); returns how many there are in all or -errno. */
int catalog_host_portals(struct catalog *cat, uint32_t host_id, char (*out)[64], size_t max);
/* The recorded path state of a host (false, false when none was recorded). */
int catalog_host_path(struct catalog *cat, uint32_t host_id, bool *fenced,
		      bool *nonpreferred_only);
/* The access state of an attached host; -ENOENT when it is not attached. */
int catalog_access_get(struct catalog *cat, uint32_t host_id, const char *vdisk_id,
		       enum catalog_access *out);
/* Attached hosts of a disk, up to max; returns how many there are in all or -errno. */
int catalog_vdisk_hosts(struct catalog *cat, const char *vdisk_id, uint32_t *hosts, size_t max);

#endif
