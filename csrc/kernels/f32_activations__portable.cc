// Portable array activations: the functions of f32_activations__portable.h over arrays.
#include "f32_activations__portable.h"
#include "variants.h"

namespace fastlstm {

void f32_sigmoid__portable(int64_t n, const float* x, float* y) {
    for (int64_t i = 0; i < n; ++i) y[i] = f32_sigmoid_portable(x[i]);
}

void f32_tanh__portable(int64_t n, const float* x, float* y) {
    for (int64_t i = 0; i < n; ++i) y[i] = f32_tanh_portable(x[i]);
}

}  // namespace fastlstm
