// The small-batch LSTM step with look-ahead input projection (see kernels.h for the contract), written once over
// the Simd interface and the products of lstm_step-inl.h (precision f32, and bf16 at batch 1), compiled per ISA.
// Compiled through a variant's entry file (variant__<isa>.cc), which includes that ISA's simd__<isa>.h and
// defines FASTLSTM_ISA_NAMESPACE, the namespace of everything below.
//
// The step takes the recurrent weights kPanels panels at a time (a "slot", all batch rows at once), and slot s
// also computes piece ahead.piece_begin + s, if there is one, in the same loop over k. Per k the slot loads
// 4 * kPanels recurrent weight vectors, each feeding one multiply-add per batch row, and one input-weight vector,
// feeding one multiply-add per row of the piece: the piece's multiply-adds fill the FMA cycles that the recurrent
// loads leave idle. Both sums keep the order of the kernels they stand in for (one chain per element, k ascending,
// from gates_in and from the bias respectively), so the results are bitwise those of lstm_step and gemm_panels.
// Pieces beyond the last slot run on their own.

#pragma once

#ifndef FASTLSTM_ISA_NAMESPACE
#error "compile this header through a variant's entry file (variant__<isa>.cc), which defines FASTLSTM_ISA_NAMESPACE"
#endif

#include <cstdint>
#include <type_traits>

#include "fastlstm/kernels.h"
#include "lstm_step-inl.h"

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

// How far ahead (in k, a cache line each) a piece asks for its input weights when it streams them
// (LookAheadProjection::stream_input_weights).
constexpr int64_t kStreamAhead = 16;

// The product of one piece (kernels.h): `whole` describes the input weights of all panels and the upcoming rows;
// the piece takes one gate of one panel over its rows.
template <class Product>
inline Product piece_product(Product whole, const LookAheadPieceSpot& spot) {
    whole.panels += (spot.panel * whole.depth * 4 + spot.gate) * Simd::kLanes;
    return whole.from_row(spot.first_row);
}

// kPanels recurrent panels from `panel` for kRows batch rows (kPanels = 0: none), and a piece of kPieceRows rows.
// `recurrent` and `inputs` are the step's and the input projection's products (lstm_step-inl.h), of one precision.
template <int kRows, int kPanels, int kPieceRows, class Recurrent, class Inputs>
inline void lstm_slot_with_piece(const LstmStepArgs& a, const LookAheadProjection& ahead, const Recurrent& recurrent,
                                 const Inputs& inputs, int64_t panel, const LookAheadPieceSpot& spot) {
    constexpr int64_t L = Simd::kLanes;
    constexpr int64_t kWidth = 4 * L;
    constexpr int kSlotPanels = kPanels > 0 ? kPanels : 1;  // array extent; unused when kPanels = 0
    const int64_t recurrent_depth = kPanels > 0 ? recurrent.depth : 0;
    const Inputs piece = piece_product(inputs, spot);
    const int64_t column = spot.panel * kWidth + spot.gate * L;
    const auto* recurrent_weights = recurrent.panels + panel * recurrent.depth * kWidth;
    const float* x_by_k = kRows == 2 ? ahead.x_by_k + spot.first_row * ahead.input_size : nullptr;  // its group

    auto gates_in = [&](int r, int p, int g) {
        return a.gates_in + r * a.gates_in_stride + (panel + p) * kWidth + g * L;
    };
    typename Recurrent::Accumulator acc[kRows][kSlotPanels][4];
    if constexpr (kPanels > 0)
        for (int r = 0; r < kRows; ++r)
            for (int p = 0; p < kPanels; ++p)
                for (int g = 0; g < 4; ++g) acc[r][p][g] = recurrent.start(gates_in(r, p, g));
    typename Inputs::Accumulator part[kPieceRows];
    for (int r = 0; r < kPieceRows; ++r) part[r] = piece.start(ahead.bias + column);

    auto recurrent_step = [&](int64_t k) {
        if constexpr (kPanels > 0) {
            decltype(recurrent.operand(0, 0)) h[kRows];
            for (int r = 0; r < kRows; ++r) h[r] = recurrent.operand(r, k);
            for (int p = 0; p < kPanels; ++p)
                for (int g = 0; g < 4; ++g) {
                    auto w = Recurrent::load(recurrent_weights + p * recurrent_depth * kWidth + k * kWidth + g * L);
                    if constexpr (kRows > 1) w = Recurrent::pinned(w);  // loaded once for all rows
                    for (int r = 0; r < kRows; ++r) acc[r][p][g] = Recurrent::madd(acc[r][p][g], w, h[r]);
                }
        }
    };
    auto piece_step = [&](int64_t k) {
        if constexpr (std::is_same_v<Inputs, F32Product>)
            if (ahead.stream_input_weights && k + kStreamAhead < piece.depth)
                Simd::prefetch_once(piece.panels + (k + kStreamAhead) * kWidth);
        const auto w = Inputs::pinned(Inputs::load(piece.panels + k * kWidth));  // loaded once for all rows
        if constexpr (kRows == 2) {  // see kernels.h: x_by_k (precision f32)
            const float* x_k = x_by_k + k * kLookAheadPieceRows;
            for (int r = 0; r < kPieceRows; ++r) part[r] = Simd::fmadd(Simd::set1(x_k[r]), w, part[r]);
        } else {
            for (int r = 0; r < kPieceRows; ++r) part[r] = Inputs::madd(part[r], w, piece.operand(r, k));
        }
    };
    const int64_t shared_depth = recurrent_depth < piece.depth ? recurrent_depth : piece.depth;
    int64_t k = 0;
    for (; k < shared_depth; ++k) {
        recurrent_step(k);
        piece_step(k);
    }
    for (int64_t kr = k; kr < recurrent_depth; ++kr) recurrent_step(kr);
    for (int64_t ki = k; ki < piece.depth; ++ki) piece_step(ki);

    for (int r = 0; r < kPieceRows; ++r)
        Simd::store(ahead.gates_in + (spot.first_row + r) * ahead.gates_in_stride + column,
                    piece.finish(part[r], ahead.bias + column, r, column));
    if constexpr (kPanels > 0)
        for (int r = 0; r < kRows; ++r)
            for (int p = 0; p < kPanels; ++p) {
                if constexpr (std::is_same_v<typename Recurrent::Accumulator, V>) {
                    finish_cells(a, acc[r][p], r,
                                 panel + p);  // float sums are the pre-activations already (see lstm_step_tile)
                } else {
                    V z[4];
                    for (int g = 0; g < 4; ++g)
                        z[g] = recurrent.finish(acc[r][p][g], gates_in(r, p, g), r, (panel + p) * kWidth + g * L);
                    finish_cells(a, z, r, panel + p);
                }
            }
}

