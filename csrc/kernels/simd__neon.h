// The vector operations the kernels use, for aarch64 ASIMD (NEON, 4 float lanes with fused multiply-add): the
// aarch64 baseline, so no flag is needed; see simd__avx512.h for the interface.
// Every operation rounds as its AVX2 counterpart does (one rounding per fused multiply-add, a correctly rounded
// division for 1/b, the same exponent-field scaling, compare-and-select for max and min), so the activations of
// f32_activations-inl.h give bitwise the results of the avx2 variant, and the same summation order gives bitwise its
// step (tools/check_arm.sh compares them).
// The struct lands in the namespace of the entry file that includes it (FASTLSTM_ISA_NAMESPACE, defined first), so
// that each variant compiled with its own flags has its own copy (the ODR trap of CONTRIBUTING.md); the entry file
// names its Simd (variant__neon.cc: `using Simd = Neon`), and simd__neon_dotprod.h and simd__neon_bf16.h extend it.
#pragma once

#ifndef FASTLSTM_ISA_NAMESPACE
#error "include this header from a variant's entry file (variant__<isa>.cc), which defines FASTLSTM_ISA_NAMESPACE"
#endif

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "pin_register.h"

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

struct Neon {
    using V = float32x4_t;
    using Mask = uint32x4_t;
    static constexpr int64_t kLanes = 4;

    // The cell update of a step tile takes copies of its sums, in fully unrolled loops (lstm_step-inl.h). GCC 12 for
    // aarch64 otherwise rolls the tile's calls of finish_cells back into a loop that reads the accumulators through a
    // pointer, keeps them in memory, and stores all of them in every depth step (20 q stores per 20 FMLA in the 5-row
    // tile); with the copies unrolled the loop stores none (tools/loop_mix.py, docs/ARM.md).
    static constexpr bool kFinishFromUnrolledCopies = true;
    static constexpr int kCompactTailVectors = 0;        // lstm_step-inl.h: lstm_step_compact_tail (simd__avx512.h)
    static constexpr bool kFinishCellsTogether = false;  // lstm_step-inl.h: finish_cells_together, not measured here
    static constexpr int kHalfTileMaxRows = 0;  // lstm_step_half_tiles-inl.h: none (32 registers hold full tiles)
    static constexpr int kOneRowPanels = 2;  // lstm_step-inl.h: panels_per_tile; 4 (simd__avx512.h) not measured here
    static V zero() { return vdupq_n_f32(0.0f); }
    static V set1(float x) { return vdupq_n_f32(x); }
    static V load(const float* p) { return vld1q_f32(p); }
    // v, pinned to a register (constraint "w": a SIMD register), as in simd__avx2.h: a weight vector shared by the
    // rows of a tile is loaded once, not once per row.
    static V pinned(V v) {
        FASTLSTM_PIN_REGISTER(v, "w");
        return v;
    }
    // A hint to bring the cache line holding p into L1 (PRFM PLDL1KEEP); never faults.
    static void prefetch(const float* p) {
#if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(p, 0, 3);
#else
        (void)p;
#endif
    }
    // The same for a line read once (PRFM PLDL1STRM, streaming); never faults.
    static void prefetch_once(const float* p) {
#if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(p, 0, 0);
#else
        (void)p;
#endif
    }
    static void store(float* p, V v) { vst1q_f32(p, v); }
    // The first n lanes (0 <= n <= kLanes); the others read as 0 and are not written. NEON has no masked loads and
    // stores: the n floats go through a small buffer, so nothing past p + n is touched.
    static V load_first(const float* p, int64_t n) {
        float lanes[kLanes] = {0.0f, 0.0f, 0.0f, 0.0f};
        std::memcpy(lanes, p, static_cast<size_t>(n) * sizeof(float));
        return vld1q_f32(lanes);
    }
    static void store_first(float* p, V v, int64_t n) {
        float lanes[kLanes];
        vst1q_f32(lanes, v);
        std::memcpy(p, lanes, static_cast<size_t>(n) * sizeof(float));
    }
    // The first n lanes of p, the others `fill`.
    static V load_first_or(const float* p, int64_t n, float fill) {
        float lanes[kLanes] = {fill, fill, fill, fill};
        std::memcpy(lanes, p, static_cast<size_t>(n) * sizeof(float));
        return vld1q_f32(lanes);
    }
    static float reduce_add(V v) { return vaddvq_f32(v); }
    static float reduce_max(V v) { return vmaxvq_f32(v); }

