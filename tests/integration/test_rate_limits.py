"""
Issue 19: a batch larger than the account's rate limit completes, without starving the workers.

A batch DAG (``hailuo_test_batch``: 30 mapped submits, then their waits, then their downloads,
``retries=2``) generates 30 videos on an account that takes 5 submits a minute. (The example DAG maps
a group of the three per prompt; ``dag.test()`` then runs each prompt's three tasks in turn, too slowly
for its submits to meet the allowance in a test's time.) A real minute would make each run last six;
the emulator's ``time_scale`` makes its minute ``60 / TIME_SCALE`` real seconds, and the connection
states the same allowance in real minutes. The product's path is the real one: refusal or pacing
-> ``self.defer`` -> the trigger (``dag.test()`` runs it in-process) -> resume -> the one submit.

What is measured, from outside the product:

- **refused**: submits the emulator refused for the allowance (its ``rate_limited`` counter);
- **slot-seconds held waiting**: for each refusal, the time the refused task instance then still
  spent on a worker (from the emulator's timestamp of the refusal to the end of that worker stint,
  as the harness saw it run). Waiting in the hook holds the slot for the whole wait; deferring only
  for the moment it takes to hand the wait to the triggerer.

``dag.test()`` runs one task instance at a time; the submits start in map-index order
(``run_dag(in_map_index_order=...)``), which gives the timeline of a deployment where they wait side
by side in the triggerer. ``HAILUO_RATE_FIGURES=<file>`` appends each run's figures there as JSON
(``benchmarks/bench_rate_limit.py`` turns them into the table in RESULTS.md).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hailuo.operators.rate_limit import pacing_interval
from tests.conftest import AIRFLOW_LINE, EMULATOR_KEY
from tests.integration.test_submit_and_wait import TEST_DAGS
from tests.support.airflow_runs import RunOutcome, load_dag, run_dag, start_the_execution_api
from tests.support.connections import hailuo_conn_json

#: The 30-at-5-a-minute proof takes minutes of dag.test(): it runs on the newest line and the oldest
#: (where Airflow's deferral and mapping differ most); the middle lines share both's code paths.
pytestmark = pytest.mark.skipif(
    AIRFLOW_LINE not in ((2, 11), (3, 3)), reason="the rate-limit proof runs on Airflow 3.3 and 2.11"
)

PROMPTS = [f"clip {i:02d}: a paper boat drifting down a rainy street" for i in range(30)]
ALLOWANCE = 5  # submits a minute, MiniMax's standard account
#: The emulator's minute lasts 10 s. However fast the harness, no correct run of 30 can take less
#: than 5 such minutes (25 submits beyond the first minute's 5), and dag.test() runs a task instance
#: in about a second on a busy 2-core machine: the allowance binds even for the unpaced run.
TIME_SCALE = 6.0
SUBMIT = "submit"
WAIT_TRIGGER = "airflow_provider_hailuo.triggers.hailuo.HailuoWaitTrigger"


@dataclass
class Figures:
    airflow: str
    paced: bool
    prompts: int
    landed: int
    refused: int
    submits: int
    failed_tasks: int
    retried_tasks: int
    slot_seconds_held_waiting: float
    slot_seconds_held_per_refusal: float
    wait_deferrals: int
    run_seconds: float


def held_waiting(outcome: RunOutcome, attempts: list[dict[str, Any]]) -> float:
    """Slot-seconds the refused submits then still held: refusal -> end of that worker stint."""
    total = 0.0
    ended: set[tuple[int, float]] = set()  # a stint counted once, from its first refusal
    for attempt in attempts:
        if not attempt["rate_limited"]:
            continue
        index = PROMPTS.index(attempt["body"]["prompt"])
        for start, end in outcome.stints.get((SUBMIT, index), []):
            if start <= attempt["at"] <= end and (index, end) not in ended:
                ended.add((index, end))
                total += end - attempt["at"]
    return total


def run_batch(hailuo_conn, monkeypatch, destination: Path, *, paced: bool) -> tuple[RunOutcome, Figures]:
    hailuo_conn.configure(
        submits_per_minute=ALLOWANCE, time_scale=TIME_SCALE, queue_seconds=1.0, generation_seconds=4.0
    )
    extra = {"submits_per_minute": ALLOWANCE * TIME_SCALE} if paced else {}
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(hailuo_conn.url, EMULATOR_KEY, extra))
    start_the_execution_api()
    started = time.monotonic()
    outcome = run_dag(
        load_dag(TEST_DAGS, "batch"),
        {"prompts": PROMPTS, "destination": destination.as_uri() + "/"},
        in_map_index_order=(SUBMIT,),
    )
    run_seconds = time.monotonic() - started
    counters = hailuo_conn.counters()
    attempts = hailuo_conn.submissions()
    held = held_waiting(outcome, attempts)
    refused = counters["rate_limited"]
    figures = Figures(
        airflow=".".join(map(str, AIRFLOW_LINE)),
        paced=paced,
        prompts=len(PROMPTS),
        landed=len(list(destination.glob("*.mp4"))),
        refused=refused,
        submits=counters["submits"],
        failed_tasks=sum(str(ti.state) != "success" for ti in outcome.tis.values()),
        retried_tasks=sum(ti.try_number > 1 for ti in outcome.tis.values()),
        slot_seconds_held_waiting=round(held, 3),
        slot_seconds_held_per_refusal=round(held / refused, 3) if refused else 0.0,
        wait_deferrals=sum(
            d.classpath == WAIT_TRIGGER for per_ti in outcome.deferrals(SUBMIT) for d in per_ti
        ),
        run_seconds=round(run_seconds, 1),
    )
    print(f"\nrate-limit figures: {json.dumps(asdict(figures))}")
    if path := os.environ.get("HAILUO_RATE_FIGURES"):
        with open(path, "a") as out:
            out.write(json.dumps(asdict(figures)) + "\n")
    return outcome, figures


def assert_every_video_landed_once_with_no_failure_and_no_retry(outcome, figures, hailuo_conn) -> None:
    assert outcome.state == "success"
    assert figures.landed == len(PROMPTS)
    assert figures.failed_tasks == 0 and figures.retried_tasks == 0  # retries=2: none was used
    assert figures.submits == len(PROMPTS) == len(hailuo_conn.tasks())  # one paid submit per video
    assert sorted(outcome.values(SUBMIT)) == sorted(hailuo_conn.tasks())


def test_a_batch_beyond_the_allowance_lands_every_video_and_waits_for_it_on_no_worker(
    airflow_db, hailuo_conn, monkeypatch, tmp_path
):
    """No pacing: the allowance binds (many refusals), each refusal is waited out in a trigger."""
    outcome, figures = run_batch(hailuo_conn, monkeypatch, tmp_path / "videos", paced=False)
    assert_every_video_landed_once_with_no_failure_and_no_retry(outcome, figures, hailuo_conn)
    # The allowance did bind: a few refusals where dag.test() runs slowly, a dozen where it runs fast.
    assert figures.refused >= 3
    assert figures.wait_deferrals == figures.refused  # every refusal was waited out in a trigger
    # A refused submit holds its worker only while it hands the wait over (the waits: 1-2 s each).
    assert figures.slot_seconds_held_per_refusal < 0.5


def test_a_paced_batch_is_almost_never_refused_and_holds_no_worker_while_it_waits(
    airflow_db, hailuo_conn, monkeypatch, tmp_path
):
    outcome, figures = run_batch(hailuo_conn, monkeypatch, tmp_path / "videos", paced=True)
    assert_every_video_landed_once_with_no_failure_and_no_retry(outcome, figures, hailuo_conn)
    assert figures.refused <= 3
    assert figures.slot_seconds_held_waiting <= 0.5 * max(figures.refused, 1)
    # The map indexes that came before their slot waited for it in a trigger, not on a worker; the
    # slots are one interval apart, counted from one origin all indexes agreed on (the batch's
    # start, not the run's), and no submit went before its slot.
    interval = pacing_interval(ALLOWANCE * TIME_SCALE)
    slots = {
        index: deferral.kwargs["until"]
        for index, per_ti in enumerate(outcome.deferrals(SUBMIT))
        for deferral in per_ti
        if deferral.event.get("waited_for") == "slot"
    }
    assert len(slots) >= len(PROMPTS) // 2, "the harness outran the pacing: nothing was paced"
    origins = {round(until - index * interval, 3) for index, until in slots.items()}
    assert max(origins) - min(origins) < 0.5, origins  # task instances created one after another
    sent = {PROMPTS.index(a["body"]["prompt"]): a["at"] for a in hailuo_conn.submissions()}
    assert all(sent[index] >= until for index, until in slots.items())


@pytest.fixture(autouse=True)
def _no_pacing_left_behind(hailuo_conn):
    yield
    hailuo_conn.configure(submits_per_minute=None)
