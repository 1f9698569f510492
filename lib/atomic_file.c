#include "lib/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Open the folder holding path, so that the rename itself can be made durable. */
static int open_parent_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n;
	int fd;

	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		n = slash - path;
		if (n >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

int atomic_file_write(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	int fd, dirfd, err;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	dirfd = open_parent_dir(path);
	if (dirfd < 0)
		return dirfd;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		goto err_close_dir;
	}
	/* mkostemp creates the file 0600; the caller decides who may read the result. */
	if (fchmod(fd, mode) < 0) {
		err = -errno;
		goto err_unlink;
	}
	err = write_all(fd, data, len);
	if (err)
		goto err_unlink;
	/* The data must be on disk before the name points at it, or a crash right after the
	 * rename could leave an empty or partial file under the real name. */
	if (fsync(fd) < 0) {
		err = -errno;
		goto err_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		err = -errno;
		goto err_unlink;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		err = -errno;
		goto err_unlink;
	}
	/* The rename lives in the folder's entries; without this fsync it can be lost. */
	if (fsync(dirfd) < 0) {
		err = -errno;
		goto err_close_dir;
	}
	close(dirfd);
	return 0;

err_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
err_close_dir:
	close(dirfd);
	return err;
}
