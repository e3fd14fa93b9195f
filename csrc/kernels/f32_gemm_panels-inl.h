// Panel GEMM (see kernels.h for the contract), written once over the Simd interface and compiled per ISA.
// Include after f32_activations-inl.h (which opens the ISA namespace's V).
//
// Register tile: kRows rows of A times kPanels panels of kVectors vectors each, all accumulators in registers.
// Each A element is broadcast once per tile and each weight vector loaded once per tile and k.
// Rows are processed in blocks of kRowBlock so that the block of A stays in L2 while every panel streams past it.

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

template <int kRows, int kPanels, int kVectors>
inline void gemm_tile(int64_t K, const float* A, int64_t lda, const float* panels, int64_t panel_stride,
                      const float* init, float* C, int64_t ldc, int64_t columns) {
    constexpr int64_t kWidth = kVectors * Simd::kLanes;  // columns of one panel
    V acc[kRows][kPanels][kVectors];
    for (int r = 0; r < kRows; ++r)
        for (int p = 0; p < kPanels; ++p)
            for (int v = 0; v < kVectors; ++v)
                acc[r][p][v] = init ? Simd::load(init + p * kWidth + v * Simd::kLanes) : Simd::zero();
    for (int64_t k = 0; k < K; ++k) {
        V a[kRows];
        for (int r = 0; r < kRows; ++r) a[r] = Simd::set1(A[r * lda + k]);
        for (int p = 0; p < kPanels; ++p)
            for (int v = 0; v < kVectors; ++v) {
                const V w = Simd::load(panels + p * panel_stride + k * kWidth + v * Simd::kLanes);
                for (int r = 0; r < kRows; ++r) acc[r][p][v] = Simd::fmadd(a[r], w, acc[r][p][v]);
            }
    }
    // Store the first `columns` columns of the tile (all of them but at the right edge of C).
    for (int r = 0; r < kRows; ++r)
        for (int p = 0; p < kPanels; ++p)
            for (int v = 0; v < kVectors; ++v) {
                const int64_t column = p * kWidth + v * Simd::kLanes;
                float* dst = C + r * ldc + column;
                if (column + Simd::kLanes <= columns)
                    Simd::store(dst, acc[r][p][v]);
                else if (column < columns)
                    Simd::store_first(dst, acc[r][p][v], columns - column);
            }
}

// Rows [0, M) x panels [p, p + kPanels): full tiles of kMaxRows rows, then one tile of the remaining rows.
template <int kMaxRows, int kPanels, int kVectors>
inline void gemm_rows(int64_t M, int64_t K, const float* A, int64_t lda, const float* panels, int64_t panel_stride,
                      const float* init, float* C, int64_t ldc, int64_t columns) {
    int64_t m = 0;
    for (; m + kMaxRows <= M; m += kMaxRows)
        gemm_tile<kMaxRows, kPanels, kVectors>(K, A + m * lda, lda, panels, panel_stride, init, C + m * ldc, ldc,
                                               columns);
    const int64_t rest = M - m;
    if constexpr (kMaxRows > 1) {
        if (rest > 0) {
            const float* a = A + m * lda;
            float* c = C + m * ldc;
            // The remainder has 1 .. kMaxRows-1 rows; dispatch to a tile of exactly that height.
            if (rest == 1) gemm_tile<1, kPanels, kVectors>(K, a, lda, panels, panel_stride, init, c, ldc, columns);
            if constexpr (kMaxRows > 2)
                if (rest == 2) gemm_tile<2, kPanels, kVectors>(K, a, lda, panels, panel_stride, init, c, ldc, columns);
            if constexpr (kMaxRows > 3)
                if (rest == 3) gemm_tile<3, kPanels, kVectors>(K, a, lda, panels, panel_stride, init, c, ldc, columns);
            if constexpr (kMaxRows > 4)
                if (rest == 4) gemm_tile<4, kPanels, kVectors>(K, a, lda, panels, panel_stride, init, c, ldc, columns);
            if constexpr (kMaxRows > 5)
                if (rest == 5) gemm_tile<5, kPanels, kVectors>(K, a, lda, panels, panel_stride, init, c, ldc, columns);
        }
    }
}

// kVectors vectors per panel; kPanels panels per tile. Gate panels: kVectors = 4, kPanels = 1. Projection panels
// (one vector wide): kVectors = 1, kPanels = 4, so a tile still holds 4 vectors of columns per row.
template <int kMaxRows, int kPanels, int kVectors>
inline void gemm_panels(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* panels,
                        const float* init, float* C, int64_t ldc) {
    constexpr int64_t kWidth = kVectors * Simd::kLanes;
    constexpr int64_t kRowBlock = 256;
    const int64_t num_panels = (N + kWidth - 1) / kWidth;
    const int64_t panel_stride = K * kWidth;
    for (int64_t m0 = 0; m0 < M; m0 += kRowBlock) {
        const int64_t rows = M - m0 < kRowBlock ? M - m0 : kRowBlock;
        const float* a = A + m0 * lda;
        float* c = C + m0 * ldc;
        int64_t p = 0;
        for (; p + kPanels <= num_panels; p += kPanels)
            gemm_rows<kMaxRows, kPanels, kVectors>(rows, K, a, lda, panels + p * panel_stride, panel_stride,
                                                   init ? init + p * kWidth : nullptr, c + p * kWidth, ldc,
                                                   N - p * kWidth);
        for (; p < num_panels; ++p)
            gemm_rows<kMaxRows, 1, kVectors>(rows, K, a, lda, panels + p * panel_stride, panel_stride,
                                             init ? init + p * kWidth : nullptr, c + p * kWidth, ldc,
                                             N - p * kWidth);
    }
}

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
