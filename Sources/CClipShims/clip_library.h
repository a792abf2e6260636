#ifndef CLIP_LIBRARY_H
#define CLIP_LIBRARY_H
#include <stddef.h>

/// Loads the shared library `soname` (dlopen, RTLD_NOW | RTLD_LOCAL): its handle, or NULL with the reason in `error`
/// (`size` bytes).
void *clip_library_open(const char *soname, char *error, size_t size);

/// Loads the shared library `soname` (dlopen, RTLD_NOW | RTLD_LOCAL) and finds `count` of its functions: `*slots[i]`
/// gets the address of `names[i]`. Returns 1, or 0 with the reason in `error` (`size` bytes). For libraries clip
/// loads on first use, so that commands that never need them start without them.
int clip_library_load(const char *soname, const char *const *names, void **const *slots, size_t count, char *error,
                      size_t size);

#endif
