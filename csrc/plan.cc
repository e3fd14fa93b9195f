// The forward plan: how many threads a call takes, whether they split the batch or the hidden units, whether small
// batches look ahead, how many steps a chunk of the input projection covers, and the workspace all that needs.
// Each tuning constant names the measurement that set it and the benchmark command that repeats it (run it on a
// build with the constant changed to compare).
#include <algorithm>
#include <vector>

#include "cpu.h"
#include "fastlstm/lstm.h"
#include "pack.h"
#include "plan.h"
#include "team.h"

namespace fastlstm {
namespace {

// The input projection is computed in chunks of about kProjectionRows (step, batch row) pairs, one matrix product
// per chunk, just before the steps that use it. 256 rows reuse each panel of W_ih enough for the product to run
// near peak, while the chunk's output (256 x 4H floats: 1 MiB at H = 256, 4 MiB at H = 1024) is still in cache
// when the steps read it; measured at B = 64, H = 512 on one core, the steps ran 1.3x faster than reading a
// whole-sequence projection back from memory (`python -m fastlstm bench --shapes 64x100x512 --threads 1`).
constexpr int64_t kProjectionRows = 256;

// Input and recurrent weights of a layer and direction, per thread, that stay in cache from one step to the next: a
// quarter of a 32 MiB L3 (see looks_ahead and fuses_input).
constexpr int64_t kCacheResidentWeightBytes = int64_t{8} << 20;

// Past that, a batch-1 float32 model still looks ahead while its gate weights, all layers' and directions' together,
// take at most kStreamedLookAheadWeightBytes of the shared L3, its pieces reading their input weights with
// non-temporal prefetches (see streams_look_ahead_inputs). B/A against the projection ahead, B=1 T=100, 5-7 paired
// rounds of tools/ab_compare.py on the Zen 4 (32 MiB L3): one layer of I=H=640 (12.5 MiB) 0.905 and 0.913 at 1
// thread; I=H=768 (18 MiB) 0.94-1.03 over four runs, two layers of it 1.12-1.20, two of I=H=640 0.99; I=512 H=1024
// (24 MiB) 1.17, I=H=896 (24.5 MiB) 1.29, I=H=1024 1.33 (1.81 without the prefetches), a bidirectional I=H=768 on
// 2 threads 1.47. At 2 threads a model under this limit stays under kCacheResidentWeightBytes a thread.
constexpr int64_t kStreamedLookAheadWeightBytes = int64_t{16} << 20;

// The steps of a sequence take their input projection themselves (fuses_input) from this many rows of a batch (a
// team member's rows, with a batch split). Batches of 1 and 2 take each weight vector for 1 or 2 multiply-adds, which
// the loads bound, where the projection ahead of the steps feeds each input weight to 6 rows: fused at every step,
// 2 rows a member (B = 4, H = 128 on 2 threads) ran 1.09x slower (21 rounds). They keep the projection ahead, or
// look ahead (but see kFusedPairMaxInputBytes).
constexpr int64_t kFusedInputMinRows = 3;

// A whole batch of 2 rows takes its input projection at every step too, instead of looking ahead, when a thread's
// share of the input weights is at most kFusedPairMaxInputBytes (a quarter of a core's L2): re-read at every step,
// they then cost less than the look-ahead's chunks (gates_in written and read back, pieces beside the recurrent
// product). B/A, fused against look-ahead, 11 paired rounds (`python tools/ab_compare.py A B --shapes
// 2x200x37x100-L1,...`), by a thread's share of the input weights (I x H):
//   62-256 KiB at 1 thread (37x100, 50x65, 64x64, 40x120, 50x128, 40x200, 64x256): 0.94-0.98;
//   32-237 KiB at 2 threads (37x100, 40x120, 128x128, 100x300): 0.85-1.00;
//   175 and 256 KiB at 1 thread (100x100, 128x128): 0.99-1.00;
//   288 KiB at 2 threads (192x192): 1.00; 400-600 KiB at 1 thread (160x160, 100x300, 192x192, 300x128): 1.01-1.06x
//   slower; 512 KiB at 2 threads and 1 MiB at 1 thread (256x256): 1.06x and 1.15x slower.
// Members of 2 rows of a batch split keep the projection ahead (B = 4-5 on 2 threads: 0.94-1.02, no clear gain).
constexpr int64_t kFusedPairMaxInputBytes = int64_t{1} << 18;

// Each thread of an automatic team gets at least this many multiply-adds of a recurrent step: below that a step
// share takes a few hundred nanoseconds and the barrier per step costs more than the thread saves. Measured at
// T = 100 on 2 cores, 1 vs 2 threads: B = 1, H = 32 (4096 per step): 0.026 vs 0.033 ms; H = 64 (16384): 0.091 vs
// 0.068 ms; B = 16, H = 32 (65536): 0.35 vs 0.26 ms
// (`python -m fastlstm bench --shapes 1x100x32,1x100x64,16x100x32 --threads 1,2`).
constexpr int64_t kMinStepWorkPerThread = int64_t{1} << 13;

// And each thread of an automatic team gets at least this many multiply-adds over the whole call (input and
// recurrent, every step, layer and direction; a call without an initial state has no recurrent product at its first
// step): a team also costs once per call, to hand the call to its workers and to wait for them, about 0.4 us on the
// Zen 4 and up to 3 us in the spells when its host puts the two CPUs far apart. One step (a stream's or a pool's
// step, a call of T = 1) pays it in full. Measured on the Zen 4 at T = 1, a process per count or build, medians of
// 3-7 (`tools/ab_compare.py` holds thread counts fixed):
//   1 vs 2 threads, no state: B = 1, H = 64 (16384 here): 2.11 vs 2.55 us; H = 80: 2.44 vs 4.85; H = 96: 2.89 vs
//   5.26; bidirectional, H = 64: 2.93 vs 6.43; 2 layers of H = 64: 2.95 vs 3.25; B = 4, H = 32: 1.89 vs 3.79;
//   where the team pays: bidirectional, H = 128 (131072): 7.01 vs 5.48; B = 16, H = 48 (147456): 5.61 vs 4.16;
//   a stream's step at B = 1, this rule (1 thread below 65536) against 2 threads: H = 64 (32768): 0.95; H = 80
//   (51200): 1.05; B = 4, H = 32 (32768): 0.48; and at 2 threads for H = 96 (73728): 1 thread took 1.19x as long.
constexpr int64_t kMinCallWorkPerThread = int64_t{1} << 15;

// The batch is split when every member gets at least kBatchSplitMinRows rows and the recurrent weights take at most
// kBatchSplitMaxRecurrentBytes (then all the weights, input and recurrent, fit in a core's L2 with room to spare, and
// the members never wait for each other). Otherwise the team splits the hidden units (and the directions), so that
// each core streams only its share of the weights: at B = 64, H = 256 (1 MiB of recurrent weights) on 2 cores with
// 1 MiB of L2 each, that ran 1.06x faster than the batch split (17.6 -> 16.7 ms), the barrier per step costing
// little next to a step of 64 rows (`python -m fastlstm bench --shapes 64x100x256 --threads 2`).
//
// Members of 2 rows or more beat the hidden split's barrier per step (2 threads, B/A of 15 paired rounds against a
// minimum of 4 rows: B = 7, I = 50, H = 65, T = 500: 0.84 and 0.89 in two runs; B = 6, H = 128: 0.93; B = 4 and 5:
// 0.98-1.00); members of one row do not (B = 2 and 3: 1.09-1.18, the 1-row tile feeding one multiply-add per weight
// loaded) (`python tools/ab_compare.py A B --shapes 7x500x50x65-L1,6x100x128x128-L1,5x100x100x100-L1,...`).
// A bidirectional layer has a barrier-free split of its own, a direction per thread (claimed_directions.cc), which
// beats members of fewer than 4 rows (B = 5: 1.22-1.23x slower split by rows at H = 31 and 64, 2 and 3 layers;
// B = 4, H = 100: 1.04x).
constexpr int64_t kBatchSplitMinRows = 2;
constexpr int64_t kBatchSplitMinRowsBidirectional = 4;
constexpr int64_t kBatchSplitMaxRecurrentBytes = int64_t{1} << 18;

}  // namespace

// Batches up to the variant's look_ahead_batches run the look-ahead step (kernels.h), whose chunks are
// kLookAheadSteps steps: the next chunk's input projection is computed during the current one's steps. That
// re-reads the input weights every 8 steps instead of once per 256 rows, which pays while a thread's input and
// recurrent weights stay in cache together; past kCacheResidentWeightBytes per thread they do not (measured at
// H = 1024, 32 MiB on one core: 1.8x slower than without; `python -m fastlstm bench --shapes 1x100x1024 --threads 1`).
bool PackedLstm::looks_ahead(int64_t batch, int threads) const {
    // The look-ahead kernels are float32, and bf16 at batch 1 where the variant says it pays.
    const bool kernels_look_ahead = precision_ == Precision::kF32    ? batch <= kernels_.look_ahead_batches
                                    : precision_ == Precision::kBF16 ? batch == 1 && kernels_.bf16_lstm_step_look_ahead
                                                                     : false;
    return batch >= 1 && kernels_look_ahead &&
           (weights_stay_in_cache(threads) || streams_look_ahead_inputs(batch, threads));
}

// Whether a look-ahead past kCacheResidentWeightBytes a thread pays with the pieces' input weights streamed
// (LookAheadProjection::stream_input_weights): float32 at batch 1, the gate weights of every layer and direction
// (counted at the widest layer's size) at most kStreamedLookAheadWeightBytes: they share one L3.
bool PackedLstm::streams_look_ahead_inputs(int64_t batch, int threads) const {
    const LstmGeometry& g = geometry_;
    const int64_t model_bytes =
        gate_weight_share(g.widest_layer_input() + g.output_size(), 1) * g.num_directions * g.num_layers;
    return precision_ == Precision::kF32 && batch == 1 && !weights_stay_in_cache(threads) &&
           model_bytes <= kStreamedLookAheadWeightBytes;
}

// Whether a thread's share of the widest layer's input and recurrent weights is at most kCacheResidentWeightBytes.
// Counted as float32 in every precision: bf16 weights of 8 MiB per thread ran 1.0-1.07x slower with look-ahead than
// without, the input weights re-read every 8 steps competing with the recurrent ones
// (`python -m fastlstm bench --shapes 1x100x1024 --threads 2 --precision bf16`).
bool PackedLstm::weights_stay_in_cache(int threads) const {
    const LstmGeometry& g = geometry_;
    return gate_weight_share(g.widest_layer_input() + g.output_size(), threads) <= kCacheResidentWeightBytes;
}

// Bytes of a layer and direction's gate weights over `depth` inputs, counted as float32, that one of `threads`
// threads reads: the two directions of a bidirectional layer run on different threads when there are several.
int64_t PackedLstm::gate_weight_share(int64_t depth, int threads) const {
    const int64_t per_direction = geometry_.num_directions == 2 && threads > 1 ? std::max(1, threads / 2) : threads;
    return gate_width() * depth * int64_t{sizeof(float)} / per_direction;
}

// Where a thread's share of the weights stays in cache, float32 steps take their input projection themselves
// (kernels.h: LstmStepArgs::x): the tile's accumulators go from the bias through x . W_ih and on through h . W_hh,
// with no gates_in written and read back, and W_ih is read from cache at every step instead of once per chunk.
// Streams' and pools' steps (a chunk of one step) always do, and so do the steps of sequences of kFusedInputMinRows
// rows or more, or of 2 rows with small input weights (fused_step_rows), which then run in chunks of one step. B/A
// against the projection ahead of the steps (`python tools/ab_compare.py A B --shapes ... --ticks 64x80x256 --steps
// 256x256`, 9-21 paired rounds):
//   batches of 3-64 rows, H = 65-513: 0.93-0.98 at 1 thread and 2 (B = 8, H = 512: 0.93 / 0.96; B = 24, H = 513:
//   0.94 / 0.96; B = 7, H = 65: 0.97 / 0.94; B = 64, H = 512: 0.95 / 0.97); 256 rows, H = 512: 0.93 / 0.95;
//   a tick of 64 sessions at I = 80, H = 256: 0.97 / 0.97; batch-1 steps at H = 256: 0.96-1.00.
// Past the cache the two weights' streams from memory interleave panel by panel and the step slows: H = 1024
// (32 MiB), a batch-1 step 1.14x, ticks of 8-32 sessions at 2 threads 1.02-1.07x.
bool PackedLstm::fuses_input(int threads) const {
    return precision_ == Precision::kF32 && weights_stay_in_cache(threads);
}

// The rows from which a sequence's batch (a member's rows, with a batch split) takes its input projection at every
// step; 0: none does. `batch` is the call's.
int64_t PackedLstm::fused_step_rows(int64_t batch, int threads, bool fuse_input, bool split_batch) const {
    if (!fuse_input) return 0;
    const bool pair = batch == 2 && !split_batch &&
                      gate_weight_share(geometry_.widest_layer_input(), threads) <= kFusedPairMaxInputBytes;
    return pair ? 2 : kFusedInputMinRows;
}

bool PackedLstm::fuses_every_step(int64_t batch, int64_t fused_step_rows) {
    return fused_step_rows > 0 && batch >= fused_step_rows;
}

int64_t PackedLstm::chunk_steps(int64_t steps, int64_t batch, bool look_ahead, int64_t fused_step_rows) const {
    if (look_ahead) return std::max<int64_t>(1, std::min(steps, kLookAheadSteps));
    if (fuses_every_step(batch, fused_step_rows)) return 1;
    const int64_t rows_per_step = std::max<int64_t>(1, batch);
    return std::max<int64_t>(1, std::min<int64_t>(steps, ceil_div(kProjectionRows, rows_per_step)));
}

// Scratch for running `batch` rows, or `other_batch` rows (0: none), whichever needs more. The input projection
// has room for one plain chunk, and with look-ahead for two of its chunks: the one being stepped through and the
// next. A planned look-ahead can still fall back to plain chunks (an input whose rows are not evenly spaced).
PackedLstm::Workspace PackedLstm::make_workspace(int64_t steps, int64_t batch, int64_t other_batch, bool look_ahead,
                                                 int64_t fused_step_rows, int members) const {
    int64_t plain_rows = 0, look_ahead_rows = 0;
    for (const int64_t b : {batch, other_batch}) {
        // Plain chunks with the input fused never project (continue_direction): they need no gates_in.
        if (!fuses_every_step(b, fused_step_rows))
            plain_rows = std::max(plain_rows, chunk_steps(steps, b, false, 0) * b);
        if (look_ahead) look_ahead_rows = std::max(look_ahead_rows, chunk_steps(steps, b, true, 0) * b);
    }
    const LstmGeometry& g = geometry_;
    const int64_t widest_input = g.widest_layer_input();
    const int64_t widest_batch = std::max(batch, other_batch);
    Workspace workspace;
    workspace.look_ahead = look_ahead;
    workspace.stream_look_ahead_inputs = look_ahead && !weights_stay_in_cache(members);
    workspace.fuse_input = fused_step_rows > 0;  // fused_step_rows: 0 exactly when the plan does not fuse
    workspace.fused_step_rows = fused_step_rows;
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
        const int64_t values = std::max(plain_rows * (widest_input + 1), widest_batch * (g.output_size() + 1));
        for (int member = 0; member < members; ++member) workspace.bf16_rows.emplace_back(values);
    }
    if (precision_ == Precision::kInt8) {
        const int64_t rows = std::max(plain_rows, widest_batch);
        const int64_t values = std::max(plain_rows * (widest_input + 3), widest_batch * (g.output_size() + 3));
        for (int member = 0; member < members; ++member) {
            workspace.int8_rows.emplace_back(values);
            workspace.int8_scales.emplace_back(rows);
        }
    }
    return workspace;
}

