"""``fastlstm.dask`` on a real cluster: ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``, one for
the module. The sequences are generated on the workers (``dask.array.random`` with a seed, or a bag of seeds mapped
to arrays), so that the tasks run on data that never went through this process; the direct call runs here on the
same data computed back (``X.compute()``). Rows are independent in fastlstm's kernels (each is summed in the same
order whatever the batch, and the thread count never changes a result), so splitting the batch across tasks and
workers must give bitwise the direct call's results, in every precision.

Tolerance: workers forced to another kernel variant (``FASTLSTM_ISA`` in their environment) compute in another
summation order; each float32 implementation lies within ``float32_tolerance`` of the float64 reference
(fastlstm.testing derives it), and that is what their results are checked against."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dask
import dask.array as da
import dask.bag as db
import numpy as np
import pytest
from distributed import Client, LocalCluster, Nanny, Scheduler, SpecCluster

import fastlstm
import fastlstm.dask
from fastlstm import reference
from fastlstm.dask import _client, _worker
from fastlstm.testing import float32_tolerance, max_abs_difference

T, N, I = 9, 23, 7  # steps, rows and features; rows in chunks of 6: 6, 6, 6, 5 (an uneven last chunk)
ROWS_PER_CHUNK = 6


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, Client(cluster) as client:
        yield client


def _lstm(precision="fp32", batch_first=False, seed=0):
    return fastlstm.LSTM(I, 16, 2, bidirectional=True, proj_size=5, batch_first=batch_first, seed=seed).astype(
        precision
    )


def _features(seed, batch_first, rows=N, chunk=ROWS_PER_CHUNK):
    """(T, N, I) or (N, T, I) standard normal float32, made by the workers."""
    shape, chunks = ((rows, T, I), (chunk, T, I)) if batch_first else ((T, rows, I), (T, chunk, I))
    return da.random.default_rng(seed).standard_normal(shape, chunks=chunks, dtype=np.float32)


def _lengths(seed, rows=N, chunk=ROWS_PER_CHUNK):
    """(N,) lengths in [0, T], every fourth one 0, made by the workers."""
    lengths = da.random.default_rng(seed).integers(0, T + 1, size=rows, chunks=chunk)
    return da.where(da.arange(rows, chunks=chunk) % 4 == 0, 0, lengths)


def test_importing_fastlstm_and_its_commands_imports_no_dask():
    code = (
        "import sys, fastlstm, fastlstm.__main__; fastlstm.__main__.build_parser(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed', 'zarr'}))"
    )
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "[]"


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_lstm_results_equal_one_direct_call(client, precision, batch_first):
    model = _lstm(precision, batch_first)
    x, lengths = _features(1, batch_first), _lengths(2)
    rng = da.random.default_rng(3)
    h0 = rng.standard_normal((4, N, 5), chunks=(4, 8, 5), dtype=np.float32)  # chunked unlike x: predict aligns it
    c0 = rng.standard_normal((4, N, 16), chunks=(4, 8, 16), dtype=np.float32)
    results = fastlstm.dask.predict(model, x, lengths=lengths, state=(h0, c0), output=("output", "h_n", "c_n"))
    assert [result.chunks[0 if batch_first else 1] for result in results[:1]] == [(6, 6, 6, 5)]
    assert [result.chunks[1] for result in results[1:]] == [(6, 6, 6, 5)] * 2
    x_, lengths_, h0_, c0_, *got = dask.compute(x, lengths, h0, c0, *results)
    assert (lengths_ == 0).any()
    output, (h_n, c_n) = model(x_, (h0_, c0_), lengths=lengths_)
    for name, value, want in zip(("output", "h_n", "c_n"), got, (output, h_n, c_n)):
        assert value.dtype == want.dtype and np.array_equal(value, want), name


def test_one_result_with_numpy_lengths_and_no_state(client):
    model = _lstm()
    x = _features(4, False)
    lengths = np.arange(N) % (T + 1)
    result = fastlstm.dask.predict(model, x, lengths=lengths)  # output="output" by default
    assert isinstance(result, da.Array) and result.shape == (T, N, 10) and result.dtype == np.float32
    x_, got = dask.compute(x, result)
    assert np.array_equal(got, model(x_, lengths=lengths)[0])


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("embedding", [True, False], ids=["tokens", "features"])
def test_sequence_model_probabilities_and_labels(client, embedding, batch_first):
    lstm = fastlstm.LSTM(I, 12, batch_first=batch_first, seed=5)
    weights = np.random.default_rng(6)
    table = weights.standard_normal((30, I)).astype(np.float32) if embedding else None
    model = fastlstm.SequenceModel(lstm, weights.standard_normal((4, 12)), weights.standard_normal(4), embedding=table)
    if embedding:
        shape, chunks = ((N, T), (ROWS_PER_CHUNK, T)) if batch_first else ((T, N), (T, ROWS_PER_CHUNK))
        x = da.random.default_rng(7).integers(0, 30, size=shape, chunks=chunks)
    else:
        x = _features(7, batch_first)
    lengths = _lengths(8)
    probabilities, labels = fastlstm.dask.predict(model, x, lengths=lengths, output=("probabilities", "labels"))
    x_, lengths_, got_probabilities, got_labels = dask.compute(x, lengths, probabilities, labels)
    assert np.array_equal(got_probabilities, model.predict_proba(x_, lengths=lengths_))
    assert np.array_equal(got_labels, model.predict(x_, lengths=lengths_)) and got_labels.dtype == np.int64
    only_labels = fastlstm.dask.predict(model, x).compute()  # labels by default, without lengths
    assert np.array_equal(only_labels, model.predict(x_))


def test_the_model_is_one_graph_key_unpickled_at_most_once_per_worker(client):
    client.run(fastlstm.dask.clear_worker_cache)
    model = _lstm(seed=9)
    x = _features(10, False, rows=48, chunk=6)  # 8 tasks
    result = fastlstm.dask.predict(model, x)
    model_keys = [key for key in dict(result.dask) if str(key).startswith("fastlstm-model-")]
    assert len(model_keys) == 1
    x_, got = dask.compute(x, result)
    assert np.array_equal(got, model(x_)[0])
    counts = client.run(fastlstm.dask.worker_cache_info)
    assert all(count["loads"] <= 1 for count in counts.values()), counts
    assert sum(count["loads"] + count["hits"] for count in counts.values()) == 8  # every task went through the cache
    fastlstm.dask.predict(model, x).compute()  # the same model again: already unpickled on every worker that has it
    again = client.run(fastlstm.dask.worker_cache_info)
    assert [count["loads"] for count in again.values()] == [count["loads"] for count in counts.values()]


def test_a_scattered_future_and_a_delayed_load(client, tmp_path):
    client.run(fastlstm.dask.clear_worker_cache)
    model = _lstm("bf16", seed=11)
    x = _features(12, False)
    x_ = x.compute()
    future = client.scatter(model, broadcast=True)
    assert np.array_equal(fastlstm.dask.predict(future, x).compute(), model(x_)[0])
    assert all(count["loads"] == 0 for count in client.run(fastlstm.dask.worker_cache_info).values())
    path = tmp_path / "model.safetensors"
    fastlstm.save(model, path)
    loaded = dask.delayed(fastlstm.load)(str(path))  # read by a worker
    assert np.array_equal(fastlstm.dask.predict(loaded, x, output="c_n").compute(), model(x_)[1][1])


def test_each_call_gets_its_workers_share_of_the_cores(client):
    plan = _client.thread_plan()
    share = max(1, _worker.usable_cores() // 2)  # two one-thread workers on this machine
    assert dict(plan.threads) == dict.fromkeys(client.nthreads(), share)
    for address in client.nthreads():  # what a task on each worker gets, without and with threads=
        for requested, expected in ((None, share), (3, 3)):
            task = client.submit(_worker.call_threads, requested, plan, workers=[address], pure=False)
            assert task.result() == expected
    assert _worker.call_threads(None, plan) is None  # here, outside a worker: fastlstm chooses


def _ragged(seed: int, features: int) -> np.ndarray:
    """A sequence of seed % 7 steps (0 included), made where the bag's task runs."""
    return np.random.default_rng(seed).standard_normal((seed % 7, features))


