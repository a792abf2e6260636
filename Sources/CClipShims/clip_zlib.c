#include "clip_zlib.h"

int clip_inflate_init_raw(z_stream *stream) {
  return inflateInit2(stream, -15);
}

int clip_deflate_init_gzip(z_stream *stream, int level) {
  return deflateInit2(stream, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
}
