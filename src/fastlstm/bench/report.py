"""The report of a run: its header (environment and settings), the table of rows, the footer that explains the
columns and names every disagreement, and the same as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import timing  # its settings are read when used, so that the JSON states those in effect
from .precisions import (
    GATE_WEIGHT_BYTES,
    MULTIPLY_ADD_INSTRUCTIONS,
    MULTIPLY_ADDS_PER_LANE,
    PRECISIONS,
    TOLERANCE,
    TOLERANCES,
    listed,
)
from .rows import PeerResult, Row
from .shapes import SEED, row_text, threads_text

#: Widest table (characters) that keeps every peer's time; a wider one shows only the speed-ups (times stay in JSON).
TABLE_WIDTH = 160


def _describe_blas(blas: list[dict[str, Any]] | None) -> str:
    if blas is None:
        return "unknown (threadpoolctl is not installed)"
    if not blas:
        return "none found by threadpoolctl"
    return "; ".join(
        f"{info['internal_api']} {info['version']}" + (f" ({info['architecture']})" if info["architecture"] else "")
        for info in blas
    )


def header_lines(env: dict[str, Any], repeat_seconds: float) -> list[str]:
    peaks = ", ".join(
        f"{gflops:.1f} at {threads_text(int(threads))}" for threads, gflops in env["fma_peak_gflops"].items()
    )
    peers = ", ".join(
        f"{name} {version}" + (" (baseline)" if name in env["baseline_peers"] else "")
        for name, version in env["peers"].items()
    )
    lines = [
        f"fastlstm {env['fastlstm']}   ISA {env['isa']} (available: {', '.join(env['available_isas'])})   threads: "
        f"{', '.join(map(str, env['threads']))} (each shape at each count, every implementation held to it)",
        f"FMA peak GFLOP/s of this machine ({env['isa']} calibration kernel): {peaks}",
        f"peers: {peers}   BLAS: {_describe_blas(env['blas'])}",
        f"python {env['python']}   {env['platform']}   {env['cpu']}, {env['cpu_count']} CPUs",
        f"timing: median of >= {timing.MIN_RUNS} runs and >= {repeat_seconds:g} s per implementation, after a warm-up, "
        f"the implementations of a row taking turns in {timing.ROUNDS} rounds",
    ]
    if env["precisions"] != ["fp32"]:
        lines.append(
            f"precisions: {', '.join(env['precisions'])} (each shape and thread count in each; every output compared "
            "with fastlstm's fp32 one, a peer of a reduced precision in rows of that precision only)"
        )
    if env["unavailable_peers"]:
        lines.append(f"peers not installed, skipped: {', '.join(env['unavailable_peers'])}")
    if "numpy" in env["peers"] and not env["numpy_threads_limited"]:
        lines.append("note: threadpoolctl is not installed, so NumPy's BLAS ran on its own thread count in every row")
    for name, value in env["blas_tuning_variables"].items():
        lines.append(f"note: {name}={value} is set; it can slow NumPy's BLAS (the baseline) on this machine")
    lines.extend(unscaled_peak_notes(env["fma_peak_gflops"]))
    return lines


def unscaled_peak_notes(peaks: dict[Any, float]) -> list[str]:
    """A note for each thread count whose FMA peak did not scale from the smallest count's per-thread rate after
    every attempt (timing.peak_scales, the test timing.measure_peaks stops on): something else had the CPUs then, and
    the figures against that count's peak ("% peak", "% bound", a tick's share of the peak) read high, over 100% at
    times."""
    by_count = sorted((int(threads), gflops) for threads, gflops in peaks.items())
    if len(by_count) < 2:
        return []
    smallest, smallest_gflops = by_count[0]
    notes = []
    for threads, gflops in by_count[1:]:
        if not timing.peak_scales(gflops, threads, smallest_gflops / smallest):
            expected = threads / smallest * smallest_gflops
            notes.append(
                f"note: the {threads}-thread FMA peak measured {gflops:.1f} GFLOP/s, {100 * gflops / expected:.0f}% of "
                f"{threads / smallest:g}x the {smallest}-thread one ({smallest_gflops:.1f}): other work had the CPUs "
                f"then, and figures against the {threads}-thread peak read high (run again on a quiet machine)"
            )
    return notes


def _milliseconds(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _competitors(env: dict[str, Any]) -> list[str]:
    """The peers that "vs best peer" takes the fastest of: float32 ones other than baselines."""
    return [
        name for name in env["peers"] if name not in env["baseline_peers"] and env["peer_precisions"][name] == "fp32"
    ]


def _reduced_precisions(rows: Sequence[Row]) -> list[str]:
    """The precisions other than fp32 that fastlstm ran in on ``rows``, in the order of PRECISIONS."""
    ran = {row.precision for row in rows}
    return [precision for precision in PRECISIONS if precision != "fp32" and precision in ran]


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Row], str]
    left: bool = False  # text columns are left-aligned, numbers right-aligned


def columns(
    peer_names: Sequence[str], competitors: Sequence[str], peer_times: bool, reduced_precision: bool = False
) -> list[Column]:
    """The table's columns: per peer its time (when ``peer_times``) and fastlstm's speed-up over it, and, when
    ``competitors`` (float32 peers other than baselines) are installed, the speed-up over the fastest of them. With
    ``reduced_precision`` (some rows are not fp32), also each row's precision and fastlstm's difference from its
    fp32 output, and the best peer is called the best fp32 peer."""

    def peer_cell(row: Row, name: str, cell: Callable[[PeerResult], str]) -> str:
        peer = row.peer(name)
        return "-" if peer is None else cell(peer)

    def peer_time(peer: PeerResult) -> str:
        return "n/a" if peer.timing is None else _milliseconds(peer.timing.median_seconds)

    def best_speedup(row: Row) -> str:
        best = row.best_peer
        return "n/a" if best is None else _ratio(row.speedup(best))

    def largest_difference(row: Row) -> str:
        differences = [peer.max_abs_diff for peer in row.peers if peer.timing is not None]
        if not differences:
            return "-"
        return f"{max(differences):.1e}" + ("" if row.peers_agree else " !")

    def fastlstm_difference(row: Row) -> str:
        if row.fastlstm_diff is None:
            return "-"
        return f"{row.fastlstm_diff:.1e}" + ("" if row.fastlstm_agrees else " !")

    table = [
        Column("shape", lambda row: row.shape.label, left=True),
        Column("threads", lambda row: str(row.threads)),
    ]
    if reduced_precision:
        table.append(Column("precision", lambda row: row.precision, left=True))
    table += [
        Column("fastlstm ms", lambda row: _milliseconds(row.fastlstm.median_seconds)),
        Column("GFLOP/s", lambda row: f"{row.gflops:.1f}"),
        Column("% peak", lambda row: _percent(row.percent_of_peak)),
        Column("% bound", lambda row: _percent(row.percent_of_bound)),
    ]
    for name in peer_names:
        # Default arguments bind this peer's name; a closure would see the loop's last one.
        if peer_times:
            table.append(Column(f"{name} ms", lambda row, name=name: peer_cell(row, name, peer_time)))
        table.append(
            Column(f"vs {name}", lambda row, name=name: peer_cell(row, name, lambda peer: _ratio(row.speedup(peer))))
        )
    if competitors:
        best = "best fp32 peer" if reduced_precision else "best peer"
        table += [
            Column(f"vs {best}", best_speedup),
            Column(best, lambda row: row.best_peer.peer if row.best_peer else "-", left=True),
        ]
    table.append(Column("max |diff|", largest_difference))
    if reduced_precision:
        table.append(Column("fastlstm |diff|", fastlstm_difference))
    return table


def format_table(table: Sequence[Column], rows: Sequence[Row]) -> list[str]:
    cells = [[column.cell(row) for column in table] for row in rows]
    widths = [max([len(column.header), *(len(line[i]) for line in cells)]) for i, column in enumerate(table)]

    def line(texts: Sequence[str]) -> str:
        aligned = (
            text.ljust(width) if column.left else text.rjust(width) for text, width, column in zip(texts, widths, table)
        )
        return "  ".join(aligned).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [line([column.header for column in table]), rule, *(line(texts) for texts in cells)]


def table_lines(rows: Sequence[Row], env: dict[str, Any]) -> tuple[list[str], bool]:
    """The table, with every peer's time if that fits in TABLE_WIDTH characters, else with the speed-ups only;
    and whether the peers' times are in it."""
    peer_names = list(env["peers"])
    competitors = _competitors(env)
    reduced_precision = bool(_reduced_precisions(rows))
    lines = format_table(columns(peer_names, competitors, True, reduced_precision), rows)
    if max(map(len, lines)) <= TABLE_WIDTH:
        return lines, True
    return format_table(columns(peer_names, competitors, False, reduced_precision), rows), False


