// Portable calibration kernels. FMA: the portable kernels' own register tile (f32_tile__portable.h: 3 rows x 16
// columns, a multiply then an add per product) on operands that stay in L1, so that "% peak" of the portable variant
// compares its rows with what its tile reaches, not with the machine. (The former kernel, 12 scalar chains of
// acc = acc * c + d, waited on each chain's multiply and add in turn: 14.5 GFLOP/s on a Zen 4 core, where the tile
// runs the quick matrix at 20-33, and the portable rows read up to 230% of "peak".)
#include "f32_tile__portable.h"
#include "variants.h"

namespace fastlstm {

int64_t f32_fma_peak__portable(int64_t iterations, float* sink) {
    constexpr int64_t kRows = portable::kTileRows, kColumns = portable::kTileColumns, kDepth = 64;
    // 3 x 64 values of A and 64 x 16 weights (4 KiB), about 0.01 each: the sums grow by about 0.006 per call and
    // stay normal, far from overflow, for any run the calibration times.
    float a[kRows * kDepth], w[kDepth * kColumns], sums[kRows * kColumns] = {};
    for (int64_t i = 0; i < kRows * kDepth; ++i) a[i] = 0.01f + 0.0001f * static_cast<float>(i % 7);
    for (int64_t i = 0; i < kDepth * kColumns; ++i) w[i] = 0.01f - 0.0001f * static_cast<float>(i % 5);
    for (int64_t i = 0; i < iterations; ++i)
        portable::f32_tile_accumulate<kRows, kColumns>(kDepth, a, kDepth, w, kColumns, sums, kColumns);
    float total = 0.0f;
    for (float value : sums) total += value;
    *sink = total;
    return iterations * kRows * kColumns * kDepth * 2;
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
