"""
The distributed proof: a CeleryExecutor deployment (Postgres, Redis, a celery worker of 8 slots,
two triggerers) loses one triggerer to SIGKILL while it holds deferred waits. The other triggerer
takes its waits over; every video still lands whole, each bought once, and the API key is nowhere
the deployment wrote (process and task logs, every table of the metadata database).

Postgres and Redis come from Debian's packages (``.ci/run`` installs them; run as root, the test
installs what is missing with apt-get) and run on free loopback ports in temp dirs
(tests/support/services.py); the test is skipped, saying why, when they cannot be had.
The celery provider and the database drivers come from ``make install-deployment``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hailuo.emulator.server import EmulatorServer
from tests.e2e.deployment import AirflowDeployment
from tests.e2e.runs import TRIGGER_CLASSPATH, Run, trigger_daily
from tests.support.connections import hailuo_conn_json
from tests.support.services import PostgresServer, RedisServer, ServiceUnavailable, ensure_packages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

#: The deployment's API key: it must not be found anywhere the deployment writes.
CANARY = f"sk-CELERYLEAK-{secrets.token_hex(12)}"
VIDEOS = 10
#: Service time of a generation. A celery task takes 5-10 s on the loaded 2-core machine (most of it
#: parsing the DAG), so a sensor first reads 10-20 s after its submit: generations much shorter than
#: this would be over before any wait is deferred, and there would be nothing to take over.
GENERATION_SECONDS = (25.0, 35.0)
#: The triggerer is killed once it runs at least this many waits.
WAITS_AT_KILL = 3


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[PostgresServer, RedisServer]]:
    missing = [m for m in ("airflow.providers.celery", "psycopg2", "asyncpg") if not _importable(m)]
    if missing:
        pytest.skip(
            f"the Celery deployment's Python packages are missing ({', '.join(missing)}): "
            "run `make install-deployment`"
        )
    try:
        ensure_packages(install=True)
    except ServiceUnavailable as err:
        pytest.skip(f"needs Debian's postgresql and redis-server, which cannot be installed here: {err}")
    with PostgresServer() as postgres, RedisServer() as redis:
        yield postgres, redis


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture(scope="module")
def celery_emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer(
        port=0, api_key=CANARY, queue_seconds=0.5, generation_seconds=GENERATION_SECONDS
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def celery_deployment(
    services: tuple[PostgresServer, RedisServer], celery_emulator: EmulatorServer
) -> Iterator[AirflowDeployment]:
    postgres, redis = services
    home = Path(tempfile.mkdtemp(prefix="hailuo-e2e-celery-"))
    env = {
        "AIRFLOW_CONN_HAILUO_DEFAULT": hailuo_conn_json(celery_emulator.url, CANARY),
        "HAILUO_POLL_INTERVAL": "1",
        "HAILUO_RETRY_DELAY_SECONDS": "1",
        "HAILUO_VIDEO_DESTINATION": (home / "default-videos").as_uri() + "/",
    }
    airflow = AirflowDeployment(
        home=home,
        extra_env=env,
        parallelism=16,
        executor="CeleryExecutor",
        database_url=postgres.url,
        broker_url=redis.url,
        worker_concurrency=8,
        triggerers=2,
    )
    try:
        airflow.start()
        yield airflow
    finally:
        airflow.stop()
    leftovers = airflow.stray_processes()
    if not os.environ.get("HAILUO_E2E_KEEP_HOME"):  # set it to read the logs after a failure
        shutil.rmtree(home, ignore_errors=True)
    assert not leftovers, f"processes of the deployment survived its teardown: {leftovers}"


def _held_waits(run: Run) -> dict[int, dict[int, str]]:
    """
    ``{triggerer job id: {map index: hailuo task id}}`` of the waits DEFERRED on a trigger that
    the triggerer has claimed and started (its trigger log, named after the job, exists).
    """
    deferred = {
        ti["trigger_id"]: ti["map_index"]
        for ti in run.task_instances("generate.wait")
        if ti["state"] == "deferred" and ti["trigger_id"] is not None
    }
    held: dict[int, dict[int, str]] = {}
    for trigger_id, trigger in run.airflow.triggers().items():
        owner = trigger["triggerer_id"]
        if trigger["classpath"] != TRIGGER_CLASSPATH or trigger_id not in deferred or owner is None:
            continue
        map_index = deferred[trigger_id]
        if owner in _trigger_log_owners(run, map_index):
            held.setdefault(owner, {})[map_index] = trigger["kwargs"]["hailuo_task_id"]
    return held


def _trigger_log_owners(run: Run, map_index: int) -> set[int]:
    """Triggerer job ids that ran this wait's trigger (its trigger logs are named after them)."""
    folder = run.airflow.log_folder / f"dag_id={run.dag_id}" / f"run_id={run.run_id}"
    folder = folder / "task_id=generate.wait" / f"map_index={map_index}"
    return {int(p.name.rsplit(".", 2)[-2]) for p in folder.glob("*.log.trigger.*.log")}


