#ifndef CLIP_LAZY_H
#define CLIP_LAZY_H

/// libfuse3, ISA-L, libzstd and libseccomp are loaded on first use (dlopen), like libcurl and libcrypto: clip defines
/// the functions it calls of them itself, each forwarding to the library's own, found when the first of them is
/// called. A hook start — twice per container — never calls them, and so neither maps, relocates nor binds four
/// libraries, nor reads their pages from disk (3.6 instead of 4.2 ms for a hook that does nothing, and two page-ins
/// fewer when the page cache was dropped). A library that cannot be loaded when first needed ends the process with
/// one line on stderr (clip_exit_error); a caller that can report it better asks first.

/// Ends the process at once (no exit handlers or destructors) with "clip: error: REASON" on stderr and status 1:
/// for a library clip cannot work without, found missing where no error can be returned.
_Noreturn void clip_exit_error(const char *reason);

/// Loads libfuse3 now: NULL, or why it cannot be loaded.
const char *clip_fuse3_load(void);
/// Loads libseccomp now: NULL, or why it cannot be loaded.
const char *clip_seccomp_load(void);
/// Loads ISA-L now: NULL, or why it cannot be loaded.
const char *clip_isal_load(void);
/// Loads libzstd now: NULL, or why it cannot be loaded.
const char *clip_zstd_load(void);

#endif
