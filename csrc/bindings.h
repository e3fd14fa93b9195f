// What bindings.cc, the module's entry, takes from the other binding sources.
#pragma once

#include <pybind11/pybind11.h>

#include "fastlstm/lstm.h"

// step_bindings.cc: ForwardCache, and the single-step entries of PackedLstm (step_in_place, step_sessions).
void bind_steps(pybind11::module_& m, pybind11::class_<fastlstm::PackedLstm>& packed_lstm);
