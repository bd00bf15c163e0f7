"""Apache Airflow provider for the MiniMax Hailuo-02 video generation API (PPInfra, Novita AI)."""

from __future__ import annotations

__version__ = "0.1.0"

INTEGRATION = "MiniMax Hailuo"


def get_provider_info() -> dict:
    """What ``airflow providers list`` and ``hooks`` show (the ``apache_airflow_provider`` entry point)."""
    return {
        "package-name": "airflow-provider-hailuo",
        "name": "MiniMax Hailuo",
        "description": "Generate videos with the MiniMax Hailuo-02 API (PPInfra, Novita AI) from Airflow.",
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
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra"],
                    "relabeling": {"host": "Base URL", "password": "API key"},
                    "placeholders": {
                        "host": "https://api.ppinfra.com (or https://api.novita.ai)",
                        "password": "your PPInfra / Novita API key",
                    },
                },
                "conn-fields": {
                    "verify": {
                        "label": "Verify TLS",
                        "description": "Check the API's TLS certificate (true), or a CA bundle path. "
                        "Turn off only for a local emulator.",
                        "schema": {"type": ["boolean", "string", "null"]},
                    }
                },
            }
        ],
    }
