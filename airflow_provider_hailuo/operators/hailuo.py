"""Operators that buy a Hailuo video and land it in object storage."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from contextlib import closing
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    Asset,
    BaseOperator,
    ObjectStoragePath,
    ResumableJobMixin,
)

from airflow_provider_hailuo.api import (
    DEFAULT_MODEL,
    HailuoAPIError,
    HailuoDownloadError,
    HailuoLinkExpiredError,
    HailuoSubmitUncertainError,
    HailuoTransientError,
    HailuoValidationError,
    TaskStatus,
    VideoRequest,
    coerce_rendered,
)
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.storage import DOWNLOAD_CHUNK_BYTES, land_stream, plain_uri, read_ahead

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
        return self.execute_resumable(context)

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


def expected_length(headers: Mapping[str, str]) -> int | None:
    """The body size to check against: ``Content-Length``, unless it counts compressed bytes."""
    length = headers.get("Content-Length", "").strip()
    if headers.get("Content-Encoding", "identity").lower() != "identity" or not (
        length.isascii() and length.isdigit()
    ):
        return None
    return int(length)


def safe_object_name(task_id: str) -> str:
    """
    A file name made from the service's task id that stays inside the destination folder.

    The id comes from a remote service: a ``/`` or ``..`` in it must not pick another folder.
    """
    name = re.sub(r"[^A-Za-z0-9._-]", "_", task_id).lstrip(".")
    if not name:
        raise AirflowFailException(f"Hailuo task id {task_id!r} cannot name a file")
    return name


class HailuoDownloadVideoOperator(BaseOperator):
    """
    Stream a finished task's video into object storage (``s3://``, ``gs://``, ``file://``, ...).

    The link is read fresh from the service (and read once more if it has expired). The bytes are
    hashed and counted on the way, checked against ``Content-Length`` and the MP4 signature, and
    committed only when whole: a reader of ``destination`` never sees a partial file, and a failed
    download leaves nothing there.

    Returns ``{"uri", "bytes", "sha256", "content_type", "task_id"}``.

    :param hailuo_task_id: the service's task id (templated).
    :param destination: full object path, or a folder ending in ``/`` where the file is named
        ``<task_id>.mp4`` (templated; ``str`` or ``ObjectStoragePath``).
    :param storage_conn_id: Airflow connection for the destination's filesystem (e.g. ``aws_default``).
    :param overwrite: replace an existing object; when False an identical one is kept and the task
        succeeds, a different one fails the task.
    :param hailuo_conn_id: the ``hailuo`` connection.
    """

    template_fields: Sequence[str] = ("hailuo_task_id", "destination", "storage_conn_id")
    ui_color = "#d8ecff"

    def __init__(
        self,
        *,
        hailuo_task_id: str,
        destination: str | ObjectStoragePath,
        storage_conn_id: str | None = None,
        overwrite: bool = False,
        hailuo_conn_id: str = HailuoHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hailuo_task_id = hailuo_task_id
        self.destination = destination
        self.storage_conn_id = storage_conn_id
        self.overwrite = overwrite
        self.hailuo_conn_id = hailuo_conn_id

    @cached_property
    def hook(self) -> HailuoHook:
        return HailuoHook(self.hailuo_conn_id)

    def target_path(self) -> ObjectStoragePath:
        """The object to write: ``destination`` itself, or ``<task_id>.mp4`` inside a ``.../`` folder."""
        destination = self.destination
        is_folder = str(destination).endswith("/")
        if not isinstance(destination, ObjectStoragePath):
            destination = ObjectStoragePath(str(destination), conn_id=self.storage_conn_id or None)
        if not is_folder:
            return destination
        return destination / f"{safe_object_name(self._task_id())}.mp4"

    def _task_id(self) -> str:
        """The rendered task id; an empty one (an upstream that returned nothing) fails at once."""
        task_id = self.hailuo_task_id
        if task_id is None or not str(task_id).strip() or str(task_id) == "None":
            raise AirflowFailException(
                f"hailuo_task_id is empty ({task_id!r}): the upstream submit returned no task id"
            )
        return str(task_id)

    def _fresh_video_url(self) -> str:
        result = self.hook.get_task_result(self._task_id())
        if not result.succeeded:
            raise AirflowFailException(
                f"Hailuo task {self.hailuo_task_id} has no video to download (status {result.status})"
            )
        if not result.videos or not result.videos[0].url:
            raise AirflowFailException(f"Hailuo task {self.hailuo_task_id} succeeded but lists no video")
        return result.videos[0].url

    def execute(self, context: Any) -> dict[str, Any]:
        target = self.target_path()
        for attempt in (1, 2):
            url = self._fresh_video_url()
            try:
                with (
                    self.hook.stream_video(url) as response,
                    # Closed before the response is: the reader thread stops first.
                    closing(read_ahead(response.iter_content(chunk_size=DOWNLOAD_CHUNK_BYTES))) as chunks,
                ):
                    content_type = response.headers.get("Content-Type", "video/mp4")
                    landed = land_stream(
                        chunks,
                        target,
                        expected_bytes=expected_length(response.headers),
                        overwrite=self.overwrite,
                    )
                break
            except HailuoLinkExpiredError:
                if attempt == 2:
                    raise
                self.log.warning("Video link of task %s expired; reading a fresh one", self.hailuo_task_id)
            except HailuoDownloadError:
                raise
            except Exception as err:
                raise HailuoDownloadError(
                    f"Download of task {self.hailuo_task_id} failed ({type(err).__name__}: {err}); "
                    f"nothing was written to {plain_uri(target)}"
                ) from err
        self.log.info("Landed %s: %d bytes, sha256 %s", landed.uri, landed.bytes, landed.sha256)
        summary = {
            "uri": landed.uri,
            "bytes": landed.bytes,
            "sha256": landed.sha256,
            "content_type": content_type,
            "task_id": self.hailuo_task_id,
        }
        self._annotate_asset_events(context, summary)
        return summary

    def _annotate_asset_events(self, context: Any, summary: dict[str, Any]) -> None:
        """Put the landed file's facts on each Asset outlet's event, for DAGs scheduled on it."""
        outlet_events = context.get("outlet_events") if hasattr(context, "get") else None
        if outlet_events is None:  # an empty accessor is falsy, yet usable
            return
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                outlet_events[outlet].extra.update(summary)
