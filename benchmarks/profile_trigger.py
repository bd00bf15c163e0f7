"""
Profile the trigger worker of benchmark 1 (``_trigger_worker.py``) while N triggers wait (issue 16,
item 7): where a read's CPU goes, for ``--mode product`` and for the ``bare`` floor.

``--profiler cprofile`` runs the worker under cProfile (deterministic: call counts per read, at a
cost of its own) and prints the top functions by own time and by cumulative time, per read.
``--profiler py-spy`` samples the worker from outside with ``py-spy record`` (``--py-spy PATH``;
py-spy is not a dependency of the project: install it into a scratch venv) and writes collapsed
stacks per thread (flamegraph input).
``--profiler gc`` counts the CPU spent in the garbage collector (in the worker's log).
"""

from __future__ import annotations

import argparse
import json
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import BENCH_DIR, PYTHON, airflow_env, emulator, hailuo_conn, snapshot_product, stop_process


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("product", "bare", "naive"), default="product")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=40.0, help="profiled window")
    parser.add_argument("--scale", type=float, default=2.0, help="emulator time scale (as benchmark 1)")
    parser.add_argument("--profiler", choices=("cprofile", "py-spy", "gc"), default="cprofile")
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy executable")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path, help="where to keep the profile (default: a temp dir)")
    args = parser.parse_args()
    print(f"product measured: {snapshot_product()}", file=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="hailuo-profile-trigger-"))
    out = args.out or workdir / f"{args.mode}.{'prof' if args.profiler == 'cprofile' else 'collapsed.txt'}"
    from _common import submit_tasks

    timings = ("--generation-seconds", "30:300", "--queue-seconds", "2", "--time-scale", str(args.scale))
    with emulator(*timings, log_dir=workdir) as emu:
        ids = submit_tasks(emu.url, args.n)
        (workdir / "ids.json").write_text(json.dumps(ids))
        worker = [
            str(BENCH_DIR / "_trigger_worker.py"),
            *("--mode", args.mode, "--ids", str(workdir / "ids.json"), "--n", str(args.n)),
            *("--poll-interval", str(10.0 / args.scale), "--max-poll-interval", str(60.0 / args.scale)),
            *("--out", str(workdir / "result.json")),
        ]
        prefix = {
            "cprofile": [PYTHON, "-m", "cProfile", "-o", str(out)],
            "gc": [PYTHON, str(BENCH_DIR / "_gc_timed.py")],
        }.get(args.profiler, [PYTHON, str(BENCH_DIR / "_gc_timed.py")])
        env = airflow_env(workdir / "home", {"AIRFLOW_CONN_HAILUO_DEFAULT": hailuo_conn(emu.url)})
        with open(workdir / "worker.log", "w") as log:
            command = [*prefix, *worker]
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
            try:
                assert proc.stdout is not None
                if proc.stdout.readline().strip() != "READY":
                    raise RuntimeError(f"worker did not start; see {workdir / 'worker.log'}")
                polls0 = emu.counters()["polls"]
                proc.send_signal(signal.SIGUSR1)
                spy = None
                if args.profiler == "py-spy":
                    spy = subprocess.Popen(
                        [
                            args.py_spy,
                            "record",
                            *("--pid", str(proc.pid), "--duration", str(int(args.seconds))),
                            *("--format", "raw", "--output", str(out), "--rate", "200", "--threads"),
                        ]
                    )
                    spy.wait()
                else:
                    time.sleep(args.seconds)
                polls = emu.counters()["polls"] - polls0
                proc.send_signal(signal.SIGUSR2)
                proc.wait(timeout=120)
            finally:
                stop_process(proc)
    cpu_s = json.loads((workdir / "result.json").read_text())["cpu_s"]
    print(f"{args.mode}: {polls} reads, {cpu_s:.2f} CPU-s in about {args.seconds:.0f} s; profile in {out}")
    if args.profiler == "gc":
        print((workdir / "worker.log").read_text().rstrip().splitlines()[-1])
    if args.profiler == "cprofile":
        stats = pstats.Stats(str(out))
        for key in ("tottime", "cumulative"):
            print(f"\n--- top {args.top} by {key} ---")
            stats.sort_stats(key).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
