// The int8 step and input projection over row pairs, for ISAs with a 2 x 8 by 8 x 2 byte matrix multiply-accumulate
// (Simd::matmul_pairs: USMMLA, simd__neon_i8mm.h), written over the Simd interface and the int8 product of
// lstm_step-inl.h. Compiled through a variant's entry file, which defines FASTLSTM_ISA_NAMESPACE.
//
// A tile holds kSlots row pairs x kPanels panels x 4 gate vectors; each gate vector of a pair takes two
// accumulators, the 2 x 2 sums of columns (0, 1) and (2, 3), so a tile of 2 kSlots rows has as many accumulators as
// the dot-product tile of as many rows (lstm_step-inl.h), and half its multiply instructions: per 8 depth bytes and
// gate vector, 2 weight loads and 2 interleaves shared by the tile, then 2 USMMLA per pair where SDOT takes 4. The
// operands are the bytes q + 128, so the sums hold the column offsets of the widening (kernels.h), which the tiles
// subtract before Int8QuadProduct::finish (whose Simd has centred quads, kCentredQuads: the dot-product tiles).
// Integer sums are exact in any order, so the results are bitwise those of the dot-product and widening variants.
// Batch 1 would waste half of each USMMLA on a row of zeros: it takes the dot-product step (lstm_step-inl.h), and
// so does a block of one row.

#pragma once

#ifndef FASTLSTM_ISA_NAMESPACE
#error "compile this header through a variant's entry file (variant__<isa>.cc), which defines FASTLSTM_ISA_NAMESPACE"
#endif

#include <cstdint>
#include <type_traits>

#include "fastlstm/int8.h"
#include "fastlstm/kernels.h"
#include "lstm_step-inl.h"

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

// The sums of rows [row, row + 2 kSlots) of `product` (the last pair's second row absent when kLastAlone) times
// kPanels quad panels of gate width from `weights`, panel_stride words apart; each row's 4 gate vectors of a panel
// go to finish(r, p, sums), r counted from `row`, with the offsets still in the sums.
template <int kSlots, bool kLastAlone, int kPanels, class Finish>
inline void int8_row_pairs_tile(const Int8QuadProduct& product, const uint32_t* weights, int64_t panel_stride,
                                int64_t row, Finish&& finish) {
    constexpr int64_t L = Simd::kLanes;
    constexpr int64_t kWidth = 4 * L;
    const int64_t depth = product.depth;  // quads
    const uint8_t* first_row = product.rows + row * product.row_stride;
    auto pair_row = [&](int s, int half) { return first_row + (2 * s + half) * product.row_stride; };
    auto alone = [](int s) { return kLastAlone && s == kSlots - 1; };

    Simd::VI acc[kSlots][kPanels][4][2];
    for (int s = 0; s < kSlots; ++s)
        for (int p = 0; p < kPanels; ++p)
            for (int g = 0; g < 4; ++g) acc[s][p][g][0] = acc[s][p][g][1] = Simd::zero_int();
    auto multiply = [&](const Simd::RowPair(&rows)[kSlots], const uint32_t* w, int64_t second_quad_offset) {
        for (int p = 0; p < kPanels; ++p)
            for (int g = 0; g < 4; ++g) {
                const uint32_t* v = w + p * panel_stride + g * L;
                const Simd::WeightQuads first = Simd::load_quads(v);
                const Simd::WeightQuads second =
                    second_quad_offset ? Simd::load_quads(v + second_quad_offset) : Simd::WeightQuads{};
                Simd::ColumnPairs columns = Simd::column_pairs(first, second);
                if constexpr (kSlots > 1) columns = Simd::pinned(columns);  // interleaved once for all pairs
                for (int s = 0; s < kSlots; ++s) {
                    acc[s][p][g][0] = Simd::matmul_pairs(acc[s][p][g][0], rows[s], columns.low);
                    acc[s][p][g][1] = Simd::matmul_pairs(acc[s][p][g][1], rows[s], columns.high);
                }
            }
    };
    int64_t j = 0;
    for (; j + 2 <= depth; j += 2) {
        Simd::RowPair rows[kSlots];
        for (int s = 0; s < kSlots; ++s)
            rows[s] = alone(s) ? Simd::load_row_alone(pair_row(s, 0) + 4 * j)
                               : Simd::load_row_pair(pair_row(s, 0) + 4 * j, pair_row(s, 1) + 4 * j);
        multiply(rows, weights + j * kWidth, kWidth);
    }
    if (j < depth) {  // an odd quad count: the last quad against zero weights in the second
        Simd::RowPair rows[kSlots];
        for (int s = 0; s < kSlots; ++s)
            rows[s] = Simd::load_last_quad(pair_row(s, 0) + 4 * j, alone(s) ? nullptr : pair_row(s, 1) + 4 * j);
        multiply(rows, weights + j * kWidth, 0);
    }
#pragma GCC unroll 4
    for (int s = 0; s < kSlots; ++s)
#pragma GCC unroll 2
        for (int half = 0; half < 2; ++half) {
            if (half == 1 && alone(s)) continue;
#pragma GCC unroll 2
            for (int p = 0; p < kPanels; ++p) {
                Simd::VI sums[4];
                for (int g = 0; g < 4; ++g)
                    sums[g] = half == 0 ? Simd::first_row(acc[s][p][g][0], acc[s][p][g][1])
                                        : Simd::second_row(acc[s][p][g][0], acc[s][p][g][1]);
                finish(2 * s + half, p, sums);
            }
        }
}

