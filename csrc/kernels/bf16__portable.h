// bf16 for the portable kernels (compiled with the baseline flags only, so an inline function is safe to share).
#pragma once

#include <cstdint>
#include <cstring>

namespace fastlstm {
namespace portable {

// float32 of a bf16 value held in the low 16 bits of `half` (exact); inline, unlike fastlstm/bf16.h's
// bf16_to_float, for the inner loops.
inline float widen_bf16(uint32_t half) {
    const uint32_t bits = half << 16;
    float x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}

}  // namespace portable
}  // namespace fastlstm
