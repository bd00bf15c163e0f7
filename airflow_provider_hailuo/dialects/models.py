"""
The model catalogue: each model's rules as its maker states them, and how a vendor sells it.

A DAG names a model by its neutral name (``hailuo-02``, ``hailuo-2.3``, ``hailuo-2.3-fast``); each
vendor's dialect holds an :class:`Offer` per model (its endpoint or model name, the fields it
takes), and the rules here are checked against the pair before anything is paid for. A name that is
not in the catalogue is passed through to the vendor untouched, with the universal rules only, so a
model released tomorrow works without a release of this provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from airflow_provider_hailuo.api import HailuoValidationError, VideoRequest

#: Both Hailuo-02 and 2.3 (docs/vendors.md §5, §6): 1080P is 6 s only, 10 s is 768P only.
_SHARED_RESOLUTIONS: Mapping[int, tuple[str, ...]] = {6: ("768P", "1080P"), 10: ("768P",)}


@dataclass(frozen=True)
class ModelSpec:
    """One model as its maker defines it, whoever sells it."""

    name: str
    #: False: image-to-video only (a first frame is required).
    text_to_video: bool
    #: Resolutions by duration (seconds).
    resolutions: Mapping[int, tuple[str, ...]]


CATALOGUE: Mapping[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("hailuo-02", text_to_video=True, resolutions=_SHARED_RESOLUTIONS),
        ModelSpec("hailuo-2.3", text_to_video=True, resolutions=_SHARED_RESOLUTIONS),
        ModelSpec("hailuo-2.3-fast", text_to_video=False, resolutions=_SHARED_RESOLUTIONS),
    )
}
#: Names a DAG may already use, read as catalogue models on every vendor: ``minimax-hailuo-02`` was
#: this provider's default (PPInfra's endpoint name) before it spoke several dialects, so a DAG that
#: spells it keeps its rules, and keeps working when its connection moves to MiniMax.
ALIASES: Mapping[str, str] = {"minimax-hailuo-02": "hailuo-02"}


def catalogue_model(name: str) -> ModelSpec | None:
    """The catalogue model a request names, or None for a vendor's own name (passed through)."""
    return CATALOGUE.get(ALIASES.get(name, name))


@dataclass(frozen=True)
class Offer:
    """How one vendor sells one model: the names it goes by and the body fields it takes."""

    #: The vendor's name for text-to-video; None: the model needs a first frame.
    text_name: str | None
    #: The vendor's name for image-to-video (the same name where one endpoint does both).
    image_name: str
    #: The body field of the first frame.
    first_frame: str
    #: The body field of the last frame; None: the model takes no last frame.
    last_frame: str | None = None
    #: Whether the vendor documents ``fast_pretreatment`` for this model.
    fast_pretreatment: bool = False
    #: Resolutions only image-to-video without a last frame has, by duration (MiniMax's 512P).
    image_only_resolutions: Mapping[int, tuple[str, ...]] = field(default_factory=dict)

    def name_for(self, request: VideoRequest) -> str:
        """The vendor's name for this request: 2.3 is two endpoints on PPInfra and Novita."""
        if request.image_url is None and self.text_name is not None:
            return self.text_name
        return self.image_name

    def wire_fields(self) -> frozenset[str]:
        """The frame fields this offer writes (``extra_body`` may not repeat them)."""
        return frozenset(name for name in (self.first_frame, self.last_frame) if name)


def check_offer(request: VideoRequest, offer: Offer, model: str, vendor: str) -> None:
    """
    The rules of what a vendor's endpoint takes at all: frames and options.

    They hold for passed-through models too, where they are the vendor's only known limits (a last
    frame sent where the vendor documents no field for it would be silently dropped).
    """

    def refuse(field_name: str, rule: str) -> NoReturn:
        raise HailuoValidationError(field_name, rule, model=model, vendor=vendor)

    if request.image_url is None and offer.text_name is None:
        refuse("image_url", "is required: this model makes videos from a first frame only")
    if request.end_image_url is not None and offer.last_frame is None:
        refuse("end_image_url", "is not taken: this model has no last frame here")
    if request.fast_pretreatment and not offer.fast_pretreatment:
        refuse("fast_pretreatment", "is not available")


def check_model(request: VideoRequest, spec: ModelSpec, offer: Offer, vendor: str) -> None:
    """The catalogue model's own rules: durations, resolutions, and which frames go together."""

    def refuse(field_name: str, rule: str, value: object = None) -> NoReturn:
        raise HailuoValidationError(field_name, rule, value, model=spec.name, vendor=vendor)

    check_offer(request, offer, spec.name, vendor)
    first, last = request.image_url is not None, request.end_image_url is not None
    if last and not first:
        refuse("end_image_url", "needs image_url: a last frame goes with a first frame")
    duration, resolution = request.duration, request.resolution
    if duration not in spec.resolutions:
        durations = " or ".join(str(d) for d in spec.resolutions)
        refuse("duration", f"must be {durations} (seconds)", duration)
    if resolution in offer.image_only_resolutions.get(duration, ()):
        if not first or last:
            refuse("resolution", f"{resolution} is for image-to-video without a last frame only")
        return
    allowed = spec.resolutions[duration]
    if resolution in allowed:
        return
    offered = dict.fromkeys(
        r for d in spec.resolutions for r in (*spec.resolutions[d], *offer.image_only_resolutions.get(d, ()))
    )
    if resolution in offered:
        only = ", ".join(allowed)
        refuse(
            "resolution",
            f"{resolution} is not available for {duration} s videos: {duration} s is {only} only",
        )
    refuse("resolution", f"must be one of {', '.join(offered)}", resolution)
