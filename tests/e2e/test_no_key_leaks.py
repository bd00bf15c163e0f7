"""
The API key never lands anywhere the deployment writes: task and process logs, XComs, trigger
kwargs, rendered fields, any table of the metadata database, error texts; nor at the storage host.

The deployment's key is a canary (``sk-LEAKCHECK-<random>``). This test runs last in the folder
(see conftest.py), so it also scans what every other e2e test left behind; on its own it still
covers a success, a failed generation and a refused key (401).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import LEAK_CANARY
from tests.e2e.runs import DAG_ID, Run, trigger_daily

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FAILURE_REASON = "NSFW content detected by LEAKCHECK"
WRONG_KEY = "sk-not-the-deployments-key"


def _occurrences(text: str | bytes, where: str) -> list[str]:
    needle = LEAK_CANARY.encode() if isinstance(text, bytes) else LEAK_CANARY
    return [where] if needle in text else []


def _scan_files(root: Path) -> tuple[int, list[str]]:
    paths = [p for p in root.rglob("*") if p.is_file()]
    leaks = [hit for p in paths for hit in _occurrences(p.read_bytes(), str(p))]
    return len(paths), leaks


def _scan_tables(run: Run) -> tuple[dict[str, int], list[str]]:
    """Every row of every table of the metadata database, as text."""
    rows_by_table: dict[str, int] = {}
    leaks: list[str] = []
    tables = run.airflow.table_names()
    with run.airflow.db() as conn:
        for table in tables:
            rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()
            rows_by_table[table] = len(rows)
            for row in rows:
                leaks += _occurrences(repr(tuple(row)), f"table {table}: {tuple(row)!r:.200}")
    return rows_by_table, leaks


def _collect_triggers(into: set[str]):
    def tick(run: Run) -> None:
        into.update(trigger["raw"] for trigger in run.airflow.triggers().values())

    return tick


def test_the_api_key_appears_nowhere_even_on_error_paths(
    airflow_deployment, e2e_emulator, emulator, tmp_path: Path
):
    airflow = airflow_deployment
    # The canary searched for is the key the deployment really uses (not a stale copy).
    assert json.loads(airflow.env["AIRFLOW_CONN_HAILUO_DEFAULT"])["password"] == LEAK_CANARY
    destination = tmp_path / "videos"
    conf: dict[str, Any] = {"destination": destination.as_uri() + "/"}
    trigger_kwargs: set[str] = set()
    sample = _collect_triggers(trigger_kwargs)

    ok = trigger_daily(airflow, prompts=["a canary in a coal mine"], **conf)
    assert ok.wait(on_tick=sample) == "success", ok.task_instances()

    emulator.add_fault(endpoint="submit", action="fail_generation", reason=FAILURE_REASON)
    failed = trigger_daily(airflow, prompts=["a prompt the service refuses"], **conf)
    assert failed.wait(on_tick=sample) == "failed"
    assert failed.states("generate.wait") == ["failed"]
    assert failed.tries("generate.wait") == [1]
    assert FAILURE_REASON in failed.task_log_text("generate.wait", 0)
    counters = emulator.counters()
    assert counters["submits"] == 2
    assert counters["download_auth_headers"] == 0

    # The service stops accepting the deployment's key: every call is answered 401.
    e2e_emulator.restart(WRONG_KEY)
    try:
        refused = trigger_daily(airflow, prompts=["a prompt sent with a revoked key"], **conf)
        assert refused.wait(on_tick=sample) == "failed"
        refused_counters = e2e_emulator.server.counters()
    finally:
        e2e_emulator.restart(LEAK_CANARY)
    assert refused.states("generate.submit") == ["failed"]
    assert refused.tries("generate.submit") == [1]  # a refused key is not retried
    assert refused_counters["status_401"] >= 1 and refused_counters["submits"] == 0
    submit_log = refused.task_log_text("generate.submit", 0)
    assert "401" in submit_log and "hailuo_default" in submit_log  # says which connection, not the key

    # What a user reads in the UI: the task logs as the api-server serves them.
    for run, task_id in ((refused, "generate.submit"), (failed, "generate.wait")):
        served = airflow.api(
            "GET",
            f"/api/v2/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances/{task_id}/logs/1",
            params={"map_index": 0, "full_content": "true"},
            headers={"Accept": "application/json"},
        )
        assert served["content"], served
        assert LEAK_CANARY not in json.dumps(served)

    # Trigger kwargs (decrypted with the deployment's Fernet key) of every deferral seen.
    assert len(trigger_kwargs) >= 2
    assert all("hailuo_task_id" in raw for raw in trigger_kwargs)
    trigger_leaks = [f"trigger kwargs {raw}" for raw in trigger_kwargs if LEAK_CANARY in raw]

    # XComs and rendered template fields, explicitly, then every table.
    xcoms = airflow.query("SELECT task_id, map_index, value FROM xcom")
    rendered = airflow.query("SELECT task_id, map_index, rendered_fields FROM rendered_task_instance_fields")
    assert xcoms and rendered
    field_leaks = [f"xcom {row}" for row in xcoms if LEAK_CANARY in repr(row)]
    field_leaks += [f"rendered fields {row}" for row in rendered if LEAK_CANARY in repr(row)]
    rows_by_table, table_leaks = _scan_tables(ok)
    assert rows_by_table["task_instance"] >= 9 and rows_by_table["dag_run"] >= 3

    # Every file of the deployment: task logs (trigger logs included), the api-server, scheduler,
    # triggerer and dag-processor logs, airflow.cfg, and the database file itself, byte for byte.
    scanned, file_leaks = _scan_files(airflow.home)
    task_logs = list(airflow.log_folder.rglob("*.log"))
    process_logs = {p.name.split(".")[0] for p in airflow.process_log_folder.glob("*.log")}
    assert len(task_logs) >= 9 and scanned > len(task_logs)
    assert {"api-server", "scheduler", "triggerer", "dag-processor"} <= process_logs

    leaks = trigger_leaks + field_leaks + table_leaks + file_leaks
    assert leaks == [], f"the API key leaked into {len(leaks)} place(s):\n" + "\n".join(leaks[:20])
    assert emulator.counters()["download_auth_headers"] == 0


def test_the_scan_would_see_a_leak():
    """The scanners find the canary when it is there (so an empty result above means something)."""
    assert _occurrences(f"Authorization: Bearer {LEAK_CANARY}", "text") == ["text"]
    assert _occurrences(f"x{LEAK_CANARY}y".encode(), "bytes") == ["bytes"]
