// The fused LSTM step (see kernels.h for the contract), written once over the Simd interface and compiled per ISA,
// in precision f32 (weights and h_{t-1} float32), bf16 (pair panels, h_{t-1} rounded to bf16) and int8 (quad
// panels, h_{t-1} quantized). hidden_block = Simd::kLanes: one vector per gate per panel.
// Compiled through a variant's entry file (variant__<isa>.cc), which includes that ISA's simd__<isa>.h and
// defines FASTLSTM_ISA_NAMESPACE, the namespace of everything below.
//
// Register tile: kRows batch rows x kPanels panels x 4 gates. The accumulators start from the precomputed input
// part (bias included), take h_prev . W_hh one depth step at a time (a single chain per element, so the summation
// order does not depend on the tile shape, the batch size or the thread split), and go straight through the
// activations into c and h.

#pragma once

#ifndef FASTLSTM_ISA_NAMESPACE
#error "compile this header through a variant's entry file (variant__<isa>.cc), which defines FASTLSTM_ISA_NAMESPACE"
#endif

#include <cstdint>
#include <type_traits>

#include "lstm_cell_finish-inl.h"
#include "fastlstm/bf16.h"
#include "fastlstm/int8.h"
#include "fastlstm/kernels.h"

#if defined(_MSC_VER) && !defined(__clang__)
#define FASTLSTM_NOINLINE __declspec(noinline)
#else
#define FASTLSTM_NOINLINE __attribute__((noinline))
#endif

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

// A product's accumulators (the "Product" structs below): `Accumulator` vectors start from start(init) (init: the
// precomputed input part, the bias, or null for zeros) and end as floats through finish(acc, init, row, column),
// column counted over the whole layer's panels. f32 and bf16 accumulate in float32 straight from init; int8
// accumulates integers and adds init when it scales them back.
struct FloatAccumulation {
    using Accumulator = V;
    static V start(const float* init) { return init ? Simd::load(init) : Simd::zero(); }
    static V finish(V acc, const float*, int64_t, int64_t) { return acc; }
};

// The operands of the recurrent product in precision f32: one depth step is one k, h[k] broadcast times a vector of
// weights. The same struct describes the input projection's operands (gemm_panels-inl.h).
struct F32Product : FloatAccumulation {
    using Weight = float;
    using Operand = float;
    static constexpr bool kGateHalves = Simd::kHalfTileMaxRows > 0;  // gate panels in halves (kernels.h)
    const float* panels;                                             // gate panels (kernels.h)
    const float* rows;                                               // h_prev (or A): row r at rows + r * row_stride
    int64_t row_stride;
    int64_t depth;  // K

    V operand(int64_t row, int64_t k) const { return Simd::set1(rows[row * row_stride + k]); }
    F32Product from_row(int64_t m) const { return {{}, panels, rows + m * row_stride, row_stride, depth}; }
    static V load(const float* w) { return Simd::load(w); }
    static V pinned(V w) { return Simd::pinned(w); }
    static V madd(V acc, V w, V h) { return Simd::fmadd(h, w, acc); }
};

// Precision bf16: one depth step is a pair of k, (h[2j], h[2j+1]) times a vector of weight pairs.
struct BF16PairProduct : FloatAccumulation {
    using Weight = uint32_t;
    using Operand = uint16_t;
    static constexpr bool kGateHalves = false;  // pair panels are interleaved
    const uint32_t* panels;                     // pair panels (kernels.h)
    const uint16_t* rows;                       // rows of bf16 values, K rounded up to even
    int64_t row_stride;
    int64_t depth;  // ceil(K / 2)

    Simd::OperandPair operand(int64_t row, int64_t j) const {
        return Simd::broadcast_pair(rows + row * row_stride + 2 * j);
    }
    BF16PairProduct from_row(int64_t m) const { return {{}, panels, rows + m * row_stride, row_stride, depth}; }
    static Simd::WeightPairs load(const uint32_t* w) { return Simd::load_pairs(w); }
    static Simd::WeightPairs pinned(Simd::WeightPairs w) { return Simd::pinned(w); }
    static V madd(V acc, const Simd::WeightPairs& w, const Simd::OperandPair& h) { return Simd::dot_pairs(acc, w, h); }
};

