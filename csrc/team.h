// A team of threads of the shared pool working on one call, and how they share work. Private to the core's sources.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "fastlstm/lstm.h"
#include "thread_pool.h"

namespace fastlstm {

// [begin, end) of `count` items for member `index` of a team of `size`: contiguous, balanced, fixed for the call.
inline void share(int64_t count, int index, int size, int64_t* begin, int64_t* end) {
    *begin = count * index / size;
    *end = count * (index + 1) / size;
}

// The steady clock in nanoseconds: the core's deadlines and rates (claimed_directions.cc, TeamSize).
inline int64_t steady_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// Where a team's run stands when its late members join (TeamSize): before chunk `chunk` of layer `layer`, with the
// step arguments that carry h_{t-1} (the columns of c are in place, written by the first member).
struct TeamJoinPoint {
    int64_t layer = -1, chunk = 0;  // layer -1: none, the members started with the first
    const float* h_prev = nullptr;
    int64_t h_prev_stride = 0, recurrent_size = 0;
};

// How many members of a team that splits the hidden units share the work (forward.cc). It changes only before a
// chunk of steps:
// - Late members join. Members that start within microseconds of the first start with it. Otherwise the first
//   member starts alone and lets the others in before the first chunk it starts after all of them have arrived: it
//   tells them where it stands (TeamJoinPoint) and keeps its own share of the panels from there. A worker whose core
//   was asleep can take milliseconds to start on a virtual machine; the call does not wait for it, and still has it
//   for the rest of the call.
// - The team shrinks. Members add up the time they waited at a step's meeting beyond a barrier's spin (someone had
//   lost its core: a time slice is milliseconds). At a meeting that ends a chunk of steps, once kShrinkWindowNs have
//   passed since the members joined or the last decision, the last member to arrive decides: the team shrinks if
//   those waits took more than 1/kShrinkWaitShare of the window, a member sharing its core with another program's
//   thread, not a moment's interruption. From the next chunk the first member runs every panel and the others step
//   out, so that nobody waits at every step for a thread that shares a core.
// - The team grows back. The members that stepped out sleep for a while (kAloneFirstNs after the first shrink of the
//   call, twice as long after each further one) and then join again as late members do. The cause may have passed:
//   on a virtual machine a worker just woken often shares the caller's CPU for some milliseconds before the
//   scheduler moves it, and a long call would otherwise run at one thread's speed to its end. If the cause stays
//   (another program's thread on that core), each return costs about one window of waits before the team shrinks
//   again, and the doubling makes returns rare: a call of length L tries about log2(L / kAloneFirstNs) of them, and
//   one every kAloneMostNs once the doubling has reached that.
// At the end of the call the first member sends home whoever is still waiting or sleeping.
struct TeamSize {
    // kStarting: the first has not started; kFirstAlone: it works alone (started alone, or the team shrank), the
    // others join it later; kEveryone; kFirstForGood: it goes on alone to the end (its call is ending).
    enum Phase : uint32_t { kStarting = 0, kFirstAlone = 1, kEveryone = 2, kFirstForGood = 3 };
    static constexpr int64_t kShrinkWindowNs = 5'000'000;
    static constexpr int64_t kShrinkWaitShare = 4;
    static constexpr int64_t kAloneFirstNs = 4 * kShrinkWindowNs;
    // The doubling stops here (1.28 s): a call that shrinks at every chunk (the test mode does) must not overflow it,
    // and a long call beside a program that never leaves still tries again every 1.28 s, at a cost of about one
    // window of waits (5 ms, 0.4%) each time.
    static constexpr int64_t kAloneMostNs = 64 * kAloneFirstNs;
    WaitWord phase;               // a Phase; waiting members wait on it
    std::atomic<int> arrived{1};  // members that have started or come back (the first counts itself)
    TeamJoinPoint join;           // written before phase becomes kEveryone
    std::atomic<int64_t> waited_ns{0};
    std::atomic<int64_t> window_start_ns{0};  // set when the members join
    std::atomic<int64_t> rejoin_at_ns{0};     // after a shrink: when the members come back
    int64_t alone_ns = kAloneFirstNs;         // how long the next shrink lasts (decide() alone writes it)
    int shrinks = 0;                          // in this call (decide() alone writes it)
    bool force_shrink = false;                // tests: shrink at every decision point, and grow back at once
    bool force_late_join = false;             // tests: the members join no earlier than the first's second chunk

