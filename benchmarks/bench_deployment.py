"""
Benchmark 6, a real deployment: what Airflow spends per video, by component.

The script starts everything itself: Postgres and Redis from Debian's packages (installed with
apt-get when missing; a throw-away cluster in a temp dir, both on free loopback ports:
tests/support/services.py), the emulator in its own process (generations of 20-60 s), and a
CeleryExecutor deployment (tests/e2e/deployment.py) with the scheduler, the dag-processor, the
api-server, two triggerers and a celery worker of 8 slots, each its own process group. Airflow's
timings are its defaults (heartbeats 5 s, triggerer health threshold 30 s), the DAG's too (the sensor
reads no more often than every 10 s); no run is scheduled but the ones the script triggers.

Each pipeline then runs once with N videos (N prompts in one DAG run) and is measured over its run,
from the trigger through the REST API to the run's end:

- CPU-seconds per video of each component: user + system time of the component's whole process
  tree (psutil; children that ended count through their parent's children times), the difference
  between the start and the end of the run, divided by N. The worker's figure includes the task
  processes it forks (one per task run);
- task instances per video (rows of the run), worker task-process runs per video (workloads the
  celery worker received: one task process each, a sensor resumed from the triggerer runs twice),
  status reads per video (the emulator's ``polls``), paid submits per video, wall time.

Pipelines: (a) the example DAG ``hailuo_daily_content`` (submit -> deferrable sensor -> download,
mapped over the prompts). (b) the one-task generate operator, run as ``benchmarks/dags/
hailuo_bench_generate.py``, only when ``HailuoGenerateVideoOperator`` exists in the product. Another
pipeline is one more entry in PIPELINES: a DAG id, the folder of its file, and the task that lands
the videos.

    python benchmarks/bench_deployment.py --videos 50 [--append-results] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from _common import API_KEY, REPO, emulator, hailuo_conn, machine_info

from tests.e2e.deployment import AirflowDeployment, DeploymentError
from tests.e2e.runs import Run, trigger_run
from tests.support.services import PostgresServer, RedisServer, ensure_packages

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
COMPONENTS = ("scheduler", "api-server", "dag-processor", "celery-worker", "triggerers")
COLUMN = {
    "scheduler": "scheduler",
    "api-server": "api-server",
    "dag-processor": "dag-processor",
    "celery-worker": "worker + task processes",
    "triggerers": "triggerers (2)",
}
#: Airflow's own defaults, instead of the e2e tests' 1 s heartbeats: the benchmark measures a
#: deployment as it ships. (The DAG files are parsed at start and not re-parsed during a run.)
PRODUCTION_TIMINGS = {
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "5",
    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "5",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "5",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "30",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "300",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
}
WORKLOAD_RECEIVED = re.compile(r"Task \S*execute_workload\[[0-9a-f-]+\] received")


def _generate_operator_exists() -> bool:
    try:
        spec = importlib.util.find_spec("airflow_provider_hailuo.operators.hailuo")
    except ModuleNotFoundError:
        return False
    if spec is None or spec.origin is None:
        return False
    # Read, not imported: importing the operators would import Airflow in this process.
    return "HailuoGenerateVideoOperator" in Path(spec.origin).read_text()


@dataclass(frozen=True)
class Pipeline:
    key: str
    title: str
    dag_id: str
    #: the folder of the DAG file; None: the example DAGs (dags/)
    dag_folder: Path | None
    #: the task whose XCom says where each video landed ({"uri", "bytes", "sha256", ...})
    landing_task: str
    available: Callable[[], bool] = lambda: True


PIPELINES = (
    Pipeline("a", "(a) submit → wait → download", "hailuo_daily_content", None, "generate.download"),
    Pipeline(
        "b",
        "(b) generate operator",
        "hailuo_bench_generate",
        BENCH_DIR / "dags",
        "generate",
        available=_generate_operator_exists,
    ),
    # (a)'s three tasks with the sensor resuming on a worker after the wait (end_from_trigger=False).
    Pipeline(
        "a-resume",
        "(a-resume) (a), sensor resumes",
        "hailuo_bench_resume",
        BENCH_DIR / "dags",
        "generate.download",
    ),
    # Airflow's own floor: three no-op mapped tasks per video (the shape of (a), no Hailuo call).
    Pipeline("floor", "(floor) 3 no-op tasks", "hailuo_bench_floor", BENCH_DIR / "dags", "land"),
)


# -- measuring ----------------------------------------------------------------------------------------
def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and all its descendants, living or ended (and waited for)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    # Deepest first: a child that ends meanwhile is then still counted, by its parent read after it.
    for proc in reversed(procs):
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def component_cpu(airflow: AirflowDeployment, services: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each Airflow component (both triggerers together) and each service."""
    cpu = dict.fromkeys(COMPONENTS, 0.0)
    for name, component in airflow.components.items():
        key = "triggerers" if name.startswith("triggerer") else name
        cpu[key] += tree_cpu(component.pid)
    for name, pid in services.items():
        cpu[name] = tree_cpu(pid)
    return cpu


