"""
The product's emulator CLI (``python -m airflow_provider_hailuo.emulator``), plus what benchmarks need
and the emulator does not have yet. Same flags, same output line; run as its own process so its CPU
is never counted against the client being measured.

Added here, without touching the product code:

- counter ``tcp_connections_opened`` in ``GET /_emulator/counters``: every TCP connection the HTTP
  server accepts (``aiohttp.web_protocol.RequestHandler.connection_made``);
- ``GET /_bench/schedule``: for each task, ``done_at`` = the CLOCK_MONOTONIC time (shared by every
  process on the machine, so comparable with a client's ``time.monotonic()``) at which it becomes
  SUCCEED/FAILED, from the task's own timings.
"""

from __future__ import annotations

import sys

from aiohttp import web, web_protocol

from airflow_provider_hailuo.emulator import __main__ as cli
from airflow_provider_hailuo.emulator import app as emulator_app

_states: list[emulator_app.EmulatorState] = []
_original_init = emulator_app.EmulatorState.__init__
_original_connection_made = web_protocol.RequestHandler.connection_made
_original_create_app = cli.create_app


def _init(self: emulator_app.EmulatorState, *args: object, **kwargs: object) -> None:
    _original_init(self, *args, **kwargs)  # type: ignore[arg-type]
    _states.append(self)


def _connection_made(self: web_protocol.RequestHandler, transport: object) -> None:
    _original_connection_made(self, transport)  # type: ignore[arg-type]
    for state in _states:
        state.count("tcp_connections_opened")


async def _schedule(request: web.Request) -> web.Response:
    state = request.app[emulator_app.STATE_KEY]
    with state._lock:
        tasks = list(state._tasks.values())
    data = {
        t.task_id: {"created": t.created, "done_at": t.created + t.queue_s + t.generation_s} for t in tasks
    }
    return web.json_response(data)


def _create_app(*args: object, **kwargs: object) -> web.Application:
    app = _original_create_app(*args, **kwargs)  # type: ignore[arg-type]
    app.router.add_get("/_bench/schedule", _schedule)
    return app


emulator_app.EmulatorState.__init__ = _init  # type: ignore[method-assign]
web_protocol.RequestHandler.connection_made = _connection_made  # type: ignore[method-assign]
cli.create_app = _create_app

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
