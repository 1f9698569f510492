/* Internals shared by the coord plane's catalog files (csv-coord/coord_catalog.c, coord_pool.c,
 * coord_clone.c, coord_access.c, coord_catalog_host.c); not an API: coord_catalog.h is. Every
 * function here runs in the coord loop. */
#ifndef HOLDFAST_CSV_COORD_COORD_CATALOG_INT_H
#define HOLDFAST_CSV_COORD_COORD_CATALOG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "csv-coord/catalog.h"
#include "csv-coord/coord_catalog.h"
#include "csv-coord/pool_device.h"

/* Sizes of the tables the loop reads the catalog into. */
#define CC_LIST_MAX	4096
#define CC_POOLS_MAX	256
#define CC_ATTACHED_MAX 64
#define CC_FAILED_MAX	16 /* clone failures remembered for vdisk_show */

/* What an operation (struct op) does. */
enum op_kind {
	OP_CREATE,
	OP_EXTEND,
	OP_DELETE,
	OP_ATTACH,
	OP_DETACH,
	OP_TRANSFER,
	OP_MAINTENANCE,
};

/* One control request on a disk, from its arrival to its answer. */
struct op {
	struct op *next;
	bool queued; /* its catalog requests wait for the next flush */
	uint32_t ctl_id;
	enum op_kind kind;
	char vid[CATALOG_ID_LEN + 1]; /* "" for a create until it is committed */
	struct catalog_req req[3]; /* a host's delete: release, detach, delete */
	unsigned nreq;
	uint64_t old_size;
	char err[CATALOG_ERR_MAX + 64]; /* the answer's error, when there is one */
	int rc;
};

/* A clone whose bytes a worker thread copies. The loop owns everything but the atomics and,
 * until `finished` is set, rc, reflinked and err, which the worker writes last. */
struct clone_job {
	struct clone_job *next;
	char vid[CATALOG_ID_LEN + 1];
	char src_vid[CATALOG_ID_LEN + 1];
	char src_path[CATALOG_PATH_MAX];
	char dst_path[CATALOG_PATH_MAX];
	uint64_t size;
	uint64_t rate; /* bytes per second at most; 0: as fast as the disks go */
	int64_t started_ns;
	pthread_t thread;
	_Atomic uint64_t done;
	atomic_bool cancel;
	atomic_bool finished;
	int rc;
	bool reflinked;
	char err[CATALOG_ERR_MAX];
	uint32_t delete_ctl; /* a vdisk_delete waiting for the cancelled copy to stop; 0: none */
};

/* A clone that failed or was cancelled, for vdisk_show of its (now gone) id. */
struct clone_failure {
	char vid[CATALOG_ID_LEN + 1];
	char why[CATALOG_ERR_MAX + 64];
};

struct sync;	 /* coord_catalog.c's own */
struct pool_job; /* coord_pool.c's own */

/* Everything the loop holds of the catalog (coord_catalog.c defines it). */
struct coord_catalog_state {
	struct coord_catalog_env env;
	struct catalog *cat;
	char open_err[CATALOG_ERR_MAX];
	struct op *ops;
	struct sync *syncs;
	struct clone_job *jobs;
	struct clone_failure failed[CC_FAILED_MAX];
	unsigned nfailed;
	char *sig; /* the member initiators the last policies were made with */
	struct catalog_req batch[CATALOG_BATCH_MAX];
	/* The free-space alert of each pool as last seen, so that an event is logged only when
	 * it turns on or off, not at every look. */
	struct {
		int64_t id;
		bool alert;
	} alerts[CC_POOLS_MAX];
	unsigned nalerts;
	int64_t pool_check_ns; /* the next periodic look */
	/* Each block pool as the box found it at start or add: its state, the device that
	 * holds it now, and why it is not online. */
	struct pool_seen {
		int64_t id;
		enum pool_state state;
		char device[POOL_DEVICE_PATH_MAX + 1];
		char why[POOL_DEVICE_ERR_MAX];
	} seen[CC_POOLS_MAX];
	unsigned nseen;
};
extern struct coord_catalog_state cc;

/* ---- coord_catalog.c: helpers ---- */

/* CLOCK_MONOTONIC in ns. */
int64_t mono_ns(void);
/* Does the cluster have quorum now? */
bool quorate(void);
/* Answer control request id with an error: why, and a code named after rc (a negative errno). */
void reply_err(uint32_t id, int rc, const char *why);
/* A host's name, or NULL for nobody or an unknown id. */
const char *host_name(uint32_t id);
/* Relay req (taken) to the target; cb gets the answer, or an error answer at once when nothing
 * could be sent. Call it last: the callback may free ctx. */
