#include "thread_pool.h"

#include "cpu.h"
#include "openmp_team.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#if !defined(_WIN32)
#include <pthread.h>
#endif
#if defined(__linux__)
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace fastlstm {
namespace {

// How long a WaitWord spins before it sleeps: longer than the threads of a team drift apart within a step or a
// direction when each has a core, so that an undisturbed call makes no system call and pays no wake-up (with 50 us,
// the two directions of 1x100x256-bidir on 2 threads ran 3% slower than with a waiter that never sleeps; measured
// with tools/ab_compare.py); short next to the time slice (milliseconds) for which a thread without a core is away,
// which the waiter then leaves to it instead of burning.
constexpr auto kWaitSpin = std::chrono::microseconds(200);

// How long an idle worker keeps spinning for the next job before it sleeps.
constexpr auto kIdleSpin = std::chrono::microseconds(200);

// How long the caller of a team whose members must all take part waits for them to start before it runs the job
// alone: longer than a sleeping worker takes to wake when it has a core (tens of microseconds), short next to the
// time slice (milliseconds) for which a worker whose core is busy does not start.
constexpr auto kStartWait = std::chrono::microseconds(300);

// ThreadPool::slots_ fields.
constexpr uint64_t kTakenMask = 0xffff;
constexpr uint64_t kClosed = 0xffff;
constexpr int kSizeShift = 16, kJobShift = 32;

// The process's pool: null until the first call of shared(), and again in a fork child until its first call there.
// A namespace-scope atomic pointer is constant-initialized (no guard variable, no constructor to run), so once the
// pool exists shared() costs one acquire load, a plain load on x86-64. Lock-free, so that the fork child handler's
// store to it is async-signal-safe, as POSIX asks of what a multithreaded process's child does before exec.
std::atomic<ThreadPool*> shared_pool{nullptr};
static_assert(std::atomic<ThreadPool*>::is_always_lock_free, "the fork handler needs a lock-free pool pointer");

#if !defined(_WIN32)
// Head of the pools abandoned by forks (see ThreadPool::abandoned_before_). Written only by the fork child handler,
// when the child has a single thread.
ThreadPool* abandoned_pools = nullptr;
#endif

// The CPU the calling thread runs on, or -1 where that is unknown.
int current_cpu() {
#if defined(__linux__)
    return sched_getcpu();
#else
    return -1;
#endif
}

// A worker that the scheduler has put on the CPU of another member of its team moves to a CPU where no member is
// (when its affinity allows one). Two members on one CPU share it while another CPU may run some other program's
// thread alone: next to one spinning thread of another library on two cores, a team of two then gets one core
// instead of one and a half, and the load balancer does not mend it (one CPU has two runnable threads either way).
// The move is a hint: the worker's own affinity is restored at once, and the scheduler stays free to move it later.
void leave_team_cpus(const std::atomic<int>* member_cpus, int members, int index) {
#if defined(__linux__)
    const int here = current_cpu();
    bool shared = false;
    for (int m = 0; m < members; ++m) shared |= m != index && member_cpus[m].load(std::memory_order_acquire) == here;
    if (!shared) return;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return;
    cpu_set_t elsewhere = allowed;
    for (int m = 0; m < members; ++m) {
        const int cpu = member_cpus[m].load(std::memory_order_acquire);
        if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_CLR(cpu, &elsewhere);
    }
    if (CPU_COUNT(&elsewhere) == 0) return;
    if (sched_setaffinity(0, sizeof(elsewhere), &elsewhere) == 0) sched_setaffinity(0, sizeof(allowed), &allowed);
#else
    (void)member_cpus, (void)members, (void)index;
#endif
}

}  // namespace

bool WaitWord::spin_while_equal(uint32_t expected, std::chrono::steady_clock::time_point until) const {
    for (int rounds = 1; value.load(std::memory_order_acquire) == expected; ++rounds) {
        cpu_relax();
        if ((rounds & 63) == 0 && std::chrono::steady_clock::now() > until)
            return value.load(std::memory_order_acquire) != expected;
    }
    return true;
}

int64_t WaitWord::wait_while_equal(uint32_t expected) const {
    const auto start = std::chrono::steady_clock::now();
    if (spin_while_equal(expected, start + kWaitSpin)) return 0;
    while (value.load(std::memory_order_acquire) == expected) {
#if defined(__linux__)
        // Sequentially consistent with notify(): either it sees us sleeping, or we see its change (and the kernel
        // compares the word again before sleeping, so a change in between is not missed either).
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        if (value.load(std::memory_order_seq_cst) == expected)
            syscall(SYS_futex, reinterpret_cast<const uint32_t*>(&value), FUTEX_WAIT_PRIVATE, expected, nullptr,
                    nullptr, 0);
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
#else
        std::this_thread::yield();
#endif
    }
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
}

void WaitWord::wait_while_equal_for(uint32_t expected, std::chrono::nanoseconds timeout) const {
    const auto start = std::chrono::steady_clock::now();
    if (spin_while_equal(expected, start + std::min<std::chrono::nanoseconds>(kWaitSpin, timeout))) return;
    // Then yield rather than sleep: a thread on our CPU (the one we wait for, say) runs first, and we stay where we
    // are (a futex wake-up would put us on the waker's CPU when every CPU is busy, beside the thread we share work
    // with, while another program's spinning thread keeps the other CPU to itself).
    while (value.load(std::memory_order_acquire) == expected && std::chrono::steady_clock::now() < start + timeout)
        std::this_thread::yield();
}

void WaitWord::sleep_while_equal_until(uint32_t expected, std::chrono::steady_clock::time_point deadline) const {
    for (auto now = std::chrono::steady_clock::now();
         value.load(std::memory_order_acquire) == expected && now < deadline; now = std::chrono::steady_clock::now()) {
#if defined(__linux__)
        const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now).count();
        timespec timeout{static_cast<time_t>(left / 1'000'000'000), static_cast<long>(left % 1'000'000'000)};
        sleepers_.fetch_add(1, std::memory_order_seq_cst);  // as in wait_while_equal
        if (value.load(std::memory_order_seq_cst) == expected)
            syscall(SYS_futex, reinterpret_cast<const uint32_t*>(&value), FUTEX_WAIT_PRIVATE, expected, &timeout,
                    nullptr, 0);
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
#else
        std::this_thread::sleep_for(
            std::min<std::chrono::steady_clock::duration>(deadline - now, std::chrono::microseconds(100)));
#endif
    }
}

