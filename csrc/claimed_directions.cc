// A bidirectional model on two threads: the directions of its layers as pieces that either thread runs, hands over
// between steps, and helps with (forward.cc calls forward_claimed when the plan says so).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "cpu.h"
#include "direction_run.h"
#include "fastlstm/lstm.h"
#include "pack.h"
#include "plan.h"
#include "team.h"
#include "thread_pool.h"

namespace fastlstm {

// The directions of a bidirectional model on two threads, as pieces that either thread runs: piece 2 l + d is
// direction d of layer l, run as by a team of one (so the results are those of any other team and schedule).
//
// Thread i prefers direction i of every layer (so that each keeps the same direction's weights in its cache from
// call to call) and runs the lowest layer's piece it can. A piece runs as soon as the inputs of its next chunk are
// written, not when the layer below is done: the reverse direction of layer l + 1 follows the reverse direction of
// layer l step by step (both walk backwards), once the forward direction of layer l is done.
//
// A thread that has no core, or shares one, holds up nobody for long. A piece stops after any step when the other
// thread asks for it, and that thread goes on with it from there. An idle thread asks for a piece that has made no
// step for a while (its holder has lost its core: a time slice is milliseconds) or goes kSlowerBy times slower than
// the idle thread went itself (its holder shares a core with another program's thread); it takes pieces the other
// thread would run next once that one has been busy elsewhere for as long; and it helps with the input projection
// of a chunk that the other thread is starting. When each thread has a core, both run their own direction of every
// layer, as a fixed split would.
//
// Buffers: layers l and l + 2 share a layer buffer and a workspace (index (l % 2) * 2 + d). Layer l + 2 starts only
// once layer l + 1 has run a chunk, which needs layer l done (both directions), so they never run at the same time;
// and layer l + 1 writes a step only after both directions of layer l have read that step's inputs.
namespace {

constexpr int kNobody = -1;
// An idle thread's patience with the other one: kPatienceSteps of its steps, and at least kMinPatience (longer than
// two threads with a core each drift apart; short next to a time slice of a thread without one).
constexpr int64_t kPatienceSteps = 4;
constexpr std::chrono::nanoseconds kMinPatience = std::chrono::microseconds(200);
// A chunk's input projection is shared out in this many blocks of panels (or one per panel, if fewer).
constexpr int64_t kProjectionBlocks = 8;
// An idle thread asks for a piece that goes kSlowerBy times slower than it went itself, over kRateMinSteps or more.
constexpr double kSlowerBy = 1.5;
constexpr int64_t kRateMinSteps = 4;
// How long a waiting thread spins before it yields until the next change or its patience runs out: as
// thread_pool.cc's barrier waits spin before they sleep.
constexpr std::chrono::nanoseconds kWaitBeforeLookingAgain = std::chrono::microseconds(200);
// Tests: every idle thread asks for the other's piece at once, so pieces change threads after nearly every step;
// and a holder starting a chunk's projection leaves the other thread up to kTestHelpWaitNs to take a block of it.
constexpr int64_t kTestHelpWaitNs = 100'000;
std::atomic<bool> handoff_every_step{false};
std::atomic<int64_t> handoffs{0};       // directions that changed threads mid-way, since the process started
std::atomic<int64_t> helped_blocks{0};  // blocks of a chunk projection run by a thread that did not hold the piece

}  // namespace

void set_handoff_every_step_for_tests(bool on) { handoff_every_step.store(on, std::memory_order_relaxed); }
int64_t handoffs_so_far() { return handoffs.load(std::memory_order_relaxed); }
int64_t helped_projection_blocks_so_far() { return helped_blocks.load(std::memory_order_relaxed); }
bool handoffs_forced_for_tests() { return handoff_every_step.load(std::memory_order_relaxed); }

struct PackedLstm::ClaimedPiece {
    DirectionRun run;  // the holder's alone
    LayerIo io;
    Workspace* workspace = nullptr;
    // Fixed before the threads start.
    int64_t layer = 0, steps = 0, chunk = 1;
    bool reverse = false, look_ahead = false;
    // Steps done, published after each step; `steps` once done, after h_n. Then who holds the piece (runs it, or
    // waits for its inputs), who asked for it, and when it first ran.
    alignas(64) std::atomic<int64_t> steps_done{0};
    std::atomic<int> holder{kNobody};
    std::atomic<int> wanted_by{kNobody};
    std::atomic<int64_t> started_ns{0};
    // Since when, and from which step, its holder runs it, for the rate at which it goes.
    std::atomic<int64_t> run_from_ns{0}, run_from_steps{0};
    double step_weight = 1;  // a step's work, relative: the layer's input width plus its output width
    // The input projection of the chunk its holder is starting, in blocks of panels that an idle thread may take
    // too (the holder waits for them before the chunk's steps). Each chunk's is a new generation; its fields stay
    // as they are while a block of it is not done.
    struct Projection {
        std::atomic<uint64_t> next{0};  // generation << 32 | the next block to take
        std::atomic<int64_t> blocks{0}, done{0};
        std::atomic<int64_t> t_begin{0}, t_end{0};
        std::atomic<float*> gates_in{nullptr};
    } projection;

