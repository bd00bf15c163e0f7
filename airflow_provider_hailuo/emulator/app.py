"""
The emulator's ``aiohttp.web`` application: one dialect's API, the shared storage, the control API.

It answers the endpoints of the dialect chosen by ``EmulatorConfig.api`` with the JSON shapes of
docs/vendors.md, so a DAG, the test-suite or a benchmark can run offline against any of the three
vendors. The wire code is the emulator's own (``dialects/``, ``spec.py``), written from the vendors'
contracts (docs/vendors.md) and never shared with the product: a stand-in that shares the client's
wire code can only agree with it.

The names other code imports from here (``EmulatorConfig``, ``EmulatorState``, ``STATE_KEY``,
``DEFAULT_API_KEY``, ``create_app``) stay importable from this module.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from airflow_provider_hailuo.emulator import control, storage
from airflow_provider_hailuo.emulator.config import DEFAULT_API_KEY, RUNTIME_SETTINGS, EmulatorConfig
from airflow_provider_hailuo.emulator.state import STATE_KEY, EmulatorState, Task

__all__ = [
    "DEFAULT_API_KEY",
    "RUNTIME_SETTINGS",
    "STATE_KEY",
    "EmulatorConfig",
    "EmulatorState",
    "Task",
    "create_app",
]

logger = logging.getLogger("airflow_provider_hailuo.emulator")


@web.middleware
async def observe(request: web.Request, handler: Any) -> web.StreamResponse:
    """Log every request (method, path, status; never headers); count them and error statuses."""
    state = request.app[STATE_KEY]
    if not request.path.startswith("/_emulator/"):
        state.count("requests")  # every call to the API or its storage, whatever its route
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # unknown route, wrong method: answer in the dialect's error shape
        response = state.dialect.http_error(exc.status, exc.reason)
    status = response.status
    if status >= 400 and not request.path.startswith("/_emulator/"):
        state.count(f"status_{status}")
    logger.info("%s %s -> %d", request.method, request.path, status)
    return response


def create_app(state: EmulatorState | None = None, **config: Any) -> web.Application:
    """The application; pass a ``state`` to share it, or settings (``EmulatorConfig`` fields)."""
    app = web.Application(middlewares=[observe])
    app[STATE_KEY] = state if state is not None else EmulatorState(EmulatorConfig(**config))
    app[STATE_KEY].dialect.add_routes(app)
    app.router.add_get(storage.ROUTE, storage.download)
    control.add_routes(app)
    return app
