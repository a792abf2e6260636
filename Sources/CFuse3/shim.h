#define FUSE_USE_VERSION 312
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <fuse_lowlevel.h>
#include <sys/sysmacros.h>

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
