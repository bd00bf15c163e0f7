"""
What a ``hailuo`` connection means: its form, and the settings it resolves to.

One table (:data:`FORM_FIELDS`) describes every extra a user can set. Airflow 3.2+ reads it as the
provider info's ``conn-fields``; older versions call the hook's ``get_connection_form_widgets()``,
built from the same table, so the form is labelled the same way everywhere and no extra exists only
in raw JSON.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_hailuo.api import HailuoAuthError, HailuoError
from airflow_provider_hailuo.prices import PRICES_EXAMPLE

DEFAULT_BASE_URL = "https://api.ppinfra.com"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
CONN_TYPE = "hailuo"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FormField:
    """One extra of the connection form."""

    name: str
    label: str
    description: str
    kind: str  # "string" | "boolean" | "integer" | "number" | "object" (JSON)
    default: Any = None
    choices: tuple[str, ...] = ()


FORM_FIELDS: tuple[FormField, ...] = (
    FormField(
        "api",
        "API",
        "Which vendor's API the host speaks: ppinfra, novita or minimax. Empty: chosen by the host "
        "(api.minimax.io / api.minimaxi.com: minimax, api.novita.ai: novita, else ppinfra).",
        "string",
        choices=("ppinfra", "novita", "minimax"),
    ),
    FormField(
        "group_id",
        "MiniMax GroupId",
        "Only for MiniMax accounts that need a GroupId on file retrieval.",
        "string",
    ),
    FormField(
        "verify",
        "Verify TLS certificates",
        "Check the API's TLS certificate. Turn off only for a local emulator.",
        "boolean",
        default=True,
    ),
    FormField(
        "ca_bundle",
        "CA bundle path",
        "A PEM file of CA certificates that signed the API host's certificate (private gateways). "
        "Used for API calls only: video downloads from storage keep the system's trust store.",
        "string",
    ),
    FormField(
        "timeout",
        "Read timeout (seconds)",
        "How long one API call may wait for an answer. Default 30.",
        "integer",
    ),
    FormField(
        "prices",
        "Prices (JSON)",
        "Your price per video, over the built-in list (PPInfra's list prices; none for Novita and "
        "MiniMax): keys <resolution>-<duration>s, models by catalogue name (or the vendor's own name "
        f"for a passed-through model). Example: {PRICES_EXAMPLE}",
        "object",
    ),
    FormField(
        "submits_per_minute",
        "Submits per minute",
        "The account's video-generation allowance (MiniMax: about 5 on a standard account). Set: the "
        "submits of one mapped batch are spread out to stay under it. Empty: no pacing. DAGs that "
        "share the account should split it (one connection each).",
        "number",
    ),
)

#: Airflow 3.3.2's connections list sends ``port: 0`` to its Test route for a connection stored
#: without a port, and the route then refuses the test ("the host or port to test differs from the
#: stored connection") before any hook code runs; 3.3.0/3.3.1 and older lines have no such check, and
#: Airflow 2.11's Test sends the form as typed. Tasks never need the port (docs/connection-form.md).
TEST_NEEDS_PORT_FROM = (3, 3, 2)
#: A positive decimal number as a form field types it (``5``, ``2.5``): the forms take no FloatField.
NUMBER_FORM = r"^\s*(\d+\.?\d*|\.\d+)\s*$"
#: A Base URL without a scheme is https: a bare "80 for http://" read as "80 unless https://" gave
#: https://host:80. A port already in the Base URL wins over this one.
PORT_HINT = "443 for https:// or no scheme; 80 only for an http:// Base URL"


def airflow_version() -> tuple[int, int, int]:
    from airflow.providers.common.compat.version_compat import get_base_airflow_version_tuple

    return get_base_airflow_version_tuple()


def ui_field_behaviour(version: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """
    How the standard fields look on ``version`` (default: the installed Airflow).

    The port label says "needed by Test" only where Test refuses a connection stored without one.
    Airflow 2's Flask page keeps the raw Extra box: its script reads the box when Test is pressed and
    fails ("Cannot convert undefined or null to object") when the page opened with the box hidden.
    """
    version = version or airflow_version()
    needs_port = version >= TEST_NEEDS_PORT_FROM
    relabeling = {
        "host": "Base URL",
        "password": "API key",
        "port": "Port (needed by Test)" if needs_port else "Port",
    }
    hidden = ["schema", "login", "extra"]
    if version < (3, 0, 0):
        hidden.remove("extra")
        relabeling["extra"] = "Extra (JSON; the fields above win)"
    return {
        "hidden_fields": hidden,
        "relabeling": relabeling,
        "placeholders": {
            "host": "https://api.ppinfra.com, https://api.novita.ai or https://api.minimax.io",
            "password": "your PPInfra, Novita or MiniMax API key",
            "port": PORT_HINT if needs_port else f"optional: {PORT_HINT}",
        },
    }


def conn_fields() -> dict[str, Any]:
    """The provider info's ``conn-fields`` (JSON schema per extra; Airflow 3.2+)."""
    fields: dict[str, Any] = {}
    for f in FORM_FIELDS:
        schema: dict[str, Any] = {"type": [f.kind, "null"]}
        if f.default is not None:
            schema["default"] = f.default
        if f.choices:
            schema["enum"] = [*f.choices, None]
            # Airflow's form shows a null choice as "null": name it (the description says what it means).
            schema["values_display"] = {"null": "(empty)"}
        fields[f.name] = {"label": f.label, "description": f.description, "schema": schema}
    return fields


