// fastlstm._core, continued (bindings.cc holds the rest): the submodules that only the tests and the benchmark
// use, fastlstm._core.testing (single kernels, roundings, counters of the core's rarer paths) and
// fastlstm._core.calibration (the ceilings of the benchmark's "% peak" and "% bound").
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bindings.h"
#include "openmp_team.h"
#include "fastlstm/bf16.h"
#include "fastlstm/calibration.h"
#include "fastlstm/dispatch.h"
#include "fastlstm/int8.h"
#include "fastlstm/lstm.h"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;

FloatArray activation(const std::string& isa, const std::string& function, const FloatArray& x) {
    const fastlstm::KernelSet& kernels = kernel_set_named(isa);
    fastlstm::f32_activation_fn apply = function == "sigmoid" ? kernels.sigmoid
                                        : function == "tanh"  ? kernels.tanh
                                                              : nullptr;
    if (!apply) throw py::value_error("_core: unknown activation '" + function + "'");
    FloatArray y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    apply(x.size(), x.data(), y.mutable_data());
    return y;
}

}  // namespace

// Kernels and roundings of the core, exposed one by one so that tests can compare them with exact references.
void bind_testing(py::module_& testing) {
    testing.def(
        "handoff_every_step", &fastlstm::set_handoff_every_step_for_tests, py::arg("on"),
        "While on, a bidirectional call's two threads hand its directions to each other after nearly every "
        "step, and help with each other's chunk projections whenever idle; a team that splits the hidden units "
        "shrinks to its first member at the end of every chunk and grows back at the next one that finds the others "
        "waiting.");
    testing.def("handoffs_so_far", &fastlstm::handoffs_so_far,
                "How many times a direction of a bidirectional call has changed threads between two steps, in this "
                "process.");
    testing.def("team_shrinks_so_far", &fastlstm::team_shrinks_so_far,
                "How many times a team that split the hidden units shrank to its first member, in this process.");
    testing.def("team_regrowths_so_far", &fastlstm::team_regrowths_so_far,
                "How many times the other members of such a team joined it again after it shrank, in this process.");
    testing.def("late_join", &fastlstm::set_late_join_for_tests, py::arg("on"),
                "While on, the other members of a team that splits the hidden units join its first member no "
                "earlier than before its second chunk, as a worker that starts late does.");
    testing.def("late_joins_so_far", &fastlstm::late_joins_so_far,
                "How many times members joined a team that splits the hidden units after its first had started "
                "alone, in this process.");
    testing.def("openmp_team_calls_so_far", &fastlstm::openmp_team_calls_so_far,
                "How many calls ran their threads on the process's OpenMP runtime (openmp_teams), in this process.");
    testing.def("streamed_look_ahead_runs_so_far", &fastlstm::streamed_look_ahead_runs_so_far,
                "How many directions of calls ran the look-ahead step with its input weights streamed (weights past "
                "the cache-resident size), in this process.");
    testing.def("helped_projection_blocks_so_far", &fastlstm::helped_projection_blocks_so_far,
                "How many blocks of a chunk's input projection a thread ran for the other one's direction, in this "
                "process.");
    testing.def(
        "softmax_rows",
        [](const std::string& isa, const FloatArray& x) {
            if (x.ndim() != 2) throw py::value_error("_core: x must be 2-D");
            FloatArray y(std::vector<py::ssize_t>{x.shape(0), x.shape(1)});
            std::copy(x.data(), x.data() + x.size(), y.mutable_data());
            kernel_set_named(isa).softmax_rows(x.shape(0), x.shape(1), y.mutable_data(), x.shape(1));
            return y;
        },
        py::arg("isa"), py::arg("x").noconvert(), "The softmax of each row of x with one variant's kernel.");
    testing.def(
        "round_to_bf16",
        [](const FloatArray& x) {
            FloatArray y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
            for (py::ssize_t i = 0; i < x.size(); ++i)
                y.mutable_data()[i] = fastlstm::bf16_to_float(fastlstm::round_to_bf16(x.data()[i]));
            return y;
        },
        py::arg("x").noconvert(), "x rounded to bf16 as the core rounds (ties to even), as float32.");
    testing.def(
        "quantize_to_int8",
        [](const FloatArray& x) {
            if (x.ndim() != 2) throw py::value_error("_core: x must be 2-D");
            const int64_t rows = x.shape(0), K = x.shape(1);
            py::array_t<int8_t> codes(std::vector<py::ssize_t>{rows, K});
            FloatArray scales(std::vector<py::ssize_t>{rows});
            for (int64_t r = 0; r < rows; ++r)
                scales.mutable_data()[r] =
                    fastlstm::quantize_row_to_int8(K, x.data() + r * K, codes.mutable_data() + r * K);
            return std::make_pair(codes, scales);
        },
        py::arg("x").noconvert(), "(codes, scales) of each row of x as the core quantizes to int8.");
    testing.def(
        "look_ahead_loop",
        [](const std::string& isa, const FloatArray& recurrent, const FloatArray& inputs, const FloatArray& h,
           const FloatArray& x, int64_t steps) {
            const fastlstm::KernelSet& kernels = kernel_set_named(isa);
            if (kernels.look_ahead_loop == nullptr) throw py::value_error("_core: no look-ahead loop in " + isa);
            const int64_t width = 4 * kernels.hidden_block;
            if (recurrent.ndim() != 3 || inputs.ndim() != 3 || h.ndim() != 1 || x.ndim() != 2 ||
                recurrent.shape(2) != width || inputs.shape(2) != width || inputs.shape(0) != recurrent.shape(0) ||
                h.shape(0) != recurrent.shape(1) || x.shape(0) != fastlstm::kLookAheadPieceRows ||
                x.shape(1) != inputs.shape(1) || steps < 0)
                throw py::value_error(
                    "_core: recurrent (panels, recurrent_k, 4 * hidden_block), inputs (panels, input_k, 4 * "
                    "hidden_block), h (recurrent_k,), x (kLookAheadPieceRows, input_k), steps >= 0");
            return kernels.look_ahead_loop(recurrent.data(), inputs.data(), h.data(), x.data(), recurrent.shape(0),
                                           recurrent.shape(1), inputs.shape(1), steps);
        },
        py::arg("isa"), py::arg("recurrent").noconvert(), py::arg("inputs").noconvert(), py::arg("h").noconvert(),
        py::arg("x").noconvert(), py::arg("steps"),
        "The sum of everything the ISA's look-ahead loop (the calibration kernel) multiplies and adds.");
    testing.def("activation", &activation, py::arg("isa"), py::arg("function"), py::arg("x").noconvert(),
                "The step kernel's sigmoid or tanh of one ISA, applied to an array.");
}

