"""``python -m fastlstm bench``: the command runs end to end on a tiny shape, its report and JSON hold what they
promise, and its arguments are checked. Nothing here measures speed: repeat times are as short as allowed."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastlstm
from fastlstm import __main__ as cli
from fastlstm import bench
from fastlstm.bench import cli as bench_cli
from fastlstm.bench import rows as bench_rows
from fastlstm.bench import timing as bench_timing

HEADER_COLUMNS = ["shape", "threads", "fastlstm ms", "GFLOP/s", "% peak", "% bound", "vs numpy", "max |diff|"]


def test_command_reports_and_writes_json(tmp_path):
    json_path = tmp_path / "bench.json"
    command = [sys.executable, "-m", "fastlstm", "bench", "--shapes", "1x3x8", "--threads", "1"]
    command += ["--repeat-seconds", "0.01", "--json", str(json_path)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr

    lines = finished.stdout.splitlines()
    header = next(line for line in lines if line.startswith("shape"))
    for column in HEADER_COLUMNS:
        assert column in header
    assert any(line.startswith("B=1 T=3 I=H=8 ") for line in lines)
    assert "[1/1] B=1 T=3 I=H=8, 1 thread" in finished.stderr  # progress

    document = json.loads(json_path.read_text())
    installed = [peer.name for peer in bench.available_peers()]
    assert list(document["environment"]["peers"]) == installed
    [row] = document["rows"]
    assert row["key"] == "1x3x8" and row["threads"] == 1
    assert row["fastlstm"]["gflops"] > 0 and row["fastlstm"]["percent_of_peak"] > 0
    assert set(row["peers"]) == set(installed)
    for name in installed:
        assert row["peers"][name]["agrees"], f"{name}: {row['peers'][name]}"


def _build_nothing(model, threads):
    raise bench.Unsupported("never: cannot express anything")


#: A peer that cannot express any model, to see how the report shows one.
NEVER = bench.Peer("never", ("numpy",), _build_nothing)


def test_a_peer_that_cannot_express_the_model_is_not_applicable(tmp_path):
    peers = [bench.NUMPY, NEVER]
    row = bench.measure_shape(bench.Shape(1, 2, 8, 8), threads=1, peak_gflops=1.0, peers=peers, repeat_seconds=0)
    numpy_result, unsupported = row.peers
    assert numpy_result.agrees and numpy_result.timing is not None
    assert unsupported.timing is None and unsupported.agrees and row.agrees
    assert row.best_peer is None  # the baseline does not count as the best peer

    env = bench.environment({1: 1.0}, [bench.NUMPY, NEVER])
    text = bench.report([row], env, repeat_seconds=0)
    table_row = next(line for line in text.splitlines() if line.startswith("B=1 T=2 I=H=8"))
    assert table_row.split()[-4:-1] == ["n/a", "n/a", "-"]  # vs never, vs best peer, best peer
    assert "n/a (never): never: cannot express anything" in text

    json_path = tmp_path / "bench.json"
    bench.write_json(json_path, [row], env, repeat_seconds=0)
    record = json.loads(json_path.read_text())["rows"][0]
    assert record["peers"]["never"] == {"supported": False, "reason": "never: cannot express anything"}
    assert record["best_peer"] is None


def test_peaks_are_measured_until_two_attempts_agree_and_the_larger_count_scales():
    """A calibration attempt that the host slowed (a CPU taken away, or both CPUs on one core) is measured again:
    each count until its best two attempts agree within PEAK_AGREEMENT, a larger count also until it reaches
    PEAK_SCALING of its share of the smallest count's per-thread rate; at most PEAK_ATTEMPTS, the best kept."""
    from fastlstm.bench import timing

    def fake(readings):
        calls = []

        def measure(isa, threads, seconds):
            calls.append(threads)
            return readings[threads].pop(0)

        return measure, calls

    # 1 thread: 86 then 116 disagree, 115 agrees with 116. 2 threads: 117 and 118 agree but do not scale (0.9 * 2 *
    # 116 = 208.8); 230 scales but has nothing to agree with; 228 agrees.
    measure, calls = fake({1: [86.0, 116.0, 115.0, 999.0], 2: [117.0, 118.0, 230.0, 228.0, 999.0]})
    assert timing.measure_peaks("avx2", [2, 1], measure) == {2: 230.0, 1: 116.0}
    assert calls == [1, 1, 1, 2, 2, 2, 2]
    # Never agreeing: PEAK_ATTEMPTS attempts, the best kept.
    readings = [100.0, 50.0, 25.0, 12.0, 6.0, 3.0, 999.0]
    measure, calls = fake({1: readings})
    assert timing.measure_peaks("avx2", [1], measure) == {1: 100.0}
    assert calls == [1] * timing.PEAK_ATTEMPTS


