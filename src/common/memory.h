// Process-wide allocator settings.
#pragma once

namespace pier::memory {

// The exec path moves messages of up to 256 KiB. With glibc's defaults each
// one is its own mmap, or heap that is trimmed back to the kernel as soon as it
// is freed, so every message is page-faulted in and zeroed anew (measured:
// 99k faults and ~0.3 s of system time per 256 MiB in `pier exec`). This keeps
// such blocks in the heap and freed heap in the process (bounded by its peak).
// For the ends of a session (pier, the plugin, the agent); pierd, which only
// relays, faults little and keeps its idle RSS instead.
void keep_freed_memory();

// Gives the heap freed so far back to the kernel. Reading the service models
// at start peaks at about 12 MB (Boost.JSON's DOM of EC2's 1.1 MB model),
// nearly all freed again, but glibc keeps it: pierd calls this once it is up.
void return_freed_memory();

}  // namespace pier::memory
