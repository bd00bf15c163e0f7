"""
Pay once, provably: every way a submit's answer can be lost, injected at the socket.

A fault proxy (tests/support/fault_proxy.py) sits between the real hook and the emulator, over plain
TCP and over TLS, for both dialect families (the "v3 async" API of PPInfra/Novita, and MiniMax's).
For every cell it breaks one submit exchange at one phase and checks, against what the emulator
actually did:

- the provider's verdict (nothing created / may have been accepted / refused / success) is the one
  the rule gives (``SUBMIT_FAULTS`` is also the README's table, checked below);
- the emulator created at most one task; "nothing created" means none, success means the one returned;
- with the hook's own retries, a submit is sent again only after "nothing created";
- no message or log line carries the key.

Only the sync hook submits (the triggerer only reads), so the async path is checked for reads: every
fault here is retried there and on workers alike.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Iterator

import pytest

from airflow_provider_hailuo.api import HailuoError, HailuoSubmitUncertainError, VideoRequest
from airflow_provider_hailuo.emulator.server import EmulatorServer
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.hooks.submit_rule import SubmitVerdict, submit_verdict
from tests.conftest import AIRFLOW_LINE, EMULATOR_KEY, REPO
from tests.support.connections import hailuo_conn_json
from tests.support.fault_proxy import FaultProxy, tls_contexts
from tests.support.submit_faults import (
    FAMILIES,
    MAY,
    NOTHING,
    REFUSED,
    SUBMIT_FAULTS,
    TIMEOUT,
    Cell,
    retrying_with_heal,
    walked,
)

NEWEST_LINE = AIRFLOW_LINE >= (3, 3)


def _cells() -> Iterator[object]:
    for cell in walked(SUBMIT_FAULTS, NEWEST_LINE):
        for family in cell.families:
            for transport in ("tcp", "tls"):
                if transport == "tcp" and cell.fault.tls_only:
                    continue
                yield pytest.param(cell, family, transport, id=f"{cell.fault.name}-{family}-{transport}")


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[ssl.SSLContext, ssl.SSLContext, str]:
    """A trusted server context (its CA given to the connection), and one from a CA nobody trusts."""
    ca_path = str(tmp_path_factory.mktemp("fault-ca") / "ca.pem")
    return (*tls_contexts(ca_path), ca_path)


@pytest.fixture(scope="module")
def emulators() -> Iterator[dict[str, EmulatorServer]]:
    servers = {
        family: EmulatorServer(api=family, api_key=EMULATOR_KEY, queue_seconds=0.2, generation_seconds=0.5)
        for family in FAMILIES
    }
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def through_proxy(emulators, tls, monkeypatch):
    """Run ``(cell, family, transport, attempts)``: a submit through a proxy holding the cell's fault."""

    def run(cell: Cell, family: str, transport: str, attempts: int):
        emulator = emulators[family]
        emulator.reset()
        trusted, stranger, ca_path = tls
        over_tls = transport == "tls"
        proxy = FaultProxy(
            emulator.url,
            cell.fault,
            server_context=trusted if over_tls else None,
            untrusted_context=stranger if over_tls else None,
        )
        with proxy:
            extra = {"api": family, **({"ca_bundle": ca_path} if over_tls else {})}
            monkeypatch.setenv(
                "AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(proxy.url, EMULATOR_KEY, extra)
            )
            monkeypatch.setattr(HailuoHook, "_retrying", retrying_with_heal(proxy))
            hook = HailuoHook(timeout=TIMEOUT, retry_min_wait=0.01, retry_max_wait=0.05, retry_limit=attempts)
            try:
                outcome: str | BaseException = hook.submit(VideoRequest(prompt=f"cell {cell.fault.name}"))
            except HailuoError as err:
                outcome = err
        return outcome, emulator.tasks(), proxy

    return run


def verdict_of(outcome: str | BaseException) -> SubmitVerdict | None:
    """The verdict the provider gave (None: success)."""
    if isinstance(outcome, str):
        return None
    if isinstance(outcome, HailuoSubmitUncertainError):
        return MAY
    return submit_verdict(outcome)


