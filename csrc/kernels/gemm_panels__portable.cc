// Portable panel GEMM: the reference path, compiled with the baseline flags of the target and always available.
// Rows are blocked so that each loaded weight feeds several rows; the sums of one block are held in vector registers
// (float32: f32_tile__portable.h; bf16 and int8: a small local array the compiler keeps there as it can).
#include <algorithm>
#include <cassert>

#include "bf16__portable.h"
#include "f32_tile__portable.h"
#include "fastlstm/bf16.h"
#include "fastlstm/int8.h"
#include "variants.h"

namespace fastlstm {
namespace {

// Rows are blocked by 4 in precisions bf16 and int8, by the tile's 3 in float32 (f32_tile__portable.h).
constexpr int64_t kRows = 4;
// The portable variant packs with hidden_block 8: gate panels are 32 wide, projection panels 8.
constexpr int64_t kHiddenBlock = 8;
constexpr int64_t kGatePanelWidth = 4 * kHiddenBlock;
static_assert(kHiddenBlock == kVariant_portable.hidden_block, "variants.inc: the portable row's hidden_block");

template <int64_t kWidth, int64_t kBlockRows>
void gemm_panel_rows(int64_t K, const float* A, int64_t lda, const float* panel, const float* init, float* C,
                     int64_t ldc, int64_t columns) {
    float sums[kBlockRows][kWidth];
    for (int64_t r = 0; r < kBlockRows; ++r)
        for (int64_t j = 0; j < kWidth; ++j) sums[r][j] = init ? init[j] : 0.0f;
    portable::f32_panel_accumulate<kBlockRows, kWidth>(K, A, lda, panel, sums[0], kWidth);
    for (int64_t r = 0; r < kBlockRows; ++r)
        for (int64_t j = 0; j < columns; ++j) C[r * ldc + j] = sums[r][j];
}

template <int64_t kWidth>
void gemm_panels(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* panels, const float* init,
                 float* C, int64_t ldc) {
    constexpr int64_t kBlock = portable::kTileRows;
    static_assert(kBlock == 3, "the tails below take the 2 rows or 1 row that blocks of 3 leave");
    const int64_t num_panels = (N + kWidth - 1) / kWidth;
    for (int64_t p = 0; p < num_panels; ++p) {
        const float* panel = panels + p * K * kWidth;
        const float* panel_init = init ? init + p * kWidth : nullptr;
        const int64_t columns = std::min(kWidth, N - p * kWidth);
        float* const C_panel = C + p * kWidth;
        int64_t m = 0;
        for (; m + kBlock <= M; m += kBlock)
            gemm_panel_rows<kWidth, kBlock>(K, A + m * lda, lda, panel, panel_init, C_panel + m * ldc, ldc, columns);
        if (M - m == 2)
            gemm_panel_rows<kWidth, 2>(K, A + m * lda, lda, panel, panel_init, C_panel + m * ldc, ldc, columns);
        else if (M - m == 1)
            gemm_panel_rows<kWidth, 1>(K, A + m * lda, lda, panel, panel_init, C_panel + m * ldc, ldc, columns);
    }
}

using portable::widen_bf16;

// Precision bf16 (kernels.h): A as rows of bf16 values (row stride a_stride, K rounded up to even), pair panels of
// kWidth columns; per element, the pairs in order, the even product added first.
template <int64_t kWidth, int64_t kBlockRows>
void bf16_gemm_panel_rows(int64_t pairs, const uint16_t* A, int64_t a_stride, const uint32_t* panel, const float* init,
                          float* C, int64_t ldc, int64_t columns) {
    float acc[kBlockRows][kWidth];
    for (int64_t r = 0; r < kBlockRows; ++r)
        for (int64_t j = 0; j < kWidth; ++j) acc[r][j] = init ? init[j] : 0.0f;
    for (int64_t pair = 0; pair < pairs; ++pair) {
        const uint32_t* w = panel + pair * kWidth;
        for (int64_t r = 0; r < kBlockRows; ++r) {
            const float a_even = widen_bf16(A[r * a_stride + 2 * pair]),
                        a_odd = widen_bf16(A[r * a_stride + 2 * pair + 1]);
            for (int64_t j = 0; j < kWidth; ++j) {
                acc[r][j] += a_even * widen_bf16(w[j] & 0xFFFFu);
                acc[r][j] += a_odd * widen_bf16(w[j] >> 16);
            }
        }
    }
    for (int64_t r = 0; r < kBlockRows; ++r)
        for (int64_t j = 0; j < columns; ++j) C[r * ldc + j] = acc[r][j];
}

// Precision int8 (kernels.h): rows of q + 128 (row stride a_stride, K rounded up to 4) with their scales, quad panels
// of kWidth columns from column `column0` of B's scales and offsets.
template <int64_t kWidth, int64_t kBlockRows>
void int8_gemm_panel_rows(int64_t quads, const uint8_t* A, int64_t a_stride, const float* a_scales,
                          const uint32_t* panel, const Int8Panels& B, int64_t column0, const float* init, float* C,
                          int64_t ldc, int64_t columns) {
    int32_t sums[kBlockRows][kWidth] = {};
    for (int64_t quad = 0; quad < quads; ++quad) {
        const uint32_t* w = panel + quad * kWidth;
        for (int64_t r = 0; r < kBlockRows; ++r) {
            const uint8_t* a = A + r * a_stride + 4 * quad;
            for (int64_t j = 0; j < kWidth; ++j) {
                int32_t sum = 0;
                for (int byte = 0; byte < 4; ++byte)
                    sum += static_cast<int32_t>(a[byte]) * static_cast<int8_t>(w[j] >> (8 * byte) & 0xFFu);
                sums[r][j] += sum;
            }
        }
    }
    for (int64_t r = 0; r < kBlockRows; ++r)
        for (int64_t j = 0; j < columns; ++j) {
            const float value = static_cast<float>(sums[r][j] - B.offsets[column0 + j]);
            const float scaled = value * (a_scales[r] * B.scales[column0 + j]);
            C[r * ldc + j] = init ? init[j] + scaled : scaled;
        }
}

}  // namespace

void int8_gemm_panels__portable(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Int8Panels& B,
                                int64_t panel_width, const float* init, float* C, int64_t ldc, uint8_t* a_uint8,
                                float* a_scales) {
    constexpr int64_t kWidth = kGatePanelWidth;  // the only panels in int8
    assert(panel_width == kWidth && "int8_gemm_panels__portable: unsupported panel width");
    (void)panel_width;
    const int64_t stride = (K + 3) / 4 * 4, quads = stride / 4;
    quantize_rows_to_uint8(M, K, A, lda, a_uint8, stride, a_scales);
    const int64_t num_panels = (N + kWidth - 1) / kWidth;
    for (int64_t p = 0; p < num_panels; ++p) {
        const uint32_t* panel = B.quads + p * quads * kWidth;
        const float* panel_init = init ? init + p * kWidth : nullptr;
        const int64_t columns = std::min(kWidth, N - p * kWidth);
        int64_t m = 0;
        for (; m + kRows <= M; m += kRows)
            int8_gemm_panel_rows<kWidth, kRows>(quads, a_uint8 + m * stride, stride, a_scales + m, panel, B, p * kWidth,
                                                panel_init, C + m * ldc + p * kWidth, ldc, columns);
        for (; m < M; ++m)
            int8_gemm_panel_rows<kWidth, 1>(quads, a_uint8 + m * stride, stride, a_scales + m, panel, B, p * kWidth,
                                            panel_init, C + m * ldc + p * kWidth, ldc, columns);
    }
}

void bf16_gemm_panels__portable(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                const uint32_t* pair_panels, int64_t panel_width, const float* init, float* C,
                                int64_t ldc, uint16_t* a_bf16) {
    constexpr int64_t kWidth = kGatePanelWidth;  // the only panels in bf16
    assert(panel_width == kWidth && "bf16_gemm_panels__portable: unsupported panel width");
    (void)panel_width;
    const int64_t stride = (K + 1) / 2 * 2, pairs = stride / 2;
    round_rows_to_bf16(M, K, A, lda, a_bf16, stride);
    const int64_t num_panels = (N + kWidth - 1) / kWidth;
    for (int64_t p = 0; p < num_panels; ++p) {
        const uint32_t* panel = pair_panels + p * pairs * kWidth;
        const float* panel_init = init ? init + p * kWidth : nullptr;
        const int64_t columns = std::min(kWidth, N - p * kWidth);
        int64_t m = 0;
        for (; m + kRows <= M; m += kRows)
            bf16_gemm_panel_rows<kWidth, kRows>(pairs, a_bf16 + m * stride, stride, panel, panel_init,
                                                C + m * ldc + p * kWidth, ldc, columns);
        for (; m < M; ++m)
            bf16_gemm_panel_rows<kWidth, 1>(pairs, a_bf16 + m * stride, stride, panel, panel_init,
                                            C + m * ldc + p * kWidth, ldc, columns);
    }
}

void f32_gemm_panels__portable(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* panels,
                               int64_t panel_width, const float* init, float* C, int64_t ldc) {
    switch (panel_width) {
        case kHiddenBlock: return gemm_panels<kHiddenBlock>(M, N, K, A, lda, panels, init, C, ldc);
        case kGatePanelWidth: return gemm_panels<kGatePanelWidth>(M, N, K, A, lda, panels, init, C, ldc);
        default: assert(false && "f32_gemm_panels__portable: unsupported panel width");
    }
}

}  // namespace fastlstm
