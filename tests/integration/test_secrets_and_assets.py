"""No key in logs, XCom, rendered fields, trigger kwargs or errors; asset events carry the landed file."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_hailuo.emulator.server import EmulatorServer
from tests.support.airflow_runs import example_dag, load_dag, run_dag, xcom_model
from tests.support.connections import hailuo_conn_json

TEST_DAGS = Path(__file__).resolve().parents[1] / "dags" / "hailuo_test_pipelines.py"
LEAK_KEY = f"sk-LEAKCHECK-{secrets.token_hex(8)}"


@pytest.fixture
def leak_emulator(monkeypatch) -> Iterator[EmulatorServer]:
    """An emulator that accepts only a recognisable key, which the connection carries."""
    # Long enough that the first wait always finds it rendering and defers, also on a loaded machine.
    with EmulatorServer(api_key=LEAK_KEY, queue_seconds=0.1, generation_seconds=3) as server:
        monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(server.url, LEAK_KEY))
        yield server


def stored_texts(run_id: str) -> list[str]:
    """What the metadata DB holds for a run that a user or another task can read."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import select

    xcom = xcom_model()
    texts = []
    with create_session() as session:
        texts += [repr(v) for v in session.scalars(select(xcom.value).where(xcom.run_id == run_id))]
        rendered = select(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.run_id == run_id)
        texts += [json.dumps(r.rendered_fields, default=str) for r in session.scalars(rendered)]
        tis = select(TaskInstance).where(TaskInstance.run_id == run_id)
        texts += [repr(ti.next_kwargs) + repr(ti.rendered_map_index) for ti in session.scalars(tis)]
        texts += [repr(t.kwargs) for t in session.scalars(select(Trigger))]
    return texts


def assert_no_key(texts: list[str]) -> None:
    assert texts, "nothing was scanned"
    leaks = [t[:200] for t in texts if LEAK_KEY in t]
    assert leaks == []


def test_key_appears_nowhere_in_a_full_run(airflow_db, leak_emulator, tmp_path, capfd):
    outcome = run_dag(
        example_dag("hailuo_daily_content"), {"prompts": ["a", "b"], "destination": tmp_path.as_uri() + "/"}
    )
    assert outcome.state == "success"
    out = capfd.readouterr()
    assert "Deferring" in out.out  # the logs scanned include the trigger's and the tasks'
    assert_no_key([out.out, out.err, *stored_texts(outcome.run_id)])
    assert leak_emulator.counters()["download_auth_headers"] == 0


def test_key_appears_nowhere_on_the_error_paths(airflow_db, leak_emulator, tmp_path, capfd, monkeypatch):
    leak_emulator.add_fault(endpoint="submit", action="fail_generation", reason="moderation")
    failed = run_dag(
        example_dag("hailuo_daily_content"), {"prompts": ["x"], "destination": tmp_path.as_uri() + "/"}
    )
    assert failed.state == "failed"
    # The service refuses the key (401): the error names the connection, not the key.
    with EmulatorServer(api_key="another-key") as other:
        monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(other.url, LEAK_KEY))
        refused = run_dag(
            example_dag("hailuo_daily_content"), {"prompts": ["y"], "destination": tmp_path.as_uri() + "/"}
        )
    assert refused.state == "failed"
    out = capfd.readouterr()
    assert "moderation" in out.out and "FAILED_TO_AUTH" in out.out and "hailuo_default" in out.out
    assert_no_key([out.out, out.err, *stored_texts(failed.run_id), *stored_texts(refused.run_id)])


def test_download_emits_an_asset_event_with_the_landed_file(airflow_db, hailuo_conn, tmp_path):
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        from airflow.models.asset import AssetEvent  # Airflow 3
    except ImportError:
        from airflow.models.dataset import DatasetEvent as AssetEvent  # Airflow 2

    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    dag = load_dag(TEST_DAGS, "asset")
    if not AIRFLOW_V_3_0_PLUS:
        dag.sync_to_db()  # Airflow 2 records events only for datasets the dag-processor has registered
    outcome = run_dag(dag, {"destination": tmp_path.as_uri() + "/"})
    assert outcome.state == "success"
    (landed,) = outcome.values("download")
    assert landed["uri"].startswith(tmp_path.as_uri() + "/")
    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == outcome.run_id)).all()
        extras = [event.extra for event in events]
    assert extras == [landed]
    assert landed["estimated_cost"] == {"amount": 1.8, "currency": "CNY"}  # the event says what it cost