    static V add(V a, V b) { return vaddq_f32(a, b); }
    static V sub(V a, V b) { return vsubq_f32(a, b); }
    static V mul(V a, V b) { return vmulq_f32(a, b); }
    static V div(V a, V b) { return vdivq_f32(a, b); }
    // 1/b by a correctly rounded division: vrecpeq_f32's estimate is an Arm-defined table (8 bits), which would take
    // two Newton steps and still not round as the other variants do.
    static V reciprocal(V b) { return vdivq_f32(vdupq_n_f32(1.0f), b); }
    static V fmadd(V a, V b, V c) { return vfmaq_f32(c, a, b); }   // a*b + c, one rounding (FMLA)
    static V fnmadd(V a, V b, V c) { return vfmsq_f32(c, a, b); }  // c - a*b, one rounding (FMLS)
    // max/min as x86's maxps/minps: a if a > b (a < b), else b, so b whenever either operand is NaN. NEON's FMAX
    // would return NaN for a NaN in either operand; the kernels call max(bound, x) so that NaN in x survives, and
    // softmax's running maximum relies on b being kept.
    static V max(V a, V b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
    static V min(V a, V b) { return vbslq_f32(vcltq_f32(a, b), a, b); }
    static V abs(V a) { return vabsq_f32(a); }
    static V copysign(V magnitude, V sign) {
        return vbslq_f32(vdupq_n_u32(0x80000000u), sign, magnitude);  // the sign bit from `sign`, the rest not
    }
    static V round_nearest(V a) { return vrndnq_f32(a); }  // to nearest, ties to even (FRINTN)
    // a * 2^n for integral n in [-126, 127]: n goes straight into the exponent field, as in simd__avx2.h.
    static V scale_by_pow2(V a, V n) {
        const int32x4_t exponent = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
        return vmulq_f32(a, vreinterpretq_f32_s32(exponent));
    }
    static Mask less(V a, V b) { return vcltq_f32(a, b); }  // false when either is NaN, as _CMP_LT_OQ
    static V select(Mask m, V if_true, V if_false) { return vbslq_f32(m, if_true, if_false); }

    // bf16 pairs widened to float32 exactly, as in simd__avx512.h: the low halves of the words shifted up are the
    // weights of k = 2j, the high halves with the low ones cleared those of k = 2j + 1.
    struct WeightPairs {
        V even, odd;
    };
    struct OperandPair {
        V even, odd;
    };
    static WeightPairs load_pairs(const uint32_t* p) {
        const uint32x4_t words = vld1q_u32(p);
        return {vreinterpretq_f32_u32(vshlq_n_u32(words, 16)),
                vreinterpretq_f32_u32(vandq_u32(words, vdupq_n_u32(0xFFFF0000u)))};
    }
    static OperandPair broadcast_pair(const uint16_t* p) {
        uint32_t word;
        std::memcpy(&word, p, sizeof word);
        const uint32_t even = word << 16, odd = word & 0xFFFF0000u;
        float even_value, odd_value;
        std::memcpy(&even_value, &even, sizeof even_value);
        std::memcpy(&odd_value, &odd, sizeof odd_value);
        return {vdupq_n_f32(even_value), vdupq_n_f32(odd_value)};
    }
    static WeightPairs pinned(WeightPairs w) { return {pinned(w.even), pinned(w.odd)}; }
    // acc + w[2j] h[2j] + w[2j+1] h[2j+1], the even product added first: two fused multiply-adds.
    static V dot_pairs(V acc, const WeightPairs& w, const OperandPair& h) {
        return vfmaq_f32(vfmaq_f32(acc, h.even, w.even), h.odd, w.odd);
    }

    // int8 quads (kernels.h: quad panels), exact in 32-bit lanes: each signed byte of a word sign-extended by two
    // shifts and multiplied with its unsigned operand byte (MLA, exact: |w h| <= 127 * 255), as in simd__avx512.h.
    // The operand bytes are q + 128; finish() removes the offsets.
    static constexpr bool kCentredQuads = false;
    using VI = int32x4_t;
    using WeightQuads = int32x4_t;
    struct OperandQuad {
        int32x4_t byte[4];
    };
    static VI zero_int() { return vdupq_n_s32(0); }
    static VI load_int(const int32_t* p) { return vld1q_s32(p); }
    static V int_to_float(VI a) { return vcvtq_f32_s32(a); }  // to nearest even, as cvtdq2ps
    static VI sub_int(VI a, VI b) { return vsubq_s32(a, b); }
    static WeightQuads load_quads(const uint32_t* p) { return vreinterpretq_s32_u32(vld1q_u32(p)); }
    static OperandQuad broadcast_quad(const uint8_t* p) {
        return {{vdupq_n_s32(p[0]), vdupq_n_s32(p[1]), vdupq_n_s32(p[2]), vdupq_n_s32(p[3])}};
    }
    static VI pinned(VI v) {
        FASTLSTM_PIN_REGISTER(v, "w");
        return v;
    }
    static VI dot_quads(VI acc, WeightQuads w, const OperandQuad& h) {
        acc = vmlaq_s32(acc, vshrq_n_s32(vshlq_n_s32(w, 24), 24), h.byte[0]);
        acc = vmlaq_s32(acc, vshrq_n_s32(vshlq_n_s32(w, 16), 24), h.byte[1]);
        acc = vmlaq_s32(acc, vshrq_n_s32(vshlq_n_s32(w, 8), 24), h.byte[2]);
        return vmlaq_s32(acc, vshrq_n_s32(w, 24), h.byte[3]);
    }
};

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
