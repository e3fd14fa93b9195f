// The NEON interface with dot products and bf16 (simd__neon_bf16.h), and the int8 matrix multiply-accumulate of
// FEAT_I8MM: USMMLA multiplies a 2 x 8 matrix of unsigned bytes (two rows of 8 operand bytes q + 128) by an 8 x 2
// matrix of signed bytes (two columns of 8 weights) into the 2 x 2 int32 sums of one register: 32 byte products per
// instruction, twice SDOT's 16. Compile with -march=armv8.2-a+dotprod+bf16+i8mm.
// The sums are those of the widening (simd__neon.h), offsets included: the tiles of int8_row_pairs-inl.h subtract
// them, which gives the same integers as every other variant, so bitwise the same floats. (Unsigned operands need no
// flip of their top bit, and so no constant register, which the 24 accumulators of a tile cannot spare.)
// The quad panels (kernels.h) hold, per quad of k, 4 words of 4 bytes for 4 columns; the two quads k .. k + 7 of a
// gate vector become the 8 x 2 operands of columns (0, 1) and (2, 3) by one interleave of 32-bit words each (ZIP1,
// ZIP2), shared by every row pair of a tile: no repacking.
#pragma once

#include "simd__neon_bf16.h"

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

struct NeonI8mm : NeonBf16 {
    using NeonBf16::pinned;
    // Two rows of 8 operand bytes, row 0 in the low half.
    using RowPair = uint8x16_t;
    // A vector of weight quads for two depth quads, as two 8 x 2 operands: columns 0 and 1, columns 2 and 3.
    struct ColumnPairs {
        int8x16_t low, high;
    };
    // The 8 bytes (two quads) of rows r0 and r1 at the same depth; load_row_alone: the second row reads as zeros.
    // (LDR d, then LD1 into the upper lane: no second register, which the tiles cannot spare.)
    static RowPair load_row_pair(const uint8_t* r0, const uint8_t* r1) {
        uint64_t low;
        std::memcpy(&low, r0, sizeof low);
        const uint64x2_t pair = vld1q_lane_u64(reinterpret_cast<const uint64_t*>(r1), vdupq_n_u64(low), 1);
        return vreinterpretq_u8_u64(pair);
    }
    static RowPair load_row_alone(const uint8_t* r0) { return vcombine_u8(vld1_u8(r0), vdup_n_u8(0)); }
    // One quad (4 bytes) per row, the last of rows whose quad count is odd, in bytes 0-3 and 8-11, zeros elsewhere
    // (they meet zero weights); r1 null: the second row reads as zeros.
    static RowPair load_last_quad(const uint8_t* r0, const uint8_t* r1) {
        uint32_t w0, w1 = 0;
        std::memcpy(&w0, r0, sizeof w0);
        if (r1) std::memcpy(&w1, r1, sizeof w1);
        return vcombine_u8(vcreate_u8(w0), vcreate_u8(w1));
    }
    static ColumnPairs column_pairs(WeightQuads first_quad, WeightQuads second_quad) {
        const uint32x4_t a = vreinterpretq_u32_s8(first_quad), b = vreinterpretq_u32_s8(second_quad);
        return {vreinterpretq_s8_u32(vzip1q_u32(a, b)), vreinterpretq_s8_u32(vzip2q_u32(a, b))};
    }
    static ColumnPairs pinned(ColumnPairs w) {
        FASTLSTM_PIN_REGISTER(w.low, "w");
        FASTLSTM_PIN_REGISTER(w.high, "w");
        return w;
    }
    // acc (r0c0, r0c1, r1c0, r1c1) + rows x columns.
    static VI matmul_pairs(VI acc, RowPair rows, int8x16_t columns) { return vusmmlaq_s32(acc, rows, columns); }
    // Row 0's and row 1's sums of 4 columns from the 2 x 2 blocks of columns (0, 1) and (2, 3).
    static VI first_row(VI columns01, VI columns23) {
        return vreinterpretq_s32_s64(vzip1q_s64(vreinterpretq_s64_s32(columns01), vreinterpretq_s64_s32(columns23)));
    }
    static VI second_row(VI columns01, VI columns23) {
        return vreinterpretq_s32_s64(vzip2q_s64(vreinterpretq_s64_s32(columns01), vreinterpretq_s64_s32(columns23)));
    }
};

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
