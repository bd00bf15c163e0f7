"""
Novita's current field names for the "v3 async" API (docs/vendors.md §1).

Same paths and answers as PPInfra, but Hailuo-02 reads its first frame from ``image`` (an http(s)
URL or a ``data:image/...;base64,`` string) and its last frame from ``end_image``, and takes
``fast_pretreatment``. ``image_url`` is NOT read: a real Novita ignores it and makes a text-to-video,
so the emulator does the same (the body still records that it arrived). The 2.3 image-to-video
endpoints require ``image``; 2.3-Fast has no ``fast_pretreatment``.
"""

from __future__ import annotations

from airflow_provider_hailuo.emulator.dialects.v3async import V3Dialect, V3Endpoint, V3Profile

_EXPANSION = "enable_prompt_expansion"

PROFILE = V3Profile(
    name="novita",
    endpoints={
        "minimax-hailuo-02": V3Endpoint(
            first_frame="image", last_frame="end_image", booleans=(_EXPANSION, "fast_pretreatment")
        ),
        "minimax-hailuo-2.3-t2v": V3Endpoint(booleans=(_EXPANSION,)),
        "minimax-hailuo-2.3-i2v": V3Endpoint(
            first_frame="image", first_frame_required=True, booleans=(_EXPANSION, "fast_pretreatment")
        ),
        "minimax-hailuo-2.3-fast-i2v": V3Endpoint(
            first_frame="image",
            first_frame_required=True,
            booleans=(_EXPANSION,),
            refused_options=("fast_pretreatment",),
        ),
    },
    generic_first_frame="image",
    data_urls=True,
)

DIALECT = V3Dialect(PROFILE)