// Precision int8: one depth step is a quad of k, four operand bytes (q + 128) times a vector of weight quads, summed
// exactly in 32-bit integers; finish() removes the offset and scales back (kernels.h).
struct Int8QuadProduct {
    using Accumulator = Simd::VI;
    using Weight = uint32_t;
    static constexpr bool kGateHalves = false;  // quad panels are interleaved
    const uint32_t* panels;                     // quad panels
    const uint8_t* rows;                        // rows of q + 128, K rounded up to 4
    int64_t row_stride;
    int64_t depth;               // ceil(K / 4)
    const float* row_scales;     // per row of `rows`
    const float* column_scales;  // per column, from the layer's (or the call's) first column
    const int32_t* column_offsets;

    static Simd::VI start(const float*) { return Simd::zero_int(); }
    V finish(Simd::VI acc, const float* init, int64_t row, int64_t column) const {
        // Centred operands (q, not q + 128: Simd::kCentredQuads) leave no offset to remove.
        Simd::VI sums = acc;
        if constexpr (!Simd::kCentredQuads) sums = Simd::sub_int(acc, Simd::load_int(column_offsets + column));
        const V value = Simd::int_to_float(sums);
        const V scale = Simd::mul(Simd::set1(row_scales[row]), Simd::load(column_scales + column));
        return init ? Simd::fmadd(value, scale, Simd::load(init)) : Simd::mul(value, scale);
    }
    Simd::OperandQuad operand(int64_t row, int64_t j) const {
        return Simd::broadcast_quad(rows + row * row_stride + 4 * j);
    }
    Int8QuadProduct from_row(int64_t m) const {
        Int8QuadProduct moved = *this;
        moved.rows += m * row_stride;
        moved.row_scales += m;
        return moved;
    }
    static Simd::WeightQuads load(const uint32_t* w) { return Simd::load_quads(w); }
    static Simd::WeightQuads pinned(Simd::WeightQuads w) { return Simd::pinned(w); }
    static Simd::VI madd(Simd::VI acc, Simd::WeightQuads w, const Simd::OperandQuad& h) {
        return Simd::dot_quads(acc, w, h);
    }
};

inline F32Product f32_recurrent_product(const LstmStepArgs& a) {
    return {{}, a.recurrent_panels, a.h_prev, a.h_prev_stride, a.recurrent_size};
}

// acc += rows [row, row + kRows) of the product's operands times its panels [panel, panel + kPanels), one depth step
// at a time: one more link of each element's single chain per depth step.
template <int kRows, int kPanels, class Product>
inline void multiply_add_tile(typename Product::Accumulator (&acc)[kRows][kPanels][4], const Product& product,
                              int64_t panel, int64_t row) {
    constexpr int64_t kWidth = 4 * Simd::kLanes;
    const int64_t depth = product.depth;
    const typename Product::Weight* weights = product.panels + panel * depth * kWidth;
    for (int64_t k = 0; k < depth; ++k) {
        decltype(product.operand(0, 0)) h[kRows];
        for (int r = 0; r < kRows; ++r) h[r] = product.operand(row + r, k);
        for (int p = 0; p < kPanels; ++p)
            for (int g = 0; g < 4; ++g) {
                const typename Product::Weight* gate_weights;
                if constexpr (Product::kGateHalves)  // kernels.h: gates i and f for every k, then g and o
                    gate_weights =
                        weights + p * depth * kWidth + (g / 2 * depth + k) * 2 * Simd::kLanes + g % 2 * Simd::kLanes;
                else
                    gate_weights = weights + p * depth * kWidth + k * kWidth + g * Simd::kLanes;
                auto w = Product::load(gate_weights);
                if constexpr (kRows > 1) w = Product::pinned(w);  // loaded once for all rows
                for (int r = 0; r < kRows; ++r) acc[r][p][g] = Product::madd(acc[r][p][g], w, h[r]);
            }
    }
}

