"""Losing the triggerer mid-wait: a new one resumes every wait where it was, nothing is bought twice."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.e2e.runs import Run, trigger_daily

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PROMPTS = ["a glacier calving", "a market at dawn", "a hummingbird in slow motion"]
GENERATION_SECONDS = 20.0


def _triggerer_job_ids(run: Run) -> set[int]:
    rows = run.airflow.query("SELECT id FROM job WHERE job_type = 'TriggererJob'")
    return {row["id"] for row in rows}


def _current_hailuo_triggers(run: Run) -> dict[str, dict]:
    """``{hailuo task id: trigger row}`` as the trigger table holds them now."""
    return {
        t["kwargs"]["hailuo_task_id"]: {
            **t["kwargs"],
            "trigger_id": trigger_id,
            "triggerer_id": t["triggerer_id"],
        }
        for trigger_id, t in run.airflow.triggers().items()
        if t["classpath"].endswith("HailuoTaskTrigger")
    }


def test_killed_triggerer_is_replaced_and_every_wait_resumes_with_its_deadline(
    airflow_deployment, emulator, tmp_path: Path
):
    airflow = airflow_deployment
    emulator.configure(generation_seconds=GENERATION_SECONDS)
    destination = tmp_path / "videos"
    run = trigger_daily(airflow, prompts=PROMPTS, destination=destination.as_uri() + "/")

    # All three sensors DEFERRED, their triggers claimed and started by the running triggerer.
    def all_waiting(r: Run) -> dict[str, dict] | None:
        waits = r.task_instances("generate.wait")
        if len(waits) != 3 or any(ti["state"] != "deferred" for ti in waits):
            return None
        triggers = _current_hailuo_triggers(r)
        if len(triggers) != 3 or any(t["triggerer_id"] is None for t in triggers.values()):
            return None
        # Each trigger really runs in the triggerer (it sleeps until the service's eta, so it may
        # not have polled yet): its task log says so.
        started = "\n".join(p.read_text() for p in r.airflow.log_folder.rglob("*.log.trigger.*.log"))
        if any(f"(ID {t['trigger_id']}) starting" not in started for t in triggers.values()):
            return None
        return triggers

    before = run.wait_until("the three sensors to wait in the triggerer", all_waiting, timeout=90)
    old_job_ids = {t["triggerer_id"] for t in before.values()}
    assert len(old_job_ids) == 1
    assert emulator.counters()["submits"] == 3

    airflow.kill_component("triggerer")  # SIGKILL, the whole process group: a lost machine

    # While no triggerer runs, the sensors stay DEFERRED and their triggers keep their kwargs.
    orphaned = _current_hailuo_triggers(run)
    assert {ti["state"] for ti in run.task_instances("generate.wait")} == {"deferred"}
    assert {task_id: t["deadline"] for task_id, t in orphaned.items()} == {
        task_id: t["deadline"] for task_id, t in before.items()
    }

    airflow.start_triggerer()

    assert run.wait(timeout=150) == "success", run.task_instances()

    # The same trigger rows (same generations) were picked up by a new triggerer job and resumed
    # with the deadlines and start times the sensors computed before the crash: a restart neither
    # extends nor resets a wait.
    new_job_ids = {job_id for job_id in _triggerer_job_ids(run) if job_id not in old_job_ids}
    assert new_job_ids, "no new triggerer job registered"
    for task_id, old in before.items():
        resumed = {
            owner: kwargs
            for (trigger_id, owner, _), kwargs in run.trigger_owners_seen.items()
            if trigger_id == old["trigger_id"]
            and kwargs["hailuo_task_id"] == task_id
            and owner in new_job_ids
        }
        assert resumed, f"trigger {old['trigger_id']} (task {task_id}) was never seen on a new triggerer"
        for kwargs in resumed.values():
            assert kwargs["hailuo_task_id"] == task_id
            assert kwargs["deadline"] == old["deadline"]
            assert kwargs["started_at"] == old["started_at"]

    history = run.airflow.query(
        "SELECT task_id, map_index, try_number, state FROM task_instance_history WHERE run_id = :run_id",
        run_id=run.run_id,
    )
    assert run.tries("generate.wait") == [1, 1, 1], (history, run.task_log_text("generate.wait", 0)[-6000:])
    assert run.tries("generate.submit") == [1, 1, 1]
    counters = emulator.counters()
    assert counters["submits"] == 3  # one paid generation per video, crash included
    assert counters["submit_requests"] == 3

    downloads = run.xcoms("generate.download")
    assert sorted(d["task_id"] for d in downloads.values()) == sorted(before)
    for landed in downloads.values():
        path = Path(landed["uri"].removeprefix("file://"))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == landed["sha256"]
