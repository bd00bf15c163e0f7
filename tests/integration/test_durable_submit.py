"""
What a retry of the submit task buys, on each Airflow version: the README's guarantee, measured.

Airflow 3.3+ keeps the task id in the task instance's ``task_state_store`` once ``submit_job``
returns: a crash after that point is resumed without paying again. A crash between the service's
answer and that store (or any crash on Airflow < 3.3, which has no store) pays for a second video.
"""

from __future__ import annotations

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
