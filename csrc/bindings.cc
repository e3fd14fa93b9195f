// The only files that see Python: this one, the entry of fastlstm._core, step_bindings.cc and testing_bindings.cc.
// It accepts exactly what the core expects (C-contiguous float32 arrays of the right shapes, no implicit
// conversion), allocates the outputs, and releases the GIL around the work. Friendly validation lives in the Python
// package; the checks here only keep a direct caller from crashing.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "bindings.h"
#include "openmp_team.h"
#include "fastlstm/int8.h"
#include "fastlstm/dispatch.h"
#include "fastlstm/linear.h"
#include "fastlstm/lstm.h"

namespace py = pybind11;
using fastlstm::PackedLstm;

// bindings.h
const fastlstm::KernelSet& kernel_set_named(const std::string& isa) {
    const fastlstm::KernelSet* kernels = fastlstm::find_kernel_set(isa.c_str());
    if (!kernels) throw py::value_error("_core: unknown ISA '" + isa + "'");
    if (!fastlstm::cpu_supports(*kernels)) throw py::value_error("_core: this CPU cannot run ISA '" + isa + "'");
    return *kernels;
}

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;

bool has_shape(const FloatArray& array, const std::vector<int64_t>& shape) {
    bool same = array.ndim() == static_cast<py::ssize_t>(shape.size());
    for (std::size_t i = 0; same && i < shape.size(); ++i) same = array.shape(i) == shape[i];
    return same;
}

void require_shape(const FloatArray& array, const std::vector<int64_t>& shape, const char* name) {
    if (!has_shape(array, shape)) throw py::value_error(std::string("_core: ") + name + " has the wrong shape");
}

std::vector<std::string> isa_names(bool supported_only) {
    int64_t count = 0;
    const fastlstm::KernelSet* sets = fastlstm::compiled_kernel_sets(&count);
    std::vector<std::string> names;
    for (int64_t i = 0; i < count; ++i)
        if (!supported_only || fastlstm::cpu_supports(sets[i])) names.emplace_back(sets[i].isa);
    return names;
}

fastlstm::Precision precision_named(const std::string& name) {
    if (name == "fp32") return fastlstm::Precision::kF32;
    if (name == "bf16") return fastlstm::Precision::kBF16;
    if (name == "int8") return fastlstm::Precision::kInt8;
    throw py::value_error("_core: unknown precision '" + name + "'");
}

PackedLstm* make_packed_lstm(const std::string& isa, int64_t input_size, int64_t hidden_size, int64_t proj_size,
                             int64_t num_layers, int64_t num_directions, bool reverse, const std::string& precision) {
    if (input_size <= 0 || hidden_size <= 0 || proj_size < 0 || proj_size >= hidden_size || num_layers <= 0 ||
        (num_directions != 1 && num_directions != 2) || (reverse && num_directions != 1))
        throw py::value_error("_core: invalid LSTM geometry");
    fastlstm::LstmGeometry geometry;
    geometry.input_size = input_size;
    geometry.hidden_size = hidden_size;
    geometry.proj_size = proj_size;
    geometry.num_layers = num_layers;
    geometry.num_directions = num_directions;
    geometry.reverse = reverse;
    return new PackedLstm(kernel_set_named(isa), geometry, precision_named(precision));
}

