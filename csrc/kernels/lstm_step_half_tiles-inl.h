// The float32 step in tiles of half a panel, for variants whose Simd asks for them (Simd::kHalfTileMaxRows > 0:
// AVX2) and whose gate panels are stored in halves (kernels.h; variants.inc: gate halves).
//
// A full tile (lstm_step_tile) holds the 4 gate vectors of each of its rows, so AVX2's 16 vector registers hold at
// most 3 rows, and each weight vector loaded feeds 2 or 3 multiply-adds (B = 4 runs as 2 + 2 rows, B = 5 as 2 + 3).
// A half tile holds 2 gate vectors a row (gates i and f, then g and o: one contiguous half of the panel each) for
// up to 6 rows, 12 accumulators, each weight vector feeding 4 to 6 multiply-adds. The first half's sums wait in
// registers or on the stack while the second half runs; then the cells are finished as in lstm_step_tile. Each
// element is still one chain (its start, the fused input's k ascending, then the recurrent k ascending), so the sums
// are bitwise those of lstm_step_tile, whatever the tile.
// Included by lstm_step-inl.h after the products and the cell finishes (lstm_cell_finish-inl.h), which this file
// uses.

#pragma once

#include <cstdint>

#include "fastlstm/kernels.h"

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

// A block of fewer rows would hold fewer than 8 accumulators in a half tile, too few independent chains for two
// multiply-add pipes of 4 cycles' latency: it takes the full tile (B = 7 runs as 3 rows full + 4 rows half).
constexpr int kHalfTileMinRows = 4;

// The sums of gates 2 * half and 2 * half + 1 of rows [row, row + kRows) and panel `panel`, into `sums`. The
// accumulators are local until the end: summed into the caller's array directly, GCC kept them in memory (a store
// per multiply-add).
template <int kRows>
inline void half_tile_sums(const LstmStepArgs& a, const F32Product& recurrent, int64_t panel, int half, int64_t row,
                           V (&sums)[kRows][2]) {
    constexpr int64_t L = Simd::kLanes;
    constexpr int64_t kWidth = 4 * L;
    V acc[kRows][2];
    for (int r = 0; r < kRows; ++r)
        for (int v = 0; v < 2; ++v) {
            const int64_t column = panel * kWidth + (2 * half + v) * L;
            acc[r][v] = a.x ? Simd::load(a.bias + column)  // kernels.h: the fused input starts from the bias
                            : Simd::load(a.gates_in + (row + r) * a.gates_in_stride + column);
        }
    auto multiply_add = [&](const F32Product& product) {
        const float* weights = product.panels + panel * product.depth * kWidth + half * product.depth * 2 * L;
        for (int64_t k = 0; k < product.depth; ++k) {
            const V w0 = Simd::pinned(Simd::load(weights + k * 2 * L));  // loaded once for all rows
            const V w1 = Simd::pinned(Simd::load(weights + k * 2 * L + L));
            for (int r = 0; r < kRows; ++r) {
                const V h = product.operand(row + r, k);
                acc[r][0] = Simd::fmadd(h, w0, acc[r][0]);
                acc[r][1] = Simd::fmadd(h, w1, acc[r][1]);
            }
        }
    };
    if (a.x) multiply_add(F32Product{{}, a.input_panels, a.x, a.x_stride, a.input_size});
    multiply_add(recurrent);
    for (int r = 0; r < kRows; ++r)
        for (int v = 0; v < 2; ++v) sums[r][v] = acc[r][v];
}

template <int kRows, bool kOptions>
inline void lstm_step_half_tile(const LstmStepArgs& a, const F32Product& recurrent, int64_t panel, int64_t row) {
    V first[kRows][2], second[kRows][2];
    half_tile_sums(a, recurrent, panel, 0, row, first);
    half_tile_sums(a, recurrent, panel, 1, row, second);
    V z[kRows][4];
    int64_t rows[kRows], panels[kRows];
    for (int r = 0; r < kRows; ++r) {
        z[r][0] = first[r][0];
        z[r][1] = first[r][1];
        z[r][2] = second[r][0];
        z[r][3] = second[r][1];
        rows[r] = row + r;
        panels[r] = panel;
    }
    if constexpr (kOptions) {
        for (int r = 0; r < kRows; ++r) finish_cells_with_options(a, z[r], row + r, panel);
    } else if constexpr (Simd::kFinishCellsTogether) {
        finish_cells_together(a, z, rows, panels);
    } else {
        for (int r = 0; r < kRows; ++r) finish_cells(a, z[r], row + r, panel);
    }
}

// The half tile of exactly `rows` rows (kHalfTileMinRows <= rows <= kMaxRows), found by counting down.
template <int kMaxRows, bool kOptions>
inline void lstm_step_half_tile_rows(const LstmStepArgs& a, const F32Product& recurrent, int64_t panel, int64_t row,
                                     int64_t rows) {
    if (rows == kMaxRows)
        lstm_step_half_tile<kMaxRows, kOptions>(a, recurrent, panel, row);
    else if constexpr (kMaxRows > kHalfTileMinRows)
        lstm_step_half_tile_rows<kMaxRows - 1, kOptions>(a, recurrent, panel, row, rows);
}

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
