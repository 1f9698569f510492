/* Tests for csv-coord/join_token.c: a fresh token is accepted once; an expired, reused, forged,
 * unknown or malformed one is refused with its own result; a used token stays used across a
 * reload; the store file keeps no secret and a damaged one is not silently replaced. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csv-coord/join_token.h"

#define T0 1700000000 /* a fixed "now": the logic takes the time as an argument */

struct fx {
	char dir[64];
	char path[PATH_MAX];
	struct join_store *s;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/hf-join-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/join-tokens", f->dir);
	if (join_store_open(&f->s, f->path))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	join_store_close(f->s);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void create(struct join_store *s, time_t now, unsigned ttl, char *text)
{
	assert_int_equal(join_token_create(s, now, ttl, text), 0);
	assert_int_equal(strlen(text), JOIN_TOKEN_TEXT_LEN);
}

static void test_fresh_token_is_accepted_once(void **state)
{
	struct fx *f = *state;
	char tok[JOIN_TOKEN_TEXT_MAX];

	create(f->s, T0, 600, tok);
	assert_memory_equal(tok, JOIN_TOKEN_PREFIX, strlen(JOIN_TOKEN_PREFIX));
	assert_int_equal(join_token_check(f->s, tok, strlen(tok), T0 + 1), 0);
	assert_int_equal(join_token_consume(f->s, tok, strlen(tok), T0 + 1, "host1"), 0);
}

static void test_reused_token_is_refused_as_already_used(void **state)
{
	struct fx *f = *state;
	char tok[JOIN_TOKEN_TEXT_MAX];

	create(f->s, T0, 600, tok);
	assert_int_equal(join_token_consume(f->s, tok, strlen(tok), T0 + 1, "host1"), 0);
	assert_int_equal(join_token_check(f->s, tok, strlen(tok), T0 + 2), -EALREADY);
	assert_int_equal(join_token_consume(f->s, tok, strlen(tok), T0 + 2, "host2"), -EALREADY);
}

static void test_expired_token_is_refused(void **state)
{
	struct fx *f = *state;
	char tok[JOIN_TOKEN_TEXT_MAX];

	create(f->s, T0, 600, tok);
	assert_int_equal(join_token_check(f->s, tok, strlen(tok), T0 + 599), 0);
	assert_int_equal(join_token_check(f->s, tok, strlen(tok), T0 + 600), -EKEYEXPIRED);
	assert_int_equal(join_token_consume(f->s, tok, strlen(tok), T0 + 601, "host1"),
			 -EKEYEXPIRED);
}

static void test_forged_secret_is_refused(void **state)
{
	struct fx *f = *state;
	char tok[JOIN_TOKEN_TEXT_MAX];
	size_t last = JOIN_TOKEN_TEXT_LEN - 1;

	create(f->s, T0, 600, tok);
	tok[last] = tok[last] == '0' ? '1' : '0';
	assert_int_equal(join_token_check(f->s, tok, strlen(tok), T0 + 1), -EACCES);
	assert_int_equal(join_token_consume(f->s, tok, strlen(tok), T0 + 1, "mallory"), -EACCES);
}

/* A forger learns nothing about a token's state: the secret is checked first. */
static void test_forged_secret_of_used_or_expired_token_is_still_forged(void **state)
{
	struct fx *f = *state;
	char tok[JOIN_TOKEN_TEXT_MAX], forged[JOIN_TOKEN_TEXT_MAX];
	size_t last = JOIN_TOKEN_TEXT_LEN - 1;

	create(f->s, T0, 600, tok);
	strcpy(forged, tok);
	forged[last] = forged[last] == '0' ? '1' : '0';
	assert_int_equal(join_token_check(f->s, forged, strlen(forged), T0 + 700), -EACCES);
	assert_int_equal(join_token_consume(f->s, tok, strlen(tok), T0 + 1, "host1"), 0);
	assert_int_equal(join_token_check(f->s, forged, strlen(forged), T0 + 2), -EACCES);
}

static void test_unknown_token_is_refused(void **state)
{
	struct fx *f = *state;
	char tok[JOIN_TOKEN_TEXT_MAX];
	size_t id = strlen(JOIN_TOKEN_PREFIX);

	create(f->s, T0, 600, tok);
	tok[id] = tok[id] == 'a' ? 'b' : 'a';
	assert_int_equal(join_token_check(f->s, tok, strlen(tok), T0 + 1), -ENOENT);
	assert_int_equal(join_token_consume(f->s, tok, strlen(tok), T0 + 1, "host1"), -ENOENT);
}

static void test_malformed_tokens_are_refused(void **state)
{
	struct fx *f = *state;
	char tok[JOIN_TOKEN_TEXT_MAX], bad[JOIN_TOKEN_TEXT_MAX + 8];
	size_t n = JOIN_TOKEN_TEXT_LEN;

	create(f->s, T0, 600, tok);
	/* Truncated, and one byte too long. */
	assert_int_equal(join_token_check(f->s, tok, n - 1, T0), -EINVAL);
	snprintf(bad, sizeof(bad), "%sa", tok);
	assert_int_equal(join_token_check(f->s, bad, n + 1, T0), -EINVAL);
	/* A non-hex digit in the secret, the wrong prefix, the wrong separator. */
	strcpy(bad, tok);
	bad[n - 3] = 'g';
	assert_int_equal(join_token_check(f->s, bad, n, T0), -EINVAL);
	strcpy(bad, tok);
	bad[0] = 'x';
	assert_int_equal(join_token_check(f->s, bad, n, T0), -EINVAL);
	strcpy(bad, tok);
	bad[n - 2 * 16 - 1] = '-';
	assert_int_equal(join_token_check(f->s, bad, n, T0), -EINVAL);
	/* A NUL inside: the length is what the wire said, not where a string ends. */
	strcpy(bad, tok);
	bad[10] = '\0';
	assert_int_equal(join_token_check(f->s, bad, n, T0), -EINVAL);
	assert_int_equal(join_token_check(f->s, "", 0, T0), -EINVAL);
	/* None of that used the real token up. */
	assert_int_equal(join_token_check(f->s, tok, n, T0), 0);
}

static void test_used_token_stays_used_across_reload(void **state)
{
	struct fx *f = *state;
	char used[JOIN_TOKEN_TEXT_MAX], fresh[JOIN_TOKEN_TEXT_MAX];
	struct join_token_info info;

	create(f->s, T0, 600, used);
	create(f->s, T0, 600, fresh);
	assert_int_equal(join_token_consume(f->s, used, strlen(used), T0 + 5, "host1"), 0);
	join_store_close(f->s);
	f->s = NULL;

	assert_int_equal(join_store_open(&f->s, f->path), 0);
	assert_int_equal(join_store_count(f->s), 2);
	assert_int_equal(join_token_check(f->s, used, strlen(used), T0 + 6), -EALREADY);
	assert_int_equal(join_token_check(f->s, fresh, strlen(fresh), T0 + 6), 0);
	assert_int_equal(join_store_get(f->s, 0, &info), 0);
	assert_int_equal(info.used_at, T0 + 5);
	assert_string_equal(info.used_by, "host1");
	assert_int_equal(info.expires, T0 + 600);
	assert_int_equal(join_store_get(f->s, 1, &info), 0);
	assert_int_equal(info.used_at, 0);
	assert_int_equal(join_store_get(f->s, 2, &info), -ENOENT);
	assert_int_equal(join_token_consume(f->s, fresh, strlen(fresh), T0 + 7, "host2"), 0);
}

static void test_store_file_keeps_no_secret_and_is_private(void **state)
{
	struct fx *f = *state;
	char tok[JOIN_TOKEN_TEXT_MAX], buf[4096];
	const char *secret;
	struct stat st;
	size_t n;
	FILE *fp;

	create(f->s, T0, 600, tok);
	secret = strrchr(tok, '.') + 1;
	fp = fopen(f->path, "r");
	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	assert_true(n > 0);
	assert_null(strstr(buf, secret));
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_damaged_store_is_refused(void **state)
{
	struct fx *f = *state;
	struct join_store *s = NULL;
	char tok[JOIN_TOKEN_TEXT_MAX];
	FILE *fp;

	create(f->s, T0, 600, tok);
	fp = fopen(f->path, "a");
	assert_non_null(fp);
	fputs("zz not a token line\n", fp);
	fclose(fp);
	assert_int_equal(join_store_open(&s, f->path), -EBADMSG);
	assert_null(s);
}

/* If marking the token used cannot be made durable, the join fails and the token is not
 * used up. */
static void test_failed_write_leaves_token_unused(void **state)
{
	struct fx *f = *state;
	char tok[JOIN_TOKEN_TEXT_MAX];

	create(f->s, T0, 600, tok);
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(rmdir(f->dir), 0);
	assert_true(join_token_consume(f->s, tok, strlen(tok), T0 + 1, "host1") < 0);
	assert_int_equal(join_token_check(f->s, tok, strlen(tok), T0 + 1), 0);
	assert_int_equal(mkdir(f->dir, 0700), 0);
}

static void test_old_tokens_are_pruned_on_create(void **state)
{
	struct fx *f = *state;
	char old[JOIN_TOKEN_TEXT_MAX], tok[JOIN_TOKEN_TEXT_MAX];

	create(f->s, T0, 600, old);
	create(f->s, T0 + 600 + JOIN_TOKEN_KEEP - 1, 600, tok);
	assert_int_equal(join_store_count(f->s), 2);
	create(f->s, T0 + 600 + JOIN_TOKEN_KEEP, 600, tok);
	assert_int_equal(join_store_count(f->s), 2);
	/* Refused still, now as unknown. */
	assert_int_equal(join_token_check(f->s, old, strlen(old), T0 + 600 + JOIN_TOKEN_KEEP),
			 -ENOENT);
}

static void test_create_and_consume_reject_bad_arguments(void **state)
{
	struct fx *f = *state;
	char tok[JOIN_TOKEN_TEXT_MAX];

	assert_int_equal(join_token_create(f->s, T0, JOIN_TOKEN_TTL_MAX + 1, tok), -EINVAL);
	create(f->s, T0, 0, tok);
	assert_int_equal(join_token_check(f->s, tok, strlen(tok), T0 + JOIN_TOKEN_TTL_DEFAULT),
			 -EKEYEXPIRED);
	create(f->s, T0, 600, tok);
	assert_int_equal(join_token_consume(f->s, tok, strlen(tok), T0, "bad host,O=x"), -EINVAL);
	assert_int_equal(join_token_check(f->s, tok, strlen(tok), T0), 0);
}

static void test_memory_store_works_without_a_file(void **state)
{
	struct join_store *s;
	char tok[JOIN_TOKEN_TEXT_MAX];

	assert_int_equal(join_store_open(&s, NULL), 0);
	create(s, T0, 60, tok);
	assert_int_equal(join_token_consume(s, tok, strlen(tok), T0, "host1"), 0);
	assert_int_equal(join_token_check(s, tok, strlen(tok), T0), -EALREADY);
	join_store_close(s);
}

static void test_tokens_differ(void **state)
{
	struct fx *f = *state;
	char a[JOIN_TOKEN_TEXT_MAX], b[JOIN_TOKEN_TEXT_MAX];

	create(f->s, T0, 600, a);
	create(f->s, T0, 600, b);
	assert_string_not_equal(a, b);
	/* Neither the ids nor the secrets repeat. */
	assert_memory_not_equal(a, b, strlen(JOIN_TOKEN_PREFIX) + 16);
	assert_string_not_equal(strrchr(a, '.'), strrchr(b, '.'));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_fresh_token_is_accepted_once),
		T(test_reused_token_is_refused_as_already_used),
		T(test_expired_token_is_refused),
		T(test_forged_secret_is_refused),
		T(test_forged_secret_of_used_or_expired_token_is_still_forged),
		T(test_unknown_token_is_refused),
		T(test_malformed_tokens_are_refused),
		T(test_used_token_stays_used_across_reload),
		T(test_store_file_keeps_no_secret_and_is_private),
		T(test_damaged_store_is_refused),
		T(test_failed_write_leaves_token_unused),
		T(test_old_tokens_are_pruned_on_create),
		T(test_create_and_consume_reject_bad_arguments),
		T(test_memory_store_works_without_a_file),
		T(test_tokens_differ),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