template <int kRows, int kPanels, bool kOptions = false, class Product>
inline void lstm_step_tile(const LstmStepArgs& a, const Product& product, int64_t panel, int64_t row) {
    constexpr int64_t L = Simd::kLanes;
    constexpr int64_t kWidth = 4 * L;

    // Null with the input fused (a.x): only the int8 product reads init at its finish, and it never fuses.
    auto gates_in = [&](int r, int p, int g) -> const float* {
        return a.gates_in ? a.gates_in + (row + r) * a.gates_in_stride + (panel + p) * kWidth + g * L : nullptr;
    };
    typename Product::Accumulator acc[kRows][kPanels][4];
    auto start_from_gates_in = [&] {
        for (int r = 0; r < kRows; ++r)
            for (int p = 0; p < kPanels; ++p)
                for (int g = 0; g < 4; ++g) acc[r][p][g] = product.start(gates_in(r, p, g));
    };
    if constexpr (std::is_same_v<Product, F32Product>) {
        if (a.x) {  // kernels.h: from the bias, through x . w_ih, then on through h_prev . w_hh below
            for (int r = 0; r < kRows; ++r)
                for (int p = 0; p < kPanels; ++p)
                    for (int g = 0; g < 4; ++g) acc[r][p][g] = Simd::load(a.bias + (panel + p) * kWidth + g * L);
            multiply_add_tile(acc, F32Product{{}, a.input_panels, a.x, a.x_stride, a.input_size}, panel, row);
        } else {
            start_from_gates_in();
        }
    } else {
        start_from_gates_in();
    }
    multiply_add_tile(acc, product, panel, row);
    if constexpr (Simd::kFinishFromUnrolledCopies) {
        // Copies in fully unrolled loops (simd__neon.h says why); the same values as below.
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 2
            for (int p = 0; p < kPanels; ++p) {
                V z[4];
                for (int g = 0; g < 4; ++g)
                    z[g] = product.finish(acc[r][p][g], gates_in(r, p, g), row + r, (panel + p) * kWidth + g * L);
                if constexpr (kOptions)
                    finish_cells_with_options(a, z, row + r, panel + p);
                else
                    finish_cells(a, z, row + r, panel + p);
            }
        return;
    }
    // A tile of one cell keeps the plain finish below: batch-1 sequences ran 1.02-1.07x slower through
    // finish_cells_together (21 paired rounds, `python tools/ab_compare.py A B`).
    if constexpr (Simd::kFinishCellsTogether && kRows * kPanels > 1 && !kOptions &&
                  std::is_same_v<typename Product::Accumulator, V>) {
        V z[kRows * kPanels][4];
        int64_t rows[kRows * kPanels], panels[kRows * kPanels];
        for (int r = 0; r < kRows; ++r)
            for (int p = 0; p < kPanels; ++p) {
                for (int g = 0; g < 4; ++g) z[r * kPanels + p][g] = acc[r][p][g];
                rows[r * kPanels + p] = row + r;
                panels[r * kPanels + p] = panel + p;
            }
        finish_cells_together(a, z, rows, panels);
        return;
    }
    for (int r = 0; r < kRows; ++r)
        for (int p = 0; p < kPanels; ++p) {
            V finished[4];
            const V* z = finished;
            if constexpr (std::is_same_v<typename Product::Accumulator, V>) {
                // Float sums are the pre-activations already (a copy measured ~2% slower at B = 1:
                // `python -m fastlstm bench --shapes 1x100x256 --threads 1`).
                z = acc[r][p];
            } else {
                for (int g = 0; g < 4; ++g)
                    finished[g] =
                        product.finish(acc[r][p][g], gates_in(r, p, g), row + r, (panel + p) * kWidth + g * L);
            }
            if constexpr (kOptions)
                finish_cells_with_options(a, z, row + r, panel + p);
            else
                finish_cells(a, z, row + r, panel + p);
        }
}

// The finish of a row of the compacted last panel. Not inlined: a dozen more inlined calls of finish_cells (one
// per instantiation of lstm_step_compact_tail) made GCC stop inlining it into the full tiles, 1-2% slower at B = 8
// and 16, H = 128 to 512 (tools/ab_compare.py); one call per row and step here costs nothing measurable.
template <bool kOptions>
FASTLSTM_NOINLINE void finish_compact_tail_row(const LstmStepArgs& a, const V z[4], int64_t row, int64_t panel) {
    if constexpr (kOptions)
        finish_cells_with_options(a, z, row, panel);
    else
        finish_cells(a, z, row, panel);
}

