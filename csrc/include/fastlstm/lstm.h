// The fastlstm core: a multi-layer, optionally bidirectional LSTM with optional projection (LSTMP), float32,
// PyTorch semantics and gate order (i, f, g, o). Python-free: raw pointers, sizes and strides. Callers validate
// shapes; the core trusts them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "fastlstm/aligned_buffer.h"
#include "fastlstm/kernels.h"

namespace fastlstm {

// How the packed weights are stored and multiplied (kernels.h): float32; bf16 weights times bf16-rounded operands
// with float32 sums; or int8 weights (per-row scales) times operands quantized per row, summed in int32.
// Activations, the cell state and the outputs are float32 in all.
enum class Precision : int32_t {
    kF32 = 0,
    kBF16 = 1,
    kInt8 = 2,
};

struct LstmGeometry {
    int64_t input_size = 0;
    int64_t hidden_size = 0;
    int64_t proj_size = 0;  // 0: no projection
    int64_t num_layers = 1;
    int64_t num_directions = 1;  // 1, or 2 when bidirectional
    bool reverse = false;        // with one direction: it reads the sequence backwards (ONNX direction "reverse")

    int64_t output_size() const { return proj_size > 0 ? proj_size : hidden_size; }
    int64_t layer_input_size(int64_t layer) const { return layer == 0 ? input_size : num_directions * output_size(); }
    // The largest input of any layer: what a workspace sized for every layer's inputs holds per row.
    int64_t widest_layer_input() const {
        return num_layers > 1 && layer_input_size(1) > input_size ? layer_input_size(1) : input_size;
    }
};

// The weights of one layer and direction as PyTorch stores them, row-major:
// w_ih (4H x layer input), w_hh (4H x output size), b_ih and b_hh (4H) or null, w_hr (P x H) or null.
struct CellWeights {
    const float* w_ih = nullptr;
    const float* w_hh = nullptr;
    const float* b_ih = nullptr;
    const float* b_hh = nullptr;
    const float* w_hr = nullptr;
    // A cell other than the standard one, or null: its activations, clip and input_forget, and peepholes (3 x H,
    // rows p_i, p_f, p_o), copied at packing (options->peepholes is not read; this one is).
    const CellOptions* options = nullptr;
    const float* peepholes = nullptr;
};

// One forward call. Element (t, b, j) of x is x[t*x_time_stride + b*x_batch_stride + j]; likewise for y, whose
// rows hold num_directions * output_size values (forward direction first). h0 is (layers*directions, state_rows,
// output_size), c0 is (layers*directions, state_rows, hidden_size), both contiguous, null meaning zeros; h_n and
// c_n have the same shapes and receive the final states. state_rows is the batch, except for a sub-batch, which
// uses the rows [0, batch) of states laid out for more.
struct ForwardArgs {
    int64_t steps = 0;
    int64_t batch = 0;
    const float* x = nullptr;
    int64_t x_time_stride = 0;
    int64_t x_batch_stride = 0;
    float* y = nullptr;
    int64_t y_time_stride = 0;
    int64_t y_batch_stride = 0;
    // h0 / c0 may be null (zeros) or the very arrays h_n / c_n (a state updated in place); no other overlap.
    const float* h0 = nullptr;
    const float* c0 = nullptr;
    float* h_n = nullptr;
    float* c_n = nullptr;
    int64_t state_rows = 0;
    // Variable lengths, or null: row b's sequence is its first lengths[b] steps (0 <= lengths[b] <= steps). Its
    // output is zero past them, its final state is taken after its last step, and the reverse direction starts at
    // its last step. A finished row costs no more work.
    const int64_t* lengths = nullptr;
    // Packed rows (internal to forward with lengths), or null: the steps' rows are stored one after the other, step
    // t holding rows [0, step_offsets[t+1] - step_offsets[t]) of the batch (a non-increasing count) at rows
    // step_offsets[t] ... of x and y, whose batch strides are then row strides and time strides are unused.
    const int64_t* step_offsets = nullptr;
};

// One step of `rows` sessions of a pool (rows distinct): row i reads x[i * input_size ...] and writes
// y[i * output_size ...], and its state is row slots[i] of h (layers, capacity, output_size) and c (layers,
// capacity, hidden_size), read and written in place. Contiguous, as the pool holds them.
struct RowStepArgs {
    int64_t rows = 0;
    const float* x = nullptr;
    float* y = nullptr;
    const int64_t* slots = nullptr;
    int64_t capacity = 0;
    float* h = nullptr;
    float* c = nullptr;
};

// A pool's session ids are generation << kSessionSlotBits | slot (src/fastlstm/_sessions.py).
constexpr int kSessionSlotBits = 32;

// The slots of the `n` session ids `ids` that are open in a pool whose slot s holds generation generations[s] (-1:
// free), each id taken once, in slots[i]; returns the rows i whose id is not (never opened, closed, its slot reused,
// or listed before), their slots[i] -1 (sessions.cc). Only reads `generations`, which Python reads without the
// pool's lock.
std::vector<int64_t> open_session_slots(const int64_t* generations, int64_t capacity, const int64_t* ids, int64_t n,
                                        int64_t* slots);

class ForwardCache;
struct TeamJoinPoint;  // csrc/team.h

class PackedLstm {
   public:
    // Throws std::invalid_argument for precision int8 when a layer's input or the recurrent size is longer than
    // kInt8MaxDepth (fastlstm/int8.h), whose sums would overflow.
    PackedLstm(const KernelSet& kernels, const LstmGeometry& geometry, Precision precision = Precision::kF32);

