"""
Shared fixtures. Airflow is configured here, before anything imports it: a private AIRFLOW_HOME with
a SQLite database, and where the DAGs are. Airflow 3 reads DAGs from bundles (two: the example DAGs
users copy, and the test DAGs); Airflow 2 has no bundles, only the dags folder, and ``dag.test()``
there needs no parsed copy of the DAG, so the test DAGs load from their file on every version.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_DAGS = Path(__file__).resolve().parent / "dags"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="hailuo-airflow-home-"))
# Read from the installed distribution: importing airflow (version_compat too) would read its
# configuration before the environment below is in place.
AIRFLOW_LINE = tuple(int(part) for part in version("apache-airflow").split(".")[:2])
AIRFLOW_2 = AIRFLOW_LINE < (3, 0)

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
# Unit-test mode lets tests call an operator's execute() directly. On Airflow 2 it also swaps the
# whole configuration for airflow's unit_tests.cfg, with a fresh random Fernet key per process
# (`airflow db migrate` runs in a subprocess) and LocalExecutor, which Airflow 2 refuses on SQLite:
# pin both.
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
if AIRFLOW_2:
    os.environ["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"
else:
    os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
        [
            {
                "name": "examples",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(REPO / "dags"), "refresh_interval": 0},
            },
            {
                "name": "tests",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(TEST_DAGS), "refresh_interval": 0},
            },
        ]
    )
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
os.environ.setdefault("HAILUO_POLL_INTERVAL", "0.2")
os.environ.setdefault("HAILUO_RETRY_DELAY_SECONDS", "0")

if AIRFLOW_LINE == (3, 0):
    # Airflow 3.0 runs dag.test()'s tasks in this process without configuring structlog, whose
    # default prints DEBUG lines, among them every message to the supervisor (a MaskSecret carries
    # the secret it masks), and draws tracebacks in boxes that wrap an error's message. Later
    # versions configure it themselves: INFO, plain tracebacks.
    import logging

    import structlog

    renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    processors = [p for p in structlog.get_config()["processors"] if not isinstance(p, type(renderer))]
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )

from airflow_provider_hailuo.emulator.server import EmulatorServer  # noqa: E402
from tests.support.connections import hailuo_conn_json as hailuo_conn_uri  # noqa: E402

EMULATOR_KEY = "emulator-test-key-9f3c2a"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata database, once per session (dag.test() needs one)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(api_key=EMULATOR_KEY, queue_seconds=0.2, generation_seconds=0.6) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> Iterator[EmulatorServer]:
    """The session's emulator, with counters, faults and tasks cleared for this test."""
    emulator_server.reset()
    emulator_server.configure(
        queue_seconds=0.2,
        generation_seconds=0.6,
        link_ttl_seconds=3600,
        time_scale=1.0,
        realistic_videos=False,
        submits_per_minute=None,
    )
    yield emulator_server
    emulator_server.reset()


@pytest.fixture(scope="session")
def realistic_videos(tmp_path_factory) -> Iterator[Path]:
    """
    A private cache of service-like clips for this session, holding the one tests use (512P, 6 s:
    the smallest class at a duration the service sells), encoded once: a few seconds of CPU.
    """
    pytest.importorskip("av")
    from airflow_provider_hailuo.emulator import realistic

    folder = tmp_path_factory.mktemp("realistic-videos")
    before = os.environ.get(realistic.CACHE_ENV)
    os.environ[realistic.CACHE_ENV] = str(folder)
    try:
        realistic.realistic_path("512P", 6)
        yield folder
    finally:
        if before is None:
            os.environ.pop(realistic.CACHE_ENV, None)
        else:
            os.environ[realistic.CACHE_ENV] = before


def pytest_sessionfinish(session, exitstatus):
    """Remove this session's private AIRFLOW_HOME (HAILUO_KEEP_AIRFLOW_HOME=1 keeps it)."""
    if not os.environ.get("HAILUO_KEEP_AIRFLOW_HOME"):
        shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture
def hailuo_conn(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    """`hailuo_default` points at the emulator (the environment-variable form users use too)."""
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri(emulator.url, EMULATOR_KEY))
    return emulator


@pytest.fixture(scope="session")
def s3_server():
    from tests.support.s3 import moto_s3_server

    with moto_s3_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the loopback S3 server, reachable through the `hailuo_test_s3` connection."""
    import uuid

    monkeypatch.setenv(f"AIRFLOW_CONN_{s3_server.conn_id.upper()}", s3_server.conn_json())
    return s3_server.create_bucket(f"videos-{uuid.uuid4().hex[:10]}")
