/* Clone jobs of the coord plane's catalog: vdisk_clone and vdisk_show. A clone copies data,
 * which may take minutes: its intent (the new disk's row, state cloning) is committed here,
 * the answer goes out at once, and a worker thread copies the bytes. The thread never touches
 * the catalog: it reports progress through atomics and its end through a flag that
 * coord_catalog_tick() looks at (jobs_tick), and the loop commits the result. So a clone never
 * holds up leases, quorum or fencing, which run in the same loop. Shares coord_catalog_int.h
 * with coord_catalog.c. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csv-coord/catalog.h"
#include "csv-coord/coord_catalog_int.h"
#include "lib/log.h"

#define CC_RATE_SLICE_NS 50000000LL /* a rate-limited worker checks for cancel this often */

/* ---- clone jobs ---- */

struct clone_job *job_find(const char *vid)
{
	struct clone_job *j;

	for (j = cc.jobs; j; j = j->next)
		if (!strcmp(j->vid, vid))
			return j;
	return NULL;
}

/* How far a clone is: the copy's position in the file (holes count as done). */
json_t *progress_json(struct clone_job *j)
{
	uint64_t done = atomic_load(&j->done);

	return json_pack("{s:s, s:I, s:I, s:f, s:I, s:I, s:b}", "source", j->src_vid, "done",
			 (json_int_t)done, "total", (json_int_t)j->size, "percent",
			 j->size ? (double)done * 100.0 / (double)j->size : 100.0, "rate",
			 (json_int_t)j->rate, "elapsed_ms",
			 (json_int_t)((mono_ns() - j->started_ns) / 1000000), "cancelling",
			 atomic_load(&j->cancel));
}

/* The worker's progress callback: publish the position, keep to the rate, stop when asked. */
static int job_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct clone_job *j = ctx;
	int64_t due, now;

	(void)total;
	atomic_store(&j->done, done);
	if (!j->rate)
		return atomic_load(&j->cancel) ? -1 : 0;
	/* Sleep until done bytes are due at the rate, in slices so that a cancel is quick. */
	due = j->started_ns + (int64_t)((double)done * 1e9 / (double)j->rate);
	while (!atomic_load(&j->cancel) && (now = mono_ns()) < due) {
		int64_t ns = due - now < CC_RATE_SLICE_NS ? due - now : CC_RATE_SLICE_NS;
		struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};

		nanosleep(&ts, NULL);
	}
	return atomic_load(&j->cancel) ? -1 : 0;
}

/* The worker thread: files only, never the catalog (catalog.h, catalog_clone_copy). */
static void *job_main(void *arg)
{
	struct clone_job *j = arg;

	j->rc = catalog_clone_copy(j->src_path, j->dst_path, j->size, job_progress, j,
				   &j->reflinked, j->err, sizeof(j->err));
	atomic_store(&j->finished, true);
	return NULL;
}

static void failure_note(const char *vid, const char *why)
{
	struct clone_failure *f;

	if (cc.nfailed == CC_FAILED_MAX) {
		memmove(&cc.failed[0], &cc.failed[1], sizeof(cc.failed[0]) * (CC_FAILED_MAX - 1));
		cc.nfailed--;
	}
	f = &cc.failed[cc.nfailed++];
	snprintf(f->vid, sizeof(f->vid), "%s", vid);
	snprintf(f->why, sizeof(f->why), "%s", why);
}

static const char *failure_find(const char *vid)
{
	unsigned i;

	for (i = cc.nfailed; i-- > 0;)
		if (!strcmp(cc.failed[i].vid, vid))
			return cc.failed[i].why;
	return NULL;
}

static void job_unlink(struct clone_job *d)
{
	struct clone_job **pp;

	for (pp = &cc.jobs; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			return;
		}
}

/* The loop's side of a copy that ended: the result is committed (ready, then exported like a
 * new disk) or the clone is rolled back (its file and its row removed). */
void job_end(struct clone_job *j, bool stopping)
{
	char err[CATALOG_ERR_MAX], why[CATALOG_ERR_MAX + 64];
	double secs;
	struct catalog_vdisk v;
	int rc;

	pthread_join(j->thread, NULL);
	writer_wait();
	secs = (double)(mono_ns() - j->started_ns) / 1e9;
	rc = j->rc;
	if (stopping) {
		rc = -ECANCELED;
		snprintf(j->err, sizeof(j->err), "coord stopped");
	}
	job_unlink(j);
	if (rc == 0 && !j->delete_ctl) {
		rc = catalog_vdisk_clone_finish(cc.cat, j->vid, &v, err, sizeof(err));
		if (rc == 0) {
			log_info("coord: vdisk %s: clone of %s ready (%llu bytes, %s, %.1f s); "
				 "exporting it",
				 j->vid, j->src_vid, (unsigned long long)j->size,
				 j->reflinked ? "reflinked" : "copied", secs);
			sync_add(j->vid, true, false);
			free(j);
			return;
		}
		snprintf(j->err, sizeof(j->err), "%s", err);
	}
	if (j->delete_ctl)
		snprintf(why, sizeof(why), "cancelled by a delete after %.1f s", secs);
	else
		snprintf(why, sizeof(why), "the clone failed after %.1f s: %s", secs, j->err);
	if (catalog_vdisk_clone_abort(cc.cat, j->vid, err, sizeof(err)) < 0)
		log_warnx("coord: vdisk %s: cannot roll the clone back (%s); the next start does",
			  j->vid, err);
	failure_note(j->vid, why);
	if (j->delete_ctl) {
		log_info("coord: vdisk %s: clone of %s %s", j->vid, j->src_vid, why);
		cc.env.reply(j->delete_ctl,
			     json_pack("{s:s, s:b}", "deleted", j->vid, "cancelled", true));
	} else {
		log_warnx("coord: vdisk %s: clone of %s: %s", j->vid, j->src_vid, why);
	}
	free(j);
}

