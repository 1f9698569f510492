/* Crash test for csv-coord/catalog*.c: 100 cycles of a child process that opens the catalog and
 * runs random requests (create, extend, transfer, attach, detach, delete, clone, and batches of
 * transfers through catalog_commit) until it is killed with SIGKILL at a random moment; after
 * each kill the catalog is reopened and checked against a model built from what the child had
 * acknowledged:
 *   - no acknowledged request is lost, and a request that was in flight either happened whole or
 *     not at all;
 *   - every disk is ready (nothing half-created, half-deleted or half-cloned survives a restart),
 *     its backing file exists with the row's size, and LUN numbers are unique per target;
 *   - the pool folder holds exactly the disks' files: nothing orphaned, nothing quarantined.
 * The child tells the parent through a pipe: a "P" line before each request (pending), an "A"
 * (acknowledged) or "F" (refused) line after it, and "D" when the batch is done. A line is one
 * write() below PIPE_BUF, so it arrives whole or not at all. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "csv-coord/catalog.h"

#define CYCLES	  100
#define MAX_DISKS 24
#define N_HOSTS	  3
#define IQN	  "iqn.2024-01.org.holdfast:crash"
#define MiB	  (1024ull * 1024)

struct mdisk {
	bool used;
	char id[CATALOG_ID_LEN + 1];
	char name[CATALOG_NAME_MAX + 1];
	uint64_t size;
	uint32_t owner;
	uint64_t epoch;
	unsigned hosts; /* bit h-1 for host h */
};

/* A request the parent has seen start but not end. */
struct pend {
	char op; /* C create, K clone, E extend, T transfer, H attach/detach, X delete */
	char id[CATALOG_ID_LEN + 1];
	char name[CATALOG_NAME_MAX + 1];
	uint64_t size;
	uint32_t owner;
	uint64_t epoch;
	uint32_t host;
	int on;
};

static char g_dir[64], g_pool[96];
static int64_t g_pool_id;

/* The child. */

static void say(int fd, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (write(fd, line, (size_t)n) != n)
		_exit(3);
}

static int child_load(struct catalog *cat, struct mdisk *d)
{
	struct catalog_vdisk v[MAX_DISKS * 2];
	int n = catalog_vdisk_list(cat, 0, v, MAX_DISKS * 2);

	memset(d, 0, sizeof(*d) * MAX_DISKS);
	for (int i = 0; i < n && i < MAX_DISKS; i++) {
		uint32_t hosts[N_HOSTS + 1];
		int k = catalog_vdisk_hosts(cat, v[i].id, hosts, N_HOSTS + 1);

		d[i].used = true;
		memcpy(d[i].id, v[i].id, CATALOG_ID_LEN + 1);
		snprintf(d[i].name, sizeof(d[i].name), "%s", v[i].name);
		d[i].size = v[i].size;
		d[i].owner = v[i].owner;
		d[i].epoch = v[i].epoch;
		for (int j = 0; j < k && j <= N_HOSTS; j++)
			d[i].hosts |= 1u << (hosts[j] - 1);
	}
	return n;
}

static int pick(struct mdisk *d, unsigned *seed)
{
	int idx[MAX_DISKS], n = 0;

	for (int i = 0; i < MAX_DISKS; i++)
		if (d[i].used)
			idx[n++] = i;
	return n ? idx[rand_r(seed) % n] : -1;
}

static int free_slot(struct mdisk *d)
{
	for (int i = 0; i < MAX_DISKS; i++)
		if (!d[i].used)
			return i;
	return -1;
}

static void child_batch_transfers(struct catalog *cat, struct mdisk *d, int fd, unsigned *seed)
{
	struct catalog_req r[4];
	int which[4], n = 0;

	memset(r, 0, sizeof(r));
	for (int i = 0; i < MAX_DISKS && n < 4; i++) {
		if (!d[i].used || rand_r(seed) % 2)
			continue;
		which[n] = i;
		r[n].op = CATALOG_OP_TRANSFER;
		r[n].quorate = true;
		memcpy(r[n].vdisk_id, d[i].id, CATALOG_ID_LEN + 1);
		r[n].expected_epoch = d[i].epoch;
		r[n].old_owner = d[i].owner;
		r[n].new_owner = rand_r(seed) % (N_HOSTS + 1);
		say(fd, "P T %s %u %" PRIu64 "\n", d[i].id, r[n].new_owner, d[i].epoch + 1);
		n++;
	}
	if (n == 0)
		return;
	catalog_commit(cat, r, (size_t)n);
	for (int k = 0; k < n; k++) {
		struct mdisk *m = &d[which[k]];

		if (r[k].rc == 0) {
			m->owner = r[k].new_owner;
			m->epoch = r[k].vdisk.epoch;
			say(fd, "A T %s %u %" PRIu64 "\n", m->id, m->owner, m->epoch);
		} else {
			say(fd, "F\n");
		}
	}
}

