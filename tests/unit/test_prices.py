"""Prices as data: the built-in list, the connection's `prices` extra over it, and spending limits."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from airflow_provider_hailuo.api import HailuoValidationError, VideoRequest
from airflow_provider_hailuo.dialects import dialect_for
from airflow_provider_hailuo.prices import (
    BUILT_IN,
    Budget,
    Cost,
    HailuoPriceError,
    currency_mismatch,
    over_budget,
    parse_budget,
    prices_for,
)

NEGOTIATED = {"currency": "USD", "hailuo-02": {"768P-6s": 0.28, "768P-10s": 0.56, "1080P-6s": 0.49}}


def estimate(vendor: str, extra=None, **request):
    resolved = dialect_for(vendor, "").validate(VideoRequest(prompt="p", **request))
    return prices_for(vendor, extra, conn_id="c").estimate(resolved)


@pytest.mark.parametrize(
    ("model", "duration", "resolution", "amount"),
    [
        ("hailuo-02", 6, "768P", "1.80"),
        ("hailuo-02", 10, "768P", "3.60"),
        ("hailuo-02", 6, "1080P", "3.15"),
        ("hailuo-2.3", 6, "768P", "2.00"),
        ("hailuo-2.3", 10, "768P", "4.00"),
        ("hailuo-2.3", 6, "1080P", "3.50"),
        ("hailuo-2.3-fast", 6, "768P", "1.35"),
        ("hailuo-2.3-fast", 10, "768P", "2.25"),
        ("hailuo-2.3-fast", 6, "1080P", "2.30"),
        ("minimax-hailuo-02", 6, "768P", "1.80"),  # the old default name is hailuo-02
    ],
)
def test_ppinfra_list_prices_as_api_md_gives_them(model, duration, resolution, amount):
    image = "https://h/first.png" if model == "hailuo-2.3-fast" else None
    cost = estimate("ppinfra", model=model, duration=duration, resolution=resolution, image_url=image)
    assert cost == Cost(Decimal(amount), "CNY")


def test_every_built_in_list_says_its_currency_date_and_page():
    for vendor, prices in BUILT_IN.items():
        assert prices.vendor == vendor
        assert len(prices.currency) == 3 and prices.as_of and prices.source


@pytest.mark.parametrize("vendor", ["novita", "minimax"])
def test_vendors_without_a_published_list_have_unknown_prices(vendor):
    assert vendor not in BUILT_IN
    assert estimate(vendor) is None
    assert prices_for(vendor, None).currency is None


def test_a_passed_through_model_has_no_built_in_price():
    assert estimate("ppinfra", model="minimax-hailuo-03") is None
    extra = {"currency": "CNY", "minimax-hailuo-03": {"768P-6s": 2.5}}
    assert estimate("ppinfra", extra, model="minimax-hailuo-03") == Cost(Decimal("2.5"), "CNY")


def test_the_extra_overrides_and_extends_a_list_in_its_own_currency():
    extra = {"currency": "CNY", "hailuo-02": {"768P-6s": 1.5}, "hailuo-2.3": {"768P-6s": "1.9"}}
    assert estimate("ppinfra", extra) == Cost(Decimal("1.5"), "CNY")  # overridden
    assert estimate("ppinfra", extra, duration=10) == Cost(Decimal("3.60"), "CNY")  # the list's
    assert estimate("ppinfra", extra, model="hailuo-2.3") == Cost(Decimal("1.9"), "CNY")


def test_an_extra_in_another_currency_replaces_the_list_whole():
    """A team billed in USD is not charged the CNY list price for models its extra leaves out."""
    assert estimate("ppinfra", NEGOTIATED) == Cost(Decimal("0.28"), "USD")
    assert estimate("ppinfra", NEGOTIATED, model="hailuo-2.3") is None
    prices = prices_for("ppinfra", NEGOTIATED, conn_id="c")
    assert prices.currency == "USD"
    advice = prices.how_to_price("hailuo-2.3", "768P", 6)
    assert '{"currency": "USD", "hailuo-2.3": {"768P-6s": <price>}}' in advice
    assert "built-in prices are in CNY" in advice


def test_the_extra_gives_unknown_vendors_their_prices_and_is_read_as_json_text_too():
    assert estimate("minimax", json.dumps(NEGOTIATED), resolution="1080P") == Cost(Decimal("0.49"), "USD")
    # MiniMax's own model name works as well as the catalogue name.
    extra = {"currency": "usd", "MiniMax-Hailuo-2.3": {"768p-10s": 0.5}}
    assert estimate("minimax", extra, model="hailuo-2.3", duration=10) == Cost(Decimal("0.5"), "USD")


@pytest.mark.parametrize("empty", [None, "", "  ", {}])
def test_an_empty_extra_leaves_the_list(empty):
    assert estimate("ppinfra", empty) == Cost(Decimal("1.80"), "CNY")


@pytest.mark.parametrize(
    ("extra", "rule"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must be a JSON object, not list"),
        ({"hailuo-02": {"768P-6s": 1}}, 'needs "currency": an ISO 4217 code'),
        ({"currency": "dollars", "hailuo-02": {"768P-6s": 1}}, 'needs "currency"'),
        ({"currency": "USD", "hailuo-02": 0.28}, "a model's prices are an object"),
        ({"currency": "USD", "hailuo-02": {}}, "a model's prices are an object"),
        ({"currency": "USD", "hailuo-02": {"768P": 1}}, 'a price key is "<resolution>-<duration>s"'),
        ({"currency": "USD", "hailuo-02": {"768P-6s": -1}}, "must be a price of 0 or more"),
        ({"currency": "USD", "hailuo-02": {"768P-6s": "cheap"}}, "must be a price per video (a number)"),
        ({"currency": "USD", "hailuo-02": {"768P-6s": True}}, "must be a price per video (a number)"),
        ({"currency": "USD", "hailuo-02": {"768P-6s": "NaN"}}, "must be a price of 0 or more"),
        ({"currency": "USD", "hailuo/02": {"768P-6s": 1}}, "names a model"),
    ],
)
def test_a_malformed_extra_fails_naming_the_connection_the_part_and_the_form(extra, rule):
    with pytest.raises(HailuoPriceError) as refused:
        prices_for("ppinfra", extra, conn_id="my_conn")
    message = str(refused.value)
    assert message.startswith("Connection 'my_conn': extra `prices` ")
    assert rule in message
    assert '{"currency": "USD", "hailuo-02": {"768P-6s": 0.28' in message  # what it should look like


@pytest.mark.parametrize(
    ("given", "budget"),
    [
        (None, None),
        ("", None),
        ("None", None),  # a template of an unset param
        (4, Budget(Decimal("4"))),
        (4.5, Budget(Decimal("4.5"))),
        ("4.50", Budget(Decimal("4.50"))),
        ("4.00 USD", Budget(Decimal("4.00"), "USD")),
        ("cny 12", Budget(Decimal("12"), "CNY")),
        ({"amount": 3, "currency": "usd"}, Budget(Decimal("3"), "USD")),
        ('{"amount": 3.5}', Budget(Decimal("3.5"))),
    ],
)
def test_a_budget_as_a_dag_gives_it(given, budget):
    assert parse_budget("max_total_cost", given) == budget


@pytest.mark.parametrize(
    "bad", ["cheap", "-1", -1, "4 USD EUR", True, "inf", {"amount": 1, "cur": "USD"}, "4 $$"]
)
def test_an_unreadable_budget_names_the_field(bad):
    with pytest.raises(HailuoValidationError) as refused:
        parse_budget("max_total_cost", bad)
    assert refused.value.field == "max_total_cost"


def test_over_budget_names_both_amounts_in_one_currency():
    prices = prices_for("ppinfra", NEGOTIATED, conn_id="c")
    total = Cost(Decimal("4.5"), "USD")
    assert over_budget("max_total_cost", total, Budget(Decimal("4"))) == "4.50 USD > max_total_cost 4.00 USD"
    assert over_budget("max_total_cost", total, Budget(Decimal("4.5"), "USD")) is None  # at the limit: fine
    assert currency_mismatch("max_total_cost", Budget(Decimal("4"), "USD"), prices) is None
    mismatch = currency_mismatch("max_total_cost", Budget(Decimal("30"), "CNY"), prices)
    assert mismatch is not None and mismatch.startswith("max_total_cost is in CNY, but the prices are in USD")


def test_fifty_videos_add_up_exactly():
    total = sum((Decimal("1.80") for _ in range(50)), Decimal(0))
    assert over_budget("max_total_cost", Cost(total, "CNY"), Budget(Decimal("90"))) is None
    assert Cost(total, "CNY").as_dict() == {"amount": 90.0, "currency": "CNY"}
