// Scalar sigmoid and tanh for the portable kernels. They are the libm functions (std::exp, std::tanh), so their
// error is libm's: within 1-2 ulp in float32 over the whole range. IEEE special values follow from the formulas:
// sigmoid(-inf) = 0, sigmoid(+inf) = 1, tanh(+-inf) = +-1, NaN stays NaN; exp overflow for x < -88.7 gives
// 1 / inf = 0, the correctly rounded sigmoid there up to the float32 denormal range.
#pragma once

#include <cmath>

namespace fastlstm {

inline float f32_sigmoid_portable(float x) { return 1.0f / (1.0f + std::exp(-x)); }

inline float f32_tanh_portable(float x) { return std::tanh(x); }

}  // namespace fastlstm
