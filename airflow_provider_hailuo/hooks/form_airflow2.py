"""
The connection form's extras in Airflow 2's Flask UI (imported only there: it needs wtforms and FAB).

Airflow 2 handles a provider's form fields in three places that disagree about a checkbox: its Test
button posts only checked boxes (as "y"), so an unchecked TLS box could not say "off" and the test
kept checking certificates; its Save stores the box as a bool; and its edit page pre-fills a field
only from a truthy stored value, so a stored ``false`` showed the box checked again and the next
save turned checks back on. The toggle is a choice of "true" and "false" instead: posted in every
case, stored as that word (truthy, so the edit page shows it again), read by the hook like a bool.

Airflow 2.11 accepts only its four plain field classes from a provider (a subclass drops the whole
form), so the choice is a ``StringField`` drawn by a select widget. The ``api`` text box refused
``PPInfra`` that the hook reads case-insensitively: it is folded to lower case before the check.
"""

from __future__ import annotations

import json
from typing import Any

from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget, BS3TextFieldWidget
from markupsafe import Markup, escape
from wtforms import IntegerField, StringField
from wtforms.validators import AnyOf, NumberRange, Optional, Regexp
from wtforms.widgets import html_params

from airflow_provider_hailuo.hooks.connection import (
    FORM_FIELDS,
    NUMBER_FORM,
    extra_value,
    looks_like_a_path,
    tls_flag,
)

#: (value posted and stored, text shown). The hook reads "true"/"false" like JSON booleans.
TLS_CHOICES = (("true", "on: check the certificate"), ("false", "off: no checks (a local emulator only)"))


class TlsSelectWidget:
    """A select of on/off showing what is stored, a CA bundle path of an earlier release included."""

    def __init__(self, extra_name: str) -> None:
        self.extra_name = extra_name

    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        value = field.data
        stored = self._stored_value(field)
        if stored is not None:
            value = stored
        flag = tls_flag(value) if value not in (None, "") else True
        selected = str(value).strip() if flag is None else TLS_CHOICES[0 if flag else 1][0]
        choices = list(TLS_CHOICES)
        if selected not in {choice for choice, _ in TLS_CHOICES}:
            # A path in `verify` (an earlier release's form) is kept when the page is saved.
            shown = f"on, with the CA bundle {selected}" if looks_like_a_path(selected) else selected
            choices.append((selected, shown))
        kwargs.setdefault("id", field.id)
        kwargs["class"] = "form-control"
        options = "".join(
            f"<option {html_params(value=choice, selected=choice == selected)}>{escape(text)}</option>"
            for choice, text in choices
        )
        return Markup(f"<select {html_params(name=field.name, **kwargs)}>{options}</select>")

    def _stored_value(self, field: Any) -> Any:
        """
        The stored value when the page shows a stored connection: Airflow pre-fills only truthy
        values, so a JSON ``false`` saved by another tool would show as the default. The form is
        reachable from its fields on WTForms 3.3+ only; before that the pre-filled value stands.
        """
        if field.raw_data is not None:  # a posted form drawn again: it shows what was posted
            return None
        form = getattr(field, "_form", None)
        text = getattr(getattr(form, "extra", None), "data", None)
        try:
            extra = json.loads(text) if text else {}
        except (TypeError, ValueError):
            return None
        return extra_value(extra, self.extra_name) if isinstance(extra, dict) else None


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def flask_widgets() -> dict[str, Any]:
    """``get_connection_form_widgets()`` for Airflow 2's Flask UI."""
    text = {"widget": BS3TextFieldWidget()}
    widgets: dict[str, Any] = {}
    for f in FORM_FIELDS:
        if f.kind == "boolean":
            default = TLS_CHOICES[0][0] if f.default else TLS_CHOICES[1][0]
            widgets[f.name] = StringField(
                f.label, description=f.description, default=default, widget=TlsSelectWidget(f.name)
            )
        elif f.kind == "integer":
            widgets[f.name] = IntegerField(
                f.label, description=f.description, validators=[Optional(), NumberRange(min=1)], **text
            )
        elif f.kind == "object":
            # JSON in a StringField drawn as a text area: Airflow 2 takes only its plain field classes.
            widgets[f.name] = StringField(
                f.label, description=f.description, validators=[Optional()], widget=BS3TextAreaFieldWidget()
            )
        elif f.kind == "number":
            number = Regexp(NUMBER_FORM, message="a number, e.g. 5 or 2.5")
            widgets[f.name] = StringField(
                f.label, description=f.description, validators=[Optional(), number], **text
            )
        elif f.choices:
            widgets[f.name] = StringField(
                f.label,
                description=f.description,
                filters=[_lower],
                validators=[Optional(), AnyOf(list(f.choices))],
                **text,
            )
        else:
            widgets[f.name] = StringField(f.label, description=f.description, validators=[Optional()], **text)
    return widgets
