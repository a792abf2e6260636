#ifndef CLIP_FS_H
#define CLIP_FS_H
#include <errno.h>
#include <stdint.h>
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
  // The kernel's struct statx (include/uapi/linux/stat.h), up to stx_attributes_mask, padded to its 256 bytes:
  // glibc declares it only with _GNU_SOURCE, and <linux/stat.h> clashes with <sys/stat.h>.
  struct {
    uint32_t mask, blksize;
    uint64_t attributes;
    uint32_t nlink, uid, gid;
    uint16_t mode, spare;
    uint64_t ino, size, blocks, attributes_mask;
    uint64_t rest[24];
  } attributes;
  // AT_FDCWD, AT_SYMLINK_NOFOLLOW, AT_NO_AUTOMOUNT, STATX_ATTR_MOUNT_ROOT (<fcntl.h> here would clash with Glibc's)
  enum { cwd = -100, no_follow = 0x100, no_automount = 0x800, mount_root = 0x2000 };
  if (syscall(SYS_statx, cwd, path, no_follow | no_automount, 0u, &attributes) != 0) return -errno;
  if (!(attributes.attributes_mask & mount_root)) return -ENOSYS;
  return (attributes.attributes & mount_root) ? 1 : 0;
}

#endif
