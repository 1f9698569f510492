/* Block-device pools (pool_device.h): the pure decisions first, then the I/O at the edge. */
#include "csv-coord/pool_device.h"

#include <blkid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- pure ---- */

int pool_fs_parse(const char *s, enum pool_fs *out)
{
	if (s && !strcmp(s, "ext4")) {
		*out = POOL_FS_EXT4;
		return 0;
	}
	if (s && !strcmp(s, "xfs")) {
		*out = POOL_FS_XFS;
		return 0;
	}
	return -EINVAL;
}

const char *pool_fs_name(enum pool_fs fs)
{
	switch (fs) {
	case POOL_FS_EXT4:
		return "ext4";
	case POOL_FS_XFS:
		return "xfs";
	default:
		return "";
	}
}

bool pool_device_path_valid(const char *dev)
{
	size_t n = dev ? strnlen(dev, POOL_DEVICE_PATH_MAX + 1) : 0;

	if (n <= 5 || n > POOL_DEVICE_PATH_MAX || strncmp(dev, "/dev/", 5) != 0)
		return false;
	if (strstr(dev, "/../") || strstr(dev, "//") || !strcmp(dev + n - 3, "/.."))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)dev[i] < 0x20 || dev[i] == 0x7f)
			return false;
	return dev[n - 1] != '/';
}

int pool_device_admit(const char *dev, const struct pool_device_probe *p, enum pool_fs format,
		      char *err, size_t errlen)
{
	if (!p->is_block)
		return errf(err, errlen, -ENOTBLK, "%s is not a block device", dev);
	if (p->mounted)
		return errf(err, errlen, -EBUSY, "%s is mounted at %s; unmount it first", dev,
			    p->mounted_at[0] ? p->mounted_at : "?");
	if (p->in_use)
		return errf(err, errlen, -EBUSY,
			    "%s is in use (held open exclusively: a mounted partition, RAID, LVM "
			    "or device-mapper?)",
			    dev);
	/* Never destroy data the admin did not name: a device that holds anything is formatted
	 * only when asked in so many words. */
	if (p->has_signature && format == POOL_FS_NONE)
		return errf(
			err, errlen, -EEXIST,
			"%s holds a %s (%s); the box takes it only with --format ext4|xfs, which "
			"destroys what is on it",
			dev, p->sig_kind[0] ? p->sig_kind : "signature",
			p->sig_type[0] ? p->sig_type : "unknown");
	if (format == POOL_FS_NONE)
		return errf(
			err, errlen, -EINVAL,
			"%s holds no file system; give --format xfs (reflink clones) or --format "
			"ext4",
			dev);
	return 0;
}

enum pool_mount_state pool_mount_decide(dev_t mnt_dev, dev_t parent_dev, dev_t want_rdev)
{
	/* A folder on the same file system as its parent is not a mount point. */
	if (mnt_dev == parent_dev)
		return POOL_MOUNT_NONE;
	if (want_rdev != 0 && mnt_dev == want_rdev)
		return POOL_MOUNT_OURS;
	return POOL_MOUNT_OTHER;
}

const char *pool_state_name(enum pool_state s)
{
	switch (s) {
	case POOL_STATE_ONLINE:
		return "online";
	case POOL_STATE_MISSING:
		return "missing";
	case POOL_STATE_UNAVAILABLE:
		return "unavailable";
	default:
		return "unknown";
	}
}

enum pool_state pool_state_decide(int find_rc, int mount_rc)
{
	if (find_rc == -ENODEV)
		return POOL_STATE_MISSING;
	if (find_rc < 0 || mount_rc < 0)
		return POOL_STATE_UNAVAILABLE;
	return POOL_STATE_ONLINE;
}

/* ---- I/O ---- */

/* Where (if anywhere) a file system of rdev is mounted, from /proc/self/mountinfo: its third
 * field is major:minor and its fifth the mount point. */
static bool mounted_at(dev_t rdev, char *at, size_t len)
{
	char line[4096], mp[PATH_MAX];
	unsigned maj, min;
	bool found = false;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mp) != 3)
			continue;
		if (makedev(maj, min) == rdev) {
			size_t n = strnlen(mp, len - 1);

			memcpy(at, mp, n);
			at[n] = '\0';
			found = true;
		}
	}
	fclose(f);
	return found;
}

