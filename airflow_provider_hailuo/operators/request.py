"""
One generation request as a DAG gives it, checked the way the submit checks it, and priced.

The submit operator and the plan step both go through :func:`check_request`, so a request the plan
passes is one the submit takes: the same reading of rendered text, the same frame checks in object
storage, the same vendor and model rules, the same price. The plan is the submit's own check, run
early for the whole batch; neither sends anything to the service here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_hailuo.api import (
    CORE_FIELDS,
    DEFAULT_MODEL,
    HailuoValidationError,
    VideoRequest,
)
from airflow_provider_hailuo.frames import ResolvedFrame, resolve_frame
from airflow_provider_hailuo.prices import (
    Budget,
    Cost,
    HailuoPriceError,
    Prices,
    currency_mismatch,
    money,
    over_budget,
    prices_for,
)
from airflow_provider_hailuo.rendered import coerce_rendered, rendered_mapping

if TYPE_CHECKING:
    from airflow_provider_hailuo.dialects import Dialect, ResolvedRequest
    from airflow_provider_hailuo.hooks.hailuo import HailuoHook

#: Fields a DAG author may set through a template; checked again after rendering.
REQUEST_FIELDS = (*CORE_FIELDS, "model", "extra_body")
FRAME_FIELDS = ("image_url", "end_image_url")
#: What one request of a batch holds: the submit's request fields and its frames' store connection.
REQUEST_KEYS = (*REQUEST_FIELDS, "image_conn_id")


def is_object_frame(value: Any) -> bool:
    """A frame that must be resolved to a URL first: ``s3://``, ``gs://``, ``file://``... or a path."""
    if value is None or (isinstance(value, str) and value.startswith(("http://", "https://", "data:"))):
        return False
    return (isinstance(value, str) and "://" in value) or type(value).__name__ == "ObjectStoragePath"


@dataclass(frozen=True)
class RequestFields:
    """The request fields as rendered (text from a template, anything from an XCom)."""

    prompt: Any
    image_url: Any = None
    end_image_url: Any = None
    duration: Any = 6
    resolution: Any = "768P"
    enable_prompt_expansion: Any = True
    fast_pretreatment: Any = False
    model: Any = DEFAULT_MODEL
    extra_body: Any = None
    image_conn_id: Any = None

    @classmethod
    def from_mapping(cls, value: Any) -> RequestFields:
        """One request of a batch: a mapping of the submit's request keys, ``prompt`` required."""
        if not isinstance(value, Mapping):
            raise HailuoValidationError(
                "request", "must be a mapping of the submit's request fields (prompt, duration, ...)", value
            )
        unknown = sorted(str(key) for key in value if key not in REQUEST_KEYS)
        if unknown:
            raise HailuoValidationError(
                unknown[0],
                f"is not a request field (they are {', '.join(REQUEST_KEYS)})",
            )
        if "prompt" not in value:
            raise HailuoValidationError("prompt", "is required")
        return cls(**{key: value[key] for key in REQUEST_KEYS if key in value})

    def build(self, frames: Mapping[str, str] | None = None) -> VideoRequest:
        """
        The request, checked against the rules every vendor shares; ``frames`` replaces
        object-storage frames by the URLs they resolved to. Raises ``HailuoValidationError``.
        """
        frames = frames or {}
        return VideoRequest(
            prompt=self.prompt,
            image_url=frames.get("image_url") or coerce_rendered("image_url", self.image_url),
            end_image_url=frames.get("end_image_url") or coerce_rendered("end_image_url", self.end_image_url),
            duration=coerce_rendered("duration", self.duration),
            resolution=self.resolution,
            enable_prompt_expansion=coerce_rendered("enable_prompt_expansion", self.enable_prompt_expansion),
            fast_pretreatment=coerce_rendered("fast_pretreatment", self.fast_pretreatment),
            model=self.model,
            extra_body=rendered_mapping("extra_body", self.extra_body) or {},
        )

    def resolve_frames(self, dialect: Dialect) -> dict[str, ResolvedFrame]:
        """Frames in object storage, checked (exists, image type, size, vendor rules) and made URLs."""
        resolved = {}
        for name in FRAME_FIELDS:
            value = coerce_rendered(name, getattr(self, name))
            if is_object_frame(value):
                resolved[name] = resolve_frame(
                    name,
                    value,
                    conn_id=self.image_conn_id or None,
                    accepts_data_url=dialect.accepts_data_url,
                    vendor=dialect.name,
                    min_short_side=dialect.frame_min_short_side,
                    aspect_range=dialect.frame_aspect_range,
                )
        return resolved


