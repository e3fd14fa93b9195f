// Measures what the machine can do, for the benchmark report's "percent of peak".
#pragma once

#include "fastlstm/kernels.h"

namespace fastlstm {

// FMA throughput in GFLOP/s of `threads` threads of the shared pool running the variant's calibration kernel at
// once for about `seconds` (best of three). On a machine shared with other work it reads low, never high.
double measure_fma_peak_gflops(const KernelSet& kernels, int threads, double seconds);

}  // namespace fastlstm