def ui_field_behaviour_kebab(version: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """The provider info's ``ui-field-behaviour`` (Airflow 3.2+ spells the keys in kebab case)."""
    return {key.replace("_", "-"): value for key, value in ui_field_behaviour(version).items()}


def form_widgets(version: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """
    ``get_connection_form_widgets()`` for Airflow < 3.2 (imported only where the form is built).

    Airflow 3.0/3.1's api-server reads the field classes, labels and defaults through stand-ins of
    its own that take nothing more (it has no Flask UI), so the fields stay plain there. Airflow 2's
    Flask UI posts, stores and pre-fills fields itself: it gets fields made for it.
    """
    if (version or airflow_version()) < (3, 0, 0):
        from airflow_provider_hailuo.hooks.form_airflow2 import flask_widgets

        return flask_widgets()
    from wtforms import BooleanField, IntegerField, StringField
    from wtforms.validators import AnyOf, NumberRange, Optional, Regexp

    try:
        from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget, BS3TextFieldWidget
    except ImportError:  # Airflow 3.0/3.1 without the FAB provider
        text: dict[str, Any] = {}
        area: dict[str, Any] = {}
    else:
        text = {"widget": BS3TextFieldWidget()}
        # A StringField drawn as a text area: Airflow accepts only its four plain field classes.
        area = {"widget": BS3TextAreaFieldWidget()}
    widgets: dict[str, Any] = {}
    for f in FORM_FIELDS:
        if f.kind == "boolean":
            widgets[f.name] = BooleanField(f.label, description=f.description, default=f.default)
        elif f.kind == "integer":
            widgets[f.name] = IntegerField(
                f.label, description=f.description, validators=[Optional(), NumberRange(min=1)], **text
            )
        elif f.kind == "object":
            widgets[f.name] = StringField(f.label, description=f.description, validators=[Optional()], **area)
        elif f.kind == "number":
            # Text: these forms take no FloatField (Airflow 2 drops the whole form over one).
            number = Regexp(NUMBER_FORM, message="a number, e.g. 5 or 2.5")
            widgets[f.name] = StringField(
                f.label, description=f.description, validators=[Optional(), number], **text
            )
        else:
            validators = [Optional(), AnyOf(list(f.choices))] if f.choices else [Optional()]
            widgets[f.name] = StringField(f.label, description=f.description, validators=validators, **text)
    return widgets


def extra_value(extra: Mapping[str, Any], name: str) -> Any:
    """An extra as any Airflow version's form stored it (plain, or ``extra__hailuo__<name>``)."""
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(f"extra__{CONN_TYPE}__{name}")
    return None if value == "" else value


@dataclass(frozen=True)
class ConnectionSettings:
    """What a Hailuo connection resolves to. ``repr`` hides the key."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    #: False (no TLS checks), True (system trust store) or a CA bundle path, for API calls.
    verify: bool | str = True
    #: Read timeout for API calls from the connection's ``timeout`` extra, if set.
    timeout: float | None = None
    #: The connection's ``api`` extra (None: chosen by the host).
    api: str | None = None
    group_id: str | None = None
    #: The account's submit allowance from the ``submits_per_minute`` extra (None: no pacing).
    submits_per_minute: float | None = None
    #: The environment's proxy for ``base_url`` (async path only; requests reads it itself).
    proxy: str | None = None
    proxy_auth: Any = field(default=None, repr=False)
    #: aiohttp's ``ssl`` argument, built once per settings (a CA bundle is read from disk once).
    ssl_context: ssl.SSLContext | bool = field(default=True, repr=False, compare=False)
    #: The ``prices`` extra as stored (JSON text or an object). Read only where money is spent
    #: (``prices.prices_for``): a typo in it must not stop the wait for a video already paid for.
    prices: Any = field(default=None, repr=False, compare=False)

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    @property
    def download_verify(self) -> bool:
        """TLS for pre-signed storage links: the system's trust store unless checks are off."""
        return self.verify is not False


def build_ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    """aiohttp's ``ssl`` argument; reads a CA bundle from disk, so call it off the event loop."""
    if verify is False:
        return False
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return True


#: Every spelling of the TLS toggle that a form or a person produces: Airflow 2.11's Test button posts
#: a checked box's HTML value "y" (and leaves an unchecked box out), its Save stores a Python bool, the
#: React forms JSON booleans, the 2.11 choice this provider draws "true"/"false", and people write
#: on/off, yes/no or 1/0 into the Extra JSON or an AIRFLOW_CONN_* variable.
TLS_ON_WORDS = frozenset({"true", "t", "yes", "y", "on", "1"})
TLS_OFF_WORDS = frozenset({"false", "f", "no", "n", "off", "0"})


def tls_flag(value: Any) -> bool | None:
    """True or False for any spelling of on/off, None for anything else (a path, say)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return None if value not in (0, 1) else bool(value)
    text = str(value).strip().lower()
    if text in TLS_ON_WORDS:
        return True
    if text in TLS_OFF_WORDS:
        return False
    return None


def looks_like_a_path(text: str) -> bool:
    """A checked box's "y" was read as a CA bundle file: a path has a folder separator or a suffix."""
    return any(sep in text for sep in ("/", "\\")) or "." in text.strip(".")


def _verify_setting(extra: Mapping[str, Any], conn_id: str) -> bool | str:
    """
    TLS for API calls: ``verify`` (the toggle) and ``ca_bundle`` (path).

    Earlier releases took the CA bundle path in ``verify`` itself, so a path there still counts;
    any other word is refused rather than guessed, since a guess either turns checks off or reads a
    file called "y". Unset (missing or empty, as Airflow 2 stores an untouched field) keeps checks on.
    """
    verify = extra_value(extra, "verify")
    ca_bundle = extra_value(extra, "ca_bundle")
    flag = True if verify is None else tls_flag(verify)
    if flag is None:
        text = str(verify).strip()
        if not looks_like_a_path(text):
            raise HailuoError(
                f"Connection {conn_id!r}: extra `verify` is {text!r}: use true or false (on/off, yes/no, "
                "y/n, 1/0); a CA bundle path goes into the `ca_bundle` extra"
            )
        return text
    if flag is False:
        return False
    return str(ca_bundle) if ca_bundle else True


def _base_url(host: str, schema: str | None, port: int | None, conn_id: str) -> str:
    """The base URL; a port goes into the authority, also when the host already carries a path."""
    if "://" not in host:
        host = f"{schema or 'https'}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HailuoError(f"Connection {conn_id!r}: host {host!r} is not an http(s) base URL")
    if port and not parts.port:
        netloc = parts.netloc.rsplit("@", 1)
        hostname = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        authority = f"{hostname}:{port}"
        netloc[-1] = authority
        parts = parts._replace(netloc="@".join(netloc))
    return urlunsplit(parts)


def _api_key(password: str | None, conn_id: str) -> str:
    """
    The key as the header will carry it.

    A key pasted with its line break made every call fail, and the HTTP library's error quoted the
    header with the key in it (escaped, so the secrets masker missed it): whitespace around the key
    is dropped, and a key with a control or invisible character inside is refused without showing it.
    """
    api_key = (password or "").strip()
    if not api_key:
        raise HailuoAuthError(
            401,
            "MISSING_API_KEY",
            "the connection has no API key: put it in the connection's password field",
            conn_id=conn_id,
        )
    if not (api_key.isascii() and api_key.isprintable()):
        raise HailuoError(
            f"The API key of connection {conn_id!r} holds a control, invisible or non-ASCII character: "
            "an API key is printable ASCII text; paste it again into the password field"
        )
    return api_key


def connection_settings(conn: Any, extra: Mapping[str, Any]) -> ConnectionSettings:
    """Turn an Airflow connection into settings; one function for the sync and the async path."""
    base_url = _base_url((conn.host or "").strip() or DEFAULT_BASE_URL, conn.schema, conn.port, conn.conn_id)
    api_key = _api_key(conn.password, conn.conn_id)
    verify = _verify_setting(extra, conn.conn_id)
    hostname = urlsplit(base_url).hostname
    if verify is False and hostname not in LOOPBACK_HOSTS:
        log.warning(
            "Connection %r turns TLS checks off: certificates of %s are NOT checked", conn.conn_id, hostname
        )
    timeout = extra_value(extra, "timeout")
    try:
        read_timeout = float(timeout) if timeout is not None else None
    except (TypeError, ValueError):
        raise HailuoError(f"Connection {conn.conn_id!r}: extra `timeout` must be seconds") from None
    if read_timeout is not None and not 0 < read_timeout < math.inf:  # NaN fails this too
        raise HailuoError(f"Connection {conn.conn_id!r}: extra `timeout` must be a number of seconds over 0")
    api = extra_value(extra, "api")
    group_id = extra_value(extra, "group_id")
    submits_per_minute = _positive_number(extra, "submits_per_minute", conn.conn_id)
    return ConnectionSettings(
        conn_id=conn.conn_id,
        base_url=base_url,
        api_key=api_key,
        verify=verify,
        timeout=read_timeout,
        api=str(api).strip().lower() if api is not None else None,
        group_id=str(group_id) if group_id is not None else None,
        prices=extra_value(extra, "prices"),
        submits_per_minute=submits_per_minute,
    )


def _positive_number(extra: Mapping[str, Any], name: str, conn_id: str) -> float | None:
    """An optional extra that must be a finite number over 0 (the form may store it as text)."""
    value = extra_value(extra, name)
    if value is None:
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not 0 < number < math.inf:  # NaN fails this too
        raise HailuoError(f"Connection {conn_id!r}: extra `{name}` must be a number over 0, got {value!r}")
    return number
