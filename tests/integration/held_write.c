/* held_write: one initiator driven line by line from stdin, for the maintenance tests. It keeps
 * writes outstanding while it goes on reading, aborting and resetting, so a test can show what
 * a paused LUN does with a write it holds.
 *
 *   held_write URL INITIATOR
 *
 * URL is iscsi://host:port/target-iqn/lun. Commands, one per line; each prints one line:
 *   write N LBA BYTE   send WRITE(10) of one block filled with BYTE as write number N
 *                      (no wait) -> "sent N"
 *   wait N MS          run the connection until write N completes or MS pass ->
 *                      "done N STATUS MS" (MS since it was sent) or "pending N"
 *   read LBA           READ(10) of one block, waited for -> "read STATUS BYTE" (BYTE: the
 *                      first byte, in hex)
 *   abort N            ABORT TASK for write N -> "tmf RESPONSE" (0: function complete)
 *   lunreset           LOGICAL UNIT RESET -> "tmf RESPONSE"
 *   quit               logs out
 * STATUS is GOOD, BUSY, RESERVATION_CONFLICT, CHECK_CONDITION/kk/aa/qq, CANCELLED or 0xNN.
 * Exit status: 0 after quit, 1 on a setup or connection failure (the reason on stderr). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define MAX_WRITES 64

struct wr {
	struct scsi_task *task;
	bool sent, done;
	int status;
	uint8_t key, asc, ascq;
	int64_t sent_ms, done_ms;
	unsigned char *buf;
};

static struct wr writes[MAX_WRITES];
static uint32_t block_size = 512;
static int lun_no;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void status_text(int status, uint8_t key, uint8_t asc, uint8_t ascq, char *b, size_t n)
{
	switch (status) {
	case SCSI_STATUS_GOOD:
		snprintf(b, n, "GOOD");
		break;
	case SCSI_STATUS_BUSY:
		snprintf(b, n, "BUSY");
		break;
	case SCSI_STATUS_RESERVATION_CONFLICT:
		snprintf(b, n, "RESERVATION_CONFLICT");
		break;
	case SCSI_STATUS_CHECK_CONDITION:
		snprintf(b, n, "CHECK_CONDITION/%02x/%02x/%02x", key, asc, ascq);
		break;
	case SCSI_STATUS_CANCELLED:
		snprintf(b, n, "CANCELLED");
		break;
	default:
		snprintf(b, n, "0x%02x", status & 0xff);
	}
}

static void write_cb(struct iscsi_context *iscsi, int status, void *data, void *priv)
{
	struct wr *w = priv;
	struct scsi_task *task = data;

	(void)iscsi;
	w->done = true;
	w->done_ms = now_ms();
	/* libiscsi reports statuses it does not know as errors; the task holds the real one. */
	w->status = task && task->status != SCSI_STATUS_ERROR ? task->status : status;
	if (task && w->status == SCSI_STATUS_CHECK_CONDITION) {
		w->key = task->sense.key;
		w->asc = (task->sense.ascq >> 8) & 0xff;
		w->ascq = task->sense.ascq & 0xff;
	}
	if (task)
		scsi_free_scsi_task(task);
	w->task = NULL;
}

/* Run the connection's event loop for up to ms, or until *stop turns true. */
static int service(struct iscsi_context *iscsi, int ms, const bool *stop)
{
	int64_t end = now_ms() + ms;

	while (!(stop && *stop)) {
		struct pollfd pfd = {.fd = iscsi_get_fd(iscsi),
				     .events = iscsi_which_events(iscsi)};
		int64_t left = end - now_ms();
		int rc;

		if (left <= 0)
			return 0;
		rc = poll(&pfd, 1, left > 50 ? 50 : (int)left);
		if (rc < 0 && errno != EINTR)
			return -1;
		if (iscsi_service(iscsi, rc > 0 ? pfd.revents : 0) < 0) {
			fprintf(stderr, "held_write: %s\n", iscsi_get_error(iscsi));
			return -1;
		}
	}
	return 0;
}

static int drain_unit_attentions(struct iscsi_context *iscsi)
{
	for (int i = 0; i < 16; i++) {
		struct scsi_task *t = iscsi_testunitready_sync(iscsi, lun_no);
		bool ua = t && t->status == SCSI_STATUS_CHECK_CONDITION &&
			  t->sense.key == SCSI_SENSE_UNIT_ATTENTION;
		bool ok = t && t->status == SCSI_STATUS_GOOD;

		if (t)
			scsi_free_scsi_task(t);
		if (ok)
			return 0;
		if (!ua)
			return -1;
	}
	return -1;
}

