"""The connection: its form on every Airflow version, and what its fields resolve to."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from airflow_provider_hailuo import get_provider_info
from airflow_provider_hailuo.api import HailuoAuthError, HailuoError
from airflow_provider_hailuo.hooks.connection import (
    FORM_FIELDS,
    build_ssl_context,
    conn_fields,
    connection_settings,
    form_widgets,
    ui_field_behaviour,
)
from airflow_provider_hailuo.hooks.hailuo import HailuoHook

KEY = "sk-unit-test-key-0123456789"


def conn(host="https://api.example.test", port=None, schema="", conn_id="c", password=KEY):
    return SimpleNamespace(host=host, password=password, schema=schema, port=port, conn_id=conn_id)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("https://gw.example.test/hailuo", 8443, "https://gw.example.test:8443/hailuo"),
        ("gw.example.test/prefix/", 8080, "https://gw.example.test:8080/prefix/"),
        ("http://127.0.0.1:9000", 8000, "http://127.0.0.1:9000"),
        ("http://[::1]/x", 8000, "http://[::1]:8000/x"),
    ],
)
def test_port_goes_into_the_authority_not_after_the_path(host, port, expected):
    assert connection_settings(conn(host=host, port=port), {}).base_url == expected


@pytest.mark.parametrize(
    ("extra", "verify"),
    [
        ({}, True),
        ({"verify": False}, False),
        ({"verify": "false"}, False),
        ({"verify": True, "ca_bundle": "/etc/gw-ca.pem"}, "/etc/gw-ca.pem"),
        ({"ca_bundle": "/etc/gw-ca.pem"}, "/etc/gw-ca.pem"),
        ({"verify": "/old/form/ca.pem"}, "/old/form/ca.pem"),
        ({"extra__hailuo__verify": False}, False),  # how Airflow 2's form stores it
    ],
)
def test_tls_settings_from_the_toggle_and_the_ca_bundle(extra, verify):
    assert connection_settings(conn(), extra).verify == verify


#: How each form spells the TLS toggle. Airflow 2.11's Test button posts a checked box's HTML value
#: ("y") and leaves an unchecked one out; its Save stores a Python bool; the React forms store JSON
#: booleans; people write strings in the Extra JSON or AIRFLOW_CONN_* variables.
TLS_ON = [True, "y", "Y", "yes", "true", "True", "TRUE", "on", "On", "1", 1, " true "]
TLS_OFF = [False, "n", "no", "false", "False", "off", "OFF", "0", 0, " off "]


@pytest.mark.parametrize("spelling", TLS_ON)
@pytest.mark.parametrize("name", ["verify", "extra__hailuo__verify"])
def test_every_spelling_of_on_keeps_tls_checks_and_is_no_ca_bundle(spelling, name):
    assert connection_settings(conn(), {name: spelling}).verify is True
    with_bundle = connection_settings(conn(), {name: spelling, "ca_bundle": "/etc/gw-ca.pem"})
    assert with_bundle.verify == "/etc/gw-ca.pem"


@pytest.mark.parametrize("spelling", TLS_OFF)
@pytest.mark.parametrize("name", ["verify", "extra__hailuo__verify"])
def test_every_spelling_of_off_turns_tls_checks_off(spelling, name):
    settings = connection_settings(conn(), {name: spelling, "ca_bundle": "/etc/gw-ca.pem"})
    assert settings.verify is False and settings.download_verify is False


@pytest.mark.parametrize("unset", [None, ""])
def test_an_unset_toggle_keeps_tls_checks(unset):
    """An empty value is how Airflow 2 stores an untouched field: it must not turn checks off."""
    assert connection_settings(conn(), {"verify": unset}).verify is True


@pytest.mark.parametrize("path", ["/etc/ssl/gw.pem", "certs/gw-ca.pem", "gw-ca.crt", r"C:\certs\gw.pem"])
def test_only_a_path_in_verify_is_a_ca_bundle(path):
    assert connection_settings(conn(), {"verify": path}).verify == path


@pytest.mark.parametrize("word", ["maybe", "flase", "enabled please"])
def test_a_word_that_is_neither_on_off_nor_a_path_is_refused_naming_the_extra(word):
    with pytest.raises(HailuoError, match=r"extra `verify`") as info:
        connection_settings(conn(conn_id="my_conn"), {"verify": word})
    assert "'my_conn'" in str(info.value) and "ca_bundle" in str(info.value)


@pytest.mark.parametrize(
    ("extra", "download_verify"), [({}, True), ({"ca_bundle": "/x.pem"}, True), ({"verify": False}, False)]
)
def test_downloads_keep_the_system_trust_store_unless_checks_are_off(extra, download_verify):
    assert connection_settings(conn(), extra).download_verify is download_verify


def test_every_extra_is_read_from_the_form_as_stored():
    extra = {
        "api": "minimax",
        "group_id": "g-1",
        "timeout": 12,
        "verify": True,
        "prices": '{"currency": "USD"}',
    }
    settings = connection_settings(conn(), extra)
    assert (settings.api, settings.group_id, settings.timeout) == ("minimax", "g-1", 12.0)
    assert settings.prices == '{"currency": "USD"}'
    assert connection_settings(conn(), {"extra__hailuo__prices": {"currency": "USD"}}).prices == {
        "currency": "USD"
    }


def test_a_malformed_prices_extra_does_not_stop_reading_the_connection():
    """Only what spends reads the prices: a typo must not fail the wait for a paid video."""
    assert connection_settings(conn(), {"prices": "{not json"}).prices == "{not json"


@pytest.mark.parametrize(("given", "read"), [(None, None), ("", None), (5, 5.0), ("2.5", 2.5), (20, 20.0)])
def test_submits_per_minute_is_read_as_a_number_and_unset_means_no_pacing(given, read):
    extra = {} if given is None else {"submits_per_minute": given}
    assert connection_settings(conn(), extra).submits_per_minute == read
    form_stored = {"extra__hailuo__submits_per_minute": given} if given is not None else {}
    assert connection_settings(conn(), form_stored).submits_per_minute == read


@pytest.mark.parametrize("bad", ["five", -5, 0, "0", "nan", "inf", True, [5]])
def test_a_bad_submits_per_minute_is_refused_naming_the_extra_and_the_connection(bad):
    with pytest.raises(HailuoError, match=r"'c1'.*`submits_per_minute` must be a number over 0"):
        connection_settings(conn(conn_id="c1"), {"submits_per_minute": bad})


@pytest.mark.parametrize("bad", ["abc", -1, 0, "nan", "inf", "1e999"])
def test_a_bad_timeout_names_the_extra(bad):
    with pytest.raises(Exception, match="timeout"):
        connection_settings(conn(), {"timeout": bad})


def test_the_form_declares_every_documented_extra_with_a_label():
    fields = conn_fields()
    assert set(fields) == {
        "api",
        "group_id",
        "verify",
        "ca_bundle",
        "timeout",
        "prices",
        "submits_per_minute",
    }
    assert fields["verify"]["schema"]["type"][0] == "boolean"  # a toggle, not a text box
    assert fields["prices"]["schema"]["type"][0] == "object"  # a JSON field
    assert '"currency": "USD"' in fields["prices"]["description"]  # with an example
    assert fields["submits_per_minute"]["schema"]["type"] == ["number", "null"]  # 2.5 a minute is one
    assert all(f["label"] and f["description"] for f in fields.values())
    info = get_provider_info()["connection-types"][0]
    assert info["conn-fields"] == fields
    assert "port" not in info["ui-field-behaviour"]["hidden-fields"]


def test_older_airflow_forms_get_the_same_fields_from_the_hook():
    pytest.importorskip("wtforms")
    pytest.importorskip("flask_appbuilder")
    from wtforms import StringField

    widgets = HailuoHook.get_connection_form_widgets()
    assert set(widgets) == {f.name for f in FORM_FIELDS}
    # Airflow < 3.2 drops a hook's whole form for any field class but its four plain ones.
    assert widgets["prices"].field_class is StringField
    assert type(widgets["prices"].kwargs["widget"]).__name__ == "BS3TextAreaFieldWidget"
    # The only field classes Airflow 2's form takes: one other class and it drops the whole form.
    allowed = {"StringField", "IntegerField", "BooleanField", "PasswordField"}
    assert {w.field_class.__name__ for w in widgets.values()} <= allowed
    behaviour = HailuoHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["password"] == "API key"


def test_ca_bundle_context_is_built_from_the_file(tmp_path):
    import ssl

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    context = build_ssl_context(str(path))
    assert isinstance(context, ssl.SSLContext) and context.cert_store_stats()["x509_ca"] >= 1
    assert build_ssl_context(False) is False and build_ssl_context(True) is True


@pytest.mark.parametrize("pasted", [f"{KEY}\n", f"  {KEY}\r\n", f"\t{KEY}", f"{KEY}\u00a0"])
def test_whitespace_around_the_key_is_not_part_of_it(pasted):
    settings = connection_settings(conn(password=pasted), {})
    assert settings.api_key == KEY
    assert settings.auth_header == {"Authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize("inside", ["\n", "\r\n", "\x00", "\x01", "\t", "\x7f", "\x85", "\u200b", "\u2028"])
def test_a_control_character_inside_the_key_is_refused_naming_the_rule_not_the_key(inside):
    head, tail = KEY[:10], KEY[10:]
    with pytest.raises(HailuoError) as info:
        connection_settings(conn(password=head + inside + tail, conn_id="my_conn"), {})
    text = f"{info.value} {info.value!r}"
    assert "'my_conn'" in text and "control" in text
    assert head not in text and tail not in text
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_a_key_of_whitespace_only_is_no_key():
    with pytest.raises(HailuoAuthError, match="no API key"):
        connection_settings(conn(password=" \n"), {})


@pytest.mark.parametrize("version", [(2, 11, 2), (3, 3, 2)])
def test_the_port_placeholder_gives_443_to_a_base_url_typed_without_a_scheme(version):
    """
    A Base URL typed without a scheme is https: "80 for http://" was read as "80 unless https://",
    and the port went into the URL as https://host:80, which no API answers.
    """
    assert connection_settings(conn(host="api.ppinfra.com", port=443), {}).base_url == (
        "https://api.ppinfra.com:443"
    )
    placeholder = ui_field_behaviour(version)["placeholders"]["port"]
    assert re.search(r"443\b[^;]*\bno scheme\b", placeholder), placeholder
    assert re.search(r"\b80 only\b[^;]*http://", placeholder), placeholder


#: Only Airflow 3.3.2's Test route refuses a connection stored without a port (its list sends 0):
#: 3.3.0 and 3.3.1 have no such check, 3.0-3.2 neither, and 2.11's Test sends the form as typed.
@pytest.mark.parametrize(
    ("version", "needed"),
    [
        ((2, 11, 2), False),
        ((3, 0, 6), False),
        ((3, 1, 8), False),
        ((3, 2, 2), False),
        ((3, 3, 1), False),
        ((3, 3, 2), True),
        ((3, 4, 0), True),
    ],
)
def test_the_port_is_labelled_needed_by_test_only_where_test_needs_it(version, needed):
    behaviour = ui_field_behaviour(version)
    label, placeholder = behaviour["relabeling"]["port"], behaviour["placeholders"]["port"]
    if needed:
        assert label == "Port (needed by Test)" and not placeholder.startswith("optional"), behaviour
    else:
        assert label == "Port" and placeholder.startswith("optional"), behaviour
    assert "port" not in behaviour["hidden_fields"]


@pytest.mark.parametrize(("version", "shown"), [((2, 11, 2), True), ((3, 0, 6), False), ((3, 3, 2), False)])
def test_airflow_2_keeps_the_extra_box_its_test_script_reads(version, shown):
    """
    Airflow 2's connection_form.js saves a CodeMirror editor on Test that it makes only for a visible
    Extra box: a page opened with the box hidden failed ("Cannot convert undefined or null to object").
    """
    behaviour = ui_field_behaviour(version)
    assert ("extra" not in behaviour["hidden_fields"]) is shown
    assert {"schema", "login"} <= set(behaviour["hidden_fields"])


def test_airflow_3_0_and_3_1_get_the_plain_field_classes_their_api_server_stands_in_for():
    """Their api-server swaps wtforms' field classes for stand-ins that take nothing more."""
    wtforms = pytest.importorskip("wtforms")
    widgets = form_widgets((3, 1, 8))
    assert widgets["verify"].field_class is wtforms.BooleanField
    assert {w.field_class for w in widgets.values()} <= {
        wtforms.StringField,
        wtforms.IntegerField,
        wtforms.BooleanField,
    }
    assert all(set(w.kwargs) <= {"description", "default", "validators", "widget"} for w in widgets.values())


def test_airflow_2_gets_only_the_field_classes_it_accepts():
    """Airflow 2.11 drops a provider's whole form for any other class (a subclass included)."""
    wtforms = pytest.importorskip("wtforms")
    pytest.importorskip("flask_appbuilder")
    widgets = form_widgets((2, 11, 2))
    allowed = {wtforms.IntegerField, wtforms.PasswordField, wtforms.StringField, wtforms.BooleanField}
    assert {w.field_class for w in widgets.values()} <= allowed
