// The NEON interface with dot products (simd__neon_dotprod.h) and bf16 pairs multiplied without widening
// (FEAT_BF16): BFMLALB adds the products of the even (bottom) bf16 elements of each 32-bit lane into float32, BFMLALT
// those of the odd (top) ones. Compile with -march=armv8.2-a+dotprod+bf16.
// Why BFMLALB/T and not BFDOT: each does one fused multiply-add per lane that follows FPCR (round to nearest,
// denormals kept), so acc + w[2j] h[2j] then + w[2j+1] h[2j+1] rounds exactly as the two FMLA of the widening
// (simd__neon.h: dot_pairs), and the results are bitwise those of the neon variant. BFDOT adds both products with
// round-to-odd intermediates and flushes denormals: a different sum, which would need its own derived bound.
// The pair takes two instructions (as the widening's two FMLA) but no shift or mask, and a weight vector and an
// operand take one register each instead of two, so tiles are as tall as in f32.
#pragma once

#include "simd__neon_dotprod.h"

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

struct NeonBf16 : NeonDotprod {
    using WeightPairs = bfloat16x8_t;
    using OperandPair = bfloat16x8_t;
    using NeonDotprod::pinned;
    static WeightPairs load_pairs(const uint32_t* p) { return vreinterpretq_bf16_u32(vld1q_u32(p)); }
    static OperandPair broadcast_pair(const uint16_t* p) {
        uint32_t word;
        std::memcpy(&word, p, sizeof word);
        return vreinterpretq_bf16_u32(vdupq_n_u32(word));
    }
    static WeightPairs pinned(WeightPairs w) {
        FASTLSTM_PIN_REGISTER(w, "w");
        return w;
    }
    // acc + w[2j] h[2j] + w[2j+1] h[2j+1], the even product added first, each with one rounding.
    static V dot_pairs(V acc, WeightPairs w, OperandPair h) { return vbfmlaltq_f32(vbfmlalbq_f32(acc, w, h), w, h); }
};

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
