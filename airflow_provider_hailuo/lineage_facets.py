"""
OpenLineage facets of this provider; imported only where the OpenLineage provider is installed.

A module of its own, at import level: a facet class made inside a function could not be pickled by
name when a listener hands the event to another process.
"""

from __future__ import annotations

from attrs import define
from openlineage.client.facet_v2 import RunFacet

#: The run facet's name in an OpenLineage event (custom facets carry their producer's prefix).
ESTIMATED_COST_FACET = "hailuoEstimatedCost"


@define
class HailuoEstimatedCostRunFacet(RunFacet):
    """What the submit estimated the video cost; ``amount`` and ``currency`` None: no price was known."""

    amount: float | None = None
    currency: str | None = None
