#include "openmp_team.h"

#include <atomic>
#include <cstdint>
#include <cstring>

#if defined(__linux__)
#include <dlfcn.h>
#include <link.h>
#endif

namespace fastlstm {
namespace {

thread_local bool openmp_teams = false;
std::atomic<int64_t> openmp_calls{0};  // tests: calls run on the OpenMP runtime, since the process started

// The GNU OpenMP entry points of a parallel region (libgomp's ABI since GCC 4.9; LLVM's libomp and Intel's libiomp
// export the same): GOMP_parallel runs fn(data) on a team of up to num_threads threads, the caller included, and
// returns when all have.
struct OpenMpRuntime {
    void (*parallel)(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags) = nullptr;
    int (*thread_num)() = nullptr;
    int (*num_threads)() = nullptr;
};

#if defined(__linux__)
// The first loaded object whose file name names an OpenMP runtime, opened again (RTLD_NOLOAD: never loads one) for
// its symbols. A runtime loaded privately by another library (torch's, under a hashed name) is not in the global
// symbol scope, so looking up the symbols by name alone would miss it.
int find_runtime(dl_phdr_info* info, size_t, void* found) {
    const char* name = info->dlpi_name;
    if (name == nullptr || (std::strstr(name, "libgomp") == nullptr && std::strstr(name, "libomp") == nullptr &&
                            std::strstr(name, "libiomp") == nullptr))
        return 0;
    void* handle = dlopen(name, RTLD_NOW | RTLD_NOLOAD);
    if (handle == nullptr) return 0;
    OpenMpRuntime runtime;
    runtime.parallel = reinterpret_cast<decltype(runtime.parallel)>(dlsym(handle, "GOMP_parallel"));
    runtime.thread_num = reinterpret_cast<decltype(runtime.thread_num)>(dlsym(handle, "omp_get_thread_num"));
    runtime.num_threads = reinterpret_cast<decltype(runtime.num_threads)>(dlsym(handle, "omp_get_num_threads"));
    if (runtime.parallel == nullptr || runtime.thread_num == nullptr || runtime.num_threads == nullptr) return 0;
    *static_cast<OpenMpRuntime*>(found) = runtime;  // the handle stays open: the runtime stays loaded
    return 1;
}
#endif

// The runtime as it was at the first call that asked (looked for once per process; null entries: none loaded).
const OpenMpRuntime& loaded_runtime() {
    static const OpenMpRuntime runtime = [] {
        OpenMpRuntime found;
#if defined(__linux__)
        dl_iterate_phdr(&find_runtime, &found);
#endif
        return found;
    }();
    return runtime;
}

struct Region {
    const OpenMpRuntime* runtime;
    const std::function<void(int, int)>* task;
};

void run_member(void* data) {
    const Region& region = *static_cast<const Region*>(data);
    (*region.task)(region.runtime->thread_num(), region.runtime->num_threads());
}

}  // namespace

bool set_openmp_teams_for_this_thread(bool on) {
    const bool previous = openmp_teams;
    openmp_teams = on;
    return previous;
}

bool openmp_teams_for_this_thread() { return openmp_teams; }

bool run_on_openmp(int threads, const std::function<void(int, int)>& task) {
    const OpenMpRuntime& runtime = loaded_runtime();
    if (runtime.parallel == nullptr) return false;
    Region region{&runtime, &task};
    runtime.parallel(&run_member, &region, static_cast<unsigned>(threads), 0);
    openmp_calls.fetch_add(1, std::memory_order_relaxed);
    return true;
}

int64_t openmp_team_calls_so_far() { return openmp_calls.load(std::memory_order_relaxed); }

}  // namespace fastlstm