def test_the_report_says_when_a_larger_thread_count_did_not_scale():
    """A 2-thread peak measured beside other work (under timing.PEAK_SCALING of twice the 1-thread one after every
    attempt) makes the 2-thread rows' "% peak" and "% bound" read high, over 100% at times: the header says so, and
    names the count. A peak that scales gets no note."""
    from fastlstm.bench import timing

    row = bench.measure_shape(
        bench.Shape(1, 2, 8, 8), threads=1, peak_gflops=1.0, peers=[bench.NUMPY], repeat_seconds=0
    )
    under = round(timing.PEAK_SCALING * 2 * 117.3 - 1.0, 1)  # just under the scaling the calibration waits for
    busy = bench.report([row], bench.environment({1: 117.3, 2: under}, [bench.NUMPY]), repeat_seconds=0)
    notes = [line for line in busy.splitlines() if "FMA peak measured" in line]
    assert notes == [
        f"note: the 2-thread FMA peak measured {under:.1f} GFLOP/s, {100 * under / 234.6:.0f}% of 2x the 1-thread one "
        "(117.3): other work had the CPUs then, and figures against the 2-thread peak read high (run again on a quiet "
        "machine)"
    ]
    quiet = bench.report([row], bench.environment({1: 117.3, 2: 234.6}, [bench.NUMPY]), repeat_seconds=0)
    assert "FMA peak measured" not in quiet
    alone = bench.report([row], bench.environment({2: under}, [bench.NUMPY]), repeat_seconds=0)
    assert "FMA peak measured" not in alone  # one count: nothing to scale from

    # The streaming section's ticks are measured against the same peaks, and say the same.
    from fastlstm.bench import streaming

    def streaming_text(peaks):
        latency = {(8, 8): {"fastlstm stream": (1e-6, 2e-6)}}
        throughput = {1: {"fastlstm sessions": 1e-5}}
        gains = {(80, 256, 64, 2): (4e-4, 1e-3)}
        return streaming.streaming_report(latency, throughput, gains, None, peaks, {(8, 8): 100.0})

    assert [line for line in streaming_text({1: 117.3, 2: under}).splitlines() if "FMA peak measured" in line] == notes
    assert "FMA peak measured" not in streaming_text({1: 117.3, 2: 234.6})


def test_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    row = bench.measure_shape(bench.Shape(1, 2, 8, 8), 1, 1.0, [bench.NUMPY], repeat_seconds=0)
    path = tmp_path / "plot.png"
    bench.write_plot(path, [row], bench.environment({1: 1.0}, [bench.NUMPY]))
    assert path.read_bytes().startswith(b"\x89PNG")


def test_plot_without_matplotlib_exits_2_before_measuring(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(bench_cli, "plotting_available", lambda: False)
    monkeypatch.setattr(bench_cli, "run", lambda *args, **kwargs: pytest.fail("measured"))
    assert cli.main(["bench", "--plot", str(tmp_path / "plot.png")]) == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err


@pytest.mark.parametrize(
    "arguments, unread",
    [
        (["--streaming", "--json", "out.json"], "--json"),
        (["--streaming", "--threads", "1", "--plot", "p.png"], "--threads"),
        (["--torch-model", "--precision", "bf16", "--repeat-seconds", "1"], "--repeat-seconds, --precision"),
        (["--neighbours", "--shapes", "1x2x8", "--isa", "portable"], "--isa"),
    ],
)
def test_a_mode_refuses_the_options_it_would_ignore_before_measuring(monkeypatch, capsys, arguments, unread):
    for runner in ("run", "run_streaming", "run_torch_model", "run_neighbours"):
        monkeypatch.setattr(bench_cli, runner, lambda *args, **kwargs: pytest.fail("measured"))
    assert cli.main(["bench", *arguments]) == 2
    mode = arguments[0]
    assert f"python -m fastlstm bench: {mode} does not take {unread} (it reads" in capsys.readouterr().err


def test_the_modes_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["bench", "--streaming", "--neighbours"])
    assert stopped.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_flops():
    assert bench.Shape(2, 3, 5, 7).flops == 2 * 4 * 7 * (5 + 7) * 2 * 3
    # layer 2 of a bidirectional model reads both directions; a projection P=4 shrinks h and adds 4*H per step
    layers = 2 * (4 * 7 * (5 + 7)) + 2 * (4 * 7 * (14 + 7))
    assert bench.Shape(1, 1, 5, 7, num_layers=2, bidirectional=True).flops == 2 * layers
    projected = 2 * ((4 * 7 * (5 + 4) + 4 * 7) + (4 * 7 * (8 + 4) + 4 * 7))
    assert bench.Shape(1, 1, 5, 7, num_layers=2, bidirectional=True, proj_size=4).flops == 2 * projected