    // Packs (or repacks) the weights of one layer and direction into the kernels' panel layout.
    void pack_cell(int64_t layer, int64_t direction, const CellWeights& weights);

    // Runs the whole sequence through every layer and direction on up to `threads` threads of the shared pool
    // (0: chosen from the problem size). Results are bitwise the same for any number of threads. Allocates its
    // workspace once per call, never per step; throws std::bad_alloc when it cannot.
    // With a cache (see ForwardCache), calls of the same shape and plan reuse its workspaces.
    void forward(const ForwardArgs& args, int threads, ForwardCache* cache = nullptr) const;

    // One step of the sessions at args.slots (sessions.cc): their states gathered into consecutive rows (unless
    // they already are), one forward step of them all, the states written back. Each row's result is bitwise that
    // of the same step alone (a row's arithmetic never depends on its batch).
    void step_rows(const RowStepArgs& args, int threads, ForwardCache* cache) const;

    // The number of threads forward() uses for `threads` = 0 on this problem (with h0 given or not).
    int automatic_threads(int64_t steps, int64_t batch, bool initial_state) const;

    const LstmGeometry& geometry() const { return geometry_; }
    const KernelSet& kernels() const { return kernels_; }
    Precision precision() const { return precision_; }

   private:
   public:
    struct CallScratch;  // csrc/plan.h: what a ForwardCache keeps (opaque outside the core's sources)

   private:
    struct PackedCell {
        AlignedFloats input_panels;               // gate panels of w_ih (precision f32)
        AlignedFloats recurrent_panels;           // gate panels of w_hh (precision f32)
        AlignedBuffer<uint32_t> input_pairs;      // pair panels of w_ih (precision bf16)
        AlignedBuffer<uint32_t> recurrent_pairs;  // pair panels of w_hh (precision bf16)
        // Precision int8: quad panels of w_ih and w_hh with their per-column scales and offsets (kernels.h).
        AlignedBuffer<uint32_t> input_quads, recurrent_quads;
        AlignedFloats input_scales, recurrent_scales;
        AlignedBuffer<int32_t> input_offsets, recurrent_offsets;
        AlignedFloats bias;               // b_ih + b_hh in panel order (zeros without bias)
        AlignedFloats projection_panels;  // panels of w_hr^T, hidden_block columns each
        bool recurrent_finite = true;     // w_hh holds no inf or NaN (once rounded, in bf16)
        AlignedFloats peepholes;          // 3 x H, or empty
        CellOptions options{};
        bool has_options = false;  // the step gets &options; otherwise the standard cell
        // Precision f32, when the last panel holds at most half of hidden_block units: that panel's input and
        // recurrent weights and bias compacted, compact_tail_lanes per gate (pack.h: pack_compact_tail); else
        // empty and 0.
        AlignedFloats compact_tail_input, compact_tail_recurrent, compact_tail_bias;
        int64_t compact_tail_lanes = 0;
    };
    struct Sequence {
        const float* data;
        int64_t time_stride;
        int64_t batch_stride;
        const int64_t* step_offsets = nullptr;  // packed rows (ForwardArgs::step_offsets), time_stride unused

