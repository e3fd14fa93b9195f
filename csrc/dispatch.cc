#include "fastlstm/dispatch.h"

#include <cstring>

namespace fastlstm {
namespace {

bool cpu_runs_portable() { return true; }

const KernelSet kKernelSets[] = {
#define FASTLSTM_KERNEL_VARIANT(isa, hidden_block, gemm, step, cpu_check) {#isa, hidden_block, gemm, step},
#include "kernels/variants.inc"
#undef FASTLSTM_KERNEL_VARIANT
};

using CpuCheck = bool (*)();
const CpuCheck kCpuChecks[] = {
#define FASTLSTM_KERNEL_VARIANT(isa, hidden_block, gemm, step, cpu_check) cpu_check,
#include "kernels/variants.inc"
#undef FASTLSTM_KERNEL_VARIANT
};

constexpr int64_t kNumKernelSets = sizeof(kKernelSets) / sizeof(kKernelSets[0]);

}  // namespace

const KernelSet* compiled_kernel_sets(int64_t* count) {
    *count = kNumKernelSets;
    return kKernelSets;
}

bool cpu_supports(const KernelSet& kernels) {
    const int64_t index = &kernels - kKernelSets;
    return index >= 0 && index < kNumKernelSets && kCpuChecks[index]();
}

const KernelSet* find_kernel_set(const char* isa) {
    for (const KernelSet& kernels : kKernelSets)
        if (std::strcmp(kernels.isa, isa) == 0) return &kernels;
    return nullptr;
}

const KernelSet& best_kernel_set() {
    for (int64_t i = kNumKernelSets - 1; i > 0; --i)
        if (kCpuChecks[i]()) return kKernelSets[i];
    return kKernelSets[0];
}

}  // namespace fastlstm
