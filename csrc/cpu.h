// What the core asks of the CPU it runs on: how many hardware threads it has, a pause inside a spin loop, and
// denormal arithmetic turned off while the kernels run.
#pragma once

#include <algorithm>
#include <thread>

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

namespace fastlstm {

// The machine's hardware threads, asked once: std::thread::hardware_concurrency reads a file under /sys on Linux
// each time, which would cost microseconds per call.
inline int hardware_threads() {
    static const int count = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    return count;
}

// One round of a spin loop: tells the core it is spinning (x86 PAUSE, ARM YIELD), which frees resources for a
// hyperthread sibling and spares the memory order violation on leaving the loop.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(_M_X64)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// Denormal floats flushed to zero (and read as zero) while the kernels run on this thread: an LSTM's decaying c
// and h can reach the denormal range, where x86 arithmetic is up to a hundred times slower. Values below 1.2e-38
// change by less than that absolutely; NaN and inf are unaffected.
class FlushDenormals {
   public:
#if defined(__x86_64__) || defined(_M_X64)
    FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }  // FTZ (bit 15) and DAZ (bit 6)
    ~FlushDenormals() { _mm_setcsr(saved_); }

   private:
    unsigned saved_;
#else
    // Elsewhere (aarch64) denormal arithmetic runs at full speed on current cores, and the mode is left as it is.
    FlushDenormals() {}
#endif
};

}  // namespace fastlstm
