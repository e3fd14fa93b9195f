#include "thread_pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define FASTLSTM_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define FASTLSTM_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define FASTLSTM_CPU_RELAX() ((void)0)
#endif

namespace fastlstm {
namespace {

// Spin this many rounds on a barrier before yielding the core: long enough to cover a step of the other thread
// at the sizes where threads pay off, short enough not to burn a time slice when the machine is oversubscribed.
constexpr int kBarrierSpins = 1 << 14;

// How long an idle worker keeps spinning for the next job before it sleeps.
constexpr auto kIdleSpin = std::chrono::microseconds(200);

}  // namespace

void SpinBarrier::arrive_and_wait(int count) {
    if (count == 1) return;
    const uint32_t generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == count - 1) {
        arrived_.store(0, std::memory_order_relaxed);
        generation_.store(generation + 1, std::memory_order_release);
        return;
    }
    for (int spins = 0; generation_.load(std::memory_order_acquire) == generation; ++spins) {
        if (spins < kBarrierSpins)
            FASTLSTM_CPU_RELAX();
        else
            std::this_thread::yield();
    }
}

ThreadPool& ThreadPool::shared() {
    // Never destroyed: worker threads must not be joined during static destruction at interpreter exit.
    static ThreadPool* pool = new ThreadPool();
    return *pool;
}

ThreadPool::~ThreadPool() {
    stopping_.store(true);
    { std::lock_guard<std::mutex> lock(sleep_mutex_); }
    wake_.notify_all();
    for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::start_workers(int count) {
    while (static_cast<int>(workers_.size()) < count) {
        const int index = static_cast<int>(workers_.size()) + 1;
        workers_.emplace_back([this, index] { worker_loop(index); });
    }
}

void ThreadPool::run(int threads, const std::function<void(int, int)>& task) {
    std::unique_lock<std::mutex> lock(run_mutex_, std::try_to_lock);
    if (threads <= 1 || !lock.owns_lock()) {
        task(0, 1);
        return;
    }
    start_workers(threads - 1);
    task_ = &task;
    team_size_ = threads;
    pending_.store(threads - 1, std::memory_order_relaxed);
    job_.fetch_add(1, std::memory_order_release);
    { std::lock_guard<std::mutex> sleep_lock(sleep_mutex_); }
    wake_.notify_all();
    task(0, threads);
    while (pending_.load(std::memory_order_acquire) != 0) FASTLSTM_CPU_RELAX();
}

void ThreadPool::worker_loop(int index) {
    uint32_t seen = 0;
    for (;;) {
        // Wait for a new job: spin for a while, then sleep until run() or the destructor wakes us.
        const auto spin_until = std::chrono::steady_clock::now() + kIdleSpin;
        int rounds = 0;
        while (job_.load(std::memory_order_acquire) == seen && !stopping_.load(std::memory_order_relaxed)) {
            FASTLSTM_CPU_RELAX();
            if ((++rounds & 255) == 0 && std::chrono::steady_clock::now() > spin_until) {
                std::unique_lock<std::mutex> lock(sleep_mutex_);
                wake_.wait(lock, [&] {
                    return job_.load(std::memory_order_acquire) != seen || stopping_.load(std::memory_order_relaxed);
                });
            }
        }
        if (stopping_.load()) return;
        seen = job_.load(std::memory_order_acquire);
        if (index < team_size_) {
            (*task_)(index, team_size_);
            pending_.fetch_sub(1, std::memory_order_acq_rel);
        }
    }
}

}  // namespace fastlstm
