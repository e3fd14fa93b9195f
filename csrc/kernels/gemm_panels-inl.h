// Panel GEMM (see kernels.h for the contract), written once over the Simd interface and compiled per ISA, in
// precision f32, bf16 and int8 (the product structs of lstm_step-inl.h, whose rows are the rows of A).
// Compiled through a variant's entry file (variant__<isa>.cc), which includes that ISA's simd__<isa>.h and
// defines FASTLSTM_ISA_NAMESPACE, the namespace of everything below.
//
// Register tile: kRows rows of A times kPanels panels of kVectors vectors each, all accumulators in registers.
// Each A element is broadcast once per tile and each weight vector loaded once per tile and depth step.
// Rows are processed in blocks of kRowBlock so that the block of A stays in L2 while every panel streams past it.

#pragma once

#ifndef FASTLSTM_ISA_NAMESPACE
#error "compile this header through a variant's entry file (variant__<isa>.cc), which defines FASTLSTM_ISA_NAMESPACE"
#endif

#include <cstdint>

#include "fastlstm/bf16.h"
#include "fastlstm/int8.h"
#include "fastlstm/kernels.h"
#include "lstm_step-inl.h"

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

// `product` holds the tile's first panel and first row of A; `column0` is the tile's first column (for the
// product's per-column data) and init, when not null, starts there.
template <int kRows, int kPanels, int kVectors, class Product>
inline void gemm_tile(const Product& product, int64_t panel_stride, int64_t column0, const float* init, float* C,
                      int64_t ldc, int64_t columns) {
    constexpr int64_t kWidth = kVectors * Simd::kLanes;  // columns of one panel
    auto init_at = [&](int p, int v) { return init ? init + p * kWidth + v * Simd::kLanes : nullptr; };
    typename Product::Accumulator acc[kRows][kPanels][kVectors];
    for (int r = 0; r < kRows; ++r)
        for (int p = 0; p < kPanels; ++p)
            for (int v = 0; v < kVectors; ++v) acc[r][p][v] = product.start(init_at(p, v));
    for (int64_t k = 0; k < product.depth; ++k) {
        decltype(product.operand(0, 0)) a[kRows];
        for (int r = 0; r < kRows; ++r) a[r] = product.operand(r, k);
        for (int p = 0; p < kPanels; ++p)
            for (int v = 0; v < kVectors; ++v) {
                const typename Product::Weight* weights;
                if constexpr (kVectors == 4 && Product::kGateHalves)  // gate panels in halves (kernels.h)
                    weights = product.panels + p * panel_stride + (v / 2 * product.depth + k) * 2 * Simd::kLanes +
                              v % 2 * Simd::kLanes;
                else
                    weights = product.panels + p * panel_stride + k * kWidth + v * Simd::kLanes;
                const auto w = Product::load(weights);
                for (int r = 0; r < kRows; ++r) acc[r][p][v] = Product::madd(acc[r][p][v], w, a[r]);
            }
    }
    if constexpr (Simd::kFinishFromUnrolledCopies) {
        // The sums copied out in fully unrolled loops first, as in lstm_step_tile (simd__neon.h): GCC 12 for aarch64
        // otherwise kept the accumulators in their stack array for the rolled loop below and stored 14-17 of them
        // there in every depth step. The same values, stored as below (the loop is written twice: sharing it through
        // a lambda changed the x86 variants' code, which this branch must leave as it was).
        typename Product::Accumulator sums[kRows][kPanels][kVectors];
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 4
            for (int p = 0; p < kPanels; ++p)
#pragma GCC unroll 4
                for (int v = 0; v < kVectors; ++v) sums[r][p][v] = acc[r][p][v];
        for (int r = 0; r < kRows; ++r)
            for (int p = 0; p < kPanels; ++p)
                for (int v = 0; v < kVectors; ++v) {
                    const int64_t column = p * kWidth + v * Simd::kLanes;
                    const V value = product.finish(sums[r][p][v], init_at(p, v), r, column0 + column);
                    float* dst = C + r * ldc + column;
                    if (column + Simd::kLanes <= columns)
                        Simd::store(dst, value);
                    else if (column < columns)
                        Simd::store_first(dst, value, columns - column);
                }
        return;
    }
    // Store the first `columns` columns of the tile (all of them but at the right edge of C).
    for (int r = 0; r < kRows; ++r)
        for (int p = 0; p < kPanels; ++p)
            for (int v = 0; v < kVectors; ++v) {
                const int64_t column = p * kWidth + v * Simd::kLanes;
                const V value = product.finish(acc[r][p][v], init_at(p, v), r, column0 + column);
                float* dst = C + r * ldc + column;
                if (column + Simd::kLanes <= columns)
                    Simd::store(dst, value);
                else if (column < columns)
                    Simd::store_first(dst, value, columns - column);
            }
}