void pack_cell(PackedLstm& lstm, int64_t layer, int64_t direction, const FloatArray& w_ih, const FloatArray& w_hh,
               const std::optional<FloatArray>& b_ih, const std::optional<FloatArray>& b_hh,
               const std::optional<FloatArray>& w_hr, const std::optional<FloatArray>& peepholes,
               const std::optional<std::vector<std::tuple<int, float, float>>>& activations, float clip,
               bool input_forget) {
    const fastlstm::LstmGeometry& g = lstm.geometry();
    if (layer < 0 || layer >= g.num_layers || direction < 0 || direction >= g.num_directions)
        throw py::value_error("_core: layer or direction out of range");
    const int64_t H = g.hidden_size;
    require_shape(w_ih, {4 * H, g.layer_input_size(layer)}, "w_ih");
    require_shape(w_hh, {4 * H, g.output_size()}, "w_hh");
    if (b_ih.has_value() != b_hh.has_value()) throw py::value_error("_core: give both biases or neither");
    if (b_ih) require_shape(*b_ih, {4 * H}, "b_ih");
    if (b_hh) require_shape(*b_hh, {4 * H}, "b_hh");
    if (w_hr.has_value() != (g.proj_size > 0)) throw py::value_error("_core: w_hr must be given iff proj_size > 0");
    if (w_hr) require_shape(*w_hr, {g.proj_size, H}, "w_hr");

    fastlstm::CellWeights weights;
    weights.w_ih = w_ih.data();
    weights.w_hh = w_hh.data();
    weights.b_ih = b_ih ? b_ih->data() : nullptr;
    weights.b_hh = b_hh ? b_hh->data() : nullptr;
    weights.w_hr = w_hr ? w_hr->data() : nullptr;
    if (peepholes) {
        require_shape(*peepholes, {3, H}, "peepholes");
        weights.peepholes = peepholes->data();
    }
    fastlstm::CellOptions options;  // its defaults are the standard cell; activations=None keeps them
    if (activations || clip > 0 || input_forget) {
        if (!(clip >= 0)) throw py::value_error("_core: clip must be >= 0");
        if (activations) {
            const auto& specs = *activations;
            if (specs.size() != 3) throw py::value_error("_core: activations must be 3 (gate, candidate, output)");
            fastlstm::ActivationSpec* targets[3] = {&options.gate, &options.candidate, &options.output};
            for (int i = 0; i < 3; ++i) {
                const int kind = std::get<0>(specs[i]);
                if (kind < 0 || kind > static_cast<int>(fastlstm::Activation::kSoftplus))
                    throw py::value_error("_core: unknown activation");
                *targets[i] = {static_cast<fastlstm::Activation>(kind), std::get<1>(specs[i]), std::get<2>(specs[i])};
            }
        }
        options.clip = clip;
        options.input_forget = input_forget;
        weights.options = &options;
    }
    ReleasedGil release;
    lstm.pack_cell(layer, direction, weights);
}

// The output for x, from the states h0, c0 (null: zeros) to h_n, c_n (which may be h0, c0 themselves).
using LengthArray = py::array_t<int64_t, py::array::c_style>;

FloatArray run_forward(const PackedLstm& lstm, const FloatArray& x, bool batch_first, const float* h0, const float* c0,
                       float* h_n, float* c_n, int threads, const LengthArray* lengths = nullptr,
                       fastlstm::ForwardCache* cache = nullptr) {
    const fastlstm::LstmGeometry& g = lstm.geometry();
    const int64_t T = batch_first ? x.shape(1) : x.shape(0);
    const int64_t B = batch_first ? x.shape(0) : x.shape(1);
    const int64_t y_width = g.num_directions * g.output_size();
    FloatArray y(batch_first ? std::vector<py::ssize_t>{B, T, y_width} : std::vector<py::ssize_t>{T, B, y_width});

    fastlstm::ForwardArgs args;
    args.steps = T;
    args.batch = B;
    args.x = x.data();
    args.x_time_stride = batch_first ? g.input_size : B * g.input_size;
    args.x_batch_stride = batch_first ? T * g.input_size : g.input_size;
    args.y = y.mutable_data();
    args.y_time_stride = batch_first ? y_width : B * y_width;
    args.y_batch_stride = batch_first ? T * y_width : y_width;
    args.h0 = h0;
    args.c0 = c0;
    args.h_n = h_n;
    args.c_n = c_n;
    args.state_rows = B;
    if (lengths) {
        if (lengths->ndim() != 1 || lengths->shape(0) != B) throw py::value_error("_core: lengths has the wrong shape");
        for (int64_t b = 0; b < B; ++b)
            if (lengths->data()[b] < 0 || lengths->data()[b] > T) throw py::value_error("_core: lengths out of range");
        args.lengths = lengths->data();
    }
    if (threads < 0) throw py::value_error("_core: threads must be >= 0");
    {
        ReleasedGil release;
        lstm.forward(args, threads, cache);
    }
    return y;
}

