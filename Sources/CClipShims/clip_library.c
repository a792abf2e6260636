#include "clip_library.h"

#include <dlfcn.h>
#include <stdio.h>

void *clip_library_open(const char *soname, char *error, size_t size) {
  void *library = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) {
    const char *reason = dlerror();
    snprintf(error, size, "cannot load %s: %s", soname, reason ? reason : "dlopen failed");
  }
  return library;
}

int clip_library_load(const char *soname, const char *const *names, void **const *slots, size_t count, char *error,
                      size_t size) {
  void *library = clip_library_open(soname, error, size);
  if (library == NULL) return 0;
  for (size_t i = 0; i < count; i++) {
    *slots[i] = dlsym(library, names[i]);
    if (*slots[i] == NULL) {
      snprintf(error, size, "%s has no %s", soname, names[i]);
      return 0;
    }
  }
  return 1;
}
