/* The backing files of a batch's creates, made durable together (catalog_int.h:
 * catalog_files_make).
 *
 * A new backing file is sparse: it holds no data, only a name, an inode and a length. On the
 * journaling file systems a pool lives on (ext4, XFS, btrfs) a file's creation is one journal
 * transaction with its folder entry, so the folder's fsync makes the name and the inode
 * durable together; one fsync per pool folder covers every file of the batch. The length
 * (the ftruncate) may reach the journal in a later transaction than the one the folder's fsync
 * commits: a crash can then leave the file shorter than its catalog row, which the next open
 * repairs (catalog.c, reconciliation: "sizes_fixed"), and a write that made data durable
 * (FUA, SYNCHRONIZE CACHE) also made the length durable, since fdatasync keeps what reading
 * the data needs. An fsync of every new file, as before, bought nothing and cost a journal
 * commit each (measured in docs/catalog.md). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "csv-coord/catalog_int.h"

static void file_make(struct catalog_file *f)
{
	f->fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		f->rc = -errno;
		return;
	}
	/* Sparse: ftruncate allocates nothing; blocks come with the first writes (thin
	 * provisioning). */
	if (ftruncate(f->fd, (off_t)f->size) < 0)
		f->rc = -errno;
}

void catalog_files_make(struct catalog_file *files, size_t nfiles, struct catalog_dir *dirs,
			size_t ndirs)
{
	for (size_t i = 0; i < nfiles; i++) {
		files[i].rc = 0;
		files[i].fd = -1;
		file_make(&files[i]);
	}
	/* The names first, then each folder once: its fsync covers every new entry. */
	for (size_t i = 0; i < ndirs; i++)
		dirs[i].rc = catalog_fsync_dir(dirs[i].path);
	for (size_t i = 0; i < nfiles; i++) {
		if (files[i].fd < 0)
			continue; /* not made (an existing file is never touched) */
		if (close(files[i].fd) < 0 && files[i].rc == 0)
			files[i].rc = -errno;
		files[i].fd = -1;
		/* A file this batch made but could not finish is nobody's. */
		if (files[i].rc < 0)
			unlink(files[i].path);
	}
}
