"""
The wire dialects the emulator speaks, one module each, chosen by ``EmulatorConfig.api``.

- ``ppinfra``: PPInfra's "v3 async" API (docs/vendors.md §1-4, as PPInfra's current pages describe it);
- ``novita``: the same API family as Novita's pages describe it (docs/vendors.md §1);
- ``minimax``: MiniMax's own ``/v1/video_generation`` API (docs/vendors.md §5).

Modules are imported on first use so that naming a dialect costs nothing and the state module can
depend on this registry without an import cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_hailuo.emulator.dialects.base import Dialect

__all__ = ["DEFAULT_API", "DIALECT_NAMES", "get_dialect"]

DEFAULT_API = "ppinfra"
_MODULES = {
    "ppinfra": "airflow_provider_hailuo.emulator.dialects.ppinfra",
    "novita": "airflow_provider_hailuo.emulator.dialects.novita",
    "minimax": "airflow_provider_hailuo.emulator.dialects.minimax",
}
DIALECT_NAMES = tuple(_MODULES)


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name`` (each module exposes one instance as ``DIALECT``)."""
    if name not in _MODULES:
        raise ValueError(f"api must be one of {', '.join(DIALECT_NAMES)}, got {name!r}")
    dialect: Dialect = importlib.import_module(_MODULES[name]).DIALECT
    return dialect
