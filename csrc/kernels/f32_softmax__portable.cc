// Portable softmax rows (kernels.h: f32_softmax_rows_fn), with libm's exp.
#include <cmath>
#include <cstdint>
#include <limits>

#include "variants.h"

namespace fastlstm {

// Softmax rows: the row's maximum subtracted before std::exp, so nothing overflows; a NaN or +inf gives NaN.
void f32_softmax_rows__portable(int64_t rows, int64_t columns, float* x, int64_t stride) {
    for (int64_t r = 0; r < rows; ++r) {
        float* row = x + r * stride;
        float maximum = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < columns; ++j) maximum = row[j] > maximum ? row[j] : maximum;
        float sum = 0.0f;
        for (int64_t j = 0; j < columns; ++j) {
            row[j] = std::exp(row[j] - maximum);
            sum += row[j];
        }
        const float inverse = 1.0f / sum;
        for (int64_t j = 0; j < columns; ++j) row[j] *= inverse;
    }
}

}  // namespace fastlstm
