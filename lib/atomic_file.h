/* Crash-safe replacement of a whole file: after atomic_file_write() returns 0 the file holds
 * the new bytes even across power loss, and at no moment does it hold a mix of old and new. */
#ifndef HOLDFAST_LIB_ATOMIC_FILE_H
#define HOLDFAST_LIB_ATOMIC_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* Write data to a temporary file in path's folder, fsync it, rename it over path and fsync
 * the folder. Returns 0 or a negative errno; on failure path is untouched and no temporary
 * file is left behind. */
int atomic_file_write(const char *path, const void *data, size_t len, mode_t mode);

#endif
