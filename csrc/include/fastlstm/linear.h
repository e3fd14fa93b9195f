// The classifier head of a sequence model, in the core's terms: raw pointers, sizes and strides, no Python.
#pragma once

#include <cstdint>

#include "fastlstm/aligned_buffer.h"
#include "fastlstm/kernels.h"

namespace fastlstm {

// The classifier head of a sequence model: out = x W^T + b, then optionally the softmax of each row. W is
// out_features x in_features, row-major (as torch.nn.Linear stores it), packed once into the kernels' panels.
class PackedLinear {
   public:
    PackedLinear(const KernelSet& kernels, int64_t in_features, int64_t out_features, const float* weight,
                 const float* bias);

    // rows x in_features (row stride x_stride) to rows x out_features (row stride out_stride), the rows shared
    // among up to `threads` threads (0: by the size of the product). Results do not depend on the thread count.
    void forward(int64_t rows, const float* x, int64_t x_stride, float* out, int64_t out_stride, bool softmax,
                 int threads) const;

    int64_t in_features() const { return in_features_; }
    int64_t out_features() const { return out_features_; }
    const KernelSet& kernels() const { return kernels_; }

   private:
    const KernelSet& kernels_;
    int64_t in_features_;
    int64_t out_features_;
    AlignedFloats panels_;  // hidden_block output columns per panel
    AlignedFloats bias_;    // padded to whole panels; zeros without bias
};

}  // namespace fastlstm
