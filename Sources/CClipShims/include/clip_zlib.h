#ifndef CLIP_ZLIB_H
#define CLIP_ZLIB_H
#include <zlib.h>

/// inflateInit2 with raw deflate (no zlib/gzip wrapper): zlib's init is a macro Swift cannot call.
int clip_inflate_init_raw(z_stream *stream);

/// deflateInit2 for a gzip wrapper (windowBits 31) at the given level; used to build test data.
int clip_deflate_init_gzip(z_stream *stream, int level);

#endif
