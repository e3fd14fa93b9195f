// Declarations of every kernel variant, expanded from the table variants.inc: the entry files define them
// (variant__<isa>.cc and the *__portable.cc files) and dispatch.cc lists them in its KernelSet table. Private to the
// core's sources; callers reach the kernels through a KernelSet (fastlstm/dispatch.h).
#pragma once

#include <cstdint>

#include "fastlstm/kernels.h"

namespace fastlstm {

// The look-ahead kernels, which the table names in full (a variant may have none).
void f32_lstm_step_look_ahead__portable(const LstmStepArgs&, const LookAheadProjection&);
void f32_lstm_step_look_ahead__avx512(const LstmStepArgs&, const LookAheadProjection&);
void f32_lstm_step_look_ahead__neon(const LstmStepArgs&, const LookAheadProjection&);
float f32_look_ahead_loop__portable(const float*, const float*, const float*, const float*, int64_t, int64_t, int64_t,
                                    int64_t);
float f32_look_ahead_loop__avx512(const float*, const float*, const float*, const float*, int64_t, int64_t, int64_t,
                                  int64_t);
float f32_look_ahead_loop__neon(const float*, const float*, const float*, const float*, int64_t, int64_t, int64_t,
                                int64_t);
void bf16_lstm_step_look_ahead__portable(const LstmStepArgs&, const LookAheadProjection&);
void bf16_lstm_step_look_ahead__avx512bf16(const LstmStepArgs&, const LookAheadProjection&);
#define FASTLSTM_KERNEL_VARIANT(isa, hidden_block, gate_halves, look_ahead_batches, suffix, bf16_suffix,               \
                                f32_look_ahead, f32_look_ahead_loop, bf16_look_ahead, cpu_check)                       \
    void int8_gemm_panels__##bf16_suffix(int64_t, int64_t, int64_t, const float*, int64_t, const Int8Panels&, int64_t, \
                                         const float*, float*, int64_t, uint8_t*, float*);                             \
    void int8_lstm_step__##bf16_suffix(const LstmStepArgs&);                                                           \
    void bf16_gemm_panels__##bf16_suffix(int64_t, int64_t, int64_t, const float*, int64_t, const uint32_t*, int64_t,   \
                                         const float*, float*, int64_t, uint16_t*);                                    \
    void bf16_lstm_step__##bf16_suffix(const LstmStepArgs&);                                                           \
    void f32_gemm_panels__##suffix(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t,            \
                                   const float*, float*, int64_t);                                                     \
    void f32_lstm_step__##suffix(const LstmStepArgs&);                                                                 \
    void f32_sigmoid__##suffix(int64_t, const float*, float*);                                                         \
    void f32_tanh__##suffix(int64_t, const float*, float*);                                                            \
    void f32_softmax_rows__##suffix(int64_t, int64_t, float*, int64_t);                                                \
    int64_t f32_fma_peak__##suffix(int64_t, float*);                                                                   \
    float f32_read_sum__##suffix(const float*, int64_t);
#include "variants.inc"
#undef FASTLSTM_KERNEL_VARIANT

// Each variant's row of the table as constants, for static_asserts where a kernel fixes them at compile time:
// kVariant_<isa>.hidden_block, .gate_halves and .look_ahead_batches.
struct VariantConstants {
    int64_t hidden_block;
    bool gate_halves;
    int64_t look_ahead_batches;
};
#define FASTLSTM_KERNEL_VARIANT(isa, hidden_block, gate_halves, look_ahead_batches, suffix, bf16_suffix, \
                                f32_look_ahead, f32_look_ahead_loop, bf16_look_ahead, cpu_check)         \
    constexpr VariantConstants kVariant_##isa{hidden_block, gate_halves, look_ahead_batches};
#include "variants.inc"
#undef FASTLSTM_KERNEL_VARIANT

}  // namespace fastlstm
