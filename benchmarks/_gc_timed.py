"""Run a script (``argv[1:]``) with the time spent in the garbage collector counted; printed at exit."""

from __future__ import annotations

import atexit
import gc
import runpy
import sys
import time

_started: list[float] = []
_spent = [0.0, 0.0, 0.0]
_runs = [0, 0, 0]


def _callback(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started[:] = [time.process_time()]
    elif _started:
        _spent[info["generation"]] += time.process_time() - _started[0]
        _runs[info["generation"]] += 1


def _report() -> None:
    total = sum(_spent)
    per_gen = ", ".join(f"gen{g}: {_runs[g]} runs {_spent[g]:.3f} s" for g in range(3))
    print(f"GC CPU {total:.3f} s ({per_gen})", file=sys.__stderr__, flush=True)


gc.callbacks.append(_callback)
atexit.register(_report)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
