// What bindings.cc, the module's entry, takes from the other binding sources.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <chrono>
#include <string>
#include <thread>
#if defined(__GLIBCXX__)
#include <cxxabi.h>  // abi::__forced_unwind
#endif

#include "fastlstm/lstm.h"

// The GIL released for a call's C++, and taken back at its end, as py::gil_scoped_release does, except in a thread
// that Python's shutdown began to end meanwhile: a daemon thread (a user's, or a batcher's) whose call was running
// when the main thread exited. Python ends such a thread inside its attempt to take the GIL back (pthread_exit, a
// forced unwind), which would unwind this destructor; C++ answers an unwinding through a destructor with
// std::terminate, and the process died with code 134. That thread instead waits here, without the GIL, for the
// process to end:
// - when the shutdown had begun by the end of the call (checked first: no attempt to take the GIL at all);
// - when it begins while the thread waits for the GIL (the main thread holds it through most of its exit): the
//   forced unwind is caught right here, after Python has let the GIL go, and the handler never ends (ending it
//   without a rethrow would abort). In CI the second case ended 1 run in 20 of tests/test_exit.py's model case,
//   when only the first was handled.
// A call that began after the shutdown had begun (the finalizing thread's own, from a __del__) takes the GIL back as
// usual.
class ReleasedGil {
   public:
    ReleasedGil() : finalizing_at_start_(interpreter_finalizing()), state_(PyEval_SaveThread()) {}
    ~ReleasedGil() {
        if (!finalizing_at_start_ && interpreter_finalizing()) wait_for_the_process_to_end();
#if defined(__GLIBCXX__)
        try {
            PyEval_RestoreThread(state_);
        } catch (abi::__forced_unwind&) {
            wait_for_the_process_to_end();
        }
#else
        PyEval_RestoreThread(state_);
#endif
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
    [[noreturn]] static void wait_for_the_process_to_end() {
        for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
    }
    bool finalizing_at_start_;
    PyThreadState* state_;
};

// Whether `object` is a C-contiguous, aligned, native-endian NumPy array of T with `ndim` dimensions: field reads
// only, no conversion (py::array_t's argument conversion costs a NumPy call per argument). The entries that pay for
// one C++ call (LSTM.__call__'s, Stream.step's, Sessions.step's) take their frames through it.
template <class T>
bool is_plain(pybind11::handle object, pybind11::ssize_t ndim) {
    namespace py = pybind11;
    constexpr int kPlainFlags = py::array::c_style | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
    if (!py::isinstance<py::array>(object)) return false;
    const auto array = py::reinterpret_borrow<py::array>(object);
    const py::dtype dtype = array.dtype();
    // NumPy spells the native byte order '=' (and '|' where it does not apply); '<' or '>' is the other one.
    const char order = dtype.byteorder();
    return array.ndim() == ndim && dtype.num() == py::dtype::num_of<T>() &&
           (array.flags() & kPlainFlags) == kPlainFlags && (order == '=' || order == '|');
}

// The kernel variant named `isa` (as fastlstm.available_isas() names them); a ValueError when there is none or this
// CPU cannot run it (bindings.cc).
const fastlstm::KernelSet& kernel_set_named(const std::string& isa);

// step_bindings.cc: ForwardCache, and the single-step entries of PackedLstm (step_in_place, step_sessions).
void bind_steps(pybind11::module_& m, pybind11::class_<fastlstm::PackedLstm>& packed_lstm);

// testing_bindings.cc: the submodules fastlstm._core.testing and fastlstm._core.calibration.
void bind_testing(pybind11::module_& testing);
void bind_calibration(pybind11::module_& calibration);
