"""
Novita AI's "v3 async" API (API.md 3b): PPInfra's wire, with Novita's current field names.

Novita's Hailuo-02 page names the first frame ``image`` (not ``image_url``) and adds a last frame
``end_image`` and ``fast_pretreatment``; a frame under a name the service ignores would buy a
text-to-video, so only the field names differ from PPInfra. Frames may be ``data:`` URLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from airflow_provider_hailuo.dialects.models import Offer
from airflow_provider_hailuo.dialects.ppinfra import PPInfraDialect


class NovitaDialect(PPInfraDialect):
    """Novita AI (``api.novita.ai``)."""

    name = "novita"
    console = "Novita AI's console (task list and billing)"
    accepts_data_url = True
    passthrough_frames = ("image", "end_image")
    offers: ClassVar[Mapping[str, Offer]] = {
        **PPInfraDialect.offers,
        "hailuo-02": Offer(
            text_name="minimax-hailuo-02",
            image_name="minimax-hailuo-02",
            first_frame="image",
            last_frame="end_image",
            fast_pretreatment=True,
        ),
    }
