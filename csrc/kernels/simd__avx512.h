// The vector operations the kernels use, for AVX-512 (16 float lanes). The same interface exists for every ISA
// (simd__avx2.h), so the kernel bodies in *-inl.h read the same for all of them. Compile with -mavx512f.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "pin_register.h"

namespace fastlstm {
namespace avx512 {

struct Simd {
    using V = __m512;
    using Mask = __mmask16;
    static constexpr int64_t kLanes = 16;

    static constexpr bool kFinishFromUnrolledCopies = false;  // lstm_step-inl.h: not needed here
    // lstm_step-inl.h: lstm_step_compact_tail, with quarter_to_front, upper_half_to_front and lanes_from, for last
    // panels compacted into up to 3 vectors a k (18 accumulators in a tile of 6 rows).
    static constexpr int kCompactTailVectors = 3;
    // lstm_step-inl.h: finish_cells_together, measured on the Zen 4 and left off: B/A 0.99-1.05 (1.01-1.02 on
    // most rows) over B = 2-17, H = 65-512, 1 and 2 threads, and a 64-session tick (9 paired rounds,
    // tools/ab_compare.py), where AVX2 on the Zen 3 gained (simd__avx2.h).
    static constexpr bool kFinishCellsTogether = false;
    static constexpr int kHalfTileMaxRows = 0;  // lstm_step_half_tiles-inl.h: none (32 registers hold full tiles)
    // lstm_step-inl.h: panels_per_tile. A float32 step of one row (a stream's or one session's step, T=1, batch-1
    // rows outside the look-ahead) takes 4 panels a tile: 16 weight loads and accumulator chains a k instead of 8.
    // B/A against 2 (15 paired rounds of tools/ab_compare.py, this Zen 4): steps from a state 0.984 at 80x256,
    // 0.953 at 128x128, 0.986 / 0.990 at 256x256 (1 / 2 threads); a pool step of one session at 80x256 0.973;
    // B=1 T=1 I=H=256 0.982; at H <= 100 0.97-1.02 in repeated runs (noise there). A bare one-row product over
    // packed panels in L2 reads 90-93 GB/s with 4 panels a pass, 77-79 with 2 (a standalone loop).
    static constexpr int kOneRowPanels = 4;
    // Lanes [4q, 4q + 4) of v in lanes [0, 4); the other lanes are some of v's.
    template <int kQuarter>
    static V quarter_to_front(V v) {
        return _mm512_shuffle_f32x4(v, v, kQuarter);
    }
    // Lanes [8, 16) of v in lanes [0, 8); the other lanes are some of v's.
    static V upper_half_to_front(V v) { return _mm512_shuffle_f32x4(v, v, 0x0E); }
    // Lanes [kOffset, kOffset + 16) of a and b side by side (0 < kOffset < 16): a's lanes from kOffset, then b's.
    template <int kOffset>
    static V lanes_from(V a, V b) {
        return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(b), _mm512_castps_si512(a), kOffset));
    }
    static V zero() { return _mm512_setzero_ps(); }
    static V set1(float x) { return _mm512_set1_ps(x); }
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    // v, pinned to a register: the compiler may no longer fold its load into each multiply-add that uses it.
    // A weight vector shared by several rows of a tile is then read once, not once per row (GCC folds when
    // registers run short, and the tile of 3 rows x 2 panels lost ~15% to three loads per weight:
    // `python -m fastlstm bench --shapes 3x100x256 --threads 1 --isa avx512`, against a build without the pin).
    static V pinned(V v) {
        FASTLSTM_PIN_REGISTER(v, "v");
        return v;
    }
    // A hint to bring the cache line holding p into L1; never faults.
    static void prefetch(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }
    // The same for a line read once: kept out of the outer caches where the CPU allows; never faults.
    static void prefetch_once(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_NTA); }
    static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
    // The first n lanes (0 <= n <= kLanes); the others read as 0 and are not written.
    static Mask first(int64_t n) { return static_cast<Mask>((1u << n) - 1u); }
    static V load_first(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(first(n), p); }
    static void store_first(float* p, V v, int64_t n) { _mm512_mask_storeu_ps(p, first(n), v); }
    // The first n lanes of p, the others `fill`.
    static V load_first_or(const float* p, int64_t n, float fill) {
        return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), first(n), p);
    }
    static float reduce_add(V v) { return _mm512_reduce_add_ps(v); }
    static float reduce_max(V v) { return _mm512_reduce_max_ps(v); }

    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V div(V a, V b) { return _mm512_div_ps(a, b); }
    // 1/b: the 14-bit estimate and one Newton step, r' = r + r (1 - b r): relative error below 2^-26 (measured
    // within 1 ulp), at a fraction of a division's cost. 1/inf = 0, 1/NaN = NaN; results in the denormal range
    // come out as 0.
    static V reciprocal(V b) {
        const V r = _mm512_rcp14_ps(b);
        return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(b, r, _mm512_set1_ps(1.0f)), r);
    }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }    // a*b + c, one rounding
    static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a*b, one rounding
    // max/min return b when either operand is NaN: call them as max(bound, x) so that NaN in x survives.
    static V max(V a, V b) { return _mm512_max_ps(a, b); }
    static V min(V a, V b) { return _mm512_min_ps(a, b); }
    static V abs(V a) { return _mm512_abs_ps(a); }
    static V copysign(V magnitude, V sign) {
        const __m512i sign_bit = _mm512_set1_epi32(INT32_MIN);
        return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
            sign_bit, _mm512_castps_si512(sign), _mm512_castps_si512(magnitude), 0xCA));  // sign_bit ? sign : magnitude
    }
    static V round_nearest(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    // a * 2^n for integral n in [-126, 127].
    static V scale_by_pow2(V a, V n) { return _mm512_scalef_ps(a, n); }
    static Mask less(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
    static V select(Mask m, V if_true, V if_false) { return _mm512_mask_blend_ps(m, if_false, if_true); }

    // bf16 pairs (kernels.h: pair panels), widened to float32 exactly: the low halves of a vector of words, shifted
    // up, are the weights of k = 2j; the high halves, with the low ones cleared, those of k = 2j + 1. The other
    // operand is the pair (h[2j], h[2j + 1]), each broadcast. A pair costs two multiply-adds and two integer ops.
    struct WeightPairs {
        V even, odd;
    };
    struct OperandPair {
        V even, odd;
    };
    static WeightPairs load_pairs(const uint32_t* p) {
        const __m512i words = _mm512_loadu_si512(p);
        return {_mm512_castsi512_ps(_mm512_slli_epi32(words, 16)),
                _mm512_castsi512_ps(_mm512_and_si512(words, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))))};
    }
    static OperandPair broadcast_pair(const uint16_t* p) {
        uint32_t word;
        std::memcpy(&word, p, sizeof word);
        const uint32_t even = word << 16, odd = word & 0xFFFF0000u;
        float even_value, odd_value;
        std::memcpy(&even_value, &even, sizeof even_value);
        std::memcpy(&odd_value, &odd, sizeof odd_value);
        return {_mm512_set1_ps(even_value), _mm512_set1_ps(odd_value)};
    }
    static WeightPairs pinned(WeightPairs w) { return {pinned(w.even), pinned(w.odd)}; }
    // acc + w[2j] h[2j] + w[2j+1] h[2j+1], the even product added first.
    static V dot_pairs(V acc, const WeightPairs& w, const OperandPair& h) {
        return _mm512_fmadd_ps(h.odd, w.odd, _mm512_fmadd_ps(h.even, w.even, acc));
    }

    // int8 quads (kernels.h: quad panels): 32-bit lanes of integer sums. Without VNNI, each signed byte of a word is
    // sign-extended by two shifts and multiplied with its unsigned operand byte in 32-bit lanes: exact, so every
    // variant gives the same integers (AVX-512F alone has no byte multiply-add).
    static constexpr bool kCentredQuads = false;  // operand bytes are q + 128; finish() removes the offsets
    using VI = __m512i;
    using WeightQuads = __m512i;
    struct OperandQuad {
        __m512i byte[4];
    };
    static VI zero_int() { return _mm512_setzero_si512(); }
    static VI load_int(const int32_t* p) { return _mm512_loadu_si512(p); }
    static V int_to_float(VI a) { return _mm512_cvtepi32_ps(a); }
    static VI sub_int(VI a, VI b) { return _mm512_sub_epi32(a, b); }
    static WeightQuads load_quads(const uint32_t* p) { return _mm512_loadu_si512(p); }
    static OperandQuad broadcast_quad(const uint8_t* p) {
        return {{_mm512_set1_epi32(p[0]), _mm512_set1_epi32(p[1]), _mm512_set1_epi32(p[2]), _mm512_set1_epi32(p[3])}};
    }
    static VI pinned(VI v) {
        FASTLSTM_PIN_REGISTER(v, "v");
        return v;
    }
    // acc + sum over the 4 bytes i of (signed byte i of w) * (unsigned operand byte i).
    static VI dot_quads(VI acc, WeightQuads w, const OperandQuad& h) {
        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_srai_epi32(_mm512_slli_epi32(w, 24), 24), h.byte[0]));
        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_srai_epi32(_mm512_slli_epi32(w, 16), 24), h.byte[1]));
        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_srai_epi32(_mm512_slli_epi32(w, 8), 24), h.byte[2]));
        return _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_srai_epi32(w, 24), h.byte[3]));
    }
};

}  // namespace avx512

