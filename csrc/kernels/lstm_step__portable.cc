// Portable fused LSTM step, in precision f32 and bf16: the reference path of the recurrent kernel, always compiled.
// For one panel of kHiddenBlock hidden units and a block of batch rows, the four gate pre-activations are
// accumulated in a local array, then activated and folded into c and h before the next panel: the 4H gate values
// never go back to memory.
#include <algorithm>
#include <type_traits>

#include "bf16__portable.h"
#include "f32_tile__portable.h"
#include "f32_activations__portable.h"
#include "fastlstm/bf16.h"
#include "fastlstm/int8.h"
#include "variants.h"

namespace fastlstm {
namespace {

constexpr int64_t kHiddenBlock = 8;
static_assert(kHiddenBlock == kVariant_portable.hidden_block, "variants.inc: the portable row's hidden_block");
constexpr int64_t kPanelWidth = 4 * kHiddenBlock;
// Batch rows per block in bf16 and int8 (float32 takes the tile's, f32_tile__portable.h).
constexpr int64_t kRows = 4;

using portable::widen_bf16;

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

// The standard cell update for the `units` (at most kHiddenBlock) units of one row of a panel. It works on all
// kHiddenBlock lanes of local copies, a fixed count, so that the compiler vectorizes the activations; the lanes past
// `units` (a last, partial panel) compute on zeros and are not stored.
void finish_cells(const float* z, float* c, float* h_out, int64_t units) {
    float input_gate[kHiddenBlock], forget_gate[kHiddenBlock], candidate[kHiddenBlock], output_gate[kHiddenBlock];
    for (int64_t u = 0; u < kHiddenBlock; ++u) {
        input_gate[u] = f32_sigmoid_portable(z[0 * kHiddenBlock + u]);
        forget_gate[u] = f32_sigmoid_portable(z[1 * kHiddenBlock + u]);
        candidate[u] = f32_tanh_portable(z[2 * kHiddenBlock + u]);
        output_gate[u] = f32_sigmoid_portable(z[3 * kHiddenBlock + u]);
    }
    float cell[kHiddenBlock] = {}, hidden[kHiddenBlock];
    for (int64_t u = 0; u < units; ++u) cell[u] = c[u];
    for (int64_t u = 0; u < kHiddenBlock; ++u) {
        cell[u] = forget_gate[u] * cell[u] + input_gate[u] * candidate[u];
        hidden[u] = output_gate[u] * f32_tanh_portable(cell[u]);
    }
    for (int64_t u = 0; u < units; ++u) {
        c[u] = cell[u];
        h_out[u] = hidden[u];
    }
}

// The recurrent product's operands in precision f32: weights and h_prev float32, one k per depth step.
struct F32Product {
    const float* panels;
    const float* rows;
    int64_t row_stride;
    int64_t depth;

    static constexpr int64_t kRowsPerBlock = portable::kTileRows;

    // z[r][j] += (h of row + r) . panel column j, for the kPanelWidth columns of panel `panel_index`, in the tile of
    // f32_tile__portable.h: each weight loaded once for the kBlockRows rows.
    template <int64_t kBlockRows>
    void accumulate(float (*z)[kPanelWidth], int64_t panel_index, int64_t row) const {
        portable::f32_panel_accumulate<kBlockRows, kPanelWidth>(
            depth, rows + row * row_stride, row_stride, panels + panel_index * depth * kPanelWidth, z[0], kPanelWidth);
    }
};

// Precision bf16 (kernels.h): pair panels and h rounded to bf16, one pair of k per depth step, the even product
// added first. Each product of two bf16 values is exact in float32.
struct BF16PairProduct {
    const uint32_t* panels;
    const uint16_t* rows;
    int64_t row_stride;
    int64_t depth;
    static constexpr int64_t kRowsPerBlock = kRows;

