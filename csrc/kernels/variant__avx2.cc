// The avx2 variant (variants.inc): every kernel family of the table, the *-inl.h bodies compiled with -mavx2 -mfma
// (this file only). hidden_block 8: one ymm per gate per panel. Tiles use at most 12 of the 16 vector registers for
// accumulators: a full tile 3 rows of 4 gates, a half tile 6 rows of 2 (lstm_step_half_tiles-inl.h).
#include "simd__avx2.h"
#include "variants.h"

// The bodies in this order, which fixes GCC's register and spill choices in the step kernels: keep it (and keep
// clang-format from sorting it).
// clang-format off
#define FASTLSTM_ISA_NAMESPACE avx2
#include "f32_activations-inl.h"
#include "calibration-inl.h"
#include "lstm_step-inl.h"
#include "gemm_panels-inl.h"
#include "f32_softmax-inl.h"
// clang-format on

namespace fastlstm {

static_assert(avx2::Simd::kLanes == kVariant_avx2.hidden_block, "variants.inc: the avx2 row packs one ymm per gate");
static_assert(avx2::F32Product::kGateHalves == kVariant_avx2.gate_halves,
              "variants.inc: the avx2 row's gate halves are the layout its half tiles read");

void f32_gemm_panels__avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* panels,
                           int64_t panel_width, const float* init, float* C, int64_t ldc) {
    if (panel_width == 4 * avx2::Simd::kLanes)  // gate panels: 3 rows x 4 vectors
        avx2::gemm_panels<3, 1, 4>(M, N, K, A, lda, panels, init, C, ldc);
    else  // projection panels, one vector wide: 3 rows x 4 panels
        avx2::gemm_panels<3, 4, 1>(M, N, K, A, lda, panels, init, C, ldc);
}

// Full tiles of up to 3 rows; blocks of 4 to 6 rows take half tiles (Simd::kHalfTileMaxRows, over the gate halves
// of this row of variants.inc). Against full tiles over interleaved panels, B/A of 9 paired rounds on the Zen 3
// (`python tools/ab_compare.py A B --shapes 5x100x123x250-L1,... --steps 256x256 --ticks 64x80x256`), 1 / 2 threads:
// B = 5, I = 123, H = 250: 0.873 / 0.879; B = 8, I = H = 512: 0.885 / 0.897; B = 17, H = 300: 0.934 / 0.936;
// B = 13, H = 333: 0.950 / 0.954; B = 24, H = 513: 0.955 / 0.969; B = 7, H = 65: 0.974 / 0.959; B = 32, H = 191:
// 0.976 / 0.979; B = 64, H = 256: 0.974 / 0.977; a tick of 64 sessions at 80x256: 0.981 / 0.969. Batch 1 (tiles of
// one panel over halves: lstm_step-inl.h, panels_per_tile), 15 and 21 rounds: 0.98-1.04 at I = H = 128-1024, 1 and 2
// threads, 2 layers and bidirectional, and steps from a state at 256x256 and 256x1024.
void f32_lstm_step__avx2(const LstmStepArgs& args) { avx2::lstm_step<3, 12>(args); }

// Precision bf16 by widening each weight pair to two float32 vectors: a weight vector and an operand take two
// registers each, so tiles are 2 rows high (8 accumulators, 4 operand and 2 weight registers of the 16).
void bf16_gemm_panels__avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const uint32_t* pairs,
                            int64_t panel_width, const float* init, float* C, int64_t ldc, uint16_t* a_bf16) {
    (void)panel_width;  // gate panels only
    avx2::bf16_gemm_panels<2>(M, N, K, A, lda, pairs, init, C, ldc, a_bf16);
}

void bf16_lstm_step__avx2(const LstmStepArgs& args) { avx2::bf16_lstm_step<2, 8>(args); }

// Precision int8 by exact emulation in 32-bit lanes (no byte dot product here): an operand takes four registers,
// so the tiles are lower than bf16's.
void int8_gemm_panels__avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Int8Panels& B,
                            int64_t panel_width, const float* init, float* C, int64_t ldc, uint8_t* a_uint8,
                            float* a_scales) {
    (void)panel_width;  // gate panels only
    avx2::int8_gemm_panels<1>(M, N, K, A, lda, B, init, C, ldc, a_uint8, a_scales);
}

void int8_lstm_step__avx2(const LstmStepArgs& args) { avx2::int8_lstm_step<1, 8>(args); }

void f32_sigmoid__avx2(int64_t n, const float* x, float* y) { avx2::sigmoid_array(n, x, y); }

void f32_tanh__avx2(int64_t n, const float* x, float* y) { avx2::tanh_array(n, x, y); }

void f32_softmax_rows__avx2(int64_t rows, int64_t columns, float* x, int64_t stride) {
    avx2::softmax_rows(rows, columns, x, stride);
}

int64_t f32_fma_peak__avx2(int64_t iterations, float* sink) { return avx2::fma_peak_loop(iterations, sink); }

float f32_read_sum__avx2(const float* data, int64_t n) { return avx2::read_sum(data, n); }

}  // namespace fastlstm
