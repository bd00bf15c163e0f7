"""
Reading template-rendered operator fields: a template always renders text, an XCom may be anything.

The operators read their rendered values here (mappings, task ids, numbers and booleans typed as
text), so the same text means the same thing everywhere.
"""

from __future__ import annotations

import json
import re
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


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
#: ASCII digits only: ``str.isdigit`` also takes ``"²"`` (which ``int`` refuses) and ``"٦"`` (which
#: ``int`` reads as 6), so a rendered value would crash or be read as something it does not show.
_ASCII_NUMBER = re.compile(r"[0-9]+")
_BOOL_FIELDS = ("enable_prompt_expansion", "fast_pretreatment")
_FRAME_FIELDS = ("image_url", "end_image_url")


def coerce_rendered(name: str, value: Any) -> Any:
    """
    Turn what a Jinja template rendered (always a string) back into the type the API wants.

    ``duration="{{ params.duration }}"`` renders ``"10"``; the rules then see ``10``. Anything not
    plainly of the field's type is passed on unchanged, so the rules reject it naming the field
    (``6.5``, ``"ten"``, ``"²"``).
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if name == "duration" and _ASCII_NUMBER.fullmatch(text):
        return int(text)
    if name in _BOOL_FIELDS and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    if name in _FRAME_FIELDS and text.lower() in ("", "none"):
        return None
    return value
