"""Apache Airflow provider for MiniMax Hailuo video generation (PPInfra, Novita AI, MiniMax)."""

from __future__ import annotations

__version__ = "0.1.0"

INTEGRATION = "MiniMax Hailuo"


def get_provider_info() -> dict:
    """What ``airflow providers list`` and ``hooks`` show (the ``apache_airflow_provider`` entry point)."""
    from airflow_provider_hailuo.hooks.connection import conn_fields, ui_field_behaviour_kebab

    return {
        "package-name": "airflow-provider-hailuo",
        "name": "MiniMax Hailuo",
        "description": "Generate videos with MiniMax Hailuo (PPInfra, Novita AI or MiniMax) from Airflow.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://ppinfra.com/docs/model/minimax-hailuo-02",
                "tags": ["ai", "video"],
            }
        ],
        "hooks": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_hailuo.hooks.hailuo"]}
        ],
        "operators": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_hailuo.operators.hailuo"]}
        ],
        "sensors": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_hailuo.sensors.hailuo"]}
        ],
        "triggers": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_hailuo.triggers.hailuo"]}
        ],
        "connection-types": [
            {
                "connection-type": "hailuo",
                "hook-class-name": "airflow_provider_hailuo.hooks.hailuo.HailuoHook",
                "hook-name": "MiniMax Hailuo",
                "ui-field-behaviour": ui_field_behaviour_kebab(),
                "conn-fields": conn_fields(),
            }
        ],
    }
