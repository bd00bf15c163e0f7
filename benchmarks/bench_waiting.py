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
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import emulator, fmt_num, ratio, snapshot_product, submit_tasks
from _trigger_driver import TriggerCase, run_case

FULL_NS = (100, 1_000, 10_000)
QUICK_NS = (100, 1_000)


def run(
    quick: bool = False, ns: tuple[int, ...] | None = None, out: Path | None = None
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
            pair: dict[str, TriggerCase] = {}
            for mode in ("product", "naive"):
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
                pair[mode] = case
                print(f"  waiting N={n} {mode}: {json.dumps(case.summary(), default=str)}", file=sys.stderr)
            product, naive = pair["product"], pair["naive"]
            rows.append(
                {
                    "n": n,
                    "scale": scale,
                    "window_s": window,
                    "poll_interval": poll_interval,
                    "max_poll_interval": max_poll_interval,
                    "product": product.summary(),
                    "naive": naive.summary(),
                    "ratio_cpu_per_poll": ratio(product.cpu_per_poll_ms, naive.cpu_per_poll_ms),
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
        for key in ("product", "naive"):
            c = row[key]
            lines.append(
                f"| {row['n']:,} | {c['mode']} | {c['polls']:,} | {fmt_num(c['cpu_per_poll_ms'])} ms"
                f" | {fmt_num(c['rss_per_trigger_kib'])} KiB"
                f" | {fmt_num(c['lag_p50_ms'])} / {fmt_num(c['lag_p99_ms'])} ms"
                f" ({fmt_num(c['steady_lag_p99_ms'])} ms)"
                f" | {c['connections']:,} | {c['status_errors'] + c['n_failures']} |"
            )
        lines.append(
            f"| {row['n']:,} | **ratio product/naive** | | **{fmt_num(row['ratio_cpu_per_poll'])}x**"
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
    args = parser.parse_args()
    print(f"product measured: {snapshot_product()}", file=sys.stderr)
    result = run(args.quick, tuple(args.n) if args.n else None, args.json)
    print(table(result))
