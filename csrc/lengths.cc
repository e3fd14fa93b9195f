// Variable lengths: PackedLstm::forward with ForwardArgs::lengths, run as packed rows.
#include <algorithm>
#include <cstring>
#include <vector>

#include "fastlstm/aligned_buffer.h"
#include "fastlstm/lstm.h"

namespace fastlstm {
namespace {

// The rows by decreasing length, a stable order: order[rank] = the caller's row.
std::vector<int64_t> rows_by_length(const int64_t* lengths, int64_t batch) {
    std::vector<int64_t> order(batch);
    for (int64_t b = 0; b < batch; ++b) order[b] = b;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
    return order;
}

// offsets[t]: the packed rows of the steps before t, each step running the rows still that long (a prefix of
// `order`); offsets[steps] is the number of packed rows (ForwardArgs::step_offsets).
std::vector<int64_t> step_offsets(const int64_t* lengths, const std::vector<int64_t>& order, int64_t steps) {
    std::vector<int64_t> offsets(steps + 1, 0);
    for (int64_t t = 0, running = static_cast<int64_t>(order.size()); t < steps; ++t) {
        while (running > 0 && lengths[order[running - 1]] <= t) --running;
        offsets[t + 1] = offsets[t] + running;
    }
    return offsets;
}

}  // namespace

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

    std::vector<int64_t> order = rows_by_length(args.lengths, B);
    const int64_t T = B > 0 ? args.lengths[order[0]] : 0;
    const std::vector<int64_t> offsets = step_offsets(args.lengths, order, T);
    const int64_t rows = offsets[T];

    // All allocations before any work.
    AlignedFloats x(rows * I), y(rows * width), h0(args.h0 ? states * B * out_size : 0),
        c0(args.c0 ? states * B * H : 0), h_n(states * B * out_size), c_n(states * B * H);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t rank = 0; rank < offsets[t + 1] - offsets[t]; ++rank)
            std::memcpy(x.data() + (offsets[t] + rank) * I,
                        args.x + t * args.x_time_stride + order[rank] * args.x_batch_stride, I * sizeof(float));
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

}  // namespace fastlstm
