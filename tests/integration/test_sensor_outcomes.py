"""
Every way a wait can end, through each of the sensor's three modes: the README's outcome table.

Deferrable waits in the trigger, poke in the worker's loop, reschedule across task-instance runs;
the same cause must end the same way in each.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from airflow_provider_hailuo.api import VideoRequest
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from tests.conftest import hailuo_conn_uri
from tests.dags import hailuo_sensor_modes as modes
from tests.support.airflow_runs import load_dag, run_dag


def run_wait(mode: str, task_id: str, *, soft_fail: bool = False, short_timeout: bool = False):
    dag = load_dag(Path(modes.__file__), modes.dag_id(mode, soft_fail, short_timeout))
    started = time.monotonic()
    outcome = run_dag(dag, {"task_id": task_id})
    return outcome, time.monotonic() - started


def submit(prompt: str = "a wait") -> str:
    return HailuoHook().submit(VideoRequest(prompt=prompt))


def assert_waited_the_modes_way(outcome, mode: str) -> None:
    deferrals = outcome.deferrals("wait")[0]
    if mode == "deferrable":
        assert deferrals and deferrals[0].classpath.endswith("HailuoTaskTrigger")
    else:
        assert deferrals == []


@pytest.mark.parametrize("mode", modes.MODES)
def test_a_finished_video_succeeds_with_its_result(airflow_db, hailuo_conn, mode):
    hailuo_conn.configure(generation_seconds=8.0)  # still rendering when the task process is up
    task_id = submit()
    outcome, _ = run_wait(mode, task_id)
    assert outcome.states("wait") == ["success"]
    (result,) = outcome.values("wait")
    assert result["task_id"] == task_id and result["videos"] == [{"video_type": "mp4"}]
    assert_waited_the_modes_way(outcome, mode)


@pytest.mark.parametrize("soft_fail", [False, True])
@pytest.mark.parametrize("mode", modes.MODES)
def test_a_failed_generation_fails_once_or_is_skipped(airflow_db, hailuo_conn, mode, soft_fail):
    hailuo_conn.add_fault(endpoint="submit", action="fail_generation", reason="moderation")
    outcome, _ = run_wait(mode, submit(), soft_fail=soft_fail)
    assert outcome.states("wait") == ["skipped" if soft_fail else "failed"]
    assert outcome.tries("wait") == [1]  # never retried: a retry would pay for the same failure


@pytest.mark.parametrize("soft_fail", [False, True])
@pytest.mark.parametrize("mode", modes.MODES)
def test_no_result_by_the_timeout_fails_once_or_is_skipped(airflow_db, hailuo_conn, mode, soft_fail):
    hailuo_conn.configure(generation_seconds=60)
    outcome, elapsed = run_wait(mode, submit(), soft_fail=soft_fail, short_timeout=True)
    assert outcome.states("wait") == ["skipped" if soft_fail else "failed"]
    assert outcome.tries("wait") == [1]
    assert modes.SHORT_TIMEOUT <= elapsed < 25


@pytest.mark.parametrize("soft_fail", [False, True])
@pytest.mark.parametrize("mode", modes.MODES)
def test_a_refused_key_fails_once_or_is_skipped(airflow_db, emulator, monkeypatch, mode, soft_fail):
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri(emulator.url, "a-revoked-key-7781"))
    outcome, _ = run_wait(mode, "any-task", soft_fail=soft_fail)
    assert outcome.states("wait") == ["skipped" if soft_fail else "failed"]
    assert outcome.tries("wait") == [1]
    assert emulator.counters()["status_401"] >= 1


@pytest.mark.parametrize("soft_fail", [False, True])
@pytest.mark.parametrize("mode", modes.MODES)
def test_an_unknown_task_fails_after_the_grace_not_the_timeout(airflow_db, hailuo_conn, mode, soft_fail):
    """In reschedule mode the grace is measured from the first try's start, which survives reschedules."""
    outcome, elapsed = run_wait(mode, "no-such-task", soft_fail=soft_fail)
    assert outcome.states("wait") == ["skipped" if soft_fail else "failed"]
    assert outcome.tries("wait") == [1]
    assert elapsed < modes.LONG_TIMEOUT / 2  # 1 s grace, then final; not polled for the whole timeout


@pytest.mark.parametrize("mode", modes.MODES)
def test_a_success_without_a_video_is_waited_for_then_fails(airflow_db, hailuo_conn, mode):
    """A service that says SUCCEED but lists no video has not finished: wait the grace, then fail clearly."""
    hailuo_conn.add_fault(endpoint="task_result", action="empty_videos", count=-1)
    outcome, elapsed = run_wait(mode, submit())
    assert outcome.states("wait") == ["failed"]
    assert outcome.tries("wait") == [1]
    assert 1.0 <= elapsed < modes.LONG_TIMEOUT / 2


@pytest.mark.parametrize("mode", modes.MODES)
def test_a_success_without_a_video_at_first_then_with_one_succeeds(airflow_db, hailuo_conn, mode):
    task_id = submit()
    time.sleep(1.0)  # finished by now
    hailuo_conn.add_fault(endpoint="task_result", action="empty_videos", count=1)
    outcome, _ = run_wait(mode, task_id)
    assert outcome.states("wait") == ["success"]
    assert outcome.values("wait")[0]["videos"]


def test_a_deferrable_sensor_reads_first_only_where_it_resumes_on_a_worker(airflow_db, hailuo_conn):
    """
    Issue 16, 3: where a success ends in the triggerer (2.11, 3.0.5+), a read on the worker before
    deferring never pays off (the trigger reads at once, and ends a finished video there without a
    second worker run): the sensor defers straight away. Where it resumes on a worker, the read
    stays, and a finished video then needs no deferral at all.
    """
    from airflow_provider_hailuo.compat import trigger_end

    task_id = submit()
    time.sleep(1.0)  # finished by now
    polls = hailuo_conn.counters()["polls"]
    outcome, _ = run_wait("deferrable", task_id)
    assert outcome.states("wait") == ["success"]
    assert outcome.values("wait")[0]["task_id"] == task_id
    (deferrals,) = outcome.deferrals("wait")
    if trigger_end() is not None:
        assert [d.kwargs["end_from_trigger"] for d in deferrals] == [True]
        assert deferrals[0].kwargs["first_poll_at"] is None  # the trigger reads at once
    else:
        assert deferrals == []  # the worker's read found it finished
    assert hailuo_conn.counters()["polls"] - polls == 1  # one read, wherever it was

    dag = load_dag(Path(modes.__file__), "resume_dag")
    polls = hailuo_conn.counters()["polls"]
    resumed = run_dag(dag, {"task_id": task_id})
    assert resumed.states("wait") == ["success"]
    assert resumed.deferrals("wait") == [[]]  # read first, found finished: never deferred
    assert hailuo_conn.counters()["polls"] - polls == 1