@dataclass(frozen=True)
class CheckedRequest:
    """A request that passed every check before a submit, with what it will cost."""

    fields: RequestFields
    request: VideoRequest
    resolved: ResolvedRequest
    frames: Mapping[str, ResolvedFrame]
    #: None: no price is known for it.
    cost: Cost | None

    @property
    def model(self) -> str:
        """The catalogue model, or the vendor's own model name for a passed-through one."""
        return self.resolved.catalogue_model or self.resolved.model

    @property
    def what(self) -> str:
        """``hailuo-02 6 s 768P``: what is bought, in the words of a price list."""
        return f"{self.model} {self.request.duration} s {self.request.resolution}"

    def describe(self) -> str:
        """``hailuo-02 6 s 768P on ppinfra``."""
        return f"{self.what} on {self.resolved.vendor}"

    def estimate(self) -> str:
        """``hailuo-02 6 s 768P on ppinfra, est. CNY 1.80``: the submit's log line."""
        cost = self.cost
        estimate = f"est. {cost.currency} {money(cost.amount)}" if cost else "price unknown"
        return f"{self.describe()}, {estimate}"

    def normalized(self) -> dict[str, Any]:
        """
        The request with every field as the submit should get it, defaults filled in, for
        ``HailuoSubmitVideoOperator.partial(...).expand_kwargs(...)``.

        Frames stay where they live (the submit signs a fresh link when it runs; a signed link in
        XCom would be a credential, and stale by then); an ``ObjectStoragePath`` becomes its URI,
        and its connection ``image_conn_id``.
        """
        record = {f.name: getattr(self.request, f.name) for f in dataclasses.fields(self.request)}
        record["extra_body"] = dict(self.request.extra_body)
        conn_id = self.fields.image_conn_id or None
        for name in FRAME_FIELDS:
            given = coerce_rendered(name, getattr(self.fields, name))
            if name in self.frames and not isinstance(given, str):
                record[name] = self.frames[name].source
                conn_id = conn_id or _conn_id_of(given)
            elif name in self.frames:
                record[name] = given
        record["image_conn_id"] = conn_id
        return {key: record[key] for key in REQUEST_KEYS}


def _conn_id_of(path: Any) -> str | None:
    conn_id = getattr(path, "conn_id", None)
    if conn_id is None:
        conn_id = getattr(path, "storage_options", {}).get("conn_id")
    return conn_id


def connection_prices(hook: HailuoHook) -> Prices:
    """
    The prices of the hook's connection: its ``prices`` extra over the vendor's list.

    Raises ``HailuoPriceError`` for an extra that cannot be read.
    """
    settings = hook.settings
    return prices_for(hook.dialect.name, settings.prices, conn_id=settings.conn_id)


def check_request(fields: RequestFields, hook: HailuoHook, prices: Prices) -> CheckedRequest:
    """
    Every check the submit makes before it spends, and the price; nothing is sent to the service
    (frames are read from their store only).

    Raises ``HailuoValidationError`` naming the field and the rule; a store that cannot be reached
    raises its own error.
    """
    frames = fields.resolve_frames(hook.dialect)
    request = fields.build({name: frame.url for name, frame in frames.items()})
    resolved = hook.validate(request)  # the connection's vendor and model rules
    return CheckedRequest(fields, request, resolved, frames, prices.estimate(resolved))


def check_max_cost(checked: CheckedRequest, budget: Budget | None, prices: Prices) -> None:
    """
    Refuse one video above ``max_cost``, or one whose price nobody knows while a limit is set (a
    limit that cannot be checked must not be passed). Raises ``HailuoPriceError``.
    """
    if budget is None:
        return
    what, request = checked.describe(), checked.request
    if checked.cost is None:
        raise HailuoPriceError(
            f"No price is known for {what}, and max_cost is set: nothing was bought. To buy it, "
            + prices.how_to_price(checked.model, request.resolution, request.duration)
        )
    refusal = currency_mismatch("max_cost", budget, prices) or over_budget("max_cost", checked.cost, budget)
    if refusal:
        raise HailuoPriceError(f"Not bought: {what}, est. {refusal}")
