"""
pytest plugin for ``bench_rate_limit.py``: the submit operator as it was before it deferred on rate
limits (issue 19), for the baseline row. Refusals are slept out inside the hook, on the worker, and
there is no pacing. Patched in after collection, when the test modules have set up Airflow.
"""

from __future__ import annotations

from typing import Any


def pytest_collection_finish(session: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_hailuo.api import HailuoError, HailuoSubmitUncertainError
    from airflow_provider_hailuo.hooks.submit_rule import SubmitVerdict, submit_verdict
    from airflow_provider_hailuo.operators.submit import HailuoSubmitVideoOperator

    def submit_job(self: Any, context: Any) -> str:
        try:
            return self.hook.submit(self._request)  # the hook sleeps through refusals, up to 5 attempts
        except HailuoError as err:
            verdict = submit_verdict(err)
            if isinstance(err, HailuoSubmitUncertainError) or verdict is not SubmitVerdict.NOTHING_CREATED:
                raise AirflowFailException(str(err)) from err
            raise

    HailuoSubmitVideoOperator.submit_job = submit_job  # type: ignore[method-assign]
