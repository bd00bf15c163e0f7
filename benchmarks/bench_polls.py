"""
Benchmark 2, poll economy: polls per video against the minimum possible, and the latency from the
moment a task became SUCCEED to the moment its trigger fired.

The product trigger (eta-paced, ``poll_interval`` .. ``max_poll_interval``) and the naive baseline
(fixed ``poll_interval``) wait for N videos each, at the same time, in two worker processes against
one emulator (its own process). Polls per task come from the emulator (``polls_by_task``); the time
each task became SUCCEED comes from the emulator's own schedule (``/_bench/schedule``, CLOCK_MONOTONIC,
the same clock the workers stamp their events with).

Minimum possible polls for a task whose wait started at ``t0`` and which finished at ``t_done``
(``D = t_done - t0``): a client must read once to learn anything (and the eta), must read once at or
after ``t_done`` to see SUCCEED, and may not sleep longer than ``max_poll_interval`` between reads:
``min = 1 if D <= 0 else ceil(D / max_poll_interval) + 1``. That is what a client with perfect
knowledge of ``t_done`` achieves within the same bounds.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import emulator, fmt_num, median, percentile, ratio, snapshot_product, stop_process, submit_tasks
from _trigger_driver import start_worker


def minimum_polls(started: float, done_at: float, max_poll_interval: float) -> int:
    span = done_at - started
    return 1 if span <= 0 else math.ceil(span / max_poll_interval) + 1


def analyse(
    worker: dict[str, Any],
    polls_by_task: dict[str, int],
    schedule: dict[str, dict[str, float]],
    poll_interval: float,
    max_poll_interval: float,
) -> dict[str, Any]:
    polls, minimum, per_video, latencies = [], [], [], []
    for task_id, started in worker["started"].items():
        done_at = schedule[task_id]["done_at"]
        count = polls_by_task.get(task_id, 0)
        least = minimum_polls(started, done_at, max_poll_interval)
        polls.append(count)
        minimum.append(least)
        per_video.append(count / least)
        if task_id in worker["fired"]:
            latencies.append(worker["fired"][task_id][0] - done_at)
    return {
        "mode": worker["mode"],
        "n": worker["n"],
        "fired": len(worker["fired"]),
        "polls": sum(polls),
        "min_polls": sum(minimum),
        "polls_per_video_median": median(polls),
        "min_polls_per_video_median": median(minimum),
        "ratio_total": ratio(sum(polls), sum(minimum)),
        "ratio_per_video_median": median(per_video),
        "ratio_per_video_p95": percentile(per_video, 95),
        "latency_median_s": median(latencies),
        "latency_p99_s": percentile(latencies, 99),
        "latency_max_s": max(latencies) if latencies else float("nan"),
        "poll_interval": poll_interval,
        "max_poll_interval": max_poll_interval,
    }


def run(quick: bool = False, n: int | None = None, out: Path | None = None) -> dict[str, Any]:
    scale = 10.0 if quick else 2.0
    n = n or (50 if quick else 300)
    poll_interval, max_poll_interval = 10.0 / scale, 60.0 / scale
    cap = 300.0 / scale + 60.0
    workdir = Path(tempfile.mkdtemp(prefix="hailuo-bench-polls-"))
    results: dict[str, Any] = {"scale": scale, "n": n}
    with emulator(
        "--generation-seconds", "30:300", "--queue-seconds", "2", "--time-scale", str(scale), log_dir=workdir
    ) as emu:
        ids = {mode: submit_tasks(emu.url, n) for mode in ("product", "naive")}
        procs = {
            mode: start_worker(emu, mode, ids[mode], poll_interval, max_poll_interval, workdir)
            for mode in ("product", "naive")
        }
        try:
            for proc, _ in procs.values():
                proc.send_signal(signal.SIGUSR1)
            started = time.monotonic()
            while any(p.poll() is None for p, _ in procs.values()) and time.monotonic() - started < cap:
                time.sleep(1)
            for proc, _ in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGUSR2)
                proc.wait(timeout=60)
        finally:
            for proc, _ in procs.values():
                stop_process(proc)
        counters = emu.counters()
        schedule = emu.schedule()
    for mode, (_, result_path) in procs.items():
        worker = json.loads(result_path.read_text())
        results[mode] = analyse(worker, counters["polls_by_task"], schedule, poll_interval, max_poll_interval)
        print(f"  polls {mode}: {json.dumps(results[mode])}", file=sys.stderr)
    results["ratio_polls_product_vs_naive"] = ratio(results["product"]["polls"], results["naive"]["polls"])
    if out:
        out.write_text(json.dumps(results, indent=2))
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"N = {results['n']} videos per trigger kind, generation 30-300 service s at time scale "
        f"{results['scale']:g}; poll_interval {results['product']['poll_interval']:g} s, "
        f"max_poll_interval {results['product']['max_poll_interval']:g} s (real seconds).",
        "",
        "| trigger | fired | polls | minimum | polls/min (total) | polls/min per video: median, p95"
        " | polls/video (median) | latency SUCCEED->event: median / p99 / max |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for mode in ("product", "naive"):
        r = results[mode]
        lines.append(
            f"| {mode} | {r['fired']}/{r['n']} | {r['polls']:,} | {r['min_polls']:,}"
            f" | **{fmt_num(r['ratio_total'])}x** | {fmt_num(r['ratio_per_video_median'])}x,"
            f" {fmt_num(r['ratio_per_video_p95'])}x | {fmt_num(r['polls_per_video_median'])}"
            f" | {fmt_num(r['latency_median_s'])} / {fmt_num(r['latency_p99_s'])}"
            f" / {fmt_num(r['latency_max_s'])} s |"
        )
    lines.append(
        f"| **ratio polls product/naive** | | **{fmt_num(results['ratio_polls_product_vs_naive'])}x** |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"product measured: {snapshot_product()}", file=sys.stderr)
    print(table(run(args.quick, args.n, args.json)))
