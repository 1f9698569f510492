/* Logical units: identity, mode state, unit attentions per I_T nexus, SCSI-2 reservation. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha256.h>

#include "lib/log.h"
#include "target/lun.h"
#include "target/scsi_sense.h"

/* IEEE company identifier placed in the NAA 6 name. This value is a placeholder with the
 * local (X) bit set, so it cannot collide with an assigned OUI; the product must replace it
 * with its own IEEE-assigned CID or OUI before it ships. */
#define HOLDFAST_IEEE_COMPANY_ID 0x4af05du

/* What the LUN knows about one I_T nexus. */
struct lun_itn {
	char initiator_port[256];
	uint16_t rel_port_id;
	bool lost; /* logged out since it was last seen */
	uint8_t nua;
	struct scsi_sense ua[SCSI_LUN_UA_MAX];
};

struct scsi_lun {
	struct backstore *bs;
	uint32_t block_size;
	_Atomic uint64_t nblocks;
	_Atomic bool wce;
	char name[64];
	char serial[33];
	uint8_t naa[16];

	pthread_mutex_t lock; /* guards everything below */
	/* Total of unit attentions queued over all nexuses, and whether a SCSI-2 reservation is
	 * held: written under lock, read without it so the per-command path skips the lock in
	 * the common case. */
	_Atomic unsigned ua_pending;
	_Atomic bool reserved;
	struct lun_itn *itns;
	size_t nitns, itn_cap;
	size_t holder; /* index in itns of the SCSI-2 reservation holder, valid if reserved */

	/* Shared-volume access policy (NULL: none); replaced whole, read with one load. */
	struct lun_access *_Atomic access;
	uint64_t access_epoch; /* under lock: the newest epoch applied */
};

/* An immutable policy: names are NUL-separated in one block. */
struct lun_access {
	uint64_t epoch;
	bool paused;
	size_t nowners, nmembers;
	const char **owners;
	const char **members;
	char names[];
};

static void lun_retire_now(void *old)
{
	free(old);
}

void (*scsi_lun_retire)(void *old) = lun_retire_now;

/* Derive the identity: SHA-256 over a domain label, the box id and the name. The serial is
 * the first 16 bytes in hex; the NAA name takes the next 100 bits (spc4r37 7.8.6.6.5: NAA 6,
 * IEEE Registered Extended: 24-bit company id, 36-bit vendor specific identifier, 64-bit
 * vendor specific identifier extension). */
static int lun_derive_identity(struct scsi_lun *lun, const uint8_t box_id[16], const char *name)
{
	static const char label[] = "holdfast-lun-identity-v1";
	static const char hex[] = "0123456789ABCDEF";
	mbedtls_sha256_context ctx;
	uint8_t h[32];
	int rc;

	mbedtls_sha256_init(&ctx);
	rc = mbedtls_sha256_starts_ret(&ctx, 0);
	if (!rc)
		rc = mbedtls_sha256_update_ret(&ctx, (const uint8_t *)label, sizeof(label));
	if (!rc)
		rc = mbedtls_sha256_update_ret(&ctx, box_id, 16);
	if (!rc)
		rc = mbedtls_sha256_update_ret(&ctx, (const uint8_t *)name, strlen(name));
	if (!rc)
		rc = mbedtls_sha256_finish_ret(&ctx, h);
	mbedtls_sha256_free(&ctx);
	if (rc)
		return -EIO;

	for (int i = 0; i < 16; i++) {
		lun->serial[2 * i] = hex[h[i] >> 4];
		lun->serial[2 * i + 1] = hex[h[i] & 0xf];
	}
	lun->serial[32] = '\0';

	/* NAA (4 bits) | company id (24 bits) | 100 bits of h[16..28] (the last nibble of
	 * h[28] is dropped). */
	lun->naa[0] = 0x60 | (HOLDFAST_IEEE_COMPANY_ID >> 20);
	lun->naa[1] = (uint8_t)(HOLDFAST_IEEE_COMPANY_ID >> 12);
	lun->naa[2] = (uint8_t)(HOLDFAST_IEEE_COMPANY_ID >> 4);
	lun->naa[3] = (HOLDFAST_IEEE_COMPANY_ID & 0xf) << 4 | h[16] >> 4;
	for (int i = 4; i < 16; i++)
		lun->naa[i] = (uint8_t)(h[i + 12] << 4 | h[i + 13] >> 4);
	return 0;
}

