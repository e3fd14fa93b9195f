// Scalar sigmoid and tanh for the portable kernels: the algorithms of the SIMD variants (f32_activations-inl.h),
// written so that a compiler vectorizes a loop of them with the target's baseline vectors (SSE2, NEON): no call, no
// branch, no table. libm's expf and tanhf, which no compiler vectorizes, cost about 75 ns per LSTM unit here (3 exp,
// 2 tanh): a third of a portable 64 x 50 x 256 call.
//
// Without a fused multiply-add (SSE2 has none), each polynomial step rounds twice; the bounds stay those of the SIMD
// code, enforced by tests/test_activations.py at every ISA (measured here: sigmoid 2.09 ulp, tanh 1.33 ulp):
//   f32_sigmoid_portable  relative error <= 3 ulp for x >= -87; below -87, about 6e-39 or less instead of exp(x)
//                         (absolute error < 1e-38). sigmoid(+inf) = 1, sigmoid(-inf) ~ 0, NaN -> NaN.
//   f32_tanh_portable     <= 3 ulp everywhere; tanh(+-inf) = +-1, NaN -> NaN, tanh(-0) = -0.
// The other activations of f32_activate_portable keep libm (ONNX and Keras options; not on the hot path).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "fastlstm/kernels.h"

namespace fastlstm {

namespace portable_activation {

// x * 2^n for integral n in [-126, 127], n put straight into the exponent field. A NaN n (from a NaN input, which
// also made x NaN) is replaced by 0 first, since converting NaN to an integer is undefined in C++.
inline float scale_by_pow2(float x, float n) {
    const int32_t exponent = static_cast<int32_t>(n == n ? n : 0.0f) + 127;
    const uint32_t bits = static_cast<uint32_t>(exponent) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return x * scale;
}

// exp(x), as exp_f32 in f32_activations-inl.h: x clamped to [-87, 88] (comparisons written so that NaN passes
// through), n = round(x / ln 2) by adding and subtracting 1.5 * 2^23 (exact, round to nearest even, for
// |x / ln 2| < 2^22), r = x - n ln 2 with ln 2 split in two, and the same degree-6 polynomial for exp(r).
inline float exp_f32(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    constexpr float kRoundingShift = 12582912.0f;  // 1.5 * 2^23
    const float n = (x * 1.44269504f + kRoundingShift) - kRoundingShift;
    float r = x - n * 0.693359375f;  // n * ln2_hi is exact for |n| <= 128
    r = r - n * -2.12194440e-4f;
    float p = 0.00138436537f;
    p = p * r + 0.0083741555f;
    p = p * r + 0.0416680016f;
    p = p * r + 0.166664317f;
    p = p * r + 0.49999994f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return scale_by_pow2(p, n);
}

}  // namespace portable_activation

inline float f32_sigmoid_portable(float x) { return 1.0f / (1.0f + portable_activation::exp_f32(-x)); }

// As tanh_f32 in f32_activations-inl.h: |x| < 0.625, |x| + |x| x^2 P(x^2); otherwise 1 - 2 / (exp(2|x|) + 1); both
// computed and one chosen (no branch), then the sign of x, which also keeps tanh(-0) = -0.
inline float f32_tanh_portable(float x) {
    const float ax = std::fabs(x);
    const float x2 = x * x;
    float p = -0.00565998862f;
    p = p * x2 + 0.0205909871f;
    p = p * x2 + -0.0537210666f;
    p = p * x2 + 0.133311272f;
    p = p * x2 + -0.333332598f;
    const float small = (p * x2) * ax + ax;
    const float large = 1.0f - 2.0f / (portable_activation::exp_f32(ax + ax) + 1.0f);
    return std::copysign(ax < 0.625f ? small : large, x);
}

// The activation `spec` (kernels.h): sigmoid and tanh as above, the others with libm's exp, tanh and log1p.
inline float f32_activate_portable(const ActivationSpec& spec, float x) {
    switch (spec.kind) {
        case Activation::kSigmoid: return f32_sigmoid_portable(x);
        case Activation::kTanh: return f32_tanh_portable(x);
        case Activation::kRelu: return x < 0.0f ? 0.0f : x;  // NaN stays NaN
        case Activation::kAffine: return spec.alpha * x + spec.beta;
        case Activation::kLeakyRelu: return x < 0.0f ? spec.alpha * x : x;
        case Activation::kThresholdedRelu: return x > spec.alpha ? x : 0.0f;
        case Activation::kScaledTanh: return spec.alpha * std::tanh(spec.beta * x);
        case Activation::kHardSigmoid: {
            const float y = spec.alpha * x + spec.beta;
            return y > 1.0f ? 1.0f : (y < 0.0f ? 0.0f : y);
        }
        case Activation::kElu: return x < 0.0f ? spec.alpha * (std::exp(x) - 1.0f) : x;
        case Activation::kSoftsign: return x / (1.0f + std::fabs(x));
        case Activation::kSoftplus: return (x > 0.0f ? x : 0.0f) + std::log1p(std::exp(-std::fabs(x)));
    }
    return x;
}

}  // namespace fastlstm
