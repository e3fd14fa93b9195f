// StepQueue (fastlstm/step_queue.h): one thread that runs the queued session steps in order.
#include "fastlstm/step_queue.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>

#if defined(_WIN32)
#include <process.h>
#else
#include <unistd.h>
#endif

namespace fastlstm {

#if defined(_WIN32)
long current_process_id() { return static_cast<long>(_getpid()); }
#else
long current_process_id() { return static_cast<long>(getpid()); }
#endif

void adopt_after_fork(SessionRows& rows) {
    const long process = current_process_id();
    if (rows.owner_process == process) return;
    new (&rows.mutex) std::mutex();
    rows.owner_process = process;
}

StepQueue::~StepQueue() {
    // In a forked child the thread does not exist and the mutex may be held by a thread that does not either:
    // leave both alone (the object is abandoned, as the thread pool's is).
    if (!worker_.joinable() || owner_process_ != current_process_id()) {
        if (worker_.joinable()) worker_.detach();
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    job_ready_.notify_one();
    worker_.join();
}

int64_t StepQueue::push(const PackedLstm& lstm, SessionRows& rows, const int64_t* ids, int64_t n, const float* x,
                        float* y, int threads, ForwardCache* cache) {
    if (owner_process_ != 0 && owner_process_ != current_process_id())
        throw std::runtime_error("this batcher was started in another process (it does not survive fork)");
    adopt_after_fork(rows);
    Job job;
    job.lstm = &lstm;
    job.rows = &rows;
    job.ids.assign(ids, ids + n);
    job.x = x;
    job.y = y;
    job.threads = threads;
    job.cache = cache;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!worker_.joinable()) {
            owner_process_ = current_process_id();
            worker_ = std::thread([this] { run(); });
        }
        job.ticket = ++pushed_;
        jobs_.push_back(std::move(job));
        job_ready_.notify_one();
        return pushed_;
    }
}

void StepQueue::run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
        job_ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and every queued step has run
        Job& job = jobs_.front();
        Finished done;
        done.ticket = job.ticket;
        lock.unlock();
        const auto start = std::chrono::steady_clock::now();
        try {
            done.skipped = step(job);
        } catch (const std::exception& error) {
            done.error = error.what();
            if (done.error.empty()) done.error = "the step failed";
        } catch (...) {
            done.error = "the step failed";
        }
        const std::chrono::duration<double> busy = std::chrono::steady_clock::now() - start;
        lock.lock();
        busy_seconds_ += busy.count();
        jobs_.pop_front();
        done.at = std::chrono::steady_clock::now();
        finished_.push_back(std::move(done));
#if !defined(_WIN32)
        if (wakeup_fd_ >= 0) {
            const char byte = 1;
            [[maybe_unused]] const ssize_t written = ::write(wakeup_fd_, &byte, 1);  // full pipe: the loop is awake
        }
#endif
        finished_ready_.notify_all();
    }
}

std::vector<int64_t> StepQueue::step(const Job& job) {
    const LstmGeometry& g = job.lstm->geometry();
    SessionRows& rows = *job.rows;
    const int64_t n = static_cast<int64_t>(job.ids.size());
    const int64_t width = g.num_directions * g.output_size();
    std::lock_guard<std::mutex> lock(rows.mutex);
    std::vector<int64_t> slots(static_cast<std::size_t>(n));
    std::vector<int64_t> skipped = open_session_slots(rows.generations, rows.capacity, job.ids.data(), n, slots.data());
    RowStepArgs args;
    args.capacity = rows.capacity;
    args.h = rows.h;
    args.c = rows.c;
    if (skipped.empty()) {
        args.rows = n;
        args.x = job.x;
        args.y = job.y;
        args.slots = slots.data();
        job.lstm->step_rows(args, job.threads, job.cache);
        return skipped;
    }
    // Some sessions closed while their frames waited in the queue: the others step, their rows copied together.
    std::vector<int64_t> kept;
    for (int64_t i = 0; i < n; ++i)
        if (slots[i] >= 0) kept.push_back(i);
    const int64_t m = static_cast<int64_t>(kept.size());
    std::vector<float> x(static_cast<std::size_t>(m * g.input_size)), y(static_cast<std::size_t>(m * width));
    std::vector<int64_t> kept_slots(static_cast<std::size_t>(m));
    for (int64_t k = 0; k < m; ++k) {
        std::memcpy(x.data() + k * g.input_size, job.x + kept[k] * g.input_size, g.input_size * sizeof(float));
        kept_slots[k] = slots[kept[k]];
    }
    args.rows = m;
    args.x = x.data();
    args.y = y.data();
    args.slots = kept_slots.data();
    job.lstm->step_rows(args, job.threads, job.cache);
    for (int64_t k = 0; k < m; ++k) std::memcpy(job.y + kept[k] * width, y.data() + k * width, width * sizeof(float));
    return skipped;
}

namespace {

using Clock = std::chrono::steady_clock;

// Seconds as the clock's duration, within [0, a million seconds]: no overflow when added to now().
Clock::duration clock_duration(double seconds) {
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(std::max(0.0, std::min(seconds, 1e6))));
}

}  // namespace

std::vector<StepQueue::Finished> StepQueue::wait_finished(double timeout_seconds) {
    std::unique_lock<std::mutex> lock(mutex_);
    const Clock::time_point deadline =
        timeout_seconds < 0 ? Clock::time_point::max() : Clock::now() + clock_duration(timeout_seconds);
    while (!nudged_) {
        Clock::time_point wake = deadline;
        if (!finished_.empty()) {
            if (wakeup_fd_ < 0) break;
            const Clock::time_point left_to_the_loop_until = finished_.front().at + grace_;
            if (Clock::now() >= left_to_the_loop_until) break;
            wake = std::min(wake, left_to_the_loop_until);
        }
        if (wake == Clock::time_point::max()) {
            finished_ready_.wait(lock);
        } else {
            finished_ready_.wait_until(lock, wake);
            if (Clock::now() >= deadline) break;
        }
    }
    nudged_ = false;
    std::vector<Finished> finished;
    finished.swap(finished_);
    reported_ += static_cast<int64_t>(finished.size());
    return finished;
}

std::vector<StepQueue::Finished> StepQueue::take_finished() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Finished> finished;
    finished.swap(finished_);
    reported_ += static_cast<int64_t>(finished.size());
    return finished;
}

void StepQueue::set_wakeup_fd(int fd, double grace_seconds) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        wakeup_fd_ = fd;
        grace_ = clock_duration(grace_seconds);
    }
    finished_ready_.notify_all();  // a waiting wait_finished takes the new grace (or none) into account
}

void StepQueue::nudge() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        nudged_ = true;
    }
    finished_ready_.notify_all();
}

double StepQueue::busy_seconds() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return busy_seconds_;
}

int64_t StepQueue::outstanding() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return pushed_ - reported_;
}

}  // namespace fastlstm
