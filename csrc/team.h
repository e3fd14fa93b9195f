// A team of threads of the shared pool working on one call, and how they share work. Private to the core's sources.
#pragma once

#include <cstdint>

#include "fastlstm/lstm.h"
#include "thread_pool.h"

namespace fastlstm {

// [begin, end) of `count` items for member `index` of a team of `size`: contiguous, balanced, fixed for the call.
inline void share(int64_t count, int index, int size, int64_t* begin, int64_t* end) {
    *begin = count * index / size;
    *end = count * (index + 1) / size;
}

// A group of threads working on the same directions, with their barrier.
struct PackedLstm::Team {
    int index;
    int size;
    SpinBarrier* barrier;
    void sync() const {
        if (size > 1) barrier->arrive_and_wait(size);
    }
};

}  // namespace fastlstm
