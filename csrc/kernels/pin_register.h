// FASTLSTM_PIN_REGISTER(v, "x" or "v"): an empty assembly statement that claims to change v in a vector register.
// The compiler must then keep v in that register and can no longer fold its load into every instruction that
// uses it (simd__avx2.h, simd__avx512.h say where that matters). It emits no instruction.
#pragma once

#if defined(_MSC_VER) && !defined(__clang__)
// MSVC has no x64 inline assembly: v stays as the compiler places it (correct, possibly slower).
#define FASTLSTM_PIN_REGISTER(v, constraint) ((void)(v))
#else
#define FASTLSTM_PIN_REGISTER(v, constraint) asm("" : "+" constraint(v))
#endif
