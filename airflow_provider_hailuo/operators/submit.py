"""HailuoSubmitVideoOperator: validate a generation request, pay for it once, return its task id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator, ResumableJobMixin

from airflow_provider_hailuo.api import (
    DEFAULT_MODEL,
    HailuoError,
    HailuoValidationError,
    TaskState,
    VideoRequest,
)
from airflow_provider_hailuo.dialects import refuse_what_no_vendor_takes
from airflow_provider_hailuo.frames import ResolvedFrame
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.hooks.submit_rule import SubmitVerdict, refused_for_now, submit_verdict
from airflow_provider_hailuo.operators.rate_limit import (
    DEFAULT_RATE_LIMIT_TIMEOUT,
    RateLimitedSubmitMixin,
    as_seconds,
)
from airflow_provider_hailuo.operators.request import (
    FRAME_FIELDS,
    REQUEST_FIELDS,
    REQUEST_KEYS,
    RequestFields,
    check_max_cost,
    check_request,
    connection_prices,
    is_object_frame,
)
from airflow_provider_hailuo.prices import HailuoPriceError, parse_budget

#: Stands in for a frame in object storage while a DAG is parsed: the rules then see "a first frame
#: is given" without reading the object (that happens before the submit, with the connection).
_FRAME_PLACEHOLDER = "https://object-storage.invalid/frame"
NOTHING_CREATED = SubmitVerdict.NOTHING_CREATED


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class HailuoSubmitVideoOperator(RateLimitedSubmitMixin, ResumableJobMixin, BaseOperator):
    """
    Validate a generation request, submit it once, and return the service's ``task_id``.

    Bad values fail before any HTTP call, naming the field and the rule: literal values already
    when the DAG is parsed, templated ones right after rendering. The task id is kept in the task
    instance's ``task_state_store`` the moment it is known, so a retry of this task reuses the
    video it already paid for instead of buying another.

    :param prompt: what to generate, 1 to 2000 characters (templated).
    :param image_url: the first frame, for image-to-video (templated): an http(s) URL, a
        ``data:image/...;base64,`` URL, or an object in storage (``s3://``, ``gs://``, ``file://``
        or an ``ObjectStoragePath``), which is checked and sent as a signed URL (or, for a local
        file, as a ``data:`` URL where the vendor takes one).
    :param end_image_url: the last frame, same forms, where the model takes one (templated).
    :param duration: 6 or 10 seconds (templated).
    :param resolution: ``512P``, ``768P`` or ``1080P``, as the model allows (templated).
    :param enable_prompt_expansion: let the service rewrite the prompt (MiniMax: ``prompt_optimizer``).
    :param fast_pretreatment: shorten the service's preprocessing, where the model offers it.
    :param model: ``hailuo-02`` (default), ``hailuo-2.3`` or ``hailuo-2.3-fast``, mapped to each
        vendor's name; any other string is sent as the vendor's own model name (templated).
    :param extra_body: extra JSON fields for the body, for fields newer than this provider (templated).
    :param image_conn_id: Airflow connection of the store the frames are in (e.g. ``aws_default``).
    :param hailuo_conn_id: the ``hailuo`` connection; it names the vendor.
    :param max_cost: the most this one video may cost (templated): a number in the currency of the
        connection's prices, ``"0.50 USD"`` or ``{"amount": 0.5, "currency": "USD"}``. A request
        estimated above it, or with no known price, fails before anything is sent.
    :param durable: reuse the task id a failed earlier try bought (Airflow 3.3+; default True).
    :param rate_limit_timeout: how long the service may keep refusing the submit for now (429, its
        own 503, MiniMax 1002) before the task fails; the waits happen in the triggerer, neither
        a worker slot nor an Airflow retry is used. Seconds or a timedelta (default one hour).
    """

    template_fields: Sequence[str] = (*REQUEST_FIELDS, "image_conn_id", "max_cost")
    template_fields_renderers = {"prompt": "md", "extra_body": "json"}
    ui_color = "#e4d8ff"
    external_id_key = "hailuo_task_id"

    def __init__(
        self,
        *,
        prompt: str,
        image_url: Any = None,
        end_image_url: Any = None,
        duration: int | str = 6,
        resolution: str = "768P",
        enable_prompt_expansion: bool | str = True,
        fast_pretreatment: bool | str = False,
        model: str = DEFAULT_MODEL,
        extra_body: Mapping[str, Any] | str | None = None,
        image_conn_id: str | None = None,
        hailuo_conn_id: str = HailuoHook.default_conn_name,
        max_cost: Any = None,
        rate_limit_timeout: float | timedelta = DEFAULT_RATE_LIMIT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.image_url = image_url
        self.end_image_url = end_image_url
        self.duration = duration
        self.resolution = resolution
        self.enable_prompt_expansion = enable_prompt_expansion
        self.fast_pretreatment = fast_pretreatment
        self.model = model
        self.image_conn_id = image_conn_id
        # Kept as given: a template or an XComArg is resolved only at run time (build_request).
        self.extra_body = extra_body
        self.hailuo_conn_id = hailuo_conn_id
        self.max_cost = max_cost
        if not _is_template(max_cost) and not type(max_cost).__module__.startswith("airflow"):
            parse_budget("max_cost", max_cost)  # a literal limit that cannot be read fails at parse time
        self.rate_limit_timeout = as_seconds(rate_limit_timeout)
        self._check_literal_values()

    def _check_literal_values(self) -> None:
        """Fail at parse time when every value is literal (mapped/templated ones wait for render)."""
        values = {name: getattr(self, name) for name in REQUEST_FIELDS}
        if any(_is_template(v) for v in values.values()) or not isinstance(self.prompt, str):
            return
        if any(type(v).__module__.startswith("airflow") and not is_object_frame(v) for v in values.values()):
            return  # XComArg, PlainXComArg, ...: resolved at run time
        request = self.build_request(
            {name: _FRAME_PLACEHOLDER for name in FRAME_FIELDS if is_object_frame(values[name])}
        )
        refuse_what_no_vendor_takes(request)  # the vendor is known only at run time

    def build_request(self, frames: Mapping[str, str] | None = None) -> VideoRequest:
        """
        The request from the (rendered) fields, checked against the rules every vendor shares;
        ``frames`` replaces object-storage frames by the URLs they resolved to.
        Raises ``HailuoValidationError``.
        """
        return RequestFields(**{name: getattr(self, name) for name in REQUEST_KEYS}).build(frames)

    @cached_property
    def hook(self) -> HailuoHook:
        return HailuoHook(self.hailuo_conn_id)

    def execute(self, context: Any) -> str:
        try:
            # The plan step makes the same checks (operators/request.py) for a whole batch.
            prices = connection_prices(self.hook)
            fields = RequestFields(**{name: getattr(self, name) for name in REQUEST_KEYS})
            checked = check_request(fields, self.hook, prices)
            check_max_cost(checked, parse_budget("max_cost", self.max_cost), prices)
        except (HailuoValidationError, HailuoPriceError) as err:
            raise AirflowFailException(str(err)) from err
        self.log.info("buying %s", checked.estimate())
        self._request = checked.request
        self._publish_request(context, self._request, checked.frames, checked.cost)
        return self.execute_resumable(context)

    def _publish_request(
        self,
        context: Any,
        request: VideoRequest,
        frames: Mapping[str, ResolvedFrame],
        cost: Any = None,
    ) -> None:
        """
        Push the validated request (no secret) for the download's checks and manifest. Frames from
        storage are recorded by where they live, not by their signed (or inline) URLs.
        """
        from airflow_provider_hailuo.manifest import REQUEST_XCOM_KEY, request_record, vendor_of

        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is not None:
            record = request_record(request, vendor=vendor_of(self.hook))
            record.update({name: frame.source for name, frame in frames.items()})
            record["estimated_cost"] = cost.as_dict() if cost is not None else None
            ti.xcom_push(key=REQUEST_XCOM_KEY, value=record)

    # ResumableJobMixin: the "job" is the paid generation; waiting for it is the sensor's job.
    def submit_job(self, context: Any) -> str:
        self.wait_for_submit_slot(context)  # pacing: may defer, before anything is sent
        try:
            # The service's "not now" comes back at once: it is waited out deferred, not here.
            return self.hook.submit(self._request, wait_out_refusals=False)
        except HailuoError as err:
            if refused_for_now(err):
                self.defer_refused_submit(context, err)
            # The rule's verdict: "may have been accepted" (HailuoSubmitUncertainError among it) or a
            # refusal for good fail; only "nothing created" is left to Airflow's retries.
            if submit_verdict(err) is not NOTHING_CREATED:
                # May have been accepted (an Airflow retry could buy a second video), or refused
                # by the service for good: either way, no retry.
                raise AirflowFailException(str(err)) from err
            raise  # provably nothing was created: an Airflow retry may send it again later

    def get_job_status(self, external_id: Any, context: Any) -> str:
        """
        The state of the task an earlier try bought. Whatever happens, a failed read never leads to
        a second purchase: this try fails without submitting and the next one reads again.
        """
        try:
            result = self.hook.get_task_result(str(external_id))
        except HailuoError as err:
            raise HailuoError(
                f"Could not read Hailuo task {external_id}, which an earlier try of this task bought "
                f"({err}). Nothing was submitted: this try fails, and the next one reads it again."
            ) from err
        if result.state == TaskState.FAILED:
            self.log.warning(
                "Hailuo task %s, bought by an earlier try, FAILED (%s): this try buys a new video.",
                external_id,
                result.reason or "no reason given by the service",
            )
        return str(result.state)

    def is_job_active(self, status: str) -> bool:
        return status not in (TaskState.SUCCEEDED, TaskState.FAILED)

    def is_job_succeeded(self, status: str) -> bool:
        return status == TaskState.SUCCEEDED

    # The mixin calls this after a fresh submit and when a retry reconnects to a running task, and
    # returns its value in the second case: so it returns the task id, which becomes the XCom.
    def poll_until_complete(self, external_id: Any, context: Any) -> str:  # type: ignore[override]
        self.log.info("Hailuo task_id=%s", external_id)
        return str(external_id)

    def get_job_result(self, external_id: Any, context: Any) -> str:
        return str(external_id)
