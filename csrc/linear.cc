// The classifier head (fastlstm/linear.h): W packed once into projection panels, rows shared among threads.
#include "fastlstm/linear.h"

#include <algorithm>

#include "cpu.h"
#include "pack.h"
#include "team.h"
#include "thread_pool.h"

namespace fastlstm {
namespace {

// The automatic thread count is every core from this many multiply-adds (rows x in x out) on, one thread below:
// handing work to another thread costs microseconds, as for a recurrent step (kMinStepWorkPerThread in plan.cc).
// `python -m pytest benchmarks -k classifier_head` (back-to-back calls, 2 cores, Zen 4): 2 threads 1.5x slower than
// 1 at 65,536, 1.2x faster at 262,144, 1.7-1.9x faster from 524,288 on; 2^20 sits safely past the crossover.
constexpr int64_t kLinearMinWorkForThreads = int64_t{1} << 20;

}  // namespace

PackedLinear::PackedLinear(const KernelSet& kernels, int64_t in_features, int64_t out_features, const float* weight,
                           const float* bias)
    : kernels_(kernels), in_features_(in_features), out_features_(out_features) {
    const int64_t block = kernels.hidden_block;
    const int64_t padded = ceil_div(out_features, block) * block;
    panels_ = AlignedFloats(padded * in_features);
    bias_ = AlignedFloats(padded);
    pack_projection_panels(weight, out_features, in_features, block, panels_.data());
    for (int64_t j = 0; j < padded; ++j) bias_.data()[j] = bias && j < out_features ? bias[j] : 0.0f;
}

void PackedLinear::forward(int64_t rows, const float* x, int64_t x_stride, float* out, int64_t out_stride, bool softmax,
                           int threads) const {
    const int64_t work = rows * in_features_ * out_features_;
    const int by_work = work >= kLinearMinWorkForThreads ? hardware_threads() : 1;
    threads = threads <= 0 ? by_work : std::min(threads, hardware_threads());
    threads = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, rows)));
    ThreadPool::shared().run(threads, [&](int index, int size) {
        int64_t begin, end;
        share(rows, index, size, &begin, &end);
        if (begin == end) return;
        kernels_.gemm_panels(end - begin, out_features_, in_features_, x + begin * x_stride, x_stride, panels_.data(),
                             kernels_.hidden_block, bias_.data(), out + begin * out_stride, out_stride);
        if (softmax) kernels_.softmax_rows(end - begin, out_features_, out + begin * out_stride, out_stride);
    });
}

}  // namespace fastlstm
