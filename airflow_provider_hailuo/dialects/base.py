"""
What a vendor's dialect is: the requests it describes and the answers it reads, without any I/O.

A dialect never sends anything. It turns a :class:`VideoRequest` into an :class:`HttpCall` (path,
query, JSON body in the vendor's field names) and a vendor's answer (status, headers, body bytes)
into a task id, a :class:`TaskResult`, a download link, or the exception that says what to do. The
hook sends the calls, sync or async, adds the key and retries; so one dialect serves the worker and
the triggerer alike, and its wire rules are tested as plain functions.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn

from airflow_provider_hailuo.api import (
    HailuoError,
    HailuoNoVideoError,
    HailuoValidationError,
    TaskResult,
    VideoRequest,
    is_data_url,
)
from airflow_provider_hailuo.dialects.answers import family_of
from airflow_provider_hailuo.dialects.models import (
    CATALOGUE,
    Offer,
    catalogue_model,
    check_model,
    check_offer,
)

#: Body fields every dialect writes under these names (the prompt-expansion flag differs).
_SHARED_BODY_FIELDS = ("prompt", "duration", "resolution", "fast_pretreatment")


@dataclass(frozen=True)
class HttpCall:
    """One API call for the hook to send: the hook adds the base URL, the key and the retries."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ResolvedRequest:
    """A request one vendor takes, and the submit call that buys it. Only ``Dialect.validate`` makes one."""

    request: VideoRequest
    vendor: str
    #: The vendor's name for the model: the endpoint (PPInfra, Novita) or the ``model`` field (MiniMax).
    model: str
    #: The catalogue model it was resolved from; None: the name was passed through as it is.
    catalogue_model: str | None
    call: HttpCall

    @property
    def passthrough(self) -> bool:
        return self.catalogue_model is None

    @property
    def warning(self) -> str | None:
        """What to log for a passed-through model: only the universal rules were checked."""
        if not self.passthrough:
            return None
        return (
            f"Model {self.model!r} is not one of {', '.join(CATALOGUE)}: it is sent to {self.vendor} as "
            "the vendor's own model name, and only the rules shared by every model were checked"
        )


