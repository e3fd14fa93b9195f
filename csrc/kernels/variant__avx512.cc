// The avx512 variant (variants.inc): every kernel family of the table, the *-inl.h bodies compiled with -mavx512f
// (this file only). hidden_block 16: one zmm per gate per panel. Tiles use at most 24 of the 32 vector registers for
// accumulators.
#include "simd__avx512.h"
#include "variants.h"

// The bodies in this order, which fixes GCC's register and spill choices in the step kernels: keep it (and keep
// clang-format from sorting it).
// clang-format off
#define FASTLSTM_ISA_NAMESPACE avx512
#include "f32_activations-inl.h"
#include "calibration-inl.h"
#include "lstm_step-inl.h"
#include "gemm_panels-inl.h"
#include "lstm_step_look_ahead-inl.h"
#include "f32_softmax-inl.h"
// clang-format on

namespace fastlstm {

static_assert(avx512::Simd::kLanes == kVariant_avx512.hidden_block,
              "variants.inc: the avx512 row packs one zmm per gate");
static_assert(avx512::F32Product::kGateHalves == kVariant_avx512.gate_halves,
              "variants.inc: the avx512 row's gate halves are the layout its tiles read");

void f32_gemm_panels__avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* panels,
                             int64_t panel_width, const float* init, float* C, int64_t ldc) {
    if (panel_width == 4 * avx512::Simd::kLanes)  // gate panels: 6 rows x 4 vectors
        avx512::gemm_panels<6, 1, 4>(M, N, K, A, lda, panels, init, C, ldc);
    else  // projection panels, one vector wide: 6 rows x 4 panels
        avx512::gemm_panels<6, 4, 1>(M, N, K, A, lda, panels, init, C, ldc);
}

void f32_lstm_step__avx512(const LstmStepArgs& args) { avx512::lstm_step<6, 24>(args); }

// Precision bf16 by widening each weight pair to two float32 vectors (AVX-512F has no bf16 arithmetic): a weight
// vector and an operand take two registers each, so tiles are 4 rows high (16 accumulators, 8 operand and 2 weight
// registers of the 32).
void bf16_gemm_panels__avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const uint32_t* pairs,
                              int64_t panel_width, const float* init, float* C, int64_t ldc, uint16_t* a_bf16) {
    (void)panel_width;  // gate panels only
    avx512::bf16_gemm_panels<4>(M, N, K, A, lda, pairs, init, C, ldc, a_bf16);
}

void bf16_lstm_step__avx512(const LstmStepArgs& args) { avx512::bf16_lstm_step<4, 16>(args); }

// Precision int8 by exact emulation in 32-bit lanes (no byte dot product here): an operand takes four registers,
// so the tiles are lower than bf16's.
void int8_gemm_panels__avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Int8Panels& B,
                              int64_t panel_width, const float* init, float* C, int64_t ldc, uint8_t* a_uint8,
                              float* a_scales) {
    (void)panel_width;  // gate panels only
    avx512::int8_gemm_panels<2>(M, N, K, A, lda, B, init, C, ldc, a_uint8, a_scales);
}

void int8_lstm_step__avx512(const LstmStepArgs& args) { avx512::int8_lstm_step<2, 8>(args); }

// Batches 1 and 2 with the next steps' input projection interleaved: batch 1 in slots of 2 panels (8 recurrent + 8
// look-ahead accumulators), batch 2 in slots of 1 panel (8 + 8).
void f32_lstm_step_look_ahead__avx512(const LstmStepArgs& args, const LookAheadProjection& ahead) {
    avx512::lstm_step_look_ahead<2, kVariant_avx512.look_ahead_batches>(args, ahead);
}

void f32_sigmoid__avx512(int64_t n, const float* x, float* y) { avx512::sigmoid_array(n, x, y); }

void f32_tanh__avx512(int64_t n, const float* x, float* y) { avx512::tanh_array(n, x, y); }

void f32_softmax_rows__avx512(int64_t rows, int64_t columns, float* x, int64_t stride) {
    avx512::softmax_rows(rows, columns, x, stride);
}

int64_t f32_fma_peak__avx512(int64_t iterations, float* sink) { return avx512::fma_peak_loop(iterations, sink); }

float f32_read_sum__avx512(const float* data, int64_t n) { return avx512::read_sum(data, n); }

// In the look-ahead kernel's slots of 2 panels (f32_lstm_step_look_ahead__avx512).
float f32_look_ahead_loop__avx512(const float* recurrent, const float* inputs, const float* h, const float* x,
                                  int64_t panels, int64_t recurrent_k, int64_t input_k, int64_t steps) {
    return avx512::look_ahead_loop<2>(recurrent, inputs, h, x, panels, recurrent_k, input_k, steps);
}

}  // namespace fastlstm