void require_input(const PackedLstm& lstm, const FloatArray& x) {
    if (x.ndim() != 3 || x.shape(2) != lstm.geometry().input_size)
        throw py::value_error("_core: x has the wrong shape");
}

// (y, h_n, c_n) of a checked x from the checked states h0, c0 (null: zeros), in new arrays: what forward() and
// forward_plain() share.
std::tuple<FloatArray, FloatArray, FloatArray> forward_with_new_states(const PackedLstm& lstm, const FloatArray& x,
                                                                       bool batch_first, const float* h0,
                                                                       const float* c0, int threads,
                                                                       const LengthArray* lengths,
                                                                       fastlstm::ForwardCache* cache) {
    const fastlstm::LstmGeometry& g = lstm.geometry();
    const int64_t B = batch_first ? x.shape(0) : x.shape(1);
    const int64_t states = g.num_layers * g.num_directions;
    FloatArray h_n(std::vector<py::ssize_t>{states, B, g.output_size()});
    FloatArray c_n(std::vector<py::ssize_t>{states, B, g.hidden_size});
    FloatArray y =
        run_forward(lstm, x, batch_first, h0, c0, h_n.mutable_data(), c_n.mutable_data(), threads, lengths, cache);
    return {y, h_n, c_n};
}

std::tuple<FloatArray, FloatArray, FloatArray> forward(const PackedLstm& lstm, const FloatArray& x, bool batch_first,
                                                       const std::optional<FloatArray>& h0,
                                                       const std::optional<FloatArray>& c0, int threads,
                                                       const std::optional<LengthArray>& lengths) {
    const fastlstm::LstmGeometry& g = lstm.geometry();
    require_input(lstm, x);
    const int64_t B = batch_first ? x.shape(0) : x.shape(1);
    const int64_t states = g.num_layers * g.num_directions;
    if (h0) require_shape(*h0, {states, B, g.output_size()}, "h0");
    if (c0) require_shape(*c0, {states, B, g.hidden_size}, "c0");
    return forward_with_new_states(lstm, x, batch_first, h0 ? h0->data() : nullptr, c0 ? c0->data() : nullptr, threads,
                                   lengths ? &*lengths : nullptr, nullptr);
}

// Calls of at most this many rows (steps times batch) keep their scratch in the model's ForwardCache for the next
// call: in a short call, allocating and zeroing the workspaces is a noticeable part of the time, and what the cache
// then keeps is at most this many rows of the widest layer's gates and outputs. A longer call allocates its own,
// which it returns at its end, as before.
constexpr int64_t kCachedCallRows = 256;

