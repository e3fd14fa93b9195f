// Kernel interface of the fastlstm core: plain function pointers over raw pointers, sizes and strides.
//
// Every kernel family exists once per instruction set (ISA). The variants are listed in
// csrc/kernels/variants.inc; dispatch, the Python ISA helpers, the tests and the benchmarks all read that table.
//
// Packed weight layout ("gate panels"). A 4H x K weight matrix in PyTorch gate order (rows i, f, g, o) is stored
// as ceil(H / hidden_block) panels. Panel p covers hidden units [p*hidden_block, (p+1)*hidden_block) and holds,
// for every k in [0, K), the 4*hidden_block weights of those units, gate-major:
//     panel[k * 4*hidden_block + gate * hidden_block + u] = W[gate*H + p*hidden_block + u][k]
// Units past H are zero. One panel therefore yields all four gates of a block of hidden units, which is what lets
// the recurrent step apply the activations and the c/h update straight from its accumulators.
// A variant with gate halves (variants.inc; KernelSet::gate_halves) stores each float32 gate panel in two halves
// instead, gates i and f for every k, then gates g and o for every k:
//     panel[((gate / 2) * K + k) * 2*hidden_block + (gate % 2) * hidden_block + u] = W[gate*H + p*hidden_block + u][k]
// so that a tile of half a panel (two gates) reads one contiguous stream (lstm_step_half_tiles-inl.h). The bias in
// panel order (K = 1) is the same in both layouts; pair and quad panels (below) are always interleaved.
// The projection matrix W_hr (P x H) uses the same idea with one "gate": panels of hidden_block output columns.
//
// Precision bf16. bf16 is the upper half of a float32 (8 exponent bits, 8 significant bits), rounded to nearest
// even (round_to_bf16 in fastlstm/bf16.h). The bf16 kernels take weights rounded to bf16 and multiply them with
// their other operand (x, or h_{t-1}) rounded to bf16 as well; a product of two bf16 values is exact in float32,
// and every sum, the activations and the cell state stay float32. Their weights are "pair panels": the gate
// panels above with the two weights of k = 2j and 2j + 1 in one 32-bit word (low half k = 2j), so that one
// vector of words feeds a dot product over pairs (AVX512-BF16 vdpbf16ps) or widens into two float vectors:
//     pairs[(p * ceil(K/2) + j) * 4*hidden_block + gate * hidden_block + u]
//         = bf16(W[gate*H + p*hidden_block + u][2j]) | bf16(W[...][2j + 1]) << 16,
// zero past K and past H. Their other operand comes as rows of bf16 values, K rounded up to even (zero last).
//
// Precision int8 (fastlstm/int8.h). A gate row r of weights has a scale s_r = max|W[r, :]| / 127 and codes q[r, k]
// in [-127, 127]; a row of the other operand (x_t or h_{t-1}) has a scale s_a and codes q_a, stored as q_a + 128 in
// unsigned bytes. The product
//     sum_k W[r, k] a[k]  ~  s_a * s_r * (sum_k (q_a[k] + 128) q[r, k] - 128 * sum_k q[r, k])
// is summed exactly in int32 (each term at most 255 * 127 in magnitude, so K up to kInt8MaxDepth = 65536 of
// fastlstm/int8.h; PackedLstm refuses larger K) and scaled back once: float32(integer) * (s_a * s_r), added to the
// input part. Weights are "quad panels": the gate panels with the codes of k = 4j .. 4j + 3 in the bytes of one
// 32-bit word (byte i: k = 4j + i), zero past K and H, for AVX512-VNNI's vpdpbusd (four byte products per 32-bit
// lane); scales and offsets 128 * sum_k q per column (gate row) in panel order, like the fused bias.
#pragma once

#include <cstdint>

