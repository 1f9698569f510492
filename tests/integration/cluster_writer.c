/* cluster_writer: random 4 KiB writes at a fixed queue depth from one initiator name, with the
 * wall-clock time of every change of outcome, so the cluster tests can tell when a fenced
 * host's writes stopped succeeding and compare that with the coordinator's event log (both
 * read CLOCK_REALTIME on the same machine).
 *
 *   cluster_writer URL --initiator IQN [--qd N] [--seconds S] [--stop-on-error]
 *
 * SIGTERM or SIGINT ends the run early as the deadline would: no new writes, the outstanding
 * ones are waited for, the result is printed.
 *
 * Output, one line each, "key=value" words after a tag:
 *   login ok t_ms=T                      the session is up
 *   login failed t_ms=T error=...        (exit 3)
 *   first_error t_ms=T status=0xSS name=NAME last_good_ms=T last_good_sent_ms=T
 *                                        (when the last good write before it completed, and
 *                                        when that write was sent)
 *   good_again t_ms=T                    the first write that succeeded after an error
 *   unanswered submitted_ms=T            a write with no answer when the writer gave up
 *   result good=N conflict=N check=N other=N unanswered=N first_error_ms=T last_good_ms=T
 * Exit status: 0 when every write succeeded, 1 when one failed, 2 on a usage error, 3 when
 * the login was refused, 4 when the connection failed. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define BS	 4096
#define QD_MAX	 64
#define DRAIN_MS 3000 /* how long outstanding writes may take after the deadline */

struct slot {
	struct w *w;
	int64_t submit_ms; /* 0: not outstanding */
};

struct w {
	struct iscsi_context *iscsi;
	int lun;
	uint32_t block_size;
	uint64_t span_blocks;
	uint64_t rng;
	int outstanding, stopping, stop_on_error;
	uint64_t good, conflict, check, other;
	int64_t first_error_ms, last_good_ms, good_again_ms;
	int64_t last_good_submit_ms; /* when the write that last succeeded was sent */
	unsigned char buf[BS];
	struct slot slots[QD_MAX];
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = 1;
	(void)sig;
}

