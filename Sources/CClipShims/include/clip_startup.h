#ifndef CLIP_STARTUP_H
#define CLIP_STARTUP_H
#include <link.h>
#include <stddef.h>

/// How many bytes of an executable's file lie before its main code segment (the executable PT_LOAD segment with
/// the most bytes in the file), rounded down to whole pages of `page` bytes: what every process of it reads from the
/// file at start besides code (headers, Swift metadata, relocated data and .rodata in release builds of clip).
size_t clip_startup_length(const ElfW(Phdr) *headers, size_t count, size_t page);

/// Keeps the part of this executable's file that every process of it reads at start (`clip_startup_length`;
/// release builds put the relocated data there, Sources/clip/startup-layout.ld) in the page cache for as long as the
/// calling process lives: a read-only shared mapping of it, populated, and locked where the process may lock memory
/// (else only mapped). The mapping is never undone. Returns the number of bytes kept (0 when nothing precedes the
/// code), or -1 with errno set.
long clip_keep_startup_pages(void);

#endif
