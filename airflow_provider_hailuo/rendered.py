"""
Reading template-rendered operator fields: a template always renders text, an XCom may be anything.

The operators check their rendered values here, so the same text means the same thing everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_provider_hailuo.api import HailuoValidationError


def rendered_mapping(field_name: str, value: Any) -> Mapping[str, Any] | None:
    """A mapping, or the JSON text of one; None when unset (``None``, ``""`` or a rendered ``"None"``)."""
    if value is None or value in ("", "None"):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise HailuoValidationError(field_name, "must be a JSON object", value) from None
    if not isinstance(value, Mapping):
        raise HailuoValidationError(field_name, "must be a mapping of field name to value", value)
    return value


def rendered_task_id(value: Any) -> str:
    """
    The service's task id from upstream; an empty one (a submit that returned nothing, an unset
    XCom rendered as ``"None"``) fails at once instead of being polled or downloaded.
    """
    if value is None or not str(value).strip() or str(value) == "None":
        raise HailuoValidationError(
            "hailuo_task_id", "is empty: the upstream submit returned no task id", value
        )
    return str(value)
