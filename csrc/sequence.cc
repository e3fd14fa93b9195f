// The sequence driver: one layer and direction over the whole sequence for one team member: one fused kernel call
// per step. The input projection is either inside that step (float32 weights that stay in cache, plan.cc:
// fuses_input) or hoisted out of the recurrence: one matrix product per chunk of steps, or interleaved with the
// steps by the look-ahead kernels.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "fastlstm/bf16.h"
#include "fastlstm/lstm.h"
#include "direction_run.h"
#include "pack.h"
#include "plan.h"
#include "team.h"

namespace fastlstm {
namespace {

std::atomic<int64_t> streamed_look_ahead_runs{0};  // see streamed_look_ahead_runs_so_far

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

// Whether the first `count` values at `values` are all zero (+0 or -0).
bool all_zero(const float* values, int64_t count) {
    for (int64_t i = 0; i < count; ++i)
        if (values[i] != 0.0f) return false;
    return true;
}

}  // namespace

int64_t streamed_look_ahead_runs_so_far() { return streamed_look_ahead_runs.load(std::memory_order_relaxed); }

// gates_in[(t - t_begin) * batch + b] = bias + in[t, b] . w_ih^T for t in [t_begin, t_end), over the columns of
// panels [panel_begin, panel_end): one matrix product when the sequence is time-major in memory or packed (where
// the rows of step t start at row step_offsets[t] - step_offsets[t_begin]), one per batch row (each over all the
// chunk's steps) otherwise.
void PackedLstm::project_inputs(const PackedCell& cell, const Sequence& in, int64_t layer_input_size, int64_t batch,
                                int64_t t_begin, int64_t t_end, int64_t panel_begin, int64_t panel_end, float* gates_in,
                                const OperandScratch& scratch) const {
    const int64_t width = gate_width();
    const int64_t panel_width = kGates * kernels_.hidden_block;
    const int64_t columns = (panel_end - panel_begin) * panel_width;
    if (columns == 0) return;
    const float* bias = cell.bias.data() + panel_begin * panel_width;
    float* out = gates_in + panel_begin * panel_width;
    // rows x columns of the product from rows of A at a (row stride lda), into c (row stride ldc).
    auto product = [&](int64_t rows, const float* a, int64_t lda, float* c, int64_t ldc) {
        if (precision_ == Precision::kBF16) {
            kernels_.bf16_gemm_panels(
                rows, columns, layer_input_size, a, lda,
                cell.input_pairs.data() + panel_begin * ceil_div(layer_input_size, 2) * panel_width, panel_width, bias,
                c, ldc, scratch.bf16);
        } else if (precision_ == Precision::kInt8) {
            const Int8Panels weights{
                cell.input_quads.data() + panel_begin * ceil_div(layer_input_size, 4) * panel_width,
                cell.input_scales.data() + panel_begin * panel_width,
                cell.input_offsets.data() + panel_begin * panel_width};
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

// One layer and direction over the whole sequence (see DirectionRun), from its initial state or, for a member joining
// a team late (team.h: TeamSize), from where the team stands.
void PackedLstm::run_direction(const ForwardArgs& args, int64_t layer, int64_t direction, const Sequence& in,
                               float* out, int64_t out_time_stride, int64_t out_batch_stride, const Team& team,
                               Workspace& workspace, const TeamJoinPoint* join) const {
    DirectionRun run =
        start_direction(args, layer, direction, in, out, out_time_stride, out_batch_stride, team, workspace);
    if (join) {
        run.next_chunk = join->chunk;
        run.step.h_prev = join->h_prev;
        run.step.h_prev_stride = join->h_prev_stride;
        run.step.recurrent_size = join->recurrent_size;
    } else {
        load_initial_c(args, run);
    }
    continue_direction(args, run, team, workspace, nullptr);
}

// The run from where it stands: chunk after chunk, the chunk's input projection (or, with look-ahead, the next
// chunk's, during this one's steps), then its steps; at the end h_n, and true. With a handoff, false when it stops
// the run between two steps or before a chunk (the cursor then points at what comes next).
bool PackedLstm::continue_direction(const ForwardArgs& args, DirectionRun& run, const Team& team, Workspace& workspace,
                                    DirectionHandoff* handoff) const {
    const int64_t layer = run.cell_index / geometry_.num_directions;
    for (; run.next_chunk * run.chunk < run.steps; ++run.next_chunk, run.next_step = 0) {
        const int64_t n = run.next_chunk;
        int64_t t_begin, t_end;
        run.chunk_range(n, &t_begin, &t_end);
        float* gates_in = workspace.gates_in.data() + (run.look_ahead ? (n % 2) * workspace.chunk_floats : 0);
        if (run.next_step == 0) {
            if (handoff && !handoff->inputs_ready(run)) return false;
            if (team.sizing && team.index == 0 && team.sizing->may_join(team.size, layer, n))
                let_members_in(run, layer, team);
            // The team has shrunk: the others step out, whatever their share (with fewer panels than members, one
            // of them may hold every panel, and must not go on beside the first), and the first takes every panel.
            if (team.solo()) {
                if (team.index != 0) return false;
                if (run.panel_end - run.panel_begin < num_panels()) take_every_panel(run);
            }
            // A chunk of one step (a stream's or a pool's step, any step of a batch of 3 rows or more or of 2 with
            // small input weights, the last of a sequence) fuses its input projection into the step where the plan
            // says it pays (plan.cc: fuses_input, fused_step_rows): the same sums (kernels.h). The plan never fuses
            // with a handoff or packed rows; the run checks again, as a chunk it fuses must not be projected.
            run.input_fused =
                workspace.fuse_input && !handoff && !run.offsets && t_end - t_begin == 1 && (!run.look_ahead || n == 0);
            if (!run.input_fused && (!run.look_ahead || n == 0)) {
                if (handoff)
                    handoff->project_chunk(run, t_begin, t_end, gates_in);
                else
                    project_inputs(*run.cell, *run.in, geometry_.layer_input_size(layer), run.batch, t_begin, t_end,
                                   run.panel_begin, run.panel_end, gates_in, run.scratch);
            }
            run.chunk_pieces =
                run.look_ahead && (n + 1) * run.chunk < run.steps ? look_ahead_next_chunk(run, n, team, workspace) : 0;
        }
        if (!run_steps(run, t_begin, t_end, gates_in, team, workspace, handoff)) return false;
    }
    store_final_h(args, run);
    return true;
}

// This member's shares of the panels and columns, the step arguments of the first step, and whether (and from where)
// the steps look ahead. The run's columns of c are not touched (load_initial_c).
PackedLstm::DirectionRun PackedLstm::start_direction(const ForwardArgs& args, int64_t layer, int64_t direction,
                                                     const Sequence& in, float* out, int64_t out_time_stride,
                                                     int64_t out_batch_stride, const Team& team,
                                                     Workspace& workspace) const {
    const LstmGeometry& g = geometry_;
    const int64_t B = args.batch, H = g.hidden_size, out_size = g.output_size();
    DirectionRun run;
    run.direction = direction;
    run.cell_index = layer * g.num_directions + direction;
    run.cell = &cells_[run.cell_index];
    run.reverse = direction == 1 || g.reverse;
    run.in = &in;
    run.out = out;
    run.out_time_stride = out_time_stride;
    run.out_batch_stride = out_batch_stride;
    run.steps = args.steps;
    run.batch = B;
    run.offsets = args.step_offsets;
    share_panels(run, team.index, team.members());
    float* c = args.c_n + run.cell_index * args.state_rows * H;

    if (precision_ == Precision::kBF16) run.scratch.bf16 = workspace.bf16_rows[team.index].data();
    if (precision_ == Precision::kInt8) {
        run.scratch.int8 = workspace.int8_rows[team.index].data();
        run.scratch.int8_scales = workspace.int8_scales[team.index].data();
    }
    run.h0 = args.h0 ? args.h0 + run.cell_index * args.state_rows * out_size : nullptr;
    run.step = first_step_args(run, c, workspace.zero_h.data());

    // The pieces of the look-ahead step take the upcoming rows as evenly spaced in memory: true of one row per
    // step, and of a time-major input.
    // A cell with options runs the plain step only (the look-ahead kernels compute the standard cell).
    run.look_ahead =
        workspace.look_ahead && !run.offsets && !run.step.options && (B == 1 || in.time_stride == B * in.batch_stride);
    run.chunk = chunk_steps(args.steps, B, run.look_ahead, workspace.fused_step_rows);
    LookAheadProjection& ahead = run.ahead;
    ahead.x_by_k = nullptr;
    ahead.input_size = g.layer_input_size(layer);
    ahead.input_panels = run.cell->input_panels.data();
    ahead.input_pairs = run.cell->input_pairs.data();
    ahead.x_bf16 = nullptr;
    ahead.x_bf16_stride = (ahead.input_size + 1) / 2 * 2;
    ahead.stream_input_weights = run.look_ahead && workspace.stream_look_ahead_inputs;
    if (ahead.stream_input_weights) streamed_look_ahead_runs.fetch_add(1, std::memory_order_relaxed);
    ahead.bias = run.cell->bias.data();
    ahead.x_stride = B == 1 ? in.time_stride : in.batch_stride;
    ahead.gates_in_stride = gate_width();
    // The fused input's weights and strides (used in chunks with run.input_fused; kernels.h).
    run.step.x_stride = in.batch_stride;
    run.step.input_size = ahead.input_size;
    run.step.input_panels = ahead.input_panels;
    run.step.bias = ahead.bias;
    run.step.compact_tail_input = run.cell->compact_tail_input.data();
    run.step.compact_tail_recurrent = run.cell->compact_tail_recurrent.data();
    run.step.compact_tail_bias = run.cell->compact_tail_bias.data();
    run.step.compact_tail_lanes = run.cell->compact_tail_lanes;
    return run;
}

// The run's columns of c from c0 (zeros without one).
void PackedLstm::load_initial_c(const ForwardArgs& args, const DirectionRun& run) const {
    const int64_t H = geometry_.hidden_size, block = kernels_.hidden_block;
    const float* c0 = args.c0 ? args.c0 + run.cell_index * args.state_rows * H : nullptr;
    copy_columns(c0, H, run.batch, std::min(H, run.panel_begin * block), std::min(H, run.panel_end * block), run.step.c,
                 H);
}

// Member `index` of `members` takes its share of the run's panels, projection blocks and columns (contiguous and
// balanced: team.h's share).
void PackedLstm::share_panels(DirectionRun& run, int index, int members) const {
    share(num_panels(), index, members, &run.panel_begin, &run.panel_end);
    share(ceil_div(geometry_.proj_size, kernels_.hidden_block), index, members, &run.proj_begin, &run.proj_end);
    share(geometry_.output_size(), index, members, &run.column_begin, &run.column_end);
    run.step.panel_begin = run.panel_begin;
    run.step.panel_end = run.panel_end;
}

// The first member of a team that has shrunk (team.h: TeamSize) takes over every panel, projection block and column
// of the run from the next chunk on; the others' columns of c are complete since the last meeting.
void PackedLstm::take_every_panel(DirectionRun& run) const { share_panels(run, 0, 1); }

// The first member of a team, alone so far (or since the team shrank), lets the others in before chunk run.next_chunk
// of `layer` (team.h: TeamSize): they start from its step arguments (every column of c is in place), and it keeps its
// own share.
void PackedLstm::let_members_in(DirectionRun& run, int64_t layer, const Team& team) const {
    team.sizing->let_in({layer, run.next_chunk, run.step.h_prev, run.step.h_prev_stride, run.step.recurrent_size});
    share_panels(run, 0, team.size);
    if (team.sizing->shrinks > 0)
        count_team_regrowth();
    else
        count_late_join();
}

// The kernel arguments of the first step: h_prev from h0 or, from a zero state (run.h0 null), every row reading the
// same row of zeros, zero_h.
LstmStepArgs PackedLstm::first_step_args(const DirectionRun& run, float* c, const float* zero_h) const {
    const PackedCell& cell = *run.cell;
    const bool zero_start = run.h0 == nullptr;
    // An h0 of zeros (the state a program starts from) runs as no h0 does: its product adds only zeros to the gates,
    // which can change no value, only the sign of a zero. The scan stops at the first nonzero value, and reads h0
    // once where the product would read it for every panel.
    const bool zero_h0 = zero_start || all_zero(run.h0, run.batch * geometry_.output_size());
    LstmStepArgs step;
    step.batch = run.batch;
    step.hidden_size = geometry_.hidden_size;
    step.recurrent_size = geometry_.output_size();
    step.panel_begin = run.panel_begin;
    step.panel_end = run.panel_end;
    step.h_prev = zero_start ? zero_h : run.h0;
    step.h_prev_stride = zero_start ? 0 : geometry_.output_size();
    step.gates_in_stride = gate_width();
    step.recurrent_panels = cell.recurrent_panels.data();
    step.recurrent_pairs = cell.recurrent_pairs.data();
    step.recurrent_int8 = {cell.recurrent_quads.data(), cell.recurrent_scales.data(), cell.recurrent_offsets.data()};
    step.h_bf16 = run.scratch.bf16;
    step.h_uint8 = run.scratch.int8;
    step.h_scales = run.scratch.int8_scales;
    step.c = c;
    step.c_stride = geometry_.hidden_size;
    step.options = cell.has_options ? &cell.options : nullptr;
    // From a zero h0 the first recurrent product is zero: skip it, unless the weights hold inf or NaN, whose
    // product with 0 is NaN.
    if (zero_h0 && cell.recurrent_finite) step.recurrent_size = 0;
    return step;
}

// Points run.ahead at chunk n + 1 (its rows, their copies in this member's scratch, and its half of gates_in), to be
// projected during chunk n's steps; returns the number of pieces that takes (kernels.h).
int64_t PackedLstm::look_ahead_next_chunk(DirectionRun& run, int64_t n, const Team& team, Workspace& workspace) const {
    LookAheadProjection& ahead = run.ahead;
    int64_t next_begin, next_end;
    run.chunk_range(n + 1, &next_begin, &next_end);
    ahead.rows = (next_end - next_begin) * run.batch;
    ahead.x = run.in->data + next_begin * run.in->time_stride;
    ahead.gates_in = workspace.gates_in.data() + ((n + 1) % 2) * workspace.chunk_floats;
    // Batch 2 (kernels.h: x_by_k). Each member its own copy, so no barrier before its pieces read it.
    if (run.batch == 2) ahead.x_by_k = gather_k_major(ahead, workspace.x_by_k[team.index].data());
    if (precision_ == Precision::kBF16) {  // each member its own copy, as x_by_k
        uint16_t* rounded = workspace.next_x_bf16[team.index].data();
        round_rows_to_bf16(ahead.rows, ahead.input_size, ahead.x, ahead.x_stride, rounded, ahead.x_bf16_stride);
        ahead.x_bf16 = rounded;
    }
    return ceil_div(ahead.rows, kLookAheadPieceRows) * 4 * (run.panel_end - run.panel_begin);
}

// Steps [t_begin, t_end) of a chunk (backwards in the reverse direction) from step run.next_step of it, their input
// projection in gates_in; with run.chunk_pieces > 0, the next chunk's pieces spread evenly over the steps (at most
// one per slot of panels). True at the chunk's end; false when the handoff stops the run after a step.
bool PackedLstm::run_steps(DirectionRun& run, int64_t t_begin, int64_t t_end, const float* gates_in, const Team& team,
                           Workspace& workspace, DirectionHandoff* handoff) const {
    const LstmGeometry& g = geometry_;
    const int64_t H = g.hidden_size, out_size = g.output_size(), block = kernels_.hidden_block;
    const int64_t width = gate_width();
    const int64_t pieces = run.chunk_pieces;
    const int64_t pieces_per_step = ceil_div(pieces, t_end - t_begin);
    LstmStepArgs& step = run.step;
    LookAheadProjection& ahead = run.ahead;
    while (run.next_step < t_end - t_begin) {
        const int64_t i = run.next_step;
        const int64_t t = run.reverse ? t_end - 1 - i : t_begin + i;
        const int64_t rows = run.rows_at(t);
        if (run.offsets && run.reverse && t + 1 < run.steps && rows > run.rows_at(t + 1))
            start_reverse_rows(run, t, team, workspace);
        float* h_dst = run.out_step(t) + run.direction * out_size;
        step.batch = rows;
        const int64_t first_row = run.offsets ? run.offsets[t] - run.offsets[t_begin] : (t - t_begin) * run.batch;
        step.gates_in = run.input_fused ? nullptr : gates_in + first_row * width;
        step.x = run.input_fused ? run.in->step(t) : nullptr;
        // Consecutive steps walk the panels in opposite orders (kernels.h: LstmStepArgs::panels_descending).
        step.panels_descending = ((run.next_chunk * run.chunk + i) % 2 == 1) != workspace.descending_first;
        step.h_out = g.proj_size > 0 ? workspace.hidden_scratch.data() : h_dst;
        step.h_out_stride = g.proj_size > 0 ? H : run.out_batch_stride;
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
            kernels_.gemm_panels(rows, std::min(g.proj_size, run.proj_end * block) - run.proj_begin * block, H,
                                 workspace.hidden_scratch.data(), H,
                                 run.cell->projection_panels.data() + run.proj_begin * block * H, block, nullptr,
                                 h_dst + run.proj_begin * block, run.out_batch_stride);
        }
        team.sync(/*chunk_end=*/i == t_end - t_begin - 1);
        step.h_prev = h_dst;
        step.h_prev_stride = run.out_batch_stride;
        step.recurrent_size = out_size;
        ++run.next_step;
        const int64_t steps_done = run.next_chunk * run.chunk + run.next_step;
        if (handoff && steps_done < run.steps && handoff->stop_after_step(steps_done)) return false;
    }
    return true;
}

// Packed rows, reverse direction: rows [rows_at(t + 1), rows_at(t)) start their reverse pass at step t, from their
// initial state. Gathers it under the others' h_{t+1} (once per distinct length).
void PackedLstm::start_reverse_rows(DirectionRun& run, int64_t t, const Team& team, Workspace& workspace) const {
    const int64_t out_size = geometry_.output_size();
    float* scratch = workspace.h_prev_scratch.data();
    const int64_t running = run.rows_at(t + 1), rows = run.rows_at(t);
    copy_columns(run.step.h_prev, run.step.h_prev_stride, running, run.column_begin, run.column_end, scratch, out_size);
    copy_columns(run.h0 ? run.h0 + running * out_size : nullptr, out_size, rows - running, run.column_begin,
                 run.column_end, scratch + running * out_size, out_size);
    team.sync();
    run.step.h_prev = scratch;
    run.step.h_prev_stride = out_size;
}

// h_n: each row's last h (h0 for a row without steps); complete since the last sync.
void PackedLstm::store_final_h(const ForwardArgs& args, const DirectionRun& run) const {
    const int64_t T = run.steps, B = run.batch, out_size = geometry_.output_size();
    float* h_n = args.h_n + run.cell_index * args.state_rows * out_size;
    if (!run.offsets) {
        if (T > 0)
            copy_columns(run.step.h_prev, run.step.h_prev_stride, B, run.column_begin, run.column_end, h_n, out_size);
        else
            copy_columns(run.h0, out_size, B, run.column_begin, run.column_end, h_n, out_size);
        return;
    }
    // Packed rows: the reverse direction ends every running row at t = 0; the forward one ends row b at its last
    // step, the last t that runs more than b rows.
    int64_t t_last = T - 1;
    for (int64_t b = 0; b < B; ++b) {
        if (!run.reverse)
            while (t_last >= 0 && run.rows_at(t_last) <= b) --t_last;
        const int64_t t_end_of_row = run.reverse ? (T > 0 && run.rows_at(0) > b ? 0 : -1) : t_last;
        const float* last = t_end_of_row >= 0
                                ? run.out_step(t_end_of_row) + b * run.out_batch_stride + run.direction * out_size
                                : (run.h0 ? run.h0 + b * out_size : nullptr);
        copy_columns(last, out_size, 1, run.column_begin, run.column_end, h_n + b * out_size, out_size);
    }
}

}  // namespace fastlstm
