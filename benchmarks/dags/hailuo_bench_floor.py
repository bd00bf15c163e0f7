"""
The floor of ``benchmarks/bench_deployment.py``: what the same deployment spends on three task
instances per video that do nothing, shaped like pipeline (a) (three mapped tasks in a chain, each
reading its upstream's XCom), with no Hailuo call at all. What (a) or (b) spends above it per task
run is the product's own cost; the floor itself is Airflow's, whatever runs in the tasks.

The last task writes one byte per video where the run's ``destination`` param says, so the
benchmark's "landed whole" check holds for it as for the real pipelines.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Param, get_current_context, task

with DAG(
    dag_id="hailuo_bench_floor",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["hailuo", "benchmark"],
    params={
        "prompts": Param([], type="array", items={"type": "string"}),
        "destination": Param("file:///tmp/hailuo/bench-floor/", type="string"),
    },
):

    @task
    def load_prompts() -> list[str]:
        return list(get_current_context()["params"]["prompts"])

    @task
    def first(prompt: str) -> str:
        return prompt

    @task
    def second(prompt: str) -> str:
        return prompt

    @task
    def land(prompt: str) -> dict[str, object]:
        context = get_current_context()
        folder = Path(str(context["params"]["destination"]).removeprefix("file://"))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{context['ti'].map_index}.txt"
        path.write_bytes(b"x")
        return {"uri": path.as_uri(), "bytes": 1, "prompt": prompt}

    land.expand(prompt=second.expand(prompt=first.expand(prompt=load_prompts())))
