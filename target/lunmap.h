/* LUNs that come and go while the target runs: the coordinator exports each virtual disk of
 * the shared-volume catalog as a LUN of the cluster's target, grows it, and removes it. The
 * target's LUN slots never move, so commands on every worker read them without a lock. */
#ifndef HOLDFAST_TARGET_LUNMAP_H
#define HOLDFAST_TARGET_LUNMAP_H

#include <stddef.h>
#include <stdint.h>

/* Export the file at path (created sparse, extended to size) as LUN `lun` of the target
 * named iqn. name derives the LUN's identity (serial, NAA), so the same name keeps the same
 * identity across restarts. Returns 0, -ENOENT (no such target), -EEXIST (the LUN number is
 * in use), or the backstore's error. Every session of the target gets REPORTED LUNS DATA
 * HAS CHANGED. */
struct tgt_lun_policy {
	const char *const *owners;
	size_t nowners;
	const char *const *members;
	size_t nmembers;
	uint64_t epoch;
	bool paused; /* writes held: the volume is in maintenance */
};

/* policy (may be NULL) is the shared-volume access applied before the LUN is published, so
 * there is no moment at which anyone may write it (lun.h, scsi_lun_set_access). */
int tgt_lun_add(const char *iqn, uint64_t lun, const char *name, const char *path, uint64_t size,
		uint32_t block_size, const struct tgt_lun_policy *policy);

/* Unexport a LUN added at run time: new commands no longer find it, the tasks on it are
 * aborted and waited for, then it is closed. -EPERM for a LUN from the configuration. */
int tgt_lun_remove(const char *iqn, uint64_t lun);

/* Grow a LUN to size bytes; its initiators get CAPACITY DATA HAS CHANGED. */
int tgt_lun_resize(const char *iqn, uint64_t lun, uint64_t size);

/* Close what was added at run time (process exit). */
void tgt_lun_close_all(void);

#endif
