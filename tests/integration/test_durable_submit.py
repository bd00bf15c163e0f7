"""
What a retry of the submit task buys, on each Airflow version: the README's guarantee, measured.

Airflow 3.3+ keeps the task id in the task instance's ``task_state_store`` once ``submit_job``
returns: a crash after that point is resumed without paying again. A crash between the service's
answer and that store (or any crash on Airflow < 3.3, which has no store) pays for a second video.
"""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

from tests.integration.test_submit_and_wait import TEST_DAGS
from tests.support.airflow_runs import load_dag, run_dag


def test_a_crash_after_the_id_is_stored_pays_once_where_airflow_can_store_it(airflow_db, hailuo_conn):
    outcome = run_dag(load_dag(TEST_DAGS, "resume"))
    assert outcome.state == "success"
    assert outcome.tries("submit") == [2]  # the first try really failed after submitting
    assert hailuo_conn.counters()["submits"] == (1 if AIRFLOW_V_3_3_PLUS else 2)
    (task_id,) = outcome.values("submit")
    (result,) = outcome.values("wait")
    assert result["task_id"] == task_id and result["status"] == "TASK_STATUS_SUCCEED"


def test_a_crash_before_the_id_is_stored_pays_twice(airflow_db, hailuo_conn):
    outcome = run_dag(load_dag(TEST_DAGS, "crash_before_store"))
    assert outcome.state == "success"
    assert outcome.tries("submit") == [2]
    assert hailuo_conn.counters()["submits"] == 2  # the window the README names


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="no task_state_store before Airflow 3.3")
@pytest.mark.parametrize("fault", [{"action": "status", "status": 503}, {"action": "delay", "seconds": 1}])
def test_a_retry_that_cannot_read_the_stored_task_buys_nothing(airflow_db, hailuo_conn, capfd, fault):
    """Try 2 finds the paid task but every read of it fails (3 attempts): it fails without a submit."""
    hailuo_conn.add_fault(endpoint="task_result", count=3, **fault)
    outcome = run_dag(load_dag(TEST_DAGS, "resume_reads_fail"))
    assert outcome.state == "success"
    assert outcome.tries("submit") == [3]  # 1: crashed after buying; 2: could not read it; 3: read it
    assert hailuo_conn.counters()["submits"] == 1
    assert "Nothing was submitted: this try fails, and the next one reads it again" in capfd.readouterr().out


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="no task_state_store before Airflow 3.3")
def test_a_stored_task_that_failed_is_bought_again_saying_so(airflow_db, hailuo_conn, capfd):
    hailuo_conn.add_fault(endpoint="submit", action="fail_generation", reason="NSFW frame", count=1)
    hailuo_conn.configure(generation_seconds=0.1, queue_seconds=0.0)
    outcome = run_dag(load_dag(TEST_DAGS, "resume_reads_fail"))
    assert outcome.state == "success"
    assert outcome.tries("submit") == [2]
    assert hailuo_conn.counters()["submits"] == 2
    out = capfd.readouterr().out
    assert "bought by an earlier try, FAILED (NSFW frame): this try buys a new video" in out
