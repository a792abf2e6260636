#define FUSE_USE_VERSION 312
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <fuse3/fuse_lowlevel.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

/// A session from plain argv (FUSE_ARGS_INIT is a macro).
static inline struct fuse_session *clip_fuse_session_new(int argc, char **argv, const struct fuse_lowlevel_ops *ops,
                                                         void *userdata) {
  struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
  struct fuse_session *session = fuse_session_new(&args, ops, sizeof(*ops), userdata);
  fuse_opt_free_args(&args);
  return session;
}

/// The multi-threaded loop with a thread limit and one /dev/fuse clone per thread (the loop config is opaque).
static inline int clip_fuse_loop_mt(struct fuse_session *session, unsigned int max_threads) {
  struct fuse_loop_config *config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(config, max_threads);
  fuse_loop_cfg_set_clone_fd(config, 1);
  int result = fuse_session_loop_mt(session, config);
  fuse_loop_cfg_destroy(config);
  return result;
}

/// Replies to a read with `size` bytes at `offset` of an open file, spliced by the kernel where it can.
static inline int clip_fuse_reply_fd(fuse_req_t req, int fd, off_t offset, size_t size) {
  struct fuse_bufvec buffer = FUSE_BUFVEC_INIT(size);
  buffer.buf[0].flags = (enum fuse_buf_flags)(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buffer.buf[0].fd = fd;
  buffer.buf[0].pos = offset;
  return fuse_reply_data(req, &buffer, FUSE_BUF_SPLICE_MOVE);
}

/// Replies to a read with `count` pieces of open files, in order: `sizes[i]` bytes at `offsets[i]` of `fds[i]`, spliced
/// by the kernel where it can (a read that straddles two cache files is not copied through memory either).
static inline int clip_fuse_reply_fds(fuse_req_t req, const int *fds, const off_t *offsets, const size_t *sizes,
                                      size_t count) {
  enum { on_stack = 4 };
  struct {
    struct fuse_bufvec vector;
    struct fuse_buf more[on_stack - 1];
  } local;
  struct fuse_bufvec *buffers = &local.vector;
  size_t bytes = sizeof(struct fuse_bufvec) + ((count > 0 ? count : 1) - 1) * sizeof(struct fuse_buf);
  if (count > on_stack) {
    buffers = (struct fuse_bufvec *)malloc(bytes);
    if (buffers == NULL) return fuse_reply_err(req, ENOMEM);
  }
  memset(buffers, 0, bytes);
  buffers->count = count;
  for (size_t i = 0; i < count; i++) {
    buffers->buf[i].size = sizes[i];
    buffers->buf[i].flags = (enum fuse_buf_flags)(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buffers->buf[i].fd = fds[i];
    buffers->buf[i].pos = offsets[i];
  }
  int result = fuse_reply_data(req, buffers, FUSE_BUF_SPLICE_MOVE);
  if (count > on_stack) free(buffers);
  return result;
}

static inline dev_t clip_fuse_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }
static inline unsigned int clip_fuse_major(dev_t device) { return major(device); }
static inline unsigned int clip_fuse_minor(dev_t device) { return minor(device); }

// MARK: - Passthrough (kernel 6.9+) on libfuse 3.14, which predates it
//
// The kernel serves reads of a passthrough file from a backing file it was handed, without asking the server.
// libfuse 3.14 neither asks for it at INIT nor can say so in an open reply, so custom I/O on the session patches the
// INIT reply (FUSE_PASSTHROUGH in flags2, max_stack_depth 1) when the INIT request offered it, and open replies are
// written whole (fuse_open_out with FOPEN_PASSTHROUGH and the backing id). The layouts are the kernel's ABI
// (include/uapi/linux/fuse.h, protocol 7.40); libfuse does not install its copy of it.

enum {
  clip_fuse_opcode_init = 26,
  clip_fuse_init_ext = 1u << 30,
  clip_fuse_passthrough_flags2 = 1u << (37 - 32),
  clip_fopen_passthrough = 1u << 7,
};

struct clip_fuse_in_header {
  uint32_t len, opcode;
  uint64_t unique, nodeid;
  uint32_t uid, gid, pid;
  uint16_t total_extlen, padding;
};
struct clip_fuse_out_header {
  uint32_t len;
  int32_t error;
  uint64_t unique;
};
struct clip_fuse_init_in {
  uint32_t major, minor, max_readahead, flags, flags2;
};
struct clip_fuse_init_out {
  uint32_t major, minor, max_readahead, flags;
  uint16_t max_background, congestion_threshold;
  uint32_t max_write, time_gran;
  uint16_t max_pages, map_alignment;
  uint32_t flags2, max_stack_depth;
  uint16_t request_timeout, unused[11];
};
struct clip_fuse_backing_map {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
struct clip_fuse_open_out {
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};
#define CLIP_FUSE_DEV_IOC_BACKING_OPEN _IOW(229, 1, struct clip_fuse_backing_map)
#define CLIP_FUSE_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

/// The session's userdata: the server's, and what the custom I/O learnt from INIT.
struct clip_fuse_session_data {
  /// The server (an unretained Swift object).
  void *server;
  /// Whether to ask for passthrough at all (set before mounting).
  int want_passthrough;
  /// The INIT request's id while its reply is pending (0 otherwise); atomic.
  uint64_t init_unique;
  /// 1 once the INIT reply enabled passthrough; atomic.
  int passthrough;
};

static ssize_t clip_fuse_io_read(int fd, void *buffer, size_t size, void *userdata) {
  ssize_t count = read(fd, buffer, size);
  struct clip_fuse_session_data *data = (struct clip_fuse_session_data *)userdata;
  if (count >= (ssize_t)(sizeof(struct clip_fuse_in_header) + sizeof(struct clip_fuse_init_in)) &&
      data->want_passthrough) {
    const struct clip_fuse_in_header *header = (const struct clip_fuse_in_header *)buffer;
    const struct clip_fuse_init_in *init = (const struct clip_fuse_init_in *)(header + 1);
    if (header->opcode == clip_fuse_opcode_init && init->major == 7 && (init->flags & clip_fuse_init_ext) &&
        (init->flags2 & clip_fuse_passthrough_flags2))
      __atomic_store_n(&data->init_unique, header->unique, __ATOMIC_RELEASE);
  }
  return count;
}

static ssize_t clip_fuse_io_writev(int fd, struct iovec *iov, int count, void *userdata) {
  struct clip_fuse_session_data *data = (struct clip_fuse_session_data *)userdata;
  uint64_t init = __atomic_load_n(&data->init_unique, __ATOMIC_ACQUIRE);
  if (init != 0 && count == 2 && iov[0].iov_len == sizeof(struct clip_fuse_out_header) &&
      ((const struct clip_fuse_out_header *)iov[0].iov_base)->unique == init) {
    __atomic_store_n(&data->init_unique, 0, __ATOMIC_RELEASE);
    const struct clip_fuse_out_header *header = (const struct clip_fuse_out_header *)iov[0].iov_base;
    if (header->error == 0 && iov[1].iov_len >= offsetof(struct clip_fuse_init_out, request_timeout)) {
      struct clip_fuse_init_out reply;
      memset(&reply, 0, sizeof reply);
      memcpy(&reply, iov[1].iov_base, iov[1].iov_len < sizeof reply ? iov[1].iov_len : sizeof reply);
      reply.flags |= clip_fuse_init_ext;
      reply.flags2 |= clip_fuse_passthrough_flags2;
      reply.max_stack_depth = 1;  // backing files on plain filesystems; an overlayfs may still stack on the mount
      struct iovec patched[2] = {iov[0], {&reply, iov[1].iov_len < sizeof reply ? iov[1].iov_len : sizeof reply}};
      ssize_t written = writev(fd, patched, 2);
      if (written >= 0) __atomic_store_n(&data->passthrough, 1, __ATOMIC_RELEASE);
      return written;
    }
  }
  return writev(fd, iov, count);
}

static ssize_t clip_fuse_io_splice_send(int in, off_t *in_offset, int out, off_t *out_offset, size_t size,
                                        unsigned int flags, void *userdata) {
  (void)userdata;
  return syscall(SYS_splice, in, in_offset, out, out_offset, size, flags);  // splice() needs _GNU_SOURCE
}

/// Routes the mounted session's I/O through the hooks above (splicing replies as libfuse would).
static inline int clip_fuse_use_passthrough_io(struct fuse_session *session) {
  struct fuse_custom_io io;
  memset(&io, 0, sizeof io);
  io.read = clip_fuse_io_read;
  io.writev = clip_fuse_io_writev;
  io.splice_send = clip_fuse_io_splice_send;
  return fuse_session_custom_io(session, &io, fuse_session_fd(session));
}

/// Whether the INIT reply enabled passthrough.
static inline int clip_fuse_passthrough_enabled(struct clip_fuse_session_data *data) {
  return __atomic_load_n(&data->passthrough, __ATOMIC_ACQUIRE);
}

/// Registers `fd` as a backing file: its id (> 0), or -1 with errno set.
static inline int clip_fuse_backing_open(struct fuse_session *session, int fd) {
  struct clip_fuse_backing_map map = {fd, 0, 0};
  return ioctl(fuse_session_fd(session), CLIP_FUSE_DEV_IOC_BACKING_OPEN, &map);
}

/// Drops a backing id (files opened with it keep their backing file).
static inline int clip_fuse_backing_close(struct fuse_session *session, int backing_id) {
  uint32_t id = (uint32_t)backing_id;
  return ioctl(fuse_session_fd(session), CLIP_FUSE_DEV_IOC_BACKING_CLOSE, &id);
}

/// Answers an open with a passthrough file backed by `backing_id`.
static inline int clip_fuse_reply_open_passthrough(fuse_req_t req, uint64_t fh, int backing_id) {
  struct clip_fuse_open_out reply = {fh, clip_fopen_passthrough, backing_id};
  return fuse_reply_buf(req, (const char *)&reply, sizeof reply);
}