// The same for a piece of exactly spot.rows rows (1 .. kPieceRows), found by counting down.
template <int kRows, int kPanels, int kPieceRows, class Recurrent, class Inputs>
inline void lstm_slot_with_piece_rows(const LstmStepArgs& a, const LookAheadProjection& ahead,
                                      const Recurrent& recurrent, const Inputs& inputs, int64_t panel,
                                      const LookAheadPieceSpot& spot) {
    if (spot.rows == kPieceRows)
        lstm_slot_with_piece<kRows, kPanels, kPieceRows>(a, ahead, recurrent, inputs, panel, spot);
    else if constexpr (kPieceRows > 1)
        lstm_slot_with_piece_rows<kRows, kPanels, kPieceRows - 1>(a, ahead, recurrent, inputs, panel, spot);
}

template <int kRows, int kPanels, int kPieceRows, class Recurrent, class Inputs>
inline void lstm_step_look_ahead_rows(const LstmStepArgs& a, const LookAheadProjection& ahead,
                                      const Recurrent& recurrent, const Inputs& inputs) {
    static_assert(kPieceRows == kLookAheadPieceRows, "the driver counts pieces of these rows");
    // The layer's last panel, compacted (lstm_step-inl.h: takes_compact_tail), from gates_in after the others and
    // without a piece: at batch 1, 0.95x the time at H = 50, 65 and 100, 0.93x at H = 100 on 2 threads, 0.98-0.99x
    // at H = 200 and 250 (AVX-512, ab_compare, 15 rounds).
    const bool compact_tail = takes_compact_tail<Recurrent>(a);
    const int64_t panel_end = compact_tail ? a.panel_end - 1 : a.panel_end;
    int64_t piece = ahead.piece_begin;
    for (int64_t panel = a.panel_begin; panel < panel_end; panel += kPanels) {
        const bool whole = panel_end - panel >= kPanels;
        if (piece < ahead.piece_end) {
            const LookAheadPieceSpot spot = look_ahead_piece_spot(a, ahead, piece++);
            if (whole)
                lstm_slot_with_piece_rows<kRows, kPanels, kPieceRows>(a, ahead, recurrent, inputs, panel, spot);
            else
                lstm_slot_with_piece_rows<kRows, 1, kPieceRows>(a, ahead, recurrent, inputs, panel, spot);
        } else if (whole) {
            lstm_step_tile<kRows, kPanels>(a, recurrent, panel, 0);
        } else {
            lstm_step_tile<kRows, 1>(a, recurrent, panel, 0);
        }
    }
    if constexpr (Simd::kCompactTailVectors > 0 && std::is_same_v<Recurrent, F32Product>)
        if (compact_tail) lstm_step_compact_tail_rows<kRows, false>(a, recurrent, 0, kRows);
    for (; piece < ahead.piece_end; ++piece)
        lstm_slot_with_piece_rows<kRows, 0, kPieceRows>(a, ahead, recurrent, inputs, 0,
                                                        look_ahead_piece_spot(a, ahead, piece));
}

// Batch 1 in slots of kPanelsOneRow panels; batch 2 (when kMaxBatch allows) in slots of one panel.
template <int kPanelsOneRow, int kMaxBatch>
inline void lstm_step_look_ahead(const LstmStepArgs& a, const LookAheadProjection& ahead) {
    const F32Product recurrent = f32_recurrent_product(a);
    const F32Product inputs{{}, ahead.input_panels, ahead.x, ahead.x_stride, ahead.input_size};
    if constexpr (kMaxBatch >= 2)
        if (a.batch == 2) return lstm_step_look_ahead_rows<2, 1, kLookAheadPieceRows>(a, ahead, recurrent, inputs);
    lstm_step_look_ahead_rows<1, kPanelsOneRow, kLookAheadPieceRows>(a, ahead, recurrent, inputs);
}

// Precision bf16, batch 1: h_prev rounded into h_bf16 first; the pieces read the upcoming rows rounded to bf16
// (ahead.x_bf16).
template <int kPanelsOneRow>
inline void bf16_lstm_step_look_ahead(const LstmStepArgs& a, const LookAheadProjection& ahead) {
    const BF16PairProduct recurrent = bf16_recurrent_product(a);
    const BF16PairProduct inputs{{}, ahead.input_pairs, ahead.x_bf16, ahead.x_bf16_stride, (ahead.input_size + 1) / 2};
    lstm_step_look_ahead_rows<1, kPanelsOneRow, kLookAheadPieceRows>(a, ahead, recurrent, inputs);
}

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
