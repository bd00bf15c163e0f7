"""
Issue 16, items 2 and 3, on a real deployment: a deferred sensor runs on a worker once, not twice.

Its success ends in the triggerer (the trigger stores the XCom through the triggerer's supervisor,
as a worker would, then ends the task), so a downstream task pulling ``wait.output`` gets the dict,
the download lands, and the pipeline costs three worker task-process runs and at most three status
reads per video. ``dag.test()`` cannot show this: it runs triggers inline and resumes every task.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import SENSOR_XCOM_DAG_ID
from tests.e2e.runs import Run, trigger_run

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PROMPTS = ["a heron on one leg", "a tram in the fog"]
GENERATION_SECONDS = 8.0  # rendering when the sensor defers; past the ~5 s a deferring supervisor takes


TASKS = ("submit", "wait", "inspect", "download")


def worker_runs(run: Run, task_id: str) -> int:
    """Task-process runs of the task instance: one executor event each in the scheduler's log."""
    log = (run.airflow.process_log_folder / "scheduler.log").read_text(errors="replace")
    return sum(
        1
        for line in log.splitlines()
        if "Received executor event" in line and f"task_id='{task_id}'" in line and run.run_id in line
    )


def test_a_deferred_sensor_runs_once_and_downstream_tasks_read_its_dict(
    airflow_deployment, emulator, tmp_path: Path
):
    emulator.configure(generation_seconds=GENERATION_SECONDS)
    runs = [
        trigger_run(
            airflow_deployment,
            SENSOR_XCOM_DAG_ID,
            prompt=prompt,
            destination=(tmp_path / f"v{i}").as_uri() + "/",
        )
        for i, prompt in enumerate(PROMPTS)
    ]
    for run in runs:  # each look at one run looks at all of them: no run's states go unseen
        state = run.wait(timeout=120, on_tick=lambda _: [other.observe() for other in runs])
        assert state == "success", (run.task_instances(), run.task_log_text("wait"))

    # A run ends when its last task says so; the scheduler hears of that task process's exit after.
    deadline = time.monotonic() + 30
    while any(worker_runs(run, task_id) == 0 for run in runs for task_id in TASKS):
        assert time.monotonic() < deadline, {r.run_id: {t: worker_runs(r, t) for t in TASKS} for r in runs}
        time.sleep(0.5)

    for run in runs:
        submitted = run.xcoms("submit")[-1]
        # The wait went to the triggerer and ended there: one try, one task-process run.
        assert {task_id: worker_runs(run, task_id) for task_id in TASKS} == dict.fromkeys(TASKS, 1)
        assert "deferred" in run.states_seen[("wait", -1)], run.states_seen
        assert run.tries("wait") == [1]
        wait_log = run.task_log_text("wait")
        assert "ending the sensor here" in wait_log

        # What a downstream task pulls is the result dict, as if a worker had returned it.
        assert run.xcoms("inspect")[-1] == {"type": "dict", "task_id": submitted}
        result = run.xcoms("wait")[-1]
        assert isinstance(result, dict) and result["task_id"] == submitted
        assert result["videos"] == [{"video_type": "mp4"}]

        # And the download, whose task id came from that XCom, landed the video whole.
        landed = run.xcoms("download")[-1]
        assert landed["task_id"] == submitted
        path = Path(landed["uri"].removeprefix("file://"))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == landed["sha256"]

    counters = emulator.counters()
    assert counters["submits"] == len(PROMPTS)
    # The trigger's first read (at once), the read at the service's eta, the download's fresh link.
    assert counters["polls"] <= 3 * len(PROMPTS), counters.get("polls_by_task")
