// Weight packing and the sequence driver: hoisted input projection, then one fused kernel call per step.
#include "fastlstm/lstm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "fastlstm/bf16.h"
#include "fastlstm/int8.h"
#include "fastlstm/thread_pool.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

namespace fastlstm {
namespace {

constexpr int64_t kGates = 4;

// The input projection is computed in chunks of about kProjectionRows (step, batch row) pairs, one matrix product
// per chunk, just before the steps that use it. 256 rows reuse each panel of W_ih enough for the product to run
// near peak, while the chunk's output (256 x 4H floats: 1 MiB at H = 256, 4 MiB at H = 1024) is still in cache
// when the steps read it; measured at B = 64, H = 512 on one core, the steps ran 1.3x faster than reading a
// whole-sequence projection back from memory.
constexpr int64_t kProjectionRows = 256;

// Input and recurrent weights of a layer and direction, per thread, up to which small batches look ahead: a quarter
// of a 32 MiB L3 (see looks_ahead).
constexpr int64_t kLookAheadBytes = int64_t{8} << 20;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// See kernels.h: panel p, row k, gate g, unit u  <-  w[(g*H + p*block + u) * K + k].
void pack_gate_panels(const float* w, int64_t hidden, int64_t K, int64_t block, float* out) {
    const int64_t panels = ceil_div(hidden, block);
    const int64_t width = kGates * block;
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t k = 0; k < K; ++k) {
            float* dst = out + (p * K + k) * width;
            for (int64_t g = 0; g < kGates; ++g)
                for (int64_t u = 0; u < block; ++u) {
                    const int64_t unit = p * block + u;
                    dst[g * block + u] = unit < hidden ? w[(g * hidden + unit) * K + k] : 0.0f;
                }
        }
}

// Pair panels (kernels.h: precision bf16): panel p, pair j, gate g, unit u  <-  bf16 of w[(g*H + p*block + u) * K
// + 2j] (low half) and + 2j + 1 (high half), zero past K and past H.
void pack_gate_pair_panels(const float* w, int64_t hidden, int64_t K, int64_t block, uint32_t* out) {
    const int64_t panels = ceil_div(hidden, block);
    const int64_t pairs = ceil_div(K, 2);
    const int64_t width = kGates * block;
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t j = 0; j < pairs; ++j) {
            uint32_t* dst = out + (p * pairs + j) * width;
            for (int64_t g = 0; g < kGates; ++g)
                for (int64_t u = 0; u < block; ++u) {
                    const int64_t unit = p * block + u;
                    uint32_t word = 0;
                    if (unit < hidden) {
                        const float* row = w + (g * hidden + unit) * K;
                        word = round_to_bf16(row[2 * j]);
                        if (2 * j + 1 < K) word |= static_cast<uint32_t>(round_to_bf16(row[2 * j + 1])) << 16;
                    }
                    dst[g * block + u] = word;
                }
        }
}

// Quad panels (kernels.h: precision int8): panel p, quad j, gate g, unit u  <-  the int8 codes of w[(g*H + p*block +
// u) * K + 4j + i] in byte i, zero past K and past H; each gate row's scale and offset (128 * sum of its codes) at
// column (p*4 + g)*block + u, zero past H.
void pack_gate_quad_panels(const float* w, int64_t hidden, int64_t K, int64_t block, uint32_t* out, float* scales,
                           int32_t* offsets) {
    const int64_t panels = ceil_div(hidden, block);
    const int64_t quads = ceil_div(K, 4);
    const int64_t width = kGates * block;
    std::vector<int8_t> codes(quads * 4);
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t g = 0; g < kGates; ++g)
            for (int64_t u = 0; u < block; ++u) {
                const int64_t unit = p * block + u, column = (p * kGates + g) * block + u;
                std::fill(codes.begin(), codes.end(), int8_t{0});
                scales[column] = unit < hidden ? quantize_row_to_int8(K, w + (g * hidden + unit) * K, codes.data()) : 0.0f;
                int32_t sum = 0;
                for (int64_t k = 0; k < K; ++k) sum += codes[k];
                offsets[column] = 128 * sum;
                for (int64_t j = 0; j < quads; ++j) {
                    uint32_t word = 0;
                    for (int64_t i = 0; i < 4; ++i)
                        word |= static_cast<uint32_t>(static_cast<uint8_t>(codes[4 * j + i])) << (8 * i);
                    out[(p * quads + j) * width + g * block + u] = word;
                }
            }
}

void pack_gate_bias(const float* b_ih, const float* b_hh, int64_t hidden, int64_t block, float* out) {
    const int64_t panels = ceil_div(hidden, block);
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t g = 0; g < kGates; ++g)
            for (int64_t u = 0; u < block; ++u) {
                const int64_t unit = p * block + u;
                float value = 0.0f;
                if (unit < hidden && b_ih) value = b_ih[g * hidden + unit] + b_hh[g * hidden + unit];
                out[(p * kGates + g) * block + u] = value;
            }
}

// Panels of w_hr^T: panel p, row k (hidden unit), column j  <-  w_hr[(p*block + j) * H + k].
void pack_projection_panels(const float* w_hr, int64_t proj, int64_t hidden, int64_t block, float* out) {
    const int64_t panels = ceil_div(proj, block);
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t k = 0; k < hidden; ++k)
            for (int64_t j = 0; j < block; ++j) {
                const int64_t row = p * block + j;
                out[(p * hidden + k) * block + j] = row < proj ? w_hr[row * hidden + k] : 0.0f;
            }
}

// The machine's hardware threads, asked once: std::thread::hardware_concurrency reads a file under /sys on Linux
// each time, which would cost microseconds per call.
int hardware_threads() {
    static const int count = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    return count;
}

