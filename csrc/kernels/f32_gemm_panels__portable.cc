// Portable panel GEMM: the reference path, compiled with the baseline flags of the target and always available.
// Rows are blocked by kRows so that each loaded weight feeds several rows; the accumulators of one block live in a
// small local array that the compiler keeps in vector registers for the fixed panel widths.
#include <algorithm>
#include <cassert>

#include "fastlstm/kernels.h"

namespace fastlstm {
namespace {

constexpr int64_t kRows = 4;

template <int64_t kWidth, int64_t kBlockRows>
void gemm_panel_rows(int64_t K, const float* A, int64_t lda, const float* panel, const float* init, float* C,
                     int64_t ldc, int64_t columns) {
    float acc[kBlockRows][kWidth];
    for (int64_t r = 0; r < kBlockRows; ++r)
        for (int64_t j = 0; j < kWidth; ++j) acc[r][j] = init ? init[j] : 0.0f;
    for (int64_t k = 0; k < K; ++k) {
        const float* w = panel + k * kWidth;
        for (int64_t r = 0; r < kBlockRows; ++r) {
            const float a = A[r * lda + k];
            for (int64_t j = 0; j < kWidth; ++j) acc[r][j] += a * w[j];
        }
    }
    for (int64_t r = 0; r < kBlockRows; ++r)
        for (int64_t j = 0; j < columns; ++j) C[r * ldc + j] = acc[r][j];
}

template <int64_t kWidth>
void gemm_panels(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* panels,
                 const float* init, float* C, int64_t ldc) {
    const int64_t num_panels = (N + kWidth - 1) / kWidth;
    for (int64_t p = 0; p < num_panels; ++p) {
        const float* panel = panels + p * K * kWidth;
        const float* panel_init = init ? init + p * kWidth : nullptr;
        const int64_t columns = std::min(kWidth, N - p * kWidth);
        int64_t m = 0;
        for (; m + kRows <= M; m += kRows)
            gemm_panel_rows<kWidth, kRows>(K, A + m * lda, lda, panel, panel_init, C + m * ldc + p * kWidth, ldc,
                                           columns);
        for (; m < M; ++m)
            gemm_panel_rows<kWidth, 1>(K, A + m * lda, lda, panel, panel_init, C + m * ldc + p * kWidth, ldc,
                                       columns);
    }
}

}  // namespace

void f32_gemm_panels__portable(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* panels,
                               int64_t panel_width, const float* init, float* C, int64_t ldc) {
    // The portable variant packs with hidden_block 8: gate panels are 32 wide, projection panels 8.
    switch (panel_width) {
        case 8: return gemm_panels<8>(M, N, K, A, lda, panels, init, C, ldc);
        case 32: return gemm_panels<32>(M, N, K, A, lda, panels, init, C, ldc);
        default: assert(false && "f32_gemm_panels__portable: unsupported panel width");
    }
}

}  // namespace fastlstm
