"""HailuoDownloadVideoOperator: land a finished video in object storage, whole, checked and described."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

from airflow.providers.common.compat.sdk import AirflowFailException, Asset, BaseOperator, ObjectStoragePath

from airflow_provider_hailuo import lineage, manifest, media
from airflow_provider_hailuo.api import (
    HailuoDestinationTakenError,
    HailuoDownloadError,
    HailuoLinkExpiredError,
    HailuoValidationError,
    TaskResult,
)
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.rendered import rendered_mapping, rendered_task_id
from airflow_provider_hailuo.storage import (
    DOWNLOAD_CHUNK_BYTES,
    LandedFile,
    land_bytes,
    land_stream,
    plain_uri,
    read_ahead,
)


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


def names_an_object(destination: str | ObjectStoragePath) -> bool:
    """
    Whether ``destination`` is the video's own path (it ends in ``.mp4``) rather than a folder.

    Decided by the name, because the trailing ``/`` of a folder does not survive ``str()`` of an
    ObjectStoragePath.
    """
    text = str(destination)
    return not text.endswith("/") and text.lower().endswith(".mp4")


def sibling(path: ObjectStoragePath, suffix: str) -> ObjectStoragePath:
    """``<dir>/<name>.mp4`` -> ``<dir>/<name><suffix>``: the poster and manifest sit beside the video."""
    return path.parent / f"{path.stem}{suffix}"


def _is_submit(task: Any) -> bool:
    """Whether ``task`` is a HailuoSubmitVideoOperator, mapped (``operator_class``) or not."""
    from airflow_provider_hailuo.operators.submit import HailuoSubmitVideoOperator

    cls = getattr(task, "operator_class", None) or type(task)
    return isinstance(cls, type) and issubclass(cls, HailuoSubmitVideoOperator)


def submit_upstream(task: Any) -> str | None:
    """
    The task id of the submit whose request this download lands: a direct upstream, else the only
    one among its ancestors (``hailuo_task_id`` wired through a template and a sensor in between).
    """
    direct = [t.task_id for t in task.get_direct_relatives(upstream=True) if _is_submit(t)]
    if len(direct) == 1:
        return direct[0]
    if direct:
        return None
    ancestors = [t.task_id for t in task.get_flat_relatives(upstream=True) if _is_submit(t)]
    return ancestors[0] if len(ancestors) == 1 else None


@dataclass
class _Verified:
    """What the pre-commit step learnt from the local copy."""

    report: media.CheckReport | None = None
    poster: bytes | None = None


class HailuoDownloadVideoOperator(BaseOperator):
    """
    Stream a finished task's video into object storage (``s3://``, ``gs://``, ``file://``, ...).

    The link is read fresh from the service (and read once more if it has expired). The bytes are
    hashed and counted on the way, checked against ``Content-Length`` and the MP4 signature, decoded
    and compared with what was requested (``video_checks``), and committed only when all of that
    passed: a reader of ``destination`` never sees a partial or undecodable file. Beside the video
    land a poster (``<name>.jpg``) and, last, a manifest (``<name>.json``).

    What the video should be comes from ``request`` if given, else from the upstream
    ``HailuoSubmitVideoOperator`` that produced ``hailuo_task_id`` (its ``hailuo_request`` XCom,
    same map index), else only from the size the service reported.

    Returns ``{"uri", "bytes", "sha256", "content_type", "task_id", "duration_s", "width",
    "height", "codec", "checks", "poster_uri", "manifest_uri", "estimated_cost"}``; Asset outlet
    events carry the same.

    :param hailuo_task_id: the service's task id (templated).
    :param destination: the video's own path when it ends in ``.mp4``; anything else is a folder,
        where the file is named ``<task_id>.mp4`` (templated; ``str`` or ``ObjectStoragePath``). In a
        mapped task an ``.mp4`` path must differ per map index (expanded, or a template naming
        ``map_index``); otherwise the task fails before downloading.
    :param storage_conn_id: Airflow connection for the destination's filesystem (e.g. ``aws_default``).
    :param overwrite: replace an existing object; when False an identical one is kept and the task
        succeeds, a different one fails the task.
    :param hailuo_conn_id: the ``hailuo`` connection.
    :param video_checks: ``"warn"`` (default: must decode; a duration or size mismatch is logged and
        recorded), ``"strict"`` (a mismatch fails the task, nothing lands) or ``"off"`` (length and
        signature only). Needs the ``[media]`` extra; without it ``"warn"`` falls back to ``"off"``.
    :param poster: land a JPEG poster frame beside the video (default: when ``[media]`` is installed).
    :param manifest: land the JSON manifest beside the video (default True).
    :param request: the generation request as a dict or JSON text (templated), for DAGs that wire
        ``hailuo_task_id`` from something other than a submit operator.
    """

    template_fields: Sequence[str] = ("hailuo_task_id", "destination", "storage_conn_id", "request")
    template_fields_renderers = {"request": "json"}
    ui_color = "#d8ecff"

    def __init__(
        self,
        *,
        hailuo_task_id: str,
        destination: str | ObjectStoragePath,
        storage_conn_id: str | None = None,
        overwrite: bool = False,
        hailuo_conn_id: str = HailuoHook.default_conn_name,
        video_checks: str = "warn",
        poster: bool | None = None,
        manifest: bool = True,
        request: Mapping[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hailuo_task_id = hailuo_task_id
        self.destination = destination
        self.storage_conn_id = storage_conn_id
        self.overwrite = overwrite
        self.hailuo_conn_id = hailuo_conn_id
        self.video_checks = media.check_mode(video_checks)
        self.poster = poster
        self.manifest = manifest
        self.request = request
        # As declared, before rendering: what tells whether every map index gets the same path.
        self._declared_destination = destination
        self._landed_uri: str | None = None
        self._known: dict[str, Any] | None = None

    @cached_property
    def hook(self) -> HailuoHook:
        return HailuoHook(self.hailuo_conn_id)

    def target_path(self) -> ObjectStoragePath:
        """The object to write: ``destination`` itself, or ``<task_id>.mp4`` inside it (a folder)."""
        destination = self.destination
        if not isinstance(destination, ObjectStoragePath):
            destination = ObjectStoragePath(str(destination), conn_id=self.storage_conn_id or None)
        if names_an_object(self.destination):
            return destination
        return destination / f"{safe_object_name(self._task_id())}.mp4"

    def _same_object_for_every_map_index(self) -> bool:
        """
        Whether each map index of this task renders ``destination`` from the same text, which names
        no map index: then they all land on one object, overwriting or failing each other.

        The other map indexes' rendered values are unknown here, so the declared value decides. An
        expanded ``destination`` differs per map index by design; the DAG's own (mapped) task tells
        whether it was expanded, since an unmapped copy gets each map index's value as if declared.
        """
        declared = self._declared_destination
        task = self.dag.task_dict.get(self.task_id) if self.has_dag() else None
        partial = getattr(task, "partial_kwargs", None)
        if isinstance(partial, Mapping) and "destination" not in partial:
            return False
        return isinstance(declared, str | ObjectStoragePath) and "map_index" not in str(declared)

    def _refuse_one_object_for_every_map_index(self, context: Any, target: ObjectStoragePath) -> None:
        ti = context.get("ti") if hasattr(context, "get") else None
        map_index = getattr(ti, "map_index", None)
        if map_index is None or map_index < 0 or not names_an_object(self.destination):
            return
        if self._same_object_for_every_map_index():
            raise AirflowFailException(
                f"destination {plain_uri(target)} is one object for every map index of this mapped "
                f"task (this is map index {map_index}): their videos would land on each other. Give "
                "a folder (a destination not ending in .mp4: each video is named after its task id), "
                "expand destination per map index, or name the map index in it ({{ ti.map_index }})"
            )

    def _task_id(self) -> str:
        try:
            return rendered_task_id(self.hailuo_task_id)
        except HailuoValidationError as err:
            raise AirflowFailException(str(err)) from err

    def _finished_result(self) -> TaskResult:
        result = self.hook.get_task_result(self._task_id())
        if not result.succeeded:
            raise AirflowFailException(
                f"Hailuo task {self.hailuo_task_id} has no video to download (status {result.status})"
            )
        if not result.has_video:
            raise AirflowFailException(f"Hailuo task {self.hailuo_task_id} succeeded but lists no video")
        return result

    # ----------------------------------------------------------------------------------------------
    # What was asked
    # ----------------------------------------------------------------------------------------------
    def known_request(self, context: Any) -> dict[str, Any] | None:
        """``request`` if given, else the upstream submit's published request for this map index."""
        try:
            value = rendered_mapping("request", self.request)
        except HailuoValidationError as err:
            raise AirflowFailException(str(err)) from err
        if value is not None:
            return {
                key: manifest.clean_url(v) if key in manifest.URL_FIELDS else v for key, v in value.items()
            }
        ti = context.get("ti") if hasattr(context, "get") else None
        submit_id = submit_upstream(self) if ti is not None else None
        if ti is None or submit_id is None:
            return None
        map_index = getattr(ti, "map_index", -1)
        map_index = -1 if map_index is None else map_index
        try:
            produced = ti.xcom_pull(task_ids=submit_id, map_indexes=map_index)
            published = ti.xcom_pull(task_ids=submit_id, key=manifest.REQUEST_XCOM_KEY, map_indexes=map_index)
        except Exception as err:  # an XCom backend's error must not fail a video that arrived
            self.log.warning("Could not read the request of %s: %s", submit_id, err)
            return None
        if str(produced) != str(self.hailuo_task_id) or not isinstance(published, Mapping):
            self.log.info("No request of %s matches Hailuo task %s", submit_id, self.hailuo_task_id)
            return None
        return dict(published)

    # ----------------------------------------------------------------------------------------------
    # The run
    # ----------------------------------------------------------------------------------------------
    def _wants_poster(self) -> bool:
        if self.poster is None:
            return media.media_available()
        if self.poster and not media.media_available():
            self.log.warning("poster=True needs PyAV (the [media] extra); no poster is made")
            return False
        return bool(self.poster)

    def _before_commit(self, verified: _Verified, expected: media.Expected, target: Any) -> Any:
        """The check run on the local copy before the video is visible; the same pass makes the poster."""

        logger = cast(Any, self.log)  # Airflow 3's task logger is not a logging.Logger, but logs alike

        def check(local_path: str) -> None:
            inspection = media.inspect(
                local_path, self.video_checks, expected, poster=self._wants_poster(), logger=logger
            )
            verified.report, verified.poster = inspection.report, inspection.poster
            # An older manifest must not vouch for the video about to replace it; one beside a
            # video that overwrite=False keeps (identical, or refused) still describes that video.
            if self.manifest and (self.overwrite or not target.exists()):
                stale = sibling(target, ".json")
                if stale.exists():
                    stale.unlink()

        return check

    def _land_video(
        self, target: ObjectStoragePath, check: Any, result: TaskResult
    ) -> tuple[LandedFile, str]:
        for attempt in (1, 2):
            # The read just made gives the first link (the task's own on PPInfra and Novita, a file
            # retrieval on MiniMax); only an expired link is worth a second read of the task.
            if attempt == 2:
                result = self._finished_result()
            url = self.hook.video_link(result)
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
                        before_commit=check,
                    )
                return landed, content_type
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
        raise AssertionError("unreachable")

    def execute(self, context: Any) -> dict[str, Any]:
        target = self.target_path()
        self._refuse_one_object_for_every_map_index(context, target)
        request = self._known = self.known_request(context)
        result = self._finished_result()
        expected = media.Expected.from_request(
            request, width=getattr(result, "video_width", None), height=getattr(result, "video_height", None)
        )
        verified = _Verified()
        try:
            landed, content_type = self._land_video(
                target, self._before_commit(verified, expected, target), result
            )
        except HailuoDestinationTakenError as err:
            raise AirflowFailException(str(err)) from err  # still there on every retry
        except media.HailuoVideoCheckError as err:
            message = f"{err}; nothing was written to {plain_uri(target)}"
            if err.report is not None or not media.media_available():
                raise AirflowFailException(message) from err  # a retry would land the same video
            raise HailuoDownloadError(message) from err  # undecodable: a fresh download may heal
        self._landed_uri = landed.uri
        lineage.report_write(target, landed.uri)
        report = verified.report
        if report is not None:
            self.log.info("Video check: %s", report.summary())
        self.log.info("Landed %s: %d bytes, sha256 %s", landed.uri, landed.bytes, landed.sha256)
        facts = report.facts.as_dict() if report else {}
        summary: dict[str, Any] = {
            "uri": landed.uri,
            "bytes": landed.bytes,
            "sha256": landed.sha256,
            "content_type": content_type,
            "task_id": self.hailuo_task_id,
            "duration_s": facts.get("duration_s"),
            "width": facts.get("width"),
            "height": facts.get("height"),
            "codec": facts.get("codec"),
            "checks": report.as_dict() if report else None,
            "poster_uri": self._land_sidecar(target, ".jpg", verified.poster),
            "manifest_uri": None,
            # What the submit estimated this video cost ({"amount", "currency"}); None: unknown.
            "estimated_cost": (request or {}).get("estimated_cost"),
        }
        if self.manifest:
            record = manifest.build_manifest(
                video=summary,
                request=request,
                service_task_id=str(self.hailuo_task_id),
                airflow=self._airflow_ids(context),
                finished_at=None,
                checks=summary["checks"],
                poster_uri=summary["poster_uri"],
            )
            summary["manifest_uri"] = self._land_sidecar(target, ".json", manifest.dumps(record))
        self._annotate_asset_events(context, summary)
        return summary

    def _land_sidecar(self, target: ObjectStoragePath, suffix: str, data: bytes | None) -> str | None:
        if data is None:
            return None
        path = sibling(target, suffix)
        landed = land_bytes(data, path)
        lineage.report_write(path, landed.uri)
        return landed.uri

    def _airflow_ids(self, context: Any) -> dict[str, Any]:
        ti = context.get("ti") if hasattr(context, "get") else None
        dag = context.get("dag") if hasattr(context, "get") else None
        return {
            "dag_id": getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None),
            "run_id": context.get("run_id") if hasattr(context, "get") else getattr(ti, "run_id", None),
            "task_id": self.task_id,
            "map_index": getattr(ti, "map_index", None),
            "try_number": getattr(ti, "try_number", None),
        }

    def _annotate_asset_events(self, context: Any, summary: dict[str, Any]) -> None:
        """Put the landed file's facts on each Asset outlet's event, for DAGs scheduled on it."""
        outlet_events = context.get("outlet_events") if hasattr(context, "get") else None
        if outlet_events is None:  # an empty accessor is falsy, yet usable
            return
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                outlet_events[outlet].extra.update(summary)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The landed video as output; the first frame as input when it came from object storage."""
        if self._landed_uri is None:
            return None
        frame = manifest.frame_uri(self._known)
        return lineage.openlineage_facets(
            outputs=[self._landed_uri],
            inputs=[frame] if frame else [],
            estimated_cost=(self._known or {}).get("estimated_cost"),
            request_known=self._known is not None,
        )