// Copies columns [begin, end) of `rows` rows (a null source means zeros).
void copy_columns(const float* src, int64_t src_stride, int64_t rows, int64_t begin, int64_t end, float* dst,
                  int64_t dst_stride) {
    const std::size_t bytes = static_cast<std::size_t>(end - begin) * sizeof(float);
    if (src == dst && src_stride == dst_stride) return;  // a state updated in place (streams)
    for (int64_t r = 0; r < rows; ++r) {
        if (src)
            std::memcpy(dst + r * dst_stride + begin, src + r * src_stride + begin, bytes);
        else
            std::memset(dst + r * dst_stride + begin, 0, bytes);
    }
}

// [begin, end) of `count` items for member `index` of a team of `size`: contiguous, balanced, fixed for the call.
void share(int64_t count, int index, int size, int64_t* begin, int64_t* end) {
    *begin = count * index / size;
    *end = count * (index + 1) / size;
}

// The upcoming chunk's inputs k-major in groups of kLookAheadPieceRows rows, zero past its rows (kernels.h:
// LookAheadProjection::x_by_k), into `out`; returns out.
const float* gather_k_major(const LookAheadProjection& ahead, float* out) {
    const int64_t K = ahead.input_size;
    const int64_t padded_rows = ceil_div(ahead.rows, kLookAheadPieceRows) * kLookAheadPieceRows;
    for (int64_t row = 0; row < padded_rows; ++row) {
        float* dst = out + (row / kLookAheadPieceRows) * K * kLookAheadPieceRows + row % kLookAheadPieceRows;
        if (row < ahead.rows) {
            const float* src = ahead.x + row * ahead.x_stride;
            for (int64_t k = 0; k < K; ++k) dst[k * kLookAheadPieceRows] = src[k];
        } else {
            for (int64_t k = 0; k < K; ++k) dst[k * kLookAheadPieceRows] = 0.0f;
        }
    }
    return out;
}

// Denormal floats flushed to zero (and read as zero) while the kernels run on this thread: an LSTM's decaying c
// and h can reach the denormal range, where x86 arithmetic is up to a hundred times slower. Values below 1.2e-38
// change by less than that absolutely; NaN and inf are unaffected.
class FlushDenormals {
   public:
#if defined(__x86_64__) || defined(_M_X64)
    FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }  // FTZ (bit 15) and DAZ (bit 6)
    ~FlushDenormals() { _mm_setcsr(saved_); }

   private:
    unsigned saved_;
#else
    // Elsewhere (aarch64) denormal arithmetic runs at full speed on current cores, and the mode is left as it is.
    FlushDenormals() {}
#endif
};

}  // namespace

PackedLstm::PackedLstm(const KernelSet& kernels, const LstmGeometry& geometry, Precision precision)
    : kernels_(kernels),
      geometry_(geometry),
      precision_(precision),
      cells_(geometry.num_layers * geometry.num_directions) {}

int64_t PackedLstm::weight_bytes() const {
    return precision_ == Precision::kInt8 ? 1 : precision_ == Precision::kBF16 ? 2 : 4;
}

int64_t PackedLstm::num_panels() const { return ceil_div(geometry_.hidden_size, kernels_.hidden_block); }

int64_t PackedLstm::gate_width() const { return num_panels() * kGates * kernels_.hidden_block; }

void PackedLstm::pack_cell(int64_t layer, int64_t direction, const CellWeights& w) {
    const int64_t hidden = geometry_.hidden_size;
    const int64_t block = kernels_.hidden_block;
    const int64_t input = geometry_.layer_input_size(layer);
    const int64_t recurrent = geometry_.output_size();

    PackedCell packed;
    packed.bias = AlignedFloats(gate_width());
    pack_gate_bias(w.b_ih, w.b_hh, hidden, block, packed.bias.data());
    packed.recurrent_finite = true;
    if (precision_ == Precision::kBF16) {
        packed.input_pairs = AlignedBuffer<uint32_t>(gate_width() * ceil_div(input, 2));
        packed.recurrent_pairs = AlignedBuffer<uint32_t>(gate_width() * ceil_div(recurrent, 2));
        pack_gate_pair_panels(w.w_ih, hidden, input, block, packed.input_pairs.data());
        pack_gate_pair_panels(w.w_hh, hidden, recurrent, block, packed.recurrent_pairs.data());
        for (int64_t i = 0; i < 4 * hidden * recurrent; ++i)
            packed.recurrent_finite &= std::isfinite(bf16_to_float(round_to_bf16(w.w_hh[i])));
    } else if (precision_ == Precision::kInt8) {
        packed.input_quads = AlignedBuffer<uint32_t>(gate_width() * ceil_div(input, 4));
        packed.recurrent_quads = AlignedBuffer<uint32_t>(gate_width() * ceil_div(recurrent, 4));
        packed.input_scales = AlignedFloats(gate_width());
        packed.recurrent_scales = AlignedFloats(gate_width());
        packed.input_offsets = AlignedBuffer<int32_t>(gate_width());
        packed.recurrent_offsets = AlignedBuffer<int32_t>(gate_width());
        pack_gate_quad_panels(w.w_ih, hidden, input, block, packed.input_quads.data(), packed.input_scales.data(),
                              packed.input_offsets.data());
        pack_gate_quad_panels(w.w_hh, hidden, recurrent, block, packed.recurrent_quads.data(),
                              packed.recurrent_scales.data(), packed.recurrent_offsets.data());
        for (int64_t i = 0; i < gate_width(); ++i) packed.recurrent_finite &= !std::isnan(packed.recurrent_scales.data()[i]);
    } else {
        packed.input_panels = AlignedFloats(gate_width() * input);
        packed.recurrent_panels = AlignedFloats(gate_width() * recurrent);
        pack_gate_panels(w.w_ih, hidden, input, block, packed.input_panels.data());
        pack_gate_panels(w.w_hh, hidden, recurrent, block, packed.recurrent_panels.data());
        for (int64_t i = 0; i < 4 * hidden * recurrent; ++i) packed.recurrent_finite &= std::isfinite(w.w_hh[i]);
    }
    if (w.options || w.peepholes) {
        packed.has_options = true;
        packed.options = w.options ? *w.options
                                   : CellOptions{{Activation::kSigmoid, 0, 0}, {Activation::kTanh, 0, 0},
                                                 {Activation::kTanh, 0, 0}, 0.0f, false, nullptr};
        packed.options.peepholes = nullptr;
        if (w.peepholes) {
            packed.peepholes = AlignedFloats(3 * hidden);
            std::memcpy(packed.peepholes.data(), w.peepholes, 3 * hidden * sizeof(float));
            packed.options.peepholes = packed.peepholes.data();  // the heap buffer moves with the cell
        }
    }
    if (geometry_.proj_size > 0) {
        packed.projection_panels = AlignedFloats(ceil_div(geometry_.proj_size, block) * block * hidden);
        pack_projection_panels(w.w_hr, geometry_.proj_size, hidden, block, packed.projection_panels.data());
    }
    cells_[layer * geometry_.num_directions + direction] = std::move(packed);
}


