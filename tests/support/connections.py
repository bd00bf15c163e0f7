"""The JSON form of Airflow connections (``AIRFLOW_CONN_<ID>``) the tests and benchmarks use."""

from __future__ import annotations

import json
from typing import Any


def hailuo_conn_json(url: str, key: str, extra: dict[str, Any] | None = None) -> str:
    """A ``hailuo`` connection: host = the API's base URL, password = the API key."""
    return json.dumps({"conn_type": "hailuo", "host": url, "password": key, "extra": extra or {}})


def aws_conn_json(endpoint_url: str, access_key: str, secret_key: str, region: str = "us-east-1") -> str:
    """An ``aws`` connection to an S3-compatible endpoint (moto on loopback, say)."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": access_key,
            "password": secret_key,
            "extra": {"endpoint_url": endpoint_url, "region_name": region},
        }
    )
