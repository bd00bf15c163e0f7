"""
Run the five benchmarks and print one table (``make bench``). ``--quick``: small N, small files,
about five minutes; the full run (for RESULTS.md) takes about 20 minutes (plus, the first time, a
minute to generate the realistic 1080P clip of benchmark 5).

1. waiting at scale (``bench_waiting.py``)   3. streaming download (``bench_download.py``)
2. poll economy (``bench_polls.py``)         4. import and parse cost (``bench_import.py``)
5. the landing's own cost: check + poster on a service-like video (``bench_landing.py``)

Each script runs on its own too (``--help``). ``--json DIR`` keeps every raw figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_download
import bench_import
import bench_landing
import bench_polls
import bench_waiting
from _common import machine_info, snapshot_product

ALL = ("waiting", "polls", "download", "import", "landing")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small N and small files (~5 minutes)")
    parser.add_argument("--only", action="append", choices=ALL, help="run only these (repeatable)")
    parser.add_argument("--json", type=Path, help="directory for the raw results as JSON")
    args = parser.parse_args()
    chosen = args.only or list(ALL)
    if args.json:
        args.json.mkdir(parents=True, exist_ok=True)

    def out(name: str) -> Path | None:
        return args.json / f"{name}.json" if args.json else None

    sections: list[str] = []
    info = machine_info()
    info["product measured"] = snapshot_product()
    sections.append(
        "## Machine\n\n"
        + "\n".join(f"- {key}: {value}" for key, value in info.items())
        + f"\n- mode: {'quick' if args.quick else 'full'}"
    )
    if args.json:
        (args.json / "machine.json").write_text(json.dumps(info, indent=2))
    timings = {}
    for name in chosen:
        started = time.monotonic()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        if name == "waiting":
            text = bench_waiting.table(bench_waiting.run(args.quick, out=out(name)))
            title = "1. Waiting at scale (N triggers in one event loop)"
        elif name == "polls":
            text = bench_polls.table(bench_polls.run(args.quick, out=out(name)))
            title = "2. Poll economy"
        elif name == "download":
            text = bench_download.table(bench_download.run(args.quick, out=out(name)))
            title = "3. Streaming download"
        elif name == "import":
            text = bench_import.table(bench_import.run(args.quick, out=out(name)))
            title = "4. Import and parse cost"
        else:
            text = bench_landing.table(bench_landing.run(args.quick, out=out(name)))
            title = "5. The landing's own cost (check + poster, realistic 1080P clip)"
        timings[name] = time.monotonic() - started
        sections.append(f"## {title}\n\n{text}\n\n(took {timings[name]:.0f} s)")
        print(sections[-1] + "\n", file=sys.stderr, flush=True)
    print("\n\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