static void sig_describe(blkid_probe pr, struct pool_device_probe *out)
{
	const char *v = NULL;

	if (blkid_probe_lookup_value(pr, "PTTYPE", &v, NULL) == 0 && v) {
		snprintf(out->sig_kind, sizeof(out->sig_kind), "partition table");
		snprintf(out->sig_type, sizeof(out->sig_type), "%s", v);
		return;
	}
	if (blkid_probe_lookup_value(pr, "TYPE", &v, NULL) == 0 && v)
		snprintf(out->sig_type, sizeof(out->sig_type), "%s", v);
	v = NULL;
	blkid_probe_lookup_value(pr, "USAGE", &v, NULL);
	if (v && !strcmp(v, "filesystem"))
		snprintf(out->sig_kind, sizeof(out->sig_kind), "file system");
	else if (v && !strcmp(v, "raid"))
		snprintf(out->sig_kind, sizeof(out->sig_kind), "RAID member");
	else if (v && !strcmp(v, "crypto"))
		snprintf(out->sig_kind, sizeof(out->sig_kind), "encrypted volume");
	else
		snprintf(out->sig_kind, sizeof(out->sig_kind), "signature");
}

int pool_device_probe(const char *dev, struct pool_device_probe *out, char *err, size_t errlen)
{
	blkid_probe pr;
	struct stat sb;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	if (stat(dev, &sb) < 0)
		return errf(err, errlen, -errno, "device %s: %s", dev,
			    errno == ENOENT ? "not found" : strerror(errno));
	out->is_block = S_ISBLK(sb.st_mode);
	if (!out->is_block)
		return 0;
	out->mounted = mounted_at(sb.st_rdev, out->mounted_at, sizeof(out->mounted_at));
	/* The kernel refuses an exclusive open of a block device that a file system, md, dm or
	 * another O_EXCL opener holds, and of a whole disk one of whose partitions is held. */
	fd = open(dev, O_RDONLY | O_EXCL | O_CLOEXEC);
	if (fd < 0 && errno == EBUSY)
		out->in_use = true;
	else if (fd < 0)
		return errf(err, errlen, -errno, "open %s: %s", dev, strerror(errno));
	else
		close(fd);

	pr = blkid_new_probe_from_filename(dev);
	if (!pr)
		return errf(err, errlen, -EIO, "%s: cannot probe it (libblkid)", dev);
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
	blkid_probe_enable_partitions(pr, 1);
	/* MAGIC: an empty partition table counts too; it is still somebody's layout. */
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
	rc = blkid_do_safeprobe(pr);
	if (rc == 0) {
		out->has_signature = true;
		sig_describe(pr, out);
	} else if (rc == -2) {
		/* Several signatures that contradict each other: something was there. */
		out->has_signature = true;
		snprintf(out->sig_kind, sizeof(out->sig_kind), "signature");
		snprintf(out->sig_type, sizeof(out->sig_type), "several, ambiguous");
	} else if (rc < 0) {
		blkid_free_probe(pr);
		return errf(err, errlen, -EIO, "%s: probing failed (libblkid)", dev);
	}
	blkid_free_probe(pr);
	return 0;
}

