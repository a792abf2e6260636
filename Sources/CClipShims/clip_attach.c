#define _GNU_SOURCE
#include "clip_attach.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MAX_NESTED = 256 };

static int fail(char *error, size_t size, const char *format, ...) {
  int saved = errno;
  va_list arguments;
  va_start(arguments, format);
  int used = vsnprintf(error, size, format, arguments);
  va_end(arguments);
  if (saved != 0 && used >= 0 && (size_t)used < size) snprintf(error + used, size - used, ": %s", strerror(saved));
  return -1;
}

static int is_mount_root(const char *path) {
  struct statx attributes;
  if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &attributes) != 0) return 0;
  return (attributes.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (attributes.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/// Decodes mountinfo's octal escapes (\040 for a space) in place.
static void unescape(char *text) {
  char *out = text;
  for (char *in = text; *in; in++) {
    if (in[0] == '\\' && in[1] >= '0' && in[1] <= '7' && in[2] >= '0' && in[2] <= '7' && in[3] >= '0' && in[3] <= '7') {
      *out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
      in += 3;
    } else {
      *out++ = *in;
    }
  }
  *out = 0;
}

/// The mountpoints of this mount namespace (/proc/self/mountinfo's fifth field, unescaped), as a newly allocated
/// array of newly allocated strings in `*found`. Returns how many, or -1.
static int read_mountpoints(char ***found) {
  *found = NULL;
  FILE *file = fopen("/proc/self/mountinfo", "re");
  if (!file) return -1;
  int count = 0, capacity = 0;
  char *line = NULL;
  size_t line_size = 0;
  while (getline(&line, &line_size, file) > 0) {
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT ...": the fifth field.
    char *field = line;
    for (int i = 0; i < 4 && field; i++) {
      field = strchr(field, ' ');
      if (field) field++;
    }
    if (!field) continue;
    char *end = strchr(field, ' ');
    if (end) *end = 0;
    unescape(field);
    if (count == capacity) {
      capacity = capacity ? capacity * 2 : 64;
      char **grown = realloc(*found, (size_t)capacity * sizeof(char *));
      if (!grown) break;
      *found = grown;
    }
    if (!((*found)[count] = strdup(field))) break;
    count++;
  }
  free(line);
  fclose(file);
  return count;
}

/// The top-most of `mounts` strictly below `prefix` (their children move with them), pointing into `mounts`.
static int nested_mounts(const char *prefix, char *const mounts[], int mount_count, char *found[], int capacity) {
  size_t length = strlen(prefix);
  int count = 0;
  for (int m = 0; m < mount_count; m++) {
    char *field = mounts[m];
    if (strncmp(field, prefix, length) != 0 || field[length] != '/') continue;
    int covered = 0;
    for (int i = 0; i < count && !covered; i++) {
      size_t other = strlen(found[i]);
      covered = strncmp(field, found[i], other) == 0 && (field[other] == '/' || field[other] == 0);
    }
    if (covered) continue;
    // Drop entries the new one covers, then add it.
    size_t fresh = strlen(field);
    for (int i = 0; i < count;) {
      if (strncmp(found[i], field, fresh) == 0 && found[i][fresh] == '/') {
        found[i] = found[--count];
      } else {
        i++;
      }
    }
    if (count == capacity) break;
    found[count++] = field;
  }
  return count;
}

/// Creates `path` (and missing parents) as a directory, or as an empty file when `directory` is 0.
static int make_target(char *path, int directory) {
  for (char *slash = strchr(path + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
    *slash = 0;
    int made = mkdir(path, 0755);
    *slash = '/';
    if (made != 0 && errno != EEXIST) return -1;
  }
  if (directory) return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return errno == EEXIST ? 0 : -1;
  close(fd);
  return 0;
}

/// Moves `tree` onto `target`, then the runtime's mounts that were below `target` (`mounts`: the mountpoints before
/// the attach) back on top of it.
static int place(const char *source, int tree, const char *target, char *const mounts[], int mount_count,
                 int readonly, char *error, size_t size) {
  char *nested[MAX_NESTED];
  int nested_fds[MAX_NESTED];
  int count = nested_mounts(target, mounts, mount_count, nested, MAX_NESTED);
  int result = 0;
  for (int i = 0; i < count; i++) {
    nested_fds[i] = open_tree(AT_FDCWD, nested[i], OPEN_TREE_CLOEXEC);
    if (nested_fds[i] < 0 && result == 0) result = fail(error, size, "cannot hold the runtime's mount %s", nested[i]);
  }
  if (result == 0 && move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) != 0)
    result = fail(error, size, "cannot mount %s on %s", source, target);
  for (int i = 0; i < count && result == 0; i++) {
    struct stat held;
    if (fstat(nested_fds[i], &held) != 0 || make_target(nested[i], S_ISDIR(held.st_mode)) != 0) {
      result = fail(error, size, "cannot recreate the mountpoint %s in the image", nested[i]);
    } else if (move_mount(nested_fds[i], "", AT_FDCWD, nested[i], MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      result = fail(error, size, "cannot move the runtime's mount %s back", nested[i]);
    }
  }
  if (result == 0 && readonly) {
    struct mount_attr attributes = {.attr_set = MOUNT_ATTR_RDONLY};
    if (mount_setattr(AT_FDCWD, target, 0, &attributes, sizeof attributes) != 0)
      result = fail(error, size, "cannot make %s read-only", target);
  }
  for (int i = 0; i < count; i++)
    if (nested_fds[i] >= 0) close(nested_fds[i]);
  return result;
}

int clip_attach_trees(pid_t pid, const char *rootfs, const char *const sources[], const char *const names[],
                      int count, int readonly, char *error, size_t error_size) {
  char path[4096];
  int result = 0;
  int *trees = calloc((size_t)(count > 0 ? count : 1), sizeof(int));
  if (!trees) return fail(error, error_size, "out of memory");
  for (int i = 0; i < count; i++) trees[i] = -1;

  snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)pid);
  int namespace = open(path, O_RDONLY | O_CLOEXEC);
  if (namespace < 0) result = fail(error, error_size, "cannot open the mount namespace of process %d", (int)pid);
  for (int i = 0; i < count && result == 0; i++) {
    trees[i] = open_tree(AT_FDCWD, sources[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (trees[i] < 0) result = fail(error, error_size, "cannot clone the mount at %s", sources[i]);
  }
  if (result == 0 && setns(namespace, CLONE_NEWNS) != 0)
    result = fail(error, error_size, "cannot enter the mount namespace of process %d", (int)pid);
  // The runtime's mounts, read once: the entries' targets are distinct top-level names, so moving one entry (and
  // the mounts below it) adds nothing below another.
  char **mounts = NULL;
  int mount_count = result == 0 ? read_mountpoints(&mounts) : 0;
  if (mount_count < 0) result = fail(error, error_size, "cannot read /proc/self/mountinfo");
  for (int i = 0; i < count && result == 0; i++) {
    if ((size_t)snprintf(path, sizeof path, "%s/%s", rootfs, names[i]) >= sizeof path) {
      errno = ENAMETOOLONG;
      result = fail(error, error_size, "path too long: %s/%s", rootfs, names[i]);
    } else if (!is_mount_root(path)) {
      result = place(sources[i], trees[i], path, mounts, mount_count, readonly, error, error_size);
    }
  }
  for (int i = 0; i < mount_count; i++) free(mounts[i]);
  free(mounts);
  for (int i = 0; i < count; i++)
    if (trees[i] >= 0) close(trees[i]);
  if (namespace >= 0) close(namespace);
  free(trees);
  return result;
}

int clip_attach_trees_in_child(pid_t pid, const char *rootfs, const char *const sources[], const char *const names[],
                               int count, int readonly, char *error, size_t error_size) {
  int pipes[2];
  if (pipe2(pipes, O_CLOEXEC) != 0) return fail(error, error_size, "pipe");
  pid_t child = fork();
  if (child < 0) {
    close(pipes[0]);
    close(pipes[1]);
    return fail(error, error_size, "fork");
  }
  if (child == 0) {
    // The child of fork has one thread, so setns may enter a mount namespace. It only runs the attach (glibc keeps
    // malloc usable after fork) and reports back through the pipe.
    char message[1024] = {0};
    close(pipes[0]);
    if (clip_attach_trees(pid, rootfs, sources, names, count, readonly, message, sizeof message) == 0) _exit(0);
    ssize_t ignored = write(pipes[1], message, strlen(message));
    (void)ignored;
    _exit(1);
  }
  close(pipes[1]);
  size_t received = 0;
  while (error_size > 0 && received < error_size - 1) {
    ssize_t n = read(pipes[0], error + received, error_size - 1 - received);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    received += (size_t)n;
  }
  if (error_size > 0) error[received] = 0;
  close(pipes[0]);
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return fail(error, error_size, "waiting for the attach step");
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  if (received == 0) snprintf(error, error_size, "the attach step failed (wait status %d)", status);
  return -1;
}
