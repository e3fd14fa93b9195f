// The neon_dotprod variant (variants.inc): its int8 kernels, the *-inl.h bodies over SDOT (simd__neon_dotprod.h),
// compiled with -march=armv8.2-a+dotprod (this file only). Its f32 kernels are neon's (the table names them), and
// so are its bf16 kernels (called from here: the table gives bf16 and int8 one suffix). An operand and a weight
// vector take one register each, as in f32, so the tiles are f32's: up to 24 accumulators.
// clang-format off
#define FASTLSTM_ISA_NAMESPACE neon_dotprod
#include "simd__neon_dotprod.h"
#include "variants.h"

namespace fastlstm::neon_dotprod {
using Simd = NeonDotprod;
}

#include "f32_activations-inl.h"
#include "lstm_step-inl.h"
#include "gemm_panels-inl.h"
// clang-format on

namespace fastlstm {

static_assert(neon_dotprod::Simd::kLanes == kVariant_neon_dotprod.hidden_block,
              "variants.inc: the neon_dotprod row packs one q register per gate");

void int8_gemm_panels__neon_dotprod(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Int8Panels& B,
                                    int64_t panel_width, const float* init, float* C, int64_t ldc, uint8_t* a_uint8,
                                    float* a_scales) {
    (void)panel_width;  // gate panels only
    neon_dotprod::int8_gemm_panels<6>(M, N, K, A, lda, B, init, C, ldc, a_uint8, a_scales);
}

void int8_lstm_step__neon_dotprod(const LstmStepArgs& args) { neon_dotprod::int8_lstm_step<6, 24>(args); }

void bf16_gemm_panels__neon_dotprod(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const uint32_t* pairs,
                                    int64_t panel_width, const float* init, float* C, int64_t ldc, uint16_t* a_bf16) {
    bf16_gemm_panels__neon(M, N, K, A, lda, pairs, panel_width, init, C, ldc, a_bf16);
}

void bf16_lstm_step__neon_dotprod(const LstmStepArgs& args) { bf16_lstm_step__neon(args); }

}  // namespace fastlstm
