#ifndef CLIP_MALLOC_H
#define CLIP_MALLOC_H
#include <malloc.h>

/// mallopt(M_MMAP_THRESHOLD): allocations of at least `bytes` get their own mapping, returned to the system on free.
static inline int clip_set_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }

#endif
