"""
HailuoGenerateVideoOperator end to end with dag.test(): one task instance per video, paid once,
waited for in the triggerer (or on the worker), landed with its poster and manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

from tests.integration.test_example_dags import landed_files
from tests.support.airflow_runs import load_dag, run_dag

DAGS = Path(__file__).resolve().parents[1] / "dags" / "hailuo_generate_pipelines.py"


def run(name: str, destination: Path):
    return run_dag(load_dag(DAGS, name), {"destination": destination.as_uri() + "/"})


def test_one_task_per_video_mapped_and_expanded_by_kwargs(airflow_db, hailuo_conn, tmp_path):
    hailuo_conn.configure(generation_seconds=3.0)
    outcome = run("generate", tmp_path)
    assert outcome.state == "success"
    landed = outcome.values("generate") + outcome.values("generate_kwargs")
    assert len(landed) == 4
    tasks = hailuo_conn.tasks()
    assert sorted(item["task_id"] for item in landed) == sorted(tasks)  # one paid task per video
    assert hailuo_conn.counters()["submits"] == 4
    for item in landed:
        path = Path(item["uri"].removeprefix("file://"))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == item["sha256"]
        assert item["request"]["prompt"] == tasks[item["task_id"]]["body"]["prompt"]
        record = json.loads(path.with_suffix(".json").read_text())
        assert record["service"]["task_id"] == item["task_id"] and record["request"]["prompt"]
    assert {item["request"]["duration"] for item in outcome.values("generate_kwargs")} == {6, 10}
    assert len(landed_files(tmp_path)) == 4
    # The wait was the trigger's; the task instance ran once before and once after it.
    deferred = [d for per in outcome.deferrals("generate") for d in per]
    assert deferred and all(d.classpath.endswith("HailuoTaskTrigger") for d in deferred)
    assert outcome.tries("generate") == [1, 1]


def test_waiting_on_the_worker_lands_the_video(airflow_db, hailuo_conn, tmp_path):
    outcome = run("on_worker", tmp_path)
    assert outcome.state == "success"
    assert outcome.deferrals("generate") == [[]]
    (item,) = outcome.values("generate")
    assert Path(item["uri"].removeprefix("file://")).is_file()


def test_a_failed_generation_fails_once_without_landing(airflow_db, hailuo_conn, tmp_path, capfd):
    hailuo_conn.add_fault(endpoint="submit", action="fail_generation", reason="moderation", count=-1)
    outcome = run("on_worker", tmp_path)
    assert outcome.states("generate") == ["failed"]
    assert "moderation" in capfd.readouterr().out
    assert landed_files(tmp_path) == []


def test_a_retry_after_a_crash_while_landing_buys_nothing_on_3_3(airflow_db, hailuo_conn, tmp_path):
    """Airflow 3.3 keeps the paid id in task_state_store; below it a retry buys again (README)."""
    outcome = run("crash", tmp_path)
    assert outcome.state == "success"
    assert outcome.tries("generate") == [2]
    submits = hailuo_conn.counters()["submits"]
    if AIRFLOW_V_3_3_PLUS:
        assert submits == 1
    else:
        # No task_state_store: the retry may buy again (2.11 does); 3.0's dag.test() resumes the
        # retry at execute_complete with the old event, which lands the first video (1).
        assert submits in (1, 2)
    (item,) = outcome.values("generate")
    assert len(landed_files(tmp_path)) == 1 and item["task_id"] in hailuo_conn.tasks()


@pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="below 3.3 only: there a retry would buy again")
def test_below_3_3_a_cut_download_is_landed_again_within_the_try(airflow_db, hailuo_conn, tmp_path):
    hailuo_conn.add_fault(endpoint="download", action="cut", count=1)
    outcome = run("on_worker", tmp_path)
    assert outcome.state == "success" and outcome.tries("generate") == [1]
    assert hailuo_conn.counters()["submits"] == 1
