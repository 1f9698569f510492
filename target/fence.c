/* Fencing at the target: see fence.h. The fence list lives under tgt_global.lock (only logins
 * and the control plane read it); the command path reads one flag in the session's nexus. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "target/fence.h"
#include "target/transport.h"

struct fence {
	struct fence *next;
	char host[HF_NAME_MAX * 4];
	uint32_t epoch;
	size_t n;
	char initiators[TGT_FENCE_MAX_INITIATORS][HF_IQN_MAX];
	time_t since;
	bool lifted; /* unfenced: kept to refuse stale epochs */
};

static struct fence *fences;
static bool logins_held; /* under tgt_global.lock */
static const struct abort_answer fenced_answer = {SCSI_STATUS_RESERVATION_CONFLICT, NULL};

static struct fence *fence_find_locked(const char *host)
{
	for (struct fence *f = fences; f; f = f->next)
		if (strcmp(f->host, host) == 0)
			return f;
	return NULL;
}

static bool fence_names(const struct fence *f, const char *initiator)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->initiators[i], initiator) == 0)
			return true;
	return false;
}

bool tgt_fence_refuses_login_locked(const char *initiator)
{
	for (struct fence *f = fences; f; f = f->next)
		if (!f->lifted && fence_names(f, initiator))
			return true;
	return false;
}

/* One sweep: which sessions it reaches and the rendezvous with the caller. */
struct fence_sweep {
	struct fence snapshot;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	unsigned sessions;
	uint64_t start_ns, refused_ns;
	int workers_left;
};

static bool fence_match(const struct tmf_wait *w, const struct session *s)
{
	const struct fence_sweep *fs = w->arg;

	return fence_names(&fs->snapshot, s->initiator);
}

static void fence_on_session(struct tmf_wait *w, struct session *s, unsigned aborted)
{
	struct fence_sweep *fs = w->arg;

	if (!s->nexus.fenced) {
		__atomic_store_n(&s->nexus.fenced, true, __ATOMIC_RELEASE);
		__atomic_fetch_add(&fs->sessions, 1, __ATOMIC_RELAXED);
		log_warnx("%s: %s session tsih %u fenced (%u tasks aborted on this connection)",
			  __func__, s->initiator, s->tsih, aborted);
	}
}

static void fence_finish(struct tmf_wait *w)
{
	struct fence_sweep *fs = w->arg;

	pthread_mutex_lock(&fs->lock);
	fs->done = true;
	pthread_cond_signal(&fs->cond);
	pthread_mutex_unlock(&fs->lock);
}

/* Runs on each worker after its sessions were flagged: the moment writes are refused there. */
static void fence_worker_mark(void *arg)
{
	struct fence_sweep *fs = arg;

	pthread_mutex_lock(&fs->lock);
	if (--fs->workers_left == 0) {
		fs->refused_ns = tgt_now_ns() - fs->start_ns;
		pthread_cond_signal(&fs->cond);
	}
	pthread_mutex_unlock(&fs->lock);
}

int tgt_fence(const char *host, const char *const *initiators, size_t n, uint32_t epoch,
	      struct tgt_fence_result *res)
{
	struct fence_sweep fs = {0};
	struct fence *f;
	struct tmf_wait *w;

	if (!host || !*host || n == 0 || n > TGT_FENCE_MAX_INITIATORS)
		return -EINVAL;
	pthread_mutex_lock(&tgt_global.lock);
	f = fence_find_locked(host);
	if (f && epoch < f->epoch) {
		pthread_mutex_unlock(&tgt_global.lock);
		log_warnx("%s: %s: epoch %u is older than its fence (%u)", __func__, host, epoch,
			  f->epoch);
		return -ESTALE;
	}
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f) {
			pthread_mutex_unlock(&tgt_global.lock);
			return -ENOMEM;
		}
		snprintf(f->host, sizeof(f->host), "%s", host);
		f->next = fences;
		fences = f;
	}
	f->epoch = epoch;
	f->n = n;
	for (size_t i = 0; i < n; i++)
		snprintf(f->initiators[i], sizeof(f->initiators[i]), "%s", initiators[i]);
	f->since = time(NULL);
	f->lifted = false;
	fs.snapshot = *f;
	pthread_mutex_unlock(&tgt_global.lock);

	log_warnx("%s: fencing host %s (epoch %u, %zu initiators)", __func__, host, epoch, n);
	pthread_mutex_init(&fs.lock, NULL);
	pthread_cond_init(&fs.cond, NULL);
	fs.start_ns = tgt_now_ns();
	fs.workers_left = tgt_global.nworkers;
	w = tmf_wait_alloc(NULL, NULL);
	w->arg = &fs;
	w->match = fence_match;
	w->on_session = fence_on_session;
	w->finish = fence_finish;
	/* The host's commands in flight end as its later writes do, rather than leaving its
	 * initiator to wait for them until its own timeout. A write still held before the
	 * medium is taken back; one already on the medium may land, which SCSI allows for a
	 * command that ends in error (its blocks are indeterminate to the initiator). */
	w->answer = &fenced_answer;
	/* Every worker flags and aborts its sessions of the host, then notes the time. */
	tmf_abort_everywhere(NULL, NULL, w);
	for (int i = 0; i < tgt_global.nworkers; i++) {
		struct worker_msg *m = calloc(1, sizeof(*m));

		if (!m)
			fatal("%s", __func__);
		m->type = WORKER_MSG_CALL;
		m->fn = fence_worker_mark;
		m->arg = &fs;
		worker_post(tgt_global.workers[i], m);
	}
	tmf_wait_put(w);
	pthread_mutex_lock(&fs.lock);
	while (!fs.done || fs.workers_left > 0)
		pthread_cond_wait(&fs.cond, &fs.lock);
	pthread_mutex_unlock(&fs.lock);
	if (res) {
		res->sessions = fs.sessions;
		res->refused_ns = fs.refused_ns;
		res->drained_ns = tgt_now_ns() - fs.start_ns;
	}
	log_warnx("%s: host %s fenced: %u sessions, writes refused after %.3f ms, tasks drained "
		  "after %.3f ms",
		  __func__, host, fs.sessions, fs.refused_ns / 1e6,
		  (tgt_now_ns() - fs.start_ns) / 1e6);
	pthread_cond_destroy(&fs.cond);
	pthread_mutex_destroy(&fs.lock);
	return 0;
}