class Dialect(ABC):
    """
    One vendor's wire: per-vendor data in class attributes, per-vendor reading in methods.

    :param group_id: MiniMax accounts that need a ``GroupId`` on file retrieval (connection extra
        ``group_id``); the other vendors have no use for it.
    """

    #: The vendor's name, as the connection's ``api`` extra spells it.
    name: ClassVar[str]
    #: Where a person looks for a task the provider cannot tell was created (named in the error).
    console: ClassVar[str]
    #: The API family whose answers this vendor gives (``answers.family_of``).
    family: ClassVar[str]
    #: Whether the vendor takes frames as ``data:`` URLs (a local file can then be sent inline).
    accepts_data_url: ClassVar[bool]
    #: The catalogue models the vendor sells, by neutral name.
    offers: ClassVar[Mapping[str, Offer]]
    #: The body field of ``enable_prompt_expansion``.
    prompt_expansion_field: ClassVar[str]
    #: Frame fields for a model passed through by name: the vendor's usual names.
    passthrough_frames: ClassVar[tuple[str, str | None]]
    #: The form a passed-through model name must have here (None: the universal form suffices).
    passthrough_name_form: ClassVar[re.Pattern[str] | None] = None
    #: Body fields the submit call adds itself (MiniMax's ``model``).
    call_fields: ClassVar[tuple[str, ...]] = ()
    #: Input image rules the vendor documents: shortest side (exclusive) and width/height range.
    frame_min_short_side: ClassVar[int | None] = None
    frame_aspect_range: ClassVar[tuple[float, float] | None] = None

    def __init__(self, *, group_id: str | None = None) -> None:
        self.group_id = group_id or None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def is_vendor_error(self, document: Any) -> bool:
        """Whether an error body is this vendor's own document (not a gateway's or web server's page)."""
        return family_of(document) == self.family

    # ----------------------------------------------------------------------------------------------
    # submit
    # ----------------------------------------------------------------------------------------------
    def validate(self, request: VideoRequest) -> ResolvedRequest:
        """
        Check a request against this vendor's rules and build the call that buys it.

        Raises :class:`HailuoValidationError` naming the field, the model and the vendor; nothing is
        sent, so the operator may call it before spending anything.
        """
        spec = catalogue_model(request.model)
        if spec is None:
            self._check_passthrough_name(request.model)
            offer = Offer(request.model, request.model, *self.passthrough_frames, fast_pretreatment=True)
            check_offer(request, offer, request.model, self.name)
        else:
            offer = self.offers[spec.name]
            check_model(request, spec, offer, self.name)
        label = spec.name if spec else request.model
        self._check_frames(request, label)
        self._check_extra_body(request, offer, label)
        name = offer.name_for(request)
        return ResolvedRequest(
            request=request,
            vendor=self.name,
            model=name,
            catalogue_model=spec.name if spec else None,
            call=self.submit_http(name, self._body(request, offer)),
        )

    def submit_call(self, request: VideoRequest) -> HttpCall:
        """The submit call for a request (validated first)."""
        return self.validate(request).call

    def _refuse(self, field_name: str, rule: str, model: str, value: Any = None) -> NoReturn:
        raise HailuoValidationError(field_name, rule, value, model=model, vendor=self.name)

    def _check_passthrough_name(self, model: str) -> None:
        form = self.passthrough_name_form
        if form is not None and not form.fullmatch(model):
            self._refuse(
                "model", "must be an endpoint name of lowercase letters, digits, '.', '_' or '-'", model
            )

    def _check_frames(self, request: VideoRequest, model: str) -> None:
        if self.accepts_data_url:
            return
        for name in ("image_url", "end_image_url"):
            url = getattr(request, name)
            if url is not None and is_data_url(url):
                self._refuse(name, f"must be an http(s) URL: {self.name} takes no data: URLs", model)

    def _check_extra_body(self, request: VideoRequest, offer: Offer, model: str) -> None:
        own = {*_SHARED_BODY_FIELDS, self.prompt_expansion_field, *self.call_fields, *offer.wire_fields()}
        clashes = sorted(own & set(request.extra_body))
        if clashes:
            self._refuse(
                "extra_body", f"must not repeat fields the provider sets ({', '.join(clashes)})", model
            )

    def _body(self, request: VideoRequest, offer: Offer) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "duration": request.duration,
            "resolution": request.resolution,
            self.prompt_expansion_field: request.enable_prompt_expansion,
        }
        if request.image_url is not None:
            body[offer.first_frame] = request.image_url
        if request.end_image_url is not None and offer.last_frame is not None:
            body[offer.last_frame] = request.end_image_url
        if request.fast_pretreatment:
            body["fast_pretreatment"] = True  # sent only when asked: the default is the services' own
        body.update(request.extra_body)
        return body

    @abstractmethod
    def submit_http(self, model: str, body: Mapping[str, Any]) -> HttpCall:
        """The submit call for the vendor's model name and a body in its field names."""

    @abstractmethod
    def parse_submit(self, status: int, headers: Mapping[str, str], body: bytes, *, conn_id: str) -> str:
        """
        The task id of a submit's answer.

        Raises :class:`HailuoTransientError` with ``nothing_created=True`` only when the answer
        proves the vendor's own application refused it (429, its own 503, MiniMax 1002),
        :class:`HailuoMalformedAnswerError` for an answer that cannot be read, any other
        :class:`HailuoAPIError` for what the service said. What may be sent again is decided from
        these by ``hooks/submit_rule.py``, for every vendor alike.
        """

    # ----------------------------------------------------------------------------------------------
    # read
    # ----------------------------------------------------------------------------------------------
    @abstractmethod
    def read_call(self, task_id: str) -> HttpCall:
        """The call that reads a task."""

    @abstractmethod
    def parse_read(
        self, status: int, headers: Mapping[str, str], body: bytes, *, task_id: str, conn_id: str
    ) -> TaskResult:
        """
        A task read's answer as a result, or the exception it means.

        Transient errors and unreadable answers (:class:`HailuoMalformedAnswerError`) are worth a
        retry; :class:`HailuoNotFoundError` means the service does not know the id (yet).
        """

    # ----------------------------------------------------------------------------------------------
    # download link
    # ----------------------------------------------------------------------------------------------
    def link_call(self, result: TaskResult) -> HttpCall | None:
        """
        The call that gets a finished task's download link, or None when the result holds it
        (``result.video_url``, fresh when the result was just read).

        Raises :class:`HailuoNoVideoError` when the result has nothing to download.
        """
        self._require_video(result)
        return None

    def parse_link(
        self, status: int, headers: Mapping[str, str], body: bytes, *, task_id: str, conn_id: str
    ) -> str:
        """The download link from the answer to :meth:`link_call`'s call."""
        raise HailuoError(f"{self.name} has no link call: the link is in the task result")

    @staticmethod
    def _require_video(result: TaskResult) -> None:
        if not result.succeeded:
            raise HailuoNoVideoError(
                f"Hailuo task {result.task_id} has no video to download (status {result.status or '<none>'})"
            )
        if not result.has_video:
            raise HailuoNoVideoError(f"Hailuo task {result.task_id} succeeded but names no video")