void jobs_tick(void)
{
	struct clone_job *j, *next;

	for (j = cc.jobs; j; j = next) {
		next = j->next;
		if (atomic_load(&j->finished))
			job_end(j, false);
	}
}

/* A clone is not batched (catalog.h): its intent is committed here, the answer (the new disk in
 * state cloning, with its progress) goes out at once, and a worker thread copies. The new disk
 * is exported when the copy has ended and the loop has made it ready (jobs_tick). */
void do_vdisk_clone(uint32_t id, json_t *req)
{
	const char *name = jstr(req, "name");
	char err[CATALOG_ERR_MAX];
	struct catalog_vdisk src, v;
	struct clone_job *j;
	uint64_t epoch, rate = 0;
	int rc;

	if (vdisk_arg(id, req, &src, NULL))
		return;
	if (!name || (json_object_get(req, "rate") && !juint(req, "rate", &rate))) {
		reply_err(id, -EINVAL, "vdisk_clone needs \"name\" (and \"rate\" is bytes/s)");
		return;
	}
	if (!juint(req, "epoch", &epoch))
		epoch = src.epoch;
	j = calloc(1, sizeof(*j));
	if (!j) {
		reply_err(id, -ENOMEM, "out of memory");
		return;
	}
	writer_wait();
	rc = catalog_vdisk_clone_begin(cc.cat, src.id, epoch, name, "", quorate(), &src, &v, err,
				       sizeof(err));
	/* As for a create: a LUN number the configuration uses is skipped (the catalog's
	 * high-water mark only rises, so a second try gets the next one). */
	while (rc == 0 && lun_configured(v.target_iqn, v.lun)) {
		rc = catalog_vdisk_clone_abort(cc.cat, v.id, err, sizeof(err));
		if (rc == 0)
			rc = catalog_vdisk_clone_begin(cc.cat, src.id, epoch, name, "", quorate(),
						       &src, &v, err, sizeof(err));
	}
	if (rc) {
		free(j);
		reply_err(id, rc, err);
		return;
	}
	snprintf(j->vid, sizeof(j->vid), "%s", v.id);
	snprintf(j->src_vid, sizeof(j->src_vid), "%s", src.id);
	snprintf(j->src_path, sizeof(j->src_path), "%s", src.path);
	snprintf(j->dst_path, sizeof(j->dst_path), "%s", v.path);
	j->size = v.size;
	j->rate = rate;
	j->started_ns = mono_ns();
	rc = -pthread_create(&j->thread, NULL, job_main, j);
	if (rc) {
		if (catalog_vdisk_clone_abort(cc.cat, v.id, err, sizeof(err)) < 0)
			log_warnx("coord: vdisk %s: %s", v.id, err);
		free(j);
		reply_err(id, -EIO, "cannot start the copy (no thread)");
		return;
	}
	j->next = cc.jobs;
	cc.jobs = j;
	log_info("coord: vdisk %s: cloning %s (%llu bytes%s)", v.id, src.id,
		 (unsigned long long)v.size, rate ? ", rate-limited" : "");
	cc.env.reply(id, json_pack("{s:o}", "vdisk", vdisk_json(&v)));
}

/* A delete of a disk being cloned cancels the clone: the copy stops, the partial file and the
 * row go, and the delete is answered then. */
void cancel_clone(uint32_t id, const struct catalog_vdisk *v, uint64_t epoch)
{
	struct clone_job *j = job_find(v->id);
	char why[160];

	if (!j) {
		reply_err(id, -EBUSY,
			  "the disk is being cloned by nobody; restart coord to roll "
			  "it back");
		return;
	}
	if (epoch != v->epoch) {
		snprintf(why, sizeof(why),
			 "stale epoch: the request expects %llu, the disk is at %llu",
			 (unsigned long long)epoch, (unsigned long long)v->epoch);
		reply_err(id, -ESTALE, why);
		return;
	}
	if (j->delete_ctl) {
		reply_err(id, -EBUSY, "the clone is being cancelled already");
		return;
	}
	j->delete_ctl = id;
	atomic_store(&j->cancel, true);
}

void do_vdisk_show(uint32_t id, json_t *req)
{
	const char *vid = jstr(req, "id"), *why;
	struct catalog_vdisk v;
	char msg[CATALOG_ERR_MAX + 128];

	if (!vid) {
		reply_err(id, -EINVAL, "vdisk_show needs \"id\"");
		return;
	}
	if (catalog_vdisk_get(cc.cat, vid, &v) == 0) {
		cc.env.reply(id, json_pack("{s:o}", "vdisk", vdisk_json(&v)));
		return;
	}
	why = failure_find(vid);
	if (why) {
		snprintf(msg, sizeof(msg), "no virtual disk %s: %s", vid, why);
		cc.env.reply(id, json_pack("{s:s, s:s}", "error", msg, "code", "clone_failed"));
		return;
	}
	snprintf(msg, sizeof(msg), "no virtual disk %s", vid);
	reply_err(id, -ENOENT, msg);
}