def _ragged_tokens(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 30, size=seed % 7)


@pytest.mark.parametrize("batch_size", [None, 2])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
def test_predict_bag_gives_each_sequence_its_own_call(client, batch_first, batch_size):
    model = _lstm("int8", batch_first, seed=13)
    bag = db.from_sequence(range(11), npartitions=3).map(_ragged, I)
    results = fastlstm.dask.predict_bag(model, bag, output=("output", "h_n"), batch_size=batch_size)
    sequences, got = dask.compute(bag, results)
    assert len(got) == 11 and min(len(sequence) for sequence in sequences) == 0
    for sequence, (output, h_n) in zip(sequences, got):
        want_output, (want_h_n, _) = model(sequence)  # unbatched: (T_i, features) and (states, H_out)
        assert np.array_equal(output, want_output) and np.array_equal(h_n, want_h_n)


def test_predict_bag_labels_of_token_sequences(client):
    model = fastlstm.SequenceModel(
        fastlstm.LSTM(I, 12, seed=14), np.ones((3, 12)), embedding=np.random.default_rng(15).standard_normal((30, I))
    )
    bag = db.from_sequence(range(1, 9), npartitions=2).map(_ragged_tokens)
    sequences, got = dask.compute(bag, fastlstm.dask.predict_bag(model, bag, batch_size=3))
    for tokens, labels in zip(sequences, got):
        assert np.array_equal(labels, model.predict(tokens[:, None])[:, 0])


