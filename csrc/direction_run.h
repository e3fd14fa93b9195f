// One layer and direction of a forward call as one thread or team member runs it (sequence.cc), with the cursor
// that lets a run stop between two steps and go on in another thread (claimed_directions.cc: pieces of a bidirectional
// model). Private to the core's sources.
#pragma once

#include <algorithm>
#include <cstdint>

#include "fastlstm/lstm.h"

namespace fastlstm {

// One team member's part of a layer and direction, shared by run_direction's parts. The team splits the hidden
// units: each member owns the same panels at every step (so its share of the recurrent weights stays in its own
// cache), computes the input projection of exactly those panels, and meets the others once per step (twice with a
// projection), when h_t is complete. `step` carries h_{t-1} from one step to the next.
struct PackedLstm::DirectionRun {
    const PackedCell* cell = nullptr;
    int64_t direction = 0, cell_index = 0;
    bool reverse = false;
    const Sequence* in = nullptr;
    float* out = nullptr;
    int64_t out_time_stride = 0, out_batch_stride = 0;
    int64_t steps = 0, batch = 0;
    const int64_t* offsets = nullptr;  // packed rows (ForwardArgs::step_offsets), or null
    int64_t panel_begin = 0, panel_end = 0, proj_begin = 0, proj_end = 0;
    int64_t column_begin = 0, column_end = 0;  // this member's columns of h, for copies of whole rows of h
    const float* h0 = nullptr;                 // this cell's initial h, or null (zeros)
    OperandScratch scratch;                    // this member's, for the rounded or quantized rows of x and h
    LstmStepArgs step;
    bool look_ahead = false;
    int64_t chunk = 1;  // steps per chunk of the input projection
    LookAheadProjection ahead;
    // Where the run stands: the next step is step next_step of chunk next_chunk, whose look-ahead (if any) takes
    // chunk_pieces pieces. Only the thread running the direction touches the run.
    int64_t next_chunk = 0, next_step = 0, chunk_pieces = 0;
    // The chunk's step takes its input projection itself (kernels.h: LstmStepArgs::x): a chunk of one step in f32
    // whose inputs are not projected yet. Decided at the chunk's start.
    bool input_fused = false;

    // Packed rows (variable lengths): step t runs the first rows_at(t) rows, which sit at row offsets[t] of in, out
    // and (from the chunk's first step) gates_in.
    int64_t rows_at(int64_t t) const { return offsets ? offsets[t + 1] - offsets[t] : batch; }
    float* out_step(int64_t t) const { return out + (offsets ? offsets[t] * out_batch_stride : t * out_time_stride); }
    // Chunk n covers steps [t_begin, t_end) (walking backwards in the reverse direction); with look-ahead its input
    // projection is in half n % 2 of the workspace.
    void chunk_range(int64_t n, int64_t* t_begin, int64_t* t_end) const {
        const int64_t done = n * chunk;
        *t_begin = reverse ? std::max<int64_t>(0, steps - done - chunk) : done;
        *t_end = reverse ? steps - done : std::min(steps, done + chunk);
    }
};

// Where a layer reads its input and writes its output (forward.cc: layer_io).
struct PackedLstm::LayerIo {
    Sequence in;
    float* out;
    int64_t out_time_stride, out_batch_stride;
};

// Tests: whether directions are handed over after nearly every step (set_handoff_every_step_for_tests).
bool handoffs_forced_for_tests();

// What lets a direction stop between two steps for another thread to go on with it (claimed_directions.cc), or wait for
// its inputs when the layer below is still running. A team passes none: its members share every step.
class PackedLstm::DirectionHandoff {
   public:
    // Before chunk run.next_chunk: true once its inputs (and, with look-ahead, the next chunk's) are there; false
    // to stop before it.
    virtual bool inputs_ready(const DirectionRun& run) = 0;
    // The input projection of steps [t_begin, t_end) for the run's panels into gates_in (project_inputs), done by
    // whoever it sees fit.
    virtual void project_chunk(const DirectionRun& run, int64_t t_begin, int64_t t_end, float* gates_in) = 0;
    // After a step that is not the direction's last, `steps_done` steps in: true to stop before the next one.
    virtual bool stop_after_step(int64_t steps_done) = 0;

   protected:
    ~DirectionHandoff() = default;
};

}  // namespace fastlstm
