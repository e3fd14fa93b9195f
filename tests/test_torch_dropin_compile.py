"""``fastlstm.torch`` under ``torch.compile(fullgraph=True)`` and ``torch.export``: the fast path is one opaque
operator (``fastlstm::lstm``) in the graph, and the compiled or exported model computes bitwise what the eager fast
path computes (the operator runs the same core call on the same inputs).

Dynamo refuses every ``nn.LSTM`` module (ours subclass it) unless ``torch._dynamo.config.allow_rnn`` is set; the
first ``fastlstm.torch.LSTM`` of a process sets it, and dynamo then traces our forward, which is the operator call
(README, "In a PyTorch model")."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

import fastlstm.torch


@pytest.fixture(scope="module", autouse=True)
def inductor_imported():
    """torch's inductor, imported once here: its import runs torch.jit.script_method in torch.utils.mkldnn, which
    warns (DeprecationWarning) from inside torch itself, whoever compiles; the suite turns warnings into errors."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.script_method` is deprecated", DeprecationWarning)
        import torch._inductor.compile_fx  # noqa: F401


class Tagger(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.embedding = torch.nn.Embedding(100, 16)
        self.lstm = torch.nn.LSTM(16, 33, 2, bidirectional=True, batch_first=True)
        self.head = torch.nn.Linear(66, 5)

    def forward(self, tokens):
        return self.head(self.lstm(self.embedding(tokens))[0])


def recording_backend(graphs):
    def backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    return backend


def operators(graph_module) -> list:
    return [node.target for node in graph_module.graph.nodes if node.op == "call_function"]


def test_compile_fullgraph_sees_one_operator_and_matches_the_eager_fast_path():
    model = fastlstm.torch.optimize(Tagger().eval())
    graphs = []
    compiled = torch.compile(model, fullgraph=True, backend=recording_backend(graphs))
    with torch.inference_mode():
        for batch, steps in ((3, 7), (1, 17), (5, 2)):
            tokens = torch.randint(0, 100, (batch, steps))
            assert torch.equal(compiled(tokens), model(tokens))
    assert graphs
    for graph in graphs:
        targets = operators(graph)
        assert targets.count(torch.ops.fastlstm.lstm.default) == 1
        assert not any("aten.lstm" in str(target) or "_VF" in str(target) for target in targets)


def test_a_fresh_process_compiles_an_optimized_model_with_fullgraph_as_it_is():
    """No dynamo setting in user code: in a process of its own (this one has set it already), optimize() and
    torch.compile(fullgraph=True), as the README shows; dynamo's refusal of an nn.LSTM would raise."""
    import subprocess
    import sys

    script = """
import torch, torch._dynamo, fastlstm.torch
assert not torch._dynamo.config.allow_rnn
torch.manual_seed(3)
model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LSTM(6, 7, batch_first=True)).eval()
optimized = fastlstm.torch.optimize(model)
compiled = torch.compile(optimized, fullgraph=True, backend="eager")
x = torch.randn(2, 5, 4)
with torch.inference_mode():
    assert torch.equal(compiled(x)[0], optimized(x)[0])
print("compiled")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "compiled"


@pytest.mark.parametrize("proj_size", [0, 5])
def test_compile_with_inductor_matches_the_eager_fast_path(proj_size):
    """The default backend: the operator is opaque to inductor, so the LSTM's results are bitwise the eager ones."""
    torch.manual_seed(8)
    module = fastlstm.torch.optimize(torch.nn.LSTM(9, 17, 2, bidirectional=True, proj_size=proj_size).eval())
    compiled = torch.compile(module, fullgraph=True)
    x, state = torch.randn(6, 3, 9), (torch.randn(4, 3, proj_size or 17), torch.randn(4, 3, 17))
    with torch.inference_mode():
        for arguments in ((x,), (x, state)):
            (output, (h, c)), (eager, (eager_h, eager_c)) = compiled(*arguments), module(*arguments)
            assert torch.equal(output, eager) and torch.equal(h, eager_h) and torch.equal(c, eager_c)
    assert module.fastlstm_packs == 1


def test_compile_of_a_cell_and_weights_changed_after_compiling():
    torch.manual_seed(9)
    cell = fastlstm.torch.optimize(torch.nn.LSTMCell(7, 17).eval())
    graphs = []
    compiled = torch.compile(cell, fullgraph=True, backend=recording_backend(graphs))
    x = torch.randn(4, 7)
    with torch.inference_mode():
        first = compiled(x)
        assert all(torch.equal(a, b) for a, b in zip(first, cell(x)))
        cell.weight_ih.mul_(2.0)  # the operator asks for the current pack when it runs
        second = compiled(x)
        assert not torch.equal(first[0], second[0])
        assert all(torch.equal(a, b) for a, b in zip(second, cell(x)))
    assert cell.fastlstm_packs == 2
    assert sum(operators(graph).count(torch.ops.fastlstm.lstm.default) for graph in graphs) >= 1


@pytest.mark.filterwarnings(
    # torch.export of any nn.LSTM says so (its _flat_weights list is rebound while parameters are swapped); the
    # same warning comes from exporting a plain torch.nn.LSTM
    "ignore:The tensor attributes self._flat_weights:UserWarning"
)
def test_export_gives_one_operator_and_runs():
    torch.manual_seed(10)
    module = fastlstm.torch.optimize(torch.nn.LSTM(9, 17, 2, batch_first=True).eval())
    x = torch.randn(3, 6, 9)
    with torch.no_grad():  # exported without gradients, the fast path is what is traced
        exported = torch.export.export(module, (x,))
    targets = operators(exported.graph_module)
    assert targets.count(torch.ops.fastlstm.lstm.default) == 1
    assert not any("aten.lstm" in str(target) for target in targets)
    with torch.inference_mode():
        ours, eager = exported.module()(x), module(x)
    assert torch.equal(ours[0], eager[0]) and torch.equal(ours[1][0], eager[1][0])


_FIRST_KEY = """
import sys, torch, fastlstm.torch
proj_size = int(sys.argv[1])
print(fastlstm.torch.optimize(torch.nn.LSTM(9, 17, 2, bidirectional=True, proj_size=proj_size))._fastlstm_key)
"""


def test_graphs_of_different_models_never_share_a_key_across_processes():
    # A traced graph holds the module's key as a constant, and inductor caches compiled graphs on disk for every
    # process of the user: the first module of two processes, of different output sizes, once had the same key, and
    # a graph cached by one run failed the other's output-shape check (seen in the sanitizer run). The keys of
    # different geometries differ; the same geometry in the same place keeps its key, and its cache.
    def first_key(proj_size):
        command = [sys.executable, "-c", _FIRST_KEY, str(proj_size)]
        return int(subprocess.run(command, capture_output=True, text=True, check=True, timeout=300).stdout)

    assert first_key(5) != first_key(0)
    assert first_key(5) == first_key(5)
