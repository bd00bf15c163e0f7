"""Trigger the example DAG on the deployment and watch what a user (or an operator) would watch."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil

from tests.e2e.deployment import FINISHED_RUN_STATES, AirflowDeployment, DeploymentError

DAG_ID = "hailuo_daily_content"
TRIGGER_CLASSPATH = "airflow_provider_hailuo.triggers.hailuo.HailuoTaskTrigger"


@dataclass
class Run:
    """One DAG run and everything seen while it ran."""

    airflow: AirflowDeployment
    run_id: str
    logical_date: datetime | None
    dag_id: str = DAG_ID
    #: (task_id, map_index) -> every state the task instance was seen in
    states_seen: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    #: (trigger id, decrypted kwargs) -> the trigger row as first seen (SQLite reuses freed ids)
    triggers_seen: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    #: (trigger id, triggerer job id, decrypted kwargs) -> kwargs, for every owner a trigger had
    trigger_owners_seen: dict[tuple[int, int | None, str], dict[str, Any]] = field(default_factory=dict)

    @property
    def ds(self) -> str:
        assert self.logical_date is not None
        return self.logical_date.strftime("%Y-%m-%d")

    def observe(self) -> str | None:
        """Record task-instance states and trigger rows now; return the run's state."""
        for ti in self.airflow.task_instances(self.dag_id, self.run_id):
            if ti["state"]:
                self.states_seen.setdefault((ti["task_id"], ti["map_index"]), set()).add(ti["state"])
        for trigger_id, trigger in self.airflow.triggers().items():
            self.triggers_seen.setdefault((trigger_id, trigger["raw"]), trigger)
            owner = (trigger_id, trigger["triggerer_id"], trigger["raw"])
            self.trigger_owners_seen.setdefault(owner, trigger["kwargs"])
        return self.airflow.run_state(self.dag_id, self.run_id)

    def wait(
        self, timeout: float = 180, on_tick: Callable[[Run], None] | None = None, interval: float = 0.3
    ) -> str:
        """Observe until the run finishes (``on_tick`` runs after each look); return its final state."""
        deadline = time.monotonic() + timeout
        while True:
            self.airflow._ensure_alive()
            state = self.observe()
            if on_tick is not None:
                on_tick(self)
            if state in FINISHED_RUN_STATES:
                return state
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"run {self.run_id} still {state!r} after {timeout:.0f}s; task instances: "
                    f"{self.task_instances()}\n{self.airflow.logs_tail()}"
                )
            time.sleep(interval)

    def wait_until(self, what: str, condition: Callable[[Run], Any], timeout: float = 120) -> Any:
        """Observe until ``condition(run)`` is truthy (and return it); fail if the run ends first."""
        deadline = time.monotonic() + timeout
        while True:
            self.airflow._ensure_alive()
            state = self.observe()
            value = condition(self)
            if value:
                return value
            if state in FINISHED_RUN_STATES:
                raise DeploymentError(
                    f"run {self.run_id} ended {state!r} before {what}: {self.task_instances()}"
                )
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"timed out waiting for {what}; task instances: {self.task_instances()}\n"
                    f"{self.airflow.logs_tail()}"
                )
            time.sleep(0.2)

    def task_instances(self, task_id: str | None = None) -> list[dict[str, Any]]:
        return self.airflow.task_instances(self.dag_id, self.run_id, task_id)

    def states(self, task_id: str) -> list[str]:
        return [ti["state"] for ti in self.task_instances(task_id)]

    def tries(self, task_id: str) -> list[int]:
        return [ti["try_number"] for ti in self.task_instances(task_id)]

    def xcoms(self, task_id: str) -> dict[int, Any]:
        return self.airflow.xcoms(self.dag_id, self.run_id, task_id)

    def hailuo_triggers(self) -> list[dict[str, Any]]:
        """Every distinct HailuoTaskTrigger row seen while watching this run."""
        return [
            trigger for trigger in self.triggers_seen.values() if trigger["classpath"] == TRIGGER_CLASSPATH
        ]

    def task_log_text(self, task_id: str, map_index: int = -1) -> str:
        """Every log file of the task instance (all tries, trigger logs included), concatenated."""
        folder = (
            self.airflow.log_folder / f"dag_id={self.dag_id}" / f"run_id={self.run_id}" / f"task_id={task_id}"
        )
        if map_index >= 0:
            folder = folder / f"map_index={map_index}"
        return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*.log")))


def trigger_daily(airflow: AirflowDeployment, *, with_logical_date: bool = True, **conf: Any) -> Run:
    """
    Trigger ``hailuo_daily_content`` through the REST API with ``conf`` as its params.

    ``with_logical_date`` gives the run a logical date (as a scheduled run has, and as the UI's
    trigger form fills in); without it the run is what ``airflow dags trigger`` makes by default.
    """
    return trigger_run(airflow, DAG_ID, with_logical_date=with_logical_date, **conf)


def trigger_run(
    airflow: AirflowDeployment, dag_id: str, *, with_logical_date: bool = True, **conf: Any
) -> Run:
    """Trigger any DAG of the deployment through the REST API with ``conf`` as its params."""
    logical_date = datetime.now(UTC) if with_logical_date else None
    body: dict[str, Any] = {
        "dag_run_id": f"e2e__{uuid.uuid4().hex[:12]}",
        "logical_date": logical_date.isoformat() if logical_date else None,
        "conf": conf,
    }
    run_id = airflow.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]
    return Run(airflow=airflow, run_id=run_id, logical_date=logical_date, dag_id=dag_id)


def task_process(ti_id: str) -> psutil.Process | None:
    """The process running a task instance: Airflow titles it ``airflow worker -- <ti uuid>``."""
    wanted = {ti_id, str(uuid.UUID(ti_id))}
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if cmdline.startswith("airflow worker -- ") and cmdline.split(" -- ", 1)[1].strip() in wanted:
            return proc
    return None
