"""
What one video costs, per vendor, model, resolution and duration: data, with where it was read.

Vendors charge per generated video and change their prices, so a price here is never logic: each
list says its currency, when it was read and from which page, and a connection's ``prices`` extra
overrides and extends it (negotiated rates). A vendor with no citable price list (Novita and MiniMax
today) has no entry: its price is unknown (``None``), never a guess, and a budget set against an
unknown price fails closed instead of spending blind.

Amounts are :class:`~decimal.Decimal`: fifty videos at 1.80 must add up to 90.00, not
89.99999999999999, when they are compared with a budget.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from airflow_provider_hailuo.api import MODEL_NAME_FORM, HailuoError, HailuoValidationError
from airflow_provider_hailuo.dialects.models import ALIASES

if TYPE_CHECKING:
    from airflow_provider_hailuo.dialects.base import ResolvedRequest

#: The connection extra that overrides and extends the built-in prices.
PRICES_EXTRA = "prices"
#: What the ``prices`` extra looks like, for the form and for every error about it.
PRICES_EXAMPLE = '{"currency": "USD", "hailuo-02": {"768P-6s": 0.28, "768P-10s": 0.56, "1080P-6s": 0.49}}'
_KEY_FORM = re.compile(r"(?P<resolution>[0-9]+)[pP]-(?P<duration>[0-9]+)s")
_CURRENCY_FORM = re.compile(r"[A-Z]{3}")
_BUDGET_TEXT = re.compile(
    r"(?:(?P<before>[A-Za-z]{3})\s*)?(?P<amount>[0-9]+(?:\.[0-9]+)?)(?:\s*(?P<after>[A-Za-z]{3}))?"
)


class HailuoPriceError(HailuoError, ValueError):
    """The connection's ``prices`` extra cannot be read: fails before anything is bought."""


def price_key(resolution: str, duration: int) -> str:
    """The key a price is filed under: ``768P-6s``."""
    return f"{str(resolution).upper()}-{duration}s"


def money(amount: Decimal) -> str:
    """An amount as people read prices: two decimals, more only where the amount has them."""
    if amount == amount.quantize(Decimal("0.01")):
        return f"{amount:.2f}"
    return f"{amount.normalize():f}"


@dataclass(frozen=True)
class Cost:
    """What one video, or a batch, is estimated to cost."""

    amount: Decimal
    currency: str

    def as_dict(self) -> dict[str, Any]:
        """``{"amount": <float>, "currency": "<ISO code>"}``: what XCom, manifests and lineage carry."""
        return {"amount": float(self.amount), "currency": self.currency}

    def __str__(self) -> str:
        return f"{money(self.amount)} {self.currency}"


@dataclass(frozen=True)
class PriceList:
    """One vendor's prices, as read on ``as_of`` from ``source``."""

    vendor: str
    currency: str
    as_of: str
    source: str
    #: Catalogue model name (or a vendor's own model name) -> ``768P-6s`` -> amount per video.
    models: Mapping[str, Mapping[str, Decimal]]

    def describe(self) -> str:
        return f"{self.vendor}'s prices in {self.currency} as of {self.as_of} ({self.source})"


def _amounts(prices: Mapping[str, str]) -> dict[str, Decimal]:
    return {key: Decimal(amount) for key, amount in prices.items()}


#: Prices per vendor. Novita and MiniMax publish none in a citable form (API.md §5b), so they have
#: no entry: their prices are unknown unless a connection's ``prices`` extra sets them.
BUILT_IN: Mapping[str, PriceList] = {
    "ppinfra": PriceList(
        vendor="ppinfra",
        currency="CNY",
        as_of="2025-11",
        source="PPInfra's pages for minimax-hailuo-02, -2.3 and -2.3-fast, ppinfra.com, late November 2025",
        models={
            "hailuo-02": _amounts({"768P-6s": "1.80", "768P-10s": "3.60", "1080P-6s": "3.15"}),
            "hailuo-2.3": _amounts({"768P-6s": "2.00", "768P-10s": "4.00", "1080P-6s": "3.50"}),
            "hailuo-2.3-fast": _amounts({"768P-6s": "1.35", "768P-10s": "2.25", "1080P-6s": "2.30"}),
        },
    ),
}