def worker_workloads(airflow: AirflowDeployment) -> int:
    """Workloads the celery worker has received so far (one task process each)."""
    text = airflow.components["celery-worker"].log_path.read_text(errors="replace")
    return len(WORKLOAD_RECEIVED.findall(text))


@dataclass
class Measurement:
    pipeline: str
    videos: int
    state: str = ""
    wall_seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    #: Postgres and Redis (not Airflow, not in the table's total)
    services_cpu: dict[str, float] = field(default_factory=dict)
    task_instances: int = 0
    workloads: int = 0
    polls: int = 0
    submits: int = 0
    landed: int = 0
    landed_ok: int = 0
    tries_over_one: int = 0
    error: str = ""

    def per_video(self, value: float) -> float:
        return value / self.videos if self.videos else float("nan")


def run_pipeline(
    airflow: AirflowDeployment,
    services: dict[str, int],
    emu: Any,
    pipeline: Pipeline,
    videos: int,
    destination: Path,
    timeout: float,
) -> Measurement:
    result = Measurement(pipeline=pipeline.title, videos=videos)
    prompts = [f"benchmark video {i}: a paper boat on a rainy street" for i in range(videos)]
    before_counters = emu.counters()
    before_cpu = component_cpu(airflow, services)
    before_workloads = worker_workloads(airflow)
    started = time.monotonic()
    run: Run = trigger_run(airflow, pipeline.dag_id, prompts=prompts, destination=destination.as_uri() + "/")
    try:
        result.state = run.wait(timeout=timeout, interval=2.0)
    except DeploymentError as err:
        result.state = "timed out"
        result.error = str(err)[:2000]
    result.wall_seconds = time.monotonic() - started
    after_cpu = component_cpu(airflow, services)
    after_counters = emu.counters()
    result.cpu = {name: after_cpu[name] - before_cpu[name] for name in COMPONENTS}
    result.services_cpu = {name: after_cpu[name] - before_cpu[name] for name in services}
    result.workloads = worker_workloads(airflow) - before_workloads
    result.polls = after_counters["polls"] - before_counters["polls"]
    result.submits = after_counters["submits"] - before_counters["submits"]
    tis = run.task_instances()
    result.task_instances = len(tis)
    result.tries_over_one = sum(1 for ti in tis if (ti["try_number"] or 0) > 1)
    landed = run.xcoms(pipeline.landing_task)
    result.landed = len(landed)
    for value in landed.values():
        path = Path(str(value.get("uri", "")).removeprefix("file://"))
        if path.is_file() and path.stat().st_size == value.get("bytes"):
            result.landed_ok += 1
    return result


