#define FUSE_USE_VERSION 312
#include <stddef.h>
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

static inline dev_t clip_fuse_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }
static inline unsigned int clip_fuse_major(dev_t device) { return major(device); }
static inline unsigned int clip_fuse_minor(dev_t device) { return minor(device); }
