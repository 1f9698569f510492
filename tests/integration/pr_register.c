/* pr_register: one initiator's side of the holdfastctl pr tests. It logs in, registers a
 * reservation key (REGISTER AND IGNORE EXISTING KEY, optionally with APTPL), optionally
 * reserves, and then either logs out (the registration belongs to the LUN and stays) or holds
 * the session open until told to go on, so that the command it sends next shows what an
 * administrator's clear did to this very I_T nexus.
 *
 *   pr_register URL INITIATOR KEY [--aptpl] [--type N] [--hold]
 *
 * URL is iscsi://host:port/target-iqn/lun; KEY is a number (0x for hex); --type reserves
 * with that PR type (spc4r37 table 164). With --hold it prints "ready" once registered, reads
 * one line from stdin, sends TEST UNIT READY and prints its outcome as "GOOD" or
 * "CHECK CONDITION kk/aa/qq" (sense key, ASC, ASCQ in hex), then logs out.
 *
 * Exit status: 0 when every step did what was asked, 1 otherwise (the reason on stderr). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

static void usage(void)
{
	fprintf(stderr, "usage: pr_register URL INITIATOR KEY [--aptpl] [--type N] [--hold]\n");
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return s[0] && !*end && !errno ? 0 : -EINVAL;
}

/* The outcome of a task in one word, with the sense of a CHECK CONDITION. */
static void describe(const struct scsi_task *task, char *buf, size_t len)
{
	if (task->status == SCSI_STATUS_GOOD)
		snprintf(buf, len, "GOOD");
	else if (task->status == SCSI_STATUS_CHECK_CONDITION)
		snprintf(buf, len, "CHECK CONDITION %02x/%02x/%02x", task->sense.key,
			 (task->sense.ascq >> 8) & 0xff, task->sense.ascq & 0xff);
	else if (task->status == SCSI_STATUS_RESERVATION_CONFLICT)
		snprintf(buf, len, "RESERVATION CONFLICT");
	else
		snprintf(buf, len, "status 0x%02x", task->status);
}

/* Send TEST UNIT READY until it answers without a unit attention, so that what the login left
 * queued (power on, reset) does not get in the way of the commands that follow. */
static int drain_unit_attentions(struct iscsi_context *iscsi, int lun)
{
	for (int i = 0; i < 16; i++) {
		struct scsi_task *task = iscsi_testunitready_sync(iscsi, lun);
		int ua;

		if (!task) {
			fprintf(stderr, "pr_register: TEST UNIT READY: %s\n",
				iscsi_get_error(iscsi));
			return -EIO;
		}
		ua = task->status == SCSI_STATUS_CHECK_CONDITION &&
		     task->sense.key == SCSI_SENSE_UNIT_ATTENTION;
		scsi_free_scsi_task(task);
		if (!ua)
			return 0;
	}
	fprintf(stderr, "pr_register: unit attentions do not stop coming\n");
	return -EIO;
}

static int pr_out(struct iscsi_context *iscsi, int lun, int sa, int type,
		  struct scsi_persistent_reserve_out_basic *params, const char *what)
{
	struct scsi_task *task;
	char outcome[64];
	int rc = 0;

	task = iscsi_persistent_reserve_out_sync(iscsi, lun, sa, SCSI_PERSISTENT_RESERVE_SCOPE_LU,
						 type, params);
	if (!task) {
		fprintf(stderr, "pr_register: %s: not sent: %s\n", what, iscsi_get_error(iscsi));
		return -EIO;
	}
	if (task->status != SCSI_STATUS_GOOD) {
		describe(task, outcome, sizeof(outcome));
		fprintf(stderr, "pr_register: %s: %s\n", what, outcome);
		rc = -EIO;
	}
	scsi_free_scsi_task(task);
	return rc;
}

int main(int argc, char **argv)
{
	struct scsi_persistent_reserve_out_basic params = {0};
	struct iscsi_context *iscsi = NULL;
	struct iscsi_url *url = NULL;
	struct scsi_task *task;
	uint64_t key, type = 0;
	int aptpl = 0, hold = 0, rc = 1;
	char line[64], outcome[64];

	if (argc < 4) {
		usage();
		return 1;
	}
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--aptpl")) {
			aptpl = 1;
		} else if (!strcmp(argv[i], "--hold")) {
			hold = 1;
		} else if (!strcmp(argv[i], "--type") && i + 1 < argc) {
			if (parse_u64(argv[++i], &type) || type == 0 || type > 0xf) {
				usage();
				return 1;
			}
		} else {
			usage();
			return 1;
		}
	}
	if (parse_u64(argv[3], &key) || key == 0) {
		fprintf(stderr, "pr_register: '%s' is not a non-zero key\n", argv[3]);
		return 1;
	}

	iscsi = iscsi_create_context(argv[2]);
	if (!iscsi) {
		fprintf(stderr, "pr_register: no iSCSI context\n");
		return 1;
	}
	url = iscsi_parse_full_url(iscsi, argv[1]);
	if (!url) {
		fprintf(stderr, "pr_register: bad URL %s: %s\n", argv[1], iscsi_get_error(iscsi));
		goto out;
	}
	/* A silent reconnect would bring a new session and hide what happened to this one. */
	iscsi_set_noautoreconnect(iscsi, 1);
	iscsi_set_timeout(iscsi, 30);
	iscsi_set_targetname(iscsi, url->target);
	iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_NONE_CRC32C);
	if (iscsi_full_connect_sync(iscsi, url->portal, url->lun) != 0) {
		fprintf(stderr, "pr_register: login to %s failed: %s\n", argv[1],
			iscsi_get_error(iscsi));
		goto out;
	}
	if (drain_unit_attentions(iscsi, url->lun))
		goto out_logout;

	params.service_action_reservation_key = key;
	params.aptpl = aptpl;
	if (pr_out(iscsi, url->lun, SCSI_PERSISTENT_RESERVE_REGISTER_AND_IGNORE_EXISTING_KEY, 0,
		   &params, "REGISTER AND IGNORE EXISTING KEY"))
		goto out_logout;
	if (type) {
		memset(&params, 0, sizeof(params));
		params.reservation_key = key;
		if (pr_out(iscsi, url->lun, SCSI_PERSISTENT_RESERVE_RESERVE, (int)type, &params,
			   "RESERVE"))
			goto out_logout;
	}
	if (hold) {
		printf("ready\n");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin)) {
			fprintf(stderr, "pr_register: stdin closed before the go-ahead\n");
			goto out_logout;
		}
		task = iscsi_testunitready_sync(iscsi, url->lun);
		if (!task) {
			fprintf(stderr, "pr_register: TEST UNIT READY: not sent: %s\n",
				iscsi_get_error(iscsi));
			goto out_logout;
		}
		describe(task, outcome, sizeof(outcome));
		scsi_free_scsi_task(task);
		printf("%s\n", outcome);
		fflush(stdout);
	}
	rc = 0;
out_logout:
	iscsi_logout_sync(iscsi);
out:
	if (url)
		iscsi_destroy_url(url);
	iscsi_destroy_context(iscsi);
	return rc;
}
