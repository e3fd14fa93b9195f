// A team of threads of the shared pool working on one call, and how they share work. Private to the core's sources.
#pragma once

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

// The steady clock in nanoseconds: the core's deadlines and rates (forward.cc, TeamShrink).
inline int64_t steady_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// Whether a team that splits the hidden units goes on with its first member alone (forward.cc). Members add up the
// time they waited at a step's meeting beyond a barrier's spin (someone had lost its core: a time slice is
// milliseconds). At a meeting that ends a chunk of steps, once kShrinkWindowNs have passed since the last decision,
// the last member to arrive decides: the team shrinks if those waits took more than 1/kShrinkWaitShare of the
// window, a member sharing its core with another program's thread, not a moment's interruption. Every member reads
// the decision after that meeting; from the next chunk the first member runs every panel and the others leave the
// call, so that nobody waits at every step for a thread that shares a core. Once shrunk, the call stays so.
struct TeamShrink {
    static constexpr int64_t kShrinkWindowNs = 5'000'000;
    static constexpr int64_t kShrinkWaitShare = 4;
    std::atomic<int64_t> waited_ns{0};
    std::atomic<int64_t> window_start_ns{-1};  // -1: at the first decision point
    std::atomic<bool> solo{false};
    bool force = false;  // tests: shrink at the first decision point

    // The last member to arrive at a chunk's last meeting (SpinBarrier's on_last).
    static void decide(void* context) {
        TeamShrink& shrink = *static_cast<TeamShrink*>(context);
        const int64_t now = steady_now_ns(), start = shrink.window_start_ns.load(std::memory_order_relaxed);
        if (start < 0 && !shrink.force) {
            shrink.window_start_ns.store(now, std::memory_order_relaxed);
            shrink.waited_ns.store(0, std::memory_order_relaxed);
            return;
        }
        if (!shrink.force && now - start < kShrinkWindowNs) return;
        if (shrink.force || shrink.waited_ns.load(std::memory_order_relaxed) * kShrinkWaitShare > now - start)
            shrink.solo.store(true, std::memory_order_relaxed);
        shrink.window_start_ns.store(now, std::memory_order_relaxed);
        shrink.waited_ns.store(0, std::memory_order_relaxed);
    }
};

// A group of threads working on the same directions, with their barrier.
struct PackedLstm::Team {
    int index;
    int size;
    SpinBarrier* barrier;
    TeamShrink* shrink = nullptr;  // or null: the team keeps its size

    bool solo() const { return shrink != nullptr && shrink->solo.load(std::memory_order_relaxed); }
    // The members sharing the work now: `size`, or 1 once the team has shrunk.
    int members() const { return solo() ? 1 : size; }
    // The team's meeting; at the end of a chunk (`chunk_end`), also where the team may decide to shrink.
    void sync(bool chunk_end = false) const {
        if (members() <= 1) return;
        if (shrink == nullptr) {
            barrier->arrive_and_wait(size);
            return;
        }
        const int64_t slept_ns = barrier->arrive_and_wait(size, chunk_end ? &TeamShrink::decide : nullptr, shrink);
        if (slept_ns > 0) shrink->waited_ns.fetch_add(slept_ns, std::memory_order_relaxed);
    }
};

}  // namespace fastlstm