int scsi_lun_create(struct backstore *bs, const uint8_t box_id[16], const char *name,
		    struct scsi_lun **out)
{
	struct scsi_lun *lun;
	uint32_t bsz = bs_block_size(bs);
	int rc;

	if (bsz != 512 && bsz != 4096) {
		log_warnx("%s: %s: block size %u is not 512 or 4096", __func__, name, bsz);
		return -EINVAL;
	}
	lun = calloc(1, sizeof(*lun));
	if (!lun)
		return -ENOMEM;
	lun->bs = bs;
	lun->block_size = bsz;
	atomic_init(&lun->nblocks, bs_size(bs) / bsz);
	/* sbc3r36 6.4.5: write caching on by default; FUA and SYNCHRONIZE CACHE keep writes
	 * durable where the initiator asks. */
	atomic_init(&lun->wce, true);
	atomic_init(&lun->ua_pending, 0);
	atomic_init(&lun->reserved, false);
	snprintf(lun->name, sizeof(lun->name), "%s", name);
	rc = lun_derive_identity(lun, box_id, name);
	if (rc)
		goto err_free;
	rc = -pthread_mutex_init(&lun->lock, NULL);
	if (rc)
		goto err_free;
	*out = lun;
	return 0;

err_free:
	free(lun);
	return rc;
}

void scsi_lun_destroy(struct scsi_lun *lun)
{
	if (!lun)
		return;
	free(atomic_load(&lun->access));
	pthread_mutex_destroy(&lun->lock);
	free(lun->itns);
	free(lun);
}

/* Find the nexus entry; called with the lock held. */
static struct lun_itn *lun_itn_find(struct scsi_lun *lun, const struct scsi_nexus *nx)
{
	for (size_t i = 0; i < lun->nitns; i++) {
		struct lun_itn *e = &lun->itns[i];

		if (e->rel_port_id == nx->rel_port_id &&
		    strcmp(e->initiator_port, nx->initiator_port) == 0)
			return e;
	}
	return NULL;
}

/* Find or add the nexus entry; called with the lock held. NULL only when out of memory. */
static struct lun_itn *lun_itn_get(struct scsi_lun *lun, const struct scsi_nexus *nx, bool *created)
{
	struct lun_itn *e = lun_itn_find(lun, nx);

	*created = false;
	if (e)
		return e;
	if (lun->nitns == lun->itn_cap) {
		size_t cap = lun->itn_cap ? lun->itn_cap * 2 : 8;
		struct lun_itn *v = realloc(lun->itns, cap * sizeof(*v));

		if (!v)
			return NULL;
		lun->itns = v;
		lun->itn_cap = cap;
	}
	e = &lun->itns[lun->nitns++];
	memset(e, 0, sizeof(*e));
	snprintf(e->initiator_port, sizeof(e->initiator_port), "%s", nx->initiator_port);
	e->rel_port_id = nx->rel_port_id;
	*created = true;
	return e;
}

/* Queue a unit attention on one nexus; called with the lock held. A reset condition
 * replaces whatever was queued, since the reset invalidated it (sam5r21 5.14); a condition
 * already queued is not queued twice. */
static void lun_itn_queue(struct scsi_lun *lun, struct lun_itn *e, const struct scsi_sense *ua)
{
	if (scsi_sense_is_reset(ua)) {
		atomic_fetch_sub(&lun->ua_pending, e->nua);
		e->nua = 0;
	}
	for (unsigned i = 0; i < e->nua; i++)
		if (e->ua[i].asc == ua->asc && e->ua[i].ascq == ua->ascq)
			return;
	if (e->nua == SCSI_LUN_UA_MAX)
		return;
	e->ua[e->nua] = *ua;
	e->ua[e->nua].info_valid = false;
	e->ua[e->nua].sks_valid = false;
	e->nua++;
	atomic_fetch_add(&lun->ua_pending, 1);
}

