// The small-batch LSTM step with look-ahead input projection (see kernels.h for the contract), written once over
// the Simd interface and compiled per ISA. Include after lstm_step-inl.h.
//
// The step takes the recurrent weights kPanels panels at a time (a "slot", all batch rows at once), and slot s
// also computes piece ahead.piece_begin + s, if there is one, in the same loop over k. Per k the slot loads
// 4 * kPanels recurrent weight vectors, each feeding one multiply-add per batch row, and one input-weight vector,
// feeding one multiply-add per row of the piece: the piece's multiply-adds fill the FMA cycles that the recurrent
// loads leave idle. Both sums keep the order of the kernels they stand in for (one chain per element, k ascending,
// from gates_in and from the bias respectively), so the results are bitwise those of lstm_step and gemm_panels.
// Pieces beyond the last slot run on their own.

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

// A piece (kernels.h) with its column in the gate panels and its input weights.
struct LookAheadPiece {
    int64_t first_row;
    int64_t rows;
    int64_t column;
    const float* weights;
};

inline LookAheadPiece look_ahead_piece(const LstmStepArgs& a, const LookAheadProjection& ahead, int64_t piece) {
    constexpr int64_t L = Simd::kLanes;
    constexpr int64_t kWidth = 4 * L;
    const LookAheadPieceSpot spot = look_ahead_piece_spot(a, ahead, piece);
    return {spot.first_row, spot.rows, spot.panel * kWidth + spot.gate * L,
            ahead.input_panels + spot.panel * ahead.input_size * kWidth + spot.gate * L};
}

// kPanels recurrent panels from `panel` for kRows batch rows (kPanels = 0: none), and a piece of kPieceRows rows.
template <int kRows, int kPanels, int kPieceRows>
inline void lstm_slot_with_piece(const LstmStepArgs& a, const LookAheadProjection& ahead, int64_t panel,
                                 const LookAheadPiece& spot) {
    constexpr int64_t L = Simd::kLanes;
    constexpr int64_t kWidth = 4 * L;
    constexpr int kSlotPanels = kPanels > 0 ? kPanels : 1;  // array extent; unused when kPanels = 0
    const int64_t recurrent_k = kPanels > 0 ? a.recurrent_size : 0;
    const int64_t input_k = ahead.input_size;
    const float* recurrent = a.recurrent_panels + panel * a.recurrent_size * kWidth;
    const float* x = ahead.x + spot.first_row * ahead.x_stride;
    const float* x_by_k = kRows == 2 ? ahead.x_by_k + spot.first_row * ahead.input_size : nullptr;  // its group

    V acc[kRows][kSlotPanels][4];
    if constexpr (kPanels > 0)
        for (int r = 0; r < kRows; ++r)
            for (int p = 0; p < kPanels; ++p)
                for (int g = 0; g < 4; ++g)
                    acc[r][p][g] = Simd::load(a.gates_in + r * a.gates_in_stride + (panel + p) * kWidth + g * L);
    V part[kPieceRows];
    for (int r = 0; r < kPieceRows; ++r) part[r] = Simd::load(ahead.bias + spot.column);

    auto recurrent_k_step = [&](int64_t k) {
        if constexpr (kPanels > 0) {
            V h[kRows];
            for (int r = 0; r < kRows; ++r) h[r] = Simd::set1(a.h_prev[r * a.h_prev_stride + k]);
            for (int p = 0; p < kPanels; ++p)
                for (int g = 0; g < 4; ++g) {
                    V w = Simd::load(recurrent + p * recurrent_k * kWidth + k * kWidth + g * L);
                    if constexpr (kRows > 1) w = Simd::pinned(w);  // loaded once for all rows
                    for (int r = 0; r < kRows; ++r) acc[r][p][g] = Simd::fmadd(h[r], w, acc[r][p][g]);
                }
        }
    };
    auto piece_k_step = [&](int64_t k) {
        const V w = Simd::pinned(Simd::load(spot.weights + k * kWidth));  // loaded once for all rows
        if constexpr (kRows == 2) {  // see kernels.h: x_by_k
            const float* x_k = x_by_k + k * kLookAheadPieceRows;
            for (int r = 0; r < kPieceRows; ++r) part[r] = Simd::fmadd(Simd::set1(x_k[r]), w, part[r]);
        } else {
            for (int r = 0; r < kPieceRows; ++r)
                part[r] = Simd::fmadd(Simd::set1(x[r * ahead.x_stride + k]), w, part[r]);
        }
    };
    const int64_t shared_k = recurrent_k < input_k ? recurrent_k : input_k;
    int64_t k = 0;
    for (; k < shared_k; ++k) {
        recurrent_k_step(k);
        piece_k_step(k);
    }
    for (int64_t kr = k; kr < recurrent_k; ++kr) recurrent_k_step(kr);
    for (int64_t ki = k; ki < input_k; ++ki) piece_k_step(ki);

    for (int r = 0; r < kPieceRows; ++r)
        Simd::store(ahead.gates_in + (spot.first_row + r) * ahead.gates_in_stride + spot.column, part[r]);
    if constexpr (kPanels > 0)
        for (int r = 0; r < kRows; ++r)
            for (int p = 0; p < kPanels; ++p) finish_cells(a, acc[r][p], r, panel + p);
}

