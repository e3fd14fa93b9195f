// Row-wise softmax (see kernels.h for the contract), written once over the Simd interface and compiled per ISA.
// Compiled through a variant's entry file (variant__<isa>.cc), which includes that ISA's simd__<isa>.h and
// defines FASTLSTM_ISA_NAMESPACE, the namespace of everything below.
//
// Each row: its maximum m, then e_j = exp(x_j - m) (all in (0, 1], so nothing overflows and the sum is >= 1), then
// e_j / sum. exp_f32 is within 2 ulp, the sum adds at most n ulp-sized roundings in a fixed order per vector lane:
// the probabilities are within a few ulp plus n * 2^-24 relative of the exact ones.

#pragma once

#ifndef FASTLSTM_ISA_NAMESPACE
#error "compile this header through a variant's entry file (variant__<isa>.cc), which defines FASTLSTM_ISA_NAMESPACE"
#endif

#include <cstdint>
#include <limits>

#include "f32_activations-inl.h"

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

inline void softmax_rows(int64_t rows, int64_t columns, float* x, int64_t stride) {
    constexpr int64_t L = Simd::kLanes;
    const float lowest = -std::numeric_limits<float>::infinity();
    for (int64_t r = 0; r < rows; ++r) {
        float* row = x + r * stride;
        const int64_t full = columns - columns % L;
        V maximum = Simd::set1(lowest);
        for (int64_t j = 0; j < full; j += L) maximum = Simd::max(Simd::load(row + j), maximum);
        if (full < columns) maximum = Simd::max(Simd::load_first_or(row + full, columns - full, lowest), maximum);
        const V m = Simd::set1(Simd::reduce_max(maximum));
        V sum = Simd::zero();
        for (int64_t j = 0; j < full; j += L) {
            const V e = exp_f32(Simd::sub(Simd::load(row + j), m));
            Simd::store(row + j, e);
            sum = Simd::add(sum, e);
        }
        if (full < columns) {
            // Read back what was stored: lanes past the row are 0 and add nothing to the sum.
            Simd::store_first(row + full, exp_f32(Simd::sub(Simd::load_first(row + full, columns - full), m)),
                              columns - full);
            sum = Simd::add(sum, Simd::load_first(row + full, columns - full));
        }
        const V inverse = Simd::set1(1.0f / Simd::reduce_add(sum));
        for (int64_t j = 0; j < full; j += L) Simd::store(row + j, Simd::mul(Simd::load(row + j), inverse));
        if (full < columns)
            Simd::store_first(row + full, Simd::mul(Simd::load_first(row + full, columns - full), inverse),
                              columns - full);
    }
}

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