void scsi_lun_nexus_login(struct scsi_lun *lun, const struct scsi_nexus *nx)
{
	struct lun_itn *e;
	bool created;

	pthread_mutex_lock(&lun->lock);
	e = lun_itn_get(lun, nx, &created);
	if (!e)
		log_warnx("%s: %s: out of memory tracking %s", __func__, lun->name,
			  nx->initiator_port);
	else if (created)
		lun_itn_queue(lun, e, &SENSE_POWER_ON_RESET);
	else if (e->lost)
		lun_itn_queue(lun, e, &SENSE_I_T_NEXUS_LOSS);
	if (e)
		e->lost = false;
	pthread_mutex_unlock(&lun->lock);
}

void scsi_lun_nexus_logout(struct scsi_lun *lun, const struct scsi_nexus *nx)
{
	struct lun_itn *e;

	pthread_mutex_lock(&lun->lock);
	e = lun_itn_find(lun, nx);
	if (e) {
		e->lost = true;
		if (atomic_load(&lun->reserved) && &lun->itns[lun->holder] == e)
			atomic_store(&lun->reserved, false);
	}
	pthread_mutex_unlock(&lun->lock);
}

/* Queue ua for every nexus but `except`; called with the lock held. */
static void lun_ua_all_locked(struct scsi_lun *lun, const struct scsi_nexus *except,
			      const struct scsi_sense *ua)
{
	for (size_t i = 0; i < lun->nitns; i++) {
		struct lun_itn *e = &lun->itns[i];

		if (except && e->rel_port_id == except->rel_port_id &&
		    strcmp(e->initiator_port, except->initiator_port) == 0)
			continue;
		/* A nexus that is gone collects nothing: when it returns it learns of
		 * its loss (29/07), which covers everything it missed. */
		if (e->lost)
			continue;
		lun_itn_queue(lun, e, ua);
	}
}

void scsi_lun_reset(struct scsi_lun *lun, const struct scsi_nexus *by)
{
	pthread_mutex_lock(&lun->lock);
	/* spc2r20 5.5.1: a logical unit reset releases the SCSI-2 reservation. */
	atomic_store(&lun->reserved, false);
	/* Every nexus but `by` gets the unit attention (by may be NULL: all of them). */
	lun_ua_all_locked(lun, by, &SENSE_BUS_DEVICE_RESET);
	pthread_mutex_unlock(&lun->lock);
	log_info("%s: %s: logical unit reset by %s", __func__, lun->name,
		 by ? by->initiator_port : "the target");
}

void scsi_lun_capacity_changed(struct scsi_lun *lun)
{
	atomic_store(&lun->nblocks, bs_size(lun->bs) / lun->block_size);
	scsi_lun_ua_all(lun, NULL, &SENSE_CAPACITY_CHANGED);
}

void scsi_lun_ua_all(struct scsi_lun *lun, const struct scsi_nexus *except,
		     const struct scsi_sense *ua)
{
	pthread_mutex_lock(&lun->lock);
	lun_ua_all_locked(lun, except, ua);
	pthread_mutex_unlock(&lun->lock);
}

void scsi_lun_ua_one(struct scsi_lun *lun, const struct scsi_nexus *nx, const struct scsi_sense *ua)
{
	struct lun_itn *e;
	bool created;

	pthread_mutex_lock(&lun->lock);
	e = lun_itn_get(lun, nx, &created);
	if (e)
		lun_itn_queue(lun, e, ua);
	pthread_mutex_unlock(&lun->lock);
}

