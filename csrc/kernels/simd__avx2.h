// The vector operations the kernels use, for AVX2 with FMA (8 float lanes); see simd__avx512.h.
// Compile with -mavx2 -mfma.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "pin_register.h"

namespace fastlstm {
namespace avx2 {

struct Simd {
    using V = __m256;
    using Mask = __m256;
    static constexpr int64_t kLanes = 8;

    static constexpr bool kFinishFromUnrolledCopies = false;  // lstm_step-inl.h: not needed here
    // lstm_step-inl.h: lstm_step_compact_tail, with quarter_to_front and upper_half_to_front, for last panels
    // compacted into up to 2 vectors a k. Not 3 (simd__avx512.h: lanes_from), whose tile of 6 rows needs 18
    // accumulators, more than the 16 registers: it ran slower than the half tiles over the whole panel (on the Zen 4,
    // B/A 1.03 at B=13 I=77 H=333, 1.10 at B=6 I=40 H=125: 11 paired rounds of tools/ab_compare.py, FASTLSTM_ISA=avx2).
    static constexpr int kCompactTailVectors = 2;
    // lstm_step_half_tiles-inl.h: batches of 4 or more rows in tiles of half a panel, up to 6 rows (12 accumulators),
    // over gate panels in halves (variants.inc: this row's gate halves).
    static constexpr bool kFinishCellsTogether = true;  // lstm_step-inl.h: finish_cells_together (measured there)
    static constexpr int kHalfTileMaxRows = 6;
    // lstm_step-inl.h: panels_per_tile. One row walks panels in pairs, each in a tile of its own (gate halves).
    static constexpr int kOneRowPanels = 2;
    // Lanes [2q, 2q + 2) of v in lanes [0, 2); the other lanes are some of v's.
    template <int kQuarter>
    static V quarter_to_front(V v) {
        constexpr int kFirst = 2 * kQuarter;
        return _mm256_permutevar8x32_ps(
            v, _mm256_setr_epi32(kFirst, kFirst + 1, kFirst, kFirst + 1, kFirst, kFirst + 1, kFirst, kFirst + 1));
    }
    // Lanes [4, 8) of v in lanes [0, 4); the other lanes are some of v's.
    static V upper_half_to_front(V v) { return _mm256_permute2f128_ps(v, v, 0x01); }
    static V zero() { return _mm256_setzero_ps(); }
    static V set1(float x) { return _mm256_set1_ps(x); }
    static V load(const float* p) { return _mm256_loadu_ps(p); }
    // v, pinned to a register: the compiler may no longer fold its load into each multiply-add that uses it.
    // A weight vector shared by several rows of a tile is then read once, not once per row (as in simd__avx512.h).
    static V pinned(V v) {
        FASTLSTM_PIN_REGISTER(v, "x");
        return v;
    }
    // A hint to bring the cache line holding p into L1; never faults.
    static void prefetch(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }
    // The same for a line read once: kept out of the outer caches where the CPU allows; never faults.
    static void prefetch_once(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_NTA); }
    static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
    // The first n lanes (0 <= n <= kLanes); the others read as 0 and are not written.
    static __m256i first(int64_t n) {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static V load_first(const float* p, int64_t n) { return _mm256_maskload_ps(p, first(n)); }
    static void store_first(float* p, V v, int64_t n) { _mm256_maskstore_ps(p, first(n), v); }
    // The first n lanes of p, the others `fill`.
    static V load_first_or(const float* p, int64_t n, float fill) {
        return _mm256_blendv_ps(_mm256_set1_ps(fill), load_first(p, n), _mm256_castsi256_ps(first(n)));
    }
    static float reduce_add(V v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
    }
    static float reduce_max(V v) {
        __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
    }

    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static V div(V a, V b) { return _mm256_div_ps(a, b); }
    // 1/b by a division: the 12-bit estimate of AVX would need two Newton steps to stay within our ulp bounds.
    static V reciprocal(V b) { return _mm256_div_ps(_mm256_set1_ps(1.0f), b); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
    // max/min return b when either operand is NaN: call them as max(bound, x) so that NaN in x survives.
    static V max(V a, V b) { return _mm256_max_ps(a, b); }
    static V min(V a, V b) { return _mm256_min_ps(a, b); }
    static V abs(V a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
    static V copysign(V magnitude, V sign) {
        const V sign_bit = _mm256_set1_ps(-0.0f);
        return _mm256_or_ps(_mm256_andnot_ps(sign_bit, magnitude), _mm256_and_ps(sign_bit, sign));
    }
    static V round_nearest(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    // a * 2^n for integral n in [-126, 127]: n goes straight into the exponent field. A NaN n gives a garbage
    // scale, but then a is NaN too (it came from the same input) and the product stays NaN.
    static V scale_by_pow2(V a, V n) {
        const __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
        return _mm256_mul_ps(a, _mm256_castsi256_ps(exponent));
    }
    static Mask less(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
    static V select(Mask m, V if_true, V if_false) { return _mm256_blendv_ps(if_false, if_true, m); }

    // bf16 pairs widened to float32, as in simd__avx512.h.
    struct WeightPairs {
        V even, odd;
    };
    struct OperandPair {
        V even, odd;
    };
    static WeightPairs load_pairs(const uint32_t* p) {
        const __m256i words = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        return {_mm256_castsi256_ps(_mm256_slli_epi32(words, 16)),
                _mm256_castsi256_ps(_mm256_and_si256(words, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))))};
    }
    static OperandPair broadcast_pair(const uint16_t* p) {
        uint32_t word;
        std::memcpy(&word, p, sizeof word);
        const uint32_t even = word << 16, odd = word & 0xFFFF0000u;
        float even_value, odd_value;
        std::memcpy(&even_value, &even, sizeof even_value);
        std::memcpy(&odd_value, &odd, sizeof odd_value);
        return {_mm256_set1_ps(even_value), _mm256_set1_ps(odd_value)};
    }
    static WeightPairs pinned(WeightPairs w) { return {pinned(w.even), pinned(w.odd)}; }
    static V dot_pairs(V acc, const WeightPairs& w, const OperandPair& h) {
        return _mm256_fmadd_ps(h.odd, w.odd, _mm256_fmadd_ps(h.even, w.even, acc));
    }

    // int8 quads, exact in 32-bit lanes, as in simd__avx512.h.
    static constexpr bool kCentredQuads = false;  // operand bytes are q + 128; finish() removes the offsets
    using VI = __m256i;
    using WeightQuads = __m256i;
    struct OperandQuad {
        __m256i byte[4];
    };
    static VI zero_int() { return _mm256_setzero_si256(); }
    static VI load_int(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static V int_to_float(VI a) { return _mm256_cvtepi32_ps(a); }
    static VI sub_int(VI a, VI b) { return _mm256_sub_epi32(a, b); }
    static WeightQuads load_quads(const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static OperandQuad broadcast_quad(const uint8_t* p) {
        return {{_mm256_set1_epi32(p[0]), _mm256_set1_epi32(p[1]), _mm256_set1_epi32(p[2]), _mm256_set1_epi32(p[3])}};
    }
    static VI pinned(VI v) {
        FASTLSTM_PIN_REGISTER(v, "x");
        return v;
    }
    static VI dot_quads(VI acc, WeightQuads w, const OperandQuad& h) {
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_srai_epi32(_mm256_slli_epi32(w, 24), 24), h.byte[0]));
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_srai_epi32(_mm256_slli_epi32(w, 16), 24), h.byte[1]));
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_srai_epi32(_mm256_slli_epi32(w, 8), 24), h.byte[2]));
        return _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_srai_epi32(w, 24), h.byte[3]));
    }
};

}  // namespace avx2
}  // namespace fastlstm
