"""
What differs between the Airflow versions this provider supports (2.11 through 3.3), in one place.

Imports of Airflow names go through ``airflow.providers.common.compat``; this module holds only
the few behaviours that library does not cover.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from airflow.providers.common.compat.version_compat import get_base_airflow_version_tuple

__all__ = [
    "TriggerEnd",
    "end_task_in_trigger",
    "first_reschedule_time",
    "parse_first_reschedule_date",
    "trigger_end",
]


_AIRFLOW_VERSION = get_base_airflow_version_tuple()


class TriggerEnd(StrEnum):
    """How a trigger can end its task with the XCom stored exactly as a worker's return value is."""

    #: Airflow 2.10+ (2.x): ``TaskSuccessEvent(xcoms=...)``; the triggerer pushes them with
    #: ``TaskInstance.xcom_push``, the very call a worker makes (``BaseXCom`` serialization).
    EVENT_XCOMS = "event_xcoms"
    #: Airflow 3.0.5+: the trigger stores the XCom itself with the Task SDK's ``XCom.set`` (its
    #: ``SetXCom`` message goes through the triggerer's supervisor to the Execution API, as a
    #: worker's does), then yields a bare ``TaskSuccessEvent()``. Not ``xcoms=`` there: 3.x's
    #: triggerer stores those with ``XComModel.set(serialize=True)``, JSON-encoded a second time,
    #: and downstream tasks read a string instead of the dict.
    SET_XCOM = "set_xcom"


def trigger_end(version: tuple[int, int, int] | None = None) -> TriggerEnd | None:
    """
    How a trigger ends its task on ``version`` (default: the installed Airflow), or None where it
    cannot store the XCom as a worker would (Airflow 3.0.0-3.0.4: the triggerer takes no
    ``SetXCom`` from triggers before 3.0.5): the task then resumes on a worker.
    """
    version = version or _AIRFLOW_VERSION
    if version >= (3, 0, 5):
        return TriggerEnd.SET_XCOM
    if (2, 10, 0) <= version < (3, 0, 0):
        return TriggerEnd.EVENT_XCOMS
    return None


async def end_task_in_trigger(task_instance: Any, xcom_value: Any) -> Any:
    """
    The event that ends ``task_instance`` successfully from its trigger with ``xcom_value`` as its
    ``return_value`` XCom, stored the way a worker stores a returned value (see
    :class:`TriggerEnd`); None where this Airflow cannot (the caller resumes the task instead).

    ``task_instance`` is the trigger's own (set by the triggerer; None under ``dag.test()``, which
    runs the trigger inline and would resume the task anyway).
    """
    from airflow.triggers.base import TaskSuccessEvent

    how = trigger_end()
    if how is None or task_instance is None:
        return None
    if how is TriggerEnd.EVENT_XCOMS:
        return TaskSuccessEvent(xcoms={"return_value": xcom_value})
    # A synchronous Task SDK call, run in a thread: the triggerer's comms answer it on the loop
    # (asgiref's thread-aware bridge on 3.0/3.1, run_coroutine_threadsafe on 3.2+). A custom XCom
    # backend's serialize_value (object storage, say) then blocks that thread, not the loop.
    from airflow.sdk.execution_time.xcom import XCom
    from asgiref.sync import sync_to_async

    await sync_to_async(XCom.set)(
        key="return_value",
        value=xcom_value,
        dag_id=task_instance.dag_id,
        task_id=task_instance.task_id,
        run_id=task_instance.run_id,
        map_index=task_instance.map_index,
    )
    return TaskSuccessEvent()


def parse_first_reschedule_date(context: Any) -> None:
    """
    Airflow 3.0's task instance hands the first reschedule date over as ISO text, and its own
    reschedule-mode sensor then fails at the second reschedule subtracting it from a datetime.
    Wrap the task instance's getter so every reader (the base sensor too) gets a datetime.
    """
    ti = context["ti"]
    getter = getattr(ti, "get_first_reschedule_date", None)
    if getter is None or getattr(getter, "_hailuo_parses_text", False):
        return

    def get_first_reschedule_date(ctx: Any) -> Any:
        first = getter(ctx)
        return datetime.fromisoformat(first) if isinstance(first, str) else first

    get_first_reschedule_date._hailuo_parses_text = True  # type: ignore[attr-defined]
    object.__setattr__(ti, "get_first_reschedule_date", get_first_reschedule_date)


def first_reschedule_time(context: Any) -> float | None:
    """
    UNIX time at which a reschedule-mode sensor first started in this try, or None if it has not
    been rescheduled yet. Each reschedule runs a new operator instance, so only the metadata
    database remembers when the wait began.
    """
    ti = context["ti"]
    getter = getattr(ti, "get_first_reschedule_date", None)
    if getter is not None:  # Airflow 3: asks the API server
        parse_first_reschedule_date(context)
        first = ti.get_first_reschedule_date(context)
        return first.timestamp() if first is not None else None
    return _first_reschedule_time_v2(ti)


def _first_reschedule_time_v2(ti: Any) -> float | None:  # pragma: no cover - Airflow 2 only
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    first_try_number = (ti.max_tries or 0) - (ti.task.retries or 0) + 1
    statement: Any = TaskReschedule.stmt_for_task_instance  # Airflow 2's signature
    with create_session() as session:
        row = session.scalar(statement(ti=ti, try_number=first_try_number, descending=False).limit(1))
        return row.start_date.timestamp() if row is not None else None