static void child_step(struct catalog *cat, struct mdisk *d, int fd, unsigned *seed, unsigned *ctr)
{
	char err[CATALOG_ERR_MAX];
	int op = rand_r(seed) % 100, i = pick(d, seed), s;
	struct catalog_vdisk v;
	uint64_t x;

	if (i < 0 || (op < 25 && free_slot(d) >= 0)) {
		struct catalog_vdisk_spec sp = {.pool_id = g_pool_id, .size = MiB};

		s = free_slot(d);
		if (s < 0)
			return;
		snprintf(sp.name, sizeof(sp.name), "d%d-%u", getpid(), (*ctr)++);
		snprintf(sp.target_iqn, sizeof(sp.target_iqn), IQN);
		say(fd, "P C %s\n", sp.name);
		if (catalog_vdisk_create(cat, &sp, true, &v, err, sizeof(err)) == 0) {
			d[s] = (struct mdisk){.used = true, .size = v.size, .epoch = v.epoch};
			memcpy(d[s].id, v.id, CATALOG_ID_LEN + 1);
			snprintf(d[s].name, sizeof(d[s].name), "%s", v.name);
			say(fd, "A C %s %s\n", v.id, v.name);
		} else {
			say(fd, "F\n");
		}
	} else if (op < 35) {
		x = d[i].size + MiB;
		say(fd, "P E %s %" PRIu64 "\n", d[i].id, x);
		if (catalog_vdisk_extend(cat, d[i].id, d[i].epoch, x, true, &x, err, sizeof(err)) ==
		    0) {
			d[i].size = x;
			say(fd, "A E %s %" PRIu64 "\n", d[i].id, x);
		} else {
			say(fd, "F\n");
		}
	} else if (op < 55) {
		uint32_t to = rand_r(seed) % (N_HOSTS + 1);

		say(fd, "P T %s %u %" PRIu64 "\n", d[i].id, to, d[i].epoch + 1);
		if (catalog_vdisk_transfer(cat, d[i].id, d[i].owner, to, d[i].epoch, true, &x, err,
					   sizeof(err)) == 0) {
			d[i].owner = to;
			d[i].epoch = x;
			say(fd, "A T %s %u %" PRIu64 "\n", d[i].id, to, x);
		} else {
			say(fd, "F\n");
		}
	} else if (op < 75) {
		uint32_t h = 1 + rand_r(seed) % N_HOSTS;
		bool on = !(d[i].hosts & (1u << (h - 1)));

		say(fd, "P H %s %u %d\n", d[i].id, h, on);
		if ((on ? catalog_vdisk_attach : catalog_vdisk_detach)(
			    cat, d[i].id, h, d[i].epoch, true, err, sizeof(err)) == 0) {
			d[i].hosts ^= 1u << (h - 1);
			say(fd, "A H %s %u %d\n", d[i].id, h, on);
		} else {
			say(fd, "F\n");
		}
	} else if (op < 85) {
		if (d[i].owner != CATALOG_NO_HOST || d[i].hosts)
			return;
		say(fd, "P X %s\n", d[i].id);
		if (catalog_vdisk_delete(cat, d[i].id, d[i].epoch, true, err, sizeof(err)) == 0) {
			say(fd, "A X %s\n", d[i].id);
			d[i].used = false;
		} else {
			say(fd, "F\n");
		}
	} else if (op < 92) {
		char name[CATALOG_NAME_MAX + 1], path[PATH_MAX];
		int fdw;

		s = free_slot(d);
		if (s < 0)
			return;
		/* Give the source some data so the clone really copies. */
		snprintf(path, sizeof(path), "%s/%s.img", g_pool, d[i].id);
		fdw = open(path, O_WRONLY);
		if (fdw >= 0) {
			char buf[4096];

			memset(buf, 'c', sizeof(buf));
			if (pwrite(fdw, buf, sizeof(buf), 8192) < 0)
				_exit(4);
			fsync(fdw);
			close(fdw);
		}
		snprintf(name, sizeof(name), "k%d-%u", getpid(), (*ctr)++);
		say(fd, "P K %s\n", name);
		if (catalog_vdisk_clone(cat, d[i].id, d[i].epoch, name, "", true, NULL, NULL, &v,
					NULL, err, sizeof(err)) == 0) {
			d[s] = (struct mdisk){.used = true, .size = v.size, .epoch = v.epoch};
			memcpy(d[s].id, v.id, CATALOG_ID_LEN + 1);
			snprintf(d[s].name, sizeof(d[s].name), "%s", v.name);
			say(fd, "A K %s %s\n", v.id, v.name);
		} else {
			say(fd, "F\n");
		}
	} else {
		child_batch_transfers(cat, d, fd, seed);
	}
	say(fd, "D\n");
}

