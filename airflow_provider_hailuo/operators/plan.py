"""HailuoPlanVideosOperator: check and price a whole batch before the first video is bought."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_hailuo.api import HailuoValidationError
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.operators.request import (
    CheckedRequest,
    RequestFields,
    check_request,
    connection_prices,
)
from airflow_provider_hailuo.prices import (
    Budget,
    Cost,
    HailuoPriceError,
    Prices,
    currency_mismatch,
    over_budget,
    parse_budget,
)

#: The XCom key of the plan's summary: ``{"videos", "total", "by_model", "unpriced"}``.
PLAN_XCOM_KEY = "hailuo_plan"
_ERROR_PREFIX = "Invalid Hailuo request: "


def _count(field_name: str, value: Any) -> int | None:
    """A whole number of videos, as given or as a template rendered it; None: no limit."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None", "null")):
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise HailuoValidationError(field_name, "must be a whole number of videos (0 or more)", value)


def _batch(value: Any) -> list[Any]:
    """The rendered ``requests``: a list, JSON text of one, or a lazy XCom sequence."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise HailuoValidationError(
                "requests", "must be a list of requests, not text that is not JSON"
            ) from None
    if isinstance(value, Mapping | str | bytes) or not isinstance(value, Sequence):
        raise HailuoValidationError(
            "requests", "must be a list of requests, each a dict of the submit's fields", value
        )
    return list(value)


@dataclass
class _Line:
    """One row of the plan's table: the videos of one model, duration and resolution."""

    first: CheckedRequest
    indexes: list[int]

    @property
    def each(self) -> Cost | None:
        return self.first.cost

    @property
    def subtotal(self) -> Cost | None:
        each = self.each
        return Cost(each.amount * len(self.indexes), each.currency) if each else None


@dataclass(frozen=True)
class Plan:
    """A checked batch and what it costs; every amount in the connection's one currency."""

    checked: Sequence[tuple[int, CheckedRequest]]
    prices: Prices

    @property
    def unpriced(self) -> list[int]:
        return [index for index, request in self.checked if request.cost is None]

    @property
    def total(self) -> Cost | None:
        """The sum, when every price is known; None otherwise (a partial sum would be a guess)."""
        if self.unpriced or self.prices.currency is None:
            return None
        amount = sum((request.cost.amount for _, request in self.checked if request.cost), Decimal(0))
        return Cost(amount, self.prices.currency)

    def lines(self) -> list[_Line]:
        lines: dict[str, _Line] = {}
        for index, request in self.checked:
            line = lines.setdefault(request.what, _Line(request, []))
            line.indexes.append(index)
        return list(lines.values())

    def summary(self) -> dict[str, Any]:
        """``{"videos", "total": {"amount", "currency"} | None, "by_model": {...}, "unpriced": [...]}``."""
        by_model: dict[str, dict[str, Any]] = {}
        for _, request in self.checked:
            entry = by_model.setdefault(
                request.model, {"videos": 0, "amount": Decimal(0), "currency": self.prices.currency}
            )
            entry["videos"] += 1
            if request.cost is None or entry["amount"] is None:
                entry["amount"] = None
            else:
                entry["amount"] += request.cost.amount
        for entry in by_model.values():
            if entry["amount"] is None or entry["currency"] is None:
                entry["amount"] = entry["currency"] = None
            else:
                entry["amount"] = float(entry["amount"])
        total = self.total
        return {
            "videos": len(self.checked),
            "total": total.as_dict() if total else None,
            "by_model": by_model,
            "unpriced": self.unpriced,
        }

    def table(self) -> str:
        """The plan as a few aligned lines for the task log."""
        rows = [("videos", "model, duration, resolution", "each", "subtotal")]
        for line in self.lines():
            rows.append((str(len(line.indexes)), line.first.what, _shown(line.each), _shown(line.subtotal)))
        total = self.total
        unpriced = f" ({len(self.unpriced)} unpriced)" if self.unpriced else ""
        rows.append((str(len(self.checked)), "total", "", _shown(total) + unpriced))
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        return "\n".join(
            f"  {videos:>{widths[0]}}  {what:<{widths[1]}}  {each:>{widths[2]}}  {subtotal}".rstrip()
            for videos, what, each, subtotal in rows
        )


def _requests(count: int) -> str:
    return f"{count} request" if count == 1 else f"{count} requests"


def _shown(cost: Cost | None) -> str:
    return str(cost) if cost is not None else "unknown"


def _rule_of(err: HailuoValidationError) -> str:
    return str(err).removeprefix(_ERROR_PREFIX)


