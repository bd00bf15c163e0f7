"""
``HailuoHook.test_connection`` (the connection form's Test button, ``airflow connections test``)
over real HTTP on loopback: the emulator with the right key, a wrong key and no key; a closed port;
a server that accepts connections and never answers; a web page that is not the API.

Each message is checked for what a person needs to act on, and for what it must not carry: the key,
Airflow's random temporary connection id, or the hook's internal probe task id.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_hailuo.emulator.server import EmulatorServer
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from tests.support.connections import hailuo_conn_json
from tests.support.net import free_port

#: What the hook reads to prove the key works; it must stay an internal detail.
PROBE_TASK_ID = "airflow-connection-test"
#: The Test button answers within about ten seconds (one attempt, (3 s connect, 7 s read)).
TEST_BUTTON_BUDGET = 12.0

VENDORS = ("ppinfra", "novita", "minimax")


def _key(label: str) -> str:
    """A long, unique key: finding it in a message cannot be a coincidence."""
    return f"sk-{label}-{secrets.token_hex(16)}"


def _conn_id() -> str:
    """Like the random id the api-server's Test route gives its temporary connection."""
    return f"tmpconn{secrets.token_hex(6)}"


def _test(monkeypatch: pytest.MonkeyPatch, host: str, key: str, extra: dict | None = None):
    """``test_connection`` of a fresh connection; returns (ok, message, conn_id, seconds)."""
    conn_id = _conn_id()
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", hailuo_conn_json(host, key, extra))
    started = time.monotonic()
    ok, message = HailuoHook(hailuo_conn_id=conn_id).test_connection()
    return ok, message, conn_id, time.monotonic() - started


def _assert_clean(message: str, *secrets_: str, conn_id: str) -> None:
    for secret in secrets_:
        assert secret not in message, f"the key is in the message: {message!r}"
    assert conn_id not in message, f"the temporary connection id is in the message: {message!r}"
    assert PROBE_TASK_ID not in message, f"the internal probe task id is in the message: {message!r}"


@pytest.fixture(params=VENDORS)
def vendor_emulator(request: pytest.FixtureRequest) -> Iterator[tuple[EmulatorServer, str, str]]:
    """An emulator of one vendor's API with its own key: (server, key, vendor)."""
    key = _key("RIGHT")
    with EmulatorServer(api=request.param, api_key=key) as server:
        yield server, key, request.param


def test_the_right_key_is_accepted(vendor_emulator, monkeypatch):
    server, key, vendor = vendor_emulator
    ok, message, conn_id, seconds = _test(monkeypatch, server.url, key, {"api": vendor})
    assert ok is True, message
    assert "accepted the API key" in message
    assert server.url in message
    _assert_clean(message, key, conn_id=conn_id)
    assert seconds < TEST_BUTTON_BUDGET


def test_a_wrong_key_is_reported_as_refused_without_showing_it(vendor_emulator, monkeypatch):
    server, right_key, vendor = vendor_emulator
    wrong_key = _key("WRONG")
    ok, message, conn_id, _ = _test(monkeypatch, server.url, wrong_key, {"api": vendor})
    assert ok is False
    assert "refused the API key" in message, message
    assert server.url in message
    _assert_clean(message, wrong_key, right_key, conn_id=conn_id)


def test_the_api_servers_own_path_through_airflows_connection_model(emulator_server, monkeypatch):
    """What ``POST /api/v2/connections/test`` does: a transient connection in an env var, then test."""
    from airflow.models import Connection

    from tests.conftest import EMULATOR_KEY

    conn_id = _conn_id()
    conn = Connection(conn_id=conn_id, conn_type="hailuo", host=emulator_server.url, password=EMULATOR_KEY)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn.get_uri())
    ok, message = conn.test_connection()
    assert ok is True, message
    assert "accepted the API key" in message
    _assert_clean(message, EMULATOR_KEY, conn_id=conn_id)


