"""The provider is what Airflow expects: schema-valid info, listed by the CLI, hook class importable."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib import resources
from importlib.metadata import entry_points

import jsonschema

from airflow_provider_hailuo import get_provider_info


def test_provider_info_matches_airflow_schema():
    schema = json.loads(resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_entry_point_is_registered():
    (entry,) = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider")
    ]
    assert entry.load()()["package-name"] == "airflow-provider-hailuo"


def test_every_declared_module_and_class_imports():
    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for item in info[section]:
            assert item["integration-name"] == info["integrations"][0]["integration-name"]
            for module in item["python-modules"]:
                importlib.import_module(module)
    (conn_type,) = info["connection-types"]
    module, _, cls = conn_type["hook-class-name"].rpartition(".")
    hook = getattr(importlib.import_module(module), cls)
    assert hook.conn_type == conn_type["connection-type"] == "hailuo"
    assert hook.default_conn_name == "hailuo_default"


def airflow_json(*args: str, home) -> list[dict]:
    """Run an `airflow ... -o json` command; its JSON is the line that starts with '['."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args, "-o", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "AIRFLOW_HOME": str(home)},
        check=True,
    )
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("[")]
    return json.loads(line)


def test_airflow_cli_lists_the_provider_and_the_connection_type(tmp_path):
    providers = airflow_json("providers", "list", home=tmp_path)
    assert "airflow-provider-hailuo" in {p["package_name"] for p in providers}
    rows = {h["connection_type"]: h for h in airflow_json("providers", "hooks", home=tmp_path)}
    assert rows["hailuo"]["class"] == "airflow_provider_hailuo.hooks.hailuo.HailuoHook"
