#ifndef CLIP_CRYPTO_H
#define CLIP_CRYPTO_H
#include <stddef.h>

/// SHA-256 through OpenSSL's EVP interface (which uses the CPU's SHA extensions), with libcrypto loaded on first use
/// (dlopen): commands that never hash — the hook, at every container start — do not pay for loading and relocating
/// libcrypto (~1.7 ms of CPU per process here).
typedef struct clip_sha256 clip_sha256;

/// A new digest, or NULL if libcrypto cannot be loaded (clip_crypto_error says why) or memory is short.
clip_sha256 *clip_sha256_new(void);
/// Adds `size` bytes at `bytes`.
void clip_sha256_update(clip_sha256 *digest, const void *bytes, size_t size);
/// Writes the 32-byte digest to `out` and starts over.
void clip_sha256_finish(clip_sha256 *digest, unsigned char *out);
/// Frees a digest.
void clip_sha256_free(clip_sha256 *digest);
/// Why libcrypto could not be loaded, or NULL.
const char *clip_crypto_error(void);

#endif