    // Nanoseconds per unit of step weight since its holder took it (growing while it makes no step).
    double run_rate(int64_t now) const {
        const int64_t from = run_from_ns.load(std::memory_order_relaxed);
        const int64_t steps =
            steps_done.load(std::memory_order_relaxed) - run_from_steps.load(std::memory_order_relaxed);
        return static_cast<double>(now - from) / (static_cast<double>(std::max<int64_t>(steps, 1)) * step_weight);
    }
    // Nanoseconds per step so far, or 0 before its first step.
    int64_t step_ns(int64_t now) const {
        const int64_t done_steps = steps_done.load(std::memory_order_relaxed);
        const int64_t started = started_ns.load(std::memory_order_relaxed);
        return done_steps > 0 && started > 0 ? (now - started) / done_steps : 0;
    }
};

struct PackedLstm::ClaimedLayers {
    explicit ClaimedLayers(int64_t layers) : count(2 * layers), pieces(new ClaimedPiece[2 * layers]) {}
    const int64_t count;
    std::unique_ptr<ClaimedPiece[]> pieces;
    std::atomic<int64_t> pieces_done{0};
    std::atomic<bool> started[2] = {{false}, {false}};
    WaitWord progress;  // bumped when a piece ends a chunk, changes hands or is done

    void bump() {
        progress.value.fetch_add(1, std::memory_order_seq_cst);
        progress.notify();
    }
    // Whether piece p's chunk n (with look-ahead, also chunk n + 1) has all its inputs: the time steps it reads are
    // written by both directions of the layer below.
    bool inputs_ready(const ClaimedPiece& p, int64_t n) const {
        if (p.layer == 0) return true;
        const int64_t T = p.steps, chunks = p.look_ahead ? 2 : 1;
        const int64_t from = n * p.chunk, to = std::min(T, (n + chunks) * p.chunk);  // in p's own order
        const int64_t t_begin = p.reverse ? T - to : from, t_end = p.reverse ? T - from : to;
        for (int64_t d = 0; d < 2; ++d) {
            const ClaimedPiece& below = pieces[2 * (p.layer - 1) + d];
            const int64_t s = below.steps_done.load(std::memory_order_acquire);
            if (below.reverse ? T - s > t_begin : s < t_end) return false;
        }
        return true;
    }
    // The layer below p's progress: a number that grows with every step it makes.
    int64_t inputs_progress(const ClaimedPiece& p) const {
        if (p.layer == 0) return 0;
        return pieces[2 * (p.layer - 1)].steps_done.load(std::memory_order_relaxed) +
               pieces[2 * (p.layer - 1) + 1].steps_done.load(std::memory_order_relaxed);
    }
    // kPatienceSteps of the fastest step seen in the call so far (min kMinPatience); zero in the test mode.
    int64_t patience_ns(int64_t now) const {
        if (handoff_every_step.load(std::memory_order_relaxed)) return 0;
        int64_t fastest = 0;
        for (int64_t q = 0; q < count; ++q) {
            const int64_t step = pieces[q].step_ns(now);
            if (step > 0 && (fastest == 0 || step < fastest)) fastest = step;
        }
        return std::max<int64_t>(kMinPatience.count(), kPatienceSteps * fastest);
    }
};

// A piece's holder's side: after each step, publish it and hand the piece over if asked; before a chunk, wait for
// its inputs while the layer below moves, and let go of the piece when that stalls (the other thread holding it may
// have lost its core, and this one may then take it over).
class PackedLstm::PieceHandoff final : public PackedLstm::DirectionHandoff {
   public:
    PieceHandoff(const PackedLstm& lstm, ClaimedLayers& claims, ClaimedPiece& piece)
        : lstm_(lstm), claims_(claims), piece_(piece) {}

