#ifndef CLIP_FS_H
#define CLIP_FS_H
#include <sys/types.h>
#include <sys/xattr.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

/// makedev(3) is a macro: a device number from its major and minor parts.
static inline dev_t clip_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }

/// copy_file_range(2) (glibc declares it only with _GNU_SOURCE): `size` bytes from `in` at `*in_offset` (advanced)
/// to `out` at its position.
static inline ssize_t clip_copy_file_range(int in, off_t *in_offset, int out, size_t size) {
  return syscall(SYS_copy_file_range, in, in_offset, out, NULL, size, 0u);
}

#endif
