"""
Lineage of a landed video: OpenLineage datasets, and Airflow's hook-lineage collector.

The download writes through the filesystem's own ``open`` (to control the commit), which bypasses
``ObjectStoragePath.open`` and the lineage it reports; so the writes are reported here. Both
imports are lazy: the OpenLineage provider is an optional extra, and the collector's module moved
between Airflow 2 and 3 (``airflow.providers.common.compat.sdk`` resolves it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


def dataset_name(uri: str) -> tuple[str, str]:
    """
    OpenLineage's ``(namespace, name)`` for a storage URI, by its naming convention.

    ``s3://bucket/key`` is ``("s3://bucket", "key")``; a local ``file:///a/b`` is ``("file", "/a/b")``.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme or "file"
    if scheme in ("file", "local"):
        return "file", parts.path or uri
    return f"{scheme}://{parts.netloc}", parts.path.lstrip("/")


def openlineage_facets(
    outputs: Iterable[str],
    inputs: Iterable[str] = (),
    *,
    estimated_cost: Mapping[str, Any] | None = None,
    request_known: bool = False,
) -> Any:
    """
    An ``OperatorLineage`` naming ``inputs`` and ``outputs``; None without the OpenLineage provider.

    When the request is known, a run facet carries what the submit estimated the video cost
    (``{"amount", "currency"}``, both None when no price was known), so spend shows up beside the
    datasets in a lineage backend.
    """
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset

        from airflow_provider_hailuo.lineage_facets import (
            ESTIMATED_COST_FACET,
            HailuoEstimatedCostRunFacet,
        )
    except ImportError:
        return None
    run_facets: dict[str, Any] = {}
    if request_known:
        cost = estimated_cost or {}
        run_facets[ESTIMATED_COST_FACET] = HailuoEstimatedCostRunFacet(
            amount=cost.get("amount"), currency=cost.get("currency")
        )
    return OperatorLineage(
        inputs=[Dataset(namespace=ns, name=name) for ns, name in map(dataset_name, inputs)],
        outputs=[Dataset(namespace=ns, name=name) for ns, name in map(dataset_name, outputs)],
        run_facets=run_facets,
    )


def report_write(path: Any, uri: str) -> None:
    """
    Tell Airflow's hook-lineage collector that ``path`` (an ObjectStoragePath) was written.

    Lineage is a side channel: whatever goes wrong here (an older collector's signature, no
    collector) is logged and never fails a task whose video has already landed.
    """
    try:
        from airflow.providers.common.compat.sdk import get_hook_lineage_collector

        collector: Any = get_hook_lineage_collector()
        # Airflow 3 names it an asset; Airflow 2 (2.10+) a dataset.
        add_output = getattr(collector, "add_output_asset", None) or collector.add_output_dataset
        add_output(context=path, uri=uri)
    except Exception as err:
        log.debug("Hook lineage not reported for %s: %s", uri, err)
