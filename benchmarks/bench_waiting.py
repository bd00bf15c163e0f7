"""
Benchmark 1, waiting at scale: N HailuoTaskTriggers in ONE event loop (one triggerer process) against
the emulator (its own process), versus the same N polled the naive way (a new ClientSession per poll,
fixed interval, like the dbt Cloud provider's trigger).

Per case a fresh worker process runs the N triggers for a fixed window; measured:

- CPU per poll: the worker's CPU time (user+system, all threads) over the window / polls the
  emulator counted over the same window;
- RSS per waiting trigger: (RSS once every task has been polled at least once - RSS before the
  triggers were created) / N;
- event-loop lag: a ticker coroutine asks for 50 ms sleeps and records the overshoot; p50/p99 over
  the whole window and over the steady state (after every trigger has polled once);
- TCP connections opened: counted at the emulator (every accepted connection).

Generations take 30-300 service seconds; ``--time-scale`` (default 2) makes that 15-150 s of real
time, and the poll bounds are scaled the same way (10 s/60 s -> 5 s/30 s at scale 2). The naive
baseline polls at the same minimum interval (it needs it for the same latency after SUCCEED).

``--baseline bare`` measures the trigger's own cost per read instead: the baseline is then a bare
aiohttp poller on one shared session with the same eta pacing (``_trigger_worker.py``).
``--repeat K`` runs K product/baseline pairs per N, alternating, and reports the medians (the
case shown is the one with the median CPU per poll; every pair's figures are in the JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import emulator, fmt_num, median, ratio, snapshot_product, submit_tasks
from _trigger_driver import TriggerCase, run_case

FULL_NS = (100, 1_000, 10_000)
QUICK_NS = (100, 1_000)


def _median_case(cases: list[TriggerCase]) -> TriggerCase:
    ranked = sorted(cases, key=lambda case: case.cpu_per_poll_ms)
    return ranked[(len(ranked) - 1) // 2]


def run(
    quick: bool = False,
    ns: tuple[int, ...] | None = None,
    out: Path | None = None,
    baseline: str = "naive",
    repeat: int = 1,
) -> list[dict[str, Any]]:
    scale = 10.0 if quick else 2.0
    window = 15.0 if quick else 60.0
    ns = ns or (QUICK_NS if quick else FULL_NS)
    poll_interval, max_poll_interval = 10.0 / scale, 60.0 / scale
    workdir = Path(tempfile.mkdtemp(prefix="hailuo-bench-waiting-"))
    rows: list[dict[str, Any]] = []
    with emulator(
        "--generation-seconds", "30:300", "--queue-seconds", "2", "--time-scale", str(scale), log_dir=workdir
    ) as emu:
        for n in ns:
            runs: dict[str, list[TriggerCase]] = {"product": [], baseline: []}
            for _ in range(repeat):
                for mode in runs:
                    emu.reset()
                    ids = submit_tasks(emu.url, n)
                    case = run_case(
                        emu,
                        mode,
                        ids,
                        poll_interval=poll_interval,
                        max_poll_interval=max_poll_interval,
                        window_s=window,
                        workdir=workdir,
                    )
                    runs[mode].append(case)
                    summary = json.dumps(case.summary(), default=str)
                    print(f"  waiting N={n} {mode}: {summary}", file=sys.stderr)
            product, naive = _median_case(runs["product"]), _median_case(runs[baseline])
            rows.append(
                {
                    "n": n,
                    "scale": scale,
                    "window_s": window,
                    "poll_interval": poll_interval,
                    "max_poll_interval": max_poll_interval,
                    "product": product.summary(),
                    "naive": naive.summary(),
                    "baseline": baseline,
                    "cpu_per_poll_ms_runs": {m: [c.cpu_per_poll_ms for c in cs] for m, cs in runs.items()},
                    "ratio_cpu_per_poll": ratio(
                        median([c.cpu_per_poll_ms for c in runs["product"]]),
                        median([c.cpu_per_poll_ms for c in runs[baseline]]),
                    ),
                    "ratio_cpu_per_poll_by_pair": [
                        ratio(p.cpu_per_poll_ms, b.cpu_per_poll_ms)
                        for p, b in zip(runs["product"], runs[baseline], strict=True)
                    ],
                    "ratio_rss_per_trigger": ratio(product.rss_per_trigger_kib, naive.rss_per_trigger_kib),
                    "ratio_connections": ratio(product.connections, naive.connections),
                }
            )
    if out:
        out.write_text(json.dumps(rows, indent=2, default=str))
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| N | trigger | polls in window | CPU/poll | RSS/waiting trigger | loop lag p50 / p99 (steady p99)"
        " | TCP connections | errors |",
        "|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        for key in ("product", "naive"):  # "naive" holds the baseline's figures, whichever it is
            c = row[key]
            lines.append(
                f"| {row['n']:,} | {c['mode']} | {c['polls']:,} | {fmt_num(c['cpu_per_poll_ms'])} ms"
                f" | {fmt_num(c['rss_per_trigger_kib'])} KiB"
                f" | {fmt_num(c['lag_p50_ms'])} / {fmt_num(c['lag_p99_ms'])} ms"
                f" ({fmt_num(c['steady_lag_p99_ms'])} ms)"
                f" | {c['connections']:,} | {c['status_errors'] + c['n_failures']} |"
            )
        lines.append(
            f"| {row['n']:,} | **ratio product/{row.get('baseline', 'naive')}** |"
            f" | **{fmt_num(row['ratio_cpu_per_poll'])}x**"
            f" | **{fmt_num(row['ratio_rss_per_trigger'])}x** |"
            f" | **{fmt_num(row['ratio_connections'])}x** | |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, action="append", help="N (repeatable); default 100, 1k, 10k")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--baseline", choices=("naive", "bare"), default="naive")
    parser.add_argument("--repeat", type=int, default=1, help="product/baseline pairs per N (medians)")
    args = parser.parse_args()
    print(f"product measured: {snapshot_product()}", file=sys.stderr)
    result = run(args.quick, tuple(args.n) if args.n else None, args.json, args.baseline, args.repeat)
    print(table(result))