// LSTM.__call__ without lengths, in one C++ call: x (T, B, I), or (B, T, I) when batch_first, from the state
// (h0, c0) or from zeros (both None) -> (y, h_n, c_n); None when x is not a plain float32 array of that shape with
// T, B >= 1, or a state is given that is not two plain float32 arrays of shapes (layers * directions, B, output
// size) and (layers * directions, B, hidden size), for the Python caller's validating path (which converts them or
// explains).
py::object forward_plain(const PackedLstm& lstm, py::handle x_object, bool batch_first, int threads,
                         fastlstm::ForwardCache& cache, py::handle h0_object, py::handle c0_object) {
    const fastlstm::LstmGeometry& g = lstm.geometry();
    if (!is_plain<float>(x_object, 3)) return py::none();
    const auto x = py::reinterpret_borrow<FloatArray>(x_object);
    if (x.shape(0) < 1 || x.shape(1) < 1 || x.shape(2) != g.input_size) return py::none();
    const float *h0 = nullptr, *c0 = nullptr;
    if (!h0_object.is_none() || !c0_object.is_none()) {
        if (!is_plain<float>(h0_object, 3) || !is_plain<float>(c0_object, 3)) return py::none();
        const auto h0_array = py::reinterpret_borrow<FloatArray>(h0_object);
        const auto c0_array = py::reinterpret_borrow<FloatArray>(c0_object);
        const int64_t states = g.num_layers * g.num_directions, B = batch_first ? x.shape(0) : x.shape(1);
        if (!has_shape(h0_array, {states, B, g.output_size()}) || !has_shape(c0_array, {states, B, g.hidden_size}))
            return py::none();
        h0 = h0_array.data();
        c0 = c0_array.data();
    }
    const bool short_call = x.shape(0) * x.shape(1) <= kCachedCallRows;
    auto [y, h_n, c_n] =
        forward_with_new_states(lstm, x, batch_first, h0, c0, threads, nullptr, short_call ? &cache : nullptr);
    return py::make_tuple(std::move(y), std::move(h_n), std::move(c_n));
}

// A PackedSequence's own layout: x is (rows, I) with step t's batch_sizes[t] rows (a non-increasing count) after
// those of the steps before, each step's rows a prefix of the batch ranked by decreasing length; h0 and c0 are in
// that rank order. Returns y (rows, directions * output_size) in the same layout, and h_n, c_n in rank order. The
// rows are read and written where they are: no padding, no copy.
std::tuple<FloatArray, FloatArray, FloatArray> forward_packed(const PackedLstm& lstm, const FloatArray& x,
                                                              const LengthArray& batch_sizes, const FloatArray& h0,
                                                              const FloatArray& c0, int threads) {
    const fastlstm::LstmGeometry& g = lstm.geometry();
    if (x.ndim() != 2 || x.shape(1) != g.input_size) throw py::value_error("_core: x has the wrong shape");
    if (batch_sizes.ndim() != 1) throw py::value_error("_core: batch_sizes must be 1-D");
    const int64_t T = batch_sizes.shape(0);
    const int64_t* sizes = batch_sizes.data();
    std::vector<int64_t> offsets(T + 1, 0);
    for (int64_t t = 0; t < T; ++t) {
        if (sizes[t] < 1 || (t > 0 && sizes[t] > sizes[t - 1]))
            throw py::value_error("_core: batch_sizes must be positive and non-increasing");
        offsets[t + 1] = offsets[t] + sizes[t];
    }
    if (offsets[T] != x.shape(0)) throw py::value_error("_core: batch_sizes do not add up to the rows of x");
    const int64_t B = T > 0 ? sizes[0] : 0, states = g.num_layers * g.num_directions;
    require_shape(h0, {states, B, g.output_size()}, "h0");
    require_shape(c0, {states, B, g.hidden_size}, "c0");
    if (threads < 0) throw py::value_error("_core: threads must be >= 0");
    const int64_t width = g.num_directions * g.output_size();
    FloatArray y(std::vector<py::ssize_t>{x.shape(0), width});
    FloatArray h_n(std::vector<py::ssize_t>{states, B, g.output_size()});
    FloatArray c_n(std::vector<py::ssize_t>{states, B, g.hidden_size});
    fastlstm::ForwardArgs args;
    args.steps = T;
    args.batch = B;
    args.x = x.data();
    args.y = y.mutable_data();
    args.h0 = h0.data();
    args.c0 = c0.data();
    args.h_n = h_n.mutable_data();
    args.c_n = c_n.mutable_data();
    args.state_rows = B;
    // Every row as long as the others: (T, B, I) exactly, the plain run (which may look ahead or split the batch).
    const bool equal_lengths = T == 0 || sizes[T - 1] == B;
    args.x_time_stride = B * g.input_size;
    args.x_batch_stride = g.input_size;
    args.y_time_stride = B * width;
    args.y_batch_stride = width;
    if (!equal_lengths) args.step_offsets = offsets.data();
    {
        ReleasedGil release;
        lstm.forward(args, threads);
    }
    return {y, h_n, c_n};
}

