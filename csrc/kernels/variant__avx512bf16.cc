// The avx512bf16 variant (variants.inc): its bf16 and int8 kernels, the *-inl.h bodies over AVX512-BF16 dot
// products (vdpbf16ps: 16 lanes, each adding two bf16 products per instruction) and AVX512-VNNI ones (vpdpbusd: four
// byte products per lane), compiled with -mavx512bf16 -mavx512vnni (this file only). Its f32 kernels are those of
// avx512 (the table names them). An operand and a weight vector take one register each, as in f32, so the tiles
// are those of variant__avx512.cc: up to 24 accumulators.
#include "simd__avx512.h"
#include "variants.h"

// The bodies in this order, which fixes GCC's register and spill choices in the step kernels: keep it (and keep
// clang-format from sorting it).
// clang-format off
#define FASTLSTM_ISA_NAMESPACE avx512bf16
#include "f32_activations-inl.h"
#include "lstm_step-inl.h"
#include "gemm_panels-inl.h"
#include "lstm_step_look_ahead-inl.h"
// clang-format on

namespace fastlstm {

static_assert(avx512bf16::Simd::kLanes == kVariant_avx512bf16.hidden_block,
              "variants.inc: the avx512bf16 row packs one zmm per gate");

void bf16_gemm_panels__avx512bf16(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const uint32_t* pairs,
                                  int64_t panel_width, const float* init, float* C, int64_t ldc, uint16_t* a_bf16) {
    (void)panel_width;  // gate panels only
    avx512bf16::bf16_gemm_panels<6>(M, N, K, A, lda, pairs, init, C, ldc, a_bf16);
}

void bf16_lstm_step__avx512bf16(const LstmStepArgs& args) { avx512bf16::bf16_lstm_step<6, 24>(args); }

// Batch 1 in bf16 with the next steps' input projection interleaved, in slots of 2 panels.
void bf16_lstm_step_look_ahead__avx512bf16(const LstmStepArgs& args, const LookAheadProjection& ahead) {
    avx512bf16::bf16_lstm_step_look_ahead<2>(args, ahead);
}

void int8_gemm_panels__avx512bf16(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Int8Panels& B,
                                  int64_t panel_width, const float* init, float* C, int64_t ldc, uint8_t* a_uint8,
                                  float* a_scales) {
    (void)panel_width;  // gate panels only
    avx512bf16::int8_gemm_panels<6>(M, N, K, A, lda, B, init, C, ldc, a_uint8, a_scales);
}

void int8_lstm_step__avx512bf16(const LstmStepArgs& args) { avx512bf16::int8_lstm_step<6, 24>(args); }

}  // namespace fastlstm