namespace fastlstm {

// int8 weights as the kernels read them (precision int8 above).
struct Int8Panels {
    const uint32_t* quads;
    const float* scales;     // per column, zero past H
    const int32_t* offsets;  // 128 * sum_k q per column
};

// C[m, n] = init[n] + sum_k A[m, k] * B[k, n]   for m in [0, M), n in [0, N),
// where B is given as ceil(N / panel_width) panels of panel_width columns (the last one zero-padded) and
// panels[(p*K + k)*panel_width + j] = B[k, p*panel_width + j] (gate panels, panel_width = 4*hidden_block, in halves
// where the variant has gate halves: see above). A is M x K with row stride lda; C has row stride ldc
// and only its first N columns are written. init may be null (zeros); otherwise it holds the panel-padded width.
// Used for the hoisted input projection (init = fused bias, N = padded 4H) and the LSTMP projection (N = P).
using f32_gemm_panels_fn = void (*)(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* panels,
                                    int64_t panel_width, const float* init, float* C, int64_t ldc);

// The activation functions of ONNX's LSTM (and of Keras layers), with their parameters alpha and beta:
//   sigmoid, tanh; relu max(0, x); affine alpha x + beta; leaky_relu x >= 0 ? x : alpha x; thresholded_relu
//   x > alpha ? x : 0; scaled_tanh alpha tanh(beta x); hard_sigmoid max(0, min(1, alpha x + beta)); elu x >= 0 ? x :
//   alpha (exp(x) - 1); softsign x / (1 + |x|); softplus log(1 + exp(x)).
// The values are part of the Python interface (fastlstm/_cell.py): append only.
enum class Activation : int32_t {
    kSigmoid = 0,
    kTanh = 1,
    kRelu = 2,
    kAffine = 3,
    kLeakyRelu = 4,
    kThresholdedRelu = 5,
    kScaledTanh = 6,
    kHardSigmoid = 7,
    kElu = 8,
    kSoftsign = 9,
    kSoftplus = 10,
};
struct ActivationSpec {
    Activation kind;
    float alpha;
    float beta;
};

// A cell other than the standard one (ONNX's LSTM attributes and inputs):
//   i = gate(z_i + p_i c_{t-1}), f = input_forget ? 1 - i : gate(z_f + p_f c_{t-1}), g = candidate(z_g),
//   c_t = f c_{t-1} + i g,  o = gate(z_o + p_o c_t),  h_t = o * output(c_t),
// each pre-activation (peephole term included) clamped to [-clip, clip] when clip > 0. peepholes: 3 x hidden_size
// (rows p_i, p_f, p_o), or null for none. The defaults are the standard cell: gates sigmoid, candidate and
// output tanh, no clip, no coupling, no peepholes.
struct CellOptions {
    ActivationSpec gate{Activation::kSigmoid, 0.0f, 0.0f};
    ActivationSpec candidate{Activation::kTanh, 0.0f, 0.0f};
    ActivationSpec output{Activation::kTanh, 0.0f, 0.0f};
    float clip = 0.0f;
    bool input_forget = false;
    const float* peepholes = nullptr;
};

// One fused recurrent LSTM step for batch rows [0, batch) and hidden panels [panel_begin, panel_end):
//     z = gates_in[b] + h_prev[b] . recurrent_panels          (4 gates of one panel, kept in registers)
//     i, f, o = sigmoid(z_i, z_f, z_o); g = tanh(z_g)
//     c[b, u] = f * c[b, u] + i * g;   h_out[b, u] = o * tanh(c[b, u])
// gates_in rows are laid out in panel order (num_panels * 4 * hidden_block floats, bias already added).
// c is updated in place; h_out must not alias h_prev.
// The f32 step also takes its input projection itself when x is not null (a step that is a whole chunk: a stream's or
// a pool's step): z = bias + x[b] . input_panels + h_prev[b] . recurrent_panels, each element one chain from the
// bias, the input's k ascending, then the recurrent k: the sums of f32_gemm_panels into gates_in followed by the
// plain step, so the same floats bitwise, in one pass over both weights and without the gates_in round trip.
// gates_in is then not read.
struct LstmStepArgs {
    int64_t batch;           // rows
    int64_t hidden_size;     // H: units past it in the last panel are computed but not stored
    int64_t recurrent_size;  // K of the recurrent product: H, or P with a projection
    int64_t panel_begin;
    int64_t panel_end;
    const float* h_prev;  // batch x recurrent_size, row stride h_prev_stride
    int64_t h_prev_stride;
    const float* gates_in;  // batch x (num_panels * 4 * hidden_block), row stride gates_in_stride
    int64_t gates_in_stride;
    const float* recurrent_panels;
    float* c;  // batch x H, row stride c_stride, in/out
    int64_t c_stride;
    float* h_out;  // batch x H, row stride h_out_stride
    int64_t h_out_stride;
    const CellOptions* options = nullptr;  // null: the standard cell above
    // Walk the panels from the last to the first (the plain steps; the look-ahead ones walk up). Weights a little
    // larger than L2 leave their last-read panels there: a step that starts where the one before ended reads those
    // from L2 (plan.h: Workspace::descending_first). The order changes no value.
    bool panels_descending = false;
    // The fused input (f32 only, see above): batch rows of input_size floats, row stride x_stride; input_panels
    // (gate panels of w_ih, the layout of recurrent_panels over input_size) and bias (the layer's, all panels).
    const float* x = nullptr;
    int64_t x_stride = 0;
    int64_t input_size = 0;
    const float* input_panels = nullptr;
    const float* bias = nullptr;
    // Where the layer's last panel holds at most 3 hidden_block / 4 units (H = 65, 100, 120, 250 or 300 at
    // hidden_block 16), f32: that panel's input and recurrent weights (input_size and recurrent_size rows of 4 *
    // compact_tail_lanes floats) and bias compacted, gate g's units at lanes [g * compact_tail_lanes, (g + 1) *
    // compact_tail_lanes) of each row, compact_tail_lanes being hidden_block / 4, / 2 or 3 hidden_block / 4 (pack.h:
    // pack_compact_tail); else null and 0. A kernel may take that panel from them, one, two or three vectors per k
    // instead of four, from the bias and x (the fused input) or from gates_in, in the same order: the same sums.
    const float* compact_tail_input = nullptr;
    const float* compact_tail_recurrent = nullptr;
    const float* compact_tail_bias = nullptr;
    int64_t compact_tail_lanes = 0;
    // The bf16 step only: the pair panels of w_hh (instead of recurrent_panels), and room for batch rows of
    // h_prev rounded to bf16 (recurrent_size rounded up to even per row), which the kernel fills.
    const uint32_t* recurrent_pairs = nullptr;
    uint16_t* h_bf16 = nullptr;
    // The int8 step only: w_hh (instead of recurrent_panels), and room for batch rows of h_prev quantized (recurrent
    // size rounded up to 4 bytes per row) and their scales, which the kernel fills.
    Int8Panels recurrent_int8{};
    uint8_t* h_uint8 = nullptr;
    float* h_scales = nullptr;
};
using f32_lstm_step_fn = void (*)(const LstmStepArgs& args);
// The same step in precision bf16 (see above): reads recurrent_pairs, h_prev and h_bf16.
using bf16_lstm_step_fn = void (*)(const LstmStepArgs& args);
// The same step in precision int8: reads recurrent_int8, h_prev, h_uint8 and h_scales.
using int8_lstm_step_fn = void (*)(const LstmStepArgs& args);

// f32_gemm_panels in precision bf16: B as pair panels (panel_width columns each) and A rounded to bf16 into
// a_bf16, room for M rows of K rounded up to even, before the product.
using bf16_gemm_panels_fn = void (*)(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                     const uint32_t* pair_panels, int64_t panel_width, const float* init, float* C,
                                     int64_t ldc, uint16_t* a_bf16);

// f32_gemm_panels in precision int8: B as quad panels from its first column (its scales and offsets too) and A
// quantized into a_uint8 (M rows of K rounded up to 4) and a_scales (M) before the product.
using int8_gemm_panels_fn = void (*)(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Int8Panels& B,
                                     int64_t panel_width, const float* init, float* C, int64_t ldc, uint8_t* a_uint8,
                                     float* a_scales);

// Look-ahead input projection, for small batches (1 to kLookAheadMaxBatch rows). There a step streams the recurrent
// weights from cache with few multiply-adds per weight loaded, and the cache's bandwidth, not the FMA units, bounds
// it; the input projection is the opposite (each weight feeds many rows, so it is FMA-bound). The look-ahead step
// runs the two interleaved: besides step t it computes pieces of the input projection of the next kLookAheadSteps
// steps, so that loads and multiply-adds overlap.
// The upcoming chunk's rows (step-major: row s*batch + b is batch row b of upcoming step s) are cut into groups
// of kLookAheadPieceRows rows; a piece is one gate of one hidden panel over one group, i.e. hidden_block
// columns of the gate panels: piece j is group j / (4*P), gate j % 4 of panel panel_begin + (j % (4*P)) / 4, where
// P = panel_end - panel_begin (the step's panels). The pieces come out bitwise equal to f32_gemm_panels on the same
// columns (same order of operations), so results do not depend on whether, or how, the projection was interleaved.
// 8 steps of 1 or 2 rows hold one piece per slot of the step kernels (a slot being two panels of the recurrent
// product for batch 1 and one for batch 2). Batch 3 ran no faster with it (pieces of 12 rows, measured at H = 255:
// `python -m fastlstm bench --shapes 3x100x255 --threads 1`) and is left to the plain step, which already feeds 3
// multiply-adds per weight loaded.
constexpr int64_t kLookAheadSteps = 8;
constexpr int64_t kLookAheadMaxBatch = 2;
constexpr int64_t kLookAheadPieceRows = 8;
struct LookAheadProjection {
    int64_t piece_begin;  // pieces [piece_begin, piece_end) of the upcoming chunk, done during this step
    int64_t piece_end;
    int64_t rows;    // rows of the upcoming chunk: its steps times the batch
    const float* x;  // their inputs: row r at x + r * x_stride, input_size floats
    int64_t x_stride;
    int64_t input_size;
    const float* input_panels;  // gate panels of w_ih (all panels of the layer)
    const float* bias;          // fused bias in panel order
    float* gates_in;            // row r of the upcoming chunk's projection at gates_in + r * gates_in_stride
    int64_t gates_in_stride;
    // Batch 2: the same inputs k-major within each group of kLookAheadPieceRows rows (the rows of a piece), zero
    // past `rows`: row g * kLookAheadPieceRows + r, feature k at x_by_k[(g * input_size + k) * kLookAheadPieceRows
    // + r]. A batch-2 slot is bound by its loads (10 broadcasts and 5 vectors per 16 multiply-adds); reading a
    // piece's 8 values of x[k] from one cache line measured 1.04x faster at B = 2, H = 256 and 512 (1 and 2
    // threads: `python -m fastlstm bench --shapes 2x100x256,2x100x512 --threads 1,2`). Batch 1, bound by the
    // cache's bandwidth instead, ran 1-3% slower with it (`--shapes 1x100x256,1x100x512`) and reads x. Only the
    // SIMD variants read x_by_k; the portable one reads x.
    const float* x_by_k;
    // Precision bf16 (batch 1 only): the gate pair panels of w_ih, and the upcoming rows rounded to bf16 (row r at
    // x_bf16 + r * x_bf16_stride, input_size rounded up to even).
    const uint32_t* input_pairs;
    const uint16_t* x_bf16;
    int64_t x_bf16_stride;
    // Float32: the layer's weights do not stay in cache from step to step (plan.cc: streams_look_ahead_inputs),
    // so the pieces ask for their input weights a few k ahead with a non-temporal hint (Simd::prefetch_once), which
    // keeps the lines they read once per chunk from pushing the recurrent weights out of L3.
    bool stream_input_weights;
};
// Where piece `piece` lies (see above): its panel and gate, and its rows [first_row, first_row + rows) of the
// upcoming chunk. Every variant and the driver's count of pieces follow this one mapping.
struct LookAheadPieceSpot {
    int64_t panel;
    int64_t gate;
    int64_t first_row;
    int64_t rows;
};
inline LookAheadPieceSpot look_ahead_piece_spot(const LstmStepArgs& a, const LookAheadProjection& ahead,
                                                int64_t piece) {
    const int64_t per_group = 4 * (a.panel_end - a.panel_begin);
    LookAheadPieceSpot spot;
    spot.panel = a.panel_begin + (piece % per_group) / 4;
    spot.gate = piece % 4;
    spot.first_row = piece / per_group * kLookAheadPieceRows;
    const int64_t left = ahead.rows - spot.first_row;
    spot.rows = left < kLookAheadPieceRows ? left : kLookAheadPieceRows;
    return spot;
}
// One step as f32_lstm_step_fn (args.batch at most kLookAheadMaxBatch, args.options null) plus the pieces of
// `ahead`.
using f32_lstm_step_look_ahead_fn = void (*)(const LstmStepArgs& args, const LookAheadProjection& ahead);
// The same in precision bf16, batch 1 only (args as for bf16_lstm_step; ahead.input_pairs and x_bf16).
using bf16_lstm_step_look_ahead_fn = void (*)(const LstmStepArgs& args, const LookAheadProjection& ahead);

// y[i] = sigmoid(x[i]) or tanh(x[i]) for i in [0, n): the activations the step kernel inlines, as arrays, so that
// their accuracy can be tested on their own.
using f32_activation_fn = void (*)(int64_t n, const float* x, float* y);

// x[r, j] = exp(x[r, j]) / sum_k exp(x[r, k]) in place, for r in [0, rows), j in [0, columns), row stride
// `stride`: the softmax of a classifier head. A row holding NaN or +inf comes out NaN.
using f32_softmax_rows_fn = void (*)(int64_t rows, int64_t columns, float* x, int64_t stride);

// The calibration kernel: `iterations` rounds of independent FMAs at the variant's vector width, nothing else.
// Returns the floating-point operations done; writes a result to *sink so that the work cannot be optimised away.
using f32_fma_peak_fn = int64_t (*)(int64_t iterations, float* sink);

// The bandwidth calibration kernel: the sum of data[0, n) (n a multiple of 128), read with independent chains.
using f32_read_sum_fn = float (*)(const float* data, int64_t n);

// The look-ahead calibration kernel: `steps` batch-1 steps of f32_lstm_step_look_ahead's loads and multiply-adds
// alone, in its slots, over `panels` packed recurrent panels of recurrent_k k and input panels of input_k k (4 *
// hidden_block floats a k each), h (recurrent_k floats) and x (kLookAheadPieceRows rows of input_k floats); no cells.
// Returns a sum of the products so that the work cannot be optimised away.
using f32_look_ahead_loop_fn = float (*)(const float* recurrent, const float* inputs, const float* h, const float* x,
                                         int64_t panels, int64_t recurrent_k, int64_t input_k, int64_t steps);

// One row of the variant table: everything the core needs to run on one ISA.
struct KernelSet {
    const char* isa;       // "portable", "avx2", "avx512", "avx512bf16" (with VNNI)
    int64_t hidden_block;  // hidden units per gate panel; fixes the packed layout
    bool gate_halves;      // float32 gate panels in halves (above)
    f32_gemm_panels_fn gemm_panels;
    f32_lstm_step_fn lstm_step;
    bf16_gemm_panels_fn bf16_gemm_panels;
    bf16_lstm_step_fn bf16_lstm_step;
    int8_gemm_panels_fn int8_gemm_panels;
    int8_lstm_step_fn int8_lstm_step;
    f32_lstm_step_look_ahead_fn lstm_step_look_ahead;
    int64_t look_ahead_batches;  // lstm_step_look_ahead takes batches 1 .. look_ahead_batches
    bf16_lstm_step_look_ahead_fn bf16_lstm_step_look_ahead;  // batch 1 in bf16, or null: the plain bf16 step
    f32_activation_fn sigmoid;
    f32_activation_fn tanh;
    f32_softmax_rows_fn softmax_rows;
    f32_fma_peak_fn fma_peak;
    f32_read_sum_fn read_sum;
    f32_look_ahead_loop_fn look_ahead_loop;  // null where lstm_step_look_ahead is
};

}  // namespace fastlstm