static void child(int fd, unsigned seed)
{
	struct mdisk d[MAX_DISKS];
	char err[CATALOG_ERR_MAX];
	struct catalog *cat;
	unsigned ctr = 0;

	if (catalog_open(&cat, g_dir, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "child: %s\n", err);
		_exit(2);
	}
	child_load(cat, d);
	for (;;)
		child_step(cat, d, fd, &seed, &ctr);
}

/* The parent's model. */

struct model {
	struct mdisk d[MAX_DISKS * 2];
	struct pend p[8];
	unsigned np;
	unsigned acked;
};

static struct mdisk *find(struct model *m, const char *id)
{
	for (size_t i = 0; i < sizeof(m->d) / sizeof(m->d[0]); i++)
		if (m->d[i].used && !strcmp(m->d[i].id, id))
			return &m->d[i];
	return NULL;
}

static struct mdisk *add(struct model *m)
{
	for (size_t i = 0; i < sizeof(m->d) / sizeof(m->d[0]); i++) {
		if (!m->d[i].used) {
			memset(&m->d[i], 0, sizeof(m->d[i]));
			m->d[i].used = true;
			return &m->d[i];
		}
	}
	fail_msg("model full");
	abort(); /* not reached: fail_msg() leaves the test */
}

/* The oldest pending request: results come back in the order requests went out. */
static struct pend pop(struct model *m)
{
	struct pend p;

	assert_true(m->np > 0);
	p = m->p[0];
	memmove(&m->p[0], &m->p[1], sizeof(m->p[0]) * (m->np - 1));
	m->np--;
	return p;
}

static void line(struct model *m, char *s)
{
	struct pend p = {0};
	struct mdisk *d;
	char op;

	if (s[0] == 'D') {
		m->np = 0;
		return;
	}
	if (s[0] == 'F') {
		pop(m);
		return;
	}
	op = s[2];
	if (s[0] == 'P') {
		p.op = op;
		switch (op) {
		case 'C':
		case 'K':
			assert_int_equal(sscanf(s + 4, "%63s", p.name), 1);
			break;
		case 'E':
			assert_int_equal(sscanf(s + 4, "%36s %" SCNu64, p.id, &p.size), 2);
			break;
		case 'T':
			assert_int_equal(
				sscanf(s + 4, "%36s %u %" SCNu64, p.id, &p.owner, &p.epoch), 3);
			break;
		case 'H':
			assert_int_equal(sscanf(s + 4, "%36s %u %d", p.id, &p.host, &p.on), 3);
			break;
		case 'X':
			assert_int_equal(sscanf(s + 4, "%36s", p.id), 1);
			break;
		default:
			fail_msg("bad line %s", s);
		}
		assert_true(m->np < 8);
		m->p[m->np++] = p;
		return;
	}
	assert_int_equal(s[0], 'A');
	pop(m);
	m->acked++;
	switch (op) {
	case 'C':
	case 'K':
		d = add(m);
		assert_int_equal(sscanf(s + 4, "%36s %63s", d->id, d->name), 2);
		/* The size is taken from the catalog at the next check: a clone has its source's.
		 */
		d->size = (uint64_t)-1;
		d->epoch = 1;
		break;
	case 'E':
		assert_int_equal(sscanf(s + 4, "%36s %" SCNu64, p.id, &p.size), 2);
		d = find(m, p.id);
		assert_non_null(d);
		d->size = p.size;
		break;
	case 'T':
		assert_int_equal(sscanf(s + 4, "%36s %u %" SCNu64, p.id, &p.owner, &p.epoch), 3);
		d = find(m, p.id);
		assert_non_null(d);
		d->owner = p.owner;
		d->epoch = p.epoch;
		break;
	case 'H':
		assert_int_equal(sscanf(s + 4, "%36s %u %d", p.id, &p.host, &p.on), 3);
		d = find(m, p.id);
		assert_non_null(d);
		if (p.on)
			d->hosts |= 1u << (p.host - 1);
		else
			d->hosts &= ~(1u << (p.host - 1));
		break;
	case 'X':
		assert_int_equal(sscanf(s + 4, "%36s", p.id), 1);
		d = find(m, p.id);
		assert_non_null(d);
		d->used = false;
		break;
	default:
		fail_msg("bad line %s", s);
	}
}