    bool everyone() const { return phase.value.load(std::memory_order_relaxed) == kEveryone; }
    bool waiting_to_join() const {
        const uint32_t now = phase.value.load(std::memory_order_acquire);
        return now == kStarting || now == kFirstAlone;
    }
    // A member that has started: the last of them lets everyone start together, unless the first started alone.
    void arrive(int size) {
        if (arrived.fetch_add(1, std::memory_order_acq_rel) + 1 < size || force_late_join) return;
        uint32_t starting = kStarting;
        if (phase.value.compare_exchange_strong(starting, kEveryone, std::memory_order_acq_rel)) {
            window_start_ns.store(steady_now_ns(), std::memory_order_relaxed);
            phase.notify();
        }
    }
    // The first member, before it starts: alone, unless everyone has arrived by then.
    void start_first() {
        uint32_t starting = kStarting;
        if (!everyone()) phase.value.compare_exchange_strong(starting, kFirstAlone, std::memory_order_acq_rel);
    }
    // The first member, alone, before chunk `chunk` of layer `layer`: whether to let the others in there.
    bool may_join(int size, int64_t layer, int64_t chunk) const {
        return phase.value.load(std::memory_order_relaxed) == kFirstAlone &&
               arrived.load(std::memory_order_acquire) == size && (!force_late_join || layer > 0 || chunk > 0) &&
               (shrinks == 0 || steady_now_ns() >= rejoin_at_ns.load(std::memory_order_relaxed));
    }
    void let_in(const TeamJoinPoint& where) {
        join = where;
        window_start_ns.store(steady_now_ns(), std::memory_order_relaxed);
        waited_ns.store(0, std::memory_order_relaxed);
        phase.value.store(kEveryone, std::memory_order_release);
        phase.notify();
    }
    // A member that stepped out of a shrunk team: sleeps until it is time to come back (true), or until the call ends
    // (false).
    bool rest_after_shrink() const {
        const std::chrono::steady_clock::time_point until{
            std::chrono::nanoseconds(rejoin_at_ns.load(std::memory_order_relaxed))};
        phase.sleep_while_equal_until(kFirstAlone, until);
        return phase.value.load(std::memory_order_acquire) == kFirstAlone;
    }
    // The first member at the end of its call: members still waiting or sleeping go home.
    void finish() {
        uint32_t alone = kFirstAlone;
        if (phase.value.load(std::memory_order_relaxed) == kFirstAlone &&
            phase.value.compare_exchange_strong(alone, kFirstForGood, std::memory_order_acq_rel))
            phase.notify();
    }

    // The last member to arrive at a chunk's last meeting (SpinBarrier's on_last).
    static void decide(void* context) {
        TeamSize& size = *static_cast<TeamSize*>(context);
        const int64_t now = steady_now_ns(), start = size.window_start_ns.load(std::memory_order_relaxed);
        if (!size.force_shrink && now - start < kShrinkWindowNs) return;
        if (size.force_shrink || size.waited_ns.load(std::memory_order_relaxed) * kShrinkWaitShare > now - start) {
            // Published to the others by the barrier's release: they step out from the next chunk and come back.
            size.arrived.store(1, std::memory_order_relaxed);
            size.rejoin_at_ns.store(size.force_shrink ? now : now + size.alone_ns, std::memory_order_relaxed);
            size.alone_ns = std::min(2 * size.alone_ns, kAloneMostNs);
            ++size.shrinks;
            count_team_shrink();
            size.phase.value.store(kFirstAlone, std::memory_order_relaxed);
        }
        size.window_start_ns.store(now, std::memory_order_relaxed);
        size.waited_ns.store(0, std::memory_order_relaxed);
    }
};

// A group of threads working on the same directions, with their barrier.
struct PackedLstm::Team {
    int index;
    int size;
    SpinBarrier* barrier;
    TeamSize* sizing = nullptr;  // or null: every member shares the work from start to end

    // Whether the first member works alone now (the others have not joined, or the team has shrunk).
    bool solo() const { return sizing != nullptr && !sizing->everyone(); }
    // The members sharing the work now: `size`, or 1 while the first works alone.
    int members() const { return solo() ? 1 : size; }
    // The team's meeting; at the end of a chunk (`chunk_end`), also where the team may decide to shrink.
    void sync(bool chunk_end = false) const {
        if (members() <= 1) return;
        if (sizing == nullptr) {
            barrier->arrive_and_wait(size, index);
            return;
        }
        const int64_t slept_ns = barrier->arrive_and_wait(size, index, chunk_end ? &TeamSize::decide : nullptr, sizing);
        if (slept_ns > 0) sizing->waited_ns.fetch_add(slept_ns, std::memory_order_relaxed);
    }
};

}  // namespace fastlstm
