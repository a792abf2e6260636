#ifndef CLIP_ATTACH_H
#define CLIP_ATTACH_H
#include <stddef.h>
#include <sys/types.h>

/// Makes directory trees of this mount namespace appear inside another process's mount namespace, the way an OCI
/// hook gives a container its root filesystem without mounting over the root itself.
///
/// For each i, clones the tree at `sources[i]` (open_tree), then enters the mount namespace of `pid` (setns: the
/// calling process must be single-threaded) and moves the clone onto `rootfs/names[i]`, which must exist. A name whose
/// target is already a mount root there (the runtime's own mount, e.g. a bundle bind mount) is left alone; mounts the
/// runtime made deeper inside a covered name (e.g. rootfs/etc/resolv.conf) are moved back on top of the clone. With
/// `readonly`, each clone is made read-only once placed. Returns 0, or -1 with a one-line message in `error`.
int clip_attach_trees(pid_t pid, const char *rootfs, const char *const sources[], const char *const names[],
                      int count, int readonly, char *error, size_t error_size);

/// Runs `clip_attach_trees` in a forked child (single-threaded, as setns needs, whatever this process runs) and waits
/// for it. Returns 0, or -1 with the child's one-line message in `error`.
int clip_attach_trees_in_child(pid_t pid, const char *rootfs, const char *const sources[], const char *const names[],
                               int count, int readonly, char *error, size_t error_size);

#endif