    template <int64_t kBlockRows>
    void accumulate(float (*z)[kPanelWidth], int64_t panel_index, int64_t row) const {
        const uint32_t* panel = panels + panel_index * depth * kPanelWidth;
        for (int64_t pair = 0; pair < depth; ++pair)
            for (int64_t r = 0; r < kBlockRows; ++r) {
                const uint16_t* h = rows + (row + r) * row_stride + 2 * pair;
                const float h_even = widen_bf16(h[0]), h_odd = widen_bf16(h[1]);
                for (int64_t j = 0; j < kPanelWidth; ++j) {
                    const uint32_t word = panel[pair * kPanelWidth + j];
                    z[r][j] += h_even * widen_bf16(word & 0xFFFFu);
                    z[r][j] += h_odd * widen_bf16(word >> 16);
                }
            }
    }
};

// Precision int8 (kernels.h): quad panels and rows of q + 128, one quad of k per depth step, summed exactly in
// int32, then scaled back and added: z += float(sum - offset) * (row scale * column scale).
struct Int8QuadProduct {
    Int8Panels weights;
    const uint8_t* rows;
    int64_t row_stride;
    int64_t depth;
    const float* row_scales;
    static constexpr int64_t kRowsPerBlock = kRows;

    template <int64_t kBlockRows>
    void accumulate(float (*z)[kPanelWidth], int64_t panel_index, int64_t row) const {
        const uint32_t* panel = weights.quads + panel_index * depth * kPanelWidth;
        int32_t sums[kBlockRows][kPanelWidth] = {};
        for (int64_t quad = 0; quad < depth; ++quad)
            for (int64_t r = 0; r < kBlockRows; ++r) {
                const uint8_t* a = rows + (row + r) * row_stride + 4 * quad;
                for (int64_t j = 0; j < kPanelWidth; ++j) {
                    const uint32_t word = panel[quad * kPanelWidth + j];
                    int32_t sum = 0;
                    for (int byte = 0; byte < 4; ++byte)
                        sum += static_cast<int32_t>(a[byte]) * static_cast<int8_t>(word >> (8 * byte) & 0xFFu);
                    sums[r][j] += sum;
                }
            }
        const int64_t column0 = panel_index * kPanelWidth;
        for (int64_t r = 0; r < kBlockRows; ++r)
            for (int64_t j = 0; j < kPanelWidth; ++j) {
                const float value = static_cast<float>(sums[r][j] - weights.offsets[column0 + j]);
                z[r][j] += value * (row_scales[row + r] * weights.scales[column0 + j]);
            }
    }
};

template <int64_t kBlockRows, class Product>
void step_rows(const LstmStepArgs& a, const Product& product, int64_t panel_index, int64_t row) {
    const int64_t unit0 = panel_index * kHiddenBlock;
    const int64_t units = std::min(kHiddenBlock, a.hidden_size - unit0);

    float z[kBlockRows][kPanelWidth];
    auto start_from = [&](const float* first, int64_t row_stride) {
        for (int64_t r = 0; r < kBlockRows; ++r)
            for (int64_t j = 0; j < kPanelWidth; ++j) z[r][j] = first[r * row_stride + j];
    };
    auto start_from_gates_in = [&] {
        start_from(a.gates_in + row * a.gates_in_stride + panel_index * kPanelWidth, a.gates_in_stride);
    };
    if constexpr (std::is_same_v<Product, F32Product>) {
        if (a.x) {  // kernels.h: from the bias, through x . w_ih, then on through h_prev . w_hh
            start_from(a.bias + panel_index * kPanelWidth, 0);
            F32Product{a.input_panels, a.x, a.x_stride, a.input_size}.template accumulate<kBlockRows>(z, panel_index,
                                                                                                      row);
        } else {
            start_from_gates_in();
        }
    } else {
        start_from_gates_in();
    }
    product.template accumulate<kBlockRows>(z, panel_index, row);
    for (int64_t r = 0; r < kBlockRows; ++r) {
        float* c = a.c + (row + r) * a.c_stride + unit0;
        float* h_out = a.h_out + (row + r) * a.h_out_stride + unit0;
        if (a.options) {
            finish_cells_with_options(a, z[r], c, h_out, unit0, units);
            continue;
        }
        finish_cells(z[r], c, h_out, units);
    }
}

template <class Product>
void step(const LstmStepArgs& a, const Product& product) {
    constexpr int64_t kBlock = Product::kRowsPerBlock;
    for (int64_t i = a.panel_begin; i < a.panel_end; ++i) {
        const int64_t p = a.panels_descending ? a.panel_end - 1 - (i - a.panel_begin) : i;
        int64_t row = 0;
        for (; row + kBlock <= a.batch; row += kBlock) step_rows<kBlock>(a, product, p, row);
        for (; row < a.batch; ++row) step_rows<1>(a, product, p, row);
    }
}

}  // namespace

void f32_lstm_step__portable(const LstmStepArgs& a) {
    step(a, F32Product{a.recurrent_panels, a.h_prev, a.h_prev_stride, a.recurrent_size});
}

void bf16_lstm_step__portable(const LstmStepArgs& a) {
    const int64_t stride = (a.recurrent_size + 1) / 2 * 2;
    if (a.recurrent_size > 0)
        round_rows_to_bf16(a.batch, a.recurrent_size, a.h_prev, a.h_prev_stride, a.h_bf16, stride);
    step(a, BF16PairProduct{a.recurrent_pairs, a.h_bf16, stride, stride / 2});
}

void int8_lstm_step__portable(const LstmStepArgs& a) {
    const int64_t stride = (a.recurrent_size + 3) / 4 * 4;
    if (a.recurrent_size > 0)
        quantize_rows_to_uint8(a.batch, a.recurrent_size, a.h_prev, a.h_prev_stride, a.h_uint8, stride, a.h_scales);
    else  // no product (a zero state): scale 0 also cancels the offsets, which assume K bytes of 128
        for (int64_t r = 0; r < a.batch; ++r) a.h_scales[r] = 0.0f;
    step(a, Int8QuadProduct{a.recurrent_int8, a.h_uint8, stride, stride / 4, a.h_scales});
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

// The reference of the bf16 look-ahead step: the bf16 step, then the pieces one by one, each element summed as
// bf16_gemm_panels__portable sums it (from the bias, pairs ascending, the even product first).
void bf16_lstm_step_look_ahead__portable(const LstmStepArgs& a, const LookAheadProjection& ahead) {
    bf16_lstm_step__portable(a);
    const int64_t pairs = (ahead.input_size + 1) / 2;
    for (int64_t piece = ahead.piece_begin; piece < ahead.piece_end; ++piece) {
        const LookAheadPieceSpot spot = look_ahead_piece_spot(a, ahead, piece);
        const int64_t column = spot.panel * kPanelWidth + spot.gate * kHiddenBlock;
        const uint32_t* weights = ahead.input_pairs + spot.panel * pairs * kPanelWidth + spot.gate * kHiddenBlock;
        for (int64_t r = spot.first_row; r < spot.first_row + spot.rows; ++r) {
            const uint16_t* x = ahead.x_bf16 + r * ahead.x_bf16_stride;
            float part[kHiddenBlock];
            for (int64_t j = 0; j < kHiddenBlock; ++j) part[j] = ahead.bias[column + j];
            for (int64_t pair = 0; pair < pairs; ++pair)
                for (int64_t j = 0; j < kHiddenBlock; ++j) {
                    const uint32_t word = weights[pair * kPanelWidth + j];
                    part[j] += widen_bf16(x[2 * pair]) * widen_bf16(word & 0xFFFFu);
                    part[j] += widen_bf16(x[2 * pair + 1]) * widen_bf16(word >> 16);
                }
            for (int64_t j = 0; j < kHiddenBlock; ++j) ahead.gates_in[r * ahead.gates_in_stride + column + j] = part[j];
        }
    }
}

}  // namespace fastlstm