void WaitWord::notify() const {
#if defined(__linux__)
    if (sleepers_.load(std::memory_order_seq_cst) > 0)
        syscall(SYS_futex, reinterpret_cast<const uint32_t*>(&value), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr,
                0);
#endif
}

int64_t SpinBarrier::arrive_and_wait(int count, int index, void (*on_last)(void*), void* context) {
    if (count == 1) return 0;
    if (on_last == nullptr && count <= kFlagMembers) {
        WaitWord& mine = flags_[index].arrivals;
        const uint32_t arrivals = mine.value.load(std::memory_order_relaxed) + 1;
        // Sequentially consistent, as WaitWord::notify asks; it also releases this member's writes to the others.
        mine.value.store(arrivals, std::memory_order_seq_cst);
        mine.notify();
        int64_t slept_ns = 0;
        for (int member = 0; member < count; ++member)
            if (member != index) slept_ns += flags_[member].arrivals.wait_while_equal(arrivals - 1);
        return slept_ns;
    }
    const uint32_t generation = generation_.value.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == count - 1) {
        if (on_last != nullptr) on_last(context);
        arrived_.store(0, std::memory_order_relaxed);
        generation_.value.store(generation + 1, std::memory_order_seq_cst);
        generation_.notify();
        return 0;
    }
    return generation_.wait_while_equal(generation);
}

ThreadPool& ThreadPool::shared() {
    // Acquire: pairs with the release of install_shared(), so a pool installed by another thread is seen constructed.
    ThreadPool* const pool = shared_pool.load(std::memory_order_acquire);
    return pool != nullptr ? *pool : install_shared();
}

ThreadPool& ThreadPool::install_shared() {
    // Never destroyed: worker threads must not be joined during static destruction at interpreter exit. A new pool
    // starts no thread, so when two first callers race, the loser deletes its own unused one. A fork at any point
    // in here is harmless: the child sees either null or a pool without workers, and abandons the latter.
    ThreadPool* const fresh = new ThreadPool();
    ThreadPool* installed = nullptr;
    if (shared_pool.compare_exchange_strong(installed, fresh, std::memory_order_acq_rel, std::memory_order_acquire))
        return *fresh;
    delete fresh;
    return *installed;
}

#if !defined(_WIN32)
// Runs in the child of every fork() through the C library (Python's os.fork and multiprocessing, forkpty, daemon),
// where the thread that forked is the only thread, so nothing races with it. The parent's pool is left as it is:
// its workers do not exist here, its mutexes may be held by threads that do not exist either, and a job may be
// half-published, so locking, joining, resetting or destroying it could hang or abort; it is leaked instead. The
// handler only stores null (no allocation, as a child handler should), and the child's first call installs a new
// pool through shared(). Its parent's pool stays reachable from abandoned_pools.
//
// No pid check besides: what skips atfork handlers is a fork by raw system call or _Fork(), whose child may call
// only async-signal-safe functions (the C library's own locks are not reset either), so it cannot run a model
// anyway; vfork and posix_spawn children exec at once. A pid check would add a getpid() system call to every call.
void ThreadPool::abandon_shared_after_fork() {
    ThreadPool* const parents = shared_pool.exchange(nullptr, std::memory_order_relaxed);
    if (parents == nullptr) return;
    parents->abandoned_before_ = abandoned_pools;
    abandoned_pools = parents;
}

// Registered while the library loads (at the latest, before the first use of this file), before any thread of ours
// exists, so that no fork can fall between a pool's creation and its handler's registration (as registering on first
// use would allow). pthread_atfork fails only for lack of memory; a process that cannot allocate a few bytes while
// loading a library cannot run a model either.
const bool ThreadPool::fork_handler_registered_ =
    pthread_atfork(nullptr, nullptr, &ThreadPool::abandon_shared_after_fork) == 0;
