// Scalar sigmoid and tanh for the portable kernels. They are the libm functions (std::exp, std::tanh), so their
// error is libm's: within 1-2 ulp in float32 over the whole range. IEEE special values follow from the formulas:
// sigmoid(-inf) = 0, sigmoid(+inf) = 1, tanh(+-inf) = +-1, NaN stays NaN; exp overflow for x < -88.7 gives
// 1 / inf = 0, the correctly rounded sigmoid there up to the float32 denormal range.
#pragma once

#include <cmath>

#include "fastlstm/kernels.h"

namespace fastlstm {

inline float f32_sigmoid_portable(float x) { return 1.0f / (1.0f + std::exp(-x)); }

inline float f32_tanh_portable(float x) { return std::tanh(x); }

// The activation `spec` (kernels.h), with libm's exp, tanh and log1p.
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