// A group of threads working on the same directions, with their barrier.
struct PackedLstm::Team {
    int index;
    int size;
    SpinBarrier* barrier;
    void sync() const { barrier->arrive_and_wait(size); }
};

// Per-group scratch: the input projection of a chunk of steps, and o * tanh(c) before the projection.
struct PackedLstm::Workspace {
    AlignedFloats gates_in;  // one chunk of the plain step, or two of chunk_floats for the look-ahead step
    int64_t chunk_floats = 0;
    bool look_ahead = false;  // the look-ahead step is planned (see looks_ahead)
    AlignedFloats hidden_scratch;
    AlignedFloats h_prev_scratch;  // packed rows: h_prev of a reverse step at which rows start (batch x output)
    AlignedFloats zero_h;          // one row of output_size zeros: h_prev of the first step from a zero state
    std::vector<AlignedFloats> x_by_k;  // with look-ahead: per team member, the next chunk's inputs k-major
    std::vector<AlignedBuffer<uint16_t>> next_x_bf16;  // bf16 look-ahead: per member, the next chunk's inputs in bf16
    // Precision bf16: per team member, a chunk's inputs or a step's h_prev rounded to bf16 (kernels.h).
    std::vector<AlignedBuffer<uint16_t>> bf16_rows;
    // Precision int8: per team member, a chunk's inputs or a step's h_prev quantized, and their row scales.
    std::vector<AlignedBuffer<uint8_t>> int8_rows;
    std::vector<AlignedFloats> int8_scales;
};

// Batches up to the variant's look_ahead_batches run the look-ahead step (kernels.h), whose chunks are
// kLookAheadSteps steps: the next chunk's input projection is computed during the current one's steps. That
// re-reads the input weights every 8 steps instead of once per 256 rows, which pays while a thread's input and
// recurrent weights stay in cache together; past kLookAheadBytes per thread they do not (measured at H = 1024,
// 32 MiB on one core: 1.8x slower than without).
bool PackedLstm::looks_ahead(int64_t batch, int threads) const {
    const LstmGeometry& g = geometry_;
    const int64_t per_direction = g.num_directions == 2 && threads > 1 ? std::max(1, threads / 2) : threads;
    const int64_t widest_input = g.widest_layer_input();
    // Counted as float32 in every precision: bf16 weights of 8 MiB per thread (1x100x1024 on 2 threads) ran 1.0-1.07x
    // slower with look-ahead than without, the input weights re-read every 8 steps competing with the recurrent ones.
    const int64_t bytes = gate_width() * (widest_input + g.output_size()) * int64_t{sizeof(float)};
    // The look-ahead kernels are float32, and bf16 at batch 1 where the variant says it pays.
    const bool kernels_look_ahead = precision_ == Precision::kF32 ? batch <= kernels_.look_ahead_batches
                                    : precision_ == Precision::kBF16 ? batch == 1 && kernels_.bf16_lstm_step_look_ahead
                                                                      : false;
    return batch >= 1 && kernels_look_ahead && bytes / per_direction <= kLookAheadBytes;
}

int64_t PackedLstm::chunk_steps(int64_t steps, int64_t batch, bool look_ahead) const {
    if (look_ahead) return std::max<int64_t>(1, std::min(steps, kLookAheadSteps));
    const int64_t rows_per_step = std::max<int64_t>(1, batch);
    return std::max<int64_t>(1, std::min<int64_t>(steps, ceil_div(kProjectionRows, rows_per_step)));
}

