"""
Benchmark 4, import and parse cost, each figure the median of fresh processes.

Import: ``python -X importtime -c "import airflow.sdk; import <module>"`` against
``python -X importtime -c "import airflow.sdk"``; total = the sum of the cumulative times of the
top-level imports; added = median(total with the module) - median(total without). Also shown: the
module's own cumulative line in the first program (its marginal cost, less noisy), and the added cost
over what a trivial DAG file imports anyway (``DAG``, ``BaseOperator``, ``EmptyOperator``).

Parse: each example DAG in ``dags/`` parsed by ``DagBag`` in a fresh process (Airflow and the SDK
already imported, as in a DAG processor), against a trivial DAG file with one ``EmptyOperator``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, PYTHON, REPO, airflow_env, fmt_num, median, snapshot_product

MODULES = (
    "airflow_provider_hailuo.operators.hailuo",
    "airflow_provider_hailuo.sensors.hailuo",
    "airflow_provider_hailuo.triggers.hailuo",
)
BASELINE = "import airflow.sdk"
TRIVIAL_IMPORTS = (
    "import airflow.sdk; from airflow.sdk import DAG, BaseOperator; "
    "from airflow.providers.standard.operators.empty import EmptyOperator"
)
TRIVIAL_DAG = """
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG(dag_id="trivial", schedule=None, start_date=datetime(2026, 1, 1)):
    EmptyOperator(task_id="nothing")
"""
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def importtime(code: str, env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """(total ms of the top-level imports, cumulative ms per top-level module)."""
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env, check=True
    )
    total, top = 0.0, {}
    for line in proc.stderr.splitlines():
        match = _LINE.match(line)
        if match and len(match.group(3)) == 0:
            total += int(match.group(2)) / 1000
            top[match.group(4)] = int(match.group(2)) / 1000
    return total, top


def parse_time(path: Path, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [PYTHON, str(BENCH_DIR / "_parse_worker.py"), str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def run(quick: bool = False, repeat: int | None = None, out: Path | None = None) -> dict[str, Any]:
    repeat = repeat or (3 if quick else 9)
    home = Path(tempfile.mkdtemp(prefix="hailuo-bench-import-"))
    env = airflow_env(home, {"AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags")})
    imports: list[dict[str, Any]] = []
    series: dict[str, list[float]] = {}

    def sample(key: str, code: str, own_prefix: str | None = None) -> None:
        total, top = importtime(code, env)
        series.setdefault(key, []).append(total)
        if own_prefix:
            own = sum(ms for name, ms in top.items() if name.startswith(own_prefix))
            series.setdefault(key + ":own", []).append(own)

    own = "airflow_provider_hailuo"
    for _ in range(repeat):  # interleaved, so drift on a noisy machine hits every series alike
        sample("sdk", BASELINE)
        sample("trivial", TRIVIAL_IMPORTS)
        for module in MODULES:
            sample(module, f"{BASELINE}; import {module}", own)
            sample(module + "/trivial", f"{TRIVIAL_IMPORTS}; import {module}", own)
    m = {key: median(values) for key, values in series.items()}
    for module in MODULES:
        imports.append(
            {
                "module": module,
                "total_ms": m[module],
                "baseline_ms": m["sdk"],
                "added_ms": m[module] - m["sdk"],
                "own_cumulative_ms": m[module + ":own"],
                "trivial_dag_imports_ms": m["trivial"],
                "added_over_trivial_dag_ms": m[module + "/trivial"] - m["trivial"],
                "own_over_trivial_dag_ms": m[module + "/trivial:own"],
            }
        )
        print(f"  import {json.dumps(imports[-1])}", file=sys.stderr)

    dag_dir = Path(tempfile.mkdtemp(prefix="hailuo-bench-trivial-dag-"))
    trivial = dag_dir / "trivial_dag.py"
    trivial.write_text(TRIVIAL_DAG)
    files = [trivial, *sorted((REPO / "dags").glob("*.py"))]
    times: dict[str, list[float]] = {str(f): [] for f in files}
    info: dict[str, Any] = {}
    for _ in range(repeat):
        for path in files:
            result = parse_time(path, env)
            times[str(path)].append(result["seconds"])
            info[str(path)] = {"dags": result["dags"], "errors": result["errors"]}
    base = median(times[str(trivial)])
    parses = []
    for path in files:
        parses.append(
            {
                "file": path.name if path != trivial else "trivial (1 EmptyOperator)",
                "parse_ms": 1000 * median(times[str(path)]),
                "added_ms": 1000 * (median(times[str(path)]) - base),
                "ratio": median(times[str(path)]) / base,
                **info[str(path)],
            }
        )
        print(f"  parse {json.dumps(parses[-1])}", file=sys.stderr)
    result = {"repeat": repeat, "imports": imports, "parses": parses}
    if out:
        out.write_text(json.dumps(result, indent=2))
    return result


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Medians of {result['repeat']} fresh processes each.",
        "",
        "| module | after `import airflow.sdk`: total ms | `import airflow.sdk` ms | **added ms**"
        " | own cumulative ms | added over a trivial DAG's imports (own) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["imports"]:
        lines.append(
            f"| `{r['module']}` | {fmt_num(r['total_ms'], 4)} | {fmt_num(r['baseline_ms'], 4)}"
            f" | **{fmt_num(r['added_ms'])}** | {fmt_num(r['own_cumulative_ms'])}"
            f" | {fmt_num(r['added_over_trivial_dag_ms'])} ({fmt_num(r['own_over_trivial_dag_ms'])}) |"
        )
    lines += [
        "",
        "| DAG file | parse ms (DagBag, fresh process) | **added over trivial** | ratio | dags | errors |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in result["parses"]:
        lines.append(
            f"| {r['file']} | {fmt_num(r['parse_ms'])} | **{fmt_num(r['added_ms'])}**"
            f" | {fmt_num(r['ratio'])}x | {', '.join(r['dags'])} | {len(r['errors'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"product measured: {snapshot_product()}", file=sys.stderr)
    print(table(run(args.quick, args.repeat, args.json)))