// The tile of exactly `rows` rows (1 <= rows <= kRows), found by counting down.
template <int kRows, int kPanels, int kVectors, class Product>
inline void gemm_tile_of_height(int64_t rows, const Product& product, int64_t panel_stride, int64_t column0,
                                const float* init, float* C, int64_t ldc, int64_t columns) {
    if (rows == kRows)
        gemm_tile<kRows, kPanels, kVectors>(product, panel_stride, column0, init, C, ldc, columns);
    else if constexpr (kRows > 1)
        gemm_tile_of_height<kRows - 1, kPanels, kVectors>(rows, product, panel_stride, column0, init, C, ldc, columns);
}

// Rows [0, M) x panels [p, p + kPanels): full tiles of kMaxRows rows, then one tile of the remaining rows.
template <int kMaxRows, int kPanels, int kVectors, class Product>
inline void gemm_rows(int64_t M, const Product& product, int64_t panel_stride, int64_t column0, const float* init,
                      float* C, int64_t ldc, int64_t columns) {
    int64_t m = 0;
    for (; m + kMaxRows <= M; m += kMaxRows)
        gemm_tile<kMaxRows, kPanels, kVectors>(product.from_row(m), panel_stride, column0, init, C + m * ldc, ldc,
                                               columns);
    if (m < M)
        gemm_tile_of_height<kMaxRows, kPanels, kVectors>(M - m, product.from_row(m), panel_stride, column0, init,
                                                         C + m * ldc, ldc, columns);
}

// kVectors vectors per panel; kPanels panels per tile. Gate panels: kVectors = 4, kPanels = 1. Projection panels
// (one vector wide): kVectors = 1, kPanels = 4, so a tile still holds 4 vectors of columns per row.
// `product` holds all of A and the first panel; N columns.
template <int kMaxRows, int kPanels, int kVectors, class Product>
inline void gemm_panels_with(int64_t M, int64_t N, const Product& product, const float* init, float* C, int64_t ldc) {
    constexpr int64_t kWidth = kVectors * Simd::kLanes;
    constexpr int64_t kRowBlock = 256;
    const int64_t num_panels = (N + kWidth - 1) / kWidth;
    const int64_t panel_stride = product.depth * kWidth;
    for (int64_t m0 = 0; m0 < M; m0 += kRowBlock) {
        const int64_t rows = M - m0 < kRowBlock ? M - m0 : kRowBlock;
        Product block = product.from_row(m0);
        float* c = C + m0 * ldc;
        int64_t p = 0;
        const auto* first_panel = product.panels;
        for (; p + kPanels <= num_panels; p += kPanels) {
            block.panels = first_panel + p * panel_stride;
            gemm_rows<kMaxRows, kPanels, kVectors>(rows, block, panel_stride, p * kWidth,
                                                   init ? init + p * kWidth : nullptr, c + p * kWidth, ldc,
                                                   N - p * kWidth);
        }
        for (; p < num_panels; ++p) {
            block.panels = first_panel + p * panel_stride;
            gemm_rows<kMaxRows, 1, kVectors>(rows, block, panel_stride, p * kWidth, init ? init + p * kWidth : nullptr,
                                             c + p * kWidth, ldc, N - p * kWidth);
        }
    }
}

template <int kMaxRows, int kPanels, int kVectors>
inline void gemm_panels(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* panels,
                        const float* init, float* C, int64_t ldc) {
    gemm_panels_with<kMaxRows, kPanels, kVectors>(M, N, F32Product{{}, panels, A, lda, K}, init, C, ldc);
}

// Precision bf16, gate panels only: A rounded into a_bf16 first.
template <int kMaxRows>
inline void bf16_gemm_panels(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const uint32_t* pairs,
                             const float* init, float* C, int64_t ldc, uint16_t* a_bf16) {
    const int64_t stride = (K + 1) / 2 * 2;
    round_rows_to_bf16(M, K, A, lda, a_bf16, stride);
    gemm_panels_with<kMaxRows, 1, 4>(M, N, BF16PairProduct{{}, pairs, a_bf16, stride, stride / 2}, init, C, ldc);
}

// Precision int8, gate panels only: A quantized into a_uint8 and a_scales first.
template <int kMaxRows>
inline void int8_gemm_panels(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Int8Panels& B,
                             const float* init, float* C, int64_t ldc, uint8_t* a_uint8, float* a_scales) {
    const int64_t stride = (K + 3) / 4 * 4;
    quantize_rows_to_uint8(M, K, A, lda, a_uint8, stride, a_scales);
    gemm_panels_with<kMaxRows, 1, 4>(
        M, N, Int8QuadProduct{B.quads, a_uint8, stride, stride / 4, a_scales, B.scales, B.offsets}, init, C, ldc);
}

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