def parsed_or_why_not(airflow: AirflowDeployment, pipeline: Pipeline, timeout: float = 180) -> str | None:
    """
    Wait for a pipeline's DAG to be parsed, and unpause it; return None, or why it cannot run (its
    file's import error). The example DAGs are waited for by the deployment itself.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if airflow.query("SELECT 1 FROM serialized_dag WHERE dag_id = :d", d=pipeline.dag_id):
            airflow.api("PATCH", f"/api/v2/dags/{pipeline.dag_id}", json={"is_paused": False})
            return None
        errors = airflow.query("SELECT filename, stacktrace FROM import_error")
        for row in errors:
            if pipeline.dag_folder and any(
                str(row["filename"]).endswith(f.name) for f in pipeline.dag_folder.glob("*.py")
            ):
                return f"its DAG file does not import: {str(row['stacktrace']).strip().splitlines()[-1]}"
        time.sleep(2)
    return f"its DAG {pipeline.dag_id} was not parsed within {timeout:.0f} s"


# -- reporting ----------------------------------------------------------------------------------------
def table(results: list[Measurement]) -> str:
    head = (
        "| pipeline | N | wall time | "
        + " | ".join(f"{COLUMN[c]} CPU-s/video" for c in COMPONENTS)
        + " | **Airflow CPU-s/video** | task instances/video | task-process runs/video"
        " | status reads/video | submits/video | landed whole |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        total = sum(r.cpu.values())
        cells = [
            r.pipeline,
            str(r.videos),
            f"{r.wall_seconds:.0f} s" + ("" if r.state == "success" else f" ({r.state})"),
            *(f"{r.per_video(r.cpu[c]):.2f}" for c in COMPONENTS),
            f"**{r.per_video(total):.2f}**",
            f"{r.per_video(r.task_instances):.2f}",
            f"{r.per_video(r.workloads):.2f}",
            f"{r.per_video(r.polls):.2f}",
            f"{r.per_video(r.submits):.2f}",
            f"{r.landed_ok}/{r.videos}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def report(results: list[Measurement], context: dict[str, Any]) -> str:
    info = context["machine"]
    parts = [
        f"### Run of {info['date (UTC)']} UTC: N = {context['videos']}, product `{context['commit']}`",
        "",
        f"`bench_deployment.py --videos {context['videos']}` ({context['took']:.0f} s in all, of which "
        f"{context['startup']:.0f} s starting Postgres, Redis and Airflow). Machine: {info['nproc']} cores, "
        f"{info['cpu']}, Python {info['python']}, apache-airflow {info['apache-airflow']}, "
        f"celery provider {context['celery provider']}, celery {context['celery']}, "
        f"Postgres {context['postgres']}, Redis {context['redis']}. Load average (1 min) "
        f"{context['load before']:.1f} before the runs, {context['load after']:.1f} after them.",
        f"Emulator generations {context['generation']} s (queue {context['queue']} s); "
        f"{context['worker slots']} worker slots; pipelines: {', '.join(r.pipeline for r in results)}"
        + (f"; {context['skipped']}" if context.get("skipped") else "")
        + ".",
        "",
        table(results),
        "",
        f"Idle (before the first run, {context['idle seconds']:.0f} s): "
        + ", ".join(f"{c} {v * 60:.1f}" for c, v in context["idle cpu per second"].items())
        + " CPU-s per minute.",
    ]
    for r in results:
        outside = ", ".join(f"{name} {r.per_video(cpu):.2f}" for name, cpu in r.services_cpu.items())
        parts.append(f"\n{r.pipeline}: outside Airflow, {outside} CPU-s/video.")
        if r.error or r.tries_over_one:
            parts.append(f"\n{r.pipeline}: {r.tries_over_one} task instance(s) retried. {r.error[:500]}")
    return "\n".join(parts)


RESULTS_HEADING = "## 6. Deployment benchmark (CeleryExecutor, `make bench-deployment`)"


def append_results(text: str) -> None:
    """Add the run's text at the end of section 6 of RESULTS.md (before the next section)."""
    current = RESULTS.read_text()
    if RESULTS_HEADING not in current:
        current = current.rstrip("\n") + f"\n\n{RESULTS_HEADING}\n"
    start = current.index(RESULTS_HEADING)
    following = current.find("\n## ", start + len(RESULTS_HEADING))
    end = len(current) if following < 0 else following
    before, after = current[:end].rstrip("\n"), current[end:]
    RESULTS.write_text(before + "\n\n" + text.rstrip("\n") + "\n" + (after if after else ""))


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


