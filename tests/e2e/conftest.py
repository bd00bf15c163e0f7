"""
One real Airflow deployment for the whole e2e folder (it takes ~20 s to start on two cores), one
emulator whose API key is a recognisable canary, and one loopback S3 server.

Both are package-scoped: they stop after the last e2e test, not at the end of the whole session, so
the rest of the suite does not run next to an idle scheduler. The key-leak scan runs last in the
folder, so it also scans what the other e2e tests left behind.

The emulator runs in this process (a thread); the deployment's processes reach it over loopback
through ``AIRFLOW_CONN_HAILUO_DEFAULT``. It keeps its port when it is restarted, so a test can bring
it back with another key (the 401 path) without touching the deployment's connection.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hailuo.emulator.server import EmulatorServer
from tests.e2e.deployment import DAILY_DAG_ID, AirflowDeployment, deployment
from tests.support.connections import hailuo_conn_json
from tests.support.net import free_port
from tests.support.s3 import S3_CONN_ID, S3Server

#: The deployment's API key: grep for it anywhere the deployment writes and it must not be there.
LEAK_CANARY = f"sk-LEAKCHECK-{secrets.token_hex(12)}"
EMULATOR_DEFAULTS: dict[str, Any] = {
    "queue_seconds": 0.5,
    # Longer than the ~5 s a LocalExecutor supervisor takes to exit after its task deferred: a trigger
    # firing sooner races that exit, and Airflow 3.3.2 then retries the resumed task (see README).
    "generation_seconds": 8.0,
    "link_ttl_seconds": 3600.0,
    "time_scale": 1.0,
    "video_bytes": None,
}


LAST_MODULE = "test_no_key_leaks.py"
#: DAGs of the e2e tests themselves, a bundle beside the example DAGs
E2E_DAGS = Path(__file__).parent / "dags"
SENSOR_XCOM_DAG_ID = "hailuo_sensor_xcom"  # tests/e2e/dags/hailuo_sensor_xcom.py


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the key-leak scan to the end of the e2e tests (other tests keep their places)."""
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if Path(item.path).parent == here]
    e2e = [items[i] for i in slots]
    ordered = [it for it in e2e if Path(it.path).name != LAST_MODULE]
    ordered += [it for it in e2e if Path(it.path).name == LAST_MODULE]
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


class RestartableEmulator:
    """An :class:`EmulatorServer` on a fixed loopback port that can be restarted with another key."""

    def __init__(self, api_key: str) -> None:
        self.port = free_port()
        self.api_key = api_key
        self.server = self._start(api_key)

    def _start(self, api_key: str) -> EmulatorServer:
        self.api_key = api_key
        return EmulatorServer(port=self.port, api_key=api_key, **EMULATOR_DEFAULTS).start()

    @property
    def url(self) -> str:
        return self.server.url

    def restart(self, api_key: str) -> None:
        self.server.stop()
        self.server = self._start(api_key)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="package")
def e2e_emulator() -> Iterator[RestartableEmulator]:
    emulator = RestartableEmulator(LEAK_CANARY)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="package")
def airflow_deployment(e2e_emulator: RestartableEmulator, s3_server: S3Server) -> Iterator[AirflowDeployment]:
    home = Path(tempfile.mkdtemp(prefix="hailuo-e2e-"))
    env = {
        "AIRFLOW_CONN_HAILUO_DEFAULT": hailuo_conn_json(e2e_emulator.url, LEAK_CANARY),
        f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": s3_server.conn_json(),
        "HAILUO_POLL_INTERVAL": "0.5",
        "HAILUO_RETRY_DELAY_SECONDS": "1",
        # Where runs land when a test does not say (never the shared /tmp/hailuo default).
        "HAILUO_VIDEO_DESTINATION": (home / "default-videos").as_uri() + "/",
    }
    dag_ids = (DAILY_DAG_ID, SENSOR_XCOM_DAG_ID)
    with deployment(home, env, parallelism=4, extra_dag_folders=[E2E_DAGS], dag_ids=dag_ids) as airflow:
        yield airflow
    leftovers = airflow.stray_processes()
    if not os.environ.get("HAILUO_E2E_KEEP_HOME"):  # set it to read the logs after a failure
        shutil.rmtree(home, ignore_errors=True)
    assert not leftovers, f"processes of the deployment survived its teardown: {leftovers}"


@pytest.fixture
def emulator(e2e_emulator: RestartableEmulator) -> Iterator[EmulatorServer]:
    """The deployment's emulator, with the canary key, default timings, and counters/faults cleared."""
    if e2e_emulator.api_key != LEAK_CANARY:
        e2e_emulator.restart(LEAK_CANARY)
    server = e2e_emulator.server
    server.reset()
    server.configure(**EMULATOR_DEFAULTS)
    yield server
    server.reset()
    server.configure(**EMULATOR_DEFAULTS)


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.create_bucket(f"e2e-{uuid.uuid4().hex[:10]}")
