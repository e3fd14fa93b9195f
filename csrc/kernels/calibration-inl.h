// Calibration kernels, for "percent of peak" in the benchmark report (fastlstm/calibration.h): the FMA throughput
// this core reaches with the variant's vector width, read bandwidth, and the batch-1 look-ahead step's loads and
// multiply-adds alone (look_ahead_loop, for tools/look_ahead_ceiling.py).
// Compiled through a variant's entry file (variant__<isa>.cc), which includes that ISA's simd__<isa>.h and
// defines FASTLSTM_ISA_NAMESPACE, the namespace of everything below.

#pragma once

#ifndef FASTLSTM_ISA_NAMESPACE
#error "compile this header through a variant's entry file (variant__<isa>.cc), which defines FASTLSTM_ISA_NAMESPACE"
#endif

#include <cstdint>

#include "fastlstm/kernels.h"

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

using V = Simd::V;

// Runs `iterations` rounds of 12 vector FMAs; returns the floating-point operations done. 12 independent
// accumulator chains cover an FMA latency of 4-6 cycles on 2 FMA ports; the loop body holds nothing but FMAs. The
// accumulators end up in *sink so that the compiler cannot drop the loop.
inline int64_t fma_peak_loop(int64_t iterations, float* sink) {
    constexpr int kChains = 12;
    V acc[kChains];
    for (int j = 0; j < kChains; ++j) acc[j] = Simd::set1(0.001f * static_cast<float>(j));
    const V scale = Simd::set1(0.999999f), offset = Simd::set1(1e-7f);  // stays finite and normal
    for (int64_t i = 0; i < iterations; ++i)
        for (int j = 0; j < kChains; ++j) acc[j] = Simd::fmadd(acc[j], scale, offset);
    V total = acc[0];
    for (int j = 1; j < kChains; ++j) total = Simd::add(total, acc[j]);
    float lanes[Simd::kLanes];
    Simd::store(lanes, total);
    *sink = lanes[0];
    return iterations * kChains * Simd::kLanes * 2;
}

// A second calibration kernel: reads n floats (n a multiple of 8 vectors) with 8 independent accumulators and
// returns their sum, so that the time of a call measures read bandwidth from wherever the array lives.
inline float read_sum(const float* data, int64_t n) {
    constexpr int kChains = 8;
    V acc[kChains];
    for (int j = 0; j < kChains; ++j) acc[j] = Simd::zero();
    for (int64_t i = 0; i + kChains * Simd::kLanes <= n; i += kChains * Simd::kLanes)
        for (int j = 0; j < kChains; ++j) acc[j] = Simd::add(acc[j], Simd::load(data + i + j * Simd::kLanes));
    V total = acc[0];
    for (int j = 1; j < kChains; ++j) total = Simd::add(total, acc[j]);
    float lanes[Simd::kLanes];
    Simd::store(lanes, total);
    return lanes[0];
}

// One slot of look_ahead_loop: kPanels recurrent panels from `recurrent` over recurrent_k k and the piece at `piece`
// (one gate's vectors, a k apart) over input_k k, in one loop over k as lstm_slot_with_piece runs them; returns the
// sums added up.
template <int kPanels>
inline V look_ahead_slot_sums(const float* recurrent, const float* piece, const float* h, const float* x,
                              int64_t recurrent_k, int64_t input_k) {
    constexpr int64_t kWidth = 4 * Simd::kLanes;
    constexpr int kRows = static_cast<int>(kLookAheadPieceRows);
    V acc[kPanels][4], part[kRows];
    for (int p = 0; p < kPanels; ++p)
        for (int g = 0; g < 4; ++g) acc[p][g] = Simd::zero();
    for (int r = 0; r < kRows; ++r) part[r] = Simd::zero();
    auto recurrent_k_step = [&](int64_t k) {
        const V hk = Simd::set1(h[k]);
        for (int p = 0; p < kPanels; ++p)
            for (int g = 0; g < 4; ++g)
                acc[p][g] = Simd::fmadd(Simd::load(recurrent + (p * recurrent_k + k) * kWidth + g * Simd::kLanes), hk,
                                        acc[p][g]);
    };
    auto piece_k_step = [&](int64_t k) {
        const V w = Simd::pinned(Simd::load(piece + k * kWidth));
        for (int r = 0; r < kRows; ++r) part[r] = Simd::fmadd(Simd::set1(x[r * input_k + k]), w, part[r]);
    };
    const int64_t shared = recurrent_k < input_k ? recurrent_k : input_k;
    int64_t k = 0;
    for (; k < shared; ++k) {
        recurrent_k_step(k);
        piece_k_step(k);
    }
    for (int64_t kr = k; kr < recurrent_k; ++kr) recurrent_k_step(kr);
    for (int64_t ki = k; ki < input_k; ++ki) piece_k_step(ki);
    V total = part[0];
    for (int r = 1; r < kRows; ++r) total = Simd::add(total, part[r]);
    for (int p = 0; p < kPanels; ++p)
        for (int g = 0; g < 4; ++g) total = Simd::add(total, acc[p][g]);
    return total;
}

// A third calibration kernel (kernels.h: f32_look_ahead_loop_fn): `steps` batch-1 steps of nothing but the loads and
// multiply-adds of the look-ahead step (lstm_step_look_ahead-inl.h), in its slots of kSlotPanels panels (one panel
// for the last slot of an odd count), each slot with one piece of kLookAheadPieceRows rows, the pieces walking
// every gate of every panel in turn. No cells, no activations, no stores: what a step of that shape can reach on
// this core, the yardstick of how far the real step's cells and bookkeeping leave it behind.
template <int kSlotPanels>
inline float look_ahead_loop(const float* recurrent, const float* inputs, const float* h, const float* x,
                             int64_t panels, int64_t recurrent_k, int64_t input_k, int64_t steps) {
    constexpr int64_t kWidth = 4 * Simd::kLanes;
    V total = Simd::zero();
    int64_t piece = 0;
    for (int64_t step = 0; step < steps; ++step)
        for (int64_t panel = 0; panel < panels; panel += kSlotPanels, ++piece) {
            const int64_t spot = piece % (4 * panels);  // gate spot % 4 of panel spot / 4
            const float* piece_weights = inputs + (spot / 4) * input_k * kWidth + (spot % 4) * Simd::kLanes;
            const float* slot_weights = recurrent + panel * recurrent_k * kWidth;
            const V sums =
                panels - panel >= kSlotPanels
                    ? look_ahead_slot_sums<kSlotPanels>(slot_weights, piece_weights, h, x, recurrent_k, input_k)
                    : look_ahead_slot_sums<1>(slot_weights, piece_weights, h, x, recurrent_k, input_k);
            total = Simd::add(total, sums);
        }
    float lanes[Simd::kLanes];
    Simd::store(lanes, total);
    float sum = 0.0f;
    for (float lane : lanes) sum += lane;
    return sum;
}

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
