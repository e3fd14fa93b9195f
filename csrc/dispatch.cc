#include "fastlstm/dispatch.h"

#include <cstddef>
#include <cstring>
#include <type_traits>

#include "kernels/variants.h"

#if FASTLSTM_X86_KERNELS
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif
#endif

#if FASTLSTM_ARM_KERNELS
#if defined(__linux__)
#include <sys/auxv.h>
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#elif defined(_WIN32)
#include <windows.h>
#endif
#endif

namespace fastlstm {
namespace {

bool cpu_runs_portable() { return true; }

#if FASTLSTM_X86_KERNELS
struct CpuidRegisters {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegisters cpuid(unsigned leaf, unsigned subleaf) {
    CpuidRegisters r;
#if defined(_MSC_VER)
    int regs[4];
    __cpuidex(regs, static_cast<int>(leaf), static_cast<int>(subleaf));
    r.eax = regs[0], r.ebx = regs[1], r.ecx = regs[2], r.edx = regs[3];
#else
    if (!__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx)) return CpuidRegisters{};
#endif
    return r;
}

// Which register states the operating system saves on context switches (XCR0). Without OS support the
// instructions fault even when CPUID lists them.
unsigned long long os_saved_states() {
    if (!(cpuid(1, 0).ecx & (1u << 27))) return 0;  // no OSXSAVE: XGETBV is unavailable
#if defined(_MSC_VER)
    return _xgetbv(0);
#else
    unsigned eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<unsigned long long>(edx) << 32) | eax;
#endif
}

constexpr unsigned long long kXmmYmmState = 0x6;  // SSE and AVX registers
constexpr unsigned long long kZmmState = 0xE0;    // opmask registers and the upper halves of zmm0-31

bool cpu_runs_avx2() {
    const CpuidRegisters leaf1 = cpuid(1, 0), leaf7 = cpuid(7, 0);
    const bool fma = leaf1.ecx & (1u << 12), avx = leaf1.ecx & (1u << 28), avx2 = leaf7.ebx & (1u << 5);
    return fma && avx && avx2 && (os_saved_states() & kXmmYmmState) == kXmmYmmState;
}

// macOS turns the AVX-512 state on for a thread at its first AVX-512 instruction, so XCR0 does not show it
// beforehand; the kernel says whether it will, through sysctl.
bool os_enables_avx512_on_first_use() {
#if defined(__APPLE__)
    int enabled = 0;
    size_t size = sizeof enabled;
    return sysctlbyname("hw.optional.avx512f", &enabled, &size, nullptr, 0) == 0 && enabled != 0;
#else
    return false;
#endif
}

bool cpu_runs_avx512() {
    const bool avx512f = cpuid(7, 0).ebx & (1u << 16);
    const unsigned long long needed = kXmmYmmState | kZmmState;
    return cpu_runs_avx2() && avx512f && ((os_saved_states() & needed) == needed || os_enables_avx512_on_first_use());
}

// AVX512-BF16 (CPUID leaf 7 subleaf 1, EAX bit 5) and AVX512-VNNI (leaf 7, ECX bit 11), with the BW and VL subsets
// their kernels also use.
#if FASTLSTM_AVX512BF16_KERNELS
bool cpu_runs_avx512bf16() {
    const CpuidRegisters leaf7 = cpuid(7, 0);
    const bool bw = leaf7.ebx & (1u << 30), vl = leaf7.ebx & (1u << 31), vnni = leaf7.ecx & (1u << 11);
    const bool bf16 = leaf7.eax >= 1 && (cpuid(7, 1).eax & (1u << 5));
    return cpu_runs_avx512() && bw && vl && vnni && bf16;
}
#endif
#endif

#if FASTLSTM_ARM_KERNELS
// ASIMD with fused multiply-add is part of every aarch64 CPU (the baseline the whole library is compiled for).
bool cpu_runs_neon() { return true; }

#if FASTLSTM_ARM_EXTENSION_KERNELS
// The CPU's optional features, as the operating system reports them (reading the ID registers directly faults on
// some systems): Linux's auxiliary vector, macOS's sysctl, Windows' processor-feature query.
struct ArmFeatures {
    bool dotprod = false, bf16 = false, i8mm = false;
};

#if defined(__linux__)
// Bits of <asm/hwcap.h> (Linux arch/arm64/include/uapi/asm/hwcap.h), for headers older than the features.
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1UL << 14)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1UL << 13)
#endif
ArmFeatures arm_features() {
    const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
    return {(hwcap & HWCAP_ASIMDDP) != 0, (hwcap2 & HWCAP2_BF16) != 0, (hwcap2 & HWCAP2_I8MM) != 0};
}
#elif defined(__APPLE__)
bool sysctl_flag(const char* name) {  // 0 where the name is unknown (macOS before 12)
    int value = 0;
    size_t size = sizeof value;
    return sysctlbyname(name, &value, &size, nullptr, 0) == 0 && value != 0;
}
ArmFeatures arm_features() {
    return {sysctl_flag("hw.optional.arm.FEAT_DotProd"), sysctl_flag("hw.optional.arm.FEAT_BF16"),
            sysctl_flag("hw.optional.arm.FEAT_I8MM")};
}
#elif defined(_WIN32)
// Feature numbers of winnt.h, for SDKs older than them.
#ifndef PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE
#define PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE 43
#endif
#ifndef PF_ARM_V86_BF16_INSTRUCTIONS_AVAILABLE
#define PF_ARM_V86_BF16_INSTRUCTIONS_AVAILABLE 68
#endif
#ifndef PF_ARM_V82_I8MM_INSTRUCTIONS_AVAILABLE
#define PF_ARM_V82_I8MM_INSTRUCTIONS_AVAILABLE 66
#endif
ArmFeatures arm_features() {
    return {IsProcessorFeaturePresent(PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE) != 0,
            IsProcessorFeaturePresent(PF_ARM_V86_BF16_INSTRUCTIONS_AVAILABLE) != 0,
            IsProcessorFeaturePresent(PF_ARM_V82_I8MM_INSTRUCTIONS_AVAILABLE) != 0};
}
#else
ArmFeatures arm_features() { return {}; }  // no known way to ask: the baseline only
#endif

