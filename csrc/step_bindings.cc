// fastlstm._core, continued (bindings.cc holds the rest): the single-step entries of Stream.step and
// Sessions.step, which pay for one C++ call and nothing else. Each takes its arguments as plain Python objects and
// reads a few fields of them: when the frames are not a C-contiguous, aligned, native float32 array of the shape
// the step needs, it returns None and the Python caller takes its validating path (which converts or explains);
// the state arrays, which the callers own, must be right or the call raises.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "bindings.h"
#include "fastlstm/lstm.h"
#include "fastlstm/step_queue.h"

namespace py = pybind11;
using fastlstm::ForwardCache;
using fastlstm::PackedLstm;
using fastlstm::SessionRows;
using fastlstm::StepQueue;

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;

// A state array of the caller: plain float32, writeable, of exactly `shape`.
float* state_data(py::handle object, std::initializer_list<py::ssize_t> shape, const char* name) {
    bool same = is_plain<float>(object, static_cast<py::ssize_t>(shape.size()));
    auto array = py::reinterpret_borrow<py::array>(object);
    same = same && array.writeable();
    py::ssize_t axis = 0;
    for (const py::ssize_t size : shape) same = same && array.shape(axis++) == size;
    if (!same) throw py::value_error(std::string("_core: ") + name + " must be a writeable float32 state array");
    return static_cast<float*>(array.mutable_data());
}

// The rows of a stream's state: axis 1 of h (layers, B, output_size).
py::ssize_t state_rows(py::handle h) {
    if (!py::isinstance<py::array>(h) || py::reinterpret_borrow<py::array>(h).ndim() != 3)
        throw py::value_error("_core: h must be a float32 state array");
    return py::reinterpret_borrow<py::array>(h).shape(1);
}

// Stream.step: x (B, input_size) -> y (B, num_directions * output_size), the state h (layers, B, output_size) and
// c (layers, B, hidden_size) updated in place; None when x is not plain float32 of that shape.
py::object step_in_place(const PackedLstm& lstm, py::handle x_object, py::handle h_object, py::handle c_object,
                         int threads, ForwardCache& cache) {
    const fastlstm::LstmGeometry& g = lstm.geometry();
    const py::ssize_t layers = g.num_layers * g.num_directions;
    const py::ssize_t B = state_rows(h_object);
    if (!is_plain<float>(x_object, 2)) return py::none();
    const auto x = py::reinterpret_borrow<py::array>(x_object);
    if (x.shape(0) != B || x.shape(1) != g.input_size) return py::none();
    float* h = state_data(h_object, {layers, B, g.output_size()}, "h");
    float* c = state_data(c_object, {layers, B, g.hidden_size}, "c");
    if (threads < 0) throw py::value_error("_core: threads must be >= 0");
    const py::ssize_t width = g.num_directions * g.output_size();
    FloatArray y(std::vector<py::ssize_t>{B, width});
    fastlstm::ForwardArgs args;
    args.steps = 1;
    args.batch = B;
    args.x = static_cast<const float*>(x.data());
    args.x_time_stride = B * g.input_size;
    args.x_batch_stride = g.input_size;
    args.y = y.mutable_data();
    args.y_time_stride = B * width;
    args.y_batch_stride = width;
    args.h0 = args.h_n = h;
    args.c0 = args.c_n = c;
    args.state_rows = B;
    {
        ReleasedGil release;
        lstm.forward(args, threads, &cache);
    }
    return std::move(y);
}

