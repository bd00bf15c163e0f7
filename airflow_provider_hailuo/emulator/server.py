"""
Run the emulator: in a background thread (pytest fixtures, the demo, benchmarks) or in the foreground
(``python -m airflow_provider_hailuo.emulator``).

The thread owns its own event loop, so synchronous code (``requests``, Airflow's sync hooks) and
asynchronous code (triggers on another loop) can both talk to it over real loopback HTTP(S).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import shutil
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from airflow_provider_hailuo.emulator.app import EmulatorConfig, EmulatorState, create_app
from airflow_provider_hailuo.emulator.faults import parse_rules
from airflow_provider_hailuo.emulator.tls import make_tls

logger = logging.getLogger("airflow_provider_hailuo.emulator")


def http_url(host: str, port: int, tls: bool = False) -> str:
    """``http(s)://host:port``, with brackets around an IPv6 literal."""
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Sites:
    """What :func:`start_sites` started: the runner to clean up and the URLs it serves."""

    runner: web.AppRunner
    url: str
    port: int
    download_url: str


async def _add_site(runner: web.AppRunner, host: str, port: int, ssl_context: ssl.SSLContext | None) -> int:
    """Start one TCPSite and return the port it really got (``port=0`` picks a free one)."""
    before = len(runner.addresses)
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    return int(runner.addresses[before][1])


async def start_sites(
    app: web.Application,
    state: EmulatorState,
    host: str,
    port: int,
    download_host: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Sites:
    """
    Serve ``app`` on ``host:port``, and on ``download_host`` too when given (HTTPS with
    ``ssl_context``).

    Download links then point at the second address (the same port number when it is free), so a
    client can be seen to treat the storage host as a different host from the API: no API key sent.
    """
    for name in filter(None, (host, download_host)):
        if not is_loopback(name):
            logger.warning("the emulator accepts any request and is bound to %s, not loopback", name)
    tls = ssl_context is not None
    runner = web.AppRunner(app, access_log=None)  # the app's middleware logs, without headers
    await runner.setup()
    try:
        real_port = await _add_site(runner, host, port, ssl_context)
        url = http_url(host, real_port, tls)
        download_url = url
        if download_host:
            try:
                download_port = await _add_site(runner, download_host, real_port, ssl_context)
            except OSError:
                download_port = await _add_site(runner, download_host, 0, ssl_context)
            download_url = http_url(download_host, download_port, tls)
            state.download_base_url = download_url
    except BaseException:
        await runner.cleanup()
        raise
    return Sites(runner=runner, url=url, port=real_port, download_url=download_url)


class EmulatorServer:
    """
    The emulator on a background thread with its own event loop.

    ``config`` takes :class:`EmulatorConfig` fields (``api`` = ``ppinfra`` (default), ``novita`` or
    ``minimax``; ``api_key``, ``queue_seconds``, ``generation_seconds``, ``link_ttl_seconds``,
    ``time_scale``, ``video_bytes``, ``seed``, ``chunk_size``, ``realistic_videos``,
    ``submits_per_minute``) plus ``faults`` (a list of rule dicts). ``tls=True`` serves HTTPS with a
    certificate from a throw-away CA whose bundle is at :attr:`ca_path`. Use it as a context manager,
    or call :meth:`start` / :meth:`stop`. Control methods act on the shared state directly
    (thread-safe).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        download_host: str | None = None,
        tls: bool = False,
        **config: Any,
    ) -> None:
        faults = config.pop("faults", None) or []
        self.host = host
        self.download_host = download_host
        self.tls = tls
        self._requested_port = port
        self.state = EmulatorState(EmulatorConfig(**config))
        self.state.add_faults(parse_rules(list(faults)))
        self._sites: Sites | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._tls_dir: str | None = None
        self._ca_path: str | None = None
        self._ssl_context: ssl.SSLContext | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> EmulatorServer:
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        if self.tls:
            self._tls_dir = tempfile.mkdtemp(prefix="hailuo-emulator-tls-")
            material = make_tls([self.host, self.download_host or ""], Path(self._tls_dir) / "ca.pem")
            self._ssl_context, self._ca_path = material.context, material.ca_path
        self._thread = threading.Thread(target=self._run, name="hailuo-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("emulator did not start within 30 s")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            self._remove_tls()
            raise RuntimeError(f"emulator failed to start: {self._error}") from self._error
        logger.info("Hailuo emulator (%s) listening on %s", self.api, self.url)
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as err:  # surfaced to start() if it happened before ready
            self._error = err
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        app = create_app(self.state)
        self._sites = await start_sites(
            app, self.state, self.host, self._requested_port, self.download_host, self._ssl_context
        )
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await self._sites.runner.cleanup()

    def stop(self) -> None:
        """Stop serving and join the thread; safe to call twice. The CA bundle file goes too."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout=30)
        self._thread = None
        self._remove_tls()

    def _remove_tls(self) -> None:
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where it listens ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:43123`` (``https://`` with ``tls=True``)."""
        return self._started().url

    @property
    def port(self) -> int:
        return self._started().port

    @property
    def download_url(self) -> str:
        """The base URL download links point at (``url`` unless ``download_host`` was given)."""
        return self._started().download_url

    @property
    def ca_path(self) -> str:
        """The PEM CA bundle that verifies this server's certificate (``tls=True`` only)."""
        if self._ca_path is None:
            raise RuntimeError("the emulator serves HTTPS only with tls=True (and once started)")
        return self._ca_path

    @property
    def api(self) -> str:
        """The dialect spoken: ``ppinfra``, ``novita`` or ``minimax``."""
        return self.state.config.api

    @property
    def api_key(self) -> str:
        return self.state.config.api_key

    def _started(self) -> Sites:
        if self._sites is None:
            raise RuntimeError("emulator not started")
        return self._sites

    # -- control -------------------------------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        return self.state.counters()

    def add_fault(self, **rule: Any) -> None:
        """Append one fault rule, e.g. ``add_fault(endpoint="submit", action="status", status=503)``."""
        self.state.add_faults(parse_rules(rule))

    def clear_faults(self) -> None:
        self.state.faults.clear()

    def reset(self) -> None:
        """Forget tasks, submissions, counters and faults; settings stay as they are."""
        self.state.reset()

    def configure(self, **config: Any) -> EmulatorConfig:
        """Change run-time settings (``RUNTIME_SETTINGS``); tasks already submitted keep their timings."""
        return self.state.configure(**config)

    def tasks(self) -> dict[str, dict[str, Any]]:
        """Every task as the control API shows it: ``body``, ``fields``, ``spec``, ``phase``..."""
        return {task_id: task.to_json() for task_id, task in self.state.tasks.items()}

    def task_body(self, task_id: str) -> dict[str, Any]:
        """The JSON body the submit of ``task_id`` carried, exactly as received (KeyError if unknown)."""
        return self.state.tasks[task_id].to_json()["body"]

    def submissions(self) -> list[dict[str, Any]]:
        """Every submit attempt, refused ones included: path, body, HTTP status, task id (or None)."""
        return self.state.submissions()