        const float* step(int64_t t) const {
            return data + (step_offsets ? step_offsets[t] * batch_stride : t * time_stride);
        }
    };
    // Defined in the core's private sources.
    struct Team;             // csrc/team.h
    struct Workspace;        // csrc/plan.h
    struct ForwardPlan;      // csrc/plan.h
    struct DirectionRun;     // csrc/direction_run.h
    class DirectionHandoff;  // csrc/direction_run.h
    // A team member's room for operands rounded to bf16 or quantized to int8 (null in the other precisions).
    struct OperandScratch {
        uint16_t* bf16 = nullptr;
        uint8_t* int8 = nullptr;
        float* int8_scales = nullptr;
    };

    // Packing (pack.cc; num_panels and gate_width inline in csrc/pack.h).
    int64_t num_panels() const;
    int64_t gate_width() const;    // floats per row of the input projection: num_panels * 4 * hidden_block
    int64_t weight_bytes() const;  // bytes per packed weight
    // The forward plan (plan.cc).
    ForwardPlan plan_forward(const ForwardArgs& args, int threads) const;
    bool weights_stay_in_cache(int threads) const;
    int64_t gate_weight_share(int64_t depth, int threads) const;
    bool looks_ahead(int64_t batch, int threads) const;
    bool streams_look_ahead_inputs(int64_t batch, int threads) const;
    bool fuses_input(int threads) const;
    int64_t fused_step_rows(int64_t batch, int threads, bool fuse_input, bool split_batch) const;
    static bool fuses_every_step(int64_t batch, int64_t fused_step_rows);
    int64_t chunk_steps(int64_t steps, int64_t batch, bool look_ahead, int64_t fused_step_rows) const;
    Workspace make_workspace(int64_t steps, int64_t batch, int64_t other_batch, bool look_ahead,
                             int64_t fused_step_rows, int members) const;
    std::vector<Workspace> make_workspaces(const ForwardArgs& args, const ForwardPlan& plan) const;
    // forward() in `scratch`, kept between calls (a claimed cache's) or not.
    void forward_in(const ForwardArgs& args, int threads, CallScratch* scratch) const;
    void step_gathered(const RowStepArgs& args, ForwardArgs& step, CallScratch& s, int threads) const;
    // `scratch` made ready for the call (kept as it is when it was made for the same key); returns it.
    CallScratch& prepare_scratch(const ForwardArgs& args, const ForwardPlan& plan, CallScratch* scratch) const;
    // The team over layers and directions (forward.cc; a bidirectional model's directions as pieces that either of
    // two threads runs: claimed_directions.cc), and variable lengths (lengths.cc).
    struct LayerIo;        // csrc/direction_run.h
    struct ClaimedLayers;  // csrc/claimed_directions.cc
    struct ClaimedPiece;   // csrc/claimed_directions.cc
    class PieceHandoff;    // csrc/claimed_directions.cc
    LayerIo layer_io(const ForwardArgs& args, int64_t layer, float* const layer_buffers[2]) const;
    void run_layers(const ForwardArgs& args, const Team& everyone, const Team& group, int group_id, int groups,
                    Workspace& workspace, float* const layer_buffers[2], const TeamJoinPoint* join = nullptr) const;
    void forward_claimed(const ForwardArgs& args, std::vector<Workspace>& workspaces,
                         float* const layer_buffers[2]) const;
    void run_claimed_layers(const ForwardArgs& args, int index, ClaimedLayers& claims) const;
    int64_t take_projection_blocks(ClaimedPiece& piece, const OperandScratch& scratch) const;
    OperandScratch helper_scratch(Workspace& workspace) const;
    double run_claimed_piece(const ForwardArgs& args, int index, ClaimedLayers& claims, int64_t piece,
                             Workspace& workspace) const;
    void forward_lengths(const ForwardArgs& args, int threads) const;
    // The sequence driver (sequence.cc): one layer and direction for one team member, in parts.
    void run_direction(const ForwardArgs& args, int64_t layer, int64_t direction, const Sequence& in, float* out,
                       int64_t out_time_stride, int64_t out_batch_stride, const Team& team, Workspace& workspace,
                       const TeamJoinPoint* join = nullptr) const;
    DirectionRun start_direction(const ForwardArgs& args, int64_t layer, int64_t direction, const Sequence& in,
                                 float* out, int64_t out_time_stride, int64_t out_batch_stride, const Team& team,
                                 Workspace& workspace) const;
    bool continue_direction(const ForwardArgs& args, DirectionRun& run, const Team& team, Workspace& workspace,
                            DirectionHandoff* handoff) const;
    void load_initial_c(const ForwardArgs& args, const DirectionRun& run) const;
    void share_panels(DirectionRun& run, int index, int members) const;
    void take_every_panel(DirectionRun& run) const;
    void let_members_in(DirectionRun& run, int64_t layer, const Team& team) const;
    LstmStepArgs first_step_args(const DirectionRun& run, float* c, const float* zero_h) const;
    void project_inputs(const PackedCell& cell, const Sequence& in, int64_t layer_input_size, int64_t batch,
                        int64_t t_begin, int64_t t_end, int64_t panel_begin, int64_t panel_end, float* gates_in,
                        const OperandScratch& scratch) const;
    int64_t look_ahead_next_chunk(DirectionRun& run, int64_t n, const Team& team, Workspace& workspace) const;
    bool run_steps(DirectionRun& run, int64_t t_begin, int64_t t_end, const float* gates_in, const Team& team,
                   Workspace& workspace, DirectionHandoff* handoff) const;
    void start_reverse_rows(DirectionRun& run, int64_t t, const Team& team, Workspace& workspace) const;
    void store_final_h(const ForwardArgs& args, const DirectionRun& run) const;