@pytest.fixture(scope="module")
def mixed_client():
    """Two workers, one on this process's variant (the CPU's best, or FASTLSTM_ISA's) and one forced to portable by
    FASTLSTM_ISA in its environment."""
    one_thread = {"cls": Nanny, "options": {"nthreads": 1}}
    portable = {"cls": Nanny, "options": {"nthreads": 1, "env": {"FASTLSTM_ISA": "portable"}}}
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
    cluster = SpecCluster(workers={"here": one_thread, "portable": portable}, scheduler=scheduler)
    with cluster, Client(cluster) as client:
        yield client


def test_workers_forced_to_another_variant_and_isa_pins(mixed_client):
    here = fastlstm.active_isa()
    assert sorted(set(mixed_client.run(fastlstm.active_isa).values())) == sorted({here, "portable"})
    model = _lstm(seed=16)
    x, lengths = _features(17, False, rows=48, chunk=4), _lengths(18, rows=48, chunk=4)  # 12 tasks
    x_, lengths_ = dask.compute(x, lengths)
    exact, float32 = (
        reference.LSTM(I, 16, 2, bidirectional=True, proj_size=5),
        reference.LSTM(I, 16, 2, bidirectional=True, proj_size=5, dtype=np.float32),
    )
    exact.load_state_dict(model.state_dict())
    float32.load_state_dict(model.state_dict())
    want, want32 = exact(x_, lengths=lengths_)[0], float32(x_, lengths=lengths_)[0]

    mixed_client.run(fastlstm.dask.clear_worker_cache)
    mixed = fastlstm.dask.predict(model, x, lengths=lengths).compute()
    loads = [count["loads"] for count in mixed_client.run(fastlstm.dask.worker_cache_info).values()]
    assert loads == [1, 1], "both workers ran tasks"
    assert max_abs_difference(mixed, want) <= float32_tolerance(want, want32)
    for isa in sorted({here, "portable"}):
        with fastlstm.use_isa(isa):
            pinned = _lstm(seed=16)
        got = fastlstm.dask.predict(model, x, lengths=lengths, isa=isa).compute()
        assert np.array_equal(got, pinned(x_, lengths=lengths_)[0]), isa