void send_target(json_t *req, coord_catalog_reply_fn cb, void *ctx);
/* The "error" of the target's answer r, or NULL when it has none. */
const char *reply_error(json_t *r);
/* A disk as vdisk_list and vdisk_show show it. */
json_t *vdisk_json(const struct catalog_vdisk *v);
/* Have the target take the disk's export (add), size (resize) and policy; retried until it does. */
void sync_add(const char *vid, bool add, bool resize);
/* Is this LUN of this target one the configuration gives (so not the catalog's to use)? */
bool lun_configured(const char *iqn, uint32_t lun);
/* Wait for the batch in flight, if any, before the loop writes the catalog itself. */
void writer_wait(void);

/* ---- coord_catalog.c: operations and requests ---- */

/* A new operation of control request ctl_id on disk vid (NULL: not known yet); NULL: no
 * memory. */
struct op *op_new(uint32_t ctl_id, enum op_kind kind, const char *vid);
/* Queue the op's catalog requests for the next flush. */
void op_queue(struct op *o);
/* Target callback: the LUN of a delete is gone, the op's requests are queued (or it fails). */
void op_on_remove(void *ctx, json_t *r);
/* A string field of req, or NULL. */
const char *jstr(json_t *req, const char *key);
/* A non-negative integer field; false when it is missing or bad. */
bool juint(json_t *req, const char *key, uint64_t *out);
/* The disk of req's "id", not busy, and its "epoch" (when epoch is not NULL); else answered
 * with the error, which is returned. */
int vdisk_arg(uint32_t id, json_t *req, struct catalog_vdisk *v, uint64_t *epoch);
/* A catalog request of op on vid, expecting epoch. */
void req_init(struct catalog_req *r, enum catalog_op op, const char *vid, uint64_t epoch);
/* The vdisk requests a host may make too (coord_catalog_host.c); owner: the new disk's
 * owner, CATALOG_NO_HOST for the admin's. */
void do_vdisk_create(uint32_t id, json_t *req, uint32_t owner);
void do_vdisk_extend(uint32_t id, json_t *req);
void do_vdisk_attach(uint32_t id, json_t *req, bool attach);
void do_vdisk_transfer(uint32_t id, json_t *req);

/* ---- coord_pool.c ---- */

/* catalog_pool_attach_fn: at start, mount a block pool's device found by its UUID. */
bool pool_attach(void *arg, const struct catalog_pool *p);
/* Unmount what is mounted under data/pools and no pool names. */
void pools_sweep(void);
/* Look at the pools' free space; an event for each alert turned on or off. */
void pools_check(void);
/* The ends of the pool jobs whose worker is done; at close, every job waited for. */
void pool_jobs_tick(void);
void pool_jobs_stop(void);
/* The job (a remove) of pool id, if any: no disk is made in it meanwhile. */
struct pool_job *pool_job_by_pool(int64_t id);
void do_pool_add(uint32_t id, json_t *req);
void do_pool_list(uint32_t id);
void do_pool_remove(uint32_t id, json_t *req);

/* ---- coord_clone.c ---- */

/* The clone job copying disk vid, if any. */
struct clone_job *job_find(const char *vid);
/* How far a clone is, for the disk's JSON. */
json_t *progress_json(struct clone_job *j);
/* The ends of the copies whose worker is done; job_end() settles one (stopping: at close,
 * rolled back without an answer). */
void jobs_tick(void);
void job_end(struct clone_job *j, bool stopping);
/* A delete of a disk being cloned: cancel the copy, answer when it has stopped. */
void cancel_clone(uint32_t id, const struct catalog_vdisk *v, uint64_t epoch);
void do_vdisk_clone(uint32_t id, json_t *req);
void do_vdisk_show(uint32_t id, json_t *req);

/* ---- coord_access.c ---- */

/* Ask the target for its sessions now and then, and record each host's path. */
void paths_tick(int64_t now_ns);
/* {host: access state} of the disk's attached hosts. */
json_t *access_map_json(const struct catalog_vdisk *v);
void do_vdisk_maintenance(uint32_t id, json_t *req);
void do_vdisk_access(uint32_t id, json_t *req);
void do_host_portals(uint32_t id, json_t *req);

#endif
