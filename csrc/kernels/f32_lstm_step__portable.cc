// Portable fused LSTM step: the reference path of the recurrent kernel, always compiled.
// For one panel of kHiddenBlock hidden units and a block of batch rows, the four gate pre-activations are
// accumulated in a local array, then activated and folded into c and h before the next panel: the 4H gate values
// never go back to memory.
#include <algorithm>

#include "f32_activations_portable.h"
#include "fastlstm/kernels.h"

namespace fastlstm {
namespace {

constexpr int64_t kHiddenBlock = 8;  // must match the hidden_block of the portable row in variants.inc
constexpr int64_t kPanelWidth = 4 * kHiddenBlock;
constexpr int64_t kRows = 4;

// The cell update with options (kernels.h: CellOptions) for `units` units from unit0 of one row.
void finish_cells_with_options(const LstmStepArgs& a, const float* z, float* c, float* h_out, int64_t unit0,
                               int64_t units) {
    const CellOptions& o = *a.options;
    auto clipped = [&](float x) { return o.clip > 0 ? std::max(-o.clip, std::min(o.clip, x)) : x; };
    for (int64_t u = 0; u < units; ++u) {
        const float* peephole = o.peepholes ? o.peepholes + unit0 + u : nullptr;
        float z_i = z[0 * kHiddenBlock + u], z_f = z[1 * kHiddenBlock + u], z_o = z[3 * kHiddenBlock + u];
        if (peephole) {
            z_i += peephole[0] * c[u];
            z_f += peephole[a.hidden_size] * c[u];
        }
        const float input_gate = f32_activate_portable(o.gate, clipped(z_i));
        const float forget_gate = o.input_forget ? 1.0f - input_gate : f32_activate_portable(o.gate, clipped(z_f));
        const float candidate = f32_activate_portable(o.candidate, clipped(z[2 * kHiddenBlock + u]));
        c[u] = forget_gate * c[u] + input_gate * candidate;
        if (peephole) z_o += peephole[2 * a.hidden_size] * c[u];
        h_out[u] = f32_activate_portable(o.gate, clipped(z_o)) * f32_activate_portable(o.output, c[u]);
    }
}

template <int64_t kBlockRows>
void step_rows(const LstmStepArgs& a, int64_t panel_index, int64_t row) {
    const int64_t K = a.recurrent_size;
    const float* panel = a.recurrent_panels + panel_index * K * kPanelWidth;
    const int64_t unit0 = panel_index * kHiddenBlock;
    const int64_t units = std::min(kHiddenBlock, a.hidden_size - unit0);

    float z[kBlockRows][kPanelWidth];
    for (int64_t r = 0; r < kBlockRows; ++r) {
        const float* gates_in = a.gates_in + (row + r) * a.gates_in_stride + panel_index * kPanelWidth;
        for (int64_t j = 0; j < kPanelWidth; ++j) z[r][j] = gates_in[j];
    }
    for (int64_t k = 0; k < K; ++k) {
        const float* w = panel + k * kPanelWidth;
        for (int64_t r = 0; r < kBlockRows; ++r) {
            const float h = a.h_prev[(row + r) * a.h_prev_stride + k];
            for (int64_t j = 0; j < kPanelWidth; ++j) z[r][j] += h * w[j];
        }
    }
    for (int64_t r = 0; r < kBlockRows; ++r) {
        float* c = a.c + (row + r) * a.c_stride + unit0;
        float* h_out = a.h_out + (row + r) * a.h_out_stride + unit0;
        if (a.options) {
            finish_cells_with_options(a, z[r], c, h_out, unit0, units);
            continue;
        }
        for (int64_t u = 0; u < units; ++u) {
            const float input_gate = f32_sigmoid_portable(z[r][0 * kHiddenBlock + u]);
            const float forget_gate = f32_sigmoid_portable(z[r][1 * kHiddenBlock + u]);
            const float candidate = f32_tanh_portable(z[r][2 * kHiddenBlock + u]);
            const float output_gate = f32_sigmoid_portable(z[r][3 * kHiddenBlock + u]);
            c[u] = forget_gate * c[u] + input_gate * candidate;
            h_out[u] = output_gate * f32_tanh_portable(c[u]);
        }
    }
}

}  // namespace

void f32_lstm_step__portable(const LstmStepArgs& a) {
    for (int64_t p = a.panel_begin; p < a.panel_end; ++p) {
        int64_t row = 0;
        for (; row + kRows <= a.batch; row += kRows) step_rows<kRows>(a, p, row);
        for (; row < a.batch; ++row) step_rows<1>(a, p, row);
    }
}

// The reference of the look-ahead step: the step, then the pieces one by one, each element summed as
// f32_gemm_panels__portable sums it (from the bias, k ascending), so the results are the same bitwise.
void f32_lstm_step_look_ahead__portable(const LstmStepArgs& a, const LookAheadProjection& ahead) {
    f32_lstm_step__portable(a);
    for (int64_t piece = ahead.piece_begin; piece < ahead.piece_end; ++piece) {
        const LookAheadPieceSpot spot = look_ahead_piece_spot(a, ahead, piece);
        const int64_t column = spot.panel * kPanelWidth + spot.gate * kHiddenBlock;
        const float* weights =
            ahead.input_panels + spot.panel * ahead.input_size * kPanelWidth + spot.gate * kHiddenBlock;
        for (int64_t r = spot.first_row; r < spot.first_row + spot.rows; ++r) {
            float part[kHiddenBlock];
            for (int64_t j = 0; j < kHiddenBlock; ++j) part[j] = ahead.bias[column + j];
            for (int64_t k = 0; k < ahead.input_size; ++k) {
                const float x = ahead.x[r * ahead.x_stride + k];
                for (int64_t j = 0; j < kHiddenBlock; ++j) part[j] += x * weights[k * kPanelWidth + j];
            }
            for (int64_t j = 0; j < kHiddenBlock; ++j) ahead.gates_in[r * ahead.gates_in_stride + column + j] = part[j];
        }
    }
}

}  // namespace fastlstm
