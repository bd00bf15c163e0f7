"""
Submitting under a vendor's rate limit without holding a worker slot (README, "Rate limits").

A vendor refuses submits beyond the account's allowance (MiniMax about 5 a minute; PPInfra and
Novita answer 429), and such a refusal proves that nothing was bought: the submit may go again
later. Sleeping until "later" inside the hook held a worker slot per refused submit and starved the
sensors and downloads of the same run, so the submit operator waits deferred instead:

- **pacing**: with the connection's ``submits_per_minute``, map index *i* of a batch first waits for
  its own slot, ``batch start + i * interval``. Every index knows the batch's start (when its task
  instances were laid out) and its own index, so a batch stays under the allowance with no shared
  state between tasks;
- **refusals**: a submit the service refused for now waits for the vendor's ``Retry-After`` (or the
  dialect's known wait) plus jitter, then runs ``execute`` again, for at most ``rate_limit_timeout``.

Both waits come before anything is bought: nothing is in ``task_state_store`` when the task defers,
and the resumed task goes through the same validation and the same single submit as a first try.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from airflow_provider_hailuo.api import HailuoError, HailuoTransientError
from airflow_provider_hailuo.triggers.hailuo import HailuoWaitTrigger

if TYPE_CHECKING:
    from airflow_provider_hailuo.hooks.hailuo import HailuoHook

#: How long a submit keeps being refused before the task fails (the operator's default).
DEFAULT_RATE_LIMIT_TIMEOUT = timedelta(hours=1)
#: Pacing spaces submits this much wider than the allowance: a submit that starts a little late
#: (the triggerer, the scheduler and a worker all add latency) must not put one too many into a
#: minute, and a refused one needs room to get back in.
PACING_SPREAD = 1.1
#: Waits shorter than this are not worth a deferral (it costs about as much).
MIN_DEFERRAL = 0.05
#: A refusal is never retried sooner than this, whatever ``Retry-After`` says (``0`` included).
MIN_REFUSAL_WAIT = 1.0
#: Without a ``Retry-After`` or a stated allowance: doubling from 2 s, at most this long.
MAX_BACKOFF = 60.0
#: Airflow's own deferral timeout allows this much past the wait, so a lost trigger still ends.
DEFERRAL_GRACE = timedelta(minutes=5)
RESUME_METHOD = "execute_after_wait"


def pacing_interval(submits_per_minute: float) -> float:
    """Seconds between two paced submits."""
    return 60.0 / submits_per_minute * PACING_SPREAD


def submit_slot(batch_start: datetime, map_index: int, submits_per_minute: float) -> float:
    """UNIX time before which map index ``map_index`` of a batch does not send its submit."""
    return batch_start.timestamp() + max(map_index, 0) * pacing_interval(submits_per_minute)


def refusal_wait(err: HailuoTransientError, refusals: int, submits_per_minute: float | None) -> float:
    """
    How long to wait after the ``refusals``-th refusal in a row: the service's word first, then the
    allowance, then a doubling backoff; plus up to half as much again, so the submits a batch had
    refused together do not all come back at the same instant.
    """
    if err.retry_after is not None:
        base = float(err.retry_after)
    elif submits_per_minute:
        base = pacing_interval(submits_per_minute)
    else:
        base = min(MAX_BACKOFF, 2.0 ** max(refusals, 1))
    base = max(MIN_REFUSAL_WAIT, base)
    return base + random.uniform(0, base / 2)


def as_seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def batch_start(context: Any) -> datetime | None:
    """
    The origin every map index of a batch counts its slot from: when the batch was laid out.

    The run's start alone is too early: the steps before the batch (building the prompts, say) may
    take minutes, and every slot that passed meanwhile would go at once, as a burst the service
    refuses. The batch is laid out when the task is expanded, right after those steps: Airflow 3
    creates its task instances then (the time is in their ids), Airflow 2 when its upstream tasks end.
    """
    dag_run = context.get("dag_run") if hasattr(context, "get") else None
    ti = context.get("ti") if hasattr(context, "get") else None
    origins = [getattr(dag_run, name, None) for name in ("start_date", "run_after", "logical_date")]
    run = next((value for value in origins if isinstance(value, datetime)), None)
    laid_out = _created_at(ti) or _upstream_done_at(dag_run, ti)
    if run is None or laid_out is None:
        return laid_out or run
    return min(max(run, laid_out), datetime.now(run.tzinfo))


def _created_at(ti: Any) -> datetime | None:
    """When an Airflow 3 task instance was created: its id is a UUIDv7, which starts with the time."""
    try:
        ti_id = uuid.UUID(str(getattr(ti, "id", "")))
    except ValueError:
        return None
    if ti_id.version != 7:
        return None
    return datetime.fromtimestamp((ti_id.int >> 80) / 1000, UTC)


def _upstream_done_at(dag_run: Any, ti: Any) -> datetime | None:
    """When the last upstream task of an Airflow 2 task instance ended (tasks may read the database)."""
    upstream = sorted(getattr(getattr(ti, "task", None), "upstream_task_ids", ()) or ())
    fetch = getattr(dag_run, "fetch_task_instances", None)
    if not upstream or fetch is None or AIRFLOW_V_3_0_PLUS:
        return None
    try:
        ends = [t.end_date for t in fetch(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_ids=upstream)]
    except Exception:  # an origin only sharpens the pacing: without it, the run's start serves
        return None
    return max((end for end in ends if end is not None), default=None)


class RateLimitedSubmitMixin:
    """
    The waits of a submit operator that the service may refuse for now; see the module docstring.

    The operator calls :meth:`wait_for_submit_slot` right before it sends, and
    :meth:`defer_refused_submit` when the service refused the send for now; both defer, and the task
    resumes in :meth:`execute_after_wait`, which runs ``execute`` again.
    """

    if TYPE_CHECKING:

        @property
        def hook(self) -> HailuoHook: ...

        log: Any
        rate_limit_timeout: float

        def defer(self, **kwargs: Any) -> NoReturn: ...

        def execute(self, context: Any) -> Any: ...

    #: What an earlier wait of this try handed back (the operator is built afresh on resume).
    _paced: bool = False
    _rate_limited_since: float | None = None
    _refusals: int = 0

    def wait_for_submit_slot(self, context: Any) -> None:
        """Defer until this map index's pacing slot, unless it has come (or there is no pacing)."""
        rate = self.hook.submits_per_minute
        if not rate or self._paced:
            return
        ti = context.get("ti") if hasattr(context, "get") else None
        map_index = int(getattr(ti, "map_index", -1) or 0)
        # A retry (or a cleared task) is not paced: the slots of its batch have passed.
        if map_index <= 0 or int(getattr(ti, "try_number", 1) or 1) > 1:
            return
        start = batch_start(context)
        if start is None:
            return
        slot = submit_slot(start, map_index, rate)
        wait = slot - time.time()
        if wait < MIN_DEFERRAL:
            return
        self.log.info(
            "Pacing at %g submits a minute: map index %d sends at its slot, in %.1f s (waiting in the "
            "triggerer, no worker slot held)",
            rate,
            map_index,
            wait,
        )
        self._defer_until(slot, {"waited_for": "slot"})

    def defer_refused_submit(self, context: Any, err: HailuoTransientError) -> NoReturn:
        """
        Wait for the service to take the submit it refused for now (nothing was bought), in the
        triggerer; fail once it has refused for ``rate_limit_timeout``.
        """
        now = time.time()
        since = self._rate_limited_since if self._rate_limited_since is not None else now
        refusals = self._refusals + 1
        left = since + self.rate_limit_timeout - now
        if left <= 0:
            raise HailuoError(
                f"The service refused this submit {refusals} times over {now - since:.0f} s "
                f"(rate_limit_timeout={self.rate_limit_timeout:g} s); nothing was bought. Last answer: "
                f"{err}. Lower the connection's submits_per_minute, or give the batch more time."
            ) from err
        wait = min(refusal_wait(err, refusals, self.hook.submits_per_minute), left)
        self.log.warning(
            "Hailuo refused the submit for now (%s; refusal %d, nothing was bought): sending it again "
            "in %.1f s, waiting in the triggerer (no worker slot held)",
            err,
            refusals,
            wait,
        )
        self._defer_until(now + wait, {"rate_limited_since": since, "refusals": refusals})

    def _defer_until(self, until: float, payload: dict[str, Any]) -> NoReturn:
        wait = max(0.0, until - time.time())
        self.defer(
            trigger=HailuoWaitTrigger(until=until, payload=payload),
            method_name=RESUME_METHOD,
            timeout=timedelta(seconds=wait) + DEFERRAL_GRACE,
        )
        raise AssertionError("unreachable: defer() raises")  # pragma: no cover

    def execute_after_wait(self, context: Any, event: Any = None) -> Any:
        """
        Resume after a wait and start over: render, validate and submit once, exactly as a first
        try does (the stored task of an earlier try, if any, is still looked at first).
        """
        payload = event if isinstance(event, dict) else {}
        # Its slot has come, or it was refused after it: either way it does not pace again.
        self._paced = True
        since = payload.get("rate_limited_since")
        self._rate_limited_since = float(since) if since is not None else None
        self._refusals = int(payload.get("refusals") or 0)
        return self.execute(context)
