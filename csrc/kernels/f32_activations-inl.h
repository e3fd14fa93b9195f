// Vector exp, sigmoid and tanh for float32, written once over the Simd interface and compiled per ISA.
// Compiled through a variant's entry file (variant__<isa>.cc), which includes that ISA's simd__<isa>.h and
// defines FASTLSTM_ISA_NAMESPACE, the namespace of everything below.
//
// Error bounds, enforced by tests/test_activations.py against float64 over every 997th float32 in [-20, 20], every
// float near the switch and clamp points, and the special values (measured maxima: sigmoid 2.48 ulp, tanh 1.34 ulp):
//   exp_f32      inputs clamped to [-87, 88] (exp(-87) = 1.6e-38, exp(88) = 1.7e38); tested through the two below.
//   sigmoid_f32  relative error <= 3 ulp for x >= -87; below -87 it returns about 6e-39 or less instead of
//                exp(x) (absolute error < 1e-38). sigmoid(+inf) = 1, sigmoid(-inf) ~ 0, NaN -> NaN.
//   tanh_f32     <= 3 ulp everywhere; tanh(+-inf) = +-1, NaN -> NaN, tanh(-0) = -0.
// The LSTM's results are compared in absolute terms (values within [-1, 1] for h), where these errors are below
// 2e-7, well inside the derived test tolerance (fastlstm/testing.py).

#pragma once

#ifndef FASTLSTM_ISA_NAMESPACE
#error "compile this header through a variant's entry file (variant__<isa>.cc), which defines FASTLSTM_ISA_NAMESPACE"
#endif

#include <cstdint>

#include "fastlstm/kernels.h"

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

using V = Simd::V;

// exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in two so that n*ln2_hi
// is exact). exp(r) is a degree-6 polynomial fitted by us for minimal relative error on that interval
// (1 + c1 r + ... + c6 r^6, max relative error 2.0e-9 before float32 rounding).
inline V exp_f32(V x) {
    x = Simd::min(Simd::set1(88.0f), Simd::max(Simd::set1(-87.0f), x));
    const V n = Simd::round_nearest(Simd::mul(x, Simd::set1(1.44269504f)));
    V r = Simd::fnmadd(n, Simd::set1(0.693359375f), x);
    r = Simd::fnmadd(n, Simd::set1(-2.12194440e-4f), r);
    V p = Simd::set1(0.00138436537f);
    p = Simd::fmadd(p, r, Simd::set1(0.0083741555f));
    p = Simd::fmadd(p, r, Simd::set1(0.0416680016f));
    p = Simd::fmadd(p, r, Simd::set1(0.166664317f));
    p = Simd::fmadd(p, r, Simd::set1(0.49999994f));
    p = Simd::fmadd(p, r, Simd::set1(1.0f));
    p = Simd::fmadd(p, r, Simd::set1(1.0f));
    return Simd::scale_by_pow2(p, n);
}

// 1 / (1 + exp(-x)), with the ISA's reciprocal (a division, or an estimate refined to within 1 ulp).
inline V sigmoid_f32(V x) { return Simd::reciprocal(Simd::add(Simd::set1(1.0f), exp_f32(Simd::sub(Simd::zero(), x)))); }

// |x| < 0.625: |x| * P(x^2), P of degree 5 fitted by us for minimal relative error (3.9e-9 before rounding);
// otherwise 1 - 2 / (exp(2|x|) + 1), where the subtraction loses at most a factor 0.8. Then the sign of x
// (which also keeps tanh(-0) = -0).
inline V tanh_f32(V x) {
    const V ax = Simd::abs(x);
    const V x2 = Simd::mul(x, x);
    V p = Simd::set1(-0.00565998862f);
    p = Simd::fmadd(p, x2, Simd::set1(0.0205909871f));
    p = Simd::fmadd(p, x2, Simd::set1(-0.0537210666f));
    p = Simd::fmadd(p, x2, Simd::set1(0.133311272f));
    p = Simd::fmadd(p, x2, Simd::set1(-0.333332598f));
    const V small = Simd::fmadd(Simd::mul(p, x2), ax, ax);
    const V one = Simd::set1(1.0f);
    const V e = exp_f32(Simd::add(ax, ax));
    const V large = Simd::fnmadd(Simd::set1(2.0f), Simd::reciprocal(Simd::add(e, one)), one);
    return Simd::copysign(Simd::select(Simd::less(ax, Simd::set1(0.625f)), small, large), x);
}

