"""Run a DAG with ``dag.test()`` and read back what a user would look at: states, XComs, tries, deferrals.

Works on every supported Airflow (2.11 to 3.3). What differs between versions, and is absorbed here:

- XCom rows are ``XComModel`` on 3.x and ``BaseXCom`` on 2.x (see ``xcom_model()``).
- ``dag.test()`` lives in ``airflow.sdk.definitions.dag`` on 3.x and ``airflow.models.dag`` on 2.x.
  Both run each task in this process and, when a task defers, run its trigger in this process
  (``_run_inline_trigger``) before resuming the task with the trigger's event. 3.x records the
  DEFERRED state in the database meanwhile; 2.x never writes DEFERRED (its inline trigger runs
  straight from the ``TaskDeferred`` exception). So the proof that a task waited in a trigger, the
  same on every version, is ``RunOutcome.deferrals``: every trigger a task instance handed its wait
  to, with the event that resumed it.
- Assets (datasets on 2.x) named in outlets must be known to the database for a task to emit
  events: 3.1+ ``dag.test()`` writes the DAG from its bundle first, 2.x and 3.0 do not, so
  ``_write_dag_to_db()`` does it there the way the DAG processor would.
- ``dag.test()`` runs one task instance at a time, and a deferred one's trigger inline, blocking
  the others; in a deployment the mapped instances of a task wait side by side in the triggerer.
  For a timeline that depends on that (pacing: map index *i* sends at ``run start + i * interval``),
  ``run_dag(..., in_map_index_order=...)`` starts the instances of those tasks in map-index order,
  which reproduces it; ``RunOutcome.stints`` says when each task instance held a worker.
- On 3.0 to 3.2, ``dag.test()`` builds a new in-process Execution API app (seconds of route
  generation) for every task it runs, and sends the first request before the app's lifespan has
  set up its service registry. 3.3 builds one app per process; ``_one_in_process_api_server()``
  gives the older versions the same.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
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


def xcom_model():
    """The ORM class of the ``xcom`` table: ``XComModel`` on Airflow 3, ``BaseXCom`` on Airflow 2."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel

        return XComModel
    from airflow.models.xcom import BaseXCom

    return BaseXCom


@dataclass
class Deferral:
    """One hand-over of a task instance's wait to a trigger, and the event that ended it."""

    classpath: str
    kwargs: dict[str, Any]
    event: Any  # the trigger's event payload; None if the trigger ended without one
    started: float = 0.0  # UNIX times the trigger ran between
    ended: float = 0.0


@dataclass
class RunOutcome:
    state: str
    run_id: str
    started: datetime | None = None  # the run's start_date
    tis: dict[tuple[str, int], Any] = field(default_factory=dict)
    xcoms: dict[tuple[str, int], Any] = field(default_factory=dict)
    deferred: dict[tuple[str, int], list[Deferral]] = field(default_factory=dict)
    #: XComs pushed under other keys than ``return_value``: (task id, map index, key) -> value.
    keyed: dict[tuple[str, int, str], Any] = field(default_factory=dict)
    #: Per task instance, the (start, end) UNIX times it ran on a worker: a deferral ends one.
    stints: dict[tuple[str, int], list[tuple[float, float]]] = field(default_factory=dict)

    def states(self, task_id: str) -> list[str]:
        return [str(ti.state) for (tid, _), ti in sorted(self.tis.items()) if tid == task_id]

    def tries(self, task_id: str) -> list[int]:
        return [ti.try_number for (tid, _), ti in sorted(self.tis.items()) if tid == task_id]

    def values(self, task_id: str) -> list[Any]:
        return [v for (tid, _), v in sorted(self.xcoms.items()) if tid == task_id]

    def pushed(self, task_id: str, key: str) -> list[Any]:
        """What each task instance of ``task_id`` pushed under ``key`` (map index order)."""
        return [v for (tid, _, k), v in sorted(self.keyed.items()) if tid == task_id and k == key]

    def deferrals(self, task_id: str) -> list[list[Deferral]]:
        """Per task instance of ``task_id`` (map index order): the triggers it deferred to."""
        return [
            self.deferred.get((tid, map_index), []) for (tid, map_index) in sorted(self.tis) if tid == task_id
        ]