static int64_t wall_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static uint64_t next_rand(struct w *w)
{
	/* xorshift64: any spread of LBAs will do. */
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

static void done(struct iscsi_context *iscsi, int status, void *data, void *priv);

static int submit(struct slot *sl)
{
	struct w *w = sl->w;
	uint32_t per = BS / w->block_size;
	uint64_t lba = (next_rand(w) % (w->span_blocks / per)) * per;

	if (!iscsi_write10_task(w->iscsi, w->lun, (uint32_t)lba, w->buf, BS, w->block_size, 0, 0, 0,
				0, 0, done, sl))
		return -EIO;
	sl->submit_ms = wall_ms();
	w->outstanding++;
	return 0;
}

static void done(struct iscsi_context *iscsi, int status, void *data, void *priv)
{
	struct slot *sl = priv;
	struct w *w = sl->w;
	struct scsi_task *task = data;
	int64_t now = wall_ms(), sent = sl->submit_ms;

	sl->submit_ms = 0;
	w->outstanding--;
	if (status == SCSI_STATUS_GOOD) {
		w->good++;
		w->last_good_ms = now;
		if (!w->first_error_ms)
			w->last_good_submit_ms = sent;
		if (w->first_error_ms && !w->good_again_ms) {
			w->good_again_ms = now;
			printf("good_again t_ms=%" PRId64 "\n", now);
		}
	} else {
		if (status == SCSI_STATUS_RESERVATION_CONFLICT)
			w->conflict++;
		else if (status == SCSI_STATUS_CHECK_CONDITION)
			w->check++;
		else
			w->other++;
		if (!w->first_error_ms) {
			w->first_error_ms = now;
			printf("first_error t_ms=%" PRId64
			       " status=%#x name=%s last_good_ms=%" PRId64
			       " last_good_sent_ms=%" PRId64 "\n",
			       now, status,
			       status == SCSI_STATUS_RESERVATION_CONFLICT ? "RESERVATION_CONFLICT"
			       : status == SCSI_STATUS_CHECK_CONDITION	  ? "CHECK_CONDITION"
									  : "OTHER",
			       w->last_good_ms, w->last_good_submit_ms);
			fflush(stdout);
		}
		if (w->stop_on_error || (status != SCSI_STATUS_RESERVATION_CONFLICT &&
					 status != SCSI_STATUS_CHECK_CONDITION))
			w->stopping = 1;
	}
	if (task)
		scsi_free_scsi_task(task);
	if (!w->stopping && submit(sl))
		w->stopping = 1;
	(void)iscsi;
}

int main(int argc, char **argv)
{
	static struct w w;
	const char *url_text = NULL, *ini = NULL;
	struct iscsi_url *url;
	struct scsi_task *task;
	struct scsi_readcapacity16 *rc16;
	double seconds = 5;
	int qd = 8, i, rc = 0;
	int64_t deadline, drain_until = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--initiator") && i + 1 < argc)
			ini = argv[++i];
		else if (!strcmp(argv[i], "--qd") && i + 1 < argc)
			qd = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--stop-on-error"))
			w.stop_on_error = 1;
		else if (argv[i][0] != '-' && !url_text)
			url_text = argv[i];
		else
			url_text = NULL, i = argc;
	}
	if (!url_text || !ini || qd < 1 || qd > QD_MAX || seconds <= 0) {
		fprintf(stderr, "usage: cluster_writer URL --initiator IQN [--qd N] [--seconds S] "
				"[--stop-on-error]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	{
		struct sigaction sa = {.sa_handler = on_signal};

		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	w.rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)wall_ms();
	memset(w.buf, 0xa5, sizeof(w.buf));
	w.iscsi = iscsi_create_context(ini);
	url = w.iscsi ? iscsi_parse_full_url(w.iscsi, url_text) : NULL;
	if (!url) {
		fprintf(stderr, "cluster_writer: bad URL %s\n", url_text);
		return 2;
	}
	iscsi_set_targetname(w.iscsi, url->target);
	iscsi_set_session_type(w.iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(w.iscsi, ISCSI_HEADER_DIGEST_NONE);
	w.lun = url->lun;
	if (iscsi_full_connect_sync(w.iscsi, url->portal, url->lun)) {
		printf("login failed t_ms=%" PRId64 " error=%s\n", wall_ms(),
		       iscsi_get_error(w.iscsi));
		return 3;
	}
	printf("login ok t_ms=%" PRId64 "\n", wall_ms());
	task = iscsi_readcapacity16_sync(w.iscsi, w.lun);
	if (!task || task->status != SCSI_STATUS_GOOD || !(rc16 = scsi_datain_unmarshall(task))) {
		printf("first_error t_ms=%" PRId64 " status=read-capacity name=%s last_good_ms=0\n",
		       wall_ms(), iscsi_get_error(w.iscsi));
		return 1;
	}
	w.block_size = rc16->block_length;
	w.span_blocks = rc16->returned_lba + 1;
	scsi_free_scsi_task(task);
	if (!w.block_size || BS % w.block_size || w.span_blocks < BS / w.block_size) {
		fprintf(stderr, "cluster_writer: unusable LUN geometry\n");
		return 2;
	}

	deadline = wall_ms() + (int64_t)(seconds * 1000);
	for (i = 0; i < qd; i++) {
		w.slots[i].w = &w;
		if (submit(&w.slots[i])) {
			fprintf(stderr, "cluster_writer: %s\n", iscsi_get_error(w.iscsi));
			return 4;
		}
	}
	while (w.outstanding > 0) {
		struct pollfd pfd = {.fd = iscsi_get_fd(w.iscsi),
				     .events = iscsi_which_events(w.iscsi)};
		int64_t now = wall_ms();

		if (!w.stopping && (now >= deadline || stop_requested))
			w.stopping = 1;
		if (w.stopping && !drain_until)
			drain_until = now + DRAIN_MS;
		if (drain_until && now >= drain_until)
			break;
		if (poll(&pfd, 1, 50) < 0) {
			if (errno == EINTR)
				continue;
			rc = 4;
			break;
		}
		if (iscsi_service(w.iscsi, pfd.revents) < 0) {
			printf("connection failed t_ms=%" PRId64 " error=%s\n", wall_ms(),
			       iscsi_get_error(w.iscsi));
			rc = 4;
			break;
		}
	}
	printf("result good=%" PRIu64 " conflict=%" PRIu64 " check=%" PRIu64 " other=%" PRIu64
	       " unanswered=%d first_error_ms=%" PRId64 " good_again_ms=%" PRId64
	       " last_good_ms=%" PRId64 "\n",
	       w.good, w.conflict, w.check, w.other, w.outstanding, w.first_error_ms,
	       w.good_again_ms, w.last_good_ms);
	for (i = 0; i < qd; i++)
		if (w.slots[i].submit_ms)
			printf("unanswered submitted_ms=%" PRId64 "\n", w.slots[i].submit_ms);
	if (rc)
		return rc;
	if (w.outstanding)
		return 4;
	return w.conflict || w.check || w.other ? 1 : 0;
}
