"""For benchmarks only (bench/bench_import_gc.py): the import process's time in Python's
cyclic garbage collector, written as JSON to ``$SOR_BENCH_GC_REPORT`` at exit.

With ``SOR_BENCH_GC_DEFAULTS=1`` the import runs with Python's own collector settings:
``sorregistry.commands.bulk_work`` does nothing (everything else is the same code).
Put this directory first on ``PYTHONPATH``; Python imports it at start-up.
"""

import atexit
import gc
import json
import os
import time

_started: dict[int, float] = {}
_counts = [0, 0, 0]
_seconds = [0.0, 0.0, 0.0]


def _timed(phase: str, info: dict[str, int]) -> None:
    generation = info["generation"]
    if phase == "start":
        _started[generation] = time.perf_counter()
    elif generation in _started:
        _counts[generation] += 1
        _seconds[generation] += time.perf_counter() - _started.pop(generation)


def _report() -> None:
    path = os.environ.get("SOR_BENCH_GC_REPORT")
    if path:
        with open(path, "w") as out:
            json.dump({"collections": _counts, "seconds": _seconds}, out)


gc.callbacks.append(_timed)
atexit.register(_report)
if os.environ.get("SOR_BENCH_GC_DEFAULTS") == "1":
    import contextlib

    import sorregistry.commands

    sorregistry.commands.bulk_work = contextlib.nullcontext  # type: ignore[assignment]
