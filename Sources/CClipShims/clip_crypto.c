#include "clip_crypto.h"
#include "clip_library.h"

#include <pthread.h>

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

static void load(void) {
  const char *names[] = {"EVP_MD_CTX_new",    "EVP_MD_CTX_free",  "EVP_sha256",
                         "EVP_DigestInit_ex", "EVP_DigestUpdate", "EVP_DigestFinal_ex"};
  void **const slots[] = {(void **)&api.context_new, (void **)&api.context_free, (void **)&api.sha256,
                          (void **)&api.init,        (void **)&api.update,       (void **)&api.final};
  clip_library_load("libcrypto.so.3", names, slots, sizeof names / sizeof *names, load_error, sizeof load_error);
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
