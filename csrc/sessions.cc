// What many short calls share: the scratch a ForwardCache keeps from one call to the next (a stream's steps, a
// pool's ticks), and the step of a pool's sessions, whose states sit at any rows of the pool's arrays.
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "fastlstm/lstm.h"
#include "plan.h"

namespace fastlstm {

ForwardCache::ForwardCache() : scratch_(new PackedLstm::CallScratch) {}
ForwardCache::~ForwardCache() = default;

namespace {

bool same_geometry(const LstmGeometry& a, const LstmGeometry& b) {
    return a.input_size == b.input_size && a.hidden_size == b.hidden_size && a.proj_size == b.proj_size &&
           a.num_layers == b.num_layers && a.num_directions == b.num_directions && a.reverse == b.reverse;
}

// Copies `rows` rows of `width` floats of each of `layers` layers between the pool's state (rows `slots[i]` of
// `capacity`) and consecutive rows.
void gather_rows(int64_t layers, int64_t rows, int64_t width, const int64_t* slots, int64_t capacity, const float* pool,
                 float* gathered) {
    const std::size_t bytes = static_cast<std::size_t>(width) * sizeof(float);
    for (int64_t l = 0; l < layers; ++l)
        for (int64_t i = 0; i < rows; ++i)
            std::memcpy(gathered + (l * rows + i) * width, pool + (l * capacity + slots[i]) * width, bytes);
}

void scatter_rows(int64_t layers, int64_t rows, int64_t width, const int64_t* slots, int64_t capacity,
                  const float* gathered, float* pool) {
    const std::size_t bytes = static_cast<std::size_t>(width) * sizeof(float);
    for (int64_t l = 0; l < layers; ++l)
        for (int64_t i = 0; i < rows; ++i)
            std::memcpy(pool + (l * capacity + slots[i]) * width, gathered + (l * rows + i) * width, bytes);
}

}  // namespace

std::vector<int64_t> open_session_slots(const int64_t* generations, int64_t capacity, const int64_t* ids, int64_t n,
                                        int64_t* slots) {
    constexpr int64_t kSlotMask = (int64_t{1} << kSessionSlotBits) - 1;
    std::vector<std::pair<int64_t, int64_t>> listed;  // (slot, row) of the open ids, to find one listed twice
    listed.reserve(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        const int64_t slot = ids[i] & kSlotMask, generation = ids[i] >> kSessionSlotBits;
        const bool open = ids[i] >= 0 && slot < capacity && generations[slot] == generation;
        slots[i] = open ? slot : -1;
        if (open) listed.emplace_back(slot, i);
    }
    std::sort(listed.begin(), listed.end());
    for (std::size_t k = 1; k < listed.size(); ++k)
        if (listed[k].first == listed[k - 1].first) slots[listed[k].second] = -1;  // the later listing
    std::vector<int64_t> refused;
    for (int64_t i = 0; i < n; ++i)
        if (slots[i] < 0) refused.push_back(i);
    return refused;
}

PackedLstm::CallScratch& PackedLstm::prepare_scratch(const ForwardArgs& args, const ForwardPlan& plan,
                                                     CallScratch* scratch) const {
    CallScratch& s = *scratch;
    // Counts the call, and sets where its steps' panel order starts (plan.h: Workspace::descending_first).
    auto next_call = [](CallScratch& counted) -> CallScratch& {
        ++counted.calls;
        for (Workspace& workspace : counted.workspaces) workspace.descending_first = counted.calls % 2 == 0;
        return counted;
    };
    const bool reusable = !plan.packed_rows && s.owner == this && s.kernels == &kernels_ &&
                          same_geometry(s.geometry, geometry_) && s.precision == precision_ && s.steps == args.steps &&
                          s.batch == args.batch && s.threads == plan.threads && s.split_batch == plan.split_batch &&
                          s.look_ahead == plan.look_ahead && s.fused_step_rows == plan.fused_step_rows;
    if (reusable) return next_call(s);
    s.owner = nullptr;  // invalid until complete (an allocation may throw)
    const LstmGeometry& g = geometry_;
    s.workspaces = make_workspaces(args, plan);
    const int64_t buffer_rows = plan.packed_rows ? args.step_offsets[args.steps] : args.steps * args.batch;
    for (int64_t i = 0; i < 2; ++i)
        s.layer_buffers[i] =
            i < g.num_layers - 1 ? AlignedFloats(buffer_rows * g.num_directions * g.output_size()) : AlignedFloats();
    s.owner = this;
    s.kernels = &kernels_;
    s.geometry = geometry_;
    s.precision = precision_;
    s.steps = args.steps;
    s.batch = args.batch;
    s.threads = plan.threads;
    s.split_batch = plan.split_batch;
    s.look_ahead = plan.look_ahead;
    s.fused_step_rows = plan.fused_step_rows;
    return next_call(s);
}

void PackedLstm::step_rows(const RowStepArgs& args, int threads, ForwardCache* cache) const {
    const LstmGeometry& g = geometry_;
    const int64_t n = args.rows, out_size = g.output_size(), H = g.hidden_size;
    if (n == 0) return;
    ForwardArgs step;
    step.steps = 1;
    step.batch = n;
    step.x = args.x;
    step.x_time_stride = n * g.input_size;
    step.x_batch_stride = g.input_size;
    step.y = args.y;
    step.y_time_stride = n * g.num_directions * out_size;
    step.y_batch_stride = g.num_directions * out_size;
    // Sessions at consecutive slots (a full pool stepped in order, say) are a sub-batch of the pool's rows: the
    // kernels read and write their states where they are.
    bool consecutive = true;
    for (int64_t i = 1; consecutive && i < n; ++i) consecutive = args.slots[i] == args.slots[0] + i;
    if (consecutive) {
        step.h0 = step.h_n = args.h + args.slots[0] * out_size;
        step.c0 = step.c_n = args.c + args.slots[0] * H;
        step.state_rows = args.capacity;
        forward(step, threads, cache);
        return;
    }
    const ForwardCache::Claim claim(cache);
    CallScratch own;
    step_gathered(args, step, claim.scratch() ? *claim.scratch() : own, threads);
}

// step_rows for sessions at any slots: their states gathered into s, stepped there, and written back.
void PackedLstm::step_gathered(const RowStepArgs& args, ForwardArgs& step, CallScratch& s, int threads) const {
    const LstmGeometry& g = geometry_;
    const int64_t n = args.rows, out_size = g.output_size(), H = g.hidden_size;
    const int64_t layers = g.num_layers * g.num_directions;
    if (s.gathered_h.size() < layers * n * out_size) s.gathered_h = AlignedFloats(layers * n * out_size);
    if (s.gathered_c.size() < layers * n * H) s.gathered_c = AlignedFloats(layers * n * H);
    float* h = s.gathered_h.data();
    float* c = s.gathered_c.data();
    gather_rows(layers, n, out_size, args.slots, args.capacity, args.h, h);
    gather_rows(layers, n, H, args.slots, args.capacity, args.c, c);
    step.h0 = step.h_n = h;
    step.c0 = step.c_n = c;
    step.state_rows = n;
    forward_in(step, threads, &s);
    scatter_rows(layers, n, out_size, args.slots, args.capacity, h, args.h);
    scatter_rows(layers, n, H, args.slots, args.capacity, c, args.c);
}

}  // namespace fastlstm
