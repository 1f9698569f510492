/* pool_writer: sequential 1 MiB WRITE(16)s with a known pattern from one initiator name, until
 * a write fails or COUNT blocks are written, and the same range read back and compared. The
 * pool tests use it to fill a thin disk's filesystem and to show that what was written before
 * the pool filled is still intact.
 *
 *   pool_writer URL --initiator IQN write|verify [--from MIB] [--count MIB]
 *
 * The pattern of every 512-byte sector is its own LBA, so a sector read from the wrong place or
 * not written at all shows as a mismatch. Output, "key=value" words after a tag:
 *   login ok | login failed error=...        (exit 3)
 *   wrote mib=N from=F                        N 1 MiB blocks written from F MiB on
 *   write_error at_mib=M status=0xSS sense_key=0xK asc=0xAA ascq=0xQQ key_name=.. ascq_name=..
 *   verified mib=N from=F                     every sector read back as written
 *   mismatch at_mib=M sector=S                the first sector that differs
 *   read_error at_mib=M status=0xSS ...
 * Exit status: 0 when every command succeeded and matched, 1 when a write or read failed or a
 * sector differed, 2 on a usage error, 3 when the login failed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define MIB	(1024 * 1024)
#define SECTOR	512
#define PER_MIB (MIB / SECTOR)
#define MIB_MAX (1 << 20)

static unsigned char buf[MIB];

static void pattern(unsigned char *b, uint64_t mib)
{
	uint64_t lba = mib * PER_MIB;
	unsigned i, k;

	for (i = 0; i < PER_MIB; i++, lba++)
		for (k = 0; k < SECTOR; k += sizeof(lba))
			memcpy(b + (size_t)i * SECTOR + k, &lba, sizeof(lba));
}

/* The answer of a failed command, with its sense when it is a CHECK CONDITION. */
static void print_failure(const char *tag, uint64_t mib, struct iscsi_context *iscsi,
			  struct scsi_task *t)
{
	if (!t) {
		printf("%s at_mib=%" PRIu64 " status=none error=\"%s\"\n", tag, mib,
		       iscsi_get_error(iscsi));
		return;
	}
	printf("%s at_mib=%" PRIu64 " status=0x%02x", tag, mib, (unsigned)t->status);
	if (t->status == SCSI_STATUS_CHECK_CONDITION)
		printf(" sense_key=0x%x asc=0x%02x ascq=0x%02x key_name=\"%s\"",
		       (unsigned)t->sense.key, (unsigned)(t->sense.ascq >> 8) & 0xff,
		       (unsigned)t->sense.ascq & 0xff, scsi_sense_key_str(t->sense.key));
	printf("\n");
}

static int usage(void)
{
	fprintf(stderr, "usage: pool_writer URL --initiator IQN write|verify [--from MIB] "
			"[--count MIB]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *url = NULL, *iqn = NULL, *mode = NULL;
	uint64_t from = 0, count = MIB_MAX, n = 0, mib;
	struct iscsi_context *iscsi;
	struct iscsi_url *u;
	struct scsi_task *t;
	int i, rc = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--initiator") && i + 1 < argc)
			iqn = argv[++i];
		else if (!strcmp(argv[i], "--from") && i + 1 < argc)
			from = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = strtoull(argv[++i], NULL, 10);
		else if (!url)
			url = argv[i];
		else if (!mode)
			mode = argv[i];
		else
			return usage();
	}
	if (!url || !iqn || !mode || (strcmp(mode, "write") && strcmp(mode, "verify")))
		return usage();
	iscsi = iscsi_create_context(iqn);
	if (!iscsi)
		return 3;
	u = iscsi_parse_full_url(iscsi, url);
	if (!u) {
		printf("login failed error=\"%s\"\n", iscsi_get_error(iscsi));
		return 3;
	}
	iscsi_set_targetname(iscsi, u->target);
	iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_NONE);
	if (iscsi_full_connect_sync(iscsi, u->portal, u->lun) != 0) {
		printf("login failed error=\"%s\"\n", iscsi_get_error(iscsi));
		return 3;
	}
	printf("login ok\n");
	for (mib = from; n < count; mib++, n++) {
		if (!strcmp(mode, "write")) {
			pattern(buf, mib);
			t = iscsi_write16_sync(iscsi, u->lun, mib * PER_MIB, buf, MIB, SECTOR, 0, 0,
					       0, 0, 0);
			if (!t || t->status != SCSI_STATUS_GOOD) {
				print_failure("write_error", mib, iscsi, t);
				rc = 1;
			}
		} else {
			static unsigned char want[MIB];
			unsigned s;

			t = iscsi_read16_sync(iscsi, u->lun, mib * PER_MIB, MIB, SECTOR, 0, 0, 0, 0,
					      0);
			if (!t || t->status != SCSI_STATUS_GOOD || t->datain.size != MIB) {
				print_failure("read_error", mib, iscsi, t);
				rc = 1;
			} else {
				pattern(want, mib);
				for (s = 0; s < PER_MIB; s++)
					if (memcmp(t->datain.data + (size_t)s * SECTOR,
						   want + (size_t)s * SECTOR, SECTOR))
						break;
				if (s < PER_MIB) {
					printf("mismatch at_mib=%" PRIu64 " sector=%u\n", mib, s);
					rc = 1;
				}
			}
		}
		if (t)
			scsi_free_scsi_task(t);
		if (rc)
			break;
	}
	printf("%s mib=%" PRIu64 " from=%" PRIu64 "\n",
	       !strcmp(mode, "write") ? "wrote" : "verified", n, from);
	iscsi_logout_sync(iscsi);
	iscsi_destroy_url(u);
	iscsi_destroy_context(iscsi);
	return rc;
}
