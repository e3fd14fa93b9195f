// Which kernel variants this build has, which of them this CPU can run, and which one is in use.
#pragma once

#include <cstdint>

#include "fastlstm/kernels.h"

namespace fastlstm {

// Every variant compiled into this build, in table order (portable first).
const KernelSet* compiled_kernel_sets(int64_t* count);

// True when this CPU and operating system can run the variant.
bool cpu_supports(const KernelSet& kernels);

// The variant by ISA name, or null when the name is not in the table.
const KernelSet* find_kernel_set(const char* isa);

// The last variant of the table that the CPU supports.
const KernelSet& best_kernel_set();

}  // namespace fastlstm
