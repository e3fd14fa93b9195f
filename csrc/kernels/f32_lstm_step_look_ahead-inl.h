// The batch-1 LSTM step with look-ahead input projection (see kernels.h for the contract), written once over the
// Simd interface and compiled per ISA. Include after f32_lstm_step-inl.h.
//
// The step takes the recurrent weights kPanels panels at a time (a "slot"), and slot s also computes piece
// ahead.piece_begin + s, if there is one, in the same loop over k. Per k the slot loads 4 * kPanels recurrent
// weight vectors, each feeding one multiply-add, and one input-weight vector, feeding one multiply-add per
// upcoming row: the piece's multiply-adds fill the FMA cycles that the recurrent loads leave idle. Both sums keep
// the order of the kernels they stand in for (one chain per element, k ascending, from gates_in and from the bias
// respectively), so the results are bitwise those of lstm_step and gemm_panels. Pieces beyond the last slot run
// on their own.

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

// kPanels recurrent panels from `panel` (0: none) and one piece of kRows upcoming rows.
template <int kPanels, int kRows>
inline void lstm_slot_with_piece(const LstmStepArgs& a, const LookAheadProjection& ahead, int64_t panel,
                                 int64_t piece) {
    constexpr int64_t L = Simd::kLanes;
    constexpr int64_t kWidth = 4 * L;
    constexpr int kSlotPanels = kPanels > 0 ? kPanels : 1;  // array extent; unused when kPanels = 0
    const int64_t recurrent_k = kPanels > 0 ? a.recurrent_size : 0;
    const int64_t input_k = ahead.input_size;
    const float* recurrent = a.recurrent_panels + panel * a.recurrent_size * kWidth;
    const int64_t piece_panel = a.panel_begin + piece / 4;
    const int64_t column = piece_panel * kWidth + (piece % 4) * L;
    const float* input = ahead.input_panels + piece_panel * input_k * kWidth + (piece % 4) * L;

    V acc[kSlotPanels][4];
    if constexpr (kPanels > 0)
        for (int p = 0; p < kPanels; ++p)
            for (int g = 0; g < 4; ++g) acc[p][g] = Simd::load(a.gates_in + (panel + p) * kWidth + g * L);
    V part[kRows];
    for (int r = 0; r < kRows; ++r) part[r] = Simd::load(ahead.bias + column);

    const int64_t shared_k = recurrent_k < input_k ? recurrent_k : input_k;
    int64_t k = 0;
    for (; k < shared_k; ++k) {
        const V h = Simd::set1(a.h_prev[k]);
        for (int p = 0; p < kPanels; ++p)
            for (int g = 0; g < 4; ++g)
                acc[p][g] = Simd::fmadd(h, Simd::load(recurrent + p * recurrent_k * kWidth + k * kWidth + g * L),
                                        acc[p][g]);
        const V w = Simd::load(input + k * kWidth);
        for (int r = 0; r < kRows; ++r) part[r] = Simd::fmadd(Simd::set1(ahead.x[r * ahead.x_stride + k]), w, part[r]);
    }
    for (int64_t kr = k; kr < recurrent_k; ++kr) {
        const V h = Simd::set1(a.h_prev[kr]);
        for (int p = 0; p < kPanels; ++p)
            for (int g = 0; g < 4; ++g)
                acc[p][g] = Simd::fmadd(h, Simd::load(recurrent + p * recurrent_k * kWidth + kr * kWidth + g * L),
                                        acc[p][g]);
    }
    for (int64_t ki = k; ki < input_k; ++ki) {
        const V w = Simd::load(input + ki * kWidth);
        for (int r = 0; r < kRows; ++r)
            part[r] = Simd::fmadd(Simd::set1(ahead.x[r * ahead.x_stride + ki]), w, part[r]);
    }

    for (int r = 0; r < kRows; ++r) Simd::store(ahead.gates_in + r * ahead.gates_in_stride + column, part[r]);
    if constexpr (kPanels > 0)
        for (int p = 0; p < kPanels; ++p) finish_cells(a, acc[p], 0, panel + p);
}

// The same with exactly ahead.rows rows (1 .. kRows), found by counting down.
template <int kPanels, int kRows = static_cast<int>(kLookAheadSteps)>
inline void lstm_slot_with_piece_rows(const LstmStepArgs& a, const LookAheadProjection& ahead, int64_t panel,
                                      int64_t piece) {
    if (ahead.rows == kRows)
        lstm_slot_with_piece<kPanels, kRows>(a, ahead, panel, piece);
    else if constexpr (kRows > 1)
        lstm_slot_with_piece_rows<kPanels, kRows - 1>(a, ahead, panel, piece);
}

template <int kPanels>
inline void lstm_step_look_ahead(const LstmStepArgs& a, const LookAheadProjection& ahead) {
    int64_t piece = ahead.piece_begin;
    for (int64_t panel = a.panel_begin; panel < a.panel_end; panel += kPanels) {
        const bool whole = a.panel_end - panel >= kPanels;
        const bool with_piece = piece < ahead.piece_end;
        if (with_piece && whole)
            lstm_slot_with_piece_rows<kPanels>(a, ahead, panel, piece);
        else if (with_piece)
            lstm_slot_with_piece_rows<1>(a, ahead, panel, piece);
        else if (whole)
            lstm_step_tile<1, kPanels>(a, panel, 0);
        else
            lstm_step_tile<1, 1>(a, panel, 0);
        if (with_piece) ++piece;
        if (!whole) break;  // the last, partial slot: panel_end - panel < kPanels, all of it done above
    }
    for (; piece < ahead.piece_end; ++piece) lstm_slot_with_piece_rows<0>(a, ahead, 0, piece);
}

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