/* The first executable of name in the system folders or PATH, found before any fork. */
static int find_program(const char *name, char *out, size_t len)
{
	static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
	const char *path = getenv("PATH");

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(out, len, "%s/%s", dirs[i], name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	while (path && *path) {
		const char *colon = strchr(path, ':');
		size_t n = colon ? (size_t)(colon - path) : strlen(path);

		if (n > 0 && n + strlen(name) + 2 <= len) {
			snprintf(out, len, "%.*s/%s", (int)n, path, name);
			if (access(out, X_OK) == 0)
				return 0;
		}
		path = colon ? colon + 1 : NULL;
	}
	return -ENOENT;
}

/* Run argv[0] (an absolute path) with stdin from /dev/null and stdout and stderr into out.
 * Only async-signal-safe calls between fork and exec: the coord process has threads. */
static int run_program(char *const argv[], char *out, size_t outlen, int *status)
{
	size_t used = 0;
	int p[2], devnull;
	ssize_t k;
	pid_t pid;

	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0)
		return -errno;
	if (pipe2(p, O_CLOEXEC) < 0) {
		close(devnull);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(p[0]);
		close(p[1]);
		close(devnull);
		return -e;
	}
	if (pid == 0) {
		if (dup2(devnull, 0) < 0 || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	close(devnull);
	for (;;) {
		char sink[512];

		if (used + 1 < outlen)
			k = read(p[0], out + used, outlen - used - 1);
		else
			k = read(p[0], sink, sizeof(sink));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (used + 1 < outlen)
			used += (size_t)k;
	}
	if (outlen)
		out[used < outlen ? used : outlen - 1] = '\0';
	close(p[0]);
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* The output of a program on one line, for an error message. */
static void one_line(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n' || s[i] == '\t')
			s[i] = ' ';
}

int pool_device_mkfs(const char *dev, enum pool_fs fs, char *err, size_t errlen)
{
	char prog[PATH_MAX], output[POOL_DEVICE_ERR_MAX], devcopy[POOL_DEVICE_PATH_MAX + 1];
	const char *name;
	char *argv[12];
	int status = 0, rc, n = 0;

	if (!pool_device_path_valid(dev))
		return errf(err, errlen, -EINVAL, "bad device path");
	snprintf(devcopy, sizeof(devcopy), "%s", dev);
	name = fs == POOL_FS_XFS ? "mkfs.xfs" : fs == POOL_FS_EXT4 ? "mkfs.ext4" : NULL;
	if (!name)
		return errf(err, errlen, -EINVAL, "no file system to make");
	if (find_program(name, prog, sizeof(prog)) < 0)
		return errf(err, errlen, -ENOENT, "%s is not installed (%s)", name,
			    fs == POOL_FS_XFS ? "xfsprogs" : "e2fsprogs");
	argv[n++] = prog;
	if (fs == POOL_FS_XFS) {
		/* -f: the admin asked to format; -K: no discard of the whole device, which can
		 * take minutes on a large one while the coord loop waits; reflink=1: clones
		 * share blocks (the default since xfsprogs 5.1, said here so it stays so). */
		argv[n++] = "-f";
		argv[n++] = "-q";
		argv[n++] = "-K";
		argv[n++] = "-m";
		argv[n++] = "reflink=1";
	} else {
		/* -F: format even a whole disk or a device that holds a file system; -m 0: no
		 * blocks reserved for root, VM images are the only tenant; nodiscard as for XFS. */
		argv[n++] = "-F";
		argv[n++] = "-q";
		argv[n++] = "-m";
		argv[n++] = "0";
		argv[n++] = "-E";
		argv[n++] = "nodiscard";
	}
	argv[n++] = devcopy;
	argv[n] = NULL;
	output[0] = '\0';
	rc = run_program(argv, output, sizeof(output), &status);
	if (rc < 0)
		return errf(err, errlen, -EIO, "cannot run %s: %s", prog, strerror(-rc));
	one_line(output);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return errf(err, errlen, -EIO, "%s %s failed (%s %d): %s", name, dev,
			    WIFEXITED(status) ? "exit" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
			    output[0] ? output : "no output");
	return 0;
}

int pool_device_fs_id(const char *dev, char uuid[POOL_DEVICE_UUID_MAX + 1],
		      char type[POOL_DEVICE_FS_MAX + 1], char *err, size_t errlen)
{
	const char *u = NULL, *t = NULL;
	blkid_probe pr;
	int rc;

	pr = blkid_new_probe_from_filename(dev);
	if (!pr)
		return errf(err, errlen, -EIO, "%s: cannot probe it (libblkid)", dev);
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID);
	rc = blkid_do_safeprobe(pr);
	if (rc == 0) {
		blkid_probe_lookup_value(pr, "UUID", &u, NULL);
		blkid_probe_lookup_value(pr, "TYPE", &t, NULL);
	}
	if (rc != 0 || !u || !t || strlen(u) > POOL_DEVICE_UUID_MAX ||
	    strlen(t) > POOL_DEVICE_FS_MAX) {
		blkid_free_probe(pr);
		return errf(err, errlen, -EIO, "%s: no file system with a UUID found on it", dev);
	}
	snprintf(uuid, POOL_DEVICE_UUID_MAX + 1, "%s", u);
	snprintf(type, POOL_DEVICE_FS_MAX + 1, "%s", t);
	blkid_free_probe(pr);
	return 0;
}

int pool_device_find(const char *uuid, char dev[POOL_DEVICE_PATH_MAX + 1], char *err, size_t errlen)
{
	blkid_cache cache;
	char *name;
	int rc = 0;

	if (!uuid || !uuid[0])
		return errf(err, errlen, -EINVAL, "no UUID");
	/* A private, empty cache ("/dev/null" as its file): every device is probed afresh, so
	 * a device that moved to another /dev name since the last boot is found, and a cache
	 * file left by an older boot cannot point at the wrong one. */
	if (blkid_get_cache(&cache, "/dev/null") < 0)
		return errf(err, errlen, -EIO, "libblkid: no cache");
	blkid_probe_all(cache);
	name = blkid_get_devname(cache, "UUID", uuid);
	if (!name)
		rc = errf(err, errlen, -ENODEV, "no device holds the file system %s", uuid);
	else if (strlen(name) > POOL_DEVICE_PATH_MAX)
		rc = errf(err, errlen, -ENAMETOOLONG, "device name too long");
	else
		snprintf(dev, POOL_DEVICE_PATH_MAX + 1, "%s", name);
	free(name);
	blkid_put_cache(cache);
	return rc;
}

static int parent_of(const char *path, char *out, size_t len)
{
	char *slash;

	snprintf(out, len, "%s", path);
	slash = strrchr(out, '/');
	if (!slash || slash == out)
		return -EINVAL;
	*slash = '\0';
	return 0;
}

/* What is mounted at mnt now, for device rdev (0: unknown). */
static int mount_state(const char *mnt, dev_t rdev, enum pool_mount_state *out)
{
	char parent[PATH_MAX];
	struct stat m, p;

	if (parent_of(mnt, parent, sizeof(parent)) < 0)
		return -EINVAL;
	if (stat(mnt, &m) < 0 || stat(parent, &p) < 0)
		return -errno;
	*out = pool_mount_decide(m.st_dev, p.st_dev, rdev);
	return 0;
}

static bool folder_empty(const char *path)
{
	struct dirent *e;
	bool empty = true;
	DIR *d = opendir(path);

	if (!d)
		return false;
	while (empty && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			empty = false;
	closedir(d);
	return empty;
}

int pool_device_mount(const char *dev, const char *fstype, const char *mnt, char *err,
		      size_t errlen)
{
	enum pool_mount_state ms;
	char parent[PATH_MAX];
	struct stat sb;
	int rc;

	if (stat(dev, &sb) < 0)
		return errf(err, errlen, -errno, "device %s: %s", dev, strerror(errno));
	if (!S_ISBLK(sb.st_mode))
		return errf(err, errlen, -ENOTBLK, "%s is not a block device", dev);
	if (parent_of(mnt, parent, sizeof(parent)) < 0)
		return errf(err, errlen, -EINVAL, "bad mount point %s", mnt);
	if (mkdir(parent, 0700) < 0 && errno != EEXIST)
		return errf(err, errlen, -errno, "mkdir %s: %s", parent, strerror(errno));
	if (mkdir(mnt, 0700) < 0 && errno != EEXIST)
		return errf(err, errlen, -errno, "mkdir %s: %s", mnt, strerror(errno));
	rc = mount_state(mnt, sb.st_rdev, &ms);
	if (rc < 0)
		return errf(err, errlen, rc, "%s: %s", mnt, strerror(-rc));
	if (ms == POOL_MOUNT_OURS)
		return 0; /* left mounted by an earlier run of the box's process */
	if (ms == POOL_MOUNT_OTHER)
		return errf(err, errlen, -EBUSY, "another file system is mounted at %s", mnt);
	/* Files under the mount point would be hidden by the mount, and they can only have been
	 * written while the pool was not mounted: leave them for the admin to look at. */
	if (!folder_empty(mnt))
		return errf(err, errlen, -EBUSY, "mount point %s is not empty", mnt);
	if (mount(dev, mnt, fstype, MS_NOATIME | MS_NODEV | MS_NOSUID | MS_NOEXEC, NULL) < 0)
		return errf(err, errlen, -EIO, "mount %s (%s) on %s: %s", dev, fstype, mnt,
			    strerror(errno));
	/* The root of a new file system is world-readable; disk images are the box's alone.
	 * Not so: the mount is undone, so that a failure leaves nothing mounted. */
	if (chmod(mnt, 0700) < 0) {
		int e = errno;

		umount2(mnt, UMOUNT_NOFOLLOW);
		return errf(err, errlen, -e, "chmod %s: %s", mnt, strerror(e));
	}
	return 0;
}

int pool_device_umount(const char *mnt, char *err, size_t errlen)
{
	enum pool_mount_state ms;
	int rc;

	rc = mount_state(mnt, 0, &ms);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return errf(err, errlen, rc, "%s: %s", mnt, strerror(-rc));
	if (ms != POOL_MOUNT_NONE && umount2(mnt, UMOUNT_NOFOLLOW) < 0)
		return errf(err, errlen, errno == EBUSY ? -EBUSY : -EIO, "unmount %s: %s", mnt,
			    strerror(errno));
	/* An empty folder is left behind only if it is not empty (the admin's files). */
	if (rmdir(mnt) < 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
		return errf(err, errlen, -errno, "rmdir %s: %s", mnt, strerror(errno));
	return 0;
}

int pool_device_sweep(const char *pools_dir, const char *const *keep, size_t nkeep,
		      void (*report)(const char *mnt, int rc, const char *why))
{
	char path[PATH_MAX], why[POOL_DEVICE_ERR_MAX];
	enum pool_mount_state ms;
	struct dirent *e;
	int n = 0;
	DIR *d = opendir(pools_dir);

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		bool kept = false;
		int rc;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", pools_dir, e->d_name) >= (int)sizeof(path))
			continue;
		for (size_t i = 0; i < nkeep && !kept; i++)
			kept = !strcmp(keep[i], path);
		if (kept || mount_state(path, 0, &ms) < 0 || ms == POOL_MOUNT_NONE)
			continue;
		why[0] = '\0';
		rc = pool_device_umount(path, why, sizeof(why));
		if (report)
			report(path, rc, why);
		if (rc == 0)
			n++;
	}
	closedir(d);
	return n;
}
