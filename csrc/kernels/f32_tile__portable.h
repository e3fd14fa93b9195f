// The float32 multiply-add tile of the portable panel GEMM and step: up to 3 rows of A times 16 columns of a panel
// (one row: 32 columns), the sums held in registers for the whole depth.
//
// Why a tile of its own: the natural loop nest (each row of a block against all 32 columns of a gate panel) holds
// 4 x 32 sums, twice the 16 vector registers of x86-64's baseline SSE2, so GCC keeps them on the stack and every
// multiply-add becomes a load, a multiply, an add and a store. 3 rows x 16 columns take 12 registers for the sums,
// 1 for the broadcast value of A and 1 for a product: the loop is then 12 multiplies, 12 adds, 3 broadcasts and
// 7 loads per depth step, nothing on the stack (GCC 12, -O3, baseline x86-64). The same tile suits NEON's 32
// registers, where the portable variant runs only when forced.
//
// Each element is summed exactly as the loop nest sums it: from its initial value, k ascending, a multiply then an
// add (the core builds with -ffp-contract=off), so the results are those of the loop nest, bitwise.
#pragma once

#include <cstdint>
#include <cstring>

namespace fastlstm {
namespace portable {

constexpr int64_t kTileRows = 3;
// A single row takes a whole gate panel (8 registers of sums): at batch 1 the weights stream from memory or L3, and
// strips of 16 columns would read each panel's 128-byte rows as two interleaved streams of 64 bytes (up to 1.45x
// slower at H = 1024, tools/ab_compare.py).
constexpr int64_t kTileColumns = 16, kSingleRowColumns = 32;

// The columns of a strip for a block of kRows rows.
template <int64_t kRows>
constexpr int64_t tile_columns() {
    return kRows == 1 ? kSingleRowColumns : kTileColumns;
}

#if defined(__GNUC__)  // GCC and Clang: their vector extensions, which map onto SSE2's and NEON's 4 float lanes

typedef float Float4 __attribute__((vector_size(16)));

inline Float4 load_float4(const float* p) {
    Float4 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

inline void store_float4(float* p, Float4 v) { std::memcpy(p, &v, sizeof v); }

// sums[r * sums_stride + j] += sum over k in [0, depth) of A[r * a_stride + k] * w[k * w_stride + j], k ascending,
// for r < kRows (at most kTileRows) and j < kColumns (a multiple of 4, at most tile_columns<kRows>()).
template <int64_t kRows, int64_t kColumns>
inline void f32_tile_accumulate(int64_t depth, const float* A, int64_t a_stride, const float* w, int64_t w_stride,
                                float* sums, int64_t sums_stride) {
    static_assert(kRows >= 1 && kRows <= kTileRows && kColumns % 4 == 0 && kColumns <= tile_columns<kRows>(),
                  "tile shape");
    constexpr int64_t kVectors = kColumns / 4;
    Float4 acc[kRows][kVectors];
    for (int64_t r = 0; r < kRows; ++r)
        for (int64_t v = 0; v < kVectors; ++v) acc[r][v] = load_float4(sums + r * sums_stride + 4 * v);
    for (int64_t k = 0; k < depth; ++k) {
        const float* w_k = w + k * w_stride;
        for (int64_t r = 0; r < kRows; ++r) {
            const float a = A[r * a_stride + k];
            const Float4 spread = {a, a, a, a};
            for (int64_t v = 0; v < kVectors; ++v) acc[r][v] += spread * load_float4(w_k + 4 * v);
        }
    }
    for (int64_t r = 0; r < kRows; ++r)
        for (int64_t v = 0; v < kVectors; ++v) store_float4(sums + r * sums_stride + 4 * v, acc[r][v]);
}

#else  // other compilers (MSVC): the same sums as a plain loop nest, vectorized as the compiler can

template <int64_t kRows, int64_t kColumns>
inline void f32_tile_accumulate(int64_t depth, const float* A, int64_t a_stride, const float* w, int64_t w_stride,
                                float* sums, int64_t sums_stride) {
    static_assert(kRows >= 1 && kRows <= kTileRows && kColumns % 4 == 0 && kColumns <= tile_columns<kRows>(),
                  "tile shape");
    float acc[kRows][kColumns];
    for (int64_t r = 0; r < kRows; ++r)
        for (int64_t j = 0; j < kColumns; ++j) acc[r][j] = sums[r * sums_stride + j];
    for (int64_t k = 0; k < depth; ++k)
        for (int64_t r = 0; r < kRows; ++r) {
            const float a = A[r * a_stride + k];
            for (int64_t j = 0; j < kColumns; ++j) acc[r][j] += a * w[k * w_stride + j];
        }
    for (int64_t r = 0; r < kRows; ++r)
        for (int64_t j = 0; j < kColumns; ++j) sums[r * sums_stride + j] = acc[r][j];
}

#endif

// The panel of kWidth columns (a multiple of 4) in strips of at most tile_columns<kRows>(): sums += A . panel.
template <int64_t kRows, int64_t kWidth>
inline void f32_panel_accumulate(int64_t depth, const float* A, int64_t a_stride, const float* panel, float* sums,
                                 int64_t sums_stride) {
    constexpr int64_t kStrip = kWidth < tile_columns<kRows>() ? kWidth : tile_columns<kRows>();
    static_assert(kWidth % kStrip == 0, "panel width: whole strips");
    for (int64_t j0 = 0; j0 < kWidth; j0 += kStrip)
        f32_tile_accumulate<kRows, kStrip>(depth, A, a_stride, panel + j0, kWidth, sums + j0, sums_stride);
}

}  // namespace portable
}  // namespace fastlstm
