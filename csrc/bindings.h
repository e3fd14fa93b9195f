// What bindings.cc, the module's entry, takes from the other binding sources.
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <thread>

#include "fastlstm/lstm.h"

// The GIL released for a call's C++, and taken back at its end, as py::gil_scoped_release does, except in a thread
// that Python's shutdown began to end meanwhile: a daemon thread (a user's, or a batcher's) whose call was running
// when the main thread exited. Python ends such a thread inside its attempt to take the GIL back (pthread_exit),
// which unwinds this C++ frame; C++ answers an unwinding through a destructor with std::terminate, and the process
// died with code 134. That thread instead waits here, without the GIL, for the process to end. A call that began
// after the shutdown had begun (the finalizing thread's own, from a __del__) takes the GIL back as usual. The check
// and the taking are two steps: a shutdown that begins between them still ends the old way, a window of a few
// instructions where it was a call's whole length.
class ReleasedGil {
   public:
    ReleasedGil() : finalizing_at_start_(interpreter_finalizing()), state_(PyEval_SaveThread()) {}
    ~ReleasedGil() {
        if (!finalizing_at_start_ && interpreter_finalizing())
            for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
        PyEval_RestoreThread(state_);
    }
    ReleasedGil(const ReleasedGil&) = delete;
    ReleasedGil& operator=(const ReleasedGil&) = delete;

   private:
    static bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
        return Py_IsFinalizing();
#else
        return _Py_IsFinalizing();
#endif
    }
    bool finalizing_at_start_;
    PyThreadState* state_;
};

// step_bindings.cc: ForwardCache, and the single-step entries of PackedLstm (step_in_place, step_sessions).
void bind_steps(pybind11::module_& m, pybind11::class_<fastlstm::PackedLstm>& packed_lstm);