def test_a_closed_port_is_unreachable(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    ok, message, conn_id, seconds = _test(monkeypatch, url, _key("ANY"))
    assert ok is False
    assert f"{url} is unreachable" in message, message
    _assert_clean(message, conn_id=conn_id)
    assert seconds < TEST_BUTTON_BUDGET


class _SilentServer:
    """Accepts TCP connections on loopback and never answers (a hung gateway)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="silent-server", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:  # the accept timeout: look at the stop flag again
                continue
            self.accepted.append(conn)  # held open, never read, never answered

    def __enter__(self) -> _SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def test_no_key_says_so_and_sends_nothing(monkeypatch):
    with _SilentServer() as silent:
        url = f"http://127.0.0.1:{silent.port}"
        ok, message, conn_id, seconds = _test(monkeypatch, url, "")
        time.sleep(0.5)  # a connection the hook opened would be accepted by now
        accepted = len(silent.accepted)
    assert ok is False
    assert message.startswith("No API key"), message
    assert "refused" not in message  # nothing was sent, so nothing was refused
    assert accepted == 0, "the hook contacted the server without a key"
    assert seconds < 2
    _assert_clean(message, conn_id=conn_id)


def test_a_server_that_never_answers_fails_within_the_budget(monkeypatch):
    with _SilentServer() as silent:
        url = f"http://127.0.0.1:{silent.port}"
        # A long read timeout on the connection must not stretch the Test button's one attempt.
        ok, message, conn_id, seconds = _test(monkeypatch, url, _key("ANY"), {"timeout": 120})
        accepted = len(silent.accepted)
    assert ok is False
    assert seconds < TEST_BUTTON_BUDGET, f"the test took {seconds:.1f}s"
    assert f"{url} did not answer within 7 s" in message, message  # it was reached: not "unreachable"
    assert accepted == 1, f"one attempt expected, the server saw {accepted} connections"
    _assert_clean(message, conn_id=conn_id)


def _page_handler(status: int, body: bytes) -> type[BaseHTTPRequestHandler]:
    """A web server that answers every path with one HTML page (not the API)."""

    class Handler(BaseHTTPRequestHandler):
        def _page(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _page

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    return Handler


@contextmanager
def _web_server(status: int, body: bytes) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _page_handler(status, body))
    thread = threading.Thread(target=server.serve_forever, name="web-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def html_server() -> Iterator[str]:
    with _web_server(200, b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>") as url:
        yield url


@pytest.fixture
def empty_web_server() -> Iterator[str]:
    """An empty web server: every path is a 404 page."""
    with _web_server(404, b"<html><body><h1>404 Not Found</h1></body></html>") as url:
        yield url


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_web_page_is_not_the_api(html_server, monkeypatch, vendor):
    ok, message, conn_id, _ = _test(monkeypatch, html_server, _key("ANY"), {"api": vendor})
    assert ok is False
    assert "not like the Hailuo API" in message, message
    assert html_server in message
    _assert_clean(message, conn_id=conn_id)


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_404_page_is_not_task_not_found(empty_web_server, monkeypatch, vendor):
    """Issue 18, 1: every 404 was read as "no such task", so any web server "accepted the key"."""
    ok, message, conn_id, _ = _test(monkeypatch, empty_web_server, _key("WRONG"), {"api": vendor})
    assert ok is False, message
    assert "not like the Hailuo API (HTTP 404, text/html)" in message, message
    _assert_clean(message, conn_id=conn_id)


def test_a_base_url_with_an_extra_path_is_not_ok(vendor_emulator, monkeypatch):
    emulator, key, vendor_name = vendor_emulator
    for wrong_key in (key, _key("WRONG")):
        url = emulator.url + ("/v3/async" if vendor_name != "minimax" else "/v1")
        ok, message, conn_id, _ = _test(monkeypatch, url, wrong_key, {"api": vendor_name})
        assert ok is False, message
        assert "accepted the API key" not in message
        _assert_clean(message, key, wrong_key, conn_id=conn_id)


@pytest.mark.parametrize(
    ("host_api", "conn_api"), [("minimax", None), ("minimax", "ppinfra"), ("ppinfra", "minimax")]
)
def test_another_vendors_host_is_named_with_the_extra_to_set(monkeypatch, host_api, conn_api):
    """A MiniMax host left on the default PPInfra dialect (and the reverse), right key or wrong."""
    key = _key("RIGHT")
    with EmulatorServer(api=host_api, api_key=key) as emulator:
        for sent_key in (key, _key("WRONG")):
            extra = {"api": conn_api} if conn_api else {}
            ok, message, conn_id, _ = _test(monkeypatch, emulator.url, sent_key, extra)
            assert ok is False, message
            assert "set the connection's `api` extra to" in message, message
            expected = "`minimax`" if host_api == "minimax" else "`ppinfra` or `novita`"
            assert expected in message, message
            _assert_clean(message, key, sent_key, conn_id=conn_id)


@pytest.fixture(scope="module")
def tls_emulator() -> Iterator[tuple[EmulatorServer, str]]:
    """HTTPS on loopback with a certificate from a throw-away CA (no trust store knows it)."""
    key = _key("TLS")
    with EmulatorServer(api_key=key, tls=True) as server:
        yield server, key


@pytest.mark.parametrize(
    "form_extra",
    [
        {"verify": "y", "extra__hailuo__verify": "y"},  # Airflow 2.11's Test button, box checked
        {"verify": True},  # Airflow 2.11's Save, and the React forms
        {"verify": "true", "extra__hailuo__verify": "true"},  # the 2.11 choice this provider draws
    ],
)
def test_tls_on_in_any_spelling_checks_the_certificate(tls_emulator, monkeypatch, form_extra):
    """TLS on was read as a CA bundle at the path "y": the test failed before sending anything."""
    server, key = tls_emulator
    ok, message, conn_id, _ = _test(monkeypatch, server.url, key, {**form_extra, "ca_bundle": server.ca_path})
    assert ok is True, message
    ok, message, conn_id, _ = _test(monkeypatch, server.url, key, form_extra)
    assert ok is False and "unreachable (SSLError)" in message, message
    _assert_clean(message, key, conn_id=conn_id)


@pytest.mark.parametrize("off", [False, "false", "off", "n"])
def test_tls_off_in_any_spelling_reaches_a_self_signed_emulator(tls_emulator, monkeypatch, off):
    server, key = tls_emulator
    ok, message, _, _ = _test(monkeypatch, server.url, key, {"verify": off, "extra__hailuo__verify": off})
    assert ok is True, message
