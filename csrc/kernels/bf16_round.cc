// bf16 rounding (fastlstm/bf16.h), compiled with the baseline flags: every variant calls these, so none of them
// carries an instruction its CPU may lack. Rows are rounded once per step or per chunk, next to the K * 4H
// multiply-adds that read them, so a plain loop (which the compiler vectorises) is fast enough.
#include "fastlstm/bf16.h"

#include <cstring>

namespace fastlstm {
namespace {

// The integer form: add half an ulp of bf16, plus one when the kept part is odd (ties to even), and drop the low
// half. A NaN could round to inf that way, so it keeps its high half with the quiet bit set.
inline uint16_t round_bits(uint32_t bits) {
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
    return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace

uint16_t round_to_bf16(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    return round_bits(bits);
}

float bf16_to_float(uint16_t value) {
    const uint32_t bits = static_cast<uint32_t>(value) << 16;
    float x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}

void round_rows_to_bf16(int64_t rows, int64_t K, const float* src, int64_t src_stride, uint16_t* dst,
                        int64_t dst_stride) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* in = src + r * src_stride;
        uint16_t* out = dst + r * dst_stride;
        for (int64_t k = 0; k < K; ++k) {
            uint32_t bits;
            std::memcpy(&bits, in + k, sizeof bits);
            out[k] = round_bits(bits);
        }
        if (K % 2) out[K] = 0;
    }
}

}  // namespace fastlstm
