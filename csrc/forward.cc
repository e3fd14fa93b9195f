// PackedLstm::forward: the plan's team of threads over the layers and directions, with the workspace and the
// buffers between layers allocated before any thread starts.
#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#include "cpu.h"
#include "fastlstm/lstm.h"
#include "plan.h"
#include "team.h"
#include "thread_pool.h"

namespace fastlstm {

// Where a layer reads its input and writes its output: the call's x and y for the first and the last, otherwise the
// two buffers between layers in turn.
struct PackedLstm::LayerIo {
    Sequence in;
    float* out;
    int64_t out_time_stride, out_batch_stride;
};

PackedLstm::LayerIo PackedLstm::layer_io(const ForwardArgs& args, int64_t layer, float* const layer_buffers[2]) const {
    const LstmGeometry& g = geometry_;
    const int64_t layer_width = g.num_directions * g.output_size();
    const int64_t buffer_time_stride = args.state_rows * layer_width;  // layer buffers hold all rows of the call
    const Sequence in =
        layer == 0 ? Sequence{args.x, args.x_time_stride, args.x_batch_stride, args.step_offsets}
                   : Sequence{layer_buffers[(layer - 1) % 2], buffer_time_stride, layer_width, args.step_offsets};
    if (layer == g.num_layers - 1) return {in, args.y, args.y_time_stride, args.y_batch_stride};
    return {in, layer_buffers[layer % 2], buffer_time_stride, layer_width};
}

// All layers. With two groups, group 0 runs the forward and group 1 the reverse direction of each layer at the
// same time; otherwise the group runs the directions one after the other. Everyone meets between layers.
void PackedLstm::run_layers(const ForwardArgs& args, const Team& everyone, const Team& group, int group_id, int groups,
                            Workspace& workspace, float* const layer_buffers[2]) const {
    FlushDenormals flush_denormals;
    const LstmGeometry& g = geometry_;
    for (int64_t layer = 0; layer < g.num_layers; ++layer) {
        const LayerIo io = layer_io(args, layer, layer_buffers);
        for (int64_t direction = 0; direction < g.num_directions; ++direction)
            if (groups == 1 || direction == group_id)
                run_direction(args, layer, direction, io.in, io.out, io.out_time_stride, io.out_batch_stride, group,
                              workspace);
        if (layer != g.num_layers - 1) everyone.sync();
    }
}

// The directions of a bidirectional model on two threads, as pieces that either thread takes: piece 2 l + d is
// direction d of layer l, run whole by the thread that took it (as a group of one, so the results are those of any
// other team), once both directions of layer l - 1 are done. Thread i takes direction i of a layer first, as the
// fixed split does, so that each keeps the same direction's weights in its cache from call to call; then the other
// one if nobody has. A thread that has no core, or starts late, thus holds up nobody: the other runs what it has
// not taken. A thread runs its pieces in layer order, so every piece it waits for is taken by a thread that runs it.
struct PackedLstm::ClaimedLayers {
    explicit ClaimedLayers(int64_t layers) : taken(new std::atomic<bool>[2 * layers]()) {}
    std::unique_ptr<std::atomic<bool>[]> taken;
    WaitWord done;  // pieces done
};

void PackedLstm::run_claimed_layers(const ForwardArgs& args, int index, ClaimedLayers& claims,
                                    std::vector<Workspace>& workspaces, float* const layer_buffers[2]) const {
    FlushDenormals flush_denormals;
    const LstmGeometry& g = geometry_;
    const Team alone{0, 1, nullptr};
    for (int64_t layer = 0; layer < g.num_layers; ++layer) {
        for (const int64_t direction : {index % 2, 1 - index % 2}) {
            if (claims.taken[2 * layer + direction].exchange(true, std::memory_order_relaxed)) continue;
            const uint32_t inputs_done = static_cast<uint32_t>(2 * layer);
            for (uint32_t done; (done = claims.done.value.load(std::memory_order_acquire)) < inputs_done;)
                claims.done.wait_while_equal(done);
            const LayerIo io = layer_io(args, layer, layer_buffers);
            run_direction(args, layer, direction, io.in, io.out, io.out_time_stride, io.out_batch_stride, alone,
                          workspaces[direction]);
            claims.done.value.fetch_add(1, std::memory_order_seq_cst);
            claims.done.notify();
        }
    }
}

void PackedLstm::forward(const ForwardArgs& args, int threads, ForwardCache* cache) const {
    if (args.lengths) return forward_lengths(args, threads);
    const ForwardCache::Claim claim(cache);
    forward_in(args, threads, claim.scratch());
}

void PackedLstm::forward_in(const ForwardArgs& args, int threads, CallScratch* kept) const {
    const ForwardPlan plan = plan_forward(args, threads);
    const LstmGeometry& g = geometry_;
    const int64_t B = args.batch;
    const int64_t layer_width = g.num_directions * g.output_size();
    CallScratch call_scratch;
    CallScratch& scratch = prepare_scratch(args, plan, kept ? kept : &call_scratch);
    std::vector<Workspace>& workspaces = scratch.workspaces;
    float* const layer_buffers[2] = {scratch.layer_buffers[0].data(), scratch.layer_buffers[1].data()};

    if (g.num_directions == 2 && plan.threads == 2 && !plan.split_batch) {
        ClaimedLayers claims(g.num_layers);
        ThreadPool::shared().run(
            2, [&](int index, int) { run_claimed_layers(args, index, claims, workspaces, layer_buffers); },
            /*members_optional=*/true);
        return;
    }
    SpinBarrier everyone_barrier, group_barriers[2];
    const auto member = [&](int index, int size) {
        if (plan.split_batch && size > 1) {
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
    };
    // A team of one runs on the calling thread, without the pool's lock and task object: a step of a small model
    // takes a few hundred nanoseconds, about what they cost.
    if (plan.threads <= 1)
        member(0, 1);
    else
        ThreadPool::shared().run(plan.threads, member);
}

}  // namespace fastlstm
