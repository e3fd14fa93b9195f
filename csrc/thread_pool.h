// A persistent pool of worker threads of our own (no OpenMP runtime in the wheel) and a spinning barrier.
//
// The LSTM forward pass runs as one job per call: every thread of the team works through the whole sequence and
// meets the others at a barrier once per step. Workers that have just finished a job spin for a short while
// before sleeping, so that back-to-back calls do not pay a wake-up each.
//
// Fork safety (POSIX): fork() copies only the calling thread, so a child inherits a pool object whose workers do not
// exist, whose mutexes another thread of the parent may have held, and possibly a half-published job. Using it would
// wait forever. A pthread_atfork child handler therefore abandons the parent's pool in the child (never touching its
// threads or mutexes, never destroying it) and ThreadPool::shared() installs a fresh pool there on first use, whose
// workers start when a call first asks for them. The parent's pool is unaffected. Windows has no fork.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace fastlstm {

// A word that threads wait on until it changes: they spin for a bounded time (a change that comes within a step
// of the other threads costs no system call), then sleep (futex on Linux, yielding elsewhere), so that a waiting
// thread stops holding the core that the thread it waits for, or another program's, needs. Whoever changes the
// word calls notify() after the change; it costs a system call only when someone sleeps.
class WaitWord {
   public:
    std::atomic<uint32_t> value{0};

    // Returns how long it waited, in nanoseconds, when that was longer than the spin (it slept); 0 otherwise.
    int64_t wait_while_equal(uint32_t expected) const;
    // Spins as wait_while_equal does, then yields instead of sleeping, and returns after `timeout` at the latest (the
    // caller then looks again at what it waits for). For waits inside a call, where a sleeping thread would be
    // woken onto its waker's CPU (thread_pool.cc).
    void wait_while_equal_for(uint32_t expected, std::chrono::nanoseconds timeout) const;
    // Sleeps (no spin) while the value equals `expected`, until `deadline` at the latest: for a thread with nothing to
    // do for a while that must still come back at once when the word changes (the end of the call, say).
    void sleep_while_equal_until(uint32_t expected, std::chrono::steady_clock::time_point deadline) const;
    void notify() const;

   private:
    // Spins until the value changes or `until` passes; returns whether it changed.
    bool spin_while_equal(uint32_t expected, std::chrono::steady_clock::time_point until) const;
    mutable std::atomic<int> sleepers_{0};
};

// The `count` threads of a team, members 0 .. count - 1, wait in arrive_and_wait(count, index) until the last one
// arrives (all pass the same count, each its own index). Reusable; waits as WaitWord does.
//
// Teams of up to kFlagMembers meet through flags: each member counts its arrivals in a word of its own cache line
// and waits until every other member's count has caught up with its own. The last to arrive then makes one cache
// line change hands (its flag, to each waiter), where a shared counter takes two (the counter, then the word the
// waiters watch): on the Zen 4, two threads met in 66-102 ns this way against 145-304 ns through a counter (a
// standalone loop of 2 million meetings, three runs), and batch-1 sequences on 2 threads, which meet once a step,
// took 0.97x the time at I=H=64, 0.98-0.99x at 128 and 1.00x at 256 (tools/ab_compare.py, 9-15 rounds). A meeting with
// `on_last`, which needs a single last member, and larger teams, whose members would each read every other's line, take
// the counter. Members meet the same number of times from the barrier's construction (a team's members make the same
// calls), so a member's count is never more than one ahead of another's.
class SpinBarrier {
   public:
    SpinBarrier() = default;
    SpinBarrier(const SpinBarrier&) = delete;
    SpinBarrier& operator=(const SpinBarrier&) = delete;

    // Returns how long this thread waited, in nanoseconds, when it waited longer than the spin; 0 otherwise. With
    // `on_last`, the last thread to arrive calls on_last(context) before it lets the others go (they see what it
    // wrote after this returns).
    int64_t arrive_and_wait(int count, int index, void (*on_last)(void*) = nullptr, void* context = nullptr);

   private:
    static constexpr int kFlagMembers = 8;
    struct alignas(64) Flag {
        WaitWord arrivals;
    };
    Flag flags_[kFlagMembers];
    alignas(64) std::atomic<int> arrived_{0};
    alignas(64) WaitWord generation_;
};

class ThreadPool {
   public:
    // The process-wide pool: one atomic load once it exists. Workers are started on first use, up to the largest
    // team asked for. In the child of a fork() it is a new pool, not the parent's.
    static ThreadPool& shared();

    ~ThreadPool();

    // Runs task(index, team_size) for index in [0, team_size) on team_size threads, the caller being index 0, and
    // returns when all have returned. team_size is `threads`, or 1 when another call is using the pool or when no
    // worker has started within kStartWait (a worker without a core would hold up every meeting of the team; the
    // caller then does all the work; results do not depend on the team size). Tasks must not throw.
    //
    // With `members_optional`, the task shares its work out by itself (work that any member may take, the caller
    // taking whatever is left): the caller starts at once, and once its own task returns, the members that have not
    // started by then never run, so the call does not wait for a thread that has no core.
    void run(int threads, const std::function<void(int, int)>& task, bool members_optional = false);

   private:
    ThreadPool() = default;
    static ThreadPool& install_shared();  // the first call of shared() in a process (or in a fork child)
#if !defined(_WIN32)
    static void abandon_shared_after_fork();  // the pthread_atfork child handler
    static const bool fork_handler_registered_;
#endif
    void worker_loop(int index);
    void start_workers(int count);

    std::mutex run_mutex_;  // one job at a time
    std::mutex sleep_mutex_;
    std::condition_variable wake_;
    std::vector<std::thread> workers_;  // worker i has team index i + 1

    // Closes the current job to the workers that have not taken a slot of it; returns how many had.
    uint32_t close_slots();

    const std::function<void(int, int)>* task_ = nullptr;
    std::atomic<uint32_t> job_{0};  // bumped to publish a job
    // The current job's worker slots, taken one per worker: the job's number (high 32 bits), its team size (16 bits)
    // and the slots taken (low 16 bits; kClosed once the caller has closed it). A worker takes a slot only of the
    // job it saw published, so a late worker never runs a slot of a later job twice.
    std::atomic<uint64_t> slots_{0};
    WaitWord pending_;  // workers of the current job not yet done; the caller waits on it
    // The CPU each member of the current job started on (-1: not yet), for the first kTrackedMembers members, so
    // that a worker the scheduler put beside another member moves away (thread_pool.cc: leave_team_cpus).
    static constexpr int kTrackedMembers = 64;
    std::atomic<int> member_cpus_[kTrackedMembers] = {};
    std::atomic<bool> stopping_{false};

#if !defined(_WIN32)
    // Pools abandoned by forks, newest first, linked through here from a global so that they stay reachable: they
    // are leaked on purpose, and leak checkers and debuggers should see them as held, not lost.
    ThreadPool* abandoned_before_ = nullptr;
#endif
};

}  // namespace fastlstm
