"""
How the emulated service behaves: which dialect it speaks, its timings, link lifetime, video size.

Durations are "service seconds"; ``time_scale`` divides them into real seconds (``time_scale=10``
makes a 4 s generation take 0.4 s), so the same scenario runs fast in tests and realistically in a
demo. ``submits_per_minute`` is the account's allowance: at most that many submits are accepted in
any minute of service time (``60 / time_scale`` real seconds); the others are refused the vendor's
way and create nothing. ``generation_seconds`` may be a ``(min, max)`` range, drawn per task from
``random.Random(seed)`` so runs are reproducible. ``realistic_videos`` serves clips shaped like the
service's (megabytes at 24 fps) instead of the tiny samples, so that what a client spends checking
a video can be measured.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from airflow_provider_hailuo.emulator.dialects import DEFAULT_API, DIALECT_NAMES
from airflow_provider_hailuo.emulator.mp4 import DEFAULT_CHUNK_SIZE, check_padding
from airflow_provider_hailuo.emulator.realistic import realistic_available

DEFAULT_API_KEY = "emulator-key"
#: Settings ``configure()`` / ``POST /_emulator/config`` may change while the server runs (the
#: dialect is not one of them: routes are laid out when the app is built).
RUNTIME_SETTINGS = (
    "queue_seconds",
    "generation_seconds",
    "link_ttl_seconds",
    "time_scale",
    "video_bytes",
    "realistic_videos",
    "submits_per_minute",
)


@dataclass(frozen=True)
class EmulatorConfig:
    """The settings of one emulator; see the module docstring. ``api``: ppinfra, novita or minimax."""

    api_key: str = DEFAULT_API_KEY
    queue_seconds: float = 1.0
    generation_seconds: float | tuple[float, float] = 4.0
    link_ttl_seconds: float = 3600.0
    time_scale: float = 1.0
    video_bytes: int | None = None
    seed: int | None = 0
    chunk_size: int = DEFAULT_CHUNK_SIZE
    api: str = DEFAULT_API
    realistic_videos: bool = False
    submits_per_minute: int | None = None

    def __post_init__(self) -> None:
        if self.api not in DIALECT_NAMES:
            raise ValueError(f"api must be one of {', '.join(DIALECT_NAMES)}, got {self.api!r}")
        if not isinstance(self.api_key, str) or not self.api_key:
            raise ValueError("api_key must be a non-empty string")
        gen = self.generation_seconds
        if isinstance(gen, list | tuple):
            if len(gen) != 2:
                raise ValueError(f"generation_seconds range must be (min, max), got {gen!r}")
            low, high = (_non_negative("generation_seconds", v) for v in gen)
            if low > high:
                raise ValueError(f"generation_seconds range has min > max: {gen!r}")
            object.__setattr__(self, "generation_seconds", (low, high))
        else:
            object.__setattr__(self, "generation_seconds", _non_negative("generation_seconds", gen))
        object.__setattr__(self, "queue_seconds", _non_negative("queue_seconds", self.queue_seconds))
        object.__setattr__(self, "link_ttl_seconds", _non_negative("link_ttl_seconds", self.link_ttl_seconds))
        scale = _non_negative("time_scale", self.time_scale)
        if scale == 0:
            raise ValueError("time_scale must be > 0")
        object.__setattr__(self, "time_scale", scale)
        if self.video_bytes is not None:
            if isinstance(self.video_bytes, bool) or not isinstance(self.video_bytes, int):
                raise ValueError(f"video_bytes must be an integer, got {self.video_bytes!r}")
            check_padding(self.video_bytes)  # refuses sizes a free box cannot pad to
        if not isinstance(self.realistic_videos, bool):
            raise ValueError(f"realistic_videos must be true or false, got {self.realistic_videos!r}")
        if self.realistic_videos and not realistic_available():
            raise ValueError(
                "realistic_videos needs PyAV to make them: pip install 'airflow-provider-hailuo[media]'"
            )
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size <= 0:
            raise ValueError("chunk_size must be a positive integer")
        limit = self.submits_per_minute
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"submits_per_minute must be a positive integer or null, got {limit!r}")

    def real_seconds(self, service_seconds: float) -> float:
        return service_seconds / self.time_scale

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON, without the API key (the control API needs no key, so it shows none)."""
        data = dataclasses.asdict(self)
        data.pop("api_key")
        if isinstance(self.generation_seconds, tuple):
            data["generation_seconds"] = list(self.generation_seconds)
        return data


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)
