// The NEON interface (simd__neon.h) with the int8 quads summed by the dot-product instruction (FEAT_DotProd, SDOT:
// four byte products added into each 32-bit lane): one instruction per weight vector and operand, in place of four
// shifts pairs and four multiply-adds. Compile with -march=armv8.2-a+dotprod.
// SDOT multiplies signed by signed bytes; the operand bytes are q + 128 (unsigned). Flipping their top bit gives q
// itself, so SDOT sums w q, which is exactly the widened sum of w (q + 128) less the column offsets (128 times the
// column's weight sum) that finish() would subtract: the same integers, so the same floats as every other variant
// (kCentredQuads tells finish() to leave the offsets out). |w q| <= 127 * 128 per product, and the sums are those
// of the other variants less the offsets: no overflow where they have none (kInt8MaxDepth).
#pragma once

#include "simd__neon.h"

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

struct NeonDotprod : Neon {
    static constexpr bool kCentredQuads = true;
    using WeightQuads = int8x16_t;
    using OperandQuad = int8x16_t;
    using Neon::pinned;
    static WeightQuads load_quads(const uint32_t* p) { return vreinterpretq_s8_u32(vld1q_u32(p)); }
    // The 4 operand bytes q + 128 of one quad, as q, in every lane.
    static OperandQuad broadcast_quad(const uint8_t* p) {
        uint32_t word;
        std::memcpy(&word, p, sizeof word);
        return vreinterpretq_s8_u32(vdupq_n_u32(word ^ 0x80808080u));
    }
    static WeightQuads pinned(WeightQuads w) {
        FASTLSTM_PIN_REGISTER(w, "w");
        return w;
    }
    static VI dot_quads(VI acc, WeightQuads w, OperandQuad h) { return vdotq_s32(acc, w, h); }
};

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