/* What each worker needs to lift a fence; the last worker frees it. */
struct unfence_job {
	struct fence f;
	int workers_left;
};

/* On each worker: the host's live sessions may write again. */
static void unfence_worker(void *arg)
{
	struct unfence_job *job = arg;
	struct worker *w = tgt_current_worker;

	for (struct conn *c = w->conns; c; c = c->wnext)
		if (c->session && fence_names(&job->f, c->session->initiator))
			__atomic_store_n(&c->session->nexus.fenced, false, __ATOMIC_RELEASE);
	if (__atomic_sub_fetch(&job->workers_left, 1, __ATOMIC_ACQ_REL) == 0)
		free(job);
}

int tgt_unfence(const char *host, uint32_t epoch)
{
	struct unfence_job *job = calloc(1, sizeof(*job));
	struct fence *f;

	if (!job)
		return -ENOMEM;
	pthread_mutex_lock(&tgt_global.lock);
	f = fence_find_locked(host);
	if (!f || f->lifted) {
		pthread_mutex_unlock(&tgt_global.lock);
		free(job);
		return -ENOENT;
	}
	if (epoch <= f->epoch) {
		pthread_mutex_unlock(&tgt_global.lock);
		free(job);
		log_warnx("%s: %s: epoch %u is not newer than its fence (%u)", __func__, host,
			  epoch, f->epoch);
		return -ESTALE;
	}
	f->lifted = true;
	f->epoch = epoch;
	job->f = *f;
	job->workers_left = tgt_global.nworkers;
	pthread_mutex_unlock(&tgt_global.lock);
	for (int i = 0; i < tgt_global.nworkers; i++) {
		struct worker_msg *m = calloc(1, sizeof(*m));

		if (!m)
			fatal("%s", __func__);
		m->type = WORKER_MSG_CALL;
		m->fn = unfence_worker;
		m->arg = job;
		worker_post(tgt_global.workers[i], m);
	}
	log_warnx("%s: host %s unfenced under epoch %u", __func__, host, epoch);
	return 0;
}

void tgt_fence_hold_logins(void)
{
	pthread_mutex_lock(&tgt_global.lock);
	logins_held = true;
	pthread_mutex_unlock(&tgt_global.lock);
}

void tgt_fence_open_logins(void)
{
	pthread_mutex_lock(&tgt_global.lock);
	logins_held = false;
	pthread_mutex_unlock(&tgt_global.lock);
}

bool tgt_fence_logins_held_locked(void)
{
	return logins_held;
}

bool tgt_fence_logins_held(void)
{
	bool held;

	pthread_mutex_lock(&tgt_global.lock);
	held = logins_held;
	pthread_mutex_unlock(&tgt_global.lock);
	return held;
}

char *tgt_fence_list_json(void)
{
	json_t *arr = json_array();
	char *out;

	pthread_mutex_lock(&tgt_global.lock);
	for (struct fence *f = fences; f; f = f->next) {
		json_t *names = json_array();

		for (size_t i = 0; i < f->n; i++)
			json_array_append_new(names, json_string(f->initiators[i]));
		json_array_append_new(arr, json_pack("{s:s, s:I, s:o, s:I, s:b}", "host", f->host,
						     "epoch", (json_int_t)f->epoch, "initiators",
						     names, "since", (json_int_t)f->since, "fenced",
						     !f->lifted));
	}
	pthread_mutex_unlock(&tgt_global.lock);
	out = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return out;
}
