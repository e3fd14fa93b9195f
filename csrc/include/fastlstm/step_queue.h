// A queue of session steps run by a thread of its own, for the dynamic batcher (src/fastlstm/_batcher.py).
//
// Why: the batcher's producers (asyncio tasks, threads) and its bookkeeping are Python and hold the GIL; a step of a
// few hundred sessions is C++ that does not need it. When a Python thread runs the step, the next batch's Python
// (futures settled, frames submitted) waits for the step, and the step waits for that Python: the two take turns on
// one core. Queued here, a step starts as soon as the previous one ends, on another core, while Python carries on:
// the GIL is never taken by this thread.
//
// A queued step reads the pool's states where they are when it starts (SessionRows, under its mutex), so that the
// pool may grow, and its sessions open and close, while steps wait in the queue. The caller keeps the frames and
// outputs of a queued step alive until the step is reported finished.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fastlstm/lstm.h"

namespace fastlstm {

// This process's id (getpid).
long current_process_id();

// The states of a pool's sessions (src/fastlstm/_sessions.py): rows of h (layers, capacity, output_size) and c
// (layers, capacity, hidden_size), and the generation each slot holds (-1: free), all owned by the pool. The pool
// holds `mutex` while it reads or changes them (and when it moves them to larger arrays), and so does a queued step
// while it runs.

struct SessionRows {
    std::mutex mutex;
    float* h = nullptr;
    float* c = nullptr;
    const int64_t* generations = nullptr;
    int64_t capacity = 0;
    int64_t layers = 0, h_width = 0, c_width = 0;  // h is (layers, capacity, h_width), c (layers, capacity, c_width)
    long owner_process = current_process_id();     // whose threads may hold `mutex` (a fork's child makes a new one)
};

// In a fork's child, the parent's thread that held rows.mutex at the fork (a queued step's, say) does not exist: the
// child's first use puts a new, unlocked mutex in its place (never touching the copied one, as the thread pool does
// with its own). Call before any use of the mutex in this process, from the thread that pushes or locks (Python's,
// holding the GIL), so that no other thread of the child can be using it.
void adopt_after_fork(SessionRows& rows);

class StepQueue {
   public:
    struct Finished {
        int64_t ticket = 0;
        std::string error;  // empty when the step ran
        // Rows of the step left out because their session had closed (or its slot held another) when it ran:
        // their outputs are not written.
        std::vector<int64_t> skipped;
        std::chrono::steady_clock::time_point at;  // when the step finished
    };

    StepQueue() = default;
    ~StepQueue();  // runs the queued steps, then stops the thread
    StepQueue(const StepQueue&) = delete;
    StepQueue& operator=(const StepQueue&) = delete;

    // Queues one step of the `n` sessions `ids` (copied) of `rows`, frames x (n, input_size) -> outputs y (n, width);
    // returns its ticket, counted from 1 in queue order. Throws std::runtime_error in a process forked from the one
    // that started the thread (which the child lacks).
    int64_t push(const PackedLstm& lstm, SessionRows& rows, const int64_t* ids, int64_t n, const float* x, float* y,
                 int threads, ForwardCache* cache);

    // The steps finished since the last call, in queue order; when there are none, first waits for one, for a
    // nudge() or for `timeout_seconds` (negative: no limit).
    std::vector<Finished> wait_finished(double timeout_seconds);

    // Ends the current or next wait_finished early (someone has something else for its caller to do).
    void nudge();

    // With fd >= 0, each finished step also writes a byte to `fd` (a non-blocking pipe an event loop watches: a full
    // pipe drops the byte, the loop is awake then anyway), so that the loop can take it with take_finished in its own
    // thread, and wait_finished leaves a finished step to the loop for `grace_seconds` (reporting it after that, when
    // the loop did not come for it). fd < 0: no writes, and wait_finished reports steps at once again. The caller
    // closes a former fd only after this call returns: no write reaches it from then on.
    void set_wakeup_fd(int fd, double grace_seconds);
    // The steps finished since the last report (of this or wait_finished), in queue order, without waiting.
    std::vector<Finished> take_finished();

    // Steps queued and not yet reported by wait_finished or take_finished.
    int64_t outstanding() const;

    // Seconds the thread has spent stepping so far: against the wall time, how much of it the steps had (the rest
    // it waited for the Python that queues them).
    double busy_seconds() const;

   private:
    struct Job {
        const PackedLstm* lstm = nullptr;
        SessionRows* rows = nullptr;
        std::vector<int64_t> ids;
        const float* x = nullptr;
        float* y = nullptr;
        int threads = 1;
        ForwardCache* cache = nullptr;
        int64_t ticket = 0;
    };

    void run();
    // The job's step, under its rows' mutex; returns the rows skipped.
    static std::vector<int64_t> step(const Job& job);

    mutable std::mutex mutex_;
    std::condition_variable job_ready_;
    std::condition_variable finished_ready_;
    std::deque<Job> jobs_;
    std::vector<Finished> finished_;
    int64_t pushed_ = 0;
    int64_t reported_ = 0;
    double busy_seconds_ = 0.0;
    bool nudged_ = false;
    int wakeup_fd_ = -1;
    std::chrono::steady_clock::duration grace_{};
    bool stopping_ = false;
    std::thread worker_;
    long owner_process_ = 0;  // the process that started worker_ (0: not started)
};

}  // namespace fastlstm