def test_weight_traffic_and_working_set():
    # One layer, I=5, H=7, T=3: input weights 4*7*5 once, recurrent 4*7*7 for the 2 steps after the first, float32.
    assert bench.Shape(1, 3, 5, 7).weight_traffic_bytes() == 4 * (4 * 7 * 5 + 4 * 7 * 7 * 2)
    # Two directions count twice; the second layer reads 2*H inputs; a projection P=4 (h 4 wide) is read every step.
    shape = bench.Shape(1, 3, 5, 7, num_layers=2, bidirectional=True, proj_size=4)
    per_direction = [4 * 7 * 5 + 4 * 7 * 4 * 2 + 4 * 7 * 3, 4 * 7 * 8 + 4 * 7 * 4 * 2 + 4 * 7 * 3]
    assert shape.weight_traffic_bytes() == 4 * 2 * sum(per_direction)
    # Working set: a thread's share of the largest layer; directions on their own threads; no recurrent at T=1.
    largest = 4 * 7 * 8 + 4 * 7 * 4 + 4 * 7
    assert shape.working_set_bytes(1) == 4 * largest
    assert shape.working_set_bytes(2) == 4 * largest
    assert bench.Shape(1, 3, 5, 7).working_set_bytes(2) == 4 * (4 * 7 * 5 + 4 * 7 * 7) // 2
    assert bench.Shape(1, 1, 5, 7).working_set_bytes(1) == 4 * 4 * 7 * 5
    # Recurrent set: a thread's share of the largest layer's recurrent and projection weights.
    assert shape.recurrent_set_bytes(1) == 4 * (4 * 7 * 4 + 4 * 7)
    assert bench.Shape(1, 3, 5, 7).recurrent_set_bytes(2) == 4 * (4 * 7 * 7) // 2
    assert bench.Shape(1, 1, 5, 7).recurrent_set_bytes(1) == 0
    assert bench.Shape(1, 3, 5, 7).input_traffic_bytes() == 4 * 4 * 7 * 5
    assert bench.Shape(1, 3, 5, 7).recurrent_traffic_bytes() == 4 * 4 * 7 * 7 * 2


def test_bf16_weight_traffic_and_working_set_take_two_bytes_per_gate_weight():
    # One layer, I=5, H=7, T=3: the gate weights in 2 bytes each.
    assert bench.Shape(1, 3, 5, 7).input_traffic_bytes("bf16") == 2 * 4 * 7 * 5
    assert bench.Shape(1, 3, 5, 7).recurrent_traffic_bytes("bf16") == 2 * 4 * 7 * 7 * 2
    assert bench.Shape(1, 3, 5, 7).working_set_bytes(2, "bf16") == 2 * (4 * 7 * 5 + 4 * 7 * 7) // 2
    # A projection P=4 stays float32: 4 bytes for each of its 4*7 weights, at every step.
    projected = bench.Shape(1, 3, 5, 7, proj_size=4)
    assert projected.recurrent_traffic_bytes("bf16") == 2 * 4 * 7 * 4 * 2 + 4 * 4 * 7 * 3
    assert projected.recurrent_set_bytes(1, "bf16") == 2 * 4 * 7 * 4 + 4 * 4 * 7


def test_batch_one_rows_get_a_bound(tmp_path):
    rows = bench.measure([bench.Shape(1, 4, 8, 8), bench.Shape(2, 4, 8, 8)], {1: 100.0}, [bench.NUMPY], 0.0)
    row = rows[0]
    assert row.bandwidth_gbs > 0 and row.recurrent_bandwidth_gbs > 0 and row.percent_of_bound > 0
    traffic = row.shape.input_traffic_bytes() / (row.bandwidth_gbs * 1e9) + row.shape.recurrent_traffic_bytes() / (
        row.recurrent_bandwidth_gbs * 1e9
    )
    assert row.bound_seconds == max(row.shape.flops / 100e9, traffic)
    assert rows[1].bandwidth_gbs is None and rows[1].percent_of_bound is None
    json_path = tmp_path / "rows.json"
    bench.write_json(json_path, rows, bench.environment({1: 100.0}, [bench.NUMPY]), 0.0)
    first, second = json.loads(json_path.read_text())["rows"]
    assert first["batch1_bound"]["percent_of_bound"] == rows[0].percent_of_bound
    assert second["batch1_bound"] is None


