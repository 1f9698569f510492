/* The crash-safe store of a LUN's persistent reservation state (APTPL, spc4r37 5.13.5): a small
 * versioned text file per LUN, replaced whole through atomic_file_write() (temp file, fsync,
 * rename, fsync of the folder). The file I/O goes through a table of functions so that tests
 * can make it fail. */
#ifndef HOLDFAST_PR_PR_STORE_H
#define HOLDFAST_PR_PR_STORE_H

#include <stddef.h>

#include "pr/pr.h"

/* The largest encoded state: PR_MAX_REGS lines of at most ~300 bytes and a header. */
#define PR_STORE_MAX (128u << 10)

struct pr_store_io {
	/* Replace path with data atomically and durably. 0 or a negative errno. */
	int (*write)(void *arg, const char *path, const void *data, size_t len);
	/* Read the whole file into buf (cap bytes); 0 and *len, -ENOENT when there is none,
	 * -EFBIG when it does not fit, or another negative errno. */
	int (*read)(void *arg, const char *path, void *buf, size_t cap, size_t *len);
	void *arg;
};

/* The real file system, through lib/atomic_file.h. */
extern const struct pr_store_io pr_store_posix;

/* Serialize s into buf; 0 and *len, or -ENOSPC when cap is too small. */
int pr_store_encode(const struct pr_state *s, char *buf, size_t cap, size_t *len);
/* Parse what pr_store_encode() wrote; 0, or -EBADMSG for anything malformed or inconsistent
 * (out is then left initialized and empty). */
int pr_store_decode(const char *buf, size_t len, struct pr_state *out);

/* Save s to path. Returns 0 once the file is durable, or a negative errno (the old file is
 * then untouched). */
int pr_store_save(const struct pr_store_io *io, const char *path, const struct pr_state *s);
/* Load the state saved at path into *s. A missing file gives an empty state and 0; a state
 * saved with APTPL off is not restored (spc4r37 5.13.5: without APTPL a power loss clears
 * everything) and gives an empty state and 0. Other errors return a negative errno and an
 * empty state. */
int pr_store_load(const struct pr_store_io *io, const char *path, struct pr_state *s);

#endif
