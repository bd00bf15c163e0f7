"""Start a ``_trigger_worker.py`` process and measure it from outside (psutil) and at the emulator."""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from _common import BENCH_DIR, PYTHON, Emulator, airflow_env, hailuo_conn, percentile, stop_process


@dataclass
class TriggerCase:
    """What one worker run measured."""

    mode: str
    n: int
    window_s: float = 0.0
    cpu_s: float = 0.0
    polls: int = 0
    connections: int = 0
    rss_before: int = 0
    rss_waiting: int = 0
    rss_peak: int = 0
    all_polled_after_s: float | None = None
    lag_p50_ms: float = float("nan")
    lag_p99_ms: float = float("nan")
    lag_max_ms: float = float("nan")
    steady_lag_p50_ms: float = float("nan")
    steady_lag_p99_ms: float = float("nan")
    fired: int = 0
    n_failures: int = 0
    status_errors: int = 0
    worker: dict[str, Any] = field(default_factory=dict, repr=False)
    polls_by_task: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def cpu_per_poll_ms(self) -> float:
        return 1000 * self.cpu_s / self.polls if self.polls else float("nan")

    @property
    def rss_per_trigger_kib(self) -> float:
        return (self.rss_waiting - self.rss_before) / 1024 / self.n if self.rss_waiting else float("nan")

    def summary(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("worker", "polls_by_task")}
        data["cpu_per_poll_ms"] = self.cpu_per_poll_ms
        data["rss_per_trigger_kib"] = self.rss_per_trigger_kib
        return data


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def start_worker(
    emu: Emulator,
    mode: str,
    task_ids: list[str],
    poll_interval: float,
    max_poll_interval: float,
    workdir: Path,
) -> tuple[subprocess.Popen[str], Path]:
    ids_path = workdir / f"ids-{mode}-{len(task_ids)}.json"
    ids_path.write_text(json.dumps(task_ids))
    out = workdir / f"result-{mode}-{len(task_ids)}.json"
    home = Path(tempfile.mkdtemp(prefix="hailuo-bench-home-", dir=workdir))
    env = airflow_env(home, {"AIRFLOW_CONN_HAILUO_DEFAULT": hailuo_conn(emu.url)})
    log = open(workdir / f"worker-{mode}-{len(task_ids)}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            PYTHON,
            str(BENCH_DIR / "_trigger_worker.py"),
            "--mode",
            mode,
            "--ids",
            str(ids_path),
            "--n",
            str(len(task_ids)),
            "--poll-interval",
            str(poll_interval),
            "--max-poll-interval",
            str(max_poll_interval),
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "READY":
        stop_process(proc)
        raise RuntimeError(f"worker did not start ({line!r}); see {log.name}")
    return proc, out


def lag_stats(case: TriggerCase, worker: dict[str, Any], steady_from: float | None) -> None:
    lags = [lag for _, lag in worker["ticks"]]
    case.lag_p50_ms = 1000 * percentile(lags, 50)
    case.lag_p99_ms = 1000 * percentile(lags, 99)
    case.lag_max_ms = 1000 * max(lags) if lags else float("nan")
    if steady_from is not None:
        steady = [lag for at, lag in worker["ticks"] if at >= steady_from]
        case.steady_lag_p50_ms = 1000 * percentile(steady, 50)
        case.steady_lag_p99_ms = 1000 * percentile(steady, 99)


def run_case(
    emu: Emulator,
    mode: str,
    task_ids: list[str],
    *,
    poll_interval: float,
    max_poll_interval: float,
    window_s: float,
    workdir: Path,
) -> TriggerCase:
    """
    Run N triggers for ``window_s`` seconds (or until all fired) and measure:

    CPU (psutil, all threads of the worker) and polls/connections (emulator counters) over the same
    window; RSS before starting the triggers and when every task has been polled at least once.
    """
    n = len(task_ids)
    case = TriggerCase(mode=mode, n=n)
    proc, out = start_worker(emu, mode, task_ids, poll_interval, max_poll_interval, workdir)
    ps = psutil.Process(proc.pid)
    try:
        time.sleep(0.5)  # let the import settle (gc, lazy imports)
        case.rss_before = ps.memory_info().rss
        c0 = emu.counters()
        polled0 = set(c0["polls_by_task"])
        cpu0 = _cpu(ps)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGUSR1)
        case.rss_peak = case.rss_before
        ids = set(task_ids)
        while proc.poll() is None and time.monotonic() - t0 < window_s:
            time.sleep(0.5)
            try:
                rss = ps.memory_info().rss
            except psutil.NoSuchProcess:
                break
            case.rss_peak = max(case.rss_peak, rss)
            if case.all_polled_after_s is None:
                polled = set(emu.counters()["polls_by_task"]) - polled0
                if ids <= polled:
                    case.all_polled_after_s = time.monotonic() - t0
                    case.rss_waiting = ps.memory_info().rss
        try:
            cpu1 = _cpu(ps)
        except psutil.NoSuchProcess:  # all fired before the window ended: CPU of the whole run is lost
            cpu1 = float("nan")
        c1 = emu.counters()
        case.window_s = time.monotonic() - t0
        if proc.poll() is None:
            proc.send_signal(signal.SIGUSR2)
        proc.wait(timeout=120)
    finally:
        stop_process(proc)
    worker = json.loads(out.read_text())
    case.worker = worker
    case.cpu_s = cpu1 - cpu0 if cpu1 == cpu1 else worker["cpu_s"]
    case.polls = c1["polls"] - c0["polls"]
    case.connections = c1.get("tcp_connections_opened", 0) - c0.get("tcp_connections_opened", 0)
    case.status_errors = sum(v - c0.get(k, 0) for k, v in c1.items() if k.startswith("status_"))
    case.polls_by_task = {t: c1["polls_by_task"].get(t, 0) for t in task_ids}
    case.fired = len(worker["fired"])
    case.n_failures = worker["n_failures"]
    steady_from = t0 + case.all_polled_after_s if case.all_polled_after_s is not None else None
    lag_stats(case, worker, steady_from)
    return case