// The layer's last panel from its compacted weights (kernels.h: LstmStepArgs::compact_tail_*), for kRows rows of an
// f32 step, where the ISA can move lanes to the front (Simd::kCompactTailVectors): kVectors = 1 holds the 4 gates of
// up to kLanes / 4 units in one vector, kVectors = 2 those of up to kLanes / 2 units in two, kVectors = 3 those of up
// to 3 kLanes / 4 units in three. So one, two or three multiply-adds per row and k instead of four; each lane carries
// one gate of one unit through the same chain as in lstm_step_tile (the bias and x . w_ih, fused here or summed ahead
// into gates_in, then h_prev . w_hh, k ascending), so the sums are bitwise that tile's. Each gate is then moved to
// the front lanes for the same finish. Not inlined either (see finish_compact_tail_row): one call per row block and
// step.
template <int kRows, int kVectors, bool kOptions, class S>  // S: Simd (only some ISAs move lanes: a parameter)
FASTLSTM_NOINLINE void lstm_step_compact_tail(const LstmStepArgs& a, const F32Product& product, int64_t panel,
                                              int64_t row) {
    constexpr int64_t L = S::kLanes;
    V acc[kRows][kVectors];
    auto multiply_add = [&](const float* weights, const float* rows, int64_t row_stride, int64_t depth) {
        for (int64_t k = 0; k < depth; ++k) {
            V w[kVectors];
            for (int v = 0; v < kVectors; ++v) {
                w[v] = S::load(weights + (k * kVectors + v) * L);
                if constexpr (kRows > 1) w[v] = S::pinned(w[v]);  // loaded once for all rows
            }
            for (int r = 0; r < kRows; ++r) {
                const V h = S::set1(rows[(row + r) * row_stride + k]);
                for (int v = 0; v < kVectors; ++v) acc[r][v] = S::fmadd(h, w[v], acc[r][v]);
            }
        }
    };
    if (a.x) {
        for (int r = 0; r < kRows; ++r)
            for (int v = 0; v < kVectors; ++v) acc[r][v] = S::load(a.compact_tail_bias + v * L);
        multiply_add(a.compact_tail_input, a.x, a.x_stride, a.input_size);
    } else {
        // The panel's gates_in, its gates' units side by side as the weights are (one copy a row and step).
        constexpr int64_t kUnits = kVectors * L / 4;
        for (int r = 0; r < kRows; ++r) {
            const float* gates_in = a.gates_in + (row + r) * a.gates_in_stride + panel * 4 * L;
            alignas(64) float start[kVectors * L];
            for (int64_t g = 0; g < 4; ++g)
                for (int64_t u = 0; u < kUnits; ++u) start[g * kUnits + u] = gates_in[g * L + u];
            for (int v = 0; v < kVectors; ++v) acc[r][v] = S::load(start + v * L);
        }
    }
    multiply_add(a.compact_tail_recurrent, product.rows, product.row_stride, product.depth);
    for (int r = 0; r < kRows; ++r) {
        V z[4];
        if constexpr (kVectors == 1) {
            z[0] = acc[r][0];
            z[1] = S::template quarter_to_front<1>(acc[r][0]);
            z[2] = S::template quarter_to_front<2>(acc[r][0]);
            z[3] = S::template quarter_to_front<3>(acc[r][0]);
        } else if constexpr (kVectors == 2) {
            z[0] = acc[r][0];
            z[1] = S::upper_half_to_front(acc[r][0]);
            z[2] = acc[r][1];
            z[3] = S::upper_half_to_front(acc[r][1]);
        } else {  // gate g from lane 3 g L / 4 of the three vectors side by side
            z[0] = acc[r][0];
            z[1] = S::template lanes_from<3 * L / 4>(acc[r][0], acc[r][1]);
            z[2] = S::template lanes_from<L / 2>(acc[r][1], acc[r][2]);
            z[3] = S::template lanes_from<L / 4>(acc[r][2], acc[r][2]);
        }
        finish_compact_tail_row<kOptions>(a, z, row + r, panel);
    }
}