def _dag_test_module():
    """The module whose ``_run_task`` / ``_run_inline_trigger`` ``dag.test()`` calls."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        import airflow.sdk.definitions.dag as module
    else:
        import airflow.models.dag as module  # type: ignore[no-redef]
    return module


def _stints(started: float, ended: float, deferrals: list[Deferral]) -> list[tuple[float, float]]:
    """A run of a task instance, from ``started`` to ``ended``, minus the triggers it waited in."""
    stints, at = [], started
    for deferral in deferrals:
        if started <= deferral.started <= ended:
            stints.append((at, deferral.started))
            at = deferral.ended
    stints.append((at, ended))
    return stints


@contextmanager
def _recording_deferrals(
    record: dict[tuple[str, int], list[Deferral]],
    stints: dict[tuple[str, int], list[tuple[float, float]]],
    in_map_index_order: frozenset[str] = frozenset(),
) -> Iterator[None]:
    """
    Note, per task instance, every trigger ``dag.test()`` runs inline for it and when it held a
    worker; start the instances of the ``in_map_index_order`` tasks in map-index order (one that
    comes too early is left SCHEDULED, and ``dag.test()`` offers it again on its next pass).
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    module = _dag_test_module()
    run_task, run_inline_trigger = module._run_task, module._run_inline_trigger
    running: list[tuple[tuple[str, int], Any, Any]] = []  # (key, task instance, its task)
    started_tis: set[tuple[str, int]] = set()

    def run_task_noting_the_ti(*args, **kwargs):
        ti = kwargs["ti"]
        key = (ti.task_id, ti.map_index)
        too_early = ti.task_id in in_map_index_order and ti.map_index > 0
        if too_early and (ti.task_id, ti.map_index - 1) not in started_tis:
            return None
        started_tis.add(key)
        running.append((key, ti, getattr(ti, "task", None)))
        started = time.time()
        try:
            return run_task(*args, **kwargs)
        finally:
            running.pop()
            stints.setdefault(key, []).extend(_stints(started, time.time(), record.get(key, [])))

    def run_inline_trigger_noting_it(trigger, *args, **kwargs):
        classpath, trigger_kwargs = trigger.serialize()
        started = time.time()
        event = run_inline_trigger(trigger, *args, **kwargs)
        key, ti, task = running[-1] if running else (("?", -1), None, None)
        if not AIRFLOW_V_3_0_PLUS and ti is not None:
            # Airflow 2's dag.test() resumes the task instance it ran, whose task that run swapped for
            # its unmapped copy; a worker loads the task afresh. Without this, a mapped task that
            # defers and whose output a downstream expands fails on resume (UnmappableXComTypePushed).
            ti.task = task
        record.setdefault(key, []).append(
            Deferral(classpath, dict(trigger_kwargs), getattr(event, "payload", None), started, time.time())
        )
        return event

    module._run_task = run_task_noting_the_ti
    module._run_inline_trigger = run_inline_trigger_noting_it
    try:
        yield
    finally:
        module._run_task, module._run_inline_trigger = run_task, run_inline_trigger


def _one_in_process_api_server() -> None:
    """Share one started in-process Execution API between all tasks, as Airflow 3.3 does."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        return  # Airflow 2 runs tasks against the database directly
    from airflow.sdk.execution_time import supervisor

    if hasattr(supervisor.in_process_api_server, "cache_info"):
        return  # already one per process (3.3+, or patched before)
    build = supervisor.in_process_api_server

    @functools.lru_cache(maxsize=1)
    def in_process_api_server():
        api = build()
        api.transport  # noqa: B018 - starts the app's lifespan on a2wsgi's loop thread
        deadline = time.monotonic() + 60
        while not getattr(api._cm, "_exit_callbacks", True) and time.monotonic() < deadline:
            time.sleep(0.01)  # the lifespan (service registry) is entered: requests may come
        return api

    supervisor.in_process_api_server = in_process_api_server


def start_the_execution_api() -> None:
    """
    Start the in-process Execution API now rather than in the run's first task (seconds, once per
    process): a deployment's API server is up before a run starts, and a test that times its run
    from the run's start should not count it.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        import httpx
        from airflow.sdk.execution_time import supervisor

        _one_in_process_api_server()
        transport = supervisor.in_process_api_server().transport
        # The first request starts the app (tens of seconds on a busy machine); any path will do.
        httpx.Client(transport=transport, base_url="http://in-process.invalid.").get("/execution/health")


def _write_dag_to_db(dag) -> None:
    """On 2.x and 3.0 record the DAG and its assets as parsed, as 3.1+ ``dag.test()`` does itself."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

    if AIRFLOW_V_3_1_PLUS:
        return
    if not AIRFLOW_V_3_0_PLUS:
        dag.sync_to_db()  # DagModel and DatasetModel rows: a dataset event needs its DatasetModel
        return
    # 3.0: an outlet asset must be active, which only a DAG written from a bundle makes it.
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.dag import DAG as SchedulerDAG
    from airflow.serialization.serialized_objects import LazyDeserializedDAG, SerializedDAG

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    fileloc = Path(dag.fileloc).resolve()
    bundle = next(
        (b for b in manager.get_all_dag_bundles() if fileloc.is_relative_to(Path(b.path).resolve())), None
    )
    if bundle is None:
        return  # a DAG outside the bundles runs as before, without asset events
    dag.relative_fileloc = str(fileloc.relative_to(Path(bundle.path).resolve()))  # as DagBag sets it
    SchedulerDAG.bulk_write_to_db(bundle.name, None, [LazyDeserializedDAG(data=SerializedDAG.to_dict(dag))])


def run_dag(
    dag, run_conf: dict[str, Any] | None = None, *, in_map_index_order: tuple[str, ...] = ()
) -> RunOutcome:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    _one_in_process_api_server()
    _write_dag_to_db(dag)
    xcom = xcom_model()
    deferred: dict[tuple[str, int], list[Deferral]] = {}
    stints: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with _recording_deferrals(deferred, stints, frozenset(in_map_index_order)):
        dagrun = dag.test(run_conf=run_conf or {})
    outcome = RunOutcome(
        state=str(dagrun.state),
        run_id=dagrun.run_id,
        started=dagrun.start_date,
        deferred=deferred,
        stints=stints,
    )
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dagrun.run_id
            )
        ).all()
        for ti in tis:
            session.expunge(ti)
            outcome.tis[(ti.task_id, ti.map_index)] = ti
        # Columns, not ORM objects: Airflow 2 deserializes an XCom object's value when it loads it.
        rows = session.execute(
            select(xcom.task_id, xcom.map_index, xcom.key, xcom.value).where(
                xcom.dag_id == dag.dag_id,
                xcom.run_id == dagrun.run_id,
            )
        ).all()
        from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

        for row in rows:
            # Airflow 3's column is JSON, already decoded: decoding it again would turn a numeric
            # task id string ("3615...") into an int.
            value = row.value if AIRFLOW_V_3_0_PLUS else xcom.deserialize_value(row)
            if row.key == "return_value":
                outcome.xcoms[(row.task_id, row.map_index)] = value
            else:
                outcome.keyed[(row.task_id, row.map_index, row.key)] = value
    return outcome
