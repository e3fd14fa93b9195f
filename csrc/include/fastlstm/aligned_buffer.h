// An owned, uninitialised, 64-byte aligned array of a trivial type: the storage of packed weights and call
// workspaces.
// Allocation failure throws std::bad_alloc (a MemoryError in Python); sizes whose byte count would overflow
// are refused the same way before anything is allocated.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>

namespace fastlstm {

template <class T>
class AlignedBuffer {
   public:
    static constexpr std::size_t kAlignment = 64;

    AlignedBuffer() = default;
    explicit AlignedBuffer(int64_t size) : size_(size) {
        if (size < 0 || static_cast<uint64_t>(size) > std::numeric_limits<std::size_t>::max() / sizeof(T))
            throw std::bad_alloc();
        if (size > 0)
            data_.reset(static_cast<T*>(
                ::operator new(static_cast<std::size_t>(size) * sizeof(T), std::align_val_t(kAlignment))));
    }

    T* data() { return data_.get(); }
    const T* data() const { return data_.get(); }
    int64_t size() const { return size_; }
    void fill_zero() {
        if (size_ > 0) std::memset(data_.get(), 0, static_cast<std::size_t>(size_) * sizeof(T));
    }

   private:
    struct AlignedDelete {
        void operator()(T* p) const { ::operator delete(p, std::align_val_t(kAlignment)); }
    };
    std::unique_ptr<T, AlignedDelete> data_;
    int64_t size_ = 0;
};

using AlignedFloats = AlignedBuffer<float>;

}  // namespace fastlstm
