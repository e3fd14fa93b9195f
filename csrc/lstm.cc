// Weight packing and the sequence driver: hoisted input projection, then one fused kernel call per step.
#include "fastlstm/lstm.h"

#include <algorithm>
#include <cstring>

namespace fastlstm {
namespace {

constexpr int64_t kGates = 4;

// The input projection of a long sequence is computed in time chunks of at most this many floats, so that a
// (T x batch x 4H) buffer never has to exist whole: 16 Mi floats (64 MiB) is far past the point where the
// chunked products stop being efficient, and covers every sequence up to T*batch*4H = 16 Mi in one product.
constexpr int64_t kMaxProjectionFloats = int64_t{1} << 24;

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

void copy_rows(const float* src, int64_t src_stride, int64_t rows, int64_t columns, float* dst) {
    for (int64_t r = 0; r < rows; ++r)
        std::memcpy(dst + r * columns, src + r * src_stride, static_cast<std::size_t>(columns) * sizeof(float));
}

}  // namespace

PackedLstm::PackedLstm(const KernelSet& kernels, const LstmGeometry& geometry)
    : kernels_(kernels), geometry_(geometry), cells_(geometry.num_layers * geometry.num_directions) {}

int64_t PackedLstm::num_panels() const { return ceil_div(geometry_.hidden_size, kernels_.hidden_block); }

int64_t PackedLstm::gate_width() const { return num_panels() * kGates * kernels_.hidden_block; }

void PackedLstm::pack_cell(int64_t layer, int64_t direction, const CellWeights& w) {
    const int64_t hidden = geometry_.hidden_size;
    const int64_t block = kernels_.hidden_block;
    const int64_t input = geometry_.layer_input_size(layer);
    const int64_t recurrent = geometry_.output_size();

    PackedCell packed;
    packed.input_panels = AlignedFloats(gate_width() * input);
    packed.recurrent_panels = AlignedFloats(gate_width() * recurrent);
    packed.bias = AlignedFloats(gate_width());
    pack_gate_panels(w.w_ih, hidden, input, block, packed.input_panels.data());
    pack_gate_panels(w.w_hh, hidden, recurrent, block, packed.recurrent_panels.data());
    pack_gate_bias(w.b_ih, w.b_hh, hidden, block, packed.bias.data());
    if (geometry_.proj_size > 0) {
        packed.projection_panels = AlignedFloats(ceil_div(geometry_.proj_size, block) * block * hidden);
        pack_projection_panels(w.w_hr, geometry_.proj_size, hidden, block, packed.projection_panels.data());
    }
    cells_[layer * geometry_.num_directions + direction] = std::move(packed);
}

// gates_in[(t - t_begin) * batch + b] = bias + in[t, b] . w_ih^T for t in [t_begin, t_end): one matrix product
// when the sequence is time-major in memory, one per batch row (each over all the chunk's steps) otherwise.
void PackedLstm::project_inputs(const PackedCell& cell, const Sequence& in, int64_t layer_input_size, int64_t batch,
                                int64_t t_begin, int64_t t_end, float* gates_in) const {
    const int64_t width = gate_width();
    const int64_t panel_width = kGates * kernels_.hidden_block;
    const float* first = in.data + t_begin * in.time_stride;
    if (in.time_stride == batch * in.batch_stride) {
        kernels_.gemm_panels((t_end - t_begin) * batch, width, layer_input_size, first, in.batch_stride,
                             cell.input_panels.data(), panel_width, cell.bias.data(), gates_in, width);
        return;
    }
    for (int64_t b = 0; b < batch; ++b)
        kernels_.gemm_panels(t_end - t_begin, width, layer_input_size, first + b * in.batch_stride, in.time_stride,
                             cell.input_panels.data(), panel_width, cell.bias.data(), gates_in + b * width,
                             batch * width);
}

void PackedLstm::forward(const ForwardArgs& args) const {
    const LstmGeometry& g = geometry_;
    const int64_t T = args.steps;
    const int64_t B = args.batch;
    const int64_t H = g.hidden_size;
    const int64_t out_size = g.output_size();
    const int64_t D = g.num_directions;
    const int64_t layer_out_width = D * out_size;
    const int64_t width = gate_width();
    const int64_t chunk_steps = std::max<int64_t>(1, std::min<int64_t>(T, kMaxProjectionFloats / std::max<int64_t>(1, B * width)));

    // Workspace, allocated once for the call.
    AlignedFloats gates_in(chunk_steps * B * width);
    AlignedFloats hidden_scratch(g.proj_size > 0 ? B * H : 0);  // o * tanh(c) before the projection
    AlignedFloats zero_state(args.h0 ? 0 : B * out_size);
    zero_state.fill_zero();
    const int64_t between_layers = std::min<int64_t>(g.num_layers - 1, 2);
    AlignedFloats layer_buffers[2];
    for (int64_t i = 0; i < between_layers; ++i) layer_buffers[i] = AlignedFloats(T * B * layer_out_width);

    for (int64_t layer = 0; layer < g.num_layers; ++layer) {
        const Sequence in = layer == 0
                                ? Sequence{args.x, args.x_time_stride, args.x_batch_stride}
                                : Sequence{layer_buffers[(layer - 1) % 2].data(), B * layer_out_width, layer_out_width};
        const bool last_layer = layer == g.num_layers - 1;
        float* out = last_layer ? args.y : layer_buffers[layer % 2].data();
        const int64_t out_time_stride = last_layer ? args.y_time_stride : B * layer_out_width;
        const int64_t out_batch_stride = last_layer ? args.y_batch_stride : layer_out_width;

        for (int64_t direction = 0; direction < D; ++direction) {
            const int64_t cell_index = layer * D + direction;
            const PackedCell& cell = cells_[cell_index];
            const bool reverse = direction == 1;

            float* c = args.c_n + cell_index * B * H;
            if (args.c0)
                std::memcpy(c, args.c0 + cell_index * B * H, static_cast<std::size_t>(B * H) * sizeof(float));
            else
                std::memset(c, 0, static_cast<std::size_t>(B * H) * sizeof(float));

            LstmStepArgs step;
            step.batch = B;
            step.hidden_size = H;
            step.recurrent_size = out_size;
            step.panel_begin = 0;
            step.panel_end = num_panels();
            step.h_prev = args.h0 ? args.h0 + cell_index * B * out_size : zero_state.data();
            step.h_prev_stride = out_size;
            step.gates_in_stride = width;
            step.recurrent_panels = cell.recurrent_panels.data();
            step.c = c;
            step.c_stride = H;

            for (int64_t chunk = 0; chunk < T; chunk += chunk_steps) {
                const int64_t t_begin = reverse ? std::max<int64_t>(0, T - chunk - chunk_steps) : chunk;
                const int64_t t_end = reverse ? T - chunk : std::min(T, chunk + chunk_steps);
                project_inputs(cell, in, g.layer_input_size(layer), B, t_begin, t_end, gates_in.data());
                for (int64_t i = 0; i < t_end - t_begin; ++i) {
                    const int64_t t = reverse ? t_end - 1 - i : t_begin + i;
                    float* h_dst = out + t * out_time_stride + direction * out_size;
                    step.gates_in = gates_in.data() + (t - t_begin) * B * width;
                    if (g.proj_size > 0) {
                        step.h_out = hidden_scratch.data();
                        step.h_out_stride = H;
                        kernels_.lstm_step(step);
                        kernels_.gemm_panels(B, g.proj_size, H, hidden_scratch.data(), H,
                                             cell.projection_panels.data(), kernels_.hidden_block, nullptr, h_dst,
                                             out_batch_stride);
                    } else {
                        step.h_out = h_dst;
                        step.h_out_stride = out_batch_stride;
                        kernels_.lstm_step(step);
                    }
                    step.h_prev = h_dst;
                    step.h_prev_stride = out_batch_stride;
                }
            }
            copy_rows(step.h_prev, step.h_prev_stride, B, out_size, args.h_n + cell_index * B * out_size);
        }
    }
}

}  // namespace fastlstm