int PackedLstm::automatic_threads(int64_t steps, int64_t batch, bool initial_state) const {
    const int64_t hardware = hardware_threads();
    const LstmGeometry& g = geometry_;
    if (steps == 0 || batch == 0) return 1;
    // The two directions of a layer need no barrier between them, so they get a thread each, unless the whole call
    // is too short for a team.
    const int64_t step_work = batch * 4 * g.hidden_size * g.output_size();
    const int64_t by_step = std::max<int64_t>(1, step_work / kMinStepWorkPerThread) * (g.num_directions == 2 ? 2 : 1);
    // In double: the product can pass int64 for absurd sizes, and only its order matters here.
    double input_depth = 0;
    for (int64_t layer = 0; layer < g.num_layers; ++layer)
        input_depth += static_cast<double>(g.layer_input_size(layer));
    const double recurrent_steps = static_cast<double>(initial_state ? steps : steps - 1);
    const double call_work = static_cast<double>(batch) * 4 * static_cast<double>(g.hidden_size) * g.num_directions *
                             (static_cast<double>(steps) * input_depth +
                              recurrent_steps * static_cast<double>(g.num_layers * g.output_size()));
    const int64_t by_call = call_work >= static_cast<double>(hardware * kMinCallWorkPerThread)
                                ? hardware
                                : std::max<int64_t>(1, static_cast<int64_t>(call_work) / kMinCallWorkPerThread);
    return static_cast<int>(std::min({hardware, std::max<int64_t>(by_step, g.num_directions), by_call}));
}

