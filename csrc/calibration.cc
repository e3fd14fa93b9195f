#include "fastlstm/calibration.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "fastlstm/aligned_buffer.h"
#include "thread_pool.h"

namespace fastlstm {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

double measure_fma_peak_gflops(const KernelSet& kernels, int threads, double seconds) {
    // Size the run from a short one on this thread: about seconds/3 per repetition.
    float sink = 0.0f;
    int64_t iterations = 1 << 16;
    for (;;) {
        const auto start = std::chrono::steady_clock::now();
        kernels.fma_peak(iterations, &sink);
        const double elapsed = seconds_since(start);
        if (elapsed > 0.01 || iterations > (int64_t{1} << 40)) {
            iterations = std::max<int64_t>(1, static_cast<int64_t>(iterations * (seconds / 3) / elapsed));
            break;
        }
        iterations *= 4;
    }
    double best = 0.0;
    std::vector<float> sinks(static_cast<std::size_t>(std::max(threads, 1)));
    for (int repetition = 0; repetition < 3; ++repetition) {
        std::atomic<int64_t> flops{0};
        const auto start = std::chrono::steady_clock::now();
        ThreadPool::shared().run(threads, [&](int index, int) {
            flops.fetch_add(kernels.fma_peak(iterations, &sinks[static_cast<std::size_t>(index)]));
        });
        best = std::max(best, static_cast<double>(flops.load()) / seconds_since(start) / 1e9);
    }
    return best;
}

double measure_read_bandwidth_gbs(const KernelSet& kernels, int threads, int64_t bytes_per_thread, double seconds) {
    const int64_t floats = std::max<int64_t>(128, bytes_per_thread / 4 / 128 * 128);
    std::vector<AlignedFloats> arrays;
    for (int t = 0; t < threads; ++t) {
        arrays.emplace_back(floats);
        for (int64_t i = 0; i < floats; ++i) arrays.back().data()[i] = 1.0f;
    }
    // Passes per repetition: enough to read about 64 MiB per thread or to take seconds/8, whichever is less.
    const int64_t passes = std::max<int64_t>(1, (int64_t{64} << 20) / (floats * 4));
    std::vector<float> sinks(static_cast<std::size_t>(threads));
    double best = 0.0;
    const auto begin = std::chrono::steady_clock::now();
    for (int repetition = 0; repetition < 8 || seconds_since(begin) < seconds; ++repetition) {
        std::atomic<int64_t> bytes{0};
        const auto start = std::chrono::steady_clock::now();
        ThreadPool::shared().run(threads, [&](int index, int) {
            float sum = 0.0f;
            for (int64_t p = 0; p < passes; ++p)
                sum += kernels.read_sum(arrays[static_cast<std::size_t>(index)].data(), floats);
            sinks[static_cast<std::size_t>(index)] = sum;
            bytes.fetch_add(passes * floats * 4);
        });
        if (repetition > 0) best = std::max(best, static_cast<double>(bytes.load()) / seconds_since(start) / 1e9);
        if (repetition > 64) break;
    }
    return best;
}

double measure_look_ahead_loop_step_seconds(const KernelSet& kernels, int64_t input_size, int64_t hidden_size,
                                            double seconds) {
    const int64_t block = kernels.hidden_block, width = 4 * block;
    const int64_t panels = (hidden_size + block - 1) / block;
    // Packed as the layer's weights are: panels of `width` floats a k. Values of about 0.01 (inputs and h of about
    // 0.5) keep every sum finite and normal.
    AlignedFloats recurrent(panels * hidden_size * width), inputs(panels * input_size * width);
    AlignedFloats h(hidden_size), x(kLookAheadPieceRows * input_size);
    for (int64_t i = 0; i < recurrent.size(); ++i) recurrent.data()[i] = 0.01f + 0.001f * static_cast<float>(i % 7);
    for (int64_t i = 0; i < inputs.size(); ++i) inputs.data()[i] = 0.01f - 0.001f * static_cast<float>(i % 5);
    for (int64_t i = 0; i < h.size(); ++i) h.data()[i] = 0.5f - 0.01f * static_cast<float>(i % 3);
    for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = 0.5f + 0.01f * static_cast<float>(i % 3);
    auto run = [&](int64_t steps) {
        return kernels.look_ahead_loop(recurrent.data(), inputs.data(), h.data(), x.data(), panels, hidden_size,
                                       input_size, steps);
    };
    // Size a timing to about seconds/16 from a short run (which also warms the caches), then take the median of 15.
    volatile float sink = 0.0f;
    int64_t steps = kLookAheadSteps;
    for (;;) {
        const auto start = std::chrono::steady_clock::now();
        sink = sink + run(steps);
        const double elapsed = seconds_since(start);
        if (elapsed > 0.002 || steps > (int64_t{1} << 30)) {
            steps = std::max<int64_t>(kLookAheadSteps, static_cast<int64_t>(steps * (seconds / 16) / elapsed));
            break;
        }
        steps *= 4;
    }
    std::vector<double> per_step;
    for (int repetition = 0; repetition < 15; ++repetition) {
        const auto start = std::chrono::steady_clock::now();
        sink = sink + run(steps);
        per_step.push_back(seconds_since(start) / static_cast<double>(steps));
    }
    std::nth_element(per_step.begin(), per_step.begin() + 7, per_step.end());
    return per_step[7];
}

void run_shared_work(const KernelSet& kernels, int threads, int64_t units, int64_t iterations) {
    std::atomic<int64_t> next{0};
    std::vector<float> sinks(static_cast<std::size_t>(std::max(threads, 1)));
    ThreadPool::shared().run(
        threads,
        [&](int index, int) {
            for (int64_t unit; (unit = next.fetch_add(1, std::memory_order_relaxed)) < units;)
                kernels.fma_peak(iterations, &sinks[static_cast<std::size_t>(index)]);
        },
        /*members_optional=*/true);
}

}  // namespace fastlstm
