"""
The connection form and its Test button on Airflow 2.11, as a person meets them: a real
``airflow webserver`` (FAB, everyone admin through ``AUTH_ROLE_PUBLIC``, ``[core] test_connection =
Enabled``) driven in headless Debian Chromium through Playwright, with an HTTPS emulator behind the
connection whose certificate comes from a throw-away CA.

What it shows (Airflow 2.11.2; the same story on 3.3 is tests/e2e/test_connection_form.py):

* the ``MiniMax Hailuo`` form has labelled fields (Base URL, API key, Port without "needed by
  Test", the extras), Login and Schema hidden, the Extra box shown (its Test script needs it);
* TLS on with the CA bundle, then TLS off, each reaches Test as the hook reads it (a checked box
  used to arrive as "y", read as a CA bundle path; an unchecked one did not arrive at all);
* ``PPInfra`` is saved (as ``ppinfra``), and the saved connection keeps TLS off;
* the edit page shows TLS off, and its Test works: it says "No API key" until the key is typed
  again (Airflow 2.11 never puts the stored key on the page), then "Connection OK", and after an
  edit to a wrong key "refused the API key", never showing a key; saving keeps TLS off.

Runs on the Airflow 2 line only (``make test-compat``); Airflow 3 has no Flask UI.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from airflow_provider_hailuo.emulator.server import EmulatorServer
from airflow_provider_hailuo.hooks.connection import connection_settings

if int(version("apache-airflow").split(".")[0]) >= 3:
    pytest.skip("Airflow 2's Flask connection form: Airflow 3 has none", allow_module_level=True)

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
        "Playwright's own browser download is not used",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [dev] extra)")

from tests.e2e.deployment import AirflowDeployment, DeploymentError  # noqa: E402
from tests.support.net import wait_for  # noqa: E402

pytestmark = pytest.mark.timeout(180)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
RIGHT_KEY = f"sk-FORM211-RIGHT-{secrets.token_hex(12)}"
WRONG_KEY = f"sk-FORM211-WRONG-{secrets.token_hex(12)}"
CONN_ID = "hailuo_from_form_211"
#: The visible label of each field, by the id of its input.
LABELS = {
    "host": "Base URL",
    "password": "API key",
    "port": "Port",
    "extra": "Extra (JSON; the fields above win)",
    "extra__hailuo__api": "API",
    "extra__hailuo__group_id": "MiniMax GroupId",
    "extra__hailuo__verify": "Verify TLS certificates",
    "extra__hailuo__ca_bundle": "CA bundle path",
    "extra__hailuo__timeout": "Read timeout (seconds)",
}
TLS = "#extra__hailuo__verify"
#: Everyone is admin: no login page stands between the browser and the form.
WEBSERVER_CONFIG = 'AUTH_ROLE_PUBLIC = "Admin"\n'


@pytest.fixture(scope="module")
def tls_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(api_key=RIGHT_KEY, tls=True) as server:
        yield server


@pytest.fixture(scope="module")
def webserver() -> Iterator[AirflowDeployment]:
    """``airflow db migrate`` and one ``airflow webserver`` (one worker) on loopback."""
    home = Path(tempfile.mkdtemp(prefix="hailuo-form211-"))
    airflow = AirflowDeployment(
        home=home,
        extra_env={
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            # Airflow 2 refuses SQLite with any other executor; nothing runs tasks here anyway.
            "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
            "AIRFLOW__WEBSERVER__WORKERS": "1",
            "AIRFLOW__WEBSERVER__WORKER_REFRESH_BATCH_SIZE": "0",
            "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_hex(16),
            # Gunicorn's control socket is one path per user: another webserver on the host owns it.
            "GUNICORN_CMD_ARGS": "--no-control-socket",
        },
    )
    try:
        home.mkdir(parents=True, exist_ok=True)
        (home / "webserver_config.py").write_text(WEBSERVER_CONFIG)
        airflow.airflow("db", "migrate", timeout=120)
        airflow.start_component(
            "webserver", "webserver", "--hostname", "127.0.0.1", "--port", str(airflow.api_port)
        )

        def ready() -> bool:
            airflow._ensure_alive()
            return requests.get(f"{airflow.api_url}/health", timeout=5).status_code == 200

        wait_for("the webserver", ready, 90, 0.5, detail=airflow.logs_tail, error=DeploymentError)
        yield airflow
    finally:
        airflow.stop_component("webserver", grace=2)  # gunicorn's graceful stop takes ~10 s
        airflow.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def page(webserver: AirflowDeployment) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


@contextmanager
def screenshot_on_failure(page: Any, folder: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        shot = folder / "failure.png"
        with suppress(Exception):
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the page at the failure: {shot}")
        raise


def test_form_save_edit_and_test_button(page, webserver, tls_emulator, tmp_path: Path) -> None:
    with screenshot_on_failure(page, tmp_path):
        _form_save_edit_and_test(page, webserver, tls_emulator)


def _form_save_edit_and_test(page: Any, airflow: AirflowDeployment, emulator: EmulatorServer) -> None:
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))

    # -- the form ----------------------------------------------------------------------------------
    page.goto(f"{airflow.api_url}/connection/add")
    page.fill("#conn_id", CONN_ID)
    page.select_option("#conn_type", "hailuo")
    for field, label in LABELS.items():
        shown = page.locator(f"label[for={field}]")
        assert shown.is_visible() and shown.inner_text().strip() == label, field
        assert page.locator(f"#{field}").count() == 1, field
    assert "needed" not in page.locator("#port").get_attribute("placeholder")
    for hidden in ("login", "schema"):
        assert not page.locator(f"label[for={hidden}]").is_visible(), f"{hidden} should be hidden"
    # TLS: a choice of on (the default) and off, each posted whichever way it is set.
    assert page.locator(TLS).evaluate("e => e.tagName") == "SELECT"
    assert page.locator(f"{TLS} option").all_inner_texts() == [
        "on: check the certificate",
        "off: no checks (a local emulator only)",
    ]
    assert page.locator(TLS).input_value() == "true"
    page.fill("#host", emulator.url)
    page.fill("#password", RIGHT_KEY)
    page.fill("#extra__hailuo__api", "PPInfra")

    # -- Test from the form: TLS on with the emulator's CA, then TLS off ---------------------------
    page.fill("#extra__hailuo__ca_bundle", emulator.ca_path)
    answer = _press_test(page, script_errors)
    assert answer["extra"]["verify"] == "true", answer
    assert answer["status"] is True, answer
    page.fill("#extra__hailuo__ca_bundle", "")
    assert _press_test(page, script_errors)["status"] is False  # the throw-away CA is trusted nowhere
    page.select_option(TLS, "false")
    answer = _press_test(page, script_errors)
    assert answer["extra"]["verify"] == "false" and answer["status"] is True, answer

    # -- save: the API in any case, TLS off stays off ----------------------------------------------
    page.click("form#model_form div.well button[type=submit]")
    page.wait_for_url(lambda url: "/connection/add" not in url)
    stored = _stored(airflow)
    assert stored["extra"]["api"] == "ppinfra", stored
    assert _verify(stored) is False, stored

    # -- the edit page: shows TLS off; Test needs the key typed again ------------------------------
    _open_edit_page(page, airflow)
    assert page.locator(TLS).input_value() == "false"
    assert page.locator("#extra").count() == 1 and page.locator("label[for=extra]").is_visible()
    assert page.locator("#password").input_value() == ""  # Airflow 2.11 never puts the key on the page
    answer = _press_test(page, script_errors)
    assert answer["status"] is False and answer["message"].startswith("No API key"), answer
    page.fill("#password", RIGHT_KEY)
    answer = _press_test(page, script_errors)
    assert answer["status"] is True, answer
    assert f"Connection OK: {emulator.url} accepted the API key" in _alert(page, "Connection OK")

    # -- edit to a wrong key: refused, and nothing on the page shows a key -------------------------
    page.fill("#password", WRONG_KEY)
    answer = _press_test(page, script_errors)
    assert answer["status"] is False, answer
    text = _alert(page, "refused the API key")
    assert f"{emulator.url} refused the API key (HTTP 401)" in text
    for key in (WRONG_KEY, RIGHT_KEY):
        assert key not in text and key not in page.content()
    page.click("form#model_form div.well button[type=submit]")
    page.wait_for_url(lambda url: "/connection/edit/" not in url)
    stored = _stored(airflow)
    assert stored["password"] == WRONG_KEY and _verify(stored) is False, "saving the page kept TLS off"


def _press_test(page: Any, script_errors: list[str]) -> dict[str, Any]:
    """Press Test; return the answer (status, message) and the extra the page sent."""
    script_errors.clear()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/connections/test"), timeout=20_000) as answer:
        page.click("#test-connection")
    # The page's script failing (it did on the edit page with the Extra box hidden) sends nothing.
    assert not script_errors, script_errors
    sent = json.loads(answer.value.request.post_data)
    assert answer.value.status == 200, answer.value.text()
    return {**answer.value.json(), "extra": json.loads(sent["extra"])}


def _alert(page: Any, text: str) -> str:
    alert = page.locator(".alert").filter(has_text=text).first
    alert.wait_for()
    return str(alert.inner_text())


def _open_edit_page(page: Any, airflow: AirflowDeployment) -> None:
    page.goto(f"{airflow.api_url}/connection/list/")
    row = page.locator("tr").filter(has_text=CONN_ID)
    row.locator("a[href*='/connection/edit/']").first.click()
    page.wait_for_url("**/connection/edit/**")


def _stored(airflow: AirflowDeployment) -> dict[str, Any]:
    """The stored connection as the deployment keeps it (password and extra decrypted)."""
    (row,) = airflow.query("SELECT password, extra FROM connection WHERE conn_id = :c", c=CONN_ID)
    return {"password": airflow.decrypt(row["password"]), "extra": json.loads(airflow.decrypt(row["extra"]))}


def _verify(stored: dict[str, Any]) -> bool | str:
    conn = SimpleNamespace(host="https://x.test", password="k", schema="", port=None, conn_id=CONN_ID)
    return connection_settings(conn, stored["extra"]).verify
