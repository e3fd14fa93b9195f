// Packing: the weights of each layer and direction, as PyTorch stores them, into the panel layout of the kernels'
// variant and precision (kernels.h), once per model.
#include "pack.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastlstm/bf16.h"
#include "fastlstm/int8.h"
#include "fastlstm/lstm.h"

namespace fastlstm {

// The layouts: pack.h.
//
// The panels interleave 4 * block rows of w, so a loop over k inside a panel would touch that many rows (each on its
// own page) per packed row: more pages than the TLB holds, and packing ran at ~10 ns per weight. The loops below read
// each row a tile of kPackTile consecutive values (one cache line) at a time and write them to kPackTile packed rows,
// which stay in L1 for the whole tile.
namespace {
constexpr int64_t kPackTile = 16;
}  // namespace

void pack_gate_panels(const float* w, int64_t hidden, int64_t K, int64_t block, bool halves, float* out) {
    const int64_t panels = ceil_div(hidden, block);
    const int64_t width = kGates * block;
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t k0 = 0; k0 < K; k0 += kPackTile) {
            const int64_t k1 = std::min(K, k0 + kPackTile);
            for (int64_t g = 0; g < kGates; ++g)
                for (int64_t u = 0; u < block; ++u) {
                    const int64_t unit = p * block + u;
                    const float* row = unit < hidden ? w + (g * hidden + unit) * K : nullptr;
                    float* panel = out + p * K * width;
                    for (int64_t k = k0; k < k1; ++k)
                        panel[gate_panel_index(K, block, halves, k, g, u)] = row ? row[k] : 0.0f;
                }
        }
}

void pack_gate_pair_panels(const float* w, int64_t hidden, int64_t K, int64_t block, uint32_t* out) {
    const int64_t panels = ceil_div(hidden, block);
    const int64_t pairs = ceil_div(K, 2);
    const int64_t width = kGates * block;
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t j0 = 0; j0 < pairs; j0 += kPackTile / 2) {
            const int64_t j1 = std::min(pairs, j0 + kPackTile / 2);
            for (int64_t g = 0; g < kGates; ++g)
                for (int64_t u = 0; u < block; ++u) {
                    const int64_t unit = p * block + u;
                    const float* row = unit < hidden ? w + (g * hidden + unit) * K : nullptr;
                    uint32_t* dst = out + p * pairs * width + g * block + u;
                    for (int64_t j = j0; j < j1; ++j) {
                        uint32_t word = 0;
                        if (row) {
                            word = round_to_bf16(row[2 * j]);
                            if (2 * j + 1 < K) word |= static_cast<uint32_t>(round_to_bf16(row[2 * j + 1])) << 16;
                        }
                        dst[j * width] = word;
                    }
                }
        }
}

void pack_gate_quad_panels(const float* w, int64_t hidden, int64_t K, int64_t block, uint32_t* out, float* scales,
                           int32_t* offsets) {
    const int64_t panels = ceil_div(hidden, block);
    const int64_t quads = ceil_div(K, 4);
    const int64_t width = kGates * block;
    std::vector<int8_t> codes(quads * 4);
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t g = 0; g < kGates; ++g)
            for (int64_t u = 0; u < block; ++u) {
                const int64_t unit = p * block + u, column = (p * kGates + g) * block + u;
                std::fill(codes.begin(), codes.end(), int8_t{0});
                scales[column] =
                    unit < hidden ? quantize_row_to_int8(K, w + (g * hidden + unit) * K, codes.data()) : 0.0f;
                int32_t sum = 0;
                for (int64_t k = 0; k < K; ++k) sum += codes[k];
                offsets[column] = 128 * sum;
                for (int64_t j = 0; j < quads; ++j) {
                    uint32_t word = 0;
                    for (int64_t i = 0; i < 4; ++i)
                        word |= static_cast<uint32_t>(static_cast<uint8_t>(codes[4 * j + i])) << (8 * i);
                    out[(p * quads + j) * width + g * block + u] = word;
                }
            }
}