def _canary_in_files(root: Path) -> tuple[int, list[str]]:
    paths = [p for p in root.rglob("*") if p.is_file()]
    return len(paths), [str(p) for p in paths if CANARY.encode() in p.read_bytes()]


def _canary_in_tables(airflow: AirflowDeployment) -> tuple[dict[str, int], list[str]]:
    rows_by_table: dict[str, int] = {}
    leaks: list[str] = []
    for table in airflow.table_names():
        rows = airflow.query(f'SELECT * FROM "{table}"')
        rows_by_table[table] = len(rows)
        leaks += [f"table {table}: {row!r:.200}" for row in rows if CANARY in repr(row)]
    return rows_by_table, leaks


def test_a_killed_triggerer_loses_no_video_and_buys_none_twice(
    celery_deployment: AirflowDeployment, celery_emulator: EmulatorServer, tmp_path: Path
) -> None:
    airflow = celery_deployment
    assert set(airflow.triggerer_jobs) == {"triggerer", "triggerer-2"}
    component_of_job = {job_id: name for name, job_id in airflow.triggerer_jobs.items()}
    destination = tmp_path / "videos"
    started = time.monotonic()
    prompts = [f"a lighthouse in a storm, take {i}" for i in range(VIDEOS)]
    run = trigger_daily(airflow, prompts=prompts, destination=destination.as_uri() + "/")

    # Kill when one triggerer holds several deferred waits (the one holding the most).
    def victim_holding_waits(r: Run) -> tuple[int, dict[int, str]] | None:
        held = _held_waits(r)
        if not held:
            return None
        job_id, waits = max(held.items(), key=lambda item: len(item[1]))
        return (job_id, waits) if len(waits) >= WAITS_AT_KILL else None

    victim_job, victim_waits = run.wait_until(
        "a triggerer to hold deferred waits", victim_holding_waits, timeout=150
    )
    victim = component_of_job[victim_job]
    survivor_job = next(job for job in component_of_job if job != victim_job)
    killed = airflow.kill_component(victim)  # SIGKILL, the whole process group: a lost machine
    killed_at = time.monotonic() - started
    assert not killed.alive()
    assert airflow.components[component_of_job[survivor_job]].alive()

    # The survivor takes the orphaned waits over once the victim's heartbeat is stale.
    assert run.wait(timeout=200) == "success", run.task_instances()
    for map_index in victim_waits:  # each ran on the victim, then on the survivor
        assert _trigger_log_owners(run, map_index) == {victim_job, survivor_job}, map_index

    # One paid submit per video, the crash included; no task retried.
    counters = celery_emulator.counters()
    assert counters["submits"] == VIDEOS, counters
    assert counters["submit_requests"] == VIDEOS, counters
    assert run.tries("generate.submit") == [1] * VIDEOS
    assert run.tries("generate.wait") == [1] * VIDEOS
    assert run.tries("generate.download") == [1] * VIDEOS
    assert counters["download_auth_headers"] == 0

    # Every video landed whole: the file's bytes and sha256 are what the download's XCom says.
    downloads: dict[int, Any] = run.xcoms("generate.download")
    assert sorted(downloads) == list(range(VIDEOS))
    assert len({d["task_id"] for d in downloads.values()}) == VIDEOS
    assert set(victim_waits.values()) <= {d["task_id"] for d in downloads.values()}
    for landed in downloads.values():
        data = Path(landed["uri"].removeprefix("file://")).read_bytes()
        assert len(data) == landed["bytes"]
        assert hashlib.sha256(data).hexdigest() == landed["sha256"]

    # The key is nowhere: trigger kwargs seen, process logs (workers, both triggerers), task and
    # trigger logs, every table of the Postgres database.
    assert run.hailuo_triggers()
    trigger_leaks = [t["raw"] for t in run.hailuo_triggers() if CANARY in t["raw"]]
    scanned, file_leaks = _canary_in_files(airflow.home)
    process_logs = {p.name for p in airflow.process_log_folder.glob("*.log")}
    assert {"celery-worker.log", "triggerer.log", "triggerer-2.log", "scheduler.log"} <= process_logs
    rows_by_table, table_leaks = _canary_in_tables(airflow)
    # load_requests and plan, then submit, wait and download per video.
    assert rows_by_table["task_instance"] == 2 + 3 * VIDEOS and rows_by_table["xcom"] >= 2 * VIDEOS
    leaks = trigger_leaks + file_leaks + table_leaks
    assert leaks == [], f"the API key leaked into {len(leaks)} place(s):\n" + "\n".join(leaks[:20])
    print(
        f"\ncelery e2e: deployment started in {airflow.timings.get('started', 0):.0f} s "
        f"({airflow.timings}), killed {victim} (job {victim_job}, {len(victim_waits)} waits) "
        f"at {killed_at:.0f} s, run done at {time.monotonic() - started:.0f} s; scanned {scanned} files"
    )
