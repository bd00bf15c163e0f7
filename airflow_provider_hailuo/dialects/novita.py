"""
Novita AI's "v3 async" API (docs/vendors.md §1): PPInfra's wire under Novita's own host.

Both vendors' current pages name the frames ``image`` and ``end_image`` and take ``data:`` images,
so the dialects differ only in name; it stays a dialect of its own so a connection (and its logs
and errors) says which vendor it pays, and so the two can part again when one page changes.
"""

from __future__ import annotations

from airflow_provider_hailuo.dialects.ppinfra import PPInfraDialect


class NovitaDialect(PPInfraDialect):
    """Novita AI (``api.novita.ai``)."""

    name = "novita"
    console = "Novita AI's console (task list and billing)"
