// Portable calibration kernels. FMA: 12 independent scalar chains, which the compiler may vectorise for the baseline
// instruction set. It measures what the portable kernels can reach, not the machine.
#include "variants.h"

namespace fastlstm {

int64_t f32_fma_peak__portable(int64_t iterations, float* sink) {
    constexpr int kChains = 12;
    float acc[kChains];
    for (int j = 0; j < kChains; ++j) acc[j] = 0.001f * static_cast<float>(j);
    for (int64_t i = 0; i < iterations; ++i)
        for (int j = 0; j < kChains; ++j) acc[j] = acc[j] * 0.999999f + 1e-7f;
    float total = 0.0f;
    for (int j = 0; j < kChains; ++j) total += acc[j];
    *sink = total;
    return iterations * kChains * 2;
}

float f32_read_sum__portable(const float* data, int64_t n) {
    constexpr int kChains = 8;
    float acc[kChains] = {};
    for (int64_t i = 0; i + kChains <= n; i += kChains)
        for (int j = 0; j < kChains; ++j) acc[j] += data[i + j];
    float total = 0.0f;
    for (int j = 0; j < kChains; ++j) total += acc[j];
    return total;
}

}  // namespace fastlstm
