#ifndef CLIP_FS_H
#define CLIP_FS_H
#include <errno.h>
#include <fcntl.h>
#include <linux/stat.h>
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

/// Whether `path` (not followed if a symlink) is the root of a mount in this mount namespace: 1 yes, 0 no, -errno if it
/// cannot be looked at (-ENOTCONN: a FUSE mount whose daemon is gone), -ENOSYS if the kernel does not say (before
/// Linux 5.8). statx's STATX_ATTR_MOUNT_ROOT: no read of /proc/self/mountinfo, whose size grows with every container.
static inline int clip_mount_root(const char *path) {
  enum { no_automount = 0x800 };  // AT_NO_AUTOMOUNT, which glibc declares only with _GNU_SOURCE
  struct statx attributes;
  if (syscall(SYS_statx, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | no_automount, 0u, &attributes) != 0) return -errno;
  if (!(attributes.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)) return -ENOSYS;
  return (attributes.stx_attributes & STATX_ATTR_MOUNT_ROOT) ? 1 : 0;
}

#endif
