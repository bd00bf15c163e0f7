"""
Live tests: the real service, real money. Registered here (the `live` marker) so the rest of the
suite needs no change; every test in this folder is skipped unless ``HAILUO_LIVE_CONN`` holds the
connection to use, as JSON (the form of ``AIRFLOW_CONN_HAILUO_DEFAULT``)::

    HAILUO_LIVE_CONN='{"conn_type": "hailuo", "host": "https://api.minimax.io",
                       "password": "<key>", "extra": {"api": "minimax"}}' \\
        .venv/bin/python -m pytest -m live tests/live
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

LIVE_CONN_VAR = "HAILUO_LIVE_CONN"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "live: runs against the real Hailuo service (costs money); needs HAILUO_LIVE_CONN"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every live test when no live connection is given (CI never has one)."""
    if os.environ.get(LIVE_CONN_VAR, "").strip():
        return
    skip = pytest.mark.skip(
        reason=f"live test: set {LIVE_CONN_VAR} to a hailuo connection (JSON); costs money"
    )
    for item in items:
        if item.get_closest_marker("live"):
            item.add_marker(skip)


@pytest.fixture
def live_conn(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """
    ``hailuo_default`` pointed at the real service. A malformed ``HAILUO_LIVE_CONN`` fails (someone
    asked for a live run); its text is never shown, since it holds the key.
    """
    text = os.environ.get(LIVE_CONN_VAR, "").strip()
    if not text:
        pytest.skip(f"{LIVE_CONN_VAR} is not set")
    try:
        conn = json.loads(text)
    except ValueError:
        pytest.fail(f"{LIVE_CONN_VAR} is not JSON", pytrace=False)
    if not isinstance(conn, dict) or not conn.get("password") or not conn.get("host"):
        pytest.fail(
            f"{LIVE_CONN_VAR} must be a JSON object with `host` and `password` (the key)", pytrace=False
        )
    conn.setdefault("conn_type", "hailuo")
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", json.dumps(conn))
    # Poll like a deployment would, not like the emulator tests (tests/conftest.py sets 0.2 s).
    monkeypatch.setenv("HAILUO_POLL_INTERVAL", "10")
    monkeypatch.setenv("HAILUO_RETRY_DELAY_SECONDS", "30")
    return conn
