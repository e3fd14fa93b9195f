// Rounding float32 to bf16 (kernels.h: precision bf16), defined once for every variant so that all of them, the
// packing of weights and the NumPy reference (fastlstm/reference.py) round the same way.
#pragma once

#include <cstdint>

namespace fastlstm {

// The bf16 nearest to x, ties to even; NaN stays NaN (quiet), values past the largest bf16 become +-inf.
// Relative error at most 2^-8 (half an ulp of 8 significant bits) for normal values.
uint16_t round_to_bf16(float x);

// float32 of a bf16 value (exact).
float bf16_to_float(uint16_t value);

// Rows of K floats (row stride src_stride) to rows of round_to_bf16 values (row stride dst_stride >= K rounded up
// to even), a zero after the last value when K is odd.
void round_rows_to_bf16(int64_t rows, int64_t K, const float* src, int64_t src_stride, uint16_t* dst,
                        int64_t dst_stride);

}  // namespace fastlstm
