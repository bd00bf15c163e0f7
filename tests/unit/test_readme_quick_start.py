"""The README's quick-start DAG is real: it builds, with the operators and wiring it shows."""

from __future__ import annotations

import re

import pytest

from tests.conftest import AIRFLOW_2, REPO


@pytest.mark.skipif(AIRFLOW_2, reason="the snippet imports DAG from airflow.sdk (Airflow 3), as it says")
def test_the_quick_start_dag_builds():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Quick start") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md quick start", "exec"), namespace)
    (generate,) = namespace["dag"].tasks
    assert generate.task_id == "generate" and generate.deferrable is True
    assert generate.destination == "s3://my-bucket/videos/"