// The same with the state (h, c) read and written in place: what a stream keeps between its calls.
FloatArray forward_in_place(const PackedLstm& lstm, const FloatArray& x, bool batch_first, FloatArray& h, FloatArray& c,
                            int threads) {
    const fastlstm::LstmGeometry& g = lstm.geometry();
    require_input(lstm, x);
    const int64_t B = batch_first ? x.shape(0) : x.shape(1);
    const int64_t states = g.num_layers * g.num_directions;
    require_shape(h, {states, B, g.output_size()}, "h");
    require_shape(c, {states, B, g.hidden_size}, "c");
    if (!h.writeable() || !c.writeable()) throw py::value_error("_core: the state must be writeable");
    return run_forward(lstm, x, batch_first, h.data(), c.data(), h.mutable_data(), c.mutable_data(), threads);
}

// Which kernel variants there are: fastlstm._isa's dispatch reads them.
void bind_isa_queries(py::module_& m) {
    m.def("compiled_isas", [] { return isa_names(false); }, "Kernel variants compiled into this build.");
    m.def("supported_isas", [] { return isa_names(true); }, "Compiled variants this CPU can run, portable first.");
    m.def("best_isa", [] { return std::string(fastlstm::best_kernel_set().isa); }, "The best variant for this CPU.");
    m.def("openmp_teams", &fastlstm::set_openmp_teams_for_this_thread, py::arg("on"),
          "While on, this thread's calls run their threads on the OpenMP runtime loaded in the process (PyTorch's), "
          "where there is one; returns the previous setting.");
}

// The classifier head of fastlstm.SequenceModel.
void bind_packed_linear(py::module_& m) {
    py::class_<fastlstm::PackedLinear>(m, "PackedLinear")
        .def(py::init([](const std::string& isa, const FloatArray& weight, const std::optional<FloatArray>& bias) {
                 if (weight.ndim() != 2 || weight.shape(0) < 1 || weight.shape(1) < 1)
                     throw py::value_error("_core: weight has the wrong shape");
                 if (bias) require_shape(*bias, {weight.shape(0)}, "bias");
                 return new fastlstm::PackedLinear(kernel_set_named(isa), weight.shape(1), weight.shape(0),
                                                   weight.data(), bias ? bias->data() : nullptr);
             }),
             py::arg("isa"), py::arg("weight").noconvert(), py::arg("bias").noconvert())
        .def(
            "forward",
            [](const fastlstm::PackedLinear& linear, const FloatArray& x, bool softmax, int threads) {
                if (x.ndim() != 2 || x.shape(1) != linear.in_features())
                    throw py::value_error("_core: x has the wrong shape");
                if (threads < 0) throw py::value_error("_core: threads must be >= 0");
                const int64_t rows = x.shape(0);
                FloatArray out(std::vector<py::ssize_t>{rows, linear.out_features()});
                float* out_data = out.mutable_data();
                const float* x_data = x.data();
                ReleasedGil release;
                linear.forward(rows, x_data, linear.in_features(), out_data, linear.out_features(), softmax, threads);
                return out;
            },
            py::arg("x").noconvert(), py::arg("softmax"), py::arg("threads"),
            "x (rows, in_features) -> x W^T + b, or its softmax per row, (rows, out_features).");
}