// The step's tile of 2 kSlots rows (kLastAlone: one fewer) from `row`, kPanels panels from `panel`.
template <int kSlots, bool kLastAlone, int kPanels, bool kOptions>
inline void int8_row_pairs_step_tile(const LstmStepArgs& a, const Int8QuadProduct& product, int64_t panel,
                                     int64_t row) {
    constexpr int64_t L = Simd::kLanes;
    constexpr int64_t kWidth = 4 * L;
    const int64_t panel_stride = product.depth * kWidth;
    int8_row_pairs_tile<kSlots, kLastAlone, kPanels>(
        product, product.panels + panel * panel_stride, panel_stride, row, [&](int r, int p, const Simd::VI(&sums)[4]) {
            V z[4];
            for (int g = 0; g < 4; ++g) {
                const int64_t column = (panel + p) * kWidth + g * L;
                const Simd::VI centred = Simd::sub_int(sums[g], Simd::load_int(product.column_offsets + column));
                z[g] = product.finish(centred, a.gates_in + (row + r) * a.gates_in_stride + column, row + r, column);
            }
            if constexpr (kOptions)
                finish_cells_with_options(a, z, row + r, panel + p);
            else
                finish_cells(a, z, row + r, panel + p);
        });
}

// `count` panels from `panel` for `rows` rows (2 <= rows <= 2 kSlots, in kSlots pairs): a single pair takes two
// panels per tile (16 accumulators), more pairs one.
template <int kSlots, bool kOptions>
inline void int8_row_pairs_step_panels(const LstmStepArgs& a, const Int8QuadProduct& product, int64_t panel,
                                       int64_t count, int64_t row, int64_t rows) {
    auto tile = [&](auto panels, int64_t p) {
        if (rows % 2)
            int8_row_pairs_step_tile<kSlots, true, decltype(panels)::value, kOptions>(a, product, panel + p, row);
        else
            int8_row_pairs_step_tile<kSlots, false, decltype(panels)::value, kOptions>(a, product, panel + p, row);
    };
    int64_t p = 0;
    if constexpr (kSlots == 1)
        for (; p + 2 <= count; p += 2) tile(std::integral_constant<int, 2>{}, p);
    for (; p < count; ++p) tile(std::integral_constant<int, 1>{}, p);
}

template <int kSlots, bool kOptions>
inline void int8_row_pairs_step_rows(const LstmStepArgs& a, const Int8QuadProduct& product, int64_t panel,
                                     int64_t count, int64_t row, int64_t rows) {
    if ((rows + 1) / 2 == kSlots)
        int8_row_pairs_step_panels<kSlots, kOptions>(a, product, panel, count, row, rows);
    else if constexpr (kSlots > 1)
        int8_row_pairs_step_rows<kSlots - 1, kOptions>(a, product, panel, count, row, rows);
}

// As lstm_step_cells (lstm_step-inl.h): panels outer, rows in balanced blocks of at most 2 kMaxSlots; a block of one
// row takes the dot-product tile.
template <int kMaxSlots, bool kOptions>
inline void int8_row_pairs_step_cells(const LstmStepArgs& a, const Int8QuadProduct& product) {
    constexpr int64_t kMaxRows = 2 * kMaxSlots;
    const int64_t group = a.batch > 3 ? 1 : 2;  // panels per pass of the row loop
    const int64_t blocks = (a.batch + kMaxRows - 1) / kMaxRows;
    for (int64_t panel = a.panel_begin; panel < a.panel_end; panel += group) {
        const int64_t count = a.panel_end - panel < group ? a.panel_end - panel : group;
        for (int64_t block = 0; block < blocks; ++block) {
            const int64_t row = a.batch * block / blocks;
            const int64_t rows = a.batch * (block + 1) / blocks - row;
            prefetch_next_gates_in(a, panel, group, block, blocks);
            if (rows == 1)
                lstm_step_panels<1, 2, kOptions>(a, product, panel, count, row);
            else
                int8_row_pairs_step_rows<kMaxSlots, kOptions>(a, product, panel, count, row, rows);
        }
    }
}

