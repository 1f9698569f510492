/* Tests for lib/atomic_file.c: the file ends up with the new bytes and mode, replaces an
 * old one whole, leaves nothing behind, and a failed write leaves the old file untouched. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/atomic_file.h"

struct dir {
	char path[64];
	char file[PATH_MAX];
};

static int setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	strcpy(d->path, "/tmp/hf-atomic-test-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	snprintf(d->file, sizeof(d->file), "%s/state", d->path);
	*state = d;
	return 0;
}

/* Remove whatever the test left; also counts entries so tests can check for leftovers. */
static int count_entries(const char *path, int remove_them)
{
	char p[PATH_MAX];
	struct dirent *e;
	DIR *dir = opendir(path);
	int n = 0;

	assert_non_null(dir);
	while ((e = readdir(dir))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		n++;
		if (remove_them) {
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			unlink(p);
		}
	}
	closedir(dir);
	return n;
}

static int teardown(void **state)
{
	struct dir *d = *state;

	chmod(d->path, 0700);
	count_entries(d->path, 1);
	rmdir(d->path);
	free(d);
	return 0;
}

static void read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, len - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
}

static void test_new_file_has_the_bytes_and_mode(void **state)
{
	struct dir *d = *state;
	struct stat st;
	char buf[64];

	assert_int_equal(atomic_file_write(d->file, "hello", 5, 0640), 0);
	read_file(d->file, buf, sizeof(buf));
	assert_string_equal(buf, "hello");
	assert_int_equal(stat(d->file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
}

static void test_existing_file_is_replaced_whole(void **state)
{
	struct dir *d = *state;
	char buf[64];

	assert_int_equal(atomic_file_write(d->file, "a much longer first version", 27, 0600), 0);
	assert_int_equal(atomic_file_write(d->file, "v2", 2, 0600), 0);
	read_file(d->file, buf, sizeof(buf));
	/* No tail of the longer old content survives. */
	assert_string_equal(buf, "v2");
}

static void test_no_temporary_file_is_left(void **state)
{
	struct dir *d = *state;

	assert_int_equal(atomic_file_write(d->file, "x", 1, 0600), 0);
	assert_int_equal(atomic_file_write(d->file, "y", 1, 0600), 0);
	assert_int_equal(count_entries(d->path, 0), 1);
}

static void test_empty_file_can_be_written(void **state)
{
	struct dir *d = *state;
	struct stat st;

	assert_int_equal(atomic_file_write(d->file, "", 0, 0600), 0);
	assert_int_equal(stat(d->file, &st), 0);
	assert_int_equal(st.st_size, 0);
}

static void test_failed_write_leaves_old_file_untouched(void **state)
{
	struct dir *d = *state;
	struct rlimit old, small;
	char big[8192], buf[64];
	int err;

	/* A file size limit makes write() fail with EFBIG midway, even for root. */
	memset(big, 'n', sizeof(big));
	assert_int_equal(atomic_file_write(d->file, "old", 3, 0600), 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 4096;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	err = atomic_file_write(d->file, big, sizeof(big), 0600);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(err, -EFBIG);
	read_file(d->file, buf, sizeof(buf));
	assert_string_equal(buf, "old");
	assert_int_equal(count_entries(d->path, 0), 1);
}

static void test_missing_folder_is_an_error(void **state)
{
	struct dir *d = *state;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/no/such/file", d->path);
	assert_int_equal(atomic_file_write(path, "x", 1, 0600), -ENOENT);
}

static void test_writing_over_a_folder_fails_and_cleans_up(void **state)
{
	struct dir *d = *state;
	char sub[PATH_MAX + 8];

	/* rename() cannot replace a non-empty folder with a file: the error comes late, after
	 * the temporary file exists, and that file must go. */
	assert_int_equal(mkdir(d->file, 0700), 0);
	snprintf(sub, sizeof(sub), "%s/inner", d->file);
	assert_int_equal(atomic_file_write(sub, "x", 1, 0600), 0);
	assert_true(atomic_file_write(d->file, "x", 1, 0600) < 0);
	assert_int_equal(count_entries(d->path, 0), 1);
	unlink(sub);
	rmdir(d->file);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_new_file_has_the_bytes_and_mode),
		T(test_existing_file_is_replaced_whole),
		T(test_no_temporary_file_is_left),
		T(test_empty_file_can_be_written),
		T(test_failed_write_leaves_old_file_untouched),
		T(test_missing_folder_is_an_error),
		T(test_writing_over_a_folder_fails_and_cleans_up),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
