/* Catalog operations through holdfastd's control socket (issue 5, acceptance 3), the load
 * generator behind tests/bench/catalog_bench.sh.
 *
 * Every request is durable when its answer arrives (the coord plane answers after the catalog
 * commit and the target's confirmation), so the latency measured is the durable latency. The
 * control protocol answers one request per connection before it reads the next, so
 * concurrency comes from connections: with N connections N requests are in flight, and the
 * coord plane can put them into one group commit. One thread per connection, all started
 * together per phase; the clock runs from just before a request is written to just after its
 * whole answer line is read. (A Python client with one thread per connection was used before;
 * its interpreter lock added up to milliseconds of its own to the tail.)
 *
 * Phases: create (each connection makes its own K disks), attach (to FROM, which becomes the
 * owner: epoch 1 -> 2), transfer (FROM -> TO: epoch 2 -> 3). Prints a line per phase and a
 * JSON summary last; exits 1 when a request was refused, 2 on a usage or connection error.
 *
 * usage: catalog_load SOCKET POOL --conns N --disks K [--size BYTES] [--from H] [--to H]
 *                     [--tag T]
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define LINE_MAX_BYTES (1u << 20)

enum phase { PH_CREATE, PH_ATTACH, PH_TRANSFER, PH_COUNT };
static const char *const phase_name[PH_COUNT] = {"create", "attach", "transfer"};

struct opts {
	const char *sock, *pool, *from, *to, *tag;
	int conns, disks;
	uint64_t size;
};

struct conn {
	int fd;
	char *buf; /* bytes read past the last answer line */
	size_t len;
	char **ids; /* the disks this connection made */
	int nids;
	double *lat; /* seconds, one per request of the current phase */
	int nlat;
	int errors;
	char first_error[256];
};

static struct opts o = {.from = "h1", .to = "h2", .tag = "b", .conns = 1, .disks = 100,
			.size = 1u << 20};
