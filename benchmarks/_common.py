"""Helpers shared by the benchmark scripts: processes, the emulator, statistics, the machine."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:  # the shared helpers in tests/support
    sys.path.insert(1, str(REPO))

from tests.support.connections import hailuo_conn_json  # noqa: E402

PYTHON = sys.executable
API_KEY = "bench-key-7d1e"
SNAPSHOT_ENV = "HAILUO_BENCH_SNAPSHOT"


def snapshot_product() -> str:
    """
    Copy the package to a temp dir that every child process imports first (PYTHONPATH), so a run
    measures one version of the product even while others edit the work tree. Returns a description.
    """
    target = Path(tempfile.mkdtemp(prefix="hailuo-bench-snapshot-"))
    shutil.copytree(
        REPO / "airflow_provider_hailuo",
        target / "airflow_provider_hailuo",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    os.environ[SNAPSHOT_ENV] = str(target)

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "airflow_provider_hailuo")
    return f"{head} ({git('log', '-1', '--format=%s')[:70]}){' + uncommitted changes' if dirty else ''}"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("nan")


def airflow_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for a child process that imports Airflow: private AIRFLOW_HOME, no examples."""
    env = os.environ.copy()
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [os.environ.get(SNAPSHOT_ENV, ""), str(REPO), env.get("PYTHONPATH", "")])
            ),
            "PYTHONDONTWRITEBYTECODE": "",
        }
    )
    if extra:
        env.update(extra)
    return env


def hailuo_conn(url: str, key: str = API_KEY) -> str:
    """``AIRFLOW_CONN_HAILUO_DEFAULT`` for the benchmark's emulator."""
    return hailuo_conn_json(url, key)


@dataclass
class Emulator:
    """The emulator running in its own process (``benchmarks/_emulator.py``, see its docstring)."""

    proc: subprocess.Popen[str]
    url: str
    log_path: Path

    def __post_init__(self) -> None:
        self.http = requests.Session()  # one keep-alive connection for all control calls

    def counters(self) -> dict[str, Any]:
        return self.http.get(f"{self.url}/_emulator/counters", timeout=60).json()

    def schedule(self) -> dict[str, dict[str, float]]:
        return self.http.get(f"{self.url}/_bench/schedule", timeout=120).json()

    def configure(self, **changes: Any) -> None:
        self.http.post(f"{self.url}/_emulator/config", json=changes, timeout=30).raise_for_status()

    def reset(self) -> None:
        self.http.post(f"{self.url}/_emulator/reset", timeout=30).raise_for_status()


@contextlib.contextmanager
def listening_process(
    cmd: list[str], log_path: Path, env: dict[str, str], name: str
) -> Iterator[tuple[subprocess.Popen[Any], str]]:
    """Start a server that prints ``... listening on http://HOST:PORT`` first; yield it and its URL."""
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r"listening on (http://\S+)", line)
            if not match:
                raise RuntimeError(f"{name} did not start: {line!r}; see {log_path}")
            yield proc, match.group(1)
        finally:
            stop_process(proc)


@contextlib.contextmanager
def emulator(*args: str, log_dir: Path | None = None) -> Iterator[Emulator]:
    """Start ``benchmarks/_emulator.py`` (the product CLI plus two counters) on loopback; stop it after."""
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="hailuo-bench-emu-"))
    log_path = log_dir / "emulator.log"
    cmd = [
        PYTHON,
        str(BENCH_DIR / "_emulator.py"),
        *("--host", "127.0.0.1", "--port", "0", "--api-key", API_KEY, "--log-level", "WARNING"),
        *args,
    ]
    with listening_process(cmd, log_path, airflow_env(log_dir), "emulator") as (proc, url):
        yield Emulator(proc=proc, url=url, log_path=log_path)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def submit_tasks(url: str, n: int, concurrency: int = 64) -> list[str]:
    """Submit ``n`` generations to the emulator as fast as it takes them (the driver's own session)."""
    import asyncio

    import aiohttp

    async def main() -> list[str]:
        ids: list[str] = []
        sem = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i: int) -> None:
                async with (
                    sem,
                    session.post(
                        f"{url}/v3/async/minimax-hailuo-02",
                        json={"prompt": f"benchmark video {i}"},
                        headers={"Authorization": f"Bearer {API_KEY}"},
                    ) as resp,
                ):
                    resp.raise_for_status()
                    ids.append((await resp.json())["task_id"])

            await asyncio.gather(*(one(i) for i in range(n)))
        return ids

    return asyncio.run(main())


def machine_info() -> dict[str, str]:
    """nproc, memory, CPU model, Python, Airflow and key library versions, date."""
    from importlib import metadata

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "-"

    curl = shutil.which("curl")
    curl_version = (
        subprocess.run([curl, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        if curl
        else "-"
    )
    return {
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "nproc": str(os.cpu_count()),
        "memory": mem,
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "apache-airflow": version("apache-airflow"),
        "apache-airflow-task-sdk": version("apache-airflow-task-sdk"),
        "aiohttp": version("aiohttp"),
        "requests": version("requests"),
        "s3fs": version("s3fs"),
        "moto": version("moto"),
        "curl": " ".join(curl_version.split()[:2]),
    }


def fmt_num(value: float, digits: int = 3) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:.{digits}g}"
