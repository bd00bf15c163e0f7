"""HailuoSubmitVideoOperator: validate a generation request, pay for it once, return its task id."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator, ResumableJobMixin

from airflow_provider_hailuo.api import (
    DEFAULT_MODEL,
    HailuoAPIError,
    HailuoSubmitUncertainError,
    HailuoTransientError,
    HailuoValidationError,
    TaskStatus,
    VideoRequest,
    coerce_rendered,
)
from airflow_provider_hailuo.hooks.hailuo import HailuoHook

#: Fields a DAG author may set through a template; checked again after rendering.
REQUEST_FIELDS = (
    "prompt",
    "image_url",
    "duration",
    "resolution",
    "enable_prompt_expansion",
    "model",
    "extra_body",
)


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def rendered_extra_body(value: Any) -> Mapping[str, Any]:
    """``extra_body`` after rendering: a mapping, or the JSON text of one (a template renders text)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise HailuoValidationError("extra_body", "must be a JSON object", value) from None
    if not isinstance(value, Mapping):
        raise HailuoValidationError("extra_body", "must be a mapping of field name to value", value)
    return value


class HailuoSubmitVideoOperator(ResumableJobMixin, BaseOperator):
    """
    Validate a generation request, submit it once, and return the service's ``task_id``.

    Bad values fail before any HTTP call, naming the field and the rule: literal values already
    when the DAG is parsed, templated ones right after rendering. The task id is kept in the task
    instance's ``task_state_store`` the moment it is known, so a retry of this task reuses the
    video it already paid for instead of buying another.

    :param prompt: what to generate, 1 to 2000 characters (templated).
    :param image_url: http(s) URL of the first frame, for image-to-video (templated).
    :param duration: 6 or 10 seconds (templated).
    :param resolution: ``768P`` or ``1080P``; 10 s videos are 768P only (templated).
    :param enable_prompt_expansion: let the service rewrite the prompt (templated).
    :param model: endpoint name, ``POST /v3/async/<model>`` (templated).
    :param extra_body: extra JSON fields for the body, for fields newer than this provider (templated).
    :param hailuo_conn_id: the ``hailuo`` connection.
    :param durable: reuse the task id a failed earlier try bought (default True).
    """

    template_fields: Sequence[str] = REQUEST_FIELDS
    template_fields_renderers = {"prompt": "md", "extra_body": "json"}
    ui_color = "#e4d8ff"
    external_id_key = "hailuo_task_id"

    def __init__(
        self,
        *,
        prompt: str,
        image_url: str | None = None,
        duration: int | str = 6,
        resolution: str = "768P",
        enable_prompt_expansion: bool | str = True,
        model: str = DEFAULT_MODEL,
        extra_body: Mapping[str, Any] | None = None,
        hailuo_conn_id: str = HailuoHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.image_url = image_url
        self.duration = duration
        self.resolution = resolution
        self.enable_prompt_expansion = enable_prompt_expansion
        self.model = model
        # Kept as given: a template or an XComArg is resolved only at run time (build_request).
        self.extra_body = extra_body
        self.hailuo_conn_id = hailuo_conn_id
        self._check_literal_values()

    def _check_literal_values(self) -> None:
        """Fail at parse time when every value is literal (mapped/templated ones wait for render)."""
        values = {name: getattr(self, name) for name in REQUEST_FIELDS}
        if any(_is_template(v) for v in values.values()) or not isinstance(self.prompt, str):
            return
        if any(type(v).__module__.startswith("airflow") for v in values.values()):
            return  # XComArg, PlainXComArg, ...: resolved at run time
        self.build_request()

    def build_request(self) -> VideoRequest:
        """The validated request from the (rendered) fields; raises ``HailuoValidationError``."""
        return VideoRequest(
            prompt=self.prompt,
            image_url=coerce_rendered("image_url", self.image_url),
            duration=coerce_rendered("duration", self.duration),
            resolution=self.resolution,
            enable_prompt_expansion=coerce_rendered("enable_prompt_expansion", self.enable_prompt_expansion),
            model=self.model,
            extra_body=rendered_extra_body(self.extra_body),
        )

    @cached_property
    def hook(self) -> HailuoHook:
        return HailuoHook(self.hailuo_conn_id)

    def execute(self, context: Any) -> str:
        try:
            self._request = self.build_request()
        except HailuoValidationError as err:
            raise AirflowFailException(str(err)) from err
        self._publish_request(context, self._request)
        return self.execute_resumable(context)

    def _publish_request(self, context: Any, request: VideoRequest) -> None:
        """Push the validated request (no secret) for the download's checks and manifest."""
        from airflow_provider_hailuo.manifest import REQUEST_XCOM_KEY, request_record, vendor_of

        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is not None:
            ti.xcom_push(key=REQUEST_XCOM_KEY, value=request_record(request, vendor=vendor_of(self.hook)))

    # ResumableJobMixin: the "job" is the paid generation; waiting for it is the sensor's job.
    def submit_job(self, context: Any) -> str:
        try:
            return self.hook.submit(self._request)
        except HailuoSubmitUncertainError as err:
            raise AirflowFailException(str(err)) from err
        except HailuoAPIError as err:
            if isinstance(err, HailuoTransientError):
                raise  # nothing was created; an Airflow retry may try again later
            raise AirflowFailException(str(err)) from err

    def get_job_status(self, external_id: Any, context: Any) -> str:
        return self.hook.get_task_result(str(external_id)).status

    def is_job_active(self, status: str) -> bool:
        return status not in (TaskStatus.SUCCEED, TaskStatus.FAILED)

    def is_job_succeeded(self, status: str) -> bool:
        return status == TaskStatus.SUCCEED

    # The mixin calls this after a fresh submit and when a retry reconnects to a running task, and
    # returns its value in the second case: so it returns the task id, which becomes the XCom.
    def poll_until_complete(self, external_id: Any, context: Any) -> str:  # type: ignore[override]
        self.log.info("Hailuo task_id=%s", external_id)
        return str(external_id)

    def get_job_result(self, external_id: Any, context: Any) -> str:
        return str(external_id)
