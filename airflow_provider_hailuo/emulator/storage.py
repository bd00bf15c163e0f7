"""
The object storage behind the pre-signed download links, shared by every dialect.

``GET /_downloads/{task_id}.mp4?expires=&sig=`` needs no API key (a client that sends one anyway is
counted: it leaks its key to a storage host). It answers in storage's XML error shape, serves the
sample matching the task's request (a service-like clip with ``realistic_videos``; padded to
``video_bytes`` when set), and plays the download faults: expired links, bodies cut short or
mis-announced, HTML instead of video, CDN redirects, gzip or chunked framing, and videos of the
wrong duration or resolution or that do not decode.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

from aiohttp import web

from airflow_provider_hailuo.emulator.faults import MEDIA_ACTIONS, FaultRule
from airflow_provider_hailuo.emulator.mp4 import iter_video, video_size
from airflow_provider_hailuo.emulator.state import STATE_KEY, SUCCEEDED, EmulatorState

logger = logging.getLogger("airflow_provider_hailuo.emulator")

ROUTE = "/_downloads/{task_id:[0-9a-f]+}.mp4"
NOT_MP4_BODY = (
    b"<html><head><title>Service notice</title></head><body><h1>Please sign in to continue</h1></body></html>"
)


def storage_error(status: int, code: str, message: str) -> web.Response:
    """Object storage answers in XML, not in the API's JSON shape (like S3's AccessDenied)."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


def _redirect(request: web.Request, status: int, hops_left: int) -> web.Response:
    """``status`` to the same object, ``hops_left`` more redirects to go (like a CDN edge)."""
    query = {k: v for k, v in request.query.items() if k not in ("hop", "code")}
    query.update({"hop": str(hops_left), "code": str(status)})
    location = f"{request.scheme}://{request.host}{request.path}?{urlencode(query)}"
    return web.Response(status=status, headers={"Location": location})


def _hop(request: web.Request) -> tuple[int, int] | None:
    """``(hops_left, status)`` of a request that followed a redirect of ours, else None."""
    try:
        hop, code = int(request.query["hop"]), int(request.query.get("code", "302"))
    except (KeyError, ValueError):
        return None
    return (hop, code) if hop >= 0 else None


async def download(request: web.Request) -> web.StreamResponse:
    """A pre-signed link; no API key involved."""
    state = request.app[STATE_KEY]
    state.count("downloads")
    if "Authorization" in request.headers:
        state.count("download_auth_headers")  # a client leaking its API key to storage
    task_id = request.match_info["task_id"]
    problem = state.check_link(task_id, request.query.get("expires", ""), request.query.get("sig", ""))
    if problem == "expired":
        return storage_error(403, "AccessDenied", "Request has expired")
    if problem is not None:
        return storage_error(403, "SignatureDoesNotMatch", "The request signature does not match")
    task = state.get_task(task_id)
    if task is None or task.phase(time.monotonic())[0] != SUCCEEDED:
        return storage_error(404, "NoSuchKey", "The specified key does not exist.")

    hop = _hop(request)
    if hop is not None and hop[0] > 0:
        return _redirect(request, hop[1], hop[0] - 1)
    fault = state.take_fault("download") if hop is None else None  # the end of a redirect is served
    variant = fault.action if fault is not None and fault.action in MEDIA_ACTIONS else None
    if state.config.realistic_videos:
        # Reading (or, the first time, encoding) a clip of megabytes must not stall the event loop.
        video = await asyncio.to_thread(state.video_of, task, variant)
    else:
        video = state.video_of(task, variant)
    cfg = state.config
    size = video_size(cfg.video_bytes, len(video.data))

    def body() -> Iterator[bytes]:
        return iter_video(cfg.video_bytes, cfg.chunk_size, video.data)

    if fault is None or fault.action in MEDIA_ACTIONS:
        return await _stream(request, state, body(), announced=size, limit=size)
    return await _faulted(request, state, fault, body, size)


async def _faulted(
    request: web.Request,
    state: EmulatorState,
    fault: FaultRule,
    body: Callable[[], Iterator[bytes]],
    size: int,
) -> web.StreamResponse:
    action = fault.action
    if action == "status":
        return state.dialect.fault_status(fault)
    if action == "expire":
        return storage_error(403, "AccessDenied", "Request has expired")
    if action == "not_mp4":
        return web.Response(body=NOT_MP4_BODY, content_type="video/mp4")
    if action == "redirect":
        assert fault.status is not None
        return _redirect(request, fault.status, fault.hops - 1)
    if action == "cut":
        limit = size // 2 if fault.after_bytes is None else min(fault.after_bytes, size)
        return await _stream(request, state, body(), announced=size, limit=limit)
    if action == "wrong_length":
        return await _stream(request, state, body(), announced=size + fault.delta, limit=size)
    if action == "chunked":
        return await _stream(request, state, body(), announced=None, limit=size)
    if action == "gzip":
        if fault.content_length:
            packed = zlib.compress(b"".join(body()), wbits=31)
            return await _stream(request, state, iter([packed]), len(packed), len(packed), gzip=True)
        return await _stream(request, state, _gzip(body()), announced=None, limit=None, gzip=True)
    # "delay"
    await asyncio.sleep(fault.seconds)
    return await _stream(request, state, body(), announced=size, limit=size)


def _gzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """A gzip stream of ``chunks``, compressed as it is sent (like a proxy's on-the-fly gzip)."""
    packer = zlib.compressobj(wbits=31)
    for chunk in chunks:
        packed = packer.compress(chunk)
        if packed:
            yield packed
    yield packer.flush()


async def _stream(
    request: web.Request,
    state: EmulatorState,
    chunks: Iterator[bytes],
    announced: int | None,
    limit: int | None,
    gzip: bool = False,
) -> web.StreamResponse:
    """
    Stream the video chunk by chunk (``resp.write`` waits for the socket, so memory stays flat).

    ``announced`` is the Content-Length sent (None: chunked, no length), ``limit`` the bytes really
    sent (None: all); when they differ the connection is closed after ``limit`` bytes, which the
    client sees as a body cut short.
    """
    resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
    if gzip:
        resp.headers["Content-Encoding"] = "gzip"
    if announced is None:
        resp.enable_chunked_encoding()
    else:
        resp.content_length = announced
        if limit != announced:
            resp.force_close()
    await resp.prepare(request)
    sent = 0
    try:
        for chunk in chunks:
            if limit is not None and sent >= limit:
                break
            piece = chunk if limit is None or sent + len(chunk) <= limit else chunk[: limit - sent]
            await resp.write(piece)
            sent += len(piece)
        if announced is None:
            await resp.write_eof()
    except ConnectionError:
        logger.info("download of %s: client went away after %d bytes", request.match_info["task_id"], sent)
        return resp
    if announced is None or sent == announced:
        state.count("download_completes")
    return resp