// Scratch for running `batch` rows, or `other_batch` rows (0: none), whichever needs more. The input projection
// has room for one plain chunk, and with look-ahead for two of its chunks: the one being stepped through and the
// next. A planned look-ahead can still fall back to plain chunks (an input whose rows are not evenly spaced).
PackedLstm::Workspace PackedLstm::make_workspace(int64_t steps, int64_t batch, int64_t other_batch,
                                                bool look_ahead, int members) const {
    int64_t plain_rows = 0, look_ahead_rows = 0;
    for (const int64_t b : {batch, other_batch}) {
        plain_rows = std::max(plain_rows, chunk_steps(steps, b, false) * b);
        if (look_ahead) look_ahead_rows = std::max(look_ahead_rows, chunk_steps(steps, b, true) * b);
    }
    const LstmGeometry& g = geometry_;
    const int64_t widest_input = g.widest_layer_input();
    const int64_t widest_batch = std::max(batch, other_batch);
    Workspace workspace;
    workspace.look_ahead = look_ahead;
    workspace.zero_h = AlignedFloats(g.output_size());
    workspace.zero_h.fill_zero();
    workspace.gates_in = AlignedFloats(std::max(plain_rows, 2 * look_ahead_rows) * gate_width());
    workspace.chunk_floats = look_ahead_rows * gate_width();
    if (look_ahead && (batch == 2 || other_batch == 2)) {
        const int64_t floats = ceil_div(look_ahead_rows, kLookAheadPieceRows) * kLookAheadPieceRows * widest_input;
        for (int member = 0; member < members; ++member) workspace.x_by_k.emplace_back(floats);
    }
    if (look_ahead && precision_ == Precision::kBF16) {
        for (int member = 0; member < members; ++member)
            workspace.next_x_bf16.emplace_back(look_ahead_rows * (widest_input + 1));
    }
    if (g.proj_size > 0) workspace.hidden_scratch = AlignedFloats(widest_batch * g.hidden_size);
    if (precision_ == Precision::kBF16) {
        const int64_t values = std::max(plain_rows * (widest_input + 1),
                                        widest_batch * (g.output_size() + 1));
        for (int member = 0; member < members; ++member) workspace.bf16_rows.emplace_back(values);
    }
    if (precision_ == Precision::kInt8) {
        const int64_t rows = std::max(plain_rows, widest_batch);
        const int64_t values = std::max(plain_rows * (widest_input + 3),
                                        widest_batch * (g.output_size() + 3));
        for (int member = 0; member < members; ++member) {
            workspace.int8_rows.emplace_back(values);
            workspace.int8_scales.emplace_back(rows);
        }
    }
    return workspace;
}

// gates_in[(t - t_begin) * batch + b] = bias + in[t, b] . w_ih^T for t in [t_begin, t_end), over the columns of
// panels [panel_begin, panel_end): one matrix product when the sequence is time-major in memory or packed (where
// the rows of step t start at row step_offsets[t] - step_offsets[t_begin]), one per batch row (each over all the
// chunk's steps) otherwise.
void PackedLstm::project_inputs(const PackedCell& cell, const Sequence& in, int64_t layer_input_size, int64_t batch,
                                int64_t t_begin, int64_t t_end, int64_t panel_begin, int64_t panel_end,
                                float* gates_in, const OperandScratch& scratch) const {
    const int64_t width = gate_width();
    const int64_t panel_width = kGates * kernels_.hidden_block;
    const int64_t columns = (panel_end - panel_begin) * panel_width;
    if (columns == 0) return;
    const float* bias = cell.bias.data() + panel_begin * panel_width;
    float* out = gates_in + panel_begin * panel_width;
    // rows x columns of the product from rows of A at a (row stride lda), into c (row stride ldc).
    auto product = [&](int64_t rows, const float* a, int64_t lda, float* c, int64_t ldc) {
        if (precision_ == Precision::kBF16) {
            kernels_.bf16_gemm_panels(rows, columns, layer_input_size, a, lda,
                                      cell.input_pairs.data() + panel_begin * ceil_div(layer_input_size, 2) * panel_width,
                                      panel_width, bias, c, ldc, scratch.bf16);
        } else if (precision_ == Precision::kInt8) {
            const Int8Panels weights{
                cell.input_quads.data() + panel_begin * ceil_div(layer_input_size, 4) * panel_width,
                cell.input_scales.data() + panel_begin * panel_width, cell.input_offsets.data() + panel_begin * panel_width};
            kernels_.int8_gemm_panels(rows, columns, layer_input_size, a, lda, weights, panel_width, bias, c, ldc,
                                      scratch.int8, scratch.int8_scales);
        } else {
            kernels_.gemm_panels(rows, columns, layer_input_size, a, lda,
                                 cell.input_panels.data() + panel_begin * layer_input_size * panel_width, panel_width,
                                 bias, c, ldc);
        }
    };
    const float* first = in.step(t_begin);
    if (in.step_offsets) {  // packed rows: the chunk's rows are contiguous
        product(in.step_offsets[t_end] - in.step_offsets[t_begin], first, in.batch_stride, out, width);
        return;
    }
    if (in.time_stride == batch * in.batch_stride) {
        product((t_end - t_begin) * batch, first, in.batch_stride, out, width);
        return;
    }
    for (int64_t b = 0; b < batch; ++b)
        product(t_end - t_begin, first + b * in.batch_stride, in.time_stride, out + b * width, batch * width);
}