bool scsi_lun_ua_take(struct scsi_lun *lun, const struct scsi_nexus *nx, struct scsi_sense *ua)
{
	struct lun_itn *e;
	bool found = false;

	if (atomic_load_explicit(&lun->ua_pending, memory_order_acquire) == 0)
		return false;
	pthread_mutex_lock(&lun->lock);
	e = lun_itn_find(lun, nx);
	if (e && e->nua) {
		*ua = e->ua[0];
		memmove(&e->ua[0], &e->ua[1], (e->nua - 1) * sizeof(e->ua[0]));
		e->nua--;
		atomic_fetch_sub(&lun->ua_pending, 1);
		found = true;
	}
	pthread_mutex_unlock(&lun->lock);
	return found;
}

bool scsi_lun_scsi2_conflict(struct scsi_lun *lun, const struct scsi_nexus *nx)
{
	bool conflict;

	if (!atomic_load_explicit(&lun->reserved, memory_order_acquire))
		return false;
	pthread_mutex_lock(&lun->lock);
	conflict = atomic_load(&lun->reserved) &&
		   (lun->itns[lun->holder].rel_port_id != nx->rel_port_id ||
		    strcmp(lun->itns[lun->holder].initiator_port, nx->initiator_port) != 0);
	pthread_mutex_unlock(&lun->lock);
	return conflict;
}

int scsi_lun_scsi2_reserve(struct scsi_lun *lun, const struct scsi_nexus *nx)
{
	struct lun_itn *e;
	bool created;
	int rc = 0;

	pthread_mutex_lock(&lun->lock);
	e = lun_itn_get(lun, nx, &created);
	if (!e) {
		rc = -ENOMEM;
	} else if (atomic_load(&lun->reserved) && &lun->itns[lun->holder] != e) {
		rc = -EBUSY;
	} else {
		/* spc2r20 7.21.2: a reservation by its holder is re-established, not a
		 * conflict. */
		lun->holder = (size_t)(e - lun->itns);
		atomic_store(&lun->reserved, true);
	}
	pthread_mutex_unlock(&lun->lock);
	return rc;
}

void scsi_lun_scsi2_release(struct scsi_lun *lun, const struct scsi_nexus *nx)
{
	pthread_mutex_lock(&lun->lock);
	if (atomic_load(&lun->reserved) && lun->itns[lun->holder].rel_port_id == nx->rel_port_id &&
	    strcmp(lun->itns[lun->holder].initiator_port, nx->initiator_port) == 0)
		atomic_store(&lun->reserved, false);
	pthread_mutex_unlock(&lun->lock);
}

bool scsi_lun_set_wce(struct scsi_lun *lun, bool wce)
{
	return atomic_exchange(&lun->wce, wce) != wce;
}

uint32_t scsi_lun_block_size(const struct scsi_lun *lun)
{
	return lun->block_size;
}

uint64_t scsi_lun_nblocks(const struct scsi_lun *lun)
{
	return atomic_load_explicit(&((struct scsi_lun *)lun)->nblocks, memory_order_relaxed);
}

struct backstore *scsi_lun_bs(const struct scsi_lun *lun)
{
	return lun->bs;
}

bool scsi_lun_wce(const struct scsi_lun *lun)
{
	return atomic_load_explicit(&((struct scsi_lun *)lun)->wce, memory_order_relaxed);
}

const char *scsi_lun_name(const struct scsi_lun *lun)
{
	return lun->name;
}

const char *scsi_lun_serial(const struct scsi_lun *lun)
{
	return lun->serial;
}

const uint8_t *scsi_lun_naa(const struct scsi_lun *lun)
{
	return lun->naa;
}

