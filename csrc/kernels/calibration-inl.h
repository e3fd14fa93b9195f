// Calibration kernels, for "percent of peak" in the benchmark report (fastlstm/calibration.h): the FMA throughput
// this core reaches with the variant's vector width, and read bandwidth. 12 independent accumulator chains cover an
// FMA latency of 4-6 cycles on 2 FMA ports; the loop body holds nothing but FMAs.
// Compiled through a variant's entry file (variant__<isa>.cc), which includes that ISA's simd__<isa>.h and
// defines FASTLSTM_ISA_NAMESPACE, the namespace of everything below.

#pragma once

#ifndef FASTLSTM_ISA_NAMESPACE
#error "compile this header through a variant's entry file (variant__<isa>.cc), which defines FASTLSTM_ISA_NAMESPACE"
#endif

#include <cstdint>

namespace fastlstm {
namespace FASTLSTM_ISA_NAMESPACE {

using V = Simd::V;

// Runs `iterations` rounds of 12 vector FMAs; returns the floating-point operations done. The accumulators end up
// in *sink so that the compiler cannot drop the loop.
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

}  // namespace FASTLSTM_ISA_NAMESPACE
}  // namespace fastlstm
