#include "common/memory.h"

#include <malloc.h>

namespace pier::memory {

void keep_freed_memory() {
  // Setting either value also turns off glibc's dynamic thresholds.
  mallopt(M_MMAP_THRESHOLD, 16 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

void return_freed_memory() { malloc_trim(0); }

}  // namespace pier::memory
