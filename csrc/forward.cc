// PackedLstm::forward: the plan's team of threads over the layers and directions, with the workspace and the
// buffers between layers allocated before any thread starts.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <memory>
#include <vector>

#include "cpu.h"
#include "direction_run.h"
#include "fastlstm/lstm.h"
#include "pack.h"
#include "plan.h"
#include "team.h"
#include "thread_pool.h"

namespace fastlstm {
namespace {

// How long the first member of a team that splits the hidden units waits for the others before it starts alone (they
// join it later: team.h, TeamSize). A worker spinning between calls starts within microseconds; one whose core
// sleeps can take milliseconds here, a while better spent on the first chunk.
constexpr auto kMembersWait = std::chrono::microseconds(50);
// How long a member waiting to join yields between two looks at the team.
constexpr auto kJoinLookAgain = std::chrono::microseconds(200);

std::atomic<int64_t> team_shrinks{0};    // times a team's first member took over every panel
std::atomic<int64_t> team_regrowths{0};  // times the others joined it again after a shrink
std::atomic<bool> late_join_forced{false};
std::atomic<int64_t> late_joins{0};  // teams that members joined after their first had started alone

// The first member: spins until everyone has arrived (the last one lets them all in) or kMembersWait has passed.
void wait_briefly_for_everyone(const TeamSize& sizing) {
    const auto give_up = std::chrono::steady_clock::now() + kMembersWait;
    for (int rounds = 1; !sizing.everyone(); ++rounds) {
        cpu_relax();
        if ((rounds & 63) == 0 && std::chrono::steady_clock::now() > give_up) return;
    }
}

}  // namespace

int64_t team_shrinks_so_far() { return team_shrinks.load(std::memory_order_relaxed); }
void count_team_shrink() { team_shrinks.fetch_add(1, std::memory_order_relaxed); }
int64_t team_regrowths_so_far() { return team_regrowths.load(std::memory_order_relaxed); }
void count_team_regrowth() { team_regrowths.fetch_add(1, std::memory_order_relaxed); }
void set_late_join_for_tests(bool on) { late_join_forced.store(on, std::memory_order_relaxed); }
int64_t late_joins_so_far() { return late_joins.load(std::memory_order_relaxed); }
void count_late_join() { late_joins.fetch_add(1, std::memory_order_relaxed); }

// Where a layer reads its input and writes its output: the call's x and y for the first and the last, otherwise the
// two buffers between layers in turn.
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

// All layers (from where the team stands, for a member joining late). With two groups, group 0 runs the forward and
// group 1 the reverse direction of each layer at the same time; otherwise the group runs the directions one after
// the other. Everyone meets between layers.
void PackedLstm::run_layers(const ForwardArgs& args, const Team& everyone, const Team& group, int group_id, int groups,
                            Workspace& workspace, float* const layer_buffers[2], const TeamJoinPoint* join) const {
    FlushDenormals flush_denormals;
    const LstmGeometry& g = geometry_;
    for (int64_t layer = join ? join->layer : 0; layer < g.num_layers; ++layer) {
        const LayerIo io = layer_io(args, layer, layer_buffers);
        for (int64_t direction = 0; direction < g.num_directions; ++direction)
            if (groups == 1 || direction == group_id)
                run_direction(args, layer, direction, io.in, io.out, io.out_time_stride, io.out_batch_stride, group,
                              workspace, join && layer == join->layer ? join : nullptr);
        if (everyone.solo() && everyone.index != 0) return;  // the team has shrunk: the first member goes on
        if (layer != g.num_layers - 1) everyone.sync();
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

    if (plan.claimed_directions) {
        forward_claimed(args, workspaces, layer_buffers);
        return;
    }
    SpinBarrier everyone_barrier, group_barriers[2];
    // A team splitting one direction's hidden units starts without members that are late and may shrink to its
    // first member (team.h: TeamSize); test modes force both.
    TeamSize sizing;
    sizing.force_shrink = handoffs_forced_for_tests();
    sizing.force_late_join = late_join_forced.load(std::memory_order_relaxed);
    const bool one_direction_team = g.num_directions == 1 && !plan.split_batch;
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
        const Team everyone{index, size, &everyone_barrier, one_direction_team && size > 1 ? &sizing : nullptr};
        if (everyone.sizing && index > 0) {  // start with the first, join it later, or go home
            for (;;) {
                sizing.arrive(size);
                while (sizing.waiting_to_join())
                    sizing.phase.wait_while_equal_for(sizing.phase.value.load(std::memory_order_relaxed),
                                                      kJoinLookAgain);
                if (!sizing.everyone()) return;
                const bool joined_late = sizing.join.layer >= 0;
                run_layers(args, everyone, everyone, 0, 1, workspaces[0], layer_buffers,
                           joined_late ? &sizing.join : nullptr);
                // Here at the end of the call, or stepped out of a shrunk team: come back later, unless it ends.
                if (!sizing.rest_after_shrink()) return;
            }
        }
        if (everyone.sizing) {
            if (!sizing.force_late_join) wait_briefly_for_everyone(sizing);
            sizing.start_first();
            run_layers(args, everyone, everyone, 0, 1, workspaces[0], layer_buffers);
            sizing.finish();
            return;
        }
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
        ThreadPool::shared().run(plan.threads, member, /*members_optional=*/one_direction_team);
}

}  // namespace fastlstm
