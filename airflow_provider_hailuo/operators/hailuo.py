"""The provider's operators (one module each); imported from here by DAGs and the provider info."""

from __future__ import annotations

from airflow_provider_hailuo.operators.download import (
    HailuoDownloadVideoOperator,
    expected_length,
    safe_object_name,
)
from airflow_provider_hailuo.operators.generate import HailuoGenerateVideoOperator
from airflow_provider_hailuo.operators.plan import HailuoPlanVideosOperator
from airflow_provider_hailuo.operators.submit import HailuoSubmitVideoOperator

__all__ = [
    "HailuoDownloadVideoOperator",
    "HailuoGenerateVideoOperator",
    "HailuoPlanVideosOperator",
    "HailuoSubmitVideoOperator",
    "expected_length",
    "safe_object_name",
]
