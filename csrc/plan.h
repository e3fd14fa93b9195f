// The forward plan (plan.cc): how one forward call shares its work among threads, and the scratch it runs in.
// Private to the core's sources.
#pragma once

#include <cstdint>
#include <vector>

#include "fastlstm/aligned_buffer.h"
#include "fastlstm/lstm.h"

namespace fastlstm {

// The decisions of one forward call, all taken before any thread starts.
struct PackedLstm::ForwardPlan {
    int threads = 1;           // the team's size
    bool packed_rows = false;  // rows of variable lengths, packed (ForwardArgs::step_offsets)
    // Each member runs its own rows of the batch through every layer, never waiting for the others; otherwise the
    // team splits the hidden units (and the directions) and meets once per step.
    bool split_batch = false;
    bool look_ahead = false;  // small batches take the look-ahead step (see looks_ahead)
    // Chunks of one step take their input projection in the step (kernels.h: LstmStepArgs::x; plan.cc:
    // fuses_input), and batches (a member's rows, with a batch split) of fused_step_rows rows or more run in such
    // chunks (0: none do; plan.cc: fused_step_rows).
    bool fuse_input = false;
    int64_t fused_step_rows = 0;
    // A bidirectional model on two threads: its directions are pieces that either thread runs (claimed_directions.cc).
    bool claimed_directions = false;
    // Workspaces: one per member with a batch split; with claimed directions, one per direction of two successive
    // layers; otherwise one per direction group.
    int workspace_slots = 1;
};

// Per-group scratch: the input projection of a chunk of steps, and o * tanh(c) before the projection.
struct PackedLstm::Workspace {
    AlignedFloats gates_in;  // one chunk of the plain step, or two of chunk_floats for the look-ahead step
    int64_t chunk_floats = 0;
    bool look_ahead = false;                // the look-ahead step is planned (see looks_ahead)
    bool stream_look_ahead_inputs = false;  // and streams its input weights (see streams_look_ahead_inputs)
    bool fuse_input = false;                // ForwardPlan::fuse_input
    int64_t fused_step_rows = 0;            // ForwardPlan::fused_step_rows
    // The plain steps alternate their panel order (kernels.h: LstmStepArgs::panels_descending): a run's first step
    // walks down when this is set. It flips at every call made with the same CallScratch (a stream's, a pool's), so
    // that calls of one step alternate too.
    bool descending_first = false;
    AlignedFloats hidden_scratch;
    AlignedFloats h_prev_scratch;       // packed rows: h_prev of a reverse step at which rows start (batch x output)
    AlignedFloats zero_h;               // one row of output_size zeros: h_prev of the first step from a zero state
    std::vector<AlignedFloats> x_by_k;  // with look-ahead: per team member, the next chunk's inputs k-major
    std::vector<AlignedBuffer<uint16_t>> next_x_bf16;  // bf16 look-ahead: per member, the next chunk's inputs in bf16
    // Precision bf16: per team member, a chunk's inputs or a step's h_prev rounded to bf16 (kernels.h).
    std::vector<AlignedBuffer<uint16_t>> bf16_rows;
    // Precision int8: per team member, a chunk's inputs or a step's h_prev quantized, and their row scales.
    std::vector<AlignedBuffer<uint8_t>> int8_rows;
    std::vector<AlignedFloats> int8_scales;
};

// A call's workspaces and the buffers between its layers, made for one packed model, call shape and plan; a
// ForwardCache keeps them for the next call with the same key (sessions.cc: PackedLstm::prepare_scratch).
struct PackedLstm::CallScratch {
    // The packed model it was made for, with its kernels, geometry and precision: a new model may take the
    // address of a freed one.
    const PackedLstm* owner = nullptr;
    const KernelSet* kernels = nullptr;
    LstmGeometry geometry;
    Precision precision = Precision::kF32;
    int64_t steps = -1, batch = -1;
    int threads = 0;
    bool split_batch = false, look_ahead = false;
    int64_t fused_step_rows = 0;  // 0 exactly when the plan does not fuse the input (ForwardPlan::fuse_input)
    std::vector<Workspace> workspaces;
    int64_t calls = 0;  // made with this scratch (Workspace::descending_first)
    AlignedFloats layer_buffers[2];
    AlignedFloats gathered_h, gathered_c;  // step_rows: the sessions' states in consecutive rows
};

}  // namespace fastlstm