static struct lun_access *lun_access_new(const char *const *owners, size_t nowners,
					 const char *const *members, size_t nmembers,
					 uint64_t epoch, bool paused)
{
	size_t bytes = 0, n = nowners + nmembers;
	struct lun_access *a;
	char *p;

	for (size_t i = 0; i < nowners; i++)
		bytes += strlen(owners[i]) + 1;
	for (size_t i = 0; i < nmembers; i++)
		bytes += strlen(members[i]) + 1;
	a = calloc(1, sizeof(*a) + bytes + n * sizeof(char *) + sizeof(char *));
	if (!a)
		return NULL;
	a->epoch = epoch;
	a->paused = paused;
	a->nowners = nowners;
	a->nmembers = nmembers;
	/* Layout: the names, then the two pointer arrays (aligned). */
	p = a->names;
	a->owners = (const char **)((uintptr_t)(a->names + bytes + sizeof(char *) - 1) &
				    ~(uintptr_t)(sizeof(char *) - 1));
	a->members = a->owners + nowners;
	for (size_t i = 0; i < nowners; i++) {
		a->owners[i] = p;
		p = stpcpy(p, owners[i]) + 1;
	}
	for (size_t i = 0; i < nmembers; i++) {
		a->members[i] = p;
		p = stpcpy(p, members[i]) + 1;
	}
	return a;
}

int scsi_lun_set_access(struct scsi_lun *lun, const char *const *owners, size_t nowners,
			const char *const *members, size_t nmembers, uint64_t epoch, bool paused)
{
	struct lun_access *a, *old;

	pthread_mutex_lock(&lun->lock);
	if (epoch < lun->access_epoch) {
		pthread_mutex_unlock(&lun->lock);
		log_warnx("%s: %s: epoch %llu is older than the applied %llu", __func__, lun->name,
			  (unsigned long long)epoch, (unsigned long long)lun->access_epoch);
		return -ESTALE;
	}
	a = lun_access_new(owners, nowners, members, nmembers, epoch, paused);
	if (!a) {
		pthread_mutex_unlock(&lun->lock);
		return -ENOMEM;
	}
	lun->access_epoch = epoch;
	old = atomic_exchange(&lun->access, a);
	pthread_mutex_unlock(&lun->lock);
	if (old)
		scsi_lun_retire(old);
	log_info("%s: %s: access epoch %llu: %zu owner initiators, %zu members%s", __func__,
		 lun->name, (unsigned long long)epoch, nowners, nmembers,
		 paused ? ", writes paused (maintenance)" : "");
	return 0;
}

void scsi_lun_clear_access(struct scsi_lun *lun)
{
	struct lun_access *old;

	pthread_mutex_lock(&lun->lock);
	old = atomic_exchange(&lun->access, NULL);
	pthread_mutex_unlock(&lun->lock);
	if (old)
		scsi_lun_retire(old);
}

static bool lun_names_has(const char *const *names, size_t n, const char *initiator)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], initiator) == 0)
			return true;
	return false;
}

enum scsi_lun_access scsi_lun_access_of(const struct scsi_lun *lun, const char *initiator)
{
	const struct lun_access *a = atomic_load(&((struct scsi_lun *)lun)->access);

	if (!a)
		return SCSI_LUN_ACCESS_WRITE;
	if (lun_names_has(a->owners, a->nowners, initiator))
		return SCSI_LUN_ACCESS_WRITE;
	if (lun_names_has(a->members, a->nmembers, initiator))
		return SCSI_LUN_ACCESS_READ;
	return SCSI_LUN_ACCESS_NONE;
}

bool scsi_lun_paused(const struct scsi_lun *lun)
{
	const struct lun_access *a = atomic_load(&((struct scsi_lun *)lun)->access);

	return a && a->paused;
}

enum scsi_lun_write_verdict scsi_lun_write_verdict(const struct scsi_lun *lun,
						   const char *initiator, bool fenced)
{
	const struct lun_access *a = atomic_load(&((struct scsi_lun *)lun)->access);

	if (fenced)
		return SCSI_LUN_WRITE_CONFLICT;
	if (!a)
		return SCSI_LUN_WRITE_GO;
	if (!lun_names_has(a->owners, a->nowners, initiator))
		return SCSI_LUN_WRITE_CONFLICT;
	return a->paused ? SCSI_LUN_WRITE_HOLD : SCSI_LUN_WRITE_GO;
}
