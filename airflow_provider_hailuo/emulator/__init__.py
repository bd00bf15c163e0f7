"""
A local emulator of the Hailuo-02 video API, for offline DAG development, tests, demos and benchmarks.

In a test::

    with EmulatorServer(queue_seconds=0.1, generation_seconds=0.5) as emulator:
        requests.post(f"{emulator.url}/v3/async/minimax-hailuo-02", ...)

Other dialects: ``EmulatorServer(api="novita")`` (Novita's field names) or ``api="minimax"``
(MiniMax's ``/v1/video_generation``); HTTPS with ``tls=True`` (CA bundle at ``server.ca_path``).
Which body fields each task received: ``server.tasks()`` or ``GET /_emulator/tasks``.

From a shell: ``python -m airflow_provider_hailuo.emulator --port 8000 [--api minimax] [--tls]``.
"""

from __future__ import annotations

from airflow_provider_hailuo.emulator.app import DEFAULT_API_KEY, EmulatorConfig, EmulatorState, create_app
from airflow_provider_hailuo.emulator.dialects import DIALECT_NAMES
from airflow_provider_hailuo.emulator.faults import FaultRule, parse_rules
from airflow_provider_hailuo.emulator.mp4 import (
    FRAME_SIZES,
    iter_video,
    looks_like_mp4,
    sample_bytes,
    sample_for,
    undecodable_bytes,
    video_size,
)
from airflow_provider_hailuo.emulator.server import EmulatorServer

__all__ = [
    "DEFAULT_API_KEY",
    "DIALECT_NAMES",
    "FRAME_SIZES",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorState",
    "FaultRule",
    "create_app",
    "iter_video",
    "looks_like_mp4",
    "parse_rules",
    "sample_bytes",
    "sample_for",
    "undecodable_bytes",
    "video_size",
]