def test_bad_arguments_name_themselves(client):
    model, x = _lstm(), _features(19, False)
    with pytest.raises(TypeError, match=r"X: expected a dask\.array\.Array"):
        fastlstm.dask.predict(model, np.zeros((T, N, I)))
    with pytest.raises(ValueError, match=r"X: expected a real array \(T, N, 7\)"):
        fastlstm.dask.predict(model, x[..., :3])
    with pytest.raises(ValueError, match=r"lengths: expected shape \(23,\), got \(22,\)"):
        fastlstm.dask.predict(model, x, lengths=np.ones(22, int))
    with pytest.raises(TypeError, match="lengths: expected integers, got dtype float64"):
        fastlstm.dask.predict(model, x, lengths=np.ones(N))
    with pytest.raises(ValueError, match=r"state\[1\] \(c0\): expected shape \(4, 23, 16\)"):
        fastlstm.dask.predict(model, x, state=(np.zeros((4, N, 5)), np.zeros((4, N, 5))))
    with pytest.raises(ValueError, match=r"output: expected distinct names among \['output', 'h_n', 'c_n'\]"):
        fastlstm.dask.predict(model, x, output="labels")
    with pytest.raises(ValueError, match="isa: expected None or one of"):
        fastlstm.dask.predict(model, x, isa="sse9")
    with pytest.raises(TypeError, match=r"model: expected a fastlstm\.LSTM or fastlstm\.SequenceModel"):
        fastlstm.dask.predict(reference.LSTM(I, 16), x)
    with pytest.raises(TypeError, match=r"bag: expected a dask\.bag\.Bag"):
        fastlstm.dask.predict_bag(model, [np.zeros((2, I))])
    bad = db.from_sequence([np.zeros((2, I)), np.zeros((2, I + 1))], npartitions=1)
    with pytest.raises(ValueError, match=r"bag item 1 of its partition: expected a real array \(T, 7\)"):
        fastlstm.dask.predict_bag(model, bad).compute()


def test_the_predict_command_on_the_cluster_zarr_to_npy(client, tmp_path):
    from fastlstm import predict_cli
    from fastlstm.__main__ import build_parser

    model = _lstm("bf16", seed=20)
    fastlstm.save(model, tmp_path / "model.safetensors")
    x = _features(21, False)
    x.to_zarr(str(tmp_path / "x.zarr"))  # written by the workers
    lengths = _lengths(22).compute()
    np.save(tmp_path / "lengths.npy", lengths)
    command = [
        *("predict", str(tmp_path / "model.safetensors"), str(tmp_path / "x.zarr"), str(tmp_path / "h_n.npy")),
        *("--result", "h_n", "--lengths", str(tmp_path / "lengths.npy"), "--rows", "5"),
        *("--scheduler", client.scheduler.address),
    ]
    finished = _run_command(command)
    assert finished.returncode == 0, finished.stderr
    assert "h_n (4, 23, 5) float32" in finished.stderr and "5 tasks on 2 workers" in finished.stderr
    assert "100% Completed" in finished.stdout
    want = model(da.from_zarr(str(tmp_path / "x.zarr")).compute(), lengths=lengths)[1][0]
    assert np.array_equal(np.load(tmp_path / "h_n.npy"), want)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["h_n.npy", "lengths.npy", "model.safetensors", "x.zarr"]
    # OUTPUT exists now: refused without --overwrite, before any work
    assert predict_cli.main(build_parser().parse_args(command)) == 1


def test_the_predict_command_on_its_own_local_cluster_npy_to_zarr(client, tmp_path):
    lstm = fastlstm.LSTM(I, 12, batch_first=True, seed=23)
    model = fastlstm.SequenceModel(lstm, np.random.default_rng(24).standard_normal((3, 12)))
    fastlstm.save(model, tmp_path / "model.safetensors")
    x = _features(25, True)
    client.submit(np.save, str(tmp_path / "x.npy"), x).result()  # written by a worker
    out = tmp_path / "probabilities.zarr"
    command = ["predict", str(tmp_path / "model.safetensors"), str(tmp_path / "x.npy"), str(out)]
    finished = _run_command([*command, "--result", "probabilities", "--workers", "2", "--quiet"])
    assert finished.returncode == 0, finished.stderr
    assert "probabilities (23, 9, 3) float32" in finished.stderr and finished.stdout == ""
    got = da.from_zarr(str(out)).compute()
    assert np.array_equal(got, model.predict_proba(np.load(tmp_path / "x.npy")))
    missing = _run_command(["predict", str(tmp_path / "model.safetensors"), str(tmp_path / "none.npy"), "y.npy"])
    assert missing.returncode == 1 and "INPUT: no such file" in missing.stderr


def _run_command(arguments: list[str]) -> subprocess.CompletedProcess:
    # The fastlstm under test, whether from the source tree or installed.
    path = os.pathsep.join(filter(None, [str(Path(fastlstm.__file__).parent.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "fastlstm", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
