// Measures what the machine can do, for the benchmark report's "percent of peak".
#pragma once

#include "fastlstm/kernels.h"

namespace fastlstm {

// FMA throughput in GFLOP/s of `threads` threads of the shared pool running the variant's calibration kernel at
// once for about `seconds` (best of three). On a machine shared with other work it reads low, never high.
double measure_fma_peak_gflops(const KernelSet& kernels, int threads, double seconds);

// Read bandwidth in GB/s of `threads` threads of the shared pool, each reading its own array of
// `bytes_per_thread` bytes over and over (best of several passes after a warm-up): from L1, L2, L3 or memory
// depending on the size. This is what bounds a batch-1 LSTM step, which reads every recurrent weight once.
double measure_read_bandwidth_gbs(const KernelSet& kernels, int threads, int64_t bytes_per_thread, double seconds);

// `units` runs of the variant's FMA calibration kernel (`iterations` each) on `threads` threads of the shared pool,
// each run taken by whichever thread is free, nobody waiting for anybody but for the last runs: the best that any
// team of threads can do with that much work. The neighbours benchmark times it beside other libraries' threads, as
// the yardstick of a forward call's slowdown there.
void run_shared_work(const KernelSet& kernels, int threads, int64_t units, int64_t iterations);

}  // namespace fastlstm
