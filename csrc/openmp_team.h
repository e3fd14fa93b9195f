// A call's team on the threads of the OpenMP runtime already loaded in the process (PyTorch's), instead of the
// pool's own. Private to the core's sources.
//
// Why: a caller that has just run an OpenMP parallel region (a torch op) leaves that runtime's workers spinning on
// the cores for a while; a team of our own threads then shares a core with one of them at every step. Run on those
// very workers, the team finds them awake and each on a core of its own, as torch's own LSTM does.
#pragma once

#include <cstdint>
#include <functional>

namespace fastlstm {

// Whether this thread's calls run their teams on the process's OpenMP runtime (thread_pool.cc honours it); returns
// the previous setting. Off by default.
bool set_openmp_teams_for_this_thread(bool on);
bool openmp_teams_for_this_thread();

// Runs task(index, size) for index in [0, size) on the OpenMP runtime loaded in the process, the caller being index
// 0, with size at most `threads` (less when the runtime gives fewer, for example inside a parallel region); false
// without running it when no runtime with the GNU entry points (libgomp, or LLVM's and Intel's, which export them)
// is loaded.
bool run_on_openmp(int threads, const std::function<void(int, int)>& task);
// Tests: how many calls ran on the OpenMP runtime in this process.
int64_t openmp_team_calls_so_far();

}  // namespace fastlstm