// log(1 + u) for u in [0, 1]: with t = u / (2 + u) in [0, 1/3], log(1 + u) = 2 atanh(t) = 2 (t + t^3/3 + t^5/5 + ...);
// the terms through t^15 leave a truncation below (1/3)^17 / 17 * 2 = 1e-9 relative, under float32 rounding.
inline V log1p_unit_f32(V u) {
    const V t = Simd::div(u, Simd::add(Simd::set1(2.0f), u));
    const V t2 = Simd::mul(t, t);
    V p = Simd::set1(1.0f / 15.0f);
    p = Simd::fmadd(p, t2, Simd::set1(1.0f / 13.0f));
    p = Simd::fmadd(p, t2, Simd::set1(1.0f / 11.0f));
    p = Simd::fmadd(p, t2, Simd::set1(1.0f / 9.0f));
    p = Simd::fmadd(p, t2, Simd::set1(1.0f / 7.0f));
    p = Simd::fmadd(p, t2, Simd::set1(1.0f / 5.0f));
    p = Simd::fmadd(p, t2, Simd::set1(1.0f / 3.0f));
    p = Simd::fmadd(p, t2, Simd::set1(1.0f));
    return Simd::mul(Simd::add(t, t), p);
}

// The activation `spec` (kernels.h). NaN stays NaN, but in thresholded_relu, whose comparison sends it to 0.
inline V activate_f32(const ActivationSpec& spec, V x) {
    const V zero = Simd::zero();
    const V alpha = Simd::set1(spec.alpha);
    switch (spec.kind) {
        case Activation::kSigmoid: return sigmoid_f32(x);
        case Activation::kTanh: return tanh_f32(x);
        case Activation::kRelu: return Simd::max(zero, x);
        case Activation::kAffine: return Simd::fmadd(alpha, x, Simd::set1(spec.beta));
        case Activation::kLeakyRelu: return Simd::select(Simd::less(x, zero), Simd::mul(alpha, x), x);
        case Activation::kThresholdedRelu: return Simd::select(Simd::less(alpha, x), x, zero);
        case Activation::kScaledTanh: return Simd::mul(alpha, tanh_f32(Simd::mul(Simd::set1(spec.beta), x)));
        case Activation::kHardSigmoid:
            return Simd::max(zero, Simd::min(Simd::set1(1.0f), Simd::fmadd(alpha, x, Simd::set1(spec.beta))));
        case Activation::kElu:
            return Simd::select(Simd::less(x, zero), Simd::mul(alpha, Simd::sub(exp_f32(x), Simd::set1(1.0f))), x);
        case Activation::kSoftsign: return Simd::div(x, Simd::add(Simd::set1(1.0f), Simd::abs(x)));
        case Activation::kSoftplus:  // max(x, 0) + log(1 + exp(-|x|)): no overflow, exact for large |x|
            return Simd::add(Simd::max(zero, x), log1p_unit_f32(exp_f32(Simd::sub(zero, Simd::abs(x)))));
    }
    return x;
}

// Array forms, for the variant table (and so for the accuracy tests).
inline void sigmoid_array(int64_t n, const float* x, float* y) {
    int64_t i = 0;
    for (; i + Simd::kLanes <= n; i += Simd::kLanes) Simd::store(y + i, sigmoid_f32(Simd::load(x + i)));
    if (i < n) Simd::store_first(y + i, sigmoid_f32(Simd::load_first(x + i, n - i)), n - i);
}

inline void tanh_array(int64_t n, const float* x, float* y) {
    int64_t i = 0;
    for (; i + Simd::kLanes <= n; i += Simd::kLanes) Simd::store(y + i, tanh_f32(Simd::load(x + i)));
    if (i < n) Simd::store_first(y + i, tanh_f32(Simd::load_first(x + i, n - i)), n - i);
}

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
