"""Parse one DAG file with a DagBag in this (fresh) process; print a JSON line with the parse time."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    path = Path(sys.argv[1])
    # What a DAG processor has loaded before it parses a file: Airflow, the SDK and the DagBag.
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import DAG, BaseOperator  # noqa: F401

    started = time.perf_counter()
    bag = DagBag(dag_folder=path, bundle_path=path.parent, safe_mode=False)
    elapsed = time.perf_counter() - started
    errors = {str(k): str(v)[:300] for k, v in bag.import_errors.items()}
    print(json.dumps({"seconds": elapsed, "dags": sorted(bag.dag_ids), "errors": errors}))