#endif

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

void ThreadPool::run(int threads, const std::function<void(int, int)>& task, bool members_optional) {
    // A caller that asked for it (a torch op, after which torch's OpenMP workers spin) runs on that runtime's threads.
    if (threads > 1 && openmp_teams_for_this_thread() && run_on_openmp(threads, task)) return;
    std::unique_lock<std::mutex> lock(run_mutex_, std::try_to_lock);
    if (threads <= 1 || !lock.owns_lock()) {
        task(0, 1);
        return;
    }
    start_workers(threads - 1);
    task_ = &task;
    const int tracked = std::min(threads, kTrackedMembers);
    for (int m = 1; m < tracked; ++m) member_cpus_[m].store(-1, std::memory_order_relaxed);
    member_cpus_[0].store(current_cpu(), std::memory_order_relaxed);  // published with the job
    const uint32_t job = job_.load(std::memory_order_relaxed) + 1;
    pending_.value.store(threads - 1, std::memory_order_relaxed);
    slots_.store(uint64_t{job} << kJobShift | uint64_t(threads) << kSizeShift, std::memory_order_release);
    job_.store(job, std::memory_order_release);
    { std::lock_guard<std::mutex> sleep_lock(sleep_mutex_); }
    wake_.notify_all();
    int team = threads;
    if (!members_optional) {
        // A fixed team: wait for the workers to start; when none has by kStartWait, run alone.
        const auto give_up = std::chrono::steady_clock::now() + kStartWait;
        for (int rounds = 1; (slots_.load(std::memory_order_acquire) & kTakenMask) < uint64_t(threads - 1); ++rounds) {
            cpu_relax();
            if ((rounds & 63) == 0 && std::chrono::steady_clock::now() > give_up) {
                uint64_t word = uint64_t{job} << kJobShift | uint64_t(threads) << kSizeShift;  // none taken
                if (slots_.compare_exchange_strong(word, word | kClosed, std::memory_order_acq_rel)) {
                    pending_.value.store(0, std::memory_order_relaxed);
                    team = 1;
                }
                break;  // closed, or some started: those need the others, so wait for them
            }
        }
    }
    task(0, team);
    // Members that have not started by now never run (a job whose slots are all taken has none left to close).
    if (members_optional && (slots_.load(std::memory_order_acquire) & kTakenMask) != uint64_t(threads - 1)) {
        const uint32_t started = close_slots();
        pending_.value.fetch_sub(threads - 1 - started, std::memory_order_acq_rel);
    }
    for (uint32_t pending; (pending = pending_.value.load(std::memory_order_acquire)) != 0;)
        pending_.wait_while_equal(pending);
}

uint32_t ThreadPool::close_slots() {
    uint64_t word = slots_.load(std::memory_order_acquire);
    while (!slots_.compare_exchange_weak(word, word | kClosed, std::memory_order_acq_rel)) {}
    return static_cast<uint32_t>(word & kTakenMask);
}

void ThreadPool::worker_loop(int index) {
#if defined(__linux__)
    // Named so that a profile, top -H or /proc/PID/task tells our workers from the threads of other libraries.
    char name[16];
    std::snprintf(name, sizeof(name), "fastlstm-%d", index);
    pthread_setname_np(pthread_self(), name);
#endif
    uint32_t seen = 0;
    for (;;) {
        // Wait for a new job: spin for a while, then sleep until run() or the destructor wakes us.
        const auto spin_until = std::chrono::steady_clock::now() + kIdleSpin;
        int rounds = 0;
        while (job_.load(std::memory_order_acquire) == seen && !stopping_.load(std::memory_order_relaxed)) {
            cpu_relax();
            if ((++rounds & 255) == 0 && std::chrono::steady_clock::now() > spin_until) {
                std::unique_lock<std::mutex> lock(sleep_mutex_);
                wake_.wait(lock, [&] {
                    return job_.load(std::memory_order_acquire) != seen || stopping_.load(std::memory_order_relaxed);
                });
            }
        }
        if (stopping_.load()) return;
        seen = job_.load(std::memory_order_acquire);
        // Take a slot of job `seen` while it has one left and is not closed.
        uint64_t word = slots_.load(std::memory_order_acquire);
        for (;;) {
            const uint64_t taken = word & kTakenMask;
            const int size = static_cast<int>((word >> kSizeShift) & 0xffff);
            if (static_cast<uint32_t>(word >> kJobShift) != seen || taken == kClosed || taken + 1 >= uint64_t(size))
                break;
            if (slots_.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel)) {
                const int index = static_cast<int>(taken) + 1;
                if (index < kTrackedMembers) {
                    const int tracked = std::min(size, kTrackedMembers);
                    leave_team_cpus(member_cpus_, tracked, index);
                    member_cpus_[index].store(current_cpu(), std::memory_order_release);
                }
                (*task_)(index, size);
                if (pending_.value.fetch_sub(1, std::memory_order_seq_cst) == 1) pending_.notify();
                break;
            }
        }
    }
}

}  // namespace fastlstm
