#include "clip_lazy.h"
#include "clip_library.h"

#define FUSE_USE_VERSION 312
#include <dlfcn.h>
#include <fuse3/fuse_lowlevel.h>
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdio.h>
#include <unistd.h>
#include <zstd.h>

/// A library loaded on first use.
struct library {
  const char *soname;
  pthread_once_t once;
  void *handle;
  char error[512];
};

static void load(struct library *library) {
  library->handle = clip_library_open(library->soname, library->error, sizeof library->error);
}

/// pthread_once takes no argument: one loader per library.
#define LIBRARY(name, soname)                                                          \
  static struct library name = {soname, PTHREAD_ONCE_INIT, NULL, {0}};                 \
  static void load_##name(void) { load(&name); }                                       \
  const char *clip_##name##_load(void) {                                               \
    pthread_once(&name.once, load_##name);                                             \
    return name.error[0] ? name.error : NULL;                                          \
  }

LIBRARY(fuse3, "libfuse3.so.3")
LIBRARY(seccomp, "libseccomp.so.2")
LIBRARY(isal, "libisal.so.2")
LIBRARY(zstd, "libzstd.so.1")

void clip_exit_error(const char *reason) {
  char line[640];
  int length = snprintf(line, sizeof line, "clip: error: %s\n", reason);
  if (length > 0) (void)!write(STDERR_FILENO, line, (size_t)length < sizeof line ? (size_t)length : sizeof line);
  _exit(1);
}

/// The address of `symbol` in a library, loading it first; a library or function missing ends the process: it is
/// called where there is no way to report it (a FUSE reply, a span being inflated).
static void *find(const char *(*load_library)(void), struct library *library, const char *symbol) {
  const char *error = load_library();
  if (error != NULL) clip_exit_error(error);
  void *address = dlsym(library->handle, symbol);
  if (address == NULL) {
    char reason[256];
    snprintf(reason, sizeof reason, "%s has no %s", library->soname, symbol);
    clip_exit_error(reason);
  }
  return address;
}