static const struct pend *pending_for(struct model *m, char op, const char *id_or_name)
{
	for (unsigned i = 0; i < m->np; i++) {
		const struct pend *p = &m->p[i];

		if (p->op != op)
			continue;
		if ((op == 'C' || op == 'K') ? !strcmp(p->name, id_or_name)
					     : !strcmp(p->id, id_or_name))
			return p;
	}
	return NULL;
}

/* Reopen, check the catalog, the files and the model against each other, then take the
 * catalog's word for the in-flight requests. */
static void check(struct model *m, struct catalog_reconcile *rec_out)
{
	static struct catalog_vdisk v[MAX_DISKS * 2];
	char err[CATALOG_ERR_MAX], q[PATH_MAX];
	struct catalog *cat;
	struct dirent *e;
	int n, files = 0;
	DIR *dir;

	assert_int_equal(catalog_open(&cat, g_dir, rec_out, err, sizeof(err)), 0);
	n = catalog_vdisk_list(cat, 0, v, MAX_DISKS * 2);
	assert_true(n >= 0 && n <= MAX_DISKS * 2);
	for (int i = 0; i < n; i++) {
		struct mdisk *d = find(m, v[i].id);
		uint32_t hosts[N_HOSTS + 1];
		unsigned mask = 0;
		const struct pend *p;
		struct stat sb;
		int k;

		assert_int_equal(v[i].state, CATALOG_VDISK_READY);
		assert_int_equal(stat(v[i].path, &sb), 0);
		assert_int_equal((uint64_t)sb.st_size, v[i].size);
		for (int j = 0; j < i; j++)
			assert_false(v[j].lun == v[i].lun);
		k = catalog_vdisk_hosts(cat, v[i].id, hosts, N_HOSTS + 1);
		assert_true(k >= 0 && k <= N_HOSTS);
		for (int j = 0; j < k; j++)
			mask |= 1u << (hosts[j] - 1);
		if (!d) {
			/* Only a create or clone in flight may have left a disk the model lacks. */
			p = pending_for(m, 'C', v[i].name);
			if (!p)
				p = pending_for(m, 'K', v[i].name);
			if (!p)
				fail_msg("disk %s (%s) was never acknowledged", v[i].id, v[i].name);
			d = add(m);
			memcpy(d->id, v[i].id, CATALOG_ID_LEN + 1);
			snprintf(d->name, sizeof(d->name), "%s", v[i].name);
			d->size = v[i].size;
			d->epoch = 1;
			assert_int_equal(v[i].epoch, 1);
			assert_int_equal(v[i].owner, CATALOG_NO_HOST);
			assert_int_equal(mask, 0);
			continue;
		}
		if (d->size == (uint64_t)-1)
			d->size = v[i].size;
		if (v[i].size != d->size) {
			p = pending_for(m, 'E', d->id);
			if (!p || p->size != v[i].size)
				fail_msg("disk %s: size %" PRIu64 ", acknowledged %" PRIu64, d->id,
					 v[i].size, d->size);
			d->size = v[i].size;
		}
		if (v[i].epoch != d->epoch || v[i].owner != d->owner) {
			p = pending_for(m, 'T', d->id);
			if (!p || p->epoch != v[i].epoch || p->owner != v[i].owner)
				fail_msg("disk %s: owner %u epoch %" PRIu64
					 ", acknowledged owner %u epoch %" PRIu64,
					 d->id, v[i].owner, v[i].epoch, d->owner, d->epoch);
			d->owner = v[i].owner;
			d->epoch = v[i].epoch;
		}
		if (mask != d->hosts) {
			p = pending_for(m, 'H', d->id);
			if (!p || (mask ^ d->hosts) != 1u << (p->host - 1))
				fail_msg("disk %s: hosts %x, acknowledged %x", d->id, mask,
					 d->hosts);
			d->hosts = mask;
		}
	}
	/* Every acknowledged disk is still there, unless its delete was in flight. */
	for (size_t i = 0; i < sizeof(m->d) / sizeof(m->d[0]); i++) {
		struct mdisk *d = &m->d[i];
		bool found = false;

		if (!d->used)
			continue;
		for (int j = 0; j < n && !found; j++)
			found = !strcmp(v[j].id, d->id);
		if (!found) {
			if (!pending_for(m, 'X', d->id))
				fail_msg("acknowledged disk %s (%s) is lost", d->id, d->name);
			d->used = false;
		}
	}
	/* The pool folder holds the disks' files and nothing else of ours. */
	dir = opendir(g_pool);
	assert_non_null(dir);
	while ((e = readdir(dir))) {
		bool known = false;

		if (!strstr(e->d_name, ".img"))
			continue;
		files++;
		for (int j = 0; j < n && !known; j++)
			known = !strncmp(e->d_name, v[j].id, CATALOG_ID_LEN);
		if (!known)
			fail_msg("orphan file %s", e->d_name);
	}
	closedir(dir);
	assert_int_equal(files, n);
	snprintf(q, sizeof(q), "%s/.quarantine", g_pool);
	assert_int_equal(access(q, F_OK), -1);
	m->np = 0;
	catalog_close(cat);
}