static struct conn *conns;
static pthread_barrier_t start_line;
static enum phase cur;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int conn_open(struct conn *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (strlen(o.sock) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, o.sock);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	c->buf = malloc(LINE_MAX_BYTES);
	c->ids = calloc((size_t)o.disks, sizeof(*c->ids));
	c->lat = calloc((size_t)o.disks, sizeof(*c->lat));
	return c->buf && c->ids && c->lat ? 0 : -ENOMEM;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Send req (taken) and read its answer line; NULL when the connection broke or the answer is
 * not JSON. */
static json_t *conn_call(struct conn *c, json_t *req, double *seconds)
{
	char *text = json_dumps(req, JSON_COMPACT);
	size_t tlen;
	char *nl;
	json_t *ans;
	double t0;

	json_decref(req);
	if (!text)
		return NULL;
	tlen = strlen(text);
	text[tlen] = '\n'; /* json_dumps' NUL becomes the line's end */
	t0 = now_s();
	if (write_all(c->fd, text, tlen + 1) < 0) {
		free(text);
		return NULL;
	}
	free(text);
	while (!(nl = memchr(c->buf, '\n', c->len))) {
		ssize_t k;

		if (c->len == LINE_MAX_BYTES)
			return NULL;
		k = read(c->fd, c->buf + c->len, LINE_MAX_BYTES - c->len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return NULL;
		c->len += (size_t)k;
	}
	*seconds = now_s() - t0;
	ans = json_loadb(c->buf, (size_t)(nl - c->buf), 0, NULL);
	c->len -= (size_t)(nl + 1 - c->buf);
	memmove(c->buf, nl + 1, c->len);
	return ans;
}

static json_t *request(int i, int k)
{
	char name[128];

	switch (cur) {
	case PH_CREATE:
		snprintf(name, sizeof(name), "%s-c%d-d%d", o.tag, i, k);
		return json_pack("{s:s, s:s, s:s, s:I}", "cmd", "vdisk_create", "pool", o.pool, "name",
				 name, "size", (json_int_t)o.size);
	case PH_ATTACH:
		return json_pack("{s:s, s:s, s:s, s:i}", "cmd", "vdisk_attach", "id",
				 conns[i].ids[k], "host", o.from, "epoch", 1);
	default:
		return json_pack("{s:s, s:s, s:s, s:s, s:i}", "cmd", "vdisk_transfer", "id",
				 conns[i].ids[k], "from", o.from, "to", o.to, "epoch", 2);
	}
}

static void *worker(void *arg)
{
	int i = (int)(intptr_t)arg;
	struct conn *c = &conns[i];
	int n = cur == PH_CREATE ? o.disks : c->nids;

	c->nlat = 0;
	pthread_barrier_wait(&start_line);
	for (int k = 0; k < n; k++) {
		double dt = 0;
		json_t *ans = conn_call(c, request(i, k), &dt);
		json_t *v;

		if (!ans) {
			fprintf(stderr, "catalog_load: connection %d: no answer\n", i);
			exit(2);
		}
		c->lat[c->nlat++] = dt;
		if (json_object_get(ans, "error")) {
			if (!c->errors++) {
				char *t = json_dumps(ans, JSON_COMPACT);

				snprintf(c->first_error, sizeof(c->first_error), "%s", t ? t : "?");
				free(t);
			}
		} else if (cur == PH_CREATE && (v = json_object_get(ans, "vdisk")) &&
			   json_is_string(json_object_get(v, "id"))) {
			c->ids[c->nids++] = strdup(json_string_value(json_object_get(v, "id")));
		}
		json_decref(ans);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank percentile of sorted values. */
static double pct(const double *v, size_t n, double p)
{
	size_t r;

	if (!n)
		return 0;
	r = (size_t)(p / 100.0 * (double)n + 0.999999);
	return v[r ? (r > n ? n - 1 : r - 1) : 0];
}

static json_t *run_phase(enum phase ph)
{
	pthread_t *th = calloc((size_t)o.conns, sizeof(*th));
	size_t total = 0, at = 0;
	double wall, *all;
	int errors = 0;
	const char *first = NULL;
	json_t *r;

	cur = ph;
	pthread_barrier_init(&start_line, NULL, (unsigned)o.conns + 1);
	for (int i = 0; i < o.conns; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i)) {
			fprintf(stderr, "catalog_load: cannot start a thread\n");
			exit(2);
		}
	pthread_barrier_wait(&start_line);
	wall = now_s();
	for (int i = 0; i < o.conns; i++)
		pthread_join(th[i], NULL);
	wall = now_s() - wall;
	pthread_barrier_destroy(&start_line);
	free(th);
	for (int i = 0; i < o.conns; i++)
		total += (size_t)conns[i].nlat;
	all = calloc(total ? total : 1, sizeof(*all));
	for (int i = 0; i < o.conns; i++) {
		memcpy(all + at, conns[i].lat, (size_t)conns[i].nlat * sizeof(*all));
		at += (size_t)conns[i].nlat;
		errors += conns[i].errors;
		if (conns[i].errors && !first)
			first = conns[i].first_error;
		conns[i].errors = 0;
	}
	qsort(all, total, sizeof(*all), cmp_double);
	r = json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:i}", "ops", (json_int_t)total, "seconds",
		      wall, "ops_per_s", wall > 0 ? (double)total / wall : 0.0, "p50_ms",
		      pct(all, total, 50) * 1000, "p99_ms", pct(all, total, 99) * 1000, "max_ms",
		      total ? all[total - 1] * 1000 : 0.0, "errors", errors);
	printf("conns=%-2d %-9s %6zu ops in %7.3f s: %8.1f ops/s  p50 %7.3f ms  p99 %7.3f ms  max "
	       "%7.3f ms",
	       o.conns, phase_name[ph], total, wall, wall > 0 ? (double)total / wall : 0.0,
	       pct(all, total, 50) * 1000, pct(all, total, 99) * 1000,
	       total ? all[total - 1] * 1000 : 0.0);
	if (errors)
		printf("  ERRORS %d: %s", errors, first);
	printf("\n");
	fflush(stdout);
	free(all);
	return r;
}

static int usage(void)
{
	fprintf(stderr, "usage: catalog_load SOCKET POOL --conns N --disks K [--size BYTES] "
			"[--from HOST] [--to HOST] [--tag T]\n");
	return 2;
}

int main(int argc, char **argv)
{
	json_t *sum = json_object();
	double ops = 0, secs = 0;
	bool refused = false;

	if (argc < 3)
		return usage();
	o.sock = argv[1];
	o.pool = argv[2];
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			return usage();
		if (!strcmp(a, "--conns"))
			o.conns = atoi(v);
		else if (!strcmp(a, "--disks"))
			o.disks = atoi(v);
		else if (!strcmp(a, "--size"))
			o.size = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--from"))
			o.from = v;
		else if (!strcmp(a, "--to"))
			o.to = v;
		else if (!strcmp(a, "--tag"))
			o.tag = v;
		else
			return usage();
		i++;
	}
	if (o.conns < 1 || o.conns > 1024 || o.disks < 1 || o.size == 0)
		return usage();
	conns = calloc((size_t)o.conns, sizeof(*conns));
	for (int i = 0; i < o.conns; i++) {
		int rc = conn_open(&conns[i]);

		if (rc) {
			fprintf(stderr, "catalog_load: %s: %s\n", o.sock, strerror(-rc));
			return 2;
		}
	}
	for (int ph = 0; ph < PH_COUNT; ph++) {
		json_t *r = run_phase((enum phase)ph);

		ops += (double)json_integer_value(json_object_get(r, "ops"));
		secs += json_real_value(json_object_get(r, "seconds"));
		refused |= json_integer_value(json_object_get(r, "errors")) > 0;
		json_object_set_new(sum, phase_name[ph], r);
	}
	json_object_set_new(sum, "all", json_pack("{s:f, s:f}", "ops", ops, "ops_per_s",
						  secs > 0 ? ops / secs : 0.0));
	printf("conns=%-2d all       %6.0f ops: %8.1f ops/s\n", o.conns, ops, secs > 0 ? ops / secs : 0);
	{
		char *t = json_dumps(sum, JSON_COMPACT);

		printf("%s\n", t ? t : "{}");
		free(t);
	}
	json_decref(sum);
	return refused ? 1 : 0;
}
