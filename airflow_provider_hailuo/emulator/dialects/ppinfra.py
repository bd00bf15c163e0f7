"""
PPInfra's "v3 async" API (API.md sections 1-4 and 3b): the first frame of Hailuo-02 is ``image_url``.

PPInfra's current page for ``minimax-hailuo-02`` still names the first frame ``image_url`` and has
no last frame; a frame sent as ``image`` there is ignored (the task becomes a text-to-video, which is
what a client sending the wrong name would really buy). The 2.3 image-to-video endpoints read
``image``; ``aigc_watermark`` is a 2.3 option. Frames are http(s) URLs only: PPInfra does not
document ``data:`` URLs, so they are refused rather than guessed at.
"""

from __future__ import annotations

from airflow_provider_hailuo.emulator.dialects.v3async import V3Dialect, V3Endpoint, V3Profile

_EXPANSION = "enable_prompt_expansion"

PROFILE = V3Profile(
    name="ppinfra",
    endpoints={
        "minimax-hailuo-02": V3Endpoint(first_frame="image_url"),
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
    generic_first_frame="image_url",
    data_urls=False,
)

DIALECT = V3Dialect(PROFILE)