// The ceilings the benchmark reports its figures against ("% peak", "% bound").
void bind_calibration(py::module_& calibration) {
    calibration.def(
        "fma_peak_gflops",
        [](const std::string& isa, int threads, double seconds) {
            if (threads < 1 || !(seconds > 0)) throw py::value_error("_core: threads >= 1 and seconds > 0");
            const fastlstm::KernelSet& kernels = kernel_set_named(isa);
            ReleasedGil release;
            return fastlstm::measure_fma_peak_gflops(kernels, threads, seconds);
        },
        py::arg("isa"), py::arg("threads"), py::arg("seconds"),
        "GFLOP/s of `threads` threads running the ISA's FMA calibration kernel for about `seconds`.");
    calibration.def(
        "read_bandwidth_gbs",
        [](const std::string& isa, int threads, int64_t bytes_per_thread, double seconds) {
            if (threads < 1 || bytes_per_thread < 1 || !(seconds > 0))
                throw py::value_error("_core: threads >= 1, bytes_per_thread >= 1 and seconds > 0");
            const fastlstm::KernelSet& kernels = kernel_set_named(isa);
            ReleasedGil release;
            return fastlstm::measure_read_bandwidth_gbs(kernels, threads, bytes_per_thread, seconds);
        },
        py::arg("isa"), py::arg("threads"), py::arg("bytes_per_thread"), py::arg("seconds"),
        "GB/s of `threads` threads each reading its own array of `bytes_per_thread` bytes again and again.");
    calibration.def(
        "look_ahead_loop_step_seconds",
        [](const std::string& isa, int64_t input_size, int64_t hidden_size, double seconds) {
            if (input_size < 1 || hidden_size < 1 || !(seconds > 0))
                throw py::value_error("_core: input_size >= 1, hidden_size >= 1 and seconds > 0");
            const fastlstm::KernelSet& kernels = kernel_set_named(isa);
            if (kernels.look_ahead_loop == nullptr)
                throw py::value_error("_core: the " + isa + " variant has no look-ahead kernel, so no look-ahead loop");
            ReleasedGil release;
            return fastlstm::measure_look_ahead_loop_step_seconds(kernels, input_size, hidden_size, seconds);
        },
        py::arg("isa"), py::arg("input_size"), py::arg("hidden_size"), py::arg("seconds"),
        "Seconds per batch-1 step of the ISA's look-ahead loop: the step's loads and multiply-adds alone, no cells.");
    calibration.def(
        "shared_work",
        [](const std::string& isa, int threads, int64_t units, int64_t iterations) {
            if (threads < 1 || units < 0 || iterations < 1)
                throw py::value_error("_core: threads >= 1, units >= 0 and iterations >= 1");
            const fastlstm::KernelSet& kernels = kernel_set_named(isa);
            ReleasedGil release;
            fastlstm::run_shared_work(kernels, threads, units, iterations);
        },
        py::arg("isa"), py::arg("threads"), py::arg("units"), py::arg("iterations"),
        "`units` runs of `iterations` of the FMA kernel, each taken by whichever of `threads` threads is free.");
}
