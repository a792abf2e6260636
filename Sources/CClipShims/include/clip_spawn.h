#ifndef CLIP_SPAWN_H
#define CLIP_SPAWN_H
#include <sys/types.h>

/// posix_spawn in a new session (POSIX_SPAWN_SETSID and closefrom are GNU extensions Swift does not see): stdin and
/// stdout on /dev/null, stderr appended to `log`, `ready_fd` as descriptor 3 (unless
/// negative) and nothing else inherited, signal mask
/// empty and SIGINT/SIGTERM/SIGHUP/SIGPIPE at their defaults. Returns 0 and the pid, or an errno.
int clip_spawn_detached(const char *path, char *const argv[], char *const envp[], const char *log, int ready_fd,
                        pid_t *pid);

/// A duplicate of descriptor `fd` of process `pid` (pidfd_getfd): the same open file, sharing its offset, so that
/// what is written through it lands where that process's own next write would. Returns -1 (errno set) on failure.
int clip_duplicate_fd_of(pid_t pid, int fd);

#endif
