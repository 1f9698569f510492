/* One-time join tokens: the admin creates one, a host presents it once to enrol, and it is
 * refused after it expires or has been used, across restarts too. The logic takes the time as
 * an argument; the store is persisted through lib/atomic_file.h before any change is
 * acknowledged. Only a hash of each secret is kept, so the store file grants nothing. */
#ifndef HOLDFAST_COORD_JOIN_TOKEN_H
#define HOLDFAST_COORD_JOIN_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define JOIN_TOKEN_ID_LEN     8	 /* bytes; public, names the token in logs and the API */
#define JOIN_TOKEN_SECRET_LEN 16 /* bytes; 128 random bits */
#define JOIN_TOKEN_PREFIX     "hfj1."
/* "hfj1.<16 hex id>.<32 hex secret>" and a NUL. */
#define JOIN_TOKEN_TEXT_LEN                                                                        \
	(sizeof(JOIN_TOKEN_PREFIX) - 1 + 2 * JOIN_TOKEN_ID_LEN + 1 + 2 * JOIN_TOKEN_SECRET_LEN)
#define JOIN_TOKEN_TEXT_MAX (JOIN_TOKEN_TEXT_LEN + 1)
#define JOIN_TOKEN_ID_HEX   (2 * JOIN_TOKEN_ID_LEN + 1)

#define JOIN_TOKEN_TTL_DEFAULT (24 * 3600) /* seconds */
#define JOIN_TOKEN_TTL_MAX     (30 * 24 * 3600)
/* Expired and used tokens are dropped this long after they expire; until then a replay is
 * told "already used" or "expired", after it "unknown": refused either way. */
#define JOIN_TOKEN_KEEP (7 * 24 * 3600)
#define JOIN_STORE_MAX	1024 /* live tokens; creating more fails with -ENOSPC */
#define JOIN_HOST_MAX	63

/* What the API may show of a token: never its secret. */
struct join_token_info {
	char id[JOIN_TOKEN_ID_HEX];
	int64_t created;
	int64_t expires;
	int64_t used_at; /* 0 while unused */
	char used_by[JOIN_HOST_MAX + 1];
};

struct join_store;

/* Open the store kept in the file at path, loading it if it exists. path NULL makes a store in
 * memory only (for tests of the logic). Returns 0, -EBADMSG when the file is damaged (it is
 * not silently replaced: a used token must stay used), or another negative errno. */
int join_store_open(struct join_store **out, const char *path);
void join_store_close(struct join_store *s);

/* Create a token valid for ttl seconds from now (0 means JOIN_TOKEN_TTL_DEFAULT) and write
 * its text, JOIN_TOKEN_TEXT_LEN characters and a NUL, to text. The token is persisted before
 * this returns 0. Also drops tokens past JOIN_TOKEN_KEEP. */
int join_token_create(struct join_store *s, time_t now, unsigned ttl,
		      char text[JOIN_TOKEN_TEXT_MAX]);

/* Check a presented token (len bytes, not necessarily NUL-terminated, as it came off the
 * wire). Returns 0 when it may be used, or:
 *   -EINVAL       malformed: not a token at all;
 *   -ENOENT       unknown: no token has this id;
 *   -EACCES       forged: the id is known but the secret is wrong (compared in constant time);
 *   -EALREADY     already used;
 *   -EKEYEXPIRED  expired.
 * The secret is checked before anything else is told about the token. */
int join_token_check(const struct join_store *s, const char *text, size_t len, time_t now);

/* Check, then mark the token used by host and persist that before returning 0. A refusal is
 * logged with its reason, the token id and the host; on a failed write the token stays
 * unused and the join must fail. */
int join_token_consume(struct join_store *s, const char *text, size_t len, time_t now,
		       const char *host);

/* Words for a result of check or consume, for logs and replies. */
const char *join_token_strerror(int err);

/* The tokens held, for the API. */
size_t join_store_count(const struct join_store *s);
int join_store_get(const struct join_store *s, size_t i, struct join_token_info *out);

#endif