    void project_chunk(const DirectionRun& run, int64_t t_begin, int64_t t_end, float* gates_in) override {
        ClaimedPiece::Projection& job = piece_.projection;
        const int64_t blocks = std::min<int64_t>(kProjectionBlocks, lstm_.num_panels());
        job.t_begin.store(t_begin, std::memory_order_relaxed);
        job.t_end.store(t_end, std::memory_order_relaxed);
        job.gates_in.store(gates_in, std::memory_order_relaxed);
        job.blocks.store(blocks, std::memory_order_relaxed);
        job.done.store(0, std::memory_order_relaxed);
        const uint64_t generation = (job.next.load(std::memory_order_relaxed) >> 32) + 1;
        job.next.store(generation << 32, std::memory_order_release);
        if (handoff_every_step.load(std::memory_order_relaxed)) {  // tests: leave the other thread time to help
            const int64_t until = steady_now_ns() + kTestHelpWaitNs;
            while ((job.next.load(std::memory_order_acquire) & 0xffffffffu) == 0 && steady_now_ns() < until)
                std::this_thread::yield();
        }
        lstm_.take_projection_blocks(piece_, run.scratch);
        while (job.done.load(std::memory_order_acquire) < blocks) std::this_thread::yield();  // one block at most
    }

    bool stop_after_step(int64_t steps_done) override {
        piece_.steps_done.store(steps_done, std::memory_order_release);
        const int asker = piece_.wanted_by.load(std::memory_order_relaxed) == kNobody
                              ? kNobody
                              : piece_.wanted_by.exchange(kNobody, std::memory_order_relaxed);
        if (asker != kNobody) {
            piece_.holder.store(asker, std::memory_order_release);  // the run's state goes with it
            handoffs.fetch_add(1, std::memory_order_relaxed);
            claims_.bump();
            return true;
        }
        if (steps_done % piece_.chunk == 0) claims_.bump();  // a chunk's inputs for the layer above
        return false;
    }

    bool inputs_ready(const DirectionRun& run) override {
        int64_t seen = claims_.inputs_progress(piece_), since = steady_now_ns();
        for (;;) {
            const uint32_t word = claims_.progress.value.load(std::memory_order_acquire);
            if (claims_.inputs_ready(piece_, run.next_chunk)) return true;
            const int64_t now = steady_now_ns(), progress = claims_.inputs_progress(piece_);
            if (progress != seen) seen = progress, since = now;
            const int64_t patience = claims_.patience_ns(now);
            if (now - since >= patience) {
                piece_.holder.store(kNobody, std::memory_order_release);
                claims_.bump();
                return false;
            }
            claims_.progress.wait_while_equal_for(word, kWaitBeforeLookingAgain + std::chrono::nanoseconds(patience));
        }
    }

