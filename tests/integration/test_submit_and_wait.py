"""Submit and sensor behaviour in real DAG runs (dag.test) against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_hailuo.api import HailuoValidationError
from airflow_provider_hailuo.operators.hailuo import HailuoSubmitVideoOperator
from tests.conftest import EMULATOR_KEY, hailuo_conn_uri
from tests.support.airflow_runs import example_dag, load_dag, run_dag

TEST_DAGS = Path(__file__).resolve().parents[1] / "dags" / "hailuo_test_pipelines.py"


def test_dynamic_task_mapping_submits_once_per_prompt(airflow_db, hailuo_conn):
    outcome = run_dag(load_dag(TEST_DAGS, "mapped"))
    assert outcome.state == "success"
    task_ids = outcome.values("submit")
    assert len(set(task_ids)) == 3
    assert sorted(r["task_id"] for r in outcome.values("wait")) == sorted(task_ids)
    assert hailuo_conn.counters()["submits"] == 3


def test_poke_and_reschedule_modes_wait_on_the_worker_and_return_the_same_result(airflow_db, hailuo_conn):
    outcome = run_dag(load_dag(TEST_DAGS, "poke"))
    assert outcome.state == "success"
    (result,) = outcome.values("wait")
    assert result["status"] == "TASK_STATUS_SUCCEED" and result["videos"]
    (rescheduled,) = outcome.values("wait_rescheduled")
    assert rescheduled["task_id"] == result["task_id"]


def test_submit_read_timeout_fails_without_a_second_submit(airflow_db, emulator, monkeypatch, capfd):
    monkeypatch.setenv(
        "AIRFLOW_CONN_HAILUO_DEFAULT",
        hailuo_conn_uri(emulator.url, EMULATOR_KEY, extra={"timeout": 0.5}),
    )
    emulator.add_fault(endpoint="submit", action="delay", seconds=1.5, count=-1)
    outcome = run_dag(example_dag("hailuo_daily_content"), {"prompts": ["p"]})
    assert outcome.state == "failed"
    assert outcome.tries("generate.submit") == [1]  # retries=2, but an uncertain submit is not retried
    assert "may have been accepted" in capfd.readouterr().out
    counters = emulator.counters()
    assert counters["submit_requests"] == 1
    assert counters["submits"] == 1  # the service did create it: exactly why it was not sent again


def test_rate_limits_on_submit_and_poll_are_waited_out(airflow_db, hailuo_conn, tmp_path):
    hailuo_conn.add_fault(endpoint="submit", action="status", status=429, retry_after=1, count=2)
    hailuo_conn.add_fault(endpoint="task_result", action="status", status=429, retry_after=1, count=3)
    hailuo_conn.add_fault(endpoint="task_result", action="status", status=503, count=2)
    outcome = run_dag(
        example_dag("hailuo_daily_content"), {"prompts": ["p"], "destination": tmp_path.as_uri() + "/"}
    )
    assert outcome.state == "success"
    assert outcome.tries("generate.submit") == [1]
    # The submit's two refusals were waited out in a trigger each (no worker slot held), the reads'
    # in the hook (a read is quick to retry and costs nothing).
    (submit_waits,) = outcome.deferrals("generate.submit")
    assert [d.classpath.rsplit(".", 1)[1] for d in submit_waits] == ["HailuoWaitTrigger"] * 2
    assert [d.event["refusals"] for d in submit_waits] == [1, 2]
    counters = hailuo_conn.counters()
    assert counters["submit_requests"] == 3 and counters["submits"] == 1
    assert counters["status_429"] == 5 and counters["status_503"] == 2


def test_literal_bad_values_fail_when_the_dag_is_parsed():
    with pytest.raises(HailuoValidationError, match="`prompt` must be 1 to 2000 characters"):
        HailuoSubmitVideoOperator(task_id="s", prompt="")
    with pytest.raises(HailuoValidationError, match="`image_url`"):
        HailuoSubmitVideoOperator(task_id="s", prompt="p", image_url="not-a-url")
    with pytest.raises(HailuoValidationError, match=r"`image_url`.*hailuo-2\.3-fast"):
        HailuoSubmitVideoOperator(task_id="s", prompt="p", model="hailuo-2.3-fast")  # needs a first frame
    # a frame in object storage is read (and checked) only at run time, with its connection
    HailuoSubmitVideoOperator(task_id="s", prompt="p", model="hailuo-2.3-fast", image_url="s3://b/frame.png")
    # templated values wait for rendering
    HailuoSubmitVideoOperator(task_id="s", prompt="{{ params.prompt }}", duration="{{ params.d }}")
