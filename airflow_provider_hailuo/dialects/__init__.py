"""
The vendors' dialects, and which one a connection speaks.

The connection's ``api`` extra names the vendor; without it the host decides (MiniMax's and Novita's
own hosts), and anything else speaks the seed's API (PPInfra's). Operators, sensor and trigger never
name a vendor: they ask :func:`dialect_for` with what the connection holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from airflow_provider_hailuo.api import HailuoError, HailuoValidationError, VideoRequest
from airflow_provider_hailuo.dialects.base import Dialect, HttpCall, ResolvedRequest
from airflow_provider_hailuo.dialects.minimax import MiniMaxDialect
from airflow_provider_hailuo.dialects.novita import NovitaDialect
from airflow_provider_hailuo.dialects.ppinfra import PPInfraDialect

__all__ = [
    "DIALECTS",
    "Dialect",
    "HttpCall",
    "MiniMaxDialect",
    "NovitaDialect",
    "PPInfraDialect",
    "ResolvedRequest",
    "dialect_for",
    "dialects_of_family",
    "refuse_what_no_vendor_takes",
    "vendor_name",
]

DIALECTS: Mapping[str, type[Dialect]] = {
    dialect.name: dialect for dialect in (PPInfraDialect, NovitaDialect, MiniMaxDialect)
}
#: Hosts that say which vendor they are; any other host speaks PPInfra's API.
VENDOR_HOSTS: Mapping[str, str] = {
    "api.minimax.io": MiniMaxDialect.name,
    "api.minimaxi.com": MiniMaxDialect.name,
    "api.novita.ai": NovitaDialect.name,
}


def vendor_name(api: object, host: str) -> str:
    """The vendor a connection speaks: its ``api`` extra if set, else its host's."""
    chosen = api.strip().lower() if isinstance(api, str) else api
    if chosen in DIALECTS:
        return str(chosen)
    if chosen not in (None, ""):
        raise HailuoError(
            f"The connection's extra `api` is {api!r}: it must be one of {', '.join(DIALECTS)} "
            "(or absent, to choose by the host)"
        )
    hostname = urlsplit(host if "://" in host else f"https://{host}").hostname or ""
    return VENDOR_HOSTS.get(hostname.lower(), PPInfraDialect.name)


def dialects_of_family(family: str) -> list[str]:
    """The vendors (``api`` extra values) whose answers have the shape ``family``."""
    return [name for name, dialect in DIALECTS.items() if dialect.family == family]


def dialect_for(api: str | None, host: str, *, group_id: str | None = None) -> Dialect:
    """
    The dialect of a connection: ``api`` is its ``api`` extra, ``host`` its host (a URL or a name).

    ``group_id`` is the connection's ``group_id`` extra (MiniMax file retrieval; ignored elsewhere).
    """
    return DIALECTS[vendor_name(api, host)](group_id=group_id)


_EVERY_VENDOR = tuple(dialect() for dialect in DIALECTS.values())


def refuse_what_no_vendor_takes(request: VideoRequest) -> None:
    """
    Raise when no vendor would take a request, naming each vendor's reason.

    A DAG's literal values are checked when it is parsed, before its connection (and so its
    vendor) is looked up: what every vendor refuses can already fail there, and the rest is checked
    by the vendor's own dialect before the submit.
    """
    errors: list[HailuoValidationError] = []
    for dialect in _EVERY_VENDOR:
        try:
            dialect.validate(request)
        except HailuoValidationError as err:
            errors.append(err)
        else:
            return
    first = errors[0]
    vendors: dict[tuple[str, str, str | None], list[str]] = {}
    for refusal in errors:
        vendors.setdefault((refusal.field, refusal.condition, refusal.model), []).append(str(refusal.vendor))
    if len(vendors) == 1:
        raise HailuoValidationError(
            first.field,
            first.condition,
            first.value,
            model=first.model,
            vendor=", ".join(vendors[first.field, first.condition, first.model]),
        )
    reasons = [
        ("" if field == first.field else f"`{field}` ") + f"{condition} ({model} on {', '.join(names)})"
        for (field, condition, model), names in vendors.items()
    ]
    raise HailuoValidationError(first.field, "; ".join(reasons), first.value)