/// The library's own `name`, found on the first call (declares `target`).
#define TARGET(library, name)                                                                          \
  static __typeof__(name) *function;                                                                   \
  __typeof__(name) *target = __atomic_load_n(&function, __ATOMIC_ACQUIRE);                             \
  if (target == NULL) {                                                                                \
    target = (__typeof__(name) *)find(clip_##library##_load, &library, #name);                         \
    __atomic_store_n(&function, target, __ATOMIC_RELEASE);                                             \
  }

/// Defines `name` (as the library's header declares it) to call the library's own.
#define FORWARD(library, result, name, parameters, arguments)                                         \
  result name parameters {                                                                             \
    TARGET(library, name)                                                                              \
    return target arguments;                                                                           \
  }

/// The same for a function returning nothing.
#define FORWARD_VOID(library, name, parameters, arguments)                                            \
  void name parameters {                                                                               \
    TARGET(library, name)                                                                              \
    target arguments;                                                                                  \
  }

// MARK: - libfuse3 (3.14, FUSE_USE_VERSION 312)

FORWARD(fuse3, struct fuse_session *, fuse_session_new,
        (struct fuse_args * args, const struct fuse_lowlevel_ops *op, size_t op_size, void *userdata),
        (args, op, op_size, userdata))
FORWARD(fuse3, int, fuse_session_mount, (struct fuse_session * se, const char *mountpoint), (se, mountpoint))
FORWARD_VOID(fuse3, fuse_session_unmount, (struct fuse_session * se), (se))
FORWARD_VOID(fuse3, fuse_session_destroy, (struct fuse_session * se), (se))
FORWARD(fuse3, int, fuse_session_fd, (struct fuse_session * se), (se))
FORWARD(fuse3, int, fuse_session_custom_io, (struct fuse_session * se, const struct fuse_custom_io *io, int fd),
        (se, io, fd))
#if defined(LIBFUSE_BUILT_WITH_VERSIONED_SYMBOLS)  // the header names the 3.12 loop by its versioned name
FORWARD(fuse3, int, fuse_session_loop_mt, (struct fuse_session * se, struct fuse_loop_config *config), (se, config))
#else
FORWARD(fuse3, int, fuse_session_loop_mt_312, (struct fuse_session * se, struct fuse_loop_config *config),
        (se, config))
#endif
FORWARD(fuse3, struct fuse_loop_config *, fuse_loop_cfg_create, (void), ())
FORWARD_VOID(fuse3, fuse_loop_cfg_destroy, (struct fuse_loop_config * config), (config))
FORWARD_VOID(fuse3, fuse_loop_cfg_set_max_threads, (struct fuse_loop_config * config, unsigned int value),
        (config, value))
FORWARD_VOID(fuse3, fuse_loop_cfg_set_clone_fd, (struct fuse_loop_config * config, unsigned int value),
        (config, value))
FORWARD(fuse3, int, fuse_set_signal_handlers, (struct fuse_session * se), (se))
FORWARD_VOID(fuse3, fuse_remove_signal_handlers, (struct fuse_session * se), (se))
FORWARD_VOID(fuse3, fuse_opt_free_args, (struct fuse_args * args), (args))
FORWARD(fuse3, void *, fuse_req_userdata, (fuse_req_t req), (req))
FORWARD(fuse3, int, fuse_reply_err, (fuse_req_t req, int err), (req, err))
FORWARD(fuse3, int, fuse_reply_buf, (fuse_req_t req, const char *buf, size_t size), (req, buf, size))
FORWARD(fuse3, int, fuse_reply_data, (fuse_req_t req, struct fuse_bufvec *bufv, enum fuse_buf_copy_flags flags),
        (req, bufv, flags))
FORWARD(fuse3, int, fuse_reply_entry, (fuse_req_t req, const struct fuse_entry_param *e), (req, e))
FORWARD(fuse3, int, fuse_reply_attr, (fuse_req_t req, const struct stat *attr, double attr_timeout),
        (req, attr, attr_timeout))
FORWARD(fuse3, int, fuse_reply_open, (fuse_req_t req, const struct fuse_file_info *fi), (req, fi))
FORWARD(fuse3, int, fuse_reply_readlink, (fuse_req_t req, const char *link), (req, link))
FORWARD(fuse3, int, fuse_reply_xattr, (fuse_req_t req, size_t count), (req, count))
FORWARD(fuse3, int, fuse_reply_statfs, (fuse_req_t req, const struct statvfs *stbuf), (req, stbuf))
FORWARD(fuse3, size_t, fuse_add_direntry,
        (fuse_req_t req, char *buf, size_t bufsize, const char *name, const struct stat *stbuf, off_t off),
        (req, buf, bufsize, name, stbuf, off))
FORWARD(fuse3, size_t, fuse_add_direntry_plus,
        (fuse_req_t req, char *buf, size_t bufsize, const char *name, const struct fuse_entry_param *e, off_t off),
        (req, buf, bufsize, name, e, off))

// MARK: - libseccomp

FORWARD(seccomp, scmp_filter_ctx, seccomp_init, (uint32_t def_action), (def_action))
FORWARD_VOID(seccomp, seccomp_release, (scmp_filter_ctx ctx), (ctx))
FORWARD(seccomp, int, seccomp_attr_set, (scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value),
        (ctx, attr, value))
FORWARD(seccomp, int, seccomp_syscall_resolve_name, (const char *name), (name))
FORWARD(seccomp, int, seccomp_rule_add_array,
        (scmp_filter_ctx ctx, uint32_t action, int syscall, unsigned int arg_cnt,
         const struct scmp_arg_cmp *arg_array),
        (ctx, action, syscall, arg_cnt, arg_array))
FORWARD(seccomp, int, seccomp_load, (const scmp_filter_ctx ctx), (ctx))

// MARK: - ISA-L

FORWARD_VOID(isal, isal_inflate_init, (struct inflate_state * state), (state))
FORWARD(isal, int, isal_inflate, (struct inflate_state * state), (state))
FORWARD(isal, int, isal_inflate_set_dict, (struct inflate_state * state, uint8_t *dict, uint32_t dict_len),
        (state, dict, dict_len))
FORWARD(isal, uint32_t, crc32_gzip_refl, (uint32_t init_crc, const unsigned char *buf, uint64_t len),
        (init_crc, buf, len))

// MARK: - libzstd

FORWARD(zstd, size_t, ZSTD_compress,
        (void *dst, size_t dstCapacity, const void *src, size_t srcSize, int compressionLevel),
        (dst, dstCapacity, src, srcSize, compressionLevel))
FORWARD(zstd, size_t, ZSTD_compressBound, (size_t srcSize), (srcSize))
FORWARD(zstd, size_t, ZSTD_decompress, (void *dst, size_t dstCapacity, const void *src, size_t compressedSize),
        (dst, dstCapacity, src, compressedSize))
FORWARD(zstd, ZSTD_DCtx *, ZSTD_createDCtx, (void), ())
FORWARD(zstd, size_t, ZSTD_freeDCtx, (ZSTD_DCtx * dctx), (dctx))
FORWARD(zstd, size_t, ZSTD_decompressStream, (ZSTD_DStream * zds, ZSTD_outBuffer *output, ZSTD_inBuffer *input),
        (zds, output, input))
FORWARD(zstd, unsigned, ZSTD_isError, (size_t code), (code))
FORWARD(zstd, const char *, ZSTD_getErrorName, (size_t code), (code))
