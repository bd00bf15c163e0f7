"""
The control API under ``/_emulator/`` (no key: a local development tool, bound to loopback).

Tests and scripts in other processes use it to script faults, change timings, read counters, and
see exactly which body fields each task received (``GET /_emulator/tasks``): the only way to prove
at the wire that a frame arrived under the name the vendor reads.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from airflow_provider_hailuo.emulator.faults import parse_rules
from airflow_provider_hailuo.emulator.state import STATE_KEY


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    return json.loads(raw) if raw.strip() else {}


def _control_error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def get_counters(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].counters())


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": request.app[STATE_KEY].faults.snapshot()})


async def add_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        state.add_faults(parse_rules(await _json_body(request)))
    except ValueError as err:
        return _control_error(str(err))
    return web.json_response({"faults": state.faults.snapshot()})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE_KEY].faults.clear()
    return web.json_response({"faults": []})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"ok": True})


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].config.to_json())


async def set_config(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        changes = await _json_body(request)
        if not isinstance(changes, dict):
            raise ValueError("config must be a JSON object")
        config = state.configure(**changes)
    except (ValueError, TypeError) as err:
        return _control_error(str(err))
    return web.json_response(config.to_json())


async def get_tasks(request: web.Request) -> web.Response:
    """Every task: ``body`` (as received), ``fields`` (its names), ``spec`` (what was understood)."""
    tasks = request.app[STATE_KEY].tasks
    return web.json_response({"tasks": [task.to_json() for task in tasks.values()]})


async def get_task(request: web.Request) -> web.Response:
    task = request.app[STATE_KEY].get_task(request.match_info["task_id"])
    if task is None:
        return _control_error("no such task", status=404)
    return web.json_response(task.to_json())


async def get_submissions(request: web.Request) -> web.Response:
    """Every submit attempt, refused ones included: path, body, HTTP status, task id (or null)."""
    return web.json_response({"submissions": request.app[STATE_KEY].submissions()})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/health", health)
    app.router.add_get("/_emulator/counters", get_counters)
    app.router.add_get("/_emulator/faults", get_faults)
    app.router.add_post("/_emulator/faults", add_faults)
    app.router.add_delete("/_emulator/faults", clear_faults)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_get("/_emulator/config", get_config)
    app.router.add_post("/_emulator/config", set_config)
    app.router.add_get("/_emulator/tasks", get_tasks)
    app.router.add_get("/_emulator/tasks/{task_id}", get_task)
    app.router.add_get("/_emulator/submissions", get_submissions)
