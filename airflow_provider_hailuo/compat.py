"""
What differs between the Airflow versions this provider supports (2.11 through 3.3), in one place.

Imports of Airflow names go through ``airflow.providers.common.compat``; this module holds only
the few behaviours that library does not cover.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["first_reschedule_time", "parse_first_reschedule_date"]


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