def _per_precision(table: dict[str, Any], precisions: Sequence[str]) -> str:
    """``bf16 2, int8 1``: the entry of each of ``precisions`` in ``table``."""
    return ", ".join(f"{precision} {table[precision]}" for precision in precisions)


def footer_lines(rows: Sequence[Row], env: dict[str, Any], peer_times: bool) -> list[str]:
    competitors = _competitors(env)
    reduced = _reduced_precisions(rows)
    peak_note = bound_note = speedup_note = ""
    if reduced:
        first, *others = reduced
        multiply_adds = listed(
            [f"{MULTIPLY_ADD_INSTRUCTIONS[first]} does {MULTIPLY_ADDS_PER_LANE[first]} multiply-adds per lane"]
            + [f"{MULTIPLY_ADD_INSTRUCTIONS[precision]} {MULTIPLY_ADDS_PER_LANE[precision]}" for precision in others]
        )
        peak_note = f" - in {listed(reduced)} rows: {multiply_adds}, so the FMA peak is no ceiling there."
        bound_note = (
            f" In {listed(reduced)} rows: bytes per gate weight {_per_precision(GATE_WEIGHT_BYTES, reduced)} instead "
            f"of {GATE_WEIGHT_BYTES['fp32']} (the projection stays float32), and the arithmetic at the FMA peak times "
            f"the multiply-adds per lane ({_per_precision(MULTIPLY_ADDS_PER_LANE, reduced)})."
        )
        speedup_note = (
            f" In {listed(reduced)} rows fastlstm runs in the row's precision; - where X takes no part in it (a "
            "peer of a reduced precision takes part in rows of that precision only)."
        )
    lines = [
        "GFLOP/s: 2 flops per multiply-add of the gate products (8*H*(I+H)*B*T per layer and direction without a "
        "projection) / fastlstm median time.   % peak: of the FMA peak at the row's thread count." + peak_note,
        "% bound (batch 1): the least possible time / fastlstm median time; the least possible time is the larger of "
        "the arithmetic at the FMA peak and the weights that must be read: input weights once, at the read bandwidth "
        "measured for a thread's share of a layer's weights, and recurrent ones every step after the first, at the "
        "bandwidth measured for its share of those alone." + bound_note,
        "vs X: X median time / fastlstm median time (higher: fastlstm is faster)."
        + ("" if peer_times else " The peers' times are in the JSON (--json).")
        + speedup_note,
    ]
    if competitors:
        best = "best fp32 peer" if reduced else "best peer"
        lines.append(
            f"vs {best}: the same over the fastest of {', '.join(competitors)} on the row (the baseline left out)."
        )
    if reduced:
        # A reduced-precision peer takes part in rows of its precision only, so its precision is among ``reduced``.
        peer_precisions = {peer.precision for row in rows for peer in row.peers}
        peer_limits = "".join(
            f"; {precision} peers {TOLERANCES[precision]:.0e}" for precision in reduced if precision in peer_precisions
        )
        fastlstm_limits = ", ".join(f"{precision} {TOLERANCES[precision]:.0e}" for precision in reduced)
        lines += [
            f"max |diff|: largest difference of any peer's output from fastlstm's fp32 one, checked before timing "
            f"(limit {TOLERANCE:.0e}{peer_limits}).",
            f"fastlstm |diff|: of fastlstm's output in the row's precision from its fp32 one, checked before timing "
            f"(limit {fastlstm_limits}).",
        ]
    else:
        lines.append(
            f"max |diff|: largest output difference from any peer, checked before timing (limit {TOLERANCE:.0e})."
        )
    reasons: dict[str, list[str]] = {}
    for row in rows:
        where = row_text(row.shape, row.threads, row.precision)
        reference = "fastlstm" if row.precision == "fp32" else "fastlstm fp32"
        if not row.fastlstm_agrees:
            difference = f"{row.fastlstm_diff:.3g} >= {TOLERANCES[row.precision]:.0e}"
            lines.append(f"! {where}: fastlstm {row.precision} and fastlstm fp32 differ by {difference}")
        for peer in row.peers:
            if peer.timing is None and peer.peer not in reasons.get(peer.unsupported, []):
                reasons.setdefault(peer.unsupported, []).append(peer.peer)
            if not peer.agrees:
                difference = f"{peer.max_abs_diff:.3g} >= {peer.tolerance:.0e}"
                lines.append(f"! {where}: {reference} and {peer.peer} differ by {difference}")
    for reason, names in reasons.items():
        lines.append(f"n/a ({', '.join(names)}): {reason}")
    return lines


