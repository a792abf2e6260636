#define _GNU_SOURCE
#include "clip_spawn.h"
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <unistd.h>

int clip_spawn_detached(const char *path, char *const argv[], char *const envp[], const char *log, int ready_fd,
                        pid_t *pid) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  sigset_t empty, defaults;
  int result;

  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (ready_fd >= 0) posix_spawn_file_actions_adddup2(&actions, ready_fd, 3);
  posix_spawn_file_actions_addclosefrom_np(&actions, ready_fd >= 0 ? 4 : 3);

  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attributes, &empty);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGHUP);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attributes, &defaults);

  result = posix_spawn(pid, path, &actions, &attributes, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  return result;
}

int clip_duplicate_fd_of(pid_t pid, int fd) {
  int process = (int)syscall(SYS_pidfd_open, pid, 0);
  if (process < 0) return -1;
  int duplicate = (int)syscall(SYS_pidfd_getfd, process, fd, 0);
  close(process);
  return duplicate;
}
