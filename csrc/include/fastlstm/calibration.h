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

// Seconds per step of the variant's look-ahead loop (kernels.h: f32_look_ahead_loop_fn) on the calling thread, for a
// layer of `input_size` inputs and `hidden_size` units: a batch-1 step's loads and multiply-adds with nothing else,
// over weights of the layer's packed size (the median of repeated timings of about `seconds` in all, after a
// warm-up). The least time the look-ahead step could take here, against which "% bound" of batch-1 rows is weighed.
// Requires kernels.look_ahead_loop.
double measure_look_ahead_loop_step_seconds(const KernelSet& kernels, int64_t input_size, int64_t hidden_size,
                                            double seconds);

// `units` runs of the variant's FMA calibration kernel (`iterations` each) on `threads` threads of the shared pool,
// each run taken by whichever thread is free, nobody waiting for anybody but for the last runs: the best that any
// team of threads can do with that much work. The neighbours benchmark times it beside other libraries' threads, as
// the yardstick of a forward call's slowdown there.
void run_shared_work(const KernelSet& kernels, int threads, int64_t units, int64_t iterations);

}  // namespace fastlstm