   private:
    const PackedLstm& lstm_;
    ClaimedLayers& claims_;
    ClaimedPiece& piece_;
};

// Blocks of the piece's current chunk projection, one after the other, until none is left; returns how many.
int64_t PackedLstm::take_projection_blocks(ClaimedPiece& piece, const OperandScratch& scratch) const {
    ClaimedPiece::Projection& job = piece.projection;
    int64_t ran = 0;
    uint64_t word = job.next.load(std::memory_order_acquire);
    for (;;) {
        const int64_t block = static_cast<int64_t>(word & 0xffffffffu),
                      blocks = job.blocks.load(std::memory_order_relaxed);
        if (block >= blocks) return ran;
        const int64_t t_begin = job.t_begin.load(std::memory_order_relaxed);
        const int64_t t_end = job.t_end.load(std::memory_order_relaxed);
        float* gates_in = job.gates_in.load(std::memory_order_relaxed);
        // Taken only if the generation is still the one these fields belong to.
        if (!job.next.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel, std::memory_order_acquire))
            continue;
        int64_t panel_begin, panel_end;
        share(num_panels(), block, blocks, &panel_begin, &panel_end);
        project_inputs(*piece.run.cell, piece.io.in, geometry_.layer_input_size(piece.layer), piece.run.batch, t_begin,
                       t_end, panel_begin, panel_end, gates_in, scratch);
        job.done.fetch_add(1, std::memory_order_release);
        ++ran;
        word = job.next.load(std::memory_order_acquire);
    }
}

double PackedLstm::run_claimed_piece(const ForwardArgs& args, int index, ClaimedLayers& claims, int64_t q,
                                     Workspace& workspace) const {
    ClaimedPiece& piece = claims.pieces[q];
    int expected = index;
    piece.wanted_by.compare_exchange_strong(expected, kNobody);  // asked for and got it
    const int64_t from_ns = steady_now_ns(), from_steps = piece.steps_done.load(std::memory_order_relaxed);
    if (piece.started_ns.load(std::memory_order_relaxed) == 0)
        piece.started_ns.store(from_ns, std::memory_order_relaxed);
    piece.run_from_steps.store(from_steps, std::memory_order_relaxed);
    piece.run_from_ns.store(from_ns, std::memory_order_relaxed);
    PieceHandoff handoff(*this, claims, piece);
    const bool done = continue_direction(args, piece.run, Team{0, 1, nullptr}, workspace, &handoff);
    const int64_t ran = (done ? piece.steps : piece.run.next_chunk * piece.chunk + piece.run.next_step) - from_steps;
    const double rate =
        ran >= kRateMinSteps ? static_cast<double>(steady_now_ns() - from_ns) / (ran * piece.step_weight) : 0;
    if (!done) return rate;
    piece.steps_done.store(piece.steps, std::memory_order_release);
    claims.pieces_done.fetch_add(1, std::memory_order_acq_rel);
    claims.bump();
    return rate;
}

// The operand scratch of a workspace's second member: a thread helping with a piece's projection (the holder uses
// the first).
PackedLstm::OperandScratch PackedLstm::helper_scratch(Workspace& workspace) const {
    OperandScratch scratch;
    if (precision_ == Precision::kBF16) scratch.bf16 = workspace.bf16_rows[1].data();
    if (precision_ == Precision::kInt8) {
        scratch.int8 = workspace.int8_rows[1].data();
        scratch.int8_scales = workspace.int8_scales[1].data();
    }
    return scratch;
}

