"""
PPInfra's "v3 async" API (docs/vendors.md §1-4): Hailuo-02's frames are ``image`` and ``end_image``.

PPInfra's current page for ``minimax-hailuo-02`` (docs/vendors.md §1) names the first frame ``image`` and the
last frame ``end_image`` (http(s) URLs or ``data:image/...;base64,`` strings) and has
``fast_pretreatment``, like Novita's. The seed's ``image_url`` is gone from it: a body carrying it
is refused with 400 ``INVALID_REQUEST_BODY`` (what a stricter service does with an unknown field;
either way it is never read as a frame). The 2.3 image-to-video endpoints read ``image``;
``aigc_watermark`` is a 2.3 option.
"""

from __future__ import annotations

from airflow_provider_hailuo.emulator.dialects.v3async import V3Dialect, V3Endpoint, V3Profile

_EXPANSION = "enable_prompt_expansion"

PROFILE = V3Profile(
    name="ppinfra",
    endpoints={
        "minimax-hailuo-02": V3Endpoint(
            first_frame="image",
            last_frame="end_image",
            booleans=(_EXPANSION, "fast_pretreatment"),
            retired_fields=("image_url",),
        ),
        "minimax-hailuo-2.3-t2v": V3Endpoint(booleans=(_EXPANSION, "aigc_watermark")),
        "minimax-hailuo-2.3-i2v": V3Endpoint(
            first_frame="image",
            first_frame_required=True,
            booleans=(_EXPANSION, "fast_pretreatment", "aigc_watermark"),
        ),
        "minimax-hailuo-2.3-fast-i2v": V3Endpoint(
            first_frame="image",
            first_frame_required=True,
            booleans=(_EXPANSION, "aigc_watermark"),
            refused_options=("fast_pretreatment",),
        ),
    },
    generic_first_frame="image",
    data_urls=True,
)

DIALECT = V3Dialect(PROFILE)