#if defined(__AVX512BF16__) && defined(__AVX512VNNI__)
// AVX512-BF16 and AVX512-VNNI (every CPU with the first has the second): the same vectors, with one dot product
// over 16 pairs (vdpbf16ps) in place of the widening and two multiply-adds, and one over 16 quads of bytes
// (vpdpbusd) in place of four shifts, multiplies and adds. vdpbf16ps sums in its own order (per lane, acc plus both
// products, float32, denormals as zero); vpdpbusd's integers are exact, as the emulation's.
namespace avx512bf16 {

struct Simd : avx512::Simd {
    using WeightPairs = __m512i;
    using OperandPair = __m512i;
    static WeightPairs load_pairs(const uint32_t* p) { return _mm512_loadu_si512(p); }
    static OperandPair broadcast_pair(const uint16_t* p) {
        uint32_t word;
        std::memcpy(&word, p, sizeof word);
        return _mm512_set1_epi32(static_cast<int>(word));
    }
    static V dot_pairs(V acc, WeightPairs w, OperandPair h) {
        return _mm512_dpbf16_ps(acc, (__m512bh)w, (__m512bh)h);  // a vector cast: the same 512 bits, retyped
    }
    using OperandQuad = __m512i;
    static OperandQuad broadcast_quad(const uint8_t* p) {
        uint32_t word;
        std::memcpy(&word, p, sizeof word);
        return _mm512_set1_epi32(static_cast<int>(word));
    }
    // vpdpbusd acc, h (unsigned bytes), w (signed bytes). Written as inline assembly: GCC 12 kept the intrinsic's
    // accumulators in memory, storing each of them once per quad (int8 ran no faster than bf16 with it:
    // `python -m fastlstm bench --shapes 64x100x512 --threads 1 --precision bf16,int8`).
    static VI dot_quads(VI acc, WeightQuads w, OperandQuad h) {
        asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(h), "v"(w));
        return acc;
    }
};

}  // namespace avx512bf16
#endif
}  // namespace fastlstm
