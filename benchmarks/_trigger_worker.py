"""
One "triggerer": N triggers running concurrently in ONE asyncio event loop, driven by
``bench_waiting.py`` / ``bench_polls.py`` (which measure this process from outside: CPU, RSS).

Protocol: print ``READY`` once everything is imported; SIGUSR1 starts the N triggers; SIGUSR2 (or
every trigger having fired) stops them; the results (loop-lag ticks, start/fire times per task) are
written as JSON to ``--out``.

``--mode product`` runs the provider's real ``HailuoTaskTrigger``. ``--mode naive`` runs the
baseline: the way a trigger written like the dbt Cloud provider's polls, i.e. a new
``aiohttp.ClientSession`` (so a new connection pool and TCP connection) per poll, at a fixed
interval. The baseline is kept generous: it resolves the connection once per trigger (the dbt Cloud
hook does it at every poll) and parses the answer with the provider's own ``TaskResult``.

``--mode bare`` is the floor a trigger's own per-read cost is measured against (issue 16, item 7):
a bare aiohttp poller on ONE shared session (``trust_env=False``, the product's connector limits)
that reads the JSON itself (``json.loads``, ``task.status``, ``task.eta``) and paces itself by
``eta`` within the same bounds as the product, so both read at about the same rate and the
process's fixed cost (lag ticker, GC) weighs the same on each read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_hailuo.dialects import dialect_for
from airflow_provider_hailuo.hooks.async_session import CONNECTIONS_PER_HOST
from airflow_provider_hailuo.hooks.hailuo import USER_AGENT, HailuoHook
from airflow_provider_hailuo.triggers.hailuo import HailuoTaskTrigger, next_poll_delay

TICK = 0.05  # the lag ticker's requested sleep


def protocol_stream() -> Any:
    """
    Our own copy of stdout for the protocol lines; fd 1 itself then points at stderr (a file), since
    Airflow logs to stdout and a full pipe nobody reads would block the event loop.
    """
    stream = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)
    return stream


class NaiveTaskTrigger(BaseTrigger):
    """Baseline: a new ClientSession per poll, a fixed interval, no eta pacing."""

    def __init__(self, hailuo_task_id: str, deadline: float, poll_interval: float) -> None:
        super().__init__()
        self.hailuo_task_id = hailuo_task_id
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.errors = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:  # pragma: no cover - never persisted
        return ("benchmarks.NaiveTaskTrigger", {"hailuo_task_id": self.hailuo_task_id})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        settings = await HailuoHook().asettings()
        dialect = dialect_for(settings.api, settings.base_url, group_id=settings.group_id)
        call = dialect.read_call(self.hailuo_task_id)
        while True:
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.request(
                        call.method,
                        settings.url(call.path),
                        params=dict(call.params),
                        headers={**settings.auth_header, "User-Agent": USER_AGENT},
                    ) as response,
                ):
                    body = await response.read()
                result = dialect.parse_read(
                    response.status,
                    response.headers,
                    body,
                    task_id=self.hailuo_task_id,
                    conn_id="hailuo_default",
                )
                if result.finished:
                    yield TriggerEvent({"status": "success" if result.succeeded else "failed"})
                    return
            except (aiohttp.ClientError, TimeoutError, OSError):
                self.errors += 1
            if time.time() > self.deadline:
                yield TriggerEvent({"status": "timeout"})
                return
            await asyncio.sleep(self.poll_interval)


class BareTaskTrigger(BaseTrigger):
    """Floor: one shared session, the JSON read by hand, eta pacing as the product's; nothing else."""

    session: aiohttp.ClientSession | None = None

    def __init__(self, hailuo_task_id: str, deadline: float, poll_interval: float, max_poll_interval: float):
        super().__init__()
        self.hailuo_task_id = hailuo_task_id
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.errors = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:  # pragma: no cover - never persisted
        return ("benchmarks.BareTaskTrigger", {"hailuo_task_id": self.hailuo_task_id})

    @classmethod
    def shared_session(cls) -> aiohttp.ClientSession:
        if cls.session is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=CONNECTIONS_PER_HOST, ttl_dns_cache=300)
            cls.session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return cls.session

    async def run(self) -> AsyncIterator[TriggerEvent]:
        settings = await HailuoHook().asettings()
        call = dialect_for(settings.api, settings.base_url, group_id=settings.group_id).read_call(
            self.hailuo_task_id
        )
        url, params = settings.url(call.path), dict(call.params)
        headers = {**settings.auth_header, "User-Agent": USER_AGENT}
        session = self.shared_session()
        while True:
            eta = None
            try:
                async with session.get(url, params=params, headers=headers) as response:
                    body = await response.read()
                if response.status == 200:
                    task = json.loads(body)["task"]
                    if task["status"] in ("TASK_STATUS_SUCCEED", "TASK_STATUS_FAILED"):
                        yield TriggerEvent({"status": task["status"]})
                        return
                    eta = task.get("eta")
                else:
                    self.errors += 1
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError):
                self.errors += 1
            if time.time() > self.deadline:
                yield TriggerEvent({"status": "timeout"})
                return
            await asyncio.sleep(next_poll_delay(eta, self.poll_interval, self.max_poll_interval))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with open(args.ids) as handle:
        task_ids: list[str] = json.load(handle)[: args.n]
    loop = asyncio.get_running_loop()
    go, stop = asyncio.Event(), asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, go.set)
    loop.add_signal_handler(signal.SIGUSR2, stop.set)
    print("READY", file=args.protocol, flush=True)
    await go.wait()

    ticks: list[tuple[float, float]] = []

    async def ticker() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK)
            after = time.monotonic()
            ticks.append((after, after - before - TICK))

    started: dict[str, float] = {}
    fired: dict[str, tuple[float, str]] = {}
    deadline = time.time() + 3600

    def make(task_id: str) -> BaseTrigger:
        if args.mode == "product":
            return HailuoTaskTrigger(
                hailuo_task_id=task_id,
                deadline=deadline,
                poll_interval=args.poll_interval,
                max_poll_interval=args.max_poll_interval,
            )
        if args.mode == "bare":
            return BareTaskTrigger(task_id, deadline, args.poll_interval, args.max_poll_interval)
        return NaiveTaskTrigger(task_id, deadline, args.poll_interval)

    async def run_one(task_id: str) -> None:
        trigger = make(task_id)
        started[task_id] = time.monotonic()
        async for event in trigger.run():
            fired[task_id] = (time.monotonic(), str(event.payload.get("status")))
            break

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    tick_task = asyncio.create_task(ticker())
    cpu_go = cpu()
    t_go = time.monotonic()
    runs = [asyncio.create_task(run_one(task_id)) for task_id in task_ids]
    everything = asyncio.gather(*runs, return_exceptions=True)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([everything, stopper], return_when=asyncio.FIRST_COMPLETED)
    t_end = time.monotonic()
    cpu_end = cpu()
    failures = [repr(r.exception()) for r in runs if r.done() and not r.cancelled() and r.exception()]
    for task in [*runs, tick_task, stopper]:
        task.cancel()
    await asyncio.gather(*runs, tick_task, stopper, return_exceptions=True)
    if BareTaskTrigger.session is not None:
        await BareTaskTrigger.session.close()
    return {
        "mode": args.mode,
        "n": len(task_ids),
        "t_go": t_go,
        "t_end": t_end,
        "cpu_s": cpu_end - cpu_go,
        "ticks": ticks,
        "started": started,
        "fired": fired,
        "failures": failures[:5],
        "n_failures": len(failures),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("product", "naive", "bare"), required=True)
    parser.add_argument("--ids", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--poll-interval", type=float, required=True)
    parser.add_argument("--max-poll-interval", type=float, required=True)
    parser.add_argument("--out", required=True)
    ns = parser.parse_args()
    ns.protocol = protocol_stream()
    result = asyncio.run(main(ns))
    with open(ns.out, "w") as out:
        json.dump(result, out)
    sys.exit(0)
