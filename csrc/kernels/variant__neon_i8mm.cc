// The neon_i8mm variant (variants.inc): its int8 kernels, row pairs by SMMLA (int8_row_pairs-inl.h over
// simd__neon_i8mm.h), compiled with -march=armv8.2-a+dotprod+bf16+i8mm (this file only). Its f32 kernels are neon's
// and its bf16 kernels neon_bf16's (called from here: the table gives bf16 and int8 one suffix); every core with
// FEAT_I8MM so far has FEAT_BF16 and FEAT_DotProd too (both are part of Armv8.6: Neoverse V1/V2/N2, Apple M2 and
// later), and a CPU without them gets neon_bf16 or neon_dotprod. Bitwise the results of neon_dotprod.
// clang-format off
#define FASTLSTM_ISA_NAMESPACE neon_i8mm
#include "simd__neon_i8mm.h"
#include "variants.h"

namespace fastlstm::neon_i8mm {
using Simd = NeonI8mm;
}

#include "f32_activations-inl.h"
#include "lstm_step-inl.h"
#include "int8_row_pairs-inl.h"
// clang-format on

namespace fastlstm {

static_assert(neon_i8mm::Simd::kLanes == kVariant_neon_i8mm.hidden_block,
              "variants.inc: the neon_i8mm row packs one q register per gate");

// 3 row pairs x 4 gate vectors x 2 blocks = 24 accumulators, 3 operand registers and 2 weight vectors with their 2
// interleaves: 31 of 32 registers, as the 6-row SDOT tile of neon_dotprod.
void int8_gemm_panels__neon_i8mm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Int8Panels& B,
                                 int64_t panel_width, const float* init, float* C, int64_t ldc, uint8_t* a_uint8,
                                 float* a_scales) {
    (void)panel_width;  // gate panels only
    neon_i8mm::int8_row_pairs_gemm_panels<3>(M, N, K, A, lda, B, init, C, ldc, a_uint8, a_scales);
}

void int8_lstm_step__neon_i8mm(const LstmStepArgs& args) { neon_i8mm::int8_row_pairs_lstm_step<3, 24>(args); }

void bf16_gemm_panels__neon_i8mm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const uint32_t* pairs,
                                 int64_t panel_width, const float* init, float* C, int64_t ldc, uint16_t* a_bf16) {
    bf16_gemm_panels__neon_bf16(M, N, K, A, lda, pairs, panel_width, init, C, ldc, a_bf16);
}

void bf16_lstm_step__neon_i8mm(const LstmStepArgs& args) { bf16_lstm_step__neon_bf16(args); }

}  // namespace fastlstm
