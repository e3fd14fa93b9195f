"""``python -m fastlstm predict MODEL INPUT OUTPUT``: a model saved by ``fastlstm.save`` over a ``.npy`` or Zarr
array, on an existing Dask cluster (``--scheduler``) or on a LocalCluster of this machine's cores, with a progress
bar. Building the parser imports nothing beyond the standard library and fastlstm; running it needs the ``dask``
extra (fastlstm.dask, Distributed, Zarr)."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from typing import Any

import fastlstm

from ._checks import PRECISIONS
from ._isa import compiled_isas

#: The results the command can write; which ones a model has, ``fastlstm.dask.predict`` checks.
RESULTS = ("output", "h_n", "c_n", "labels", "probabilities")
#: Without --rows, the rows of a task are chosen for about this many tasks per worker thread: enough to even out
#: the workers' finishing times, few enough that the per-task cost of Dask (about a millisecond) stays negligible.
TASKS_PER_THREAD = 4


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``predict`` command to ``commands`` (the subparsers of ``python -m fastlstm``)."""
    command = commands.add_parser(
        "predict",
        help="run a saved model over a .npy or Zarr array on a Dask cluster",
        description=(
            "Run a model saved by fastlstm.save over INPUT and write one of its results to OUTPUT, with Dask: on "
            "the cluster at --scheduler, else on a LocalCluster of this machine's cores. INPUT is (T, N, features), "
            "or (N, T, features) for a batch_first model, or integer token ids (T, N) / (N, T) for a SequenceModel "
            "with an embedding. Paths ending in .npy are NumPy files; any other path is a Zarr array. The workers "
            "read INPUT and write OUTPUT, so both must be reachable from them. Needs the dask extra."
        ),
    )
    command.add_argument("model", metavar="MODEL", help="a model saved by fastlstm.save")
    command.add_argument("input", metavar="INPUT", help="the sequences: a .npy file or a Zarr array")
    command.add_argument("output", metavar="OUTPUT", help="where the result goes: a .npy file or a Zarr array")
    command.add_argument(
        "--result",
        choices=RESULTS,
        help="what to write: an LSTM's output (default), h_n or c_n; a SequenceModel's labels (default) or "
        "probabilities",
    )
    command.add_argument("--lengths", metavar="FILE", help="(N,) integer lengths, a .npy file or a Zarr array")
    command.add_argument(
        "--rows",
        type=_positive_int,
        metavar="N",
        help=f"rows (sequences) per task (default: about {TASKS_PER_THREAD} tasks per worker thread)",
    )
    command.add_argument(
        "--threads", type=_positive_int, metavar="N", help="threads per call (default: each worker's share of cores)"
    )
    command.add_argument(
        "--isa",
        choices=compiled_isas(),
        help="kernel variant on every worker, for bitwise the same results on different CPUs (default: each "
        "worker's best, or its FASTLSTM_ISA)",
    )
    command.add_argument("--precision", choices=list(PRECISIONS), help="run in this precision (default: the saved one)")
    command.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, such as tcp://10.0.0.5:8786")
    command.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="without --scheduler: worker processes of the LocalCluster, one thread each (default: one per core)",
    )
    command.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Runs ``python -m fastlstm predict`` with its parsed ``args``; returns the exit status (0; 1 for a failed
    run, with the error on stderr; 2 without the dask extra)."""
    try:
        import distributed  # noqa: F401
        import zarr  # noqa: F401

        import fastlstm.dask  # noqa: F401
    except ImportError as error:
        message = f'python -m fastlstm predict needs the dask extra: pip install "fastlstm[dask]" ({error})'
        print(message, file=sys.stderr)
        return 2
    try:
        return _run(args)
    except (OSError, ValueError, TypeError) as error:
        print(f"python -m fastlstm predict: {error}", file=sys.stderr)
        return 1


def _client(args: argparse.Namespace, stack: contextlib.ExitStack) -> Any:
    from distributed import Client, LocalCluster

    from .dask._worker import usable_cores

    if args.scheduler is not None:
        return stack.enter_context(Client(args.scheduler))
    workers = args.workers or usable_cores()
    cluster = stack.enter_context(
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    )
    return stack.enter_context(Client(cluster))


def _run(args: argparse.Namespace) -> int:
    import dask.array as da
    import numpy as np
    from distributed import progress

    from .dask import predict
    from .dask._client import describe
    from .dask._storage import Output, as_dask_array, check_output, input_source, is_npy

    start = time.perf_counter()
    model = fastlstm.load(args.model, precision=args.precision)
    info = describe(model)  # a TypeError for a model predict does not run, before any worker starts
    batch_axis = 0 if info.batch_first else 1
    source = input_source(args.input)
    check_output(args.output, args.overwrite)
    output = Output(args.output, args.overwrite)
    with contextlib.ExitStack() as stack:
        client = _client(args, stack)
        slots = max(1, sum(client.nthreads().values()))
        rows = args.rows or max(1, math.ceil(source.shape[batch_axis] / TASKS_PER_THREAD / slots))
        x = as_dask_array(source, args.input, batch_axis, rows)
        lengths = None
        if args.lengths is not None:
            lengths = np.load(args.lengths) if is_npy(args.lengths) else da.from_zarr(args.lengths)
        result = predict(model, x, lengths=lengths, output=args.result, threads=args.threads, isa=args.isa)
        try:
            job = client.compute(output.store(result))
            if not args.quiet:
                progress(job)
                print(file=sys.stdout)
            job.result()
            output.finish()
        finally:
            output.abandon()
        workers = len(client.nthreads())
    print(
        f"python -m fastlstm predict: {args.result or info.outputs[0]} {result.shape} {result.dtype} -> "
        f"{args.output}, {x.numblocks[batch_axis]} tasks on {workers} workers, {time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    return 0