    const KernelSet& kernels_;
    LstmGeometry geometry_;
    Precision precision_;
    std::vector<PackedCell> cells_;  // index layer * num_directions + direction
};

// The scratch of one caller's calls kept between them (a stream's steps, a pool's ticks), so that a step of the
// same shape and plan as the last one allocates nothing: its workspaces, the buffers between layers, and a pool's
// gathered states. Rebuilt when the shape, the plan or the packed model differ. Meant for one caller at a time; a
// call that finds it serving another call (a stream misused from two threads) runs in scratch of its own.
class ForwardCache {
   public:
    ForwardCache();
    ~ForwardCache();
    ForwardCache(const ForwardCache&) = delete;
    ForwardCache& operator=(const ForwardCache&) = delete;

    // The scratch held for one call, released when it ends; null without a cache or when another call holds it.
    class Claim {
       public:
        explicit Claim(ForwardCache* cache)
            : cache_(cache && !cache->in_use_.exchange(true, std::memory_order_acquire) ? cache : nullptr) {}
        ~Claim() {
            if (cache_) cache_->in_use_.store(false, std::memory_order_release);
        }
        Claim(const Claim&) = delete;
        Claim& operator=(const Claim&) = delete;
        PackedLstm::CallScratch* scratch() const { return cache_ ? cache_->scratch_.get() : nullptr; }

       private:
        ForwardCache* cache_;
    };

   private:
    std::unique_ptr<PackedLstm::CallScratch> scratch_;
    std::atomic<bool> in_use_{false};
};

// Tests only: the two threads of a bidirectional call hand its directions to each other after nearly every step, and
// help with each other's chunk projections whenever idle (claimed_directions.cc); a team that splits the hidden
// units goes on with its first member alone from its second chunk (forward.cc). So tests see every place where work
// can change threads. Off by default.
void set_handoff_every_step_for_tests(bool on);
// How many times a direction has changed threads between two of its steps in this process (claimed_directions.cc).
int64_t handoffs_so_far();
// How many blocks of a chunk's input projection a thread ran for the other one's direction, in this process.
int64_t helped_projection_blocks_so_far();
// How many directions of calls ran the look-ahead step with its input weights streamed (kernels.h:
// LookAheadProjection::stream_input_weights), in this process (sequence.cc).
int64_t streamed_look_ahead_runs_so_far();
// How many times a team that split the hidden units shrank to its first member (team.h: TeamSize), and how many times
// the others joined it again after that, in this process; count_team_shrink() and count_team_regrowth() add one.
int64_t team_shrinks_so_far();
void count_team_shrink();
int64_t team_regrowths_so_far();
void count_team_regrowth();
// Tests only: the other members of a team that splits the hidden units join its first no earlier than before its
// second chunk (team.h: TeamSize), as a worker that starts late would. Off by default.
void set_late_join_for_tests(bool on);
// How many times members joined such a team after its first had started alone, in this process; count_late_join()
// adds one.
int64_t late_joins_so_far();
void count_late_join();

}  // namespace fastlstm