def test_parse_shapes_reads_every_key():
    shapes = [*dict.fromkeys(bench.QUICK_SHAPES + bench.FULL_SHAPES), bench.Shape(2, 3, 40, 64, 3, True, 16)]
    assert bench.parse_shapes(",".join(shape.key for shape in shapes)) == shapes
    assert bench.parse_shapes(" 8x100x256 , 1x2x3x4") == [bench.Shape(8, 100, 256, 256), bench.Shape(1, 2, 3, 4)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("8x100", "got '8x100'"),
        ("8x100x256,", "got ''"),
        ("8x-1x256", "got '8x-1x256'"),
        ("8x100x256x", "got '8x100x256x'"),
        ("B8x100x256", "got 'B8x100x256'"),
        ("8x100x256-L2-L3", "at most once"),
        ("8x100x256-bidir-bidir", "at most once"),
        ("8x100x256-fast", "got '8x100x256-fast'"),
        ("0x100x256", ">= 1, got '0x100x256'"),
        ("1x100x256-L0", ">= 1, got '1x100x256-L0'"),
        ("1x100x256-P256", "projection must be smaller"),
    ],
)
def test_parse_shapes_names_the_bad_item(text, message):
    with pytest.raises(ValueError, match=message.replace("|", r"\|").replace("(", r"\(")):
        bench.parse_shapes(text)


def test_thread_counts(capsys):
    cpus = os.cpu_count() or 1
    assert bench.default_thread_counts() == ([1, cpus] if cpus > 1 else [1])
    assert cli.build_parser().parse_args(["bench", "--threads", "1,1"]).threads == [1]
    for bad in ["0", "1,x", "", f"{cpus + 1}"]:
        with pytest.raises(SystemExit) as stopped:
            cli.build_parser().parse_args(["bench", "--threads", bad])
        assert stopped.value.code == 2
    assert f"between 1 and {cpus}" in capsys.readouterr().err


def test_output_difference_flags_broken_outputs():
    expected = np.zeros((2, 1, 3))
    assert bench.output_difference(np.zeros((2, 1, 4), np.float32), expected) == math.inf
    assert math.isnan(bench.output_difference(np.full((2, 1, 3), np.nan, np.float32), expected))


# ---- precision ----------------------------------------------------------------------------------------------------


def test_parse_precisions():
    assert bench.parse_precisions("bf16") == ["bf16"]
    assert bench.parse_precisions("int8") == ["int8"]
    assert bench.parse_precisions(" fp32 , bf16,fp32") == ["fp32", "bf16"]
    assert bench.parse_precisions("int8,fp32,bf16,int8") == ["int8", "fp32", "bf16"]
    for bad, item in [("fp16", "'fp16'"), ("fp32,", "''"), ("BF16", "'BF16'"), ("int4", "'int4'")]:
        with pytest.raises(ValueError, match=f"expected fp32, bf16 or int8, .* got {item}"):
            bench.parse_precisions(bad)


