"""
The record beside each landed video (``<name>.json``): what was asked, who ran it, what arrived.

Content teams search, audit and disclose AI-generated media from this file, so it holds the
request, the service's task id, the Airflow run, times, checksums and the video checks. It is
plain JSON and never holds a secret: no key, and no URL query string (a pre-signed link carries
its credentials there). It is written last, so its presence means the video and poster are whole.

The submit operator publishes its validated request with :func:`request_record` (XCom key
:data:`REQUEST_XCOM_KEY`); the download reads it back to know what the video should be.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: The extra XCom key under which HailuoSubmitVideoOperator publishes its validated request.
REQUEST_XCOM_KEY = "hailuo_request"
#: Bumped when a key changes meaning; readers can tell old records apart.
MANIFEST_VERSION = 1
#: Request fields that hold a URL (their query strings may carry credentials).
URL_FIELDS = ("image_url", "end_image_url")


def now_iso() -> str:
    """UTC, second precision, ISO 8601: what the manifest's times look like."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def clean_url(url: Any) -> Any:
    """
    A URL without query string, fragment or user info; a ``data:`` URL reduced to its media type.

    Pre-signed object-store links carry their signature (a credential) in the query; a data URL
    would copy a whole image into every XCom and manifest.
    """
    if not isinstance(url, str) or not url:
        return url
    if url.startswith("data:"):
        return url.split(",", 1)[0] + ",…"
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def request_record(request: Any, *, vendor: str | None = None) -> dict[str, Any]:
    """
    A validated ``VideoRequest`` as plain JSON for XCom and the manifest, URLs cleaned.

    Read from the dataclass's fields, so a field added to the request is recorded without a change
    here. ``extra_body`` values are kept: they are request parameters, not credentials.
    """
    if dataclasses.is_dataclass(request) and not isinstance(request, type):
        record = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
    else:
        record = dict(request)
    for name in URL_FIELDS:
        if name in record:
            record[name] = clean_url(record[name])
    if "extra_body" in record:
        record["extra_body"] = dict(record["extra_body"] or {})
    record["vendor"] = vendor
    record["submitted_at"] = now_iso()
    return json.loads(json.dumps(record, default=str))


def vendor_of(hook: Any) -> str | None:
    """The vendor a hook's connection speaks, or None if it cannot be told without failing the task."""
    try:
        settings = hook.settings
    except Exception:
        return None
    try:
        from airflow_provider_hailuo.dialects import vendor_name
    except ImportError:  # a provider without dialects speaks the one API it knows
        return getattr(settings, "api", None)
    try:
        return str(vendor_name(settings.api, settings.host))
    except Exception:
        return None


def frame_uri(request: Mapping[str, Any] | None) -> str | None:
    """The first frame's location when it came from object storage (``s3://``, ``gs://``...), else None."""
    url = (request or {}).get("image_url")
    if not isinstance(url, str) or url.startswith(("data:", "http://", "https://")):
        return None
    return url if "://" in url else None


def build_manifest(
    *,
    video: Mapping[str, Any],
    request: Mapping[str, Any] | None,
    service_task_id: str,
    airflow: Mapping[str, Any],
    finished_at: str | None,
    checks: Mapping[str, Any] | None,
    poster_uri: str | None,
) -> dict[str, Any]:
    """The manifest's content; ``video`` holds ``uri``, ``bytes``, ``sha256``, ``content_type``."""
    request = dict(request) if request else None
    submitted_at = request.pop("submitted_at", None) if request else None
    estimated_cost = request.pop("estimated_cost", None) if request else None
    return {
        "manifest_version": MANIFEST_VERSION,
        "generator": "airflow-provider-hailuo",
        "ai_generated": True,
        "video": {
            "uri": video["uri"],
            "bytes": video["bytes"],
            "sha256": video["sha256"],
            "content_type": video.get("content_type"),
        },
        "poster_uri": poster_uri,
        "request": request,
        "service": {"task_id": service_task_id, "vendor": (request or {}).get("vendor")},
        "airflow": dict(airflow),
        "times": {"submitted": submitted_at, "finished": finished_at, "landed": now_iso()},
        "checks": dict(checks) if checks else None,
        # {"amount", "currency"} as the submit estimated it; None: no price was known.
        "estimated_cost": estimated_cost,
    }


def dumps(manifest: Mapping[str, Any]) -> bytes:
    """Stable, readable JSON bytes (sorted keys keep diffs of two runs small)."""
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