// Sessions.step: x (n, input_size) for the sessions `ids` (n,) int64 -> their outputs (n, width), in that order;
// None when x or ids are not plain arrays of those shapes. An id that is not open, or listed twice, raises
// KeyError before anything is stepped (the Python caller then says which and why).
py::object step_sessions(const PackedLstm& lstm, py::handle x_object, py::handle ids_object,
                         py::handle generations_object, py::handle h_object, py::handle c_object, int threads,
                         ForwardCache& cache) {
    const fastlstm::LstmGeometry& g = lstm.geometry();
    const py::ssize_t layers = g.num_layers * g.num_directions;
    if (!is_plain<float>(x_object, 2) || !is_plain<int64_t>(ids_object, 1)) return py::none();
    const auto x = py::reinterpret_borrow<py::array>(x_object);
    const auto ids = py::reinterpret_borrow<py::array>(ids_object);
    if (x.shape(1) != g.input_size || ids.shape(0) != x.shape(0)) return py::none();
    if (!is_plain<int64_t>(generations_object, 1)) throw py::value_error("_core: generations must be an int64 array");
    const auto generations = py::reinterpret_borrow<py::array>(generations_object);
    const py::ssize_t capacity = generations.shape(0), n = x.shape(0);
    float* h = state_data(h_object, {layers, capacity, g.output_size()}, "h");
    float* c = state_data(c_object, {layers, capacity, g.hidden_size}, "c");
    if (threads < 0) throw py::value_error("_core: threads must be >= 0");
    std::vector<int64_t> slots(static_cast<std::size_t>(n));
    if (!fastlstm::open_session_slots(static_cast<const int64_t*>(generations.data()), capacity,
                                      static_cast<const int64_t*>(ids.data()), n, slots.data())
             .empty())
        throw py::key_error("_core: a session id is not open, or listed twice");
    const py::ssize_t width = g.num_directions * g.output_size();
    FloatArray y(std::vector<py::ssize_t>{n, width});
    fastlstm::RowStepArgs args;
    args.rows = n;
    args.x = static_cast<const float*>(x.data());
    args.y = y.mutable_data();
    args.slots = slots.data();
    args.capacity = capacity;
    args.h = h;
    args.c = c;
    {
        ReleasedGil release;
        lstm.step_rows(args, threads, &cache);
    }
    return std::move(y);
}

// SessionRows.attach: the pool's state arrays, h (layers, capacity, h_width), c (layers, capacity, c_width) and
// generations (capacity,), which the pool keeps alive; called with the rows' mutex held.
void attach_rows(SessionRows& rows, py::handle h_object, py::handle c_object, py::handle generations_object) {
    if (!is_plain<float>(h_object, 3) || !is_plain<float>(c_object, 3) || !is_plain<int64_t>(generations_object, 1))
        throw py::value_error("_core: attach takes float32 h and c (layers, capacity, width) and int64 generations");
    const auto h = py::reinterpret_borrow<py::array>(h_object);
    const auto c = py::reinterpret_borrow<py::array>(c_object);
    const auto generations = py::reinterpret_borrow<py::array>(generations_object);
    const py::ssize_t capacity = generations.shape(0);
    float* h_data = state_data(h_object, {h.shape(0), capacity, h.shape(2)}, "h");
    float* c_data = state_data(c_object, {h.shape(0), capacity, c.shape(2)}, "c");
    rows.h = h_data;
    rows.c = c_data;
    rows.generations = static_cast<const int64_t*>(generations.data());
    rows.capacity = capacity;
    rows.layers = h.shape(0);
    rows.h_width = h.shape(2);
    rows.c_width = c.shape(2);
}

// `with rows:` holds the rows' mutex, waiting for it without the GIL (a queued step may hold it for a while); in a
// fork's child, a new one (adopt_after_fork).
void lock_rows(SessionRows& rows) {
    fastlstm::adopt_after_fork(rows);
    if (rows.mutex.try_lock()) return;
    ReleasedGil release;
    rows.mutex.lock();
}

// StepQueue.push_sessions: one step of the sessions `ids` (n,) int64 of `rows` with frames x (n, input_size),
// queued; returns (ticket, y), y (n, width) written once the ticket is reported finished. The caller keeps x, y,
// the model and the rows alive until then.
py::tuple push_sessions(StepQueue& queue, const PackedLstm& lstm, SessionRows& rows, py::handle x_object,
                        py::handle ids_object, int threads, ForwardCache& cache) {
    const fastlstm::LstmGeometry& g = lstm.geometry();
    if (!is_plain<float>(x_object, 2) || !is_plain<int64_t>(ids_object, 1))
        throw py::value_error("_core: push_sessions takes float32 frames x (n, input_size) and int64 ids (n,)");
    const auto x = py::reinterpret_borrow<py::array>(x_object);
    const auto ids = py::reinterpret_borrow<py::array>(ids_object);
    if (x.shape(1) != g.input_size || ids.shape(0) != x.shape(0))
        throw py::value_error("_core: push_sessions takes x (n, input_size) and ids (n,)");
    if (rows.layers != g.num_layers * g.num_directions || rows.h_width != g.output_size() ||
        rows.c_width != g.hidden_size)
        throw py::value_error("_core: the session rows do not have this model's state shape");
    if (threads < 0) throw py::value_error("_core: threads must be >= 0");
    const py::ssize_t n = x.shape(0), width = g.num_directions * g.output_size();
    FloatArray y(std::vector<py::ssize_t>{n, width});
    const int64_t ticket = queue.push(lstm, rows, static_cast<const int64_t*>(ids.data()), n,
                                      static_cast<const float*>(x.data()), y.mutable_data(), threads, &cache);
    return py::make_tuple(ticket, std::move(y));
}

