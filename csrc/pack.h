// Packing of PyTorch-layout weights into the kernels' panel layouts (kernels.h): gate panels (float32), pair
// panels (bf16), quad panels (int8), the fused bias in panel order, and projection panels (one "gate").
#pragma once

#include <cstdint>

#include "fastlstm/lstm.h"

namespace fastlstm {

constexpr int64_t kGates = 4;  // i, f, g, o

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Inline here, for the driver's every chunk and step (sequence.cc).
inline int64_t PackedLstm::num_panels() const { return ceil_div(geometry_.hidden_size, kernels_.hidden_block); }

inline int64_t PackedLstm::gate_width() const { return num_panels() * kGates * kernels_.hidden_block; }

// Where gate g, depth step k and unit u of a gate panel of K depth steps sits in it: interleaved (row k holds the 4
// gates), or in halves (gates i and f for every k, then g and o; kernels.h).
inline int64_t gate_panel_index(int64_t K, int64_t block, bool halves, int64_t k, int64_t g, int64_t u) {
    return halves ? ((g / 2 * K + k) * 2 + g % 2) * block + u : (k * kGates + g) * block + u;
}

// Gate panels of a 4H x K matrix w: panel p, row k, gate g, unit u  <-  w[(g*H + p*block + u) * K + k], at
// gate_panel_index within the panel.
void pack_gate_panels(const float* w, int64_t hidden, int64_t K, int64_t block, bool halves, float* out);

// Pair panels (kernels.h: precision bf16): panel p, pair j, gate g, unit u  <-  bf16 of w[(g*H + p*block + u) * K
// + 2j] (low half) and + 2j + 1 (high half), zero past K and past H.
void pack_gate_pair_panels(const float* w, int64_t hidden, int64_t K, int64_t block, uint32_t* out);

// Quad panels (kernels.h: precision int8): panel p, quad j, gate g, unit u  <-  the int8 codes of w[(g*H + p*block +
// u) * K + 4j + i] in byte i, zero past K and past H; each gate row's scale and offset (128 * sum of its codes) at
// column (p*4 + g)*block + u, zero past H.
void pack_gate_quad_panels(const float* w, int64_t hidden, int64_t K, int64_t block, uint32_t* out, float* scales,
                           int32_t* offsets);

// b_ih + b_hh in panel order: panel p, gate g, unit u  <-  b[g*H + p*block + u], zero past H and without bias
// (b_ih null).
void pack_gate_bias(const float* b_ih, const float* b_hh, int64_t hidden, int64_t block, float* out);

// The last gate panel compacted (kernels.h: LstmStepArgs::compact_tail_*) when it holds at most three quarters of
// block units: compact_tail_lanes is block / 4, block / 2 or 3 block / 4 then, the fewest that hold them (0: not
// compacted). Row k, gate g, lane j  <-  the panel's row k, gate g, unit j, for j < lanes. `panels`: gate panels (or
// the bias in panel order, K = 1) of `hidden` units over K, in halves or not; `out`: K * 4 * lanes floats.
int64_t compact_tail_lanes(int64_t hidden, int64_t block);
void pack_compact_tail(const float* panels, int64_t hidden, int64_t K, int64_t block, bool halves, int64_t lanes,
                       float* out);

// Panels of w_hr^T (w_hr: proj x hidden): panel p, row k (hidden unit), column j  <-  w_hr[(p*block + j) * H + k],
// zero past proj.
void pack_projection_panels(const float* w_hr, int64_t proj, int64_t hidden, int64_t block, float* out);

}  // namespace fastlstm