@dataclass(frozen=True)
class Prices:
    """
    What one connection pays: its ``prices`` extra over the vendor's built-in list.

    A price list in another currency than the extra's is left out whole: a vendor that bills a
    team in USD does not charge it the CNY list price for the models the extra does not name, and a
    total of CNY and USD amounts means nothing. So every price a connection knows is in one
    currency, :attr:`currency`.
    """

    vendor: str
    conn_id: str | None = None
    #: From the connection's ``prices`` extra (None: the extra is not set).
    own: PriceList | None = None
    #: The vendor's built-in list, when it is in the extra's currency (or there is no extra).
    built_in: PriceList | None = None
    #: The built-in list the extra's currency set aside, named in messages about unknown prices.
    set_aside: PriceList | None = field(default=None, compare=False)

    @property
    def currency(self) -> str | None:
        source = self.own or self.built_in
        return source.currency if source else None

    def lookup(self, names: Sequence[str], resolution: str, duration: int) -> Cost | None:
        """The price of one video of the first of ``names`` that has one; the extra's first."""
        key = price_key(resolution, duration)
        for source in (self.own, self.built_in):
            if source is None:
                continue
            for name in names:
                amount = source.models.get(name, {}).get(key)
                if amount is not None:
                    return Cost(amount, source.currency)
        return None

    def estimate(self, resolved: ResolvedRequest) -> Cost | None:
        """A validated request's price: by its catalogue name, else by the vendor's own model name."""
        names = [name for name in (resolved.catalogue_model, resolved.model) if name]
        return self.lookup(names, resolved.request.resolution, resolved.request.duration)

    def describe(self) -> str:
        """Where the prices come from, for the logs."""
        parts = []
        if self.own is not None:
            parts.append(f"connection {self.conn_id!r}'s `prices` extra ({self.own.currency})")
        if self.built_in is not None:
            parts.append(self.built_in.describe())
        if not parts:
            return f"no prices known for {self.vendor}"
        return " over ".join(parts)

    def how_to_price(self, model: str, resolution: str, duration: int) -> str:
        """What a person does about an unknown price: the extra to set, with this price's key in it."""
        currency = self.currency or "USD"
        example = f'{{"currency": "{currency}", "{model}": {{"{price_key(resolution, duration)}": <price>}}}}'
        where = f"connection {self.conn_id!r}" if self.conn_id else "the connection"
        text = f"set it in the `{PRICES_EXTRA}` extra of {where} (the price per video), e.g. {example}"
        if self.set_aside is not None:
            text += (
                f"; {self.vendor}'s built-in prices are in {self.set_aside.currency}, not the extra's "
                f"{currency}, so they are not used"
            )
        return text


def prices_for(vendor: str, extra: Any, *, conn_id: str | None = None) -> Prices:
    """
    The prices of a connection to ``vendor`` whose ``prices`` extra is ``extra`` (None: not set).

    Raises :class:`HailuoPriceError` naming what is wrong with the extra and what it should be.
    """
    built_in = BUILT_IN.get(vendor)
    own = parse_prices_extra(extra, vendor=vendor, conn_id=conn_id)
    if own is None:
        return Prices(vendor=vendor, conn_id=conn_id, built_in=built_in)
    if built_in is not None and built_in.currency != own.currency:
        return Prices(vendor=vendor, conn_id=conn_id, own=own, set_aside=built_in)
    return Prices(vendor=vendor, conn_id=conn_id, own=own, built_in=built_in)


def parse_prices_extra(value: Any, *, vendor: str, conn_id: str | None = None) -> PriceList | None:
    """
    The ``prices`` extra as a price list: ``{"currency": "USD", "<model>": {"768P-6s": 0.28}}``.

    Models go by catalogue name (``hailuo-02``; ``minimax-hailuo-02`` is read as it) or by a
    vendor's own model name for a passed-through model. It may be stored as JSON text (the form of
    Airflow < 3.2 keeps a text box) or as an object.
    """
    where = f"Connection {conn_id!r}: extra `{PRICES_EXTRA}`" if conn_id else f"Extra `{PRICES_EXTRA}`"

    def refuse(rule: str) -> HailuoPriceError:
        return HailuoPriceError(f"{where} {rule}; it looks like {PRICES_EXAMPLE}")

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as err:
            raise refuse(f"is not valid JSON ({err})") from None
    if not isinstance(value, Mapping):
        raise refuse(f"must be a JSON object, not {type(value).__name__}")
    if not value:
        return None
    currency = value.get("currency")
    if not isinstance(currency, str) or not _CURRENCY_FORM.fullmatch(currency.strip().upper()):
        raise refuse(
            f'needs "currency": an ISO 4217 code such as "USD" or "CNY" (got {json.dumps(currency)})'
        )
    currency = currency.strip().upper()
    models: dict[str, dict[str, Decimal]] = {}
    for name, prices in value.items():
        if name == "currency":
            continue
        if not isinstance(name, str) or not MODEL_NAME_FORM.fullmatch(name):
            raise refuse(f"names a model {name!r}: a model name is letters, digits, '.', '_' or '-'")
        model = ALIASES.get(name, name)
        if not isinstance(prices, Mapping) or not prices:
            raise refuse(
                f'has "{name}": {json.dumps(prices, default=str)}, but a model\'s prices are an object '
                'of "<resolution>-<duration>s" keys to prices per video, such as {"768P-6s": 0.28}'
            )
        for key, amount in prices.items():
            match = _KEY_FORM.fullmatch(str(key).strip())
            if match is None:
                raise refuse(
                    f'has "{name}": "{key}", but a price key is "<resolution>-<duration>s", such as "768P-6s"'
                )
            rule = _amount_rule(amount)
            if rule is not None:
                raise refuse(f'has "{name}": "{key}": {json.dumps(amount, default=str)}, which {rule}')
            filed = price_key(f"{match['resolution']}P", int(match["duration"]))
            models.setdefault(model, {})[filed] = Decimal(str(amount).strip())
    return PriceList(
        vendor=vendor,
        currency=currency,
        as_of="connection extra",
        source=f"connection {conn_id!r}" if conn_id else "connection extra",
        models=models,
    )