void pack_gate_bias(const float* b_ih, const float* b_hh, int64_t hidden, int64_t block, float* out) {
    const int64_t panels = ceil_div(hidden, block);
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t g = 0; g < kGates; ++g)
            for (int64_t u = 0; u < block; ++u) {
                const int64_t unit = p * block + u;
                float value = 0.0f;
                if (unit < hidden && b_ih) value = b_ih[g * hidden + unit] + b_hh[g * hidden + unit];
                out[(p * kGates + g) * block + u] = value;
            }
}

int64_t compact_tail_lanes(int64_t hidden, int64_t block) {
    const int64_t tail_units = hidden - (ceil_div(hidden, block) - 1) * block;
    if (block % kGates != 0) return 0;
    if (tail_units <= block / kGates) return block / kGates;
    if (tail_units <= block / 2) return block / 2;
    return tail_units <= 3 * block / kGates ? 3 * block / kGates : 0;
}

void pack_compact_tail(const float* panels, int64_t hidden, int64_t K, int64_t block, bool halves, int64_t lanes,
                       float* out) {
    const float* last = panels + (ceil_div(hidden, block) - 1) * K * kGates * block;
    for (int64_t k = 0; k < K; ++k)
        for (int64_t g = 0; g < kGates; ++g)
            for (int64_t j = 0; j < lanes; ++j)
                out[(k * kGates + g) * lanes + j] = last[gate_panel_index(K, block, halves, k, g, j)];
}

void pack_projection_panels(const float* w_hr, int64_t proj, int64_t hidden, int64_t block, float* out) {
    const int64_t panels = ceil_div(proj, block);
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t k = 0; k < hidden; ++k)
            for (int64_t j = 0; j < block; ++j) {
                const int64_t row = p * block + j;
                out[(p * hidden + k) * block + j] = row < proj ? w_hr[row * hidden + k] : 0.0f;
            }
}

namespace {

// Refuses a geometry whose int8 products would overflow their 32-bit sums (see kInt8MaxDepth).
void check_int8_depths(const LstmGeometry& geometry) {
    const int64_t depths[] = {geometry.widest_layer_input(), geometry.output_size()};
    const char* names[] = {"the widest layer input", "the recurrent size"};
    for (int i = 0; i < 2; ++i)
        if (depths[i] > kInt8MaxDepth)
            throw std::invalid_argument("precision int8 sums at most " + std::to_string(kInt8MaxDepth) +
                                        " products per gate exactly (32-bit integers); " + names[i] + " is " +
                                        std::to_string(depths[i]));
}

}  // namespace

PackedLstm::PackedLstm(const KernelSet& kernels, const LstmGeometry& geometry, Precision precision)
    : kernels_(kernels),
      geometry_(geometry),
      precision_(precision),
      cells_(geometry.num_layers * geometry.num_directions) {
    if (precision == Precision::kInt8) check_int8_depths(geometry);
}

int64_t PackedLstm::weight_bytes() const {
    return precision_ == Precision::kInt8 ? 1 : precision_ == Precision::kBF16 ? 2 : 4;
}

