// The neon variant (variants.inc): every kernel family of the table, the *-inl.h bodies over aarch64 ASIMD (4 float
// lanes, fused multiply-add), the aarch64 baseline: no instruction-set flag. hidden_block 4: one q register per gate
// per panel. 32 vector registers, as AVX-512 has, so the tiles are avx512's: up to 24 accumulators.
// clang-format off
#define FASTLSTM_ISA_NAMESPACE neon
#include "simd__neon.h"
#include "variants.h"

namespace fastlstm::neon {
using Simd = Neon;
}

#include "f32_activations-inl.h"
#include "calibration-inl.h"
#include "lstm_step-inl.h"
#include "gemm_panels-inl.h"
#include "lstm_step_look_ahead-inl.h"
#include "f32_softmax-inl.h"
// clang-format on

namespace fastlstm {

static_assert(neon::Simd::kLanes == kVariant_neon.hidden_block,
              "variants.inc: the neon row packs one q register per gate");
static_assert(neon::F32Product::kGateHalves == kVariant_neon.gate_halves,
              "variants.inc: the neon row's gate halves are the layout its tiles read");

// fp32: 6 rows x 4 vectors = 24 accumulators, 6 broadcast operands and the weight vector(s): 31 of 32 registers.
void f32_gemm_panels__neon(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* panels,
                           int64_t panel_width, const float* init, float* C, int64_t ldc) {
    if (panel_width == 4 * neon::Simd::kLanes)  // gate panels: 6 rows x 4 vectors
        neon::gemm_panels<6, 1, 4>(M, N, K, A, lda, panels, init, C, ldc);
    else  // projection panels, one vector wide: 6 rows x 4 panels
        neon::gemm_panels<6, 4, 1>(M, N, K, A, lda, panels, init, C, ldc);
}

// The step's tiles are 5 rows high, not avx512's 6: an operand takes a register here (FMLA by element), where AVX-512
// reads it from memory, and 24 accumulators + 6 operands + 4 weight vectors would not fit (GCC 12 reloaded a weight
// vector from the stack in every depth step; tools/loop_mix.py).
void f32_lstm_step__neon(const LstmStepArgs& args) { neon::lstm_step<5, 20>(args); }

// bf16 by widening each weight pair to two float32 vectors (two FMLA per pair): a weight vector and an operand take
// two registers each, so tiles are 4 rows high (16 accumulators, 8 operand and 2 weight registers).
void bf16_gemm_panels__neon(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const uint32_t* pairs,
                            int64_t panel_width, const float* init, float* C, int64_t ldc, uint16_t* a_bf16) {
    (void)panel_width;  // gate panels only
    neon::bf16_gemm_panels<4>(M, N, K, A, lda, pairs, init, C, ldc, a_bf16);
}

void bf16_lstm_step__neon(const LstmStepArgs& args) { neon::bf16_lstm_step<4, 16>(args); }

// int8 by exact widening in 32-bit lanes (no byte dot product in the baseline): an operand takes four registers.
void int8_gemm_panels__neon(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Int8Panels& B,
                            int64_t panel_width, const float* init, float* C, int64_t ldc, uint8_t* a_uint8,
                            float* a_scales) {
    (void)panel_width;  // gate panels only
    neon::int8_gemm_panels<2>(M, N, K, A, lda, B, init, C, ldc, a_uint8, a_scales);
}

void int8_lstm_step__neon(const LstmStepArgs& args) { neon::int8_lstm_step<2, 8>(args); }

// Batches 1 and 2 with the next steps' input projection interleaved: batch 1 in slots of 2 panels (8 recurrent + 8
// look-ahead accumulators), batch 2 in slots of 1 panel (8 + 8).
void f32_lstm_step_look_ahead__neon(const LstmStepArgs& args, const LookAheadProjection& ahead) {
    neon::lstm_step_look_ahead<2, kVariant_neon.look_ahead_batches>(args, ahead);
}

void f32_sigmoid__neon(int64_t n, const float* x, float* y) { neon::sigmoid_array(n, x, y); }

void f32_tanh__neon(int64_t n, const float* x, float* y) { neon::tanh_array(n, x, y); }

void f32_softmax_rows__neon(int64_t rows, int64_t columns, float* x, int64_t stride) {
    neon::softmax_rows(rows, columns, x, stride);
}

int64_t f32_fma_peak__neon(int64_t iterations, float* sink) { return neon::fma_peak_loop(iterations, sink); }

float f32_read_sum__neon(const float* data, int64_t n) { return neon::read_sum(data, n); }

// In the look-ahead kernel's slots of 2 panels (f32_lstm_step_look_ahead__neon).
float f32_look_ahead_loop__neon(const float* recurrent, const float* inputs, const float* h, const float* x,
                                int64_t panels, int64_t recurrent_k, int64_t input_k, int64_t steps) {
    return neon::look_ahead_loop<2>(recurrent, inputs, h, x, panels, recurrent_k, input_k, steps);
}

}  // namespace fastlstm
