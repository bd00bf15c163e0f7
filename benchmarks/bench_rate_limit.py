"""
Rate limits (issue 19): 30 prompts against an account that takes 5 submits a minute.

Runs ``tests/integration/test_rate_limits.py`` (``dag.test()`` against the emulator, whose minute lasts
10 s there) on each Airflow line given, three ways, and prints one Markdown table:

- ``before``: the submit operator as it was before issue 19 (``_rate_baseline.py``): the hook sleeps
  through refusals on the worker, up to 5 attempts, then the task fails and Airflow retries it;
- ``deferred``: refusals are waited out in a trigger; no pacing;
- ``paced``: the same, with the connection's ``submits_per_minute`` set to the allowance.

Figures come from the test's own measurement (``HAILUO_RATE_FIGURES``): refused requests (the
emulator's ``rate_limited`` counter) and slot-seconds held waiting (for each refusal, the time its
task instance then still spent on a worker, from the emulator's timestamp of the refusal to the end
of that worker stint). The ``before`` run fails the test's assertions on purpose; its figures are
recorded before they are checked. About 2-3 minutes per case on a busy 2-core machine.

    .venv/bin/python benchmarks/bench_rate_limit.py --python .venv/bin/python \\
        --python .venvs/airflow-2.11/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/integration/test_rate_limits.py"
CASES = {
    "before": ("beyond_the_allowance", True),
    "deferred": ("beyond_the_allowance", False),
    "paced": ("paced_batch", False),
}


def run_case(python: str, case: str) -> dict[str, Any]:
    selection, baseline = CASES[case]
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as out:
        env = {**os.environ, "HAILUO_RATE_FIGURES": out.name}
        command = [python, "-m", "pytest", TEST, "-q", "-p", "no:cacheprovider", "-k", selection]
        if baseline:
            paths = [str(REPO / "benchmarks"), env.get("PYTHONPATH")]
            env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
            command += ["-p", "_rate_baseline"]
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        lines = [json.loads(line) for line in Path(out.name).read_text().splitlines() if line.strip()]
    if not lines:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"{case} on {python}: no figures recorded")
    figures = lines[-1]
    figures["case"] = case
    figures["test passed"] = done.returncode == 0
    return figures


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| Airflow | case | landed | failed tasks | retried tasks | paid submits | refused requests "
        "| slot-seconds held waiting | per refusal | waits in a trigger | run (s) | test |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['airflow']} | {r['case']} | {r['landed']}/{r['prompts']} | {r['failed_tasks']} "
        f"| {r['retried_tasks']} | {r['submits']} | {r['refused']} | {r['slot_seconds_held_waiting']:.2f} "
        f"| {r['slot_seconds_held_per_refusal']:.3f} | {r['wait_deferrals']} | {r['run_seconds']:.0f} "
        f"| {'passed' if r['test passed'] else 'fails (expected)' if r['case'] == 'before' else 'FAILED'} |\n"
        for r in rows
    )
    return head + body


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", action="append", help="a virtualenv's python (repeatable)")
    parser.add_argument("--case", action="append", choices=list(CASES), help="only these cases")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args()
    rows = []
    for python in args.python or [str(REPO / ".venv/bin/python")]:
        for case in args.case or list(CASES):
            print(f"running {case} with {python} ...", file=sys.stderr, flush=True)
            rows.append(run_case(python, case))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
