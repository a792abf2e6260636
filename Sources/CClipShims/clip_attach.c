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

/// The top-most mountpoints strictly below `prefix` (their children move with them), as newly allocated strings.
static int nested_mounts(const char *prefix, char *found[], int capacity) {
  FILE *file = fopen("/proc/self/mountinfo", "re");
  if (!file) return -1;
  size_t length = strlen(prefix);
  int count = 0;
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
    if (strncmp(field, prefix, length) != 0 || field[length] != '/') continue;
    int covered = 0;
    for (int i = 0; i < count && !covered; i++) {
      size_t other = strlen(found[i]);
      covered = strncmp(field, found[i], other) == 0 && (field[other] == '/' || field[other] == 0);
    }
    if (covered) continue;
    // Drop entries the new one covers, then add it.
    for (int i = 0; i < count;) {
      size_t fresh = strlen(field);
      if (strncmp(found[i], field, fresh) == 0 && found[i][fresh] == '/') {
        free(found[i]);
        found[i] = found[--count];
      } else {
        i++;
      }
    }
    if (count == capacity) break;
    found[count++] = strdup(field);
  }
  free(line);
  fclose(file);
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

static int place(const char *source, int tree, const char *target, int readonly, char *error, size_t size) {
  char *nested[MAX_NESTED];
  int nested_fds[MAX_NESTED];
  int count = nested_mounts(target, nested, MAX_NESTED);
  if (count < 0) return fail(error, size, "cannot read /proc/self/mountinfo");
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
  for (int i = 0; i < count; i++) {
    if (nested_fds[i] >= 0) close(nested_fds[i]);
    free(nested[i]);
  }
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
  for (int i = 0; i < count && result == 0; i++) {
    if ((size_t)snprintf(path, sizeof path, "%s/%s", rootfs, names[i]) >= sizeof path) {
      errno = ENAMETOOLONG;
      result = fail(error, error_size, "path too long: %s/%s", rootfs, names[i]);
    } else if (!is_mount_root(path)) {
      result = place(sources[i], trees[i], path, readonly, error, error_size);
    }
  }
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