// One layer and direction over the whole sequence. The team splits the hidden units: each member owns the same
// panels at every step (so its share of the recurrent weights stays in its own cache), computes the input
// projection of exactly those panels, and meets the others once per step (twice with a projection), when h_t is
// complete.
void PackedLstm::run_direction(const ForwardArgs& args, int64_t layer, int64_t direction, const Sequence& in,
                               float* out, int64_t out_time_stride, int64_t out_batch_stride, const Team& team,
                               Workspace& workspace) const {
    const LstmGeometry& g = geometry_;
    const int64_t T = args.steps, B = args.batch, H = g.hidden_size, out_size = g.output_size();
    const int64_t block = kernels_.hidden_block;
    const int64_t cell_index = layer * g.num_directions + direction;
    const PackedCell& cell = cells_[cell_index];
    const bool reverse = direction == 1 || g.reverse;
    // Packed rows (variable lengths): step t runs the first rows_at(t) rows, which sit at row offsets[t] of in, out
    // and (from the chunk's first step) gates_in.
    const int64_t* offsets = args.step_offsets;
    auto rows_at = [&](int64_t t) { return offsets ? offsets[t + 1] - offsets[t] : B; };
    auto out_step = [&](int64_t t) { return out + (offsets ? offsets[t] * out_batch_stride : t * out_time_stride); };

    int64_t panel_begin, panel_end, proj_begin, proj_end;
    share(num_panels(), team.index, team.size, &panel_begin, &panel_end);
    share(ceil_div(g.proj_size, block), team.index, team.size, &proj_begin, &proj_end);
    int64_t column_begin, column_end;  // this member's columns of h, for copies of whole rows of h
    share(out_size, team.index, team.size, &column_begin, &column_end);

    float* c = args.c_n + cell_index * args.state_rows * H;
    const float* c0 = args.c0 ? args.c0 + cell_index * args.state_rows * H : nullptr;
    copy_columns(c0, H, B, std::min(H, panel_begin * block), std::min(H, panel_end * block), c, H);

    LstmStepArgs step;
    step.batch = B;
    step.hidden_size = H;
    step.recurrent_size = out_size;
    step.panel_begin = panel_begin;
    step.panel_end = panel_end;
    const bool zero_start = args.h0 == nullptr;
    const float* h0 = zero_start ? nullptr : args.h0 + cell_index * args.state_rows * out_size;
    step.h_prev = zero_start ? workspace.zero_h.data() : h0;  // from zeros: every row reads the same zero row
    step.h_prev_stride = zero_start ? 0 : out_size;
    step.gates_in_stride = gate_width();
    step.recurrent_panels = cell.recurrent_panels.data();
    step.recurrent_pairs = cell.recurrent_pairs.data();
    step.recurrent_int8 = {cell.recurrent_quads.data(), cell.recurrent_scales.data(), cell.recurrent_offsets.data()};
    OperandScratch scratch;  // this member's, for the rounded or quantized rows of x and h
    if (precision_ == Precision::kBF16) scratch.bf16 = workspace.bf16_rows[team.index].data();
    if (precision_ == Precision::kInt8) {
        scratch.int8 = workspace.int8_rows[team.index].data();
        scratch.int8_scales = workspace.int8_scales[team.index].data();
    }
    step.h_bf16 = scratch.bf16;
    step.h_uint8 = scratch.int8;
    step.h_scales = scratch.int8_scales;
    step.c = c;
    step.c_stride = H;
    step.options = cell.has_options ? &cell.options : nullptr;
    // From a zero state the first recurrent product is zero: skip it, unless the weights hold inf or NaN, whose
    // product with 0 is NaN.
    if (zero_start && cell.recurrent_finite) step.recurrent_size = 0;

    // The pieces of the look-ahead step take the upcoming rows as evenly spaced in memory: true of one row per
    // step, and of a time-major input.
    // A cell with options runs the plain step only (the look-ahead kernels compute the standard cell).
    const bool look_ahead = workspace.look_ahead && !offsets && !step.options &&
                            (B == 1 || in.time_stride == B * in.batch_stride);
    const int64_t chunk = chunk_steps(T, B, look_ahead);
    const int64_t width = gate_width();
    LookAheadProjection ahead;
    ahead.x_by_k = nullptr;
    ahead.input_size = g.layer_input_size(layer);
    ahead.input_panels = cell.input_panels.data();
    ahead.input_pairs = cell.input_pairs.data();
    ahead.x_bf16 = nullptr;
    ahead.x_bf16_stride = (ahead.input_size + 1) / 2 * 2;
    ahead.bias = cell.bias.data();
    ahead.x_stride = B == 1 ? in.time_stride : in.batch_stride;
    ahead.gates_in_stride = width;
    // Chunk n covers steps [t_begin, t_end) (walking backwards in the reverse direction); with look-ahead its input
    // projection is in half n % 2 of the workspace.
    auto chunk_range = [&](int64_t n, int64_t* t_begin, int64_t* t_end) {
        const int64_t done = n * chunk;
        *t_begin = reverse ? std::max<int64_t>(0, T - done - chunk) : done;
        *t_end = reverse ? T - done : std::min(T, done + chunk);
    };
    for (int64_t n = 0; n * chunk < T; ++n) {
        int64_t t_begin, t_end;
        chunk_range(n, &t_begin, &t_end);
        float* gates_in = workspace.gates_in.data() + (look_ahead ? (n % 2) * workspace.chunk_floats : 0);
        if (!look_ahead || n == 0)
            project_inputs(cell, in, g.layer_input_size(layer), B, t_begin, t_end, panel_begin, panel_end, gates_in,
                           scratch);
        // The next chunk's pieces, spread evenly over this chunk's steps (at most one per slot of panels).
        int64_t pieces = 0, pieces_per_step = 0;
        if (look_ahead && (n + 1) * chunk < T) {
            int64_t next_begin, next_end;
            chunk_range(n + 1, &next_begin, &next_end);
            ahead.rows = (next_end - next_begin) * B;
            ahead.x = in.data + next_begin * in.time_stride;
            ahead.gates_in = workspace.gates_in.data() + ((n + 1) % 2) * workspace.chunk_floats;
            pieces = ceil_div(ahead.rows, kLookAheadPieceRows) * 4 * (panel_end - panel_begin);
            // Batch 2 (kernels.h: x_by_k). Each member its own copy, so no barrier before its pieces read it.
            if (B == 2) ahead.x_by_k = gather_k_major(ahead, workspace.x_by_k[team.index].data());
            if (precision_ == Precision::kBF16) {  // each member its own copy, as x_by_k
                uint16_t* rounded = workspace.next_x_bf16[team.index].data();
                round_rows_to_bf16(ahead.rows, ahead.input_size, ahead.x, ahead.x_stride, rounded, ahead.x_bf16_stride);
                ahead.x_bf16 = rounded;
            }
            pieces_per_step = ceil_div(pieces, t_end - t_begin);
        }
        for (int64_t i = 0; i < t_end - t_begin; ++i) {
            const int64_t t = reverse ? t_end - 1 - i : t_begin + i;
            const int64_t rows = rows_at(t);
            if (offsets && reverse && t + 1 < T && rows > rows_at(t + 1)) {
                // Rows [rows_at(t + 1), rows) start their reverse pass here, from their initial state: gather it
                // under the others' h_{t+1}. Once per distinct length.
                float* scratch = workspace.h_prev_scratch.data();
                const int64_t running = rows_at(t + 1);
                copy_columns(step.h_prev, step.h_prev_stride, running, column_begin, column_end, scratch, out_size);
                copy_columns(h0 ? h0 + running * out_size : nullptr, out_size, rows - running, column_begin,
                             column_end, scratch + running * out_size, out_size);
                team.sync();
                step.h_prev = scratch;
                step.h_prev_stride = out_size;
            }
            float* h_dst = out_step(t) + direction * out_size;
            step.batch = rows;
            step.gates_in = gates_in + (offsets ? offsets[t] - offsets[t_begin] : (t - t_begin) * B) * width;
            step.h_out = g.proj_size > 0 ? workspace.hidden_scratch.data() : h_dst;
            step.h_out_stride = g.proj_size > 0 ? H : out_batch_stride;
            if (pieces_per_step > 0) {
                ahead.piece_begin = std::min(pieces, i * pieces_per_step);
                ahead.piece_end = std::min(pieces, (i + 1) * pieces_per_step);
                if (precision_ == Precision::kBF16)
                    kernels_.bf16_lstm_step_look_ahead(step, ahead);
                else
                    kernels_.lstm_step_look_ahead(step, ahead);
            } else if (precision_ == Precision::kBF16) {
                kernels_.bf16_lstm_step(step);
            } else if (precision_ == Precision::kInt8) {
                kernels_.int8_lstm_step(step);
            } else {
                kernels_.lstm_step(step);
            }
            if (g.proj_size > 0) {
                team.sync();
                kernels_.gemm_panels(rows, std::min(g.proj_size, proj_end * block) - proj_begin * block, H,
                                     workspace.hidden_scratch.data(), H,
                                     cell.projection_panels.data() + proj_begin * block * H, block, nullptr,
                                     h_dst + proj_begin * block, out_batch_stride);
            }
            team.sync();
            step.h_prev = h_dst;
            step.h_prev_stride = out_batch_stride;
            step.recurrent_size = out_size;
        }
    }
    // h_n: each row's last h (h0 for a row without steps); complete since the last sync.
    float* h_n = args.h_n + cell_index * args.state_rows * out_size;
    if (!offsets) {
        if (T > 0)
            copy_columns(step.h_prev, step.h_prev_stride, B, column_begin, column_end, h_n, out_size);
        else
            copy_columns(h0, out_size, B, column_begin, column_end, h_n, out_size);
        return;
    }
    // Packed rows: the reverse direction ends every running row at t = 0; the forward one ends row b at its last
    // step, the last t that runs more than b rows.
    int64_t t_last = T - 1;
    for (int64_t b = 0; b < B; ++b) {
        if (!reverse)
            while (t_last >= 0 && rows_at(t_last) <= b) --t_last;
        const int64_t t_end_of_row = reverse ? (T > 0 && rows_at(0) > b ? 0 : -1) : t_last;
        const float* last = t_end_of_row >= 0 ? out_step(t_end_of_row) + b * out_batch_stride + direction * out_size
                                              : (h0 ? h0 + b * out_size : nullptr);
        copy_columns(last, out_size, 1, column_begin, column_end, h_n + b * out_size, out_size);
    }
}