def _amount_rule(value: Any) -> str | None:
    """The rule a price breaks, or None: a price is a number of 0 or more."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return "must be a price per video (a number)"
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return "must be a price per video (a number)"
    if not amount.is_finite() or amount < 0:
        return "must be a price of 0 or more"
    return None


@dataclass(frozen=True)
class Budget:
    """A spending limit; ``currency`` None: in the currency of the connection's prices."""

    amount: Decimal
    currency: str | None = None

    def in_currency_of(self, prices: Prices) -> str:
        """The limit as a message shows it next to a price: with the prices' currency."""
        return f"{money(self.amount)} {self.currency or prices.currency or ''}".rstrip()


def parse_budget(field_name: str, value: Any) -> Budget | None:
    """
    A spending limit as a DAG gives it: a number (in the prices' currency), ``"4.00 USD"``, or
    ``{"amount": 4.0, "currency": "USD"}``; ``None``, ``""`` or a rendered ``"None"`` is no limit.

    Raises :class:`HailuoValidationError` naming ``field_name``.
    """
    if value is None or (isinstance(value, str) and value.strip() in ("", "None", "null")):
        return None

    def refuse(rule: str) -> HailuoValidationError:
        return HailuoValidationError(
            field_name,
            f"{rule}: give a number (in the currency of the connection's prices), '4.00 USD', or "
            '{"amount": 4.0, "currency": "USD"}',
            value,
        )

    currency: Any = None
    amount: Any = value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = amount = json.loads(text)
            except ValueError:
                raise refuse("is not valid JSON") from None
        else:
            match = _BUDGET_TEXT.fullmatch(text)
            if match is None or (match["before"] and match["after"]):
                raise refuse("is not an amount")
            amount, currency = match["amount"], match["before"] or match["after"]
    if isinstance(value, Mapping):
        amount, currency = value.get("amount"), value.get("currency")
        if set(value) - {"amount", "currency"}:
            raise refuse("has keys other than amount and currency")
    if currency is not None:
        if not isinstance(currency, str) or not _CURRENCY_FORM.fullmatch(currency.strip().upper()):
            raise refuse("names no ISO 4217 currency code (USD, CNY, ...)")
        currency = currency.strip().upper()
    rule = _amount_rule(amount)
    if rule is not None:
        raise refuse("must be an amount of 0 or more" if "0 or more" in rule else "is not an amount")
    number = Decimal(str(amount).strip())
    return Budget(number, currency)


def currency_mismatch(field_name: str, budget: Budget, prices: Prices) -> str | None:
    """Why ``budget`` cannot be compared with ``prices``: another currency (None: it can)."""
    if budget.currency is None or prices.currency is None or budget.currency == prices.currency:
        return None
    return (
        f"{field_name} is in {budget.currency}, but the prices are in {prices.currency} "
        f"({prices.describe()}): give {field_name} in {prices.currency}, or set the connection's "
        f"`{PRICES_EXTRA}` extra in {budget.currency}"
    )


def over_budget(field_name: str, cost: Cost, budget: Budget) -> str | None:
    """``"4.50 USD > max_total_cost 4.00 USD"`` when ``cost`` is above ``budget`` (same currency)."""
    if cost.amount <= budget.amount:
        return None
    return f"{cost} > {field_name} {money(budget.amount)} {budget.currency or cost.currency}"