// The packed LSTM of fastlstm.LSTM (and, through it, of every model class, Stream and Sessions).
py::class_<PackedLstm> bind_packed_lstm(py::module_& m) {
    return py::class_<PackedLstm>(m, "PackedLstm")
        .def(py::init(&make_packed_lstm), py::arg("isa"), py::arg("input_size"), py::arg("hidden_size"),
             py::arg("proj_size"), py::arg("num_layers"), py::arg("num_directions"), py::arg("reverse") = false,
             py::arg("precision") = "fp32")
        .def_property_readonly("isa", [](const PackedLstm& lstm) { return std::string(lstm.kernels().isa); })
        .def("pack_cell", &pack_cell, py::arg("layer"), py::arg("direction"), py::arg("w_ih").noconvert(),
             py::arg("w_hh").noconvert(), py::arg("b_ih").noconvert(), py::arg("b_hh").noconvert(),
             py::arg("w_hr").noconvert(), py::arg("peepholes").noconvert() = py::none(),
             py::arg("activations") = py::none(), py::arg("clip") = 0.0f, py::arg("input_forget") = false,
             "Packs the weights of one layer and direction (PyTorch layout), with the cell's options: peepholes\n"
             "(3, H), activations [(kind, alpha, beta)] x 3 for gate, candidate, output (None: the standard cell),\n"
             "clip (0: none).")
        .def("forward_in_place", &forward_in_place, py::arg("x").noconvert(), py::arg("batch_first"),
             py::arg("h").noconvert(), py::arg("c").noconvert(), py::arg("threads"))
        .def("forward", &forward, py::arg("x").noconvert(), py::arg("batch_first"), py::arg("h0").noconvert(),
             py::arg("c0").noconvert(), py::arg("threads"), py::arg("lengths").noconvert() = py::none(),
             "Runs the sequence on up to `threads` threads (0: automatic); returns (y, h_n, c_n).\n"
             "x is (T, B, I), or (B, T, I) when batch_first.")
        .def("forward_plain", &forward_plain, py::arg("x"), py::arg("batch_first"), py::arg("threads"),
             py::arg("cache"), py::arg("h0") = py::none(), py::arg("c0") = py::none(),
             "forward() for a plain x, from (h0, c0) or from zeros (both None): (y, h_n, c_n), or None unless x is\n"
             "C-contiguous, aligned float32 (T, B, I) (or (B, T, I) when batch_first) with T, B >= 1 and h0, c0 are\n"
             "None or such arrays of shapes (layers * directions, B, output size), (layers * directions, B, hidden\n"
             "size). Short calls keep their scratch in `cache`.")
        .def("forward_packed", &forward_packed, py::arg("x").noconvert(), py::arg("batch_sizes").noconvert(),
             py::arg("h0").noconvert(), py::arg("c0").noconvert(), py::arg("threads"),
             "Runs a PackedSequence's rows, x (rows, I) with batch_sizes (T,) and h0, c0 in its rank order, where\n"
             "they are; returns (y (rows, directions * output_size), h_n, c_n), the states in rank order.")
        .def("automatic_threads", &PackedLstm::automatic_threads, py::arg("steps"), py::arg("batch"),
             py::arg("initial_state"), "The number of threads forward() uses with threads=0 (with h0 or without).");
}

}  // namespace

// What fastlstm's modules use sits in _core itself; what only tests and the benchmark use, in a submodule each.
// src/fastlstm/_core.pyi states the same for type checkers (tests/test_core_stub.py keeps the two equal).
PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
    m.doc() = "fastlstm's C++ core. Private: use the fastlstm package.";
    m.attr("__version__") = FASTLSTM_VERSION;
    m.attr("INT8_MAX_DEPTH") = fastlstm::kInt8MaxDepth;  // the Python check reads the core's limit
    bind_isa_queries(m);
    bind_packed_linear(m);
    py::class_<PackedLstm> packed_lstm = bind_packed_lstm(m);
    bind_steps(m, packed_lstm);
    py::module_ testing = m.def_submodule("testing", "Hooks into the core for the tests: single kernels, roundings.");
    bind_testing(testing);
    py::module_ calibration = m.def_submodule("calibration", "The benchmark's calibration: FMA peak, read bandwidth.");
    bind_calibration(calibration);
}
