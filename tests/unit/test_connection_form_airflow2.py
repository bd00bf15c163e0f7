"""
Airflow 2's own connection form (its Flask UI) with this provider's fields: what a page shows, what
Save stores, and what the hook reads from it. Airflow 2 only: later lines have no Flask form.

A browser posts a select's chosen option and a checked box's value (an unchecked box not at all);
:func:`posted_value` reads a drawn field the same way, so a test can save what the page showed.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import pytest

views = pytest.importorskip("airflow.www.views", reason="Airflow 2's Flask UI only")
forms = pytest.importorskip("airflow.www.forms")

from flask import Flask  # noqa: E402

from airflow_provider_hailuo.hooks.connection import connection_settings  # noqa: E402

VERIFY = "extra__hailuo__verify"
API = "extra__hailuo__api"


@pytest.fixture(scope="module")
def app() -> Flask:
    app = Flask(__name__)
    app.config.update(WTF_CSRF_ENABLED=False, SECRET_KEY="unit")
    return app


def _view() -> Any:
    """What ``process_form`` and ``prefill_form`` use of the view: the providers' extra fields."""
    cls = views.ConnectionModelView
    return SimpleNamespace(
        _iter_extra_field_names_and_sensitivity=lambda: cls._iter_extra_field_names_and_sensitivity(None)
    )


def save(app: Flask, posted: dict[str, str]) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """Post the add/edit form as a browser does; (valid, errors, the extra Airflow would store)."""
    data = {"conn_id": "hailuo_form", "conn_type": "hailuo", "extra": "", **posted}
    with app.test_request_context("/connection/add", method="POST", data=data):
        form = forms.create_connection_form_class()()
        valid = form.validate()
        views.ConnectionModelView.process_form(_view(), form, True)
        return valid, form.errors, json.loads(form.extra.data or "{}")


def edit_page(app: Flask, stored_extra: dict[str, Any]) -> Any:
    """The edit page's form of a stored connection, pre-filled the way Airflow 2 does it."""
    stored = SimpleNamespace(conn_id="hailuo_form", conn_type="hailuo", extra=json.dumps(stored_extra))
    with app.test_request_context("/connection/edit/1", method="GET"):
        form = forms.create_connection_form_class()(obj=stored)
        views.ConnectionModelView.prefill_form(_view(), form, 1)
        return form


def posted_value(html: str) -> str | None:
    """What a browser posts for a drawn field: the chosen option, a checked box's value, or nothing."""
    tags: list[tuple[str, dict[str, str | None]]] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            tags.append((tag, dict(attrs)))

    Tags().feed(html)
    (tag, attrs), *rest = tags
    if tag == "select":
        options = [a for t, a in rest if t == "option"]
        chosen = next((a for a in options if "selected" in a), options[0])
        return chosen["value"]
    if attrs.get("type") == "checkbox":
        return attrs.get("value") if "checked" in attrs else None
    return attrs.get("value")


def _verify(extra: dict[str, Any]) -> bool | str:
    conn = SimpleNamespace(host="https://api.example.test", password="k", schema="", port=None, conn_id="c")
    return connection_settings(conn, extra).verify


@pytest.mark.parametrize(
    ("stored", "shown"),
    [({"verify": False}, False), ({"verify": "false"}, False), ({"verify": True}, True), ({}, True)],
)
def test_the_edit_page_shows_the_stored_tls_setting_and_saving_it_keeps_it(app, stored, shown):
    """A stored "off" came back checked, and saving the page for any other change turned checks on."""
    form = edit_page(app, stored)
    posted = posted_value(str(form[VERIFY]()))
    posted_form = {VERIFY: posted} if posted is not None else {}
    valid, errors, extra = save(app, {"extra": form.extra.data or "", **posted_form})
    assert valid, errors
    assert _verify(extra) is shown


@pytest.mark.parametrize(("choice", "verify"), [("true", True), ("false", False)])
def test_the_tls_choice_is_posted_either_way_and_read_by_the_hook(app, choice, verify):
    """An unchecked box is not posted at all, so Test could not say "off": every choice is posted."""
    form = edit_page(app, {})
    assert str(form[VERIFY]()).startswith("<select"), "a choice, posted whichever way it is set"
    valid, errors, extra = save(app, {VERIFY: choice})
    assert valid, errors
    assert _verify(extra) is verify


def test_a_ca_bundle_path_kept_in_verify_by_an_earlier_release_survives_the_edit_page(app):
    form = edit_page(app, {"verify": "/etc/gw/ca.pem"})
    assert posted_value(str(form[VERIFY]())) == "/etc/gw/ca.pem"


@pytest.mark.parametrize("typed", ["PPInfra", "PPINFRA", " novita ", "MiniMax"])
def test_the_api_is_taken_in_any_case_and_stored_as_the_hook_reads_it(app, typed):
    valid, errors, extra = save(app, {API: typed, VERIFY: "true"})
    assert valid, errors
    assert extra["api"] == typed.strip().lower()


def test_an_unknown_api_is_still_refused(app):
    valid, errors, _ = save(app, {API: "openai", VERIFY: "true"})
    assert not valid and API in errors
