"""The provider is what Airflow expects: schema-valid info, listed by the CLI, hook class importable."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib import resources
from importlib.metadata import entry_points, version

import jsonschema

from airflow_provider_hailuo import get_provider_info

AIRFLOW_VERSION = tuple(int(part) for part in version("apache-airflow").split(".")[:3])


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
    # The JSON is the one line that parses as a list (3.0 also logs lines that start with "[").
    (rows,) = [json.loads(line) for line in done.stdout.splitlines() if _is_json_list(line)]
    return rows


def _is_json_list(line: str) -> bool:
    try:
        return isinstance(json.loads(line), list)
    except ValueError:
        return False


def test_airflow_cli_lists_the_provider_and_the_connection_type(tmp_path):
    providers = airflow_json("providers", "list", home=tmp_path)
    assert "airflow-provider-hailuo" in {p["package_name"] for p in providers}
    rows = {h["connection_type"]: h for h in airflow_json("providers", "hooks", home=tmp_path)}
    assert rows["hailuo"]["class"] == "airflow_provider_hailuo.hooks.hailuo.HailuoHook"


def test_the_connection_form_is_labelled_on_this_airflow_version(tmp_path):
    """Airflow 3.2+ reads conn-fields, older versions the hook's widgets: every extra, labelled."""
    script = (
        "import json\n"
        "from airflow.providers_manager import ProvidersManager\n"
        "pm = ProvidersManager()\n"
        "widgets = {k: v for k, v in pm.connection_form_widgets.items() if k.startswith('extra__hailuo__')}\n"
        "print(json.dumps({'fields': sorted(widgets), 'behaviour': pm.field_behaviours.get('hailuo')}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "AIRFLOW_HOME": str(tmp_path)},
        check=True,
    )
    form = json.loads(done.stdout.strip().splitlines()[-1])
    extras = ("api", "ca_bundle", "group_id", "prices", "submits_per_minute", "timeout", "verify")
    assert form["fields"] == [f"extra__hailuo__{name}" for name in extras]
    assert form["behaviour"]["relabeling"]["password"] == "API key"
    # Airflow 2's Test script needs the Extra box on the page; the React forms keep raw JSON apart.
    assert ("extra" in form["behaviour"]["hidden_fields"]) is (AIRFLOW_VERSION >= (3, 0, 0))
    # Only Airflow 3.3.2's Test refuses a connection stored without a port.
    needs_port = AIRFLOW_VERSION >= (3, 3, 2)
    assert form["behaviour"]["relabeling"]["port"] == ("Port (needed by Test)" if needs_port else "Port")