void PackedLstm::pack_cell(int64_t layer, int64_t direction, const CellWeights& w) {
    const int64_t hidden = geometry_.hidden_size;
    const int64_t block = kernels_.hidden_block;
    const int64_t input = geometry_.layer_input_size(layer);
    const int64_t recurrent = geometry_.output_size();

    PackedCell packed;
    packed.bias = AlignedFloats(gate_width());
    pack_gate_bias(w.b_ih, w.b_hh, hidden, block, packed.bias.data());
    packed.recurrent_finite = true;
    if (precision_ == Precision::kBF16) {
        packed.input_pairs = AlignedBuffer<uint32_t>(gate_width() * ceil_div(input, 2));
        packed.recurrent_pairs = AlignedBuffer<uint32_t>(gate_width() * ceil_div(recurrent, 2));
        pack_gate_pair_panels(w.w_ih, hidden, input, block, packed.input_pairs.data());
        pack_gate_pair_panels(w.w_hh, hidden, recurrent, block, packed.recurrent_pairs.data());
        for (int64_t i = 0; i < 4 * hidden * recurrent; ++i)
            packed.recurrent_finite &= std::isfinite(bf16_to_float(round_to_bf16(w.w_hh[i])));
    } else if (precision_ == Precision::kInt8) {
        packed.input_quads = AlignedBuffer<uint32_t>(gate_width() * ceil_div(input, 4));
        packed.recurrent_quads = AlignedBuffer<uint32_t>(gate_width() * ceil_div(recurrent, 4));
        packed.input_scales = AlignedFloats(gate_width());
        packed.recurrent_scales = AlignedFloats(gate_width());
        packed.input_offsets = AlignedBuffer<int32_t>(gate_width());
        packed.recurrent_offsets = AlignedBuffer<int32_t>(gate_width());
        pack_gate_quad_panels(w.w_ih, hidden, input, block, packed.input_quads.data(), packed.input_scales.data(),
                              packed.input_offsets.data());
        pack_gate_quad_panels(w.w_hh, hidden, recurrent, block, packed.recurrent_quads.data(),
                              packed.recurrent_scales.data(), packed.recurrent_offsets.data());
        for (int64_t i = 0; i < gate_width(); ++i)
            packed.recurrent_finite &= !std::isnan(packed.recurrent_scales.data()[i]);
    } else {
        packed.input_panels = AlignedFloats(gate_width() * input);
        packed.recurrent_panels = AlignedFloats(gate_width() * recurrent);
        const bool halves = kernels_.gate_halves;
        pack_gate_panels(w.w_ih, hidden, input, block, halves, packed.input_panels.data());
        pack_gate_panels(w.w_hh, hidden, recurrent, block, halves, packed.recurrent_panels.data());
        for (int64_t i = 0; i < 4 * hidden * recurrent; ++i) packed.recurrent_finite &= std::isfinite(w.w_hh[i]);
        const int64_t lanes = compact_tail_lanes(hidden, block);
        if (lanes > 0) {
            packed.compact_tail_lanes = lanes;
            packed.compact_tail_input = AlignedFloats(input * kGates * lanes);
            packed.compact_tail_recurrent = AlignedFloats(recurrent * kGates * lanes);
            packed.compact_tail_bias = AlignedFloats(kGates * lanes);
            pack_compact_tail(packed.input_panels.data(), hidden, input, block, halves, lanes,
                              packed.compact_tail_input.data());
            pack_compact_tail(packed.recurrent_panels.data(), hidden, recurrent, block, halves, lanes,
                              packed.compact_tail_recurrent.data());
            pack_compact_tail(packed.bias.data(), hidden, 1, block, halves, lanes, packed.compact_tail_bias.data());
        }
    }
    if (w.options || w.peepholes) {
        packed.has_options = true;
        packed.options = w.options ? *w.options : CellOptions{};  // peepholes alone: the standard cell's options
        packed.options.peepholes = nullptr;
        if (w.peepholes) {
            packed.peepholes = AlignedFloats(3 * hidden);
            std::memcpy(packed.peepholes.data(), w.peepholes, 3 * hidden * sizeof(float));
            packed.options.peepholes = packed.peepholes.data();  // the heap buffer moves with the cell
        }
    }
    if (geometry_.proj_size > 0) {
        packed.projection_panels = AlignedFloats(ceil_div(geometry_.proj_size, block) * block * hidden);
        pack_projection_panels(w.w_hr, geometry_.proj_size, hidden, block, packed.projection_panels.data());
    }
    cells_[layer * geometry_.num_directions + direction] = std::move(packed);
}

}  // namespace fastlstm
