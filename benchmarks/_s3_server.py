"""An S3 server (moto, ``tests/support/s3.py``) in its own process; prints its URL, serves until killed."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.s3 import moto_s3_server

if __name__ == "__main__":
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with moto_s3_server() as server:
        print(f"S3 listening on {server.endpoint_url}", flush=True)
        stop.wait()