def test_precision_argument(monkeypatch, capsys):
    parser = cli.build_parser()
    assert parser.parse_args(["bench"]).precision is None  # not given: the matrix runs fp32 (main)
    assert parser.parse_args(["bench", "--precision", "fp32,bf16"]).precision == ["fp32", "bf16"]
    assert parser.parse_args(["bench", "--precision", "fp32,bf16,int8"]).precision == ["fp32", "bf16", "int8"]
    with pytest.raises(SystemExit) as stopped:
        parser.parse_args(["bench", "--precision", "fp32,fp16"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "argument --precision: expected fp32, bf16 or int8" in error and "got 'fp16'" in error

    calls = []
    monkeypatch.setattr(bench_cli, "run", lambda shapes, **options: calls.append(options) or 0)
    assert cli.main(["bench", "--shapes", "1x2x8", "--precision", "bf16"]) == 0
    assert cli.main(["bench", "--shapes", "1x2x8", "--precision", "int8"]) == 0
    assert [call["precisions"] for call in calls] == [["bf16"], ["int8"]]


def test_run_refuses_unknown_precisions_before_measuring(monkeypatch):
    monkeypatch.setattr(bench_cli, "measure_peaks", lambda *args: pytest.fail("measured"))
    expected = r"precisions: expected one or more of \['fp32', 'bf16', 'int8'\], got \['fp16'\]"
    with pytest.raises(ValueError, match=expected):
        bench.run([bench.Shape(1, 2, 8, 8)], thread_counts=[1], precisions=["fp16"])


def test_reduced_precision_tables_cover_every_precision():
    for table in (
        bench.TOLERANCES,
        bench.GATE_WEIGHT_BYTES,
        bench.MULTIPLY_ADD_INSTRUCTIONS,
        bench.MULTIPLY_ADDS_PER_LANE,
    ):
        assert list(table) == list(bench.PRECISIONS)
    assert bench.TOLERANCES["int8"] == bench.INT8_TOLERANCE
    assert (bench.GATE_WEIGHT_BYTES["int8"], bench.MULTIPLY_ADDS_PER_LANE["int8"]) == (1, 4)


def test_int8_weight_traffic_takes_one_byte_per_gate_weight():
    shape = bench.Shape(1, 3, 5, 7, proj_size=4)  # the projection's 4*7 weights stay float32
    assert shape.input_traffic_bytes("int8") == 4 * 7 * 5
    assert shape.recurrent_traffic_bytes("int8") == 4 * 7 * 4 * 2 + 4 * 4 * 7 * 3
    assert shape.recurrent_set_bytes(1, "int8") == 4 * 7 * 4 + 4 * 4 * 7


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_a_reduced_precision_row_builds_its_model_and_compares_with_fp32(monkeypatch, precision):
    built = []
    original_build_model = bench.build_model

    def recording_build_model(*args, **kwargs):
        model = original_build_model(*args, **kwargs)
        built.append(model.precision)
        return model

    monkeypatch.setattr(bench_rows, "build_model", recording_build_model)
    row = bench.measure_shape(bench.Shape(1, 2, 8, 8), 1, 1.0, [bench.NUMPY], repeat_seconds=0, precision=precision)
    assert built == [precision, "fp32"]  # the timed model, then the reference the outputs are compared with
    assert row.precision == precision and row.agrees
    assert 0 < row.fastlstm_diff < bench.TOLERANCES[precision]
    [numpy_result] = row.peers
    assert numpy_result.precision == "fp32" and numpy_result.max_abs_diff < bench.TOLERANCE
    assert row.percent_of_peak is None  # the FMA peak is no ceiling for a reduced precision


def test_openvino_bf16_is_a_peer_of_bf16_rows_only():
    assert bench.OPENVINO_BF16 in bench.PEERS and bench.OPENVINO_BF16.precision == "bf16"
    assert bench.OPENVINO_BF16 not in bench.relevant_peers(["fp32"])
    assert bench.OPENVINO_BF16 not in bench.relevant_peers(["int8"])
    assert bench.OPENVINO_BF16 in bench.relevant_peers(["bf16"])
    assert bench.OPENVINO_BF16 in bench.relevant_peers(["fp32", "int8", "bf16"])
    float32_peers = [peer for peer in bench.PEERS if peer is not bench.OPENVINO_BF16]
    assert all(peer.takes_part_in(precision) for peer in float32_peers for precision in bench.PRECISIONS)
    assert bench.relevant_peers(["int8"]) == float32_peers  # there is no int8 peer
    assert bench.OPENVINO_BF16.name not in bench.environment({1: 1.0}, [], ["fp32"])["unavailable_peers"]


def test_openvino_bf16_rows(monkeypatch):
    pytest.importorskip("openvino")
    pytest.importorskip("onnx")
    monkeypatch.setattr(bench_timing, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(bench_timing, "BANDWIDTH_SECONDS", 0.01)
    peers = [bench.NUMPY, bench.OPENVINO_BF16]
    fp32_row, bf16_row, int8_row = bench.measure(
        [bench.Shape(2, 3, 8, 8)], {1: 1.0}, peers, 0.0, io.StringIO(), precisions=["fp32", "bf16", "int8"]
    )
    assert [peer.peer for peer in fp32_row.peers] == ["numpy"]
    assert [peer.peer for peer in bf16_row.peers] == ["numpy", "openvino-bf16"]
    assert [peer.peer for peer in int8_row.peers] == ["numpy"]
    openvino_bf16 = bf16_row.peer("openvino-bf16")
    assert openvino_bf16.agrees and openvino_bf16.tolerance == bench.BF16_TOLERANCE
    assert bf16_row.best_peer is None  # neither the baseline nor a bf16 peer is the best fp32 peer

    env = bench.environment({1: 1.0}, peers, ["fp32", "bf16", "int8"])
    table = bench.columns(list(env["peers"]), [], peer_times=True, reduced_precision=True)
    fp32_cells, bf16_cells, int8_cells = (
        {column.header: column.cell(row) for column in table} for row in (fp32_row, bf16_row, int8_row)
    )
    assert fp32_cells["vs openvino-bf16"] == "-" and fp32_cells["fastlstm |diff|"] == "-"
    assert bf16_cells["vs openvino-bf16"].endswith("x") and bf16_cells["% peak"] == "-"
    assert int8_cells["vs openvino-bf16"] == "-" and int8_cells["fastlstm |diff|"] != "-"


def test_quick_reduced_precision_run_records_the_precision(monkeypatch, tmp_path):
    for name, seconds in [("PEAK_SECONDS", 0.01), ("BANDWIDTH_SECONDS", 0.01), ("SETTLE_SECONDS", 0.0)]:
        monkeypatch.setattr(bench_timing, name, seconds)
    precisions = ["fp32", "bf16", "int8"]
    out, json_path = io.StringIO(), tmp_path / "bench.json"
    status = bench.run(
        [bench.Shape(1, 3, 8, 8)],
        thread_counts=[1],
        precisions=precisions,
        repeat_seconds=0.01,
        json_path=json_path,
        out=out,
        progress=io.StringIO(),
    )
    assert status == 0, out.getvalue()

    lines = out.getvalue().splitlines()
    # Cells are at least two spaces apart; a header or a label has single spaces only.
    header = re.split(r"\s{2,}", next(line for line in lines if line.startswith("shape")))
    fp32_cells, bf16_cells, int8_cells = (
        dict(zip(header, re.split(r"\s{2,}", line))) for line in lines if line.startswith("B=1 T=3 I=H=8 ")
    )
    assert [cells["precision"] for cells in (fp32_cells, bf16_cells, int8_cells)] == precisions
    assert fp32_cells["% peak"] != "-" and fp32_cells["fastlstm |diff|"] == "-"  # fp32 is the reference
    for cells in (bf16_cells, int8_cells):
        assert cells["% peak"] == "-" and cells["% bound"] != "-" and cells["fastlstm |diff|"] != "-"
    if len(bench.available_peers()) > 1:  # a competitor besides the baseline
        assert "vs best fp32 peer" in header
        assert int8_cells["vs best fp32 peer"].endswith("x")
    if "vs openvino-bf16" in header:
        assert int8_cells["vs openvino-bf16"] == "-" and int8_cells.get("openvino-bf16 ms", "-") == "-"
    footer = out.getvalue()
    assert "in bf16 and int8 rows: vdpbf16ps does 2 multiply-adds per lane and vpdpbusd 4" in footer
    assert "bytes per gate weight bf16 2, int8 1 instead of 4" in footer
    assert "(limit bf16 1e-02, int8 5e-02)" in footer

    document = json.loads(json_path.read_text())
    installed = [peer.name for peer in bench.available_peers(precisions)]
    assert document["environment"]["precisions"] == precisions
    assert list(document["environment"]["peer_precisions"]) == installed
    assert document["settings"]["tolerances"]["int8"] == bench.INT8_TOLERANCE
    fp32_row, bf16_row, int8_row = document["rows"]
    assert [row["precision"] for row in (fp32_row, bf16_row, int8_row)] == precisions
    assert fp32_row["fastlstm"]["max_abs_diff_from_fp32"] is None
    for row in (bf16_row, int8_row):
        assert 0 < row["fastlstm"]["max_abs_diff_from_fp32"] < bench.TOLERANCES[row["precision"]]
        assert row["fastlstm"]["percent_of_peak"] is None
    # the gate weights take half (bf16) and a quarter (int8) of the fp32 row's bytes
    fp32_traffic = fp32_row["batch1_bound"]["weight_traffic_bytes"]
    assert bf16_row["batch1_bound"]["weight_traffic_bytes"] * 2 == fp32_traffic
    assert int8_row["batch1_bound"]["weight_traffic_bytes"] * 4 == fp32_traffic
    assert "openvino-bf16" not in fp32_row["peers"] and "openvino-bf16" not in int8_row["peers"]
    assert ("openvino-bf16" in bf16_row["peers"]) == ("openvino-bf16" in installed)
    if len(bench.available_peers()) > 1:
        assert int8_row["best_peer"]["name"] in installed and int8_row["best_peer"]["speedup"] > 0


def test_neighbours_report_compares_each_case_with_the_undisturbed_calls(monkeypatch, capsys):
    from fastlstm.bench import neighbours

    def timing(seconds):
        # the 2-thread call after the matmul: the caller ran 30 ms and waited 1 ms, a neighbour's thread ran 25 ms
        return neighbours.CaseTiming(seconds, np.array([[30.0, 1.0], [12.0, 18.0], [25.0, 0.0]]))

    shared = neighbours.SHARED_WORK
    measured = {
        "alone": {1: timing(0.040), 2: timing(0.020), shared: timing(0.021)},
        "after a NumPy matmul": {1: timing(0.044), 2: timing(0.030), shared: timing(0.0294)},
    }
    monkeypatch.setattr(neighbours, "measure_neighbours", lambda shape, progress: measured)
    monkeypatch.setattr(neighbours, "two_models_overlap", lambda shape, threads: (0.041, 1.95))
    assert cli.main(["bench", "--neighbours"]) == 0
    lines = capsys.readouterr().out.splitlines()
    matmul = next(line for line in lines if line.startswith("after a NumPy matmul")).split()
    # 30 ms against 20 ms alone on 2 threads and 40 ms alone on 1 thread; the shared work 29.4 ms against 21 ms
    assert matmul[4:9] == ["44.0", "30.0", "1.50", "0.75", "1.40"]
    assert " ".join(matmul[9:]) == "30.0 / 1.0 12.0 / 18.0 25.0 / 0.0"
    assert any("overlap 1.95x" in line for line in lines)
    assert lines[0].startswith("fastlstm next to other libraries' threads: B=8 T=100 I=128 H=256 L=2 bidir")
    # --shapes picks other models, one table each
    assert cli.main(["bench", "--neighbours", "--shapes", "8x100x128x256-L2,1x50x64"]) == 0
    titles = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fastlstm next to")]
    assert [title.split(": ")[1].split(",")[0] for title in titles] == ["B=8 T=100 I=128 H=256 L=2", "B=1 T=50 I=H=64"]


def test_shared_work_yardstick_runs_its_pieces_on_any_team():
    """The neighbours' yardstick: work in pieces that whichever thread is free takes (no timing asserted here)."""
    from fastlstm import _core
    from fastlstm.bench import neighbours

    isa = fastlstm.active_isa()
    for threads in (1, 2, 3):
        _core.calibration.shared_work(isa, threads, 7, 100)
    _core.calibration.shared_work(isa, 2, 0, 100)  # no work at all
    with pytest.raises(ValueError, match="units >= 0"):
        _core.calibration.shared_work(isa, 2, -1, 100)
    job = neighbours.shared_work_like(lambda x: x @ x, np.eye(64, dtype=np.float32))
    assert job(None) is None


def test_torch_model_report_times_both_models_in_every_case(monkeypatch, capsys):
    """The real measurement on a small version of the cases (short sequences, one round), through the command."""
    pytest.importorskip("torch")
    from fastlstm.bench import torch_model

    monkeypatch.setattr(torch_model, "CASES", (("B=1", 1, False), ("packed B=3", 3, True)))
    monkeypatch.setattr(torch_model, "STEPS", 12)
    monkeypatch.setattr(torch_model, "ROUNDS", 1)
    assert cli.main(["bench", "--torch-model"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "T=12" in lines[0] and "load average" in lines[0]
    rows = [line[12:].split() for line in lines if line.startswith(("B=1", "packed B=3"))]  # after the name
    assert [row[0] for row in rows] == ["1", "2", "1", "2"]  # the thread counts
    for row in rows:
        torch_ms, optimized_ms, speedup = float(row[1]), float(row[2]), row[3]
        assert torch_ms > 0 and optimized_ms > 0 and speedup.endswith("x")
        # The printed times are rounded to within 0.005 ms, so the true ratio lies between these two; the printed
        # ratio is rounded to within 0.005 of it (1e-9: the decimal printing of the bounds themselves).
        lowest = (torch_ms - 0.005) / (optimized_ms + 0.005) - 0.005 - 1e-9
        highest = (torch_ms + 0.005) / (optimized_ms - 0.005) + 0.005 + 1e-9
        assert lowest <= float(speedup[:-1]) <= highest
    sharing = lines[lines.index("") + 1 :]
    names = ["original model", "optimized model", "optimized, fastlstm on 1 thread", "its LSTM alone"]
    for name in names:
        assert any(line.startswith(name) and float(line[36:].split()[0]) > 0 for line in sharing), name


def test_streaming_peers_step_as_fastlstm_streams():
    """Every installed peer of the streaming section computes the stream's step from the same state."""
    from fastlstm.bench import step_peers

    model = fastlstm.LSTM(5, 7, seed=0)
    peers = [peer for peer in step_peers.STEP_PEERS if peer.is_available()]
    assert peers[0].name == "fastlstm stream"
    for peer in peers:
        assert step_peers.step_difference(peer, model, steps=4) < step_peers.STEP_TOLERANCE, peer.name


def test_step_bound_is_the_weights_at_the_bandwidth_or_the_arithmetic_at_the_peak():
    from fastlstm.bench import streaming

    # I = H = 256: 4 * 256 * 512 float32 weights, 2 MiB, read once; 2 * 4 * 256 * 512 flops, about 1.05 MFLOP.
    assert streaming.step_weight_bytes(256, 256) == 2 * 1024 * 1024
    traffic_bound = streaming.step_bound_seconds(256, 256, bandwidth_gbs=100.0, peak_gflops=100.0)
    assert traffic_bound == pytest.approx(2 * 1024 * 1024 / 100e9)
    # With a read bandwidth far above the arithmetic's rate the FMA peak bounds it.
    arithmetic_bound = streaming.step_bound_seconds(256, 256, bandwidth_gbs=1e6, peak_gflops=100.0)
    assert arithmetic_bound == pytest.approx(8 * 256 * 512 / 100e9)


def test_streaming_section_prints_its_tables_and_draws_them(monkeypatch, tmp_path):
    from fastlstm.bench import streaming

    pytest.importorskip("matplotlib")  # the test extra installs it
    import matplotlib.image

    out, plot = io.StringIO(), tmp_path / "streaming.png"
    assert streaming.run_streaming(out=out, progress=io.StringIO(), quick=True, plot_path=plot) == 0
    # Two panels on a 12-inch-wide figure at 120 dpi.
    assert plot.read_bytes().startswith(b"\x89PNG") and matplotlib.image.imread(plot).shape[1] == 1440
    report = out.getvalue()
    assert re.search(r"^ +8 x 8 +[0-9.]+ / [0-9.]+", report, re.M)  # median / p99 of a tiny step
    assert re.search(r"^ +8 x 8 .* +[0-9.]+ +[0-9]+%$", report, re.M)  # its bound (us) and % of it
    assert re.search(r"^ +64 +[0-9,]+ +[0-9,]+ +[0-9,]+ +[0-9.]+$", report, re.M)  # 64 sessions: three rates
    gain = r"64 sessions, I=80 H=256, 1 thread: one tick [0-9,]+ us vs 64 stream steps [0-9,]+ us: [0-9.]+x"
    assert re.search(gain, report)
    batcher = r"Batcher \(max_batch=8\), 16 producer threads, 3 frames each: [0-9,]+ frames/s vs [0-9,]+ in direct"
    assert re.search(batcher, report)
    assert re.search(r"Batcher, 16 asyncio tasks: [0-9,]+ frames/s \([0-9]+% of direct\)", report)
    calls = []
    monkeypatch.setattr(bench_cli, "run_streaming", lambda plot_path: calls.append(plot_path) or 0)
    assert cli.main(["bench", "--streaming"]) == 0 and calls == [None]
    assert cli.main(["bench", "--streaming", "--plot", str(plot)]) == 0 and calls == [None, plot]


def _look_ahead_loop_in_numpy(recurrent, inputs, h, x, steps, slot_panels):
    """What look_ahead_loop multiplies and adds, summed in float64: each step the recurrent product of every panel
    and, for each slot, one piece (one gate of one panel over x's rows), the pieces walking every gate of every
    panel in turn."""
    panels, _, width = recurrent.shape
    block = width // 4
    recurrent_sum = float(np.einsum("k,pkw->", h.astype(np.float64), recurrent.astype(np.float64)))
    gate_columns = [inputs[spot // 4, :, (spot % 4) * block : (spot % 4 + 1) * block] for spot in range(4 * panels)]
    piece_sums = [float(np.einsum("rk,kj->", x.astype(np.float64), columns)) for columns in gate_columns]
    slots = -(-panels // slot_panels)
    return steps * recurrent_sum + sum(piece_sums[piece % (4 * panels)] for piece in range(steps * slots))


@pytest.mark.parametrize("isa", fastlstm.available_isas())
def test_look_ahead_loop_does_the_arithmetic_of_its_step(isa):
    """The calibration loop of tools/look_ahead_ceiling.py does every multiply-add of a batch-1 look-ahead step: its
    sum equals NumPy's of the same products. Small integers make every product and partial sum exact in float32
    (all below 2^24), so equality is exact whatever the order. Odd panel counts give a last slot of one panel;
    input and recurrent depths differ both ways. avx2 has no look-ahead kernel, so no loop."""
    from fastlstm import _core

    kernels_block = {"portable": 8, "avx512": 16, "avx512bf16": 16}.get(isa, 4)
    if isa == "avx2":
        with pytest.raises(ValueError, match="no look-ahead"):
            _core.calibration.look_ahead_loop_step_seconds(isa, 8, 8, 0.01)
        return
    slot_panels = 2  # and the portable loop, the plain step then its pieces, takes as many pieces a step
    rng = np.random.default_rng(7)
    for panels, recurrent_k, input_k, steps in ((3, 9, 5, 3), (4, 5, 11, 2), (1, 7, 7, 9), (5, 16, 17, 1)):
        width = 4 * kernels_block
        recurrent = rng.integers(0, 3, (panels, recurrent_k, width)).astype(np.float32)
        inputs = rng.integers(0, 3, (panels, input_k, width)).astype(np.float32)
        h = rng.integers(1, 3, recurrent_k).astype(np.float32)  # no zero: every k counts
        x = rng.integers(1, 3, (8, input_k)).astype(np.float32)
        total = _core.testing.look_ahead_loop(isa, recurrent, inputs, h, x, steps)
        assert total == _look_ahead_loop_in_numpy(recurrent, inputs, h, x, steps, slot_panels)
    seconds = _core.calibration.look_ahead_loop_step_seconds(isa, 33, 40, 0.01)
    assert 0 < seconds < 0.01
    with pytest.raises(ValueError, match="hidden_size >= 1"):
        _core.calibration.look_ahead_loop_step_seconds(isa, 8, 0, 0.01)
