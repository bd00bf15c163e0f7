"""Run a DAG with ``dag.test()`` and read back what a user would look at: states, XComs, tries."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def load_dag(path: Path, attr: str = "dag"):
    """The DAG object named ``attr`` in the file at ``path`` (which must sit in a DAG bundle)."""
    spec = importlib.util.spec_from_file_location(f"_dags_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attr)


def example_dag(dag_id: str):
    return load_dag(REPO / "dags" / f"{dag_id}.py")


@dataclass
class RunOutcome:
    state: str
    run_id: str
    tis: dict[tuple[str, int], Any] = field(default_factory=dict)
    xcoms: dict[tuple[str, int], Any] = field(default_factory=dict)

    def states(self, task_id: str) -> list[str]:
        return [str(ti.state) for (tid, _), ti in sorted(self.tis.items()) if tid == task_id]

    def tries(self, task_id: str) -> list[int]:
        return [ti.try_number for (tid, _), ti in sorted(self.tis.items()) if tid == task_id]

    def values(self, task_id: str) -> list[Any]:
        return [v for (tid, _), v in sorted(self.xcoms.items()) if tid == task_id]


def run_dag(dag, run_conf: dict[str, Any] | None = None) -> RunOutcome:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dagrun = dag.test(run_conf=run_conf or {})
    outcome = RunOutcome(state=str(dagrun.state), run_id=dagrun.run_id)
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dagrun.run_id
            )
        ).all()
        for ti in tis:
            session.expunge(ti)
            outcome.tis[(ti.task_id, ti.map_index)] = ti
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag.dag_id,
                XComModel.run_id == dagrun.run_id,
                XComModel.key == "return_value",
            )
        ).all()
        for row in rows:
            outcome.xcoms[(row.task_id, row.map_index)] = XComModel.deserialize_value(row)
    return outcome
