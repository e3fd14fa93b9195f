// int8 quantization (fastlstm/int8.h), compiled with the baseline flags: every variant calls it. A row is quantized
// once per step (h) or per chunk (x), next to the K * 4H multiply-adds that read it.
#include "fastlstm/int8.h"

#include <cfloat>
#include <cmath>

namespace fastlstm {

namespace {

// x rounded to the nearest integer, ties to even, for |x| < 2^22: adding and subtracting 1.5 * 2^23 leaves no
// fraction bits, so the addition rounds (in the default rounding mode, as every float32 operation here). Written
// out because std::nearbyint is a library call on the baseline x86-64 target, which made quantizing a row cost
// as much as the row's multiply-adds (`python -m fastlstm bench --shapes 1x100x256 --threads 1 --precision int8`).
inline float round_to_integer(float x) {
    constexpr float kShift = 12582912.0f;  // 1.5 * 2^23
    return (x + kShift) - kShift;
}

}  // namespace

float quantize_row_to_int8(int64_t K, const float* row, int8_t* q) {
    float largest = 0.0f;
    bool finite = true;
    for (int64_t k = 0; k < K; ++k) {
        const float magnitude = std::fabs(row[k]);
        finite &= magnitude <= FLT_MAX;  // false for inf and NaN
        largest = magnitude > largest ? magnitude : largest;
    }
    if (!finite || largest < FLT_MIN) {
        for (int64_t k = 0; k < K; ++k) q[k] = 0;
        return finite ? 0.0f : NAN;
    }
    const float inverse = 127.0f / largest;
    for (int64_t k = 0; k < K; ++k) {
        const float scaled = round_to_integer(row[k] * inverse);  // |row[k] * inverse| <= 127 (+ rounding)
        q[k] = static_cast<int8_t>(scaled > 127.0f ? 127.0f : scaled < -127.0f ? -127.0f : scaled);
    }
    return largest / 127.0f;
}

void quantize_rows_to_uint8(int64_t rows, int64_t K, const float* src, int64_t src_stride, uint8_t* dst,
                            int64_t dst_stride, float* scales) {
    const int64_t padded = (K + 3) / 4 * 4;
    for (int64_t r = 0; r < rows; ++r) {
        uint8_t* out = dst + r * dst_stride;
        // The signed codes go through out itself, then shift by 128 in place.
        int8_t* codes = reinterpret_cast<int8_t*>(out);
        scales[r] = quantize_row_to_int8(K, src + r * src_stride, codes);
        for (int64_t k = 0; k < K; ++k) out[k] = static_cast<uint8_t>(codes[k] + 128);
        for (int64_t k = K; k < padded; ++k) out[k] = 128;
    }
}

}  // namespace fastlstm