def report(rows: Sequence[Row], env: dict[str, Any], repeat_seconds: float) -> str:
    table, peer_times = table_lines(rows, env)
    lines = [*header_lines(env, repeat_seconds), "", *table, "", *footer_lines(rows, env, peer_times)]
    return "\n".join(lines) + "\n"


def _peer_record(row: Row, peer: PeerResult) -> dict[str, Any]:
    if peer.timing is None:
        return {"supported": False, "reason": peer.unsupported}
    return {
        "supported": True,
        **asdict(peer.timing),
        "max_abs_diff": peer.max_abs_diff,
        "agrees": peer.agrees,
        "speedup": row.speedup(peer),
    }


def _row_record(row: Row) -> dict[str, Any]:
    best = row.best_peer
    shape, precision = row.shape, row.precision
    return {
        "label": shape.label,
        "key": shape.key,
        "shape": asdict(shape),
        "flops": shape.flops,
        "isa": row.isa,
        "threads": row.threads,
        "precision": precision,
        "fma_peak_gflops": row.peak_gflops,
        "fastlstm": {
            **asdict(row.fastlstm),
            "gflops": row.gflops,
            "percent_of_peak": row.percent_of_peak,
            # None in fp32 rows: there fastlstm's output is the reference
            "max_abs_diff_from_fp32": row.fastlstm_diff,
            "agrees": row.fastlstm_agrees,
        },
        "batch1_bound": None
        if row.bandwidth_gbs is None
        else {
            "read_bandwidth_gbs": row.bandwidth_gbs,
            "working_set_bytes_per_thread": shape.working_set_bytes(row.threads, precision),
            "recurrent_read_bandwidth_gbs": row.recurrent_bandwidth_gbs,
            "recurrent_set_bytes_per_thread": shape.recurrent_set_bytes(row.threads, precision),
            "input_traffic_bytes": shape.input_traffic_bytes(precision),
            "recurrent_traffic_bytes": shape.recurrent_traffic_bytes(precision),
            "weight_traffic_bytes": shape.weight_traffic_bytes(precision),
            "bound_seconds": row.bound_seconds,
            "percent_of_bound": row.percent_of_bound,
        },
        "peers": {peer.peer: _peer_record(row, peer) for peer in row.peers},
        "best_peer": None if best is None else {"name": best.peer, "speedup": row.speedup(best)},
    }


def write_json(path: Path, rows: Sequence[Row], env: dict[str, Any], repeat_seconds: float) -> None:
    document = {
        "environment": env,
        "settings": {
            "repeat_seconds": repeat_seconds,
            "min_runs": timing.MIN_RUNS,
            "max_runs": timing.MAX_RUNS,
            "tolerance": TOLERANCE,
            "tolerances": TOLERANCES,
            "seed": SEED,
            "peak_seconds": timing.PEAK_SECONDS,
            "bandwidth_seconds": timing.BANDWIDTH_SECONDS,
        },
        "rows": [_row_record(row) for row in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