// The int8 step (kernels.h): h_prev quantized as in int8_lstm_step; batch 1 is int8_lstm_step itself, with
// kOneRowAccumulators for its tiles.
template <int kMaxSlots, int kOneRowAccumulators>
inline void int8_row_pairs_lstm_step(const LstmStepArgs& a) {
    if (a.batch == 1) return int8_lstm_step<1, kOneRowAccumulators>(a);
    const Int8QuadProduct product = int8_recurrent_product(a);
    if (a.options)
        int8_row_pairs_step_cells<kMaxSlots, true>(a, product);
    else
        int8_row_pairs_step_cells<kMaxSlots, false>(a, product);
}

// The input projection's tile of 2 kSlots rows (kLastAlone: one fewer) of one gate panel, as gemm_tile
// (gemm_panels-inl.h): `product` and C start at the tile's first row, init and column0 at the panel's first column,
// and only the first `columns` columns are stored.
template <int kSlots, bool kLastAlone>
inline void int8_row_pairs_gemm_tile(const Int8QuadProduct& product, int64_t column0, const float* init, float* C,
                                     int64_t ldc, int64_t columns) {
    constexpr int64_t L = Simd::kLanes;
    int8_row_pairs_tile<kSlots, kLastAlone, 1>(
        product, product.panels, 0, 0, [&](int r, int, const Simd::VI(&sums)[4]) {
            for (int v = 0; v < 4; ++v) {
                const int64_t column = v * L;
                const Simd::VI centred =
                    Simd::sub_int(sums[v], Simd::load_int(product.column_offsets + column0 + column));
                const V value = product.finish(centred, init ? init + column : nullptr, r, column0 + column);
                float* dst = C + r * ldc + column;
                if (column + L <= columns)
                    Simd::store(dst, value);
                else if (column < columns)
                    Simd::store_first(dst, value, columns - column);
            }
        });
}

template <int kSlots>
inline void int8_row_pairs_gemm_rows(int64_t rows, const Int8QuadProduct& product, int64_t column0, const float* init,
                                     float* C, int64_t ldc, int64_t columns) {
    if ((rows + 1) / 2 == kSlots) {
        if (rows % 2)
            int8_row_pairs_gemm_tile<kSlots, true>(product, column0, init, C, ldc, columns);
        else
            int8_row_pairs_gemm_tile<kSlots, false>(product, column0, init, C, ldc, columns);
    } else if constexpr (kSlots > 1) {
        int8_row_pairs_gemm_rows<kSlots - 1>(rows, product, column0, init, C, ldc, columns);
    }
}

// int8_gemm_panels (gemm_panels-inl.h) over row pairs, gate panels only: A quantized into a_uint8 and a_scales
// first; rows in blocks of 256 so that a block of A stays in cache while the panels stream past it, each panel in
// tiles of 2 kMaxSlots rows and one tile of the rest.
template <int kMaxSlots>
inline void int8_row_pairs_gemm_panels(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                       const Int8Panels& B, const float* init, float* C, int64_t ldc, uint8_t* a_uint8,
                                       float* a_scales) {
    constexpr int64_t kWidth = 4 * Simd::kLanes;
    constexpr int64_t kRowBlock = 256;
    constexpr int64_t kMaxRows = 2 * kMaxSlots;
    const int64_t stride = (K + 3) / 4 * 4;
    quantize_rows_to_uint8(M, K, A, lda, a_uint8, stride, a_scales);
    const Int8QuadProduct whole{B.quads, a_uint8, stride, stride / 4, a_scales, B.scales, B.offsets};
    const int64_t num_panels = (N + kWidth - 1) / kWidth;
    const int64_t panel_stride = whole.depth * kWidth;
    for (int64_t m0 = 0; m0 < M; m0 += kRowBlock) {
        const int64_t rows = M - m0 < kRowBlock ? M - m0 : kRowBlock;
        for (int64_t p = 0; p < num_panels; ++p) {
            const int64_t column0 = p * kWidth;
            const float* panel_init = init ? init + column0 : nullptr;
            int64_t m = 0;
            for (; m < rows; m += kMaxRows) {
                Int8QuadProduct tile = whole.from_row(m0 + m);
                tile.panels = whole.panels + p * panel_stride;
                float* c = C + (m0 + m) * ldc + column0;
                const int64_t height = rows - m < kMaxRows ? rows - m : kMaxRows;
                int8_row_pairs_gemm_rows<kMaxSlots>(height, tile, column0, panel_init, c, ldc, N - column0);
            }
        }
    }
}

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