static void drain(int fd, struct model *m, char *buf, size_t *len, int timeout_ms)
{
	struct timespec t0, t;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	ssize_t k;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int left = timeout_ms;

		if (timeout_ms > 0) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			left = timeout_ms - (int)((t.tv_sec - t0.tv_sec) * 1000 +
						  (t.tv_nsec - t0.tv_nsec) / 1000000);
			if (left <= 0)
				return;
		}
		if (poll(&pfd, 1, left) <= 0)
			return;
		k = read(fd, buf + *len, 8192 - *len - 1);
		if (k <= 0)
			return;
		*len += (size_t)k;
		buf[*len] = '\0';
		for (char *nl; (nl = strchr(buf, '\n'));) {
			*nl = '\0';
			line(m, buf);
			memmove(buf, nl + 1, *len - (size_t)(nl + 1 - buf) + 1);
			*len -= (size_t)(nl + 1 - buf);
		}
	}
}

static void test_catalog_survives_100_kill9_cycles(void **state)
{
	static struct model m;
	struct catalog_reconcile rec, sum = {0};
	char err[CATALOG_ERR_MAX], buf[8192];
	unsigned seed = (unsigned)time(NULL);
	struct catalog *cat;
	unsigned flights = 0;

	if (getenv("HF_CRASH_SEED"))
		seed = (unsigned)strtoul(getenv("HF_CRASH_SEED"), NULL, 10);
	printf("crash test seed %u (HF_CRASH_SEED to repeat)\n", seed);
	strcpy(g_dir, "/tmp/hf-catalog-crash-XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	snprintf(g_pool, sizeof(g_pool), "%s/pool", g_dir);
	assert_int_equal(mkdir(g_pool, 0700), 0);
	assert_int_equal(catalog_open(&cat, g_dir, NULL, err, sizeof(err)), 0);
	assert_int_equal(catalog_pool_add(cat, "p", g_pool, CATALOG_POOL_FOLDER, 5, true,
					  &g_pool_id, err, sizeof(err)),
			 0);
	catalog_close(cat);

	for (int c = 0; c < CYCLES; c++) {
		int pfd[2], status;
		size_t len = 0;
		pid_t pid;

		assert_int_equal(pipe(pfd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			child(pfd[1], seed + (unsigned)c);
		}
		close(pfd[1]);
		/* Let it run 5 to 80 ms: long enough for a few requests, and a kill that lands
		 * anywhere, the child's own open and reconcile included. */
		drain(pfd[0], &m, buf, &len, 5 + (int)(rand_r(&seed) % 76));
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		drain(pfd[0], &m, buf, &len, 0);
		close(pfd[0]);
		if (m.np)
			flights++;
		check(&m, &rec);
		sum.creates_rolled_back += rec.creates_rolled_back;
		sum.clones_rolled_back += rec.clones_rolled_back;
		sum.deletes_finished += rec.deletes_finished;
		sum.sizes_fixed += rec.sizes_fixed;
		sum.orphans_removed += rec.orphans_removed;
		sum.orphans_quarantined += rec.orphans_quarantined;
		sum.missing += rec.missing;
	}
	printf("%d cycles, %u acknowledged requests, %u kills with a request in flight\n", CYCLES,
	       m.acked, flights);
	printf("reconciled: %u creates rolled back, %u clones rolled back, %u deletes finished, "
	       "%u sizes fixed, %u orphans removed, %u quarantined, %u missing\n",
	       sum.creates_rolled_back, sum.clones_rolled_back, sum.deletes_finished,
	       sum.sizes_fixed, sum.orphans_removed, sum.orphans_quarantined, sum.missing);
	assert_int_equal(sum.missing, 0);
	assert_int_equal(sum.orphans_quarantined, 0);
	assert_true(m.acked > CYCLES); /* the children did real work */
	snprintf(buf, sizeof(buf), "rm -rf '%s'", g_dir);
	assert_int_equal(system(buf), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_catalog_survives_100_kill9_cycles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
