/* Block-device pools: taking a block device as a pool (probe, mkfs, mount), finding it again
 * by its file system's UUID at start, and letting it go (unmount). Once mounted, a block pool
 * is a folder pool on its own file system (sparse files, hole punching, reflink where the file
 * system has it). docs/catalog.md, "Block-device pools".
 *
 * The decisions (may this device be taken? what is mounted at the mount point?) are pure and
 * apart from the I/O, which uses libblkid (util-linux) for probing and finding, the Debian
 * mkfs programs (e2fsprogs, xfsprogs) through fork/exec without a shell, and mount(2).
 *
 * Errors are negative errno values with a message in the caller's buffer:
 *	-ENOENT	 no such device			-ENOTBLK  not a block device
 *	-EBUSY	 mounted or held by someone	-EEXIST	  holds data and --format was not given
 *	-ENODEV	 no device with the UUID	-EIO	  mkfs or mount failed (its message)
 *	-EINVAL	 bad argument */
#ifndef HOLDFAST_CSV_COORD_POOL_DEVICE_H
#define HOLDFAST_CSV_COORD_POOL_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define POOL_DEVICE_PATH_MAX 255
#define POOL_DEVICE_UUID_MAX 36 /* a file system UUID in text (XFS, ext4: 8-4-4-4-12) */
#define POOL_DEVICE_FS_MAX   15
#define POOL_DEVICE_ERR_MAX  512
/* Options a VM image store wants: no access-time writes on every read of a disk image, and
 * nothing on the pool that could run or act as a device. */
#define POOL_DEVICE_MOUNT_DESC "noatime,nodev,nosuid,noexec"

enum pool_fs {
	POOL_FS_NONE = 0, /* keep what is there: refuse a device that is not empty */
	POOL_FS_EXT4 = 1,
	POOL_FS_XFS = 2, /* preferred: reflink clones (docs/catalog.md) */
};

/* Pure. "ext4" or "xfs" (case as written); -EINVAL for anything else. */
int pool_fs_parse(const char *s, enum pool_fs *out);
/* Pure. "ext4", "xfs", or "" for POOL_FS_NONE. */
const char *pool_fs_name(enum pool_fs fs);

/* Pure. A device argument the box accepts: an absolute path under /dev/ of at most
 * POOL_DEVICE_PATH_MAX bytes with no "..", "//" or control characters. */
bool pool_device_path_valid(const char *dev);

/* What pool_device_probe() found on a device. */
struct pool_device_probe {
	bool is_block;	    /* a block device (not a file, not a folder) */
	bool mounted;	    /* some file system of it is mounted (/proc/self/mountinfo) */
	bool in_use;	    /* an O_EXCL open failed: mounted, or held by md, dm, LVM, ... */
	bool has_signature; /* a file system, RAID member, partition table, ... */
	char sig_kind[24];  /* "file system", "partition table", "signature" */
	char sig_type[32];  /* "ext4", "xfs", "dos", "gpt", "linux_raid_member", ... */
	char mounted_at[POOL_DEVICE_PATH_MAX + 1];
};

/* Pure. May dev (as probed) be taken as a pool, formatting it when format is not
 * POOL_FS_NONE? Never while it is mounted or in use; a device that holds anything is taken only
 * with an explicit format, which destroys it, and one that holds nothing needs a format to be
 * given too (there is no file system to mount). 0 or -errno with the reason. */
int pool_device_admit(const char *dev, const struct pool_device_probe *p, enum pool_fs format,
		      char *err, size_t errlen);

/* What is at a pool's mount point, from its st_dev and its parent folder's st_dev. */
enum pool_mount_state {
	POOL_MOUNT_NONE = 0, /* a plain folder of the parent's file system */
	POOL_MOUNT_OURS,     /* the pool's device is mounted there */
	POOL_MOUNT_OTHER,    /* something else is mounted there */
};
/* Pure. want_rdev 0: the device is unknown (missing), so only NONE or OTHER. */
enum pool_mount_state pool_mount_decide(dev_t mnt_dev, dev_t parent_dev, dev_t want_rdev);

/* The state of a block pool as the box sees it (pool_list). */
enum pool_state {
	POOL_STATE_ONLINE = 1,	/* mounted; served as a folder pool */
	POOL_STATE_MISSING,	/* no device with its UUID: its disks are not served or touched */
	POOL_STATE_UNAVAILABLE, /* the device is there but could not be mounted */
};
const char *pool_state_name(enum pool_state s);
/* Pure. The state from the outcome of finding the device (pool_device_find's rc) and of
 * mounting it (pool_device_mount's rc, ignored when the device was not found). */
enum pool_state pool_state_decide(int find_rc, int mount_rc);

/* Look at dev: what it is, whether it is mounted or held, what it holds (libblkid). -ENOENT
 * when it does not exist. */
int pool_device_probe(const char *dev, struct pool_device_probe *out, char *err, size_t errlen);
/* Make a file system on dev with mkfs.ext4 / mkfs.xfs (found in /usr/sbin, /sbin or PATH), no
 * shell, stdin from /dev/null; forced, since the admin asked for it. -EIO with mkfs's own
 * stderr on failure. */
int pool_device_mkfs(const char *dev, enum pool_fs fs, char *err, size_t errlen);
/* The UUID and type of the file system on dev (libblkid). */
int pool_device_fs_id(const char *dev, char uuid[POOL_DEVICE_UUID_MAX + 1],
		      char type[POOL_DEVICE_FS_MAX + 1], char *err, size_t errlen);
/* The device that holds the file system with this UUID now (its /dev name may differ from the
 * last boot's): -ENODEV when none does. */
int pool_device_find(const char *uuid, char dev[POOL_DEVICE_PATH_MAX + 1], char *err,
		     size_t errlen);
/* Mount dev (a file system of type fstype) at mnt with POOL_DEVICE_MOUNT_DESC, making the
 * folder if needed. Already mounted there (after a crash of the box's process, say): 0.
 * Something else mounted there, or a mount point that is not empty: -EBUSY. */
int pool_device_mount(const char *dev, const char *fstype, const char *mnt, char *err,
		      size_t errlen);
/* Unmount mnt if it is a mount point (not mounted: 0), then remove the empty folder. */
int pool_device_umount(const char *mnt, char *err, size_t errlen);

/* At start, after the block pools were mounted: a file system mounted at a folder of
 * pools_dir that is no pool's mount point (keep: the block pools' mount points) was left by a
 * pool add cut short between its mount and its catalog row; it is unmounted (the device is not
 * touched). report, if given, hears of each one (rc 0 or -errno, why). Returns how many were
 * unmounted, or -errno when pools_dir cannot be read. */
int pool_device_sweep(const char *pools_dir, const char *const *keep, size_t nkeep,
		      void (*report)(const char *mnt, int rc, const char *why));

#endif
