"""
The connection form and its Test button, as a person meets them: a real ``airflow api-server``
(simple auth manager, everyone admin, ``[core] test_connection = Enabled``) driven in headless
Debian Chromium through Playwright, with the emulator behind the connection.

What it shows (Airflow 3.3.2):

* the ``MiniMax Hailuo`` form has labelled fields: Base URL, API key, Port; extras API (a choice
  that may stay empty), MiniMax GroupId, Verify TLS certificates (a toggle), CA bundle path, Read
  timeout;
* saved without a port, the list's Test button is refused by the api-server before any hook code
  runs (the UI sends ``port: 0``; see docs/connection-form.md). This part documents Airflow's
  behaviour: if it starts passing, Airflow fixed it and the docs must say so;
* with the port filled in, Test reports success with the right key, and after an edit to a wrong key
  it reports the key refused, without showing the key.

Only the api-server runs (no scheduler): Test runs the hook inside the api-server.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hailuo.emulator.server import EmulatorServer
from tests.e2e.deployment import AirflowDeployment, DeploymentError
from tests.support.net import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RIGHT_KEY = f"sk-FORM-RIGHT-{secrets.token_hex(12)}"
WRONG_KEY = f"sk-FORM-WRONG-{secrets.token_hex(12)}"
CONN_ID = "hailuo_from_form"
#: Airflow's answer when the Test body's port (0 for an empty port) differs from the stored one (None).
EXTRA_FIELDS = {
    "API": "api",
    "MiniMax GroupId": "group_id",
    "Verify TLS certificates": "verify",
    "CA bundle path": "ca_bundle",
    "Read timeout (seconds)": "timeout",
}
PORT_REFUSAL = "The host or port to test differs from the stored connection"

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
        "Playwright's own browser download is not used",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [dev] extra)")


@pytest.fixture(scope="module")
def form_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(api_key=RIGHT_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def api_server() -> Iterator[AirflowDeployment]:
    """``airflow db migrate`` and one ``airflow api-server`` on loopback, in a temporary AIRFLOW_HOME."""
    home = Path(tempfile.mkdtemp(prefix="hailuo-form-"))
    airflow = AirflowDeployment(
        home=home,
        extra_env={
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        },
    )
    try:
        airflow.home.mkdir(parents=True, exist_ok=True)
        airflow.airflow("db", "migrate", timeout=180)
        airflow.start_component(
            "api-server", "api-server", "--host", "127.0.0.1", "--port", str(airflow.api_port)
        )
        wait_for(
            "the api-server", airflow._api_ready, 90, 0.5, detail=airflow.logs_tail, error=DeploymentError
        )
        yield airflow
    finally:
        airflow.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def page(api_server: AirflowDeployment) -> Iterator[Any]:
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
    """On a failure, a full-page screenshot lands in ``folder`` (the test's tmp dir)."""
    try:
        yield
    except BaseException:
        shot = folder / "failure.png"
        with suppress(Exception):
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the page at the failure: {shot}")
        raise


def _extra_field(page: Any, label: str) -> Any:
    """The form group (label, input, description) of the extra labelled ``label``."""
    label_re = re.compile(rf"^\s*{re.escape(label)}\s*$")
    labels = page.locator("label").filter(has_text=label_re)
    return page.get_by_role("dialog").get_by_role("group").filter(has=labels)


def _open_connections(page: Any, api_url: str) -> None:
    page.goto(f"{api_url}/connections")
    page.get_by_role("button", name="Add Connection").wait_for()


def _press_test(page: Any) -> dict[str, Any]:
    """Press the row's Test button; return the api-server's answer (status code and JSON body)."""
    row = page.get_by_role("row").filter(has_text=CONN_ID)
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections/test")) as answer:
        row.get_by_role("button", name="Test Connection").click()
    response = answer.value
    return {"status": response.status, "body": response.json()}


def _toast(page: Any, text: str) -> str:
    """The text of the toast (role=status) that shows ``text``."""
    toast = page.get_by_role("status").filter(has_text=text).last
    toast.wait_for()
    return str(toast.inner_text())


def _close_toasts(page: Any) -> None:
    for close in page.get_by_role("status").get_by_role("button").all():
        if close.is_visible():
            close.click()


def test_form_save_and_test_button(
    page, api_server: AirflowDeployment, form_emulator: EmulatorServer, tmp_path: Path
) -> None:
    with screenshot_on_failure(page, tmp_path):
        _form_save_and_test(page, api_server, form_emulator)


def _form_save_and_test(page: Any, api_server: AirflowDeployment, form_emulator: EmulatorServer) -> None:
    _open_connections(page, api_server.api_url)

    # -- the form ----------------------------------------------------------------------------------
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(CONN_ID)
    dialog.get_by_role("combobox").fill("MiniMax Hailuo")
    page.get_by_role("option", name="MiniMax Hailuo").click()
    for label in ("Base URL", "API key", "Port (needed by Test)"):
        assert dialog.get_by_label(label, exact=True).is_visible(), label
    assert dialog.get_by_label("Port (needed by Test)").get_attribute("type") == "number"
    for hidden in ("Login", "Schema"):
        assert dialog.get_by_label(hidden, exact=True).count() == 0, f"{hidden} should be hidden"
    dialog.get_by_label("Base URL").fill(form_emulator.url)
    dialog.get_by_label("API key").fill(RIGHT_KEY)

    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    # Airflow 3.3's form does not tie these labels to their inputs (label `for` != input id):
    # find each field's group by its label's text, then the input in that group.
    for label, name in EXTRA_FIELDS.items():
        group = _extra_field(page, label)
        assert group.is_visible() and group.locator(f"input[name=element_{name}]").count() == 1, label
    # TLS checks: a switch (checkbox), on by default, not a text box.
    verify = dialog.locator("[data-scope=switch] input[type=checkbox][name=element_verify]")
    assert verify.count() == 1 and verify.is_checked()
    assert (
        _extra_field(page, "Verify TLS certificates").locator("[data-scope=switch][data-part=root]").count()
        == 1
    )
    assert _extra_field(page, "Verify TLS certificates").locator("textarea").count() == 0
    # The API choice may stay empty (chosen by the host); it offers the three vendors.
    api_choice = dialog.locator("#element_api")
    assert api_choice.inner_text().strip() == "(empty)"
    assert dialog.locator("input[name=element_api]").input_value() == "__null__"
    dialog.get_by_label("API", exact=True).click()
    options = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
    assert options == ["ppinfra", "novita", "minimax", "(empty)"], options
    page.get_by_role("option", name="ppinfra", exact=True).click()
    assert dialog.locator("input[name=element_api]").input_value() == "ppinfra"

    with page.expect_response(
        lambda r: r.url.endswith("/api/v2/connections") and r.request.method == "POST"
    ) as made:
        dialog.get_by_role("button", name="Save").click()
    assert made.value.status == 201, made.value.text()
    stored = api_server.api("GET", f"/api/v2/connections/{CONN_ID}")
    assert stored["conn_type"] == "hailuo" and stored["host"] == form_emulator.url
    assert stored["port"] is None
    assert json.loads(stored["extra"])["api"] == "ppinfra"
    assert json.loads(stored["extra"])["verify"] is True

    # -- Test without a port: Airflow 3.3.2 refuses before the hook runs ---------------------------
    answer = _press_test(page)
    assert answer["status"] == 400 and PORT_REFUSAL in answer["body"]["detail"], answer
    _toast(page, "Bad Request")
    _close_toasts(page)

    # -- fill in the port (the emulator's), Test: the right key is accepted ------------------------
    _edit(page, port=str(form_emulator.port))
    assert api_server.api("GET", f"/api/v2/connections/{CONN_ID}")["port"] == form_emulator.port
    answer = _press_test(page)
    assert answer["status"] == 200 and answer["body"]["status"] is True, answer
    text = _toast(page, "Connection OK")
    assert f"{form_emulator.url} accepted the API key" in text
    _close_toasts(page)

    # -- a wrong key: refused, and the message shows neither key nor internal ids -------------------
    _edit(page, key=WRONG_KEY)
    answer = _press_test(page)
    assert answer["status"] == 200 and answer["body"]["status"] is False, answer
    text = _toast(page, "refused the API key")
    assert f"{form_emulator.url} refused the API key" in text
    for secret in (WRONG_KEY, RIGHT_KEY, "airflow-connection-test"):
        assert secret not in text and secret not in page.content(), secret


def _edit(page: Any, *, port: str | None = None, key: str | None = None) -> None:
    row = page.get_by_role("row").filter(has_text=CONN_ID)
    row.get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    if port is not None:
        dialog.get_by_label("Port (needed by Test)").fill(port)
    if key is not None:
        dialog.get_by_label("API key").fill(key)
    with page.expect_response(
        lambda r: f"/api/v2/connections/{CONN_ID}" in r.url and r.request.method == "PATCH"
    ) as saved:
        dialog.get_by_role("button", name="Save").click()
    assert saved.value.status == 200, saved.value.text()
    dialog.wait_for(state="hidden")
