#ifndef CLIP_FS_H
#define CLIP_FS_H
#include <sys/types.h>
#include <sys/xattr.h>
#include <sys/sysmacros.h>

/// makedev(3) is a macro: a device number from its major and minor parts.
static inline dev_t clip_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }

#endif
