"""
The submit faults every test of paying once walks: where an exchange breaks, and the rule's verdict.

One list serves the socket-level matrix (``tests/integration/test_submit_fault_matrix.py``), the
example pipeline under the same faults, and the README's table (checked against it).
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.hooks.submit_rule import SubmitVerdict
from tests.support.fault_proxy import Fault, FaultProxy

FAMILIES = ("ppinfra", "minimax")
V3, MM = ("ppinfra",), ("minimax",)
NOTHING = SubmitVerdict.NOTHING_CREATED
MAY = SubmitVerdict.MAY_HAVE_BEEN_ACCEPTED
REFUSED = SubmitVerdict.REFUSED
#: (connect, read) seconds: short, so a stalled cell costs about a second.
TIMEOUT = (0.5, 1.0)

V3_503 = b'{"code": 503, "reason": "SERVICE_UNAVAILABLE", "message": "busy, try again", "metadata": {}}'
V3_429 = b'{"code": 429, "reason": "RATE_LIMIT_EXCEEDED", "message": "too many requests"}'
MINIMAX_1002 = b'{"task_id": "", "base_resp": {"status_code": 1002, "status_msg": "rate limit exceeded"}}'
MINIMAX_1000 = b'{"task_id": "", "base_resp": {"status_code": 1000, "status_msg": "unknown error"}}'
GATEWAY_503 = (
    b"upstream connect error or disconnect/reset before headers. reset reason: connection termination"
)
GATEWAY_502 = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
V3_400 = b'{"code": 400, "reason": "INVALID_REQUEST_BODY", "message": "prompt is too long"}'


@dataclass(frozen=True)
class Cell:
    """One row of the matrix: a fault, the verdict the rule gives, and the README's words for it."""

    fault: Fault
    verdict: SubmitVerdict
    readme: str
    families: tuple[str, ...] = FAMILIES


def _answer(name: str, status: int, body: bytes, *, forward: bool, ctype: str = "application/json") -> Fault:
    return Fault(name, "answer", "replace", canned=(status, ctype, body), forward=forward)


SUBMIT_FAULTS: list[Cell] = [
    Cell(Fault("refused", "connect", "refuse"), NOTHING, "connection refused"),
    Cell(Fault("connect-timeout", "connect", "stall"), NOTHING, "connect timeout"),
    Cell(Fault("tls-unknown-ca", "handshake", "unknown_ca", tls_only=True), NOTHING, "TLS: unknown CA"),
    Cell(Fault("tls-alert", "handshake", "alert", tls_only=True), NOTHING, "TLS: handshake alert"),
    Cell(
        Fault("close-in-headers", "request", "close", cut="headers"), MAY, "closed with half the headers sent"
    ),
    Cell(
        Fault("reset-in-headers", "request", "reset", cut="headers"), MAY, "reset with half the headers sent"
    ),
    Cell(Fault("close-in-body", "request", "close", cut="body"), MAY, "closed with half the body sent"),
    Cell(Fault("reset-in-body", "request", "reset", cut="body"), MAY, "reset with half the body sent"),
    Cell(Fault("close-before-answer", "answer", "close"), MAY, "closed after the request, before any answer"),
    Cell(Fault("reset-before-answer", "answer", "reset"), MAY, "reset after the request, before any answer"),
    Cell(
        Fault("bogus-tls-record", "answer", "bogus_tls", tls_only=True),
        MAY,
        "TLS error while reading the answer",
    ),
    Cell(Fault("after-status-line", "answer", "status_line"), MAY, "closed after the status line"),
    Cell(Fault("mid-body", "answer", "half_body"), MAY, "closed in the middle of the answer's body"),
    Cell(Fault("read-timeout", "answer", "stall"), MAY, "no answer within the read timeout"),
    Cell(_answer("429", 429, V3_429, forward=False), NOTHING, "HTTP 429"),
    Cell(
        _answer("vendor-503", 503, V3_503, forward=False),
        NOTHING,
        "HTTP 503 in the vendor's JSON",
        ("ppinfra",),
    ),
    Cell(
        _answer("minimax-503-1002", 503, MINIMAX_1002, forward=False), NOTHING, "MiniMax 1002", ("minimax",)
    ),
    Cell(_answer("minimax-1002", 200, MINIMAX_1002, forward=False), NOTHING, "MiniMax 1002", ("minimax",)),
    Cell(
        _answer("gateway-503", 503, GATEWAY_503, forward=True, ctype="text/plain"),
        MAY,
        "HTTP 503 from a gateway (text, HTML or empty)",
    ),
    Cell(
        _answer("gateway-502", 502, GATEWAY_502, forward=True, ctype="text/html"),
        MAY,
        "HTTP 502 or another 5xx",
    ),
    Cell(_answer("empty-503", 503, b"", forward=True), MAY, "HTTP 503 from a gateway (text, HTML or empty)"),
    Cell(
        _answer("garbled-2xx", 200, b"<html>ok</html>", forward=True, ctype="text/html"), MAY, "garbled 2xx"
    ),
    Cell(
        _answer("minimax-1000", 200, MINIMAX_1000, forward=True),
        MAY,
        "MiniMax 1000, 1001, 1024",
        ("minimax",),
    ),
    Cell(_answer("refused-400", 400, V3_400, forward=False), REFUSED, "HTTP 400, 401, 403", ("ppinfra",)),
]


#: One fault per phase and kind of answer: what the older Airflow lines of the version matrix walk
#: (the transport libraries are pinned alike on every line; the newest walks every cell).
REPRESENTATIVE = frozenset(
    {
        "refused",
        "tls-alert",
        "reset-in-body",
        "bogus-tls-record",
        "read-timeout",
        "429",
        "vendor-503",
        "minimax-1002",
        "gateway-503",
        "garbled-2xx",
    }
)


def walked(cells: list[Cell], newest_line: bool) -> list[Cell]:
    """The cells a run walks: all on the newest Airflow line, one per phase on the others."""
    return cells if newest_line else [cell for cell in cells if cell.fault.name in REPRESENTATIVE]


def retrying_with_heal(proxy: FaultProxy):
    """
    A replacement for ``HailuoHook._retrying`` that lets ``proxy`` heal a connect-phase fault between
    two attempts (a refused or stalled connect is never seen by the proxy, so it cannot end it).
    """
    original = HailuoHook._retrying

    def _retrying(self, what, retryable, attempts=None):
        kwargs = original(self, what, retryable, attempts)
        log_sleep = kwargs["before_sleep"]

        def before_sleep(state) -> None:
            proxy.heal()
            log_sleep(state)

        kwargs["before_sleep"] = before_sleep
        return kwargs

    return _retrying