static int cmd_write(struct iscsi_context *iscsi, unsigned n, uint32_t lba, unsigned byte)
{
	struct wr *w = &writes[n];

	memset(w, 0, sizeof(*w));
	w->buf = malloc(block_size);
	if (!w->buf)
		return -1;
	memset(w->buf, (int)byte, block_size);
	w->task = iscsi_write10_task(iscsi, lun_no, lba, w->buf, block_size, block_size, 0, 0, 0, 0,
				     0, write_cb, w);
	if (!w->task)
		return -1;
	w->sent = true;
	w->sent_ms = now_ms();
	/* Push the PDU out now: a later "wait" may come long after. */
	service(iscsi, 20, &w->done);
	printf("sent %u\n", n);
	return 0;
}

static int cmd_wait(struct iscsi_context *iscsi, unsigned n, int ms)
{
	struct wr *w = &writes[n];
	char st[64];

	if (!w->sent)
		return -1;
	if (service(iscsi, ms, &w->done) < 0)
		return -1;
	if (!w->done) {
		printf("pending %u\n", n);
		return 0;
	}
	status_text(w->status, w->key, w->asc, w->ascq, st, sizeof(st));
	printf("done %u %s %lld\n", n, st, (long long)(w->done_ms - w->sent_ms));
	return 0;
}

static int cmd_read(struct iscsi_context *iscsi, uint32_t lba)
{
	struct scsi_task *t =
		iscsi_read10_sync(iscsi, lun_no, lba, block_size, block_size, 0, 0, 0, 0, 0);
	char st[64];

	if (!t)
		return -1;
	status_text(t->status, t->sense.key, (t->sense.ascq >> 8) & 0xff, t->sense.ascq & 0xff, st,
		    sizeof(st));
	printf("read %s %02x\n", st,
	       t->status == SCSI_STATUS_GOOD && t->datain.size > 0 ? t->datain.data[0] : 0);
	scsi_free_scsi_task(t);
	return 0;
}

int main(int argc, char **argv)
{
	struct iscsi_context *iscsi;
	struct iscsi_url *url;
	struct scsi_task *cap;
	char line[256];

	if (argc != 3) {
		fprintf(stderr, "usage: held_write URL INITIATOR\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	iscsi = iscsi_create_context(argv[2]);
	url = iscsi ? iscsi_parse_full_url(iscsi, argv[1]) : NULL;
	if (!url) {
		fprintf(stderr, "held_write: bad URL %s\n", argv[1]);
		return 1;
	}
	lun_no = url->lun;
	iscsi_set_targetname(iscsi, url->target);
	iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_NONE);
	if (iscsi_full_connect_sync(iscsi, url->portal, url->lun) < 0) {
		fprintf(stderr, "held_write: login: %s\n", iscsi_get_error(iscsi));
		return 1;
	}
	if (drain_unit_attentions(iscsi) < 0) {
		fprintf(stderr, "held_write: TEST UNIT READY keeps failing\n");
		return 1;
	}
	cap = iscsi_readcapacity10_sync(iscsi, lun_no, 0, 0);
	if (cap && cap->status == SCSI_STATUS_GOOD && cap->datain.size >= 8)
		block_size = (uint32_t)cap->datain.data[4] << 24 | cap->datain.data[5] << 16 |
			     cap->datain.data[6] << 8 | cap->datain.data[7];
	if (cap)
		scsi_free_scsi_task(cap);
	printf("ready %u\n", block_size);
	while (fgets(line, sizeof(line), stdin)) {
		unsigned n = 0, lba = 0, byte = 0;
		int ms = 0, rc = -1;
		struct scsi_task *t;

		if (sscanf(line, "write %u %u %x", &n, &lba, &byte) == 3 && n < MAX_WRITES)
			rc = cmd_write(iscsi, n, lba, byte);
		else if (sscanf(line, "wait %u %d", &n, &ms) == 2 && n < MAX_WRITES)
			rc = cmd_wait(iscsi, n, ms);
		else if (sscanf(line, "read %u", &lba) == 1)
			rc = cmd_read(iscsi, lba);
		else if (sscanf(line, "abort %u", &n) == 1 && n < MAX_WRITES && writes[n].task) {
			t = writes[n].task;
			rc = iscsi_task_mgmt_abort_task_sync(iscsi, t);
			printf("tmf %d\n", rc);
			rc = 0;
		} else if (!strncmp(line, "lunreset", 8)) {
			rc = iscsi_task_mgmt_lun_reset_sync(iscsi, lun_no);
			printf("tmf %d\n", rc);
			rc = 0;
		} else if (!strncmp(line, "quit", 4)) {
			iscsi_logout_sync(iscsi);
			iscsi_destroy_context(iscsi);
			return 0;
		}
		if (rc < 0) {
			fprintf(stderr, "held_write: '%s' failed: %s\n", strtok(line, "\n"),
				iscsi_get_error(iscsi));
			printf("error\n");
		}
	}
	return 1;
}
