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
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace fastlstm {

// The `count` threads of a team wait in arrive_and_wait(count) until the last one arrives (all pass the same
// count). Reusable; spins, then yields, so that an oversubscribed machine does not starve the thread everyone
// waits for.
class SpinBarrier {
   public:
    SpinBarrier() = default;
    SpinBarrier(const SpinBarrier&) = delete;
    SpinBarrier& operator=(const SpinBarrier&) = delete;

    void arrive_and_wait(int count);

   private:
    alignas(64) std::atomic<int> arrived_{0};
    alignas(64) std::atomic<uint32_t> generation_{0};
};

class ThreadPool {
   public:
    // The process-wide pool: one atomic load once it exists. Workers are started on first use, up to the largest
    // team asked for. In the child of a fork() it is a new pool, not the parent's.
    static ThreadPool& shared();

    ~ThreadPool();

    // Runs task(index, team_size) for index in [0, team_size) on team_size threads, the caller being index 0, and
    // returns when all have returned. team_size is `threads`, or 1 when another call is using the pool (the
    // caller then does all the work; results do not depend on the team size). Tasks must not throw.
    void run(int threads, const std::function<void(int, int)>& task);

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

    const std::function<void(int, int)>* task_ = nullptr;
    int team_size_ = 1;
    std::atomic<uint32_t> job_{0};  // bumped to publish a job
    std::atomic<int> pending_{0};   // workers of the current job not yet done
    std::atomic<bool> stopping_{false};

#if !defined(_WIN32)
    // Pools abandoned by forks, newest first, linked through here from a global so that they stay reachable: they
    // are leaked on purpose, and leak checkers and debuggers should see them as held, not lost.
    ThreadPool* abandoned_before_ = nullptr;
#endif
};

}  // namespace fastlstm