void PackedLstm::run_claimed_layers(const ForwardArgs& args, int index, ClaimedLayers& claims) const {
    FlushDenormals flush_denormals;
    claims.started[index].store(true, std::memory_order_release);
    const int other = 1 - index;
    // When this thread last saw each piece make a step, and when it ran out of its own pieces (-1: busy).
    std::vector<int64_t> seen_steps(claims.count, -1), seen_at(claims.count, 0);
    int64_t idle_since = -1;
    double my_rate = 0;  // ns per unit of step weight in this thread's last run of a piece (0: not known)
    while (claims.pieces_done.load(std::memory_order_acquire) < claims.count) {
        const uint32_t word = claims.progress.value.load(std::memory_order_acquire);
        const int64_t now = steady_now_ns();
        const int64_t patience = claims.patience_ns(now);
        // The other thread may run late, or not at all: its preferred pieces wait for it only while it is busy.
        const bool wait_for_other =
            claims.started[other].load(std::memory_order_acquire) && (idle_since < 0 || now - idle_since < patience);
        int64_t take = -1, ask = -1;
        for (int64_t layer = 0; take < 0 && layer < claims.count / 2; ++layer) {
            for (const int64_t direction : {int64_t{index}, int64_t{other}}) {
                const int64_t q = 2 * layer + direction;
                ClaimedPiece& piece = claims.pieces[q];
                const int64_t steps_done = piece.steps_done.load(std::memory_order_acquire);
                if (steps_done == piece.steps) continue;
                if (steps_done != seen_steps[q]) seen_steps[q] = steps_done, seen_at[q] = now;
                const int holder = piece.holder.load(std::memory_order_acquire);
                const bool ready = claims.inputs_ready(piece, steps_done / piece.chunk);
                if (holder == index) {  // handed over
                    take = q;
                    break;
                }
                if (holder == kNobody && ready && (direction == index || !wait_for_other)) {
                    int none = kNobody;
                    if (piece.holder.compare_exchange_strong(none, index, std::memory_order_acq_rel)) {
                        take = q;
                        break;
                    }
                }
                // Asked for when it has made no step for a while (its holder has lost its core), or goes much slower
                // than this thread went (its holder shares a core).
                if (holder == other && ready && ask < 0 &&
                    (now - seen_at[q] >= patience ||
                     (my_rate > 0 && now - piece.run_from_ns.load(std::memory_order_relaxed) >= patience &&
                      piece.run_rate(now) > kSlowerBy * my_rate)))
                    ask = q;
            }
        }
        if (take >= 0) {
            idle_since = -1;
            for (int64_t q = 0; q < claims.count; ++q) {  // what it asked for before, it no longer waits for
                int mine = index;
                if (q != take) claims.pieces[q].wanted_by.compare_exchange_strong(mine, kNobody);
            }
            const double rate = run_claimed_piece(args, index, claims, take, *claims.pieces[take].workspace);
            if (rate > 0) my_rate = rate;
            continue;
        }
        if (idle_since < 0) idle_since = now;
        // Help with the other thread's chunk projection, if it is at one.
        bool helped = false;
        for (int64_t q = 0; q < claims.count && !helped; ++q) {
            ClaimedPiece& piece = claims.pieces[q];
            if (piece.holder.load(std::memory_order_relaxed) != other) continue;
            const int64_t blocks = take_projection_blocks(piece, helper_scratch(*piece.workspace));
            helped_blocks.fetch_add(blocks, std::memory_order_relaxed);
            helped = blocks > 0;
        }
        if (helped) continue;
        if (ask >= 0) {
            int none = kNobody;
            claims.pieces[ask].wanted_by.compare_exchange_strong(none, index);
        }
        // Spin as a barrier does (the other thread usually hands over within a step), then yield, leaving the core
        // to a thread that needs it, and look again when the patience runs out.
        claims.progress.wait_while_equal_for(word, kWaitBeforeLookingAgain + std::chrono::nanoseconds(patience));
    }
}

void PackedLstm::forward_claimed(const ForwardArgs& args, std::vector<Workspace>& workspaces,
                                 float* const layer_buffers[2]) const {
    const LstmGeometry& g = geometry_;
    ClaimedLayers claims(g.num_layers);
    const Team alone{0, 1, nullptr};
    for (int64_t q = 0; q < claims.count; ++q) {
        ClaimedPiece& piece = claims.pieces[q];
        const int64_t layer = q / 2, direction = q % 2;
        piece.io = layer_io(args, layer, layer_buffers);
        piece.workspace = &workspaces[(layer % 2) * 2 + direction];
        piece.run = start_direction(args, layer, direction, piece.io.in, piece.io.out, piece.io.out_time_stride,
                                    piece.io.out_batch_stride, alone, *piece.workspace);
        load_initial_c(args, piece.run);
        piece.layer = layer;
        piece.steps = args.steps;
        piece.chunk = piece.run.chunk;
        piece.reverse = piece.run.reverse;
        piece.look_ahead = piece.run.look_ahead;
        piece.step_weight = static_cast<double>(g.layer_input_size(layer) + g.output_size());
    }
    if (args.steps == 0) {
        for (int64_t q = 0; q < claims.count; ++q) store_final_h(args, claims.pieces[q].run);
        return;
    }
    ThreadPool::shared().run(
        2, [&](int index, int) { run_claimed_layers(args, index, claims); },
        /*members_optional=*/true);
    return;
}

}  // namespace fastlstm
