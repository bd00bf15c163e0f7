"""
``python -m airflow_provider_hailuo.emulator``: serve the emulator until SIGINT/SIGTERM.

Prints exactly one line on stdout, ``Hailuo emulator listening on http://HOST:PORT`` with the real
port (``--port 0`` picks a free one; ``https://`` with ``--tls``), which scripts parse to find it;
logs go to stderr. ``--api`` picks the dialect (ppinfra, novita, minimax); ``--realistic-videos``
serves service-sized clips instead of the tiny samples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_provider_hailuo.emulator.app import DEFAULT_API_KEY, EmulatorConfig, EmulatorState, create_app
from airflow_provider_hailuo.emulator.dialects import DEFAULT_API, DIALECT_NAMES
from airflow_provider_hailuo.emulator.faults import parse_rules
from airflow_provider_hailuo.emulator.server import start_sites
from airflow_provider_hailuo.emulator.tls import make_tls

_SIZE_SUFFIXES = {"k": 1024, "m": 1024**2, "g": 1024**3}


def _generation_seconds(text: str) -> float | tuple[float, float]:
    """``4`` (fixed) or ``2:6`` (a range drawn per task)."""
    try:
        if ":" in text:
            low, high = text.split(":", 1)
            return float(low), float(high)
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SECONDS or MIN:MAX, got {text!r}") from None


def _size(text: str) -> int:
    """A byte count, optionally with a binary suffix: ``1048576``, ``100M``, ``1G``."""
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = 1
    if value and value[-1] in _SIZE_SUFFIXES:
        factor, value = _SIZE_SUFFIXES[value[-1]], value[:-1]
    try:
        return int(value) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a byte count such as 1048576 or 100M, got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_hailuo.emulator",
        description="A local stand-in for the MiniMax Hailuo video APIs (PPInfra, Novita, MiniMax).",
    )
    parser.add_argument(
        "--api", choices=DIALECT_NAMES, default=DEFAULT_API, help=f"dialect spoken (default {DEFAULT_API})"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default 8000)")
    parser.add_argument(
        "--api-key", default=DEFAULT_API_KEY, help=f"accepted key (default {DEFAULT_API_KEY})"
    )
    parser.add_argument("--queue-seconds", type=float, default=1.0, help="service seconds QUEUED (default 1)")
    parser.add_argument(
        "--generation-seconds",
        type=_generation_seconds,
        default=4.0,
        help="service seconds PROCESSING: S or MIN:MAX (default 4)",
    )
    parser.add_argument("--link-ttl", type=float, default=3600.0, help="download link TTL, service seconds")
    parser.add_argument("--time-scale", type=float, default=1.0, help="divides every duration (default 1)")
    parser.add_argument("--video-bytes", type=_size, default=None, help="pad videos to this size (e.g. 100M)")
    parser.add_argument(
        "--realistic-videos",
        action="store_true",
        help="serve service-like clips (24 fps, ~1 MB/s at 1080P; made with PyAV on first use and "
        "cached) instead of the tiny samples",
    )
    parser.add_argument(
        "--submits-per-minute",
        type=int,
        default=None,
        help="the account's allowance: submits accepted in any minute of service time (default: no limit)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-task random draws (default 0)")
    parser.add_argument(
        "--fault", action="append", default=[], metavar="JSON", help="a fault rule (or list); repeatable"
    )
    parser.add_argument("--download-host", default=None, help="serve download links on this address too")
    parser.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a certificate from a throw-away CA"
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        default=None,
        help="with --tls: write the CA bundle here (default: a temp file)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level on stderr (default INFO)")
    return parser


def _state_from_args(args: argparse.Namespace) -> EmulatorState:
    settings: dict[str, Any] = {
        "api_key": args.api_key,
        "queue_seconds": args.queue_seconds,
        "generation_seconds": args.generation_seconds,
        "link_ttl_seconds": args.link_ttl,
        "time_scale": args.time_scale,
        "video_bytes": args.video_bytes,
        "realistic_videos": args.realistic_videos,
        "seed": args.seed,
        "api": args.api,
        "submits_per_minute": args.submits_per_minute,
    }
    state = EmulatorState(EmulatorConfig(**settings))
    for text in args.fault:
        state.add_faults(parse_rules(text))
    return state


async def _serve(args: argparse.Namespace, state: EmulatorState, ssl_context: ssl.SSLContext | None) -> None:
    sites = await start_sites(create_app(state), state, args.host, args.port, args.download_host, ssl_context)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"Hailuo emulator listening on {sites.url}", flush=True)
    if sites.download_url != sites.url:
        logging.getLogger("airflow_provider_hailuo.emulator").info("download links on %s", sites.download_url)
    try:
        await stop.wait()
    finally:
        await sites.runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        state = _state_from_args(args)
    except ValueError as err:
        parser.error(str(err))
    ssl_context = None
    if args.tls:
        ca_file = args.ca_file or Path(tempfile.mkdtemp(prefix="hailuo-emulator-tls-")) / "ca.pem"
        ssl_context = make_tls([args.host, args.download_host or ""], ca_file).context
        logging.getLogger("airflow_provider_hailuo.emulator").info("TLS: CA bundle written to %s", ca_file)
    elif args.ca_file is not None:
        parser.error("--ca-file needs --tls")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, state, ssl_context))
    return 0


if __name__ == "__main__":
    sys.exit(main())
