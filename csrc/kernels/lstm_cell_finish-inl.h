// The cell update that ends every float32 step tile: from a row's four gate pre-activations of one panel to its new
// c and h, for the standard cell (finish_cells, and finish_cells_together for several cells side by side) and for a
// cell with options (finish_cells_with_options). Written once over the Simd interface and compiled per ISA through
// a variant's entry file (variant__<isa>.cc), which includes that ISA's simd__<isa>.h and defines
// FASTLSTM_ISA_NAMESPACE, the namespace of everything below. Included by lstm_step-inl.h.

#pragma once

#ifndef FASTLSTM_ISA_NAMESPACE
#error "compile this header through a variant's entry file (variant__<isa>.cc), which defines FASTLSTM_ISA_NAMESPACE"
#endif

#include <cstdint>

#include "f32_activations-inl.h"
#include "fastlstm/kernels.h"

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

// The new c and h of `units` cells (all Simd::kLanes but in the last panel).
inline void store_cells(float* c_ptr, float* h_ptr, V c, V h, int64_t units) {
    if (units == Simd::kLanes) {
        Simd::store(c_ptr, c);
        Simd::store(h_ptr, h);
    } else {
        Simd::store_first(c_ptr, c, units);
        Simd::store_first(h_ptr, h, units);
    }
}

// The cell update of a cell with options (kernels.h: CellOptions), as finish_cells below.
inline void finish_cells_with_options(const LstmStepArgs& a, const V z_in[4], int64_t row, int64_t panel) {
    constexpr int64_t L = Simd::kLanes;
    const CellOptions& o = *a.options;
    const int64_t unit = panel * L;
    const int64_t units = a.hidden_size - unit < L ? a.hidden_size - unit : L;
    auto load = [&](const float* p) { return units == L ? Simd::load(p) : Simd::load_first(p, units); };
    float* c_ptr = a.c + row * a.c_stride + unit;
    float* h_ptr = a.h_out + row * a.h_out_stride + unit;
    const V c_prev = load(c_ptr);
    V z[4] = {z_in[0], z_in[1], z_in[2], z_in[3]};
    if (o.peepholes) {
        z[0] = Simd::fmadd(load(o.peepholes + unit), c_prev, z[0]);
        z[1] = Simd::fmadd(load(o.peepholes + a.hidden_size + unit), c_prev, z[1]);
    }
    auto clipped = [&](V x) {
        return o.clip > 0 ? Simd::max(Simd::set1(-o.clip), Simd::min(Simd::set1(o.clip), x)) : x;
    };
    const V input_gate = activate_f32(o.gate, clipped(z[0]));
    const V forget_gate =
        o.input_forget ? Simd::sub(Simd::set1(1.0f), input_gate) : activate_f32(o.gate, clipped(z[1]));
    const V candidate = activate_f32(o.candidate, clipped(z[2]));
    const V c = Simd::fmadd(forget_gate, c_prev, Simd::mul(input_gate, candidate));
    if (o.peepholes) z[3] = Simd::fmadd(load(o.peepholes + 2 * a.hidden_size + unit), c, z[3]);
    const V output_gate = activate_f32(o.gate, clipped(z[3]));
    const V h = Simd::mul(output_gate, activate_f32(o.output, c));
    store_cells(c_ptr, h_ptr, c, h, units);
}

// The cell update of one row and one panel from its four gate pre-activations z (i, f, g, o):
// i, f, o = sigmoid, g = tanh; c = f * c + i * g; h = o * tanh(c). Units past hidden_size are neither read nor
// written. A cell with options takes finish_cells_with_options instead, chosen once per step (kOptions), so the
// standard tiles carry no test for options.
inline void finish_cells(const LstmStepArgs& a, const V z[4], int64_t row, int64_t panel) {
    constexpr int64_t L = Simd::kLanes;
    const int64_t unit = panel * L;
    const int64_t units = a.hidden_size - unit < L ? a.hidden_size - unit : L;
    float* c_ptr = a.c + row * a.c_stride + unit;
    float* h_ptr = a.h_out + row * a.h_out_stride + unit;
    const V input_gate = sigmoid_f32(z[0]);
    const V forget_gate = sigmoid_f32(z[1]);
    const V candidate = tanh_f32(z[2]);
    const V output_gate = sigmoid_f32(z[3]);
    const V c_prev = units == L ? Simd::load(c_ptr) : Simd::load_first(c_ptr, units);
    const V c = Simd::fmadd(forget_gate, c_prev, Simd::mul(input_gate, candidate));
    const V h = Simd::mul(output_gate, tanh_f32(c));
    store_cells(c_ptr, h_ptr, c, h, units);
}

// The cell updates of kCells cells, cell j at row rows[j] and panel panels[j] from its pre-activations z[j], as
// finish_cells, but each stage for every cell before the next stage: a cell's update is a long chain of dependent
// operations (an exponential and a division per gate, then tanh(c) after c), and one cell at a time left the
// processor too few independent ones within reach; side by side, the chains of all the tile's cells overlap.
// Bitwise the values of finish_cells. Where the ISA asks for it (Simd::kFinishCellsTogether).
template <int kCells>
inline void finish_cells_together(const LstmStepArgs& a, const V (&z)[kCells][4], const int64_t (&rows)[kCells],
                                  const int64_t (&panels)[kCells]) {
    constexpr int64_t L = Simd::kLanes;
    V input_gate[kCells], forget_gate[kCells], candidate[kCells], output_gate[kCells], c[kCells];
    for (int j = 0; j < kCells; ++j) input_gate[j] = sigmoid_f32(z[j][0]);
    for (int j = 0; j < kCells; ++j) forget_gate[j] = sigmoid_f32(z[j][1]);
    for (int j = 0; j < kCells; ++j) candidate[j] = tanh_f32(z[j][2]);
    for (int j = 0; j < kCells; ++j) output_gate[j] = sigmoid_f32(z[j][3]);
    auto units_of = [&](int j) { return a.hidden_size - panels[j] * L < L ? a.hidden_size - panels[j] * L : L; };
    for (int j = 0; j < kCells; ++j) {
        const float* c_ptr = a.c + rows[j] * a.c_stride + panels[j] * L;
        const V c_prev = units_of(j) == L ? Simd::load(c_ptr) : Simd::load_first(c_ptr, units_of(j));
        c[j] = Simd::fmadd(forget_gate[j], c_prev, Simd::mul(input_gate[j], candidate[j]));
    }
    for (int j = 0; j < kCells; ++j) {
        const V h = Simd::mul(output_gate[j], tanh_f32(c[j]));
        store_cells(a.c + rows[j] * a.c_stride + panels[j] * L, a.h_out + rows[j] * a.h_out_stride + panels[j] * L,
                    c[j], h, units_of(j));
    }
}

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