// A tile of kRows rows over `count` panels from `panel`: kPanels (1, 2 or 4) at a time, then pairs, then one at a time.
template <int kRows, int kPanels, bool kOptions, class Product>
inline void lstm_step_panels(const LstmStepArgs& a, const Product& product, int64_t panel, int64_t count, int64_t row) {
    int64_t p = 0;
    if constexpr (kPanels == 4)
        for (; p + 4 <= count; p += 4) lstm_step_tile<kRows, 4, kOptions>(a, product, panel + p, row);
    if constexpr (kPanels >= 2)
        for (; p + 2 <= count; p += 2) lstm_step_tile<kRows, 2, kOptions>(a, product, panel + p, row);
    for (; p < count; ++p) lstm_step_tile<kRows, 1, kOptions>(a, product, panel + p, row);
}

// Whether a step takes the layer's last panel from its compacted weights (kernels.h: compact_tail_*): an f32 step
// whose share of panels holds that panel, compacted into no more vectors a k than the ISA's tail takes.
template <class Product>
inline bool takes_compact_tail(const LstmStepArgs& a) {
    if constexpr (Simd::kCompactTailVectors > 0 && std::is_same_v<Product, F32Product>)
        return a.compact_tail_lanes > 0 && 4 * a.compact_tail_lanes <= Simd::kCompactTailVectors * Simd::kLanes &&
               a.panel_begin < a.panel_end && a.panel_end * Simd::kLanes >= a.hidden_size;
    return false;
}

// The compacted last panel (lstm_step_compact_tail) for rows [row, row + rows), 1 <= rows <= kMaxRows, with as many
// vectors per k as its lanes take (compact_tail_lanes: kLanes / 4, / 2 or 3 kLanes / 4, up to kCompactTailVectors).
template <int kMaxRows, bool kOptions>
void lstm_step_compact_tail_rows(const LstmStepArgs& a, const F32Product& product, int64_t row, int64_t rows) {
    const int64_t panel = a.panel_end - 1;
    if (rows == kMaxRows) {
        if (a.compact_tail_lanes == Simd::kLanes / 4)
            lstm_step_compact_tail<kMaxRows, 1, kOptions, Simd>(a, product, panel, row);
        else if (a.compact_tail_lanes == Simd::kLanes / 2)
            lstm_step_compact_tail<kMaxRows, 2, kOptions, Simd>(a, product, panel, row);
        else if constexpr (Simd::kCompactTailVectors >= 3)
            lstm_step_compact_tail<kMaxRows, 3, kOptions, Simd>(a, product, panel, row);
    } else if constexpr (kMaxRows > 1) {
        lstm_step_compact_tail_rows<kMaxRows - 1, kOptions>(a, product, row, rows);
    }
}

// Two panels per tile when the accumulators (4 gates x rows x panels) fit in kMaxAccumulators registers, but not
// over gate halves: a panel is two streams of weights there, and a batch-1 tile of two panels (four streams) ran
// 1.02-1.13x slower than one of one panel at I = H = 128-300, 1.06x for a step at 256x256 (15 paired rounds of
// `python tools/ab_compare.py A B --steps 256x256`), though its 4 accumulator chains leave the multiply-adds waiting
// on their latency: a batch-1 step is bound by the weights' reading.
// A float32 tile of one row takes Simd::kOneRowPanels panels (simd__avx512.h says why four there).
template <class Product>
constexpr int panels_per_tile(int rows, int max_accumulators) {
    if (Product::kGateHalves) return 1;
    if (rows == 1 && std::is_same_v<Product, F32Product> && 4 * Simd::kOneRowPanels <= max_accumulators)
        return Simd::kOneRowPanels;
    return 4 * rows * 2 <= max_accumulators ? 2 : 1;
}

// The tile of exactly `rows` rows (1 <= rows <= kMaxRows), found by counting down from kMaxRows.
template <int kMaxRows, int kMaxAccumulators, bool kOptions, class Product>
inline void lstm_step_rows(const LstmStepArgs& a, const Product& product, int64_t panel, int64_t count, int64_t row,
                           int64_t rows) {
    if (rows == kMaxRows)
        lstm_step_panels<kMaxRows, panels_per_tile<Product>(kMaxRows, kMaxAccumulators), kOptions>(a, product, panel,
                                                                                                   count, row);
    else if constexpr (kMaxRows > 1)
        lstm_step_rows<kMaxRows - 1, kMaxAccumulators, kOptions>(a, product, panel, count, row, rows);
}

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm

#include "lstm_step_half_tiles-inl.h"  // here: it uses the cell finishes above

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

// The accumulators of a tile start from its rows of gates_in, which the input projection wrote a few steps ago and
// which may have left L2 since (a chunk of 4 steps is 2 MiB at B = 64, H = 512): loaded at the tile's start, they
// would stall its first multiply-adds. So each tile first asks for the gates_in lines of the tile after it, which
// are in L1 by the time they are needed (step-only time 2% lower at B = 64, H = 512, interleaved A/B:
// `python -m fastlstm bench --shapes 64x100x512 --threads 1`).
inline void prefetch_next_gates_in(const LstmStepArgs& a, int64_t panel, int64_t group, int64_t block, int64_t blocks) {
    constexpr int64_t kWidth = 4 * Simd::kLanes;
    constexpr int64_t kFloatsPerLine = 16;
    if (!a.gates_in) return;  // the input fused (kernels.h)
    const bool last_block = block + 1 == blocks;
    const int64_t next_panel = last_block ? panel + (a.panels_descending ? -group : group) : panel;
    if (next_panel < a.panel_begin || next_panel >= a.panel_end) return;
    const int64_t next_block = last_block ? 0 : block + 1;
    const int64_t row_begin = a.batch * next_block / blocks;
    const int64_t row_end = a.batch * (next_block + 1) / blocks;
    const int64_t panels = a.panel_end - next_panel < group ? a.panel_end - next_panel : group;
    for (int64_t r = row_begin; r < row_end; ++r)
        for (int64_t f = 0; f < panels * kWidth; f += kFloatsPerLine)
            Simd::prefetch(a.gates_in + r * a.gates_in_stride + next_panel * kWidth + f);
}

// Panels are the outer loop, so that their weights are reused by every row block while in cache. Rows go in as few
// blocks of at most kMaxRows as possible, of balanced heights (8 rows: 4 + 4, not 6 + 2, whose short tile feeds
// only 2 multiply-adds per weight load: measured 1.04x faster at B = 8, H = 256, 1.01x at H = 512;
// `python -m fastlstm bench --shapes 8x100x256,8x100x512 --threads 1`), each block handed to the tile of exactly its
// height. Small batches take panels in pairs and two panels per tile (8 accumulator chains even for one row; but see
// panels_per_tile), one row four at a time where Simd::kOneRowPanels says so; larger ones take one panel at a time
// (measured 5% faster at B = 64 than pairs: `python -m fastlstm bench --shapes 64x100x256,64x100x512 --threads 1`) in
// tall tiles, where each weight load feeds more rows. Where the variant takes half tiles (lstm_step_half_tiles-inl.h;
// float32 only), the blocks are of up to Simd::kHalfTileMaxRows rows, and a block of kHalfTileMinRows rows or more
// takes a half tile.
template <int kMaxRows, int kMaxAccumulators, bool kOptions, class Product>
inline void lstm_step_cells(const LstmStepArgs& a, const Product& product) {
    static_assert(4 * kMaxRows <= kMaxAccumulators, "a tile of kMaxRows rows must fit");
    constexpr bool kHalfTiles = Product::kGateHalves;
    static_assert(!kHalfTiles || kMaxRows + 1 >= kHalfTileMinRows,
                  "a block too low for a half tile must fit a full one");
    constexpr int kBlockRows = kHalfTiles ? Simd::kHalfTileMaxRows : kMaxRows;
    // Panels per pass of the row loop: those of a one-row tile at batch 1 (at least the pair that AVX2's batch 1
    // walks in tiles of one panel over gate halves), pairs up to 3 rows, then one.
    constexpr int kOneRowTile = panels_per_tile<Product>(1, kMaxAccumulators);
    constexpr int64_t kOneRowGroup = kOneRowTile > 2 ? kOneRowTile : 2;
    const int64_t group = a.batch > 3 ? 1 : a.batch == 1 ? kOneRowGroup : 2;
    const int64_t blocks = (a.batch + kBlockRows - 1) / kBlockRows;
    // The layer's last panel, if this step's share of panels has it and has it compacted, after the others; with the
    // fused input only. Started from gates_in (as the look-ahead step takes it), it gained nothing here: AVX2's
    // batches of 1 and 2 at H = 65 and 100 ran 1.00-1.04x slower (ab_compare, 11 rounds).
    const bool compact_tail = a.x && takes_compact_tail<Product>(a);
    const int64_t panel_end = compact_tail ? a.panel_end - 1 : a.panel_end;
    const int64_t groups = (panel_end - a.panel_begin + group - 1) / group;
    for (int64_t i = 0; i < groups; ++i) {
        const int64_t panel = a.panel_begin + (a.panels_descending ? groups - 1 - i : i) * group;
        const int64_t count = panel_end - panel < group ? panel_end - panel : group;
        for (int64_t block = 0; block < blocks; ++block) {
            const int64_t row = a.batch * block / blocks;
            const int64_t rows = a.batch * (block + 1) / blocks - row;
            prefetch_next_gates_in(a, panel, group, block, blocks);
            if constexpr (kHalfTiles) {
                if (rows >= kHalfTileMinRows) {  // then the batch is over 3 rows: one panel a group
                    lstm_step_half_tile_rows<kBlockRows, kOptions>(a, product, panel, row, rows);
                    continue;
                }
            }
            lstm_step_rows<kMaxRows, kMaxAccumulators, kOptions>(a, product, panel, count, row, rows);
        }
    }
    if constexpr (Simd::kCompactTailVectors > 0 && std::is_same_v<Product, F32Product>)
        if (compact_tail)
            for (int64_t block = 0; block < blocks; ++block) {
                const int64_t row = a.batch * block / blocks;
                lstm_step_compact_tail_rows<kBlockRows, kOptions>(a, product, row,
                                                                  a.batch * (block + 1) / blocks - row);
            }
}

