"""HailuoDownloadVideoOperator: land a finished video in object storage, whole or not at all."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextlib import closing
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, Asset, BaseOperator, ObjectStoragePath

from airflow_provider_hailuo.api import HailuoDownloadError, HailuoLinkExpiredError
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.storage import DOWNLOAD_CHUNK_BYTES, land_stream, plain_uri, read_ahead


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