PackedLstm::ForwardPlan PackedLstm::plan_forward(const ForwardArgs& args, int threads) const {
    const LstmGeometry& g = geometry_;
    ForwardPlan plan;
    // More threads than cores would make every barrier wait for a descheduled thread.
    plan.threads = threads <= 0 ? automatic_threads(args.steps, args.batch, args.h0 != nullptr)
                                : std::min(threads, hardware_threads());
    // Packed rows (variable lengths) change the batch from step to step: always split the hidden units there.
    plan.packed_rows = args.step_offsets != nullptr;
    const int64_t recurrent_bytes = 4 * weight_bytes() * g.hidden_size * g.output_size();
    const int64_t min_rows = g.num_directions == 2 ? kBatchSplitMinRowsBidirectional : kBatchSplitMinRows;
    const auto splits_batch = [&](int threads_now) {
        return !plan.packed_rows && threads_now > 1 && args.batch >= min_rows * threads_now &&
               recurrent_bytes <= kBatchSplitMaxRecurrentBytes;
    };
    plan.split_batch = splits_batch(plan.threads);
    // The automatic count gives a team that splits one direction's hidden units no more members than panels: the
    // others would only meet at every step. Packed rows of a small model get there (H = 16, B = 64, T = 50, variable
    // lengths, AVX-512: 2 threads 161 us, 1 thread 136 us). A count the user sets is still the count used.
    if (threads <= 0 && !plan.split_batch && g.num_directions == 1 && plan.threads > num_panels()) {
        plan.threads = static_cast<int>(num_panels());  // at least 1: H >= 1
        plan.split_batch = splits_batch(plan.threads);
    }
    plan.claimed_directions = g.num_directions == 2 && plan.threads == 2 && !plan.split_batch;
    // Claimed directions project each chunk with the other thread's help (claimed_directions.cc): not fused.
    plan.fuse_input = !plan.packed_rows && !plan.claimed_directions && fuses_input(plan.threads);
    plan.fused_step_rows = fused_step_rows(args.batch, plan.threads, plan.fuse_input, plan.split_batch);
    // A batch that takes its input projection at every step has nothing to look ahead for.
    plan.look_ahead = !plan.packed_rows && looks_ahead(args.batch, plan.threads) &&
                      !fuses_every_step(args.batch, plan.fused_step_rows);
    if (plan.split_batch)
        plan.workspace_slots = plan.threads;
    else if (plan.claimed_directions)
        plan.workspace_slots = g.num_layers > 1 ? 4 : 2;  // claimed_directions.cc: ClaimedLayers
    else
        plan.workspace_slots = g.num_directions == 2 && plan.threads > 1 ? 2 : 1;
    return plan;
}

// Allocated before any thread starts, so that an allocation failure is an exception of the calling thread. With a
// batch split, slot s serves the rows of member s; slot 0 also serves the whole batch, since the pool may give us a
// team of one.
std::vector<PackedLstm::Workspace> PackedLstm::make_workspaces(const ForwardArgs& args, const ForwardPlan& plan) const {
    const int64_t B = args.batch;
    std::vector<Workspace> workspaces;
    workspaces.reserve(plan.workspace_slots);
    for (int s = 0; s < plan.workspace_slots; ++s) {
        int64_t row_begin = 0, row_end = B;
        if (plan.split_batch) share(B, s, plan.threads, &row_begin, &row_end);
        workspaces.push_back(make_workspace(args.steps, row_end - row_begin, s == 0 ? B : 0, plan.look_ahead,
                                            plan.fused_step_rows, plan.threads));
        if (plan.packed_rows) workspaces.back().h_prev_scratch = AlignedFloats(B * geometry_.output_size());
    }
    return workspaces;
}

}  // namespace fastlstm
