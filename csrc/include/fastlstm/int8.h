// Quantization to int8 (kernels.h: precision int8), defined once for every variant so that all of them, the packing
// of weights and the NumPy reference (fastlstm/reference.py) quantize the same way.
#pragma once

#include <cstdint>

namespace fastlstm {

// The longest dot product (K: a layer's input size, or the recurrent size) that precision int8 sums exactly. Each
// term is an operand byte q_a + 128 <= 255 times a weight code |q| <= 127, at most 255 * 127 = 32385 in magnitude,
// so 2^31 / 32385 = 66311 terms fit in an int32 sum; the limit is the power of two below that. The kernels round K
// up to 4 with zero weights, which add nothing. PackedLstm refuses longer ones (std::invalid_argument).
constexpr int64_t kInt8MaxDepth = 65536;
static_assert(kInt8MaxDepth * 255 * 127 <= (int64_t{1} << 31) - 1, "int8 sums of kInt8MaxDepth terms fit in int32");

// The symmetric int8 code of one row (a weight row, or a row of x or h): scale = max|row| / 127 and
// q[k] = round(row[k] * (127 / max|row|)) in [-127, 127], ties to even, both products and the quotient in float32.
// A row whose largest magnitude is below FLT_MIN (zeros, or denormals, which the kernels read as zero) has scale 0 and
// q = 0. A row holding inf or NaN has scale NaN and q = 0, so that everything it touches comes out NaN.
float quantize_row_to_int8(int64_t K, const float* row, int8_t* q);

// Rows of K floats (row stride src_stride) to rows of q + 128 as unsigned bytes (row stride dst_stride >= K
// rounded up to 4), padded with 128 (q = 0), and scales[r] as above: the activation operand of the int8 kernels.
void quantize_rows_to_uint8(int64_t rows, int64_t K, const float* src, int64_t src_stride, uint8_t* dst,
                            int64_t dst_stride, float* scales);

}  // namespace fastlstm