@pytest.mark.parametrize(("cell", "family", "transport"), list(_cells()))
def test_one_attempt_the_verdict_matches_what_the_service_did(through_proxy, caplog, cell, family, transport):
    caplog.set_level(logging.DEBUG)
    outcome, tasks, _ = through_proxy(cell, family, transport, attempts=1)
    verdict = verdict_of(outcome)
    assert verdict is cell.verdict, f"{outcome!r}"
    assert len(tasks) <= 1
    if verdict in (NOTHING, REFUSED):
        assert tasks == {}, "the provider says nothing was created, but the service created a task"
    if cell.fault.phase == "answer" and cell.fault.forward:
        assert len(tasks) == 1  # the service did create it: "may have been accepted" was right
    assert isinstance(outcome, BaseException)
    text = f"{outcome}\n{outcome.__cause__}\n{caplog.text}"
    assert EMULATOR_KEY not in text
    if verdict is MAY:
        assert "may have been accepted" in str(outcome) and "'hailuo_default'" in str(outcome)
        assert re.search(r"sent at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(outcome))
        assert "console" in str(outcome) or "platform" in str(outcome)


@pytest.mark.parametrize(("cell", "family", "transport"), list(_cells()))
def test_with_retries_a_submit_is_sent_again_only_when_nothing_was_created(
    through_proxy, caplog, cell, family, transport
):
    outcome, tasks, proxy = through_proxy(cell, family, transport, attempts=5)
    if cell.verdict is NOTHING:
        assert isinstance(outcome, str), f"{outcome!r}"
        assert list(tasks) == [outcome]  # exactly one paid task: the one returned
    else:
        assert isinstance(outcome, HailuoError)
        assert proxy.connections == 1, "a submit that may have been accepted was sent again"
        assert len(tasks) <= 1
    assert EMULATOR_KEY not in caplog.text


READ_FAULTS = [
    cell
    for cell in SUBMIT_FAULTS
    if cell.fault.phase in ("request", "answer") and cell.verdict is not REFUSED
]


@pytest.mark.parametrize(
    "cell",
    [pytest.param(c, id=c.fault.name) for c in walked(READ_FAULTS, NEWEST_LINE) if "ppinfra" in c.families],
)
def test_reads_are_retried_on_every_fault_on_workers_and_in_the_triggerer(emulators, monkeypatch, cell):
    emulator = emulators["ppinfra"]
    emulator.reset()
    task_id = HailuoHookAt(emulator.url, monkeypatch).submit(VideoRequest(prompt="read me"))
    for read in ("sync", "async"):
        with FaultProxy(emulator.url, cell.fault) as proxy:
            hook = HailuoHookAt(proxy.url, monkeypatch)
            if read == "sync":
                result = hook.get_task_result(task_id)
            else:
                result = asyncio.run(hook.aget_task_result(task_id))
        assert result.task_id == task_id and proxy.connections == 2, read


def HailuoHookAt(url: str, monkeypatch) -> HailuoHook:
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(url, EMULATOR_KEY, {"api": "ppinfra"}))
    return HailuoHook(timeout=TIMEOUT, retry_min_wait=0.01, retry_max_wait=0.05)


def test_a_dns_failure_is_nothing_created(monkeypatch, emulators):
    """No name server may be asked here (loopback only): the resolver itself is made to fail."""
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "hailuo-api.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv(
        "AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json("http://hailuo-api.test:9", EMULATOR_KEY)
    )
    with pytest.raises(HailuoError) as info:
        HailuoHook(retry_limit=2, retry_min_wait=0.01).submit(VideoRequest(prompt="p"))
    assert submit_verdict(info.value) is NOTHING


def test_the_readme_table_is_this_matrix():
    """README "Retries and money": each row's verdict is the one these faults are tested with."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### What a failed submit does") :]
    rows = dict(
        re.findall(
            r"^\| ([^|]+?) \| (sent again|not sent again[^|]*?|fails at once[^|]*?) \|$", section, re.M
        )
    )
    words = {NOTHING: "sent again", MAY: "not sent again", REFUSED: "fails at once"}
    expected = {cell.readme: words[cell.verdict] for cell in SUBMIT_FAULTS}
    table = {
        row: ("sent again" if text == "sent again" else text.split(":")[0].split(" (")[0])
        for row, text in rows.items()
    }
    missing = {row for row in expected if row not in table}
    assert not missing, f"README lacks rows for {sorted(missing)}"
    for row, verdict_words in expected.items():
        assert table[row].startswith(verdict_words), (row, table[row], verdict_words)