// The step of the standard cell, or of a cell with options (kernels.h).
template <int kMaxRows, int kMaxAccumulators, class Product>
inline void lstm_step_with(const LstmStepArgs& a, const Product& product) {
    if (a.options)
        lstm_step_cells<kMaxRows, kMaxAccumulators, true>(a, product);
    else
        lstm_step_cells<kMaxRows, kMaxAccumulators, false>(a, product);
}

template <int kMaxRows, int kMaxAccumulators>
inline void lstm_step(const LstmStepArgs& a) {
    lstm_step_with<kMaxRows, kMaxAccumulators>(a, f32_recurrent_product(a));
}

// Precision bf16: h_prev rounded into h_bf16 (K values per row, next to the K * 4H multiply-adds of the row), and the
// recurrent product over it.
inline BF16PairProduct bf16_recurrent_product(const LstmStepArgs& a) {
    const int64_t stride = (a.recurrent_size + 1) / 2 * 2;
    if (a.recurrent_size > 0)
        round_rows_to_bf16(a.batch, a.recurrent_size, a.h_prev, a.h_prev_stride, a.h_bf16, stride);
    return {{}, a.recurrent_pairs, a.h_bf16, stride, stride / 2};
}

template <int kMaxRows, int kMaxAccumulators>
inline void bf16_lstm_step(const LstmStepArgs& a) {
    lstm_step_with<kMaxRows, kMaxAccumulators>(a, bf16_recurrent_product(a));
}

// Precision int8: h_prev quantized into h_uint8 and h_scales (K values per row), and the recurrent product over it.
inline Int8QuadProduct int8_recurrent_product(const LstmStepArgs& a) {
    const int64_t stride = (a.recurrent_size + 3) / 4 * 4;
    if (a.recurrent_size > 0)
        quantize_rows_to_uint8(a.batch, a.recurrent_size, a.h_prev, a.h_prev_stride, a.h_uint8, stride, a.h_scales);
    else  // no product (a zero state): scale 0 also cancels the offsets, which assume K bytes of 128
        for (int64_t r = 0; r < a.batch; ++r) a.h_scales[r] = 0.0f;
    return {a.recurrent_int8.quads,  a.h_uint8, stride, stride / 4, a.h_scales, a.recurrent_int8.scales,
            a.recurrent_int8.offsets};
}

template <int kMaxRows, int kMaxAccumulators>
inline void int8_lstm_step(const LstmStepArgs& a) {
    lstm_step_with<kMaxRows, kMaxAccumulators>(a, int8_recurrent_product(a));
}

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
