// An owned, uninitialised, 64-byte aligned float array: the storage of packed weights and call workspaces.
// Allocation failure throws std::bad_alloc (a MemoryError in Python); sizes whose byte count would overflow
// are refused the same way before anything is allocated.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>

namespace fastlstm {

class AlignedFloats {
   public:
    static constexpr std::size_t kAlignment = 64;

    AlignedFloats() = default;
    explicit AlignedFloats(int64_t size) : size_(size) {
        if (size < 0 || static_cast<uint64_t>(size) > std::numeric_limits<std::size_t>::max() / sizeof(float))
            throw std::bad_alloc();
        if (size > 0)
            data_.reset(static_cast<float*>(::operator new(static_cast<std::size_t>(size) * sizeof(float),
                                                           std::align_val_t(kAlignment))));
    }

    float* data() { return data_.get(); }
    const float* data() const { return data_.get(); }
    int64_t size() const { return size_; }
    void fill_zero() {
        if (size_ > 0) std::memset(data_.get(), 0, static_cast<std::size_t>(size_) * sizeof(float));
    }

   private:
    struct AlignedDelete {
        void operator()(float* p) const { ::operator delete(p, std::align_val_t(kAlignment)); }
    };
    std::unique_ptr<float, AlignedDelete> data_;
    int64_t size_ = 0;
};

}  // namespace fastlstm