# -- main ---------------------------------------------------------------------------------------------
def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--videos", "-n", type=int, default=50, help="videos per pipeline (default 50)")
    parser.add_argument("--generation", default="20:60", help="emulator generation seconds, S or MIN:MAX")
    parser.add_argument("--queue", default="1", help="emulator queue seconds (default 1)")
    parser.add_argument("--worker-slots", type=int, default=8)
    parser.add_argument("--idle-seconds", type=float, default=30, help="idle window measured first")
    parser.add_argument("--timeout", type=float, default=3600, help="per pipeline run (seconds)")
    parser.add_argument(
        "--only", action="append", choices=[p.key for p in PIPELINES], help="pipelines to run, in this order"
    )
    parser.add_argument("--append-results", action="store_true", help="append the table to RESULTS.md")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--keep-home", action="store_true", help="keep AIRFLOW_HOME (logs) afterwards")
    args = parser.parse_args()

    started = time.monotonic()
    # In the order given; a key given twice runs twice (the second run on a warmed-up deployment).
    by_key = {p.key: p for p in PIPELINES}
    chosen = [by_key[key] for key in args.only] if args.only else list(PIPELINES)
    skipped = [p for p in chosen if not p.available()]
    pipelines = [p for p in chosen if p.available()]
    skipped_note = "; ".join(
        f"{p.title} skipped: `HailuoGenerateVideoOperator` does not exist in this product" for p in skipped
    )
    if skipped_note:
        print(skipped_note, file=sys.stderr)
    ensure_packages(install=True)
    home = Path(tempfile.mkdtemp(prefix="hailuo-bench-deploy-"))
    destination = home / "videos"
    dirty = " + uncommitted changes" if _git("status", "--porcelain", "--", "airflow_provider_hailuo") else ""
    context: dict[str, Any] = {
        "videos": args.videos,
        "generation": args.generation.replace(":", "-"),
        "queue": args.queue,
        "worker slots": args.worker_slots,
        "skipped": skipped_note,
        "machine": machine_info(),
        "commit": _git("rev-parse", "--short", "HEAD") + dirty,
        "celery provider": _version("apache-airflow-providers-celery"),
        "celery": _version("celery"),
    }
    results: list[Measurement] = []
    with (
        PostgresServer() as postgres,
        RedisServer() as redis,
        emulator("--generation-seconds", args.generation, "--queue-seconds", args.queue, log_dir=home) as emu,
    ):
        context["postgres"] = postgres.bin_dir.parent.name
        context["redis"] = (
            subprocess.run([redis.binary, "--version"], capture_output=True, text=True)
            .stdout.split()[2]
            .removeprefix("v=")
        )
        env = {
            **PRODUCTION_TIMINGS,
            "AIRFLOW_CONN_HAILUO_DEFAULT": hailuo_conn(emu.url, API_KEY),
            "HAILUO_VIDEO_DESTINATION": destination.as_uri() + "/",
        }
        airflow = AirflowDeployment(
            home=home / "airflow",
            extra_env=env,
            parallelism=32,
            executor="CeleryExecutor",
            database_url=postgres.url,
            broker_url=redis.url,
            worker_concurrency=args.worker_slots,
            triggerers=2,
            dag_ids=[p.dag_id for p in pipelines if p.dag_folder is None],
            extra_dag_folders=sorted({p.dag_folder for p in pipelines if p.dag_folder}),
        )
        try:
            print("starting Postgres, Redis and the deployment ...", file=sys.stderr, flush=True)
            airflow.start()
            context["startup"] = time.monotonic() - started
            print(f"deployment up ({airflow.timings})", file=sys.stderr, flush=True)
            assert postgres.process and redis.process
            services = {"postgres": postgres.process.pid, "redis": redis.process.pid}
            idle_before = component_cpu(airflow, services)
            time.sleep(args.idle_seconds)
            idle_after = component_cpu(airflow, services)
            context["idle seconds"] = args.idle_seconds
            context["idle cpu per second"] = {
                c: (idle_after[c] - idle_before[c]) / args.idle_seconds for c in idle_after
            }
            context["load before"] = os.getloadavg()[0]
            for pipeline in pipelines:
                why_not = parsed_or_why_not(airflow, pipeline) if pipeline.dag_folder else None
                if why_not:
                    note = f"{pipeline.title} skipped: {why_not}"
                    print(note, file=sys.stderr, flush=True)
                    context["skipped"] = "; ".join(filter(None, [context["skipped"], note]))
                    continue
                print(f"running {pipeline.title} with {args.videos} videos ...", file=sys.stderr, flush=True)
                result = run_pipeline(
                    airflow, services, emu, pipeline, args.videos, destination / pipeline.key, args.timeout
                )
                results.append(result)
                print(table([result]), file=sys.stderr, flush=True)
            context["load after"] = os.getloadavg()[0]
        finally:
            airflow.stop()
            if not args.keep_home:
                shutil.rmtree(home, ignore_errors=True)
            else:
                print(f"AIRFLOW_HOME kept: {airflow.home}", file=sys.stderr)
    context["took"] = time.monotonic() - started
    text = report(results, context)
    print(text)
    if args.append_results:
        append_results(text)
    if args.json:
        args.json.write_text(
            json.dumps({"context": context, "results": [r.__dict__ for r in results]}, indent=2, default=str)
        )
    ok = all(r.state == "success" and r.landed_ok == r.videos for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