bool cpu_runs_neon_dotprod() { return arm_features().dotprod; }

// neon_bf16's int8 kernels are neon_dotprod's.
bool cpu_runs_neon_bf16() {
    const ArmFeatures features = arm_features();
    return features.dotprod && features.bf16;
}

// neon_i8mm's bf16 kernels are neon_bf16's, and its batch-1 int8 step neon_dotprod's SDOT tiles.
bool cpu_runs_neon_i8mm() {
    const ArmFeatures features = arm_features();
    return features.dotprod && features.bf16 && features.i8mm;
}
#endif
#endif

// One row per variant, the KernelSet members in declaration order (kernels.h); laid out by hand as a table.
// clang-format off
const KernelSet kKernelSets[] = {
#define FASTLSTM_KERNEL_VARIANT(isa, hidden_block, gate_halves, look_ahead_batches, suffix, bf16_suffix,  \
                                f32_look_ahead, f32_look_ahead_loop, bf16_look_ahead, cpu_check)          \
    {#isa,                    hidden_block,         gate_halves,                                            \
     f32_gemm_panels__##suffix,                     f32_lstm_step__##suffix,                                \
     bf16_gemm_panels__##bf16_suffix,               bf16_lstm_step__##bf16_suffix,                          \
     int8_gemm_panels__##bf16_suffix,               int8_lstm_step__##bf16_suffix,                          \
     f32_look_ahead,                                look_ahead_batches,                                     \
     bf16_look_ahead,                                                                                       \
     f32_sigmoid__##suffix,   f32_tanh__##suffix,   f32_softmax_rows__##suffix,                             \
     f32_fma_peak__##suffix,  f32_read_sum__##suffix, f32_look_ahead_loop},
#include "kernels/variants.inc"
#undef FASTLSTM_KERNEL_VARIANT
};
// clang-format on

// A variant with look-ahead batches names its f32 look-ahead kernel; one without names none (variants.inc). By type:
// a function's address is no constant expression in a sanitized build. Checked here, where the table is built, not in
// variants.h, which the kernels' files include (an assertion there changed GCC's register choices in an avx512 tile).
#define FASTLSTM_KERNEL_VARIANT(isa, hidden_block, gate_halves, look_ahead_batches, suffix, bf16_suffix,       \
                                f32_look_ahead, f32_look_ahead_loop, bf16_look_ahead, cpu_check)               \
    static_assert((look_ahead_batches == 0) == std::is_same_v<decltype(f32_look_ahead), std::nullptr_t>,       \
                  "variants.inc: the " #isa " row's look-ahead batches and f32 look-ahead kernel disagree");   \
    static_assert(std::is_same_v<decltype(f32_look_ahead), std::nullptr_t> ==                                  \
                      std::is_same_v<decltype(f32_look_ahead_loop), std::nullptr_t>,                           \
                  "variants.inc: the " #isa " row names one of a look-ahead kernel and its calibration loop"); \
    static_assert(!(gate_halves) || (look_ahead_batches) == 0,                                                 \
                  "variants.inc: the " #isa " row has gate halves, which the look-ahead kernels do not read");
#include "kernels/variants.inc"
#undef FASTLSTM_KERNEL_VARIANT

using CpuCheck = bool (*)();
const CpuCheck kCpuChecks[] = {
#define FASTLSTM_KERNEL_VARIANT(isa, hidden_block, gate_halves, look_ahead_batches, suffix, bf16_suffix, \
                                f32_look_ahead, f32_look_ahead_loop, bf16_look_ahead, cpu_check)         \
    cpu_check,
#include "kernels/variants.inc"
#undef FASTLSTM_KERNEL_VARIANT
};

constexpr int64_t kNumKernelSets = sizeof(kKernelSets) / sizeof(kKernelSets[0]);

// The CPU checks, run once: CPUID traps to the hypervisor on virtual machines and can cost tens of microseconds.
bool variant_supported(int64_t index) {
    struct Support {
        bool flags[kNumKernelSets];
        Support() {
            for (int64_t i = 0; i < kNumKernelSets; ++i) flags[i] = kCpuChecks[i]();
        }
    };
    static const Support support;
    return support.flags[index];
}

}  // namespace

const KernelSet* compiled_kernel_sets(int64_t* count) {
    *count = kNumKernelSets;
    return kKernelSets;
}

bool cpu_supports(const KernelSet& kernels) {
    const int64_t index = &kernels - kKernelSets;
    return index >= 0 && index < kNumKernelSets && variant_supported(index);
}

const KernelSet* find_kernel_set(const char* isa) {
    for (const KernelSet& kernels : kKernelSets)
        if (std::strcmp(kernels.isa, isa) == 0) return &kernels;
    return nullptr;
}

const KernelSet& best_kernel_set() {
    for (int64_t i = kNumKernelSets - 1; i > 0; --i)
        if (variant_supported(i)) return kKernelSets[i];
    return kKernelSets[0];
}

}  // namespace fastlstm