// The same for a piece of exactly spot.rows rows (1 .. kPieceRows), found by counting down.
template <int kRows, int kPanels, int kPieceRows>
inline void lstm_slot_with_piece_rows(const LstmStepArgs& a, const LookAheadProjection& ahead, int64_t panel,
                                      const LookAheadPiece& spot) {
    if (spot.rows == kPieceRows)
        lstm_slot_with_piece<kRows, kPanels, kPieceRows>(a, ahead, panel, spot);
    else if constexpr (kPieceRows > 1)
        lstm_slot_with_piece_rows<kRows, kPanels, kPieceRows - 1>(a, ahead, panel, spot);
}

template <int kRows, int kPanels, int kPieceRows>
inline void lstm_step_look_ahead_rows(const LstmStepArgs& a, const LookAheadProjection& ahead) {
    static_assert(kPieceRows == kLookAheadPieceRows, "the driver counts pieces of these rows");
    int64_t piece = ahead.piece_begin;
    for (int64_t panel = a.panel_begin; panel < a.panel_end; panel += kPanels) {
        const bool whole = a.panel_end - panel >= kPanels;
        if (piece < ahead.piece_end) {
            const LookAheadPiece spot = look_ahead_piece(a, ahead, piece++);
            if (whole)
                lstm_slot_with_piece_rows<kRows, kPanels, kPieceRows>(a, ahead, panel, spot);
            else
                lstm_slot_with_piece_rows<kRows, 1, kPieceRows>(a, ahead, panel, spot);
        } else if (whole) {
            lstm_step_tile<kRows, kPanels>(a, f32_recurrent_product(a), panel, 0);
        } else {
            lstm_step_tile<kRows, 1>(a, f32_recurrent_product(a), panel, 0);
        }
    }
    for (; piece < ahead.piece_end; ++piece)
        lstm_slot_with_piece_rows<kRows, 0, kPieceRows>(a, ahead, 0, look_ahead_piece(a, ahead, piece));
}

// Batch 1 in slots of kPanelsOneRow panels; batch 2 (when kMaxBatch allows) in slots of one panel.
template <int kPanelsOneRow, int kMaxBatch>
inline void lstm_step_look_ahead(const LstmStepArgs& a, const LookAheadProjection& ahead) {
    if constexpr (kMaxBatch >= 2)
        if (a.batch == 2) return lstm_step_look_ahead_rows<2, 1, kLookAheadPieceRows>(a, ahead);
    lstm_step_look_ahead_rows<1, kPanelsOneRow, kLookAheadPieceRows>(a, ahead);
}

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
