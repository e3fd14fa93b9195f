// The neon_bf16 variant (variants.inc): its bf16 kernels, the *-inl.h bodies over BFMLALB/BFMLALT
// (simd__neon_bf16.h), compiled with -march=armv8.2-a+dotprod+bf16 (this file only); bitwise the results of neon's
// widening. Its f32 kernels are neon's and its int8 kernels neon_dotprod's (every core with FEAT_BF16 has
// FEAT_DotProd: Neoverse V1/V2/N2, Apple M2 and later). A weight vector and an operand take one register each, so
// the tiles are f32's: up to 24 accumulators.
// clang-format off
#define FASTLSTM_ISA_NAMESPACE neon_bf16
#include "simd__neon_bf16.h"
#include "variants.h"

namespace fastlstm::neon_bf16 {
using Simd = NeonBf16;
}

#include "f32_activations-inl.h"
#include "lstm_step-inl.h"
#include "gemm_panels-inl.h"
// clang-format on

namespace fastlstm {

static_assert(neon_bf16::Simd::kLanes == kVariant_neon_bf16.hidden_block,
              "variants.inc: the neon_bf16 row packs one q register per gate");

void bf16_gemm_panels__neon_bf16(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const uint32_t* pairs,
                                 int64_t panel_width, const float* init, float* C, int64_t ldc, uint16_t* a_bf16) {
    (void)panel_width;  // gate panels only
    neon_bf16::bf16_gemm_panels<6>(M, N, K, A, lda, pairs, init, C, ldc, a_bf16);
}

void bf16_lstm_step__neon_bf16(const LstmStepArgs& args) { neon_bf16::bf16_lstm_step<6, 24>(args); }

void int8_gemm_panels__neon_bf16(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Int8Panels& B,
                                 int64_t panel_width, const float* init, float* C, int64_t ldc, uint8_t* a_uint8,
                                 float* a_scales) {
    int8_gemm_panels__neon_dotprod(M, N, K, A, lda, B, panel_width, init, C, ldc, a_uint8, a_scales);
}

void int8_lstm_step__neon_bf16(const LstmStepArgs& args) { int8_lstm_step__neon_dotprod(args); }

}  // namespace fastlstm