// All layers. With two groups, group 0 runs the forward and group 1 the reverse direction of each layer at the
// same time; otherwise the group runs the directions one after the other. Everyone meets between layers.
void PackedLstm::run_layers(const ForwardArgs& args, const Team& everyone, const Team& group, int group_id,
                            int groups, Workspace& workspace, float* const layer_buffers[2]) const {
    FlushDenormals flush_denormals;
    const LstmGeometry& g = geometry_;
    const int64_t layer_width = g.num_directions * g.output_size();
    const int64_t buffer_time_stride = args.state_rows * layer_width;  // layer buffers hold all rows of the call
    for (int64_t layer = 0; layer < g.num_layers; ++layer) {
        const Sequence in = layer == 0 ? Sequence{args.x, args.x_time_stride, args.x_batch_stride, args.step_offsets}
                                       : Sequence{layer_buffers[(layer - 1) % 2], buffer_time_stride, layer_width,
                                                  args.step_offsets};
        const bool last = layer == g.num_layers - 1;
        float* out = last ? args.y : layer_buffers[layer % 2];
        const int64_t out_time_stride = last ? args.y_time_stride : buffer_time_stride;
        const int64_t out_batch_stride = last ? args.y_batch_stride : layer_width;
        for (int64_t direction = 0; direction < g.num_directions; ++direction)
            if (groups == 1 || direction == group_id)
                run_direction(args, layer, direction, in, out, out_time_stride, out_batch_stride, group, workspace);
        if (!last) everyone.sync();
    }
}

