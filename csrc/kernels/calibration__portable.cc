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

// The portable look-ahead step is the plain step, then its pieces one at a time (lstm_step__portable.cc); its loop
// is the same: the recurrent product over all panels, then the step's share of pieces, a row at a time.
float f32_look_ahead_loop__portable(const float* recurrent, const float* inputs, const float* h, const float* x,
                                    int64_t panels, int64_t recurrent_k, int64_t input_k, int64_t steps) {
    constexpr int64_t kBlock = kVariant_portable.hidden_block, kWidth = 4 * kBlock;
    const int64_t pieces_per_step = (4 * panels + kLookAheadSteps - 1) / kLookAheadSteps;
    float total = 0.0f;
    int64_t piece = 0;
    for (int64_t step = 0; step < steps; ++step) {
        for (int64_t panel = 0; panel < panels; ++panel) {
            float sums[kWidth] = {};
            for (int64_t k = 0; k < recurrent_k; ++k)
                for (int64_t j = 0; j < kWidth; ++j)
                    sums[j] += h[k] * recurrent[(panel * recurrent_k + k) * kWidth + j];
            for (float sum : sums) total += sum;
        }
        for (int64_t end = piece + pieces_per_step; piece < end; ++piece) {
            const int64_t spot = piece % (4 * panels);
            const float* weights = inputs + (spot / 4) * input_k * kWidth + (spot % 4) * kBlock;
            for (int64_t r = 0; r < kLookAheadPieceRows; ++r) {
                float part[kBlock] = {};
                for (int64_t k = 0; k < input_k; ++k)
                    for (int64_t j = 0; j < kBlock; ++j) part[j] += x[r * input_k + k] * weights[k * kWidth + j];
                for (float sum : part) total += sum;
            }
        }
    }
    return total;
}

}  // namespace fastlstm