class HailuoPlanVideosOperator(BaseOperator):
    """
    Check and price a whole batch of generation requests before the first one is bought.

    A content run maps over its requests, and each submit checks only its own when it runs: a batch
    with one bad request among fifty buys the good ones first, and nothing says what a run will
    cost. The plan makes every submit's checks for the whole batch at once, with the submit's own
    code (frames read from their store: they exist, are images, meet the vendor's size rules; the
    connection's vendor and model rules), prices each request, and fails the task, so no submit
    runs, when a request is invalid (naming every bad one), when there are more than
    ``max_videos``, or when the total is above ``max_total_cost``. With a budget set, a request
    whose price is unknown fails the plan too: a limit that cannot be checked is not passed.
    Nothing is sent to the service.

    Returns the requests, normalized (every field, defaults filled in, frames left where they
    live), for ``HailuoSubmitVideoOperator.partial(task_id=..., hailuo_conn_id=...)
    .expand_kwargs(plan.output)`` or a task group's ``expand_kwargs``; request fields then belong
    in the requests, not in ``partial()``. The summary ``{"videos", "total", "by_model",
    "unpriced"}`` is pushed under the XCom key ``hailuo_plan`` and logged as a table.

    :param requests: the batch (templated; a list, or an XComArg such as the output of a task
        that loads prompts): dicts of the submit's request fields (``prompt`` required;
        ``image_url``, ``end_image_url``, ``duration``, ``resolution``,
        ``enable_prompt_expansion``, ``fast_pretreatment``, ``model``, ``extra_body``,
        ``image_conn_id``).
    :param max_total_cost: the most the batch may cost (templated): a number in the currency of the
        connection's prices, ``"4.00 USD"`` or ``{"amount": 4.0, "currency": "USD"}``.
    :param max_videos: the most videos the batch may buy (templated).
    :param hailuo_conn_id: the connection the submits will use: its vendor's rules and prices.
    """

    template_fields: Sequence[str] = ("requests", "max_total_cost", "max_videos")
    template_fields_renderers = {"requests": "json"}
    ui_color = "#f4ecd8"

    def __init__(
        self,
        *,
        requests: Any,
        max_total_cost: Any = None,
        max_videos: Any = None,
        hailuo_conn_id: str = HailuoHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.requests = requests
        self.max_total_cost = max_total_cost
        self.max_videos = max_videos
        self.hailuo_conn_id = hailuo_conn_id

    @cached_property
    def hook(self) -> HailuoHook:
        return HailuoHook(self.hailuo_conn_id)

    def execute(self, context: Any) -> list[dict[str, Any]]:
        try:
            batch = _batch(self.requests)
            max_videos = _count("max_videos", self.max_videos)
            budget = parse_budget("max_total_cost", self.max_total_cost)
            prices = connection_prices(self.hook)
        except (HailuoValidationError, HailuoPriceError) as err:
            raise AirflowFailException(str(err)) from err
        checked: list[tuple[int, CheckedRequest]] = []
        problems: list[str] = []
        for index, item in enumerate(batch):
            try:
                checked.append((index, check_request(RequestFields.from_mapping(item), self.hook, prices)))
            except HailuoValidationError as err:
                problems.append(f"request {index}: {_rule_of(err)}")
        plan = Plan(checked, prices)
        invalid = len(batch) - len(checked)
        self.log.info(
            "Plan for %s%s on %s (max_total_cost %s, max_videos %s; prices: %s):\n%s",
            _requests(len(batch)),
            f", {invalid} invalid" if invalid else "",
            prices.vendor,
            budget.in_currency_of(prices) if budget else "not set",
            "not set" if max_videos is None else max_videos,
            prices.describe(),
            plan.table(),
        )
        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is not None:
            ti.xcom_push(key=PLAN_XCOM_KEY, value=plan.summary())
        if max_videos is not None and len(batch) > max_videos:
            problems.append(f"{len(batch)} videos > max_videos {max_videos}")
        if budget is not None:
            problems.extend(self._budget_problems(plan, budget))
        if problems:
            raise AirflowFailException(
                f"The plan refused the batch of {_requests(len(batch))}; nothing was bought:\n  "
                + "\n  ".join(problems)
            )
        return [request.normalized() for _, request in checked]

    @staticmethod
    def _budget_problems(plan: Plan, budget: Budget) -> list[str]:
        prices = plan.prices
        mismatch = currency_mismatch("max_total_cost", budget, prices)
        if mismatch:
            return [mismatch]
        problems = []
        for line in plan.lines():
            if line.each is None:
                request = line.first.request
                problems.append(
                    f"no price is known for {line.first.describe()} (request "
                    f"{', '.join(map(str, line.indexes))}), and max_total_cost is set: "
                    + prices.how_to_price(line.first.model, request.resolution, request.duration)
                )
        total = plan.total
        if total is not None:
            refusal = over_budget("max_total_cost", total, budget)
            if refusal:
                problems.append(refusal)
        return problems