int PackedLstm::automatic_threads(int64_t steps, int64_t batch) const {
    const int64_t hardware = hardware_threads();
    const LstmGeometry& g = geometry_;
    if (steps == 0 || batch == 0) return 1;
    // Each thread gets at least 2^13 multiply-adds of a recurrent step: below that a step share takes a few hundred
    // nanoseconds and the barrier per step costs more than the thread saves. Measured at T = 100 on 2 cores, 1 vs
    // 2 threads: B = 1, H = 32 (4096 per step): 0.026 vs 0.033 ms; H = 64 (16384): 0.091 vs 0.068 ms; B = 16,
    // H = 32 (65536): 0.35 vs 0.26 ms. The two directions of a layer need no barrier between them, so they always
    // get a thread each.
    const int64_t step_work = batch * 4 * g.hidden_size * g.output_size();
    const int64_t by_work = std::max<int64_t>(1, step_work >> 13) * (g.num_directions == 2 ? 2 : 1);
    return static_cast<int>(std::min(hardware, std::max<int64_t>(by_work, g.num_directions)));
}

void PackedLstm::forward(const ForwardArgs& args, int threads) const {
    if (args.lengths) return forward_lengths(args, threads);
    // More threads than cores would make every barrier wait for a descheduled thread.
    threads = threads <= 0 ? automatic_threads(args.steps, args.batch) : std::min(threads, hardware_threads());
    const LstmGeometry& g = geometry_;
    const int64_t B = args.batch;
    const int64_t layer_width = g.num_directions * g.output_size();

    // Split the batch when every member gets rows and all the weights (input and recurrent, 32*H*H bytes when
    // I = H) fit in a core's L2 with room to spare: then the members never wait for each other. Otherwise split
    // the hidden units (and the directions), so that each core streams only its share of the weights: at B = 64,
    // H = 256 (1 MiB of recurrent weights) on 2 cores with 1 MiB of L2 each, that ran 1.06x faster than the
    // batch split (17.6 -> 16.7 ms), the barrier per step costing little next to a step of 64 rows.
    // Packed rows (variable lengths) change the batch from step to step: always split the hidden units there.
    const bool packed = args.step_offsets != nullptr;
    const int64_t recurrent_bytes = 4 * weight_bytes() * g.hidden_size * g.output_size();
    const bool split_batch =
        !packed && threads > 1 && B >= 4 * threads && recurrent_bytes <= (int64_t{1} << 18);
    const bool look_ahead = !packed && looks_ahead(B, threads);

    // Workspace, allocated before any thread starts so that an allocation failure is an exception of this thread.
    // With a batch split, slot s serves the rows of member s; slot 0 also serves the whole batch, since the pool
    // may give us a team of one.
    const int slots = split_batch ? threads : (g.num_directions == 2 && threads > 1 ? 2 : 1);
    std::vector<Workspace> workspaces;
    workspaces.reserve(slots);
    for (int s = 0; s < slots; ++s) {
        int64_t row_begin = 0, row_end = B;
        if (split_batch) share(B, s, threads, &row_begin, &row_end);
        workspaces.push_back(make_workspace(args.steps, row_end - row_begin, s == 0 ? B : 0, look_ahead, threads));
        if (packed) workspaces.back().h_prev_scratch = AlignedFloats(B * g.output_size());
    }
    const int64_t buffer_rows = packed ? args.step_offsets[args.steps] : args.steps * B;
    AlignedFloats buffers[2];
    for (int64_t i = 0; i < std::min<int64_t>(g.num_layers - 1, 2); ++i)
        buffers[i] = AlignedFloats(buffer_rows * layer_width);
    float* const layer_buffers[2] = {buffers[0].data(), buffers[1].data()};

    SpinBarrier everyone_barrier, group_barriers[2];
    ThreadPool::shared().run(threads, [&](int index, int size) {
        if (split_batch && size > 1) {
            int64_t row_begin, row_end;
            share(B, index, size, &row_begin, &row_end);
            ForwardArgs rows = args;
            rows.batch = row_end - row_begin;
            rows.x += row_begin * args.x_batch_stride;
            rows.y += row_begin * args.y_batch_stride;
            rows.h0 = args.h0 ? args.h0 + row_begin * g.output_size() : nullptr;
            rows.c0 = args.c0 ? args.c0 + row_begin * g.hidden_size : nullptr;
            rows.h_n += row_begin * g.output_size();
            rows.c_n += row_begin * g.hidden_size;
            float* const row_buffers[2] = {layer_buffers[0] ? layer_buffers[0] + row_begin * layer_width : nullptr,
                                           layer_buffers[1] ? layer_buffers[1] + row_begin * layer_width : nullptr};
            const Team solo{0, 1, &everyone_barrier};
            run_layers(rows, solo, solo, 0, 1, workspaces[index], row_buffers);
            return;
        }
        const Team everyone{index, size, &everyone_barrier};
        if (g.num_directions == 2 && size > 1) {
            const int group_id = index < size / 2 ? 0 : 1;
            const int group_begin = group_id == 0 ? 0 : size / 2;
            const int group_size = group_id == 0 ? size / 2 : size - size / 2;
            const Team group{index - group_begin, group_size, &group_barriers[group_id]};
            run_layers(args, everyone, group, group_id, 2, workspaces[group_id], layer_buffers);
        } else {
            run_layers(args, everyone, everyone, 0, 1, workspaces[0], layer_buffers);
        }
    });
}

