/* The backing files of a batch's creates, made durable together (catalog_int.h:
 * catalog_files_make). Each fsync of a new file costs a round trip to the device; made one
 * after the other, eight of them cost eight round trips. Issued from several threads at once
 * they reach the device together and cost about one, and the pool folders are fsynced in the
 * same round, because a folder's fsync makes its entries durable whether or not the files'
 * own fsyncs have finished. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "csv-coord/catalog_int.h"

/* More threads than this gain nothing: the device merges what is in flight, and a box has few
 * cores. */
#define FILES_THREADS_MAX 8

struct par {
	void (*fn)(void *ctx, size_t i);
	void *ctx;
	size_t n;
	atomic_size_t next;
};

static void *par_worker(void *arg)
{
	struct par *p = arg;
	size_t i;

	while ((i = atomic_fetch_add(&p->next, 1)) < p->n)
		p->fn(p->ctx, i);
	return NULL;
}

/* fn(ctx, i) for every i below n, on up to FILES_THREADS_MAX threads, the caller's included.
 * A thread that cannot be started leaves its share to the others, so this never fails. */
static void par_run(void (*fn)(void *, size_t), void *ctx, size_t n)
{
	pthread_t th[FILES_THREADS_MAX - 1];
	struct par p = {.fn = fn, .ctx = ctx, .n = n};
	sigset_t all, old;
	size_t k = 0, want;

	atomic_init(&p.next, 0);
	want = n < FILES_THREADS_MAX ? n : FILES_THREADS_MAX;
	if (want > 1) {
		/* The workers take no signals: they belong to the caller's loop. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		while (k + 1 < want && pthread_create(&th[k], NULL, par_worker, &p) == 0)
			k++;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	par_worker(&p);
	while (k > 0)
		pthread_join(th[--k], NULL);
}

struct make_ctx {
	struct catalog_file *files;
	size_t nfiles;
	struct catalog_dir *dirs;
};

static void file_open(void *arg, size_t i)
{
	struct catalog_file *f = &((struct make_ctx *)arg)->files[i];

	f->fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		f->rc = -errno;
		return;
	}
	/* Sparse: ftruncate allocates nothing; blocks come with the first writes (thin
	 * provisioning). */
	if (ftruncate(f->fd, (off_t)f->size) < 0)
		f->rc = -errno;
}

/* Indexes below nfiles are files, the rest folders. */
static void file_sync(void *arg, size_t i)
{
	struct make_ctx *c = arg;

	if (i < c->nfiles) {
		struct catalog_file *f = &c->files[i];

		if (f->rc == 0 && fsync(f->fd) < 0)
			f->rc = -errno;
		return;
	}
	c->dirs[i - c->nfiles].rc = catalog_fsync_dir(c->dirs[i - c->nfiles].path);
}

void catalog_files_make(struct catalog_file *files, size_t nfiles, struct catalog_dir *dirs,
			size_t ndirs)
{
	struct make_ctx c = {.files = files, .nfiles = nfiles, .dirs = dirs};

	for (size_t i = 0; i < nfiles; i++) {
		files[i].rc = 0;
		files[i].fd = -1;
	}
	for (size_t i = 0; i < ndirs; i++)
		dirs[i].rc = 0;
	/* The names first, so that each folder's fsync, issued with the files' own in the
	 * second round, covers every new entry of the batch. */
	par_run(file_open, &c, nfiles);
	par_run(file_sync, &c, nfiles + ndirs);
	for (size_t i = 0; i < nfiles; i++) {
		if (files[i].fd < 0)
			continue; /* not made (an existing file is never touched) */
		close(files[i].fd);
		files[i].fd = -1;
		/* A file this batch made but could not make durable is nobody's. */
		if (files[i].rc < 0)
			unlink(files[i].path);
	}
}
