#include "clip_crypto.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

/// The libcrypto functions clip calls (EVP_MD_CTX and EVP_MD are opaque here), found by load().
static struct {
  void *(*context_new)(void);
  void (*context_free)(void *context);
  const void *(*sha256)(void);
  int (*init)(void *context, const void *type, void *engine);
  int (*update)(void *context, const void *bytes, size_t size);
  int (*final)(void *context, unsigned char *out, unsigned int *size);
} api;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[512];

static int find(void *library, const char *name, void **slot) {
  *slot = dlsym(library, name);
  if (*slot == NULL) snprintf(load_error, sizeof load_error, "libcrypto.so.3 has no %s", name);
  return *slot != NULL;
}

static void load(void) {
  void *library = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) {
    const char *reason = dlerror();
    snprintf(load_error, sizeof load_error, "cannot load libcrypto: %s", reason ? reason : "dlopen failed");
    return;
  }
  (void)(find(library, "EVP_MD_CTX_new", (void **)&api.context_new) &&
         find(library, "EVP_MD_CTX_free", (void **)&api.context_free) &&
         find(library, "EVP_sha256", (void **)&api.sha256) &&
         find(library, "EVP_DigestInit_ex", (void **)&api.init) &&
         find(library, "EVP_DigestUpdate", (void **)&api.update) &&
         find(library, "EVP_DigestFinal_ex", (void **)&api.final));
}

const char *clip_crypto_error(void) {
  pthread_once(&load_once, load);
  return load_error[0] ? load_error : NULL;
}

clip_sha256 *clip_sha256_new(void) {
  if (clip_crypto_error() != NULL) return NULL;
  void *context = api.context_new();
  if (context == NULL) return NULL;
  if (api.init(context, api.sha256(), NULL) != 1) {
    api.context_free(context);
    return NULL;
  }
  return (clip_sha256 *)context;
}

void clip_sha256_update(clip_sha256 *digest, const void *bytes, size_t size) { api.update(digest, bytes, size); }

void clip_sha256_finish(clip_sha256 *digest, unsigned char *out) {
  unsigned int size = 0;
  api.final(digest, out, &size);
  api.init(digest, api.sha256(), NULL);
}

void clip_sha256_free(clip_sha256 *digest) { api.context_free(digest); }