// Rows of different lengths. Ordered by decreasing length (a stable order), the rows still running at step t are a
// prefix of the batch; gathered step after step into packed rows, each step's rows are contiguous, a chunk of steps
// is one matrix product of exactly its valid rows, and a finished row costs nothing. The packed run computes each
// row as the plain one would (the same kernels on the same rows), then its output goes back to the caller's layout,
// zero past each row's length.
void PackedLstm::forward_lengths(const ForwardArgs& args, int threads) const {
    const LstmGeometry& g = geometry_;
    const int64_t B = args.batch, I = g.input_size, H = g.hidden_size, out_size = g.output_size();
    const int64_t width = g.num_directions * out_size;
    const int64_t states = g.num_layers * g.num_directions;

    // All rows of one length: the plain run over that many steps (it may look ahead, and splits the batch when
    // that pays), then zeros.
    const int64_t shortest = B > 0 ? *std::min_element(args.lengths, args.lengths + B) : 0;
    if (B > 0 && *std::max_element(args.lengths, args.lengths + B) == shortest) {
        ForwardArgs plain = args;
        plain.steps = shortest;
        plain.lengths = nullptr;
        forward(plain, threads);
        for (int64_t t = shortest; t < args.steps; ++t)
            for (int64_t b = 0; b < B; ++b)
                std::memset(args.y + t * args.y_time_stride + b * args.y_batch_stride, 0, width * sizeof(float));
        return;
    }

    std::vector<int64_t> order(B);  // order[rank] = the caller's row
    for (int64_t b = 0; b < B; ++b) order[b] = b;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return args.lengths[a] > args.lengths[b]; });
    const int64_t T = B > 0 ? args.lengths[order[0]] : 0;
    std::vector<int64_t> offsets(T + 1, 0);
    for (int64_t t = 0, running = B; t < T; ++t) {
        while (running > 0 && args.lengths[order[running - 1]] <= t) --running;
        offsets[t + 1] = offsets[t] + running;
    }
    const int64_t rows = offsets[T];

    // All allocations before any work.
    AlignedFloats x(rows * I), y(rows * width), h0(args.h0 ? states * B * out_size : 0),
        c0(args.c0 ? states * B * H : 0), h_n(states * B * out_size), c_n(states * B * H);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t rank = 0; rank < offsets[t + 1] - offsets[t]; ++rank)
            std::memcpy(x.data() + (offsets[t] + rank) * I, args.x + t * args.x_time_stride + order[rank] * args.x_batch_stride,
                        I * sizeof(float));
    // States: (layers*directions, rows, size), rows reordered.
    auto reorder_states = [&](const float* from, int64_t from_rows, float* to, int64_t to_rows, int64_t size,
                              bool to_ranked) {
        for (int64_t s = 0; s < states; ++s)
            for (int64_t rank = 0; rank < B; ++rank) {
                const int64_t from_row = to_ranked ? order[rank] : rank, to_row = to_ranked ? rank : order[rank];
                std::memcpy(to + (s * to_rows + to_row) * size, from + (s * from_rows + from_row) * size,
                            size * sizeof(float));
            }
    };
    if (args.h0) reorder_states(args.h0, args.state_rows, h0.data(), B, out_size, true);
    if (args.c0) reorder_states(args.c0, args.state_rows, c0.data(), B, H, true);

    ForwardArgs packed;
    packed.steps = T;
    packed.batch = B;
    packed.x = x.data();
    packed.x_batch_stride = I;
    packed.y = y.data();
    packed.y_batch_stride = width;
    packed.h0 = args.h0 ? h0.data() : nullptr;
    packed.c0 = args.c0 ? c0.data() : nullptr;
    packed.h_n = h_n.data();
    packed.c_n = c_n.data();
    packed.state_rows = B;
    packed.step_offsets = offsets.data();
    forward(packed, threads);

    for (int64_t t = 0; t < args.steps; ++t) {
        const int64_t running = t < T ? offsets[t + 1] - offsets[t] : 0;
        for (int64_t rank = 0; rank < B; ++rank) {
            float* dst = args.y + t * args.y_time_stride + order[rank] * args.y_batch_stride;
            if (rank < running)
                std::memcpy(dst, y.data() + (offsets[t] + rank) * width, width * sizeof(float));
            else
                std::memset(dst, 0, width * sizeof(float));
        }
    }
    reorder_states(h_n.data(), B, args.h_n, args.state_rows, out_size, false);
    reorder_states(c_n.data(), B, args.c_n, args.state_rows, H, false);
}

PackedLinear::PackedLinear(const KernelSet& kernels, int64_t in_features, int64_t out_features, const float* weight,
                           const float* bias)
    : kernels_(kernels), in_features_(in_features), out_features_(out_features) {
    const int64_t block = kernels.hidden_block;
    const int64_t padded = ceil_div(out_features, block) * block;
    panels_ = AlignedFloats(padded * in_features);
    bias_ = AlignedFloats(padded);
    pack_projection_panels(weight, out_features, in_features, block, panels_.data());
    for (int64_t j = 0; j < padded; ++j) bias_.data()[j] = bias && j < out_features ? bias[j] : 0.0f;
}

void PackedLinear::forward(int64_t rows, const float* x, int64_t x_stride, float* out, int64_t out_stride,
                           bool softmax, int threads) const {
    // A second thread from 2^20 multiply-adds, as for a recurrent step the hand-off costs microseconds.
    const int64_t work = rows * in_features_ * out_features_;
    const int by_work = work >= (int64_t{1} << 20) ? hardware_threads() : 1;
    threads = threads <= 0 ? by_work : std::min(threads, hardware_threads());
    threads = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, rows)));
    ThreadPool::shared().run(threads, [&](int index, int size) {
        int64_t begin, end;
        share(rows, index, size, &begin, &end);
        if (begin == end) return;
        kernels_.gemm_panels(end - begin, out_features_, in_features_, x + begin * x_stride, x_stride,
                             panels_.data(), kernels_.hidden_block, bias_.data(), out + begin * out_stride,
                             out_stride);
        if (softmax) kernels_.softmax_rows(end - begin, out_features_, out + begin * out_stride, out_stride);
    });
}

}  // namespace fastlstm