// [(ticket, error or None, skipped rows)] of finished steps.
py::list report(const std::vector<StepQueue::Finished>& finished) {
    py::list reported;
    for (const StepQueue::Finished& done : finished) {
        py::object error = done.error.empty() ? py::object(py::none()) : py::object(py::str(done.error));
        py::list skipped;
        for (const int64_t row : done.skipped) skipped.append(row);
        reported.append(py::make_tuple(done.ticket, std::move(error), std::move(skipped)));
    }
    return reported;
}

// StepQueue.wait_finished: report() of the steps finished since the last report, waiting without the GIL.
py::list wait_finished(StepQueue& queue, double timeout_seconds) {
    std::vector<StepQueue::Finished> finished;
    {
        ReleasedGil release;
        finished = queue.wait_finished(timeout_seconds);
    }
    return report(finished);
}

}  // namespace

void bind_steps(py::module_& m, py::class_<PackedLstm>& packed_lstm) {
    py::class_<ForwardCache>(m, "ForwardCache",
                             "Scratch kept between one caller's calls of the same shape (a stream's, a pool's).")
        .def(py::init<>());
    packed_lstm
        .def("step_in_place", &step_in_place, py::arg("x"), py::arg("h"), py::arg("c"), py::arg("threads"),
             py::arg("cache"),
             "One step of x (B, I) from the state (h, c), updated in place; None unless x is C-contiguous, aligned\n"
             "float32 of that shape.")
        .def("step_sessions", &step_sessions, py::arg("x"), py::arg("ids"), py::arg("generations"), py::arg("h"),
             py::arg("c"), py::arg("threads"), py::arg("cache"),
             "One step of the sessions `ids` (n,) int64 with frames x (n, I), their states rows of (h, c) updated\n"
             "in place; None unless x and ids are plain arrays of those shapes; KeyError for an id not open or\n"
             "listed twice.");
    py::class_<SessionRows>(m, "SessionRows",
                            "A pool's state arrays as queued steps see them, and the mutex that guards them.")
        .def(py::init<>())
        .def("attach", &attach_rows, py::arg("h"), py::arg("c"), py::arg("generations"),
             "Point at the pool's h, c and generations (kept alive by the pool); call with the mutex held.")
        .def("__enter__", &lock_rows)
        .def(
            "__exit__", [](SessionRows& rows, py::handle, py::handle, py::handle) { rows.mutex.unlock(); },
            py::arg("exc_type"), py::arg("exc_value"), py::arg("traceback"));
    py::class_<StepQueue>(m, "StepQueue",
                          "Session steps run in order by a thread of the queue's own, which never takes the GIL.")
        .def(py::init<>())
        .def("push_sessions", &push_sessions, py::arg("lstm"), py::arg("rows"), py::arg("x"), py::arg("ids"),
             py::arg("threads"), py::arg("cache"),
             "Queue one step of the sessions `ids` of `rows`; returns (ticket, y), y written once the ticket is\n"
             "reported finished. RuntimeError in a process forked since the queue started.")
        .def("wait_finished", &wait_finished, py::arg("timeout"),
             "[(ticket, error or None, skipped rows)] of the steps finished since the last call; when none, first\n"
             "waits for one, for nudge() or for `timeout` seconds (negative: no limit), without the GIL.")
        .def("nudge", &StepQueue::nudge, "End the current or next wait_finished early.")
        .def(
            "take_finished", [](StepQueue& queue) { return report(queue.take_finished()); },
            "wait_finished's report of the steps finished since the last report, without waiting.")
        .def("set_wakeup_fd", &StepQueue::set_wakeup_fd, py::arg("fd"), py::arg("grace"),
             "With fd >= 0, a byte written to fd as each step finishes, and wait_finished leaving a finished step\n"
             "to take_finished for `grace` seconds; fd < 0: neither. A former fd may be closed once this returns.")
        .def_property_readonly("outstanding", &StepQueue::outstanding,
                               "Steps pushed and not yet reported by wait_finished or take_finished.")
        .def_property_readonly("busy_seconds", &StepQueue::busy_seconds,
                               "Seconds the queue's thread has spent stepping so far.");
}
