#include "clip_startup.h"

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

size_t clip_startup_length(const ElfW(Phdr) *headers, size_t count, size_t page) {
  // The main code segment: the executable loadable segment with the most bytes in the file (a small one may hold
  // .init and the PLT). Everything before it in the file counts, in whole pages.
  ElfW(Off) end = 0;
  ElfW(Xword) largest = 0;
  for (size_t i = 0; i < count; i++) {
    if (headers[i].p_type == PT_LOAD && (headers[i].p_flags & PF_X) && headers[i].p_filesz > largest) {
      largest = headers[i].p_filesz;
      end = headers[i].p_offset;
    }
  }
  return end & ~(ElfW(Off))(page - 1);
}

long clip_keep_startup_pages(void) {
  const ElfW(Phdr) *headers = (const ElfW(Phdr) *)getauxval(AT_PHDR);
  size_t count = getauxval(AT_PHNUM);
  if (headers == NULL || count == 0) {
    errno = ENOENT;
    return -1;
  }
  size_t size = clip_startup_length(headers, count, (size_t)sysconf(_SC_PAGESIZE));
  if (size == 0)
    return 0;
  int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  void *kept = mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  int saved = errno;
  close(fd);
  if (kept == MAP_FAILED) {
    errno = saved;
    return -1;
  }
  (void)mlock(kept, size);  // without CAP_IPC_LOCK or room under RLIMIT_MEMLOCK the mapping alone stays
  return (long)size;
}
