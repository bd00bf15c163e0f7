"""
Plan before paying: the whole batch is checked and priced before the first submit.

Real parts: ``dag.test()`` of the example DAG and of the plan test DAGs, the emulator over loopback
(its counters prove what reached the service: nothing, when the plan refuses), frames on disk and
in the loopback S3 server, and the connection from the environment as users set it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EMULATOR_KEY, TEST_DAGS
from tests.integration.test_frames_s3 import image_bytes
from tests.support.airflow_runs import example_dag, load_dag, run_dag
from tests.support.connections import hailuo_conn_json

PLAN_DAGS = TEST_DAGS / "hailuo_plan_pipelines.py"
PROMPTS = ["a lighthouse in a storm", "a koi pond in autumn", "a robot watering plants"]
PPINFRA_768P_6S = {"amount": 1.8, "currency": "CNY"}
NEGOTIATED = {"currency": "USD", "hailuo-02": {"768P-6s": 0.28, "768P-10s": 0.56, "1080P-6s": 0.49}}


def daily(destination: Path, **conf):
    return run_dag(
        example_dag("hailuo_daily_content"),
        {"prompts": PROMPTS, "destination": destination.as_uri() + "/", **conf},
    )


def plan_then_buy(destination: Path, requests: list[dict], **conf):
    return run_dag(
        load_dag(PLAN_DAGS, "plan_then_buy"),
        {"requests": requests, "destination": destination.as_uri() + "/", **conf},
    )


def plan_only(requests: list[dict], **conf):
    return run_dag(load_dag(PLAN_DAGS, "plan_only"), {"requests": requests, **conf})


def connect(monkeypatch, emulator, **extra) -> None:
    """`hailuo_default` to the emulator with these extras (the emulator speaks PPInfra's wire)."""
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(emulator.url, EMULATOR_KEY, extra))


def manifest_of(landed: dict) -> dict:
    return json.loads(Path(landed["manifest_uri"].removeprefix("file://")).read_text())


@pytest.fixture
def destination(tmp_path: Path) -> Path:
    return tmp_path / "videos"


# --------------------------------------------------------------------------------------------------
# Refused: nothing is bought
# --------------------------------------------------------------------------------------------------
def test_over_budget_buys_nothing_and_names_the_total_and_the_budget(
    airflow_db, hailuo_conn, destination, capfd
):
    outcome = daily(destination, max_total_cost=5)  # 3 x CNY 1.80 = 5.40
    assert outcome.state == "failed"
    assert outcome.states("plan") == ["failed"]
    assert outcome.tries("plan") == [1]  # refused for good, not retried
    assert "success" not in outcome.states("generate.submit")
    assert "5.40 CNY > max_total_cost 5.00 CNY" in capfd.readouterr().out
    assert hailuo_conn.counters()["requests"] == 0  # not one call reached the service
    assert not destination.exists()


def test_one_invalid_request_among_many_buys_nothing_and_every_bad_one_is_named(
    airflow_db, hailuo_conn, destination, tmp_path, capfd
):
    requests = [
        {"prompt": "fine"},
        {"prompt": "   "},
        {"prompt": "fine", "duration": 10, "resolution": "1080P"},
        {"prompt": "fine", "model": "hailuo-2.3"},
        {"prompt": "fine", "image_url": (tmp_path / "missing.png").as_uri()},
        {"prompt": "fine", "colour": "red"},
        {"prompt": "fine", "duration": "10"},
    ]
    outcome = plan_then_buy(destination, requests)
    assert outcome.state == "failed"
    assert outcome.states("plan") == ["failed"]
    assert "success" not in outcome.states("submit")
    out = capfd.readouterr().out
    assert "request 1: `prompt` must not be blank" in out
    assert "request 2: `resolution` 1080P is not available for 10 s videos" in out
    missing = (tmp_path / "missing.png").as_uri()
    assert f"request 4: `image_url` must name an existing file, but {missing} does not exist" in out
    assert "request 5: `colour` is not a request field" in out
    for fine in (0, 3, 6):
        assert f"request {fine}:" not in out
    assert hailuo_conn.counters()["requests"] == 0


def test_more_videos_than_max_videos_buys_nothing(airflow_db, hailuo_conn, destination, capfd):
    outcome = plan_then_buy(destination, [{"prompt": p} for p in PROMPTS], max_videos=2)
    assert outcome.state == "failed"
    assert "3 videos > max_videos 2" in capfd.readouterr().out
    assert hailuo_conn.counters()["requests"] == 0


def test_a_budget_with_an_unknown_price_fails_closed_and_says_how_to_set_it(
    airflow_db, hailuo_conn, destination, capfd
):
    requests = [{"prompt": "known"}, {"prompt": "a model of tomorrow", "model": "minimax-hailuo-03"}]
    outcome = plan_then_buy(destination, requests, max_total_cost=100)
    assert outcome.state == "failed"
    out = capfd.readouterr().out
    assert "no price is known for minimax-hailuo-03 6 s 768P on ppinfra (request 1)" in out
    assert "set it in the `prices` extra of connection 'hailuo_default'" in out
    assert '{"currency": "CNY", "minimax-hailuo-03": {"768P-6s": <price>}}' in out
    assert hailuo_conn.counters()["requests"] == 0


def test_a_budget_in_another_currency_than_the_prices_fails(airflow_db, hailuo_conn, destination, capfd):
    outcome = plan_then_buy(destination, [{"prompt": "p"}], max_total_cost="100 USD")
    assert outcome.state == "failed"
    assert "max_total_cost is in USD, but the prices are in CNY" in capfd.readouterr().out
    assert hailuo_conn.counters()["requests"] == 0


def test_a_malformed_prices_extra_fails_the_plan_with_a_clear_error(
    airflow_db, hailuo_conn, destination, monkeypatch, capfd
):
    connect(monkeypatch, hailuo_conn, prices={"currency": "USD", "hailuo-02": {"768P6s": 0.28}})
    outcome = plan_then_buy(destination, [{"prompt": "p"}])
    assert outcome.state == "failed"
    out = capfd.readouterr().out
    assert 'extra `prices` has "hailuo-02": "768P6s", but a price key is "<resolution>-<duration>s"' in out
    assert hailuo_conn.counters()["requests"] == 0


# --------------------------------------------------------------------------------------------------
# Within budget: each video carries its estimated cost
# --------------------------------------------------------------------------------------------------
def test_within_budget_each_video_carries_its_estimated_cost(airflow_db, hailuo_conn, destination, capfd):
    outcome = daily(destination, max_total_cost=5.40)  # exactly the total: within
    assert outcome.state == "success"
    (summary,) = outcome.pushed("plan", "hailuo_plan")
    assert summary == {
        "videos": 3,
        "total": {"amount": 5.4, "currency": "CNY"},
        "by_model": {"hailuo-02": {"videos": 3, "amount": 5.4, "currency": "CNY"}},
        "unpriced": [],
    }
    records = outcome.pushed("generate.submit", "hailuo_request")
    assert [r["estimated_cost"] for r in records] == [PPINFRA_768P_6S] * 3
    downloads = outcome.values("generate.download")
    assert len(downloads) == 3
    for landed in downloads:
        assert landed["estimated_cost"] == PPINFRA_768P_6S
        assert manifest_of(landed)["estimated_cost"] == PPINFRA_768P_6S
    out = capfd.readouterr().out
    assert out.count("buying hailuo-02 6 s 768P on ppinfra, est. CNY 1.80") == 3
    assert "5.40 CNY" in out  # the plan's table
    counters = hailuo_conn.counters()
    assert counters["submits"] == 3
    assert counters["requests"] >= 3 + 3  # the counter the refusals read as zero counts every call


def test_the_prices_extra_overrides_the_built_in_list(
    airflow_db, hailuo_conn, destination, monkeypatch, capfd
):
    connect(monkeypatch, hailuo_conn, prices=NEGOTIATED)
    requests = [{"prompt": "a"}, {"prompt": "b", "duration": 10}]
    over = plan_then_buy(destination, requests, max_total_cost=0.80)  # 0.28 + 0.56 = 0.84 USD
    assert over.state == "failed"
    assert "0.84 USD > max_total_cost 0.80 USD" in capfd.readouterr().out
    assert hailuo_conn.counters()["requests"] == 0

    outcome = plan_then_buy(destination, requests, max_total_cost="0.84 USD")
    assert outcome.state == "success"
    (summary,) = outcome.pushed("plan", "hailuo_plan")
    assert summary["total"] == {"amount": 0.84, "currency": "USD"}
    downloads = outcome.values("download")
    costs = sorted((d["estimated_cost"]["amount"], d["estimated_cost"]["currency"]) for d in downloads)
    assert costs == [(0.28, "USD"), (0.56, "USD")]
    assert sorted(manifest_of(d)["estimated_cost"]["amount"] for d in downloads) == [0.28, 0.56]


def test_an_unknown_price_without_a_budget_is_null_everywhere(
    airflow_db, hailuo_conn, destination, monkeypatch
):
    # Novita publishes no prices; its wire is PPInfra's, which the emulator speaks.
    connect(monkeypatch, hailuo_conn, api="novita")
    outcome = plan_then_buy(destination, [{"prompt": "p"}])
    assert outcome.state == "success"
    (summary,) = outcome.pushed("plan", "hailuo_plan")
    assert summary["total"] is None and summary["unpriced"] == [0]
    assert summary["by_model"] == {"hailuo-02": {"videos": 1, "amount": None, "currency": None}}
    ((record,),) = [outcome.pushed("submit", "hailuo_request")]
    assert record["estimated_cost"] is None
    (landed,) = outcome.values("download")
    assert landed["estimated_cost"] is None
    assert manifest_of(landed)["estimated_cost"] is None


# --------------------------------------------------------------------------------------------------
# The plan reads frames from their store only, and hands the submits what they need
# --------------------------------------------------------------------------------------------------
def test_the_plan_checks_frames_in_storage_and_sends_nothing_to_the_service(
    airflow_db, hailuo_conn, s3_server, s3_bucket, monkeypatch
):
    s3_server.client().put_object(Bucket=s3_bucket, Key="frames/wide.png", Body=image_bytes((1280, 720)))
    connect(monkeypatch, hailuo_conn, api="minimax")  # MiniMax's size rules for input images
    frame = f"s3://{s3_bucket}/frames/wide.png"
    accepted = plan_only([{"prompt": "p", "image_url": frame, "image_conn_id": s3_server.conn_id}])
    assert accepted.state == "success"
    assert hailuo_conn.counters()["requests"] == 0  # the frame was read from S3, the service untouched
    (normalized,) = accepted.values("plan")
    assert normalized == [
        {
            "prompt": "p",
            "image_url": frame,  # where it lives, not a signed link
            "end_image_url": None,
            "duration": 6,
            "resolution": "768P",
            "enable_prompt_expansion": True,
            "fast_pretreatment": False,
            "model": "hailuo-02",
            "extra_body": {},
            "image_conn_id": s3_server.conn_id,
        }
    ]


def test_the_plan_names_each_frame_rule_it_refused(
    airflow_db, hailuo_conn, s3_server, s3_bucket, monkeypatch, capfd
):
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="tiny.png", Body=image_bytes((400, 200)))
    client.put_object(Bucket=s3_bucket, Key="text.png", Body=b"not an image at all")
    connect(monkeypatch, hailuo_conn, api="minimax")
    requests = [
        {"prompt": "p", "image_url": f"s3://{s3_bucket}/{key}", "image_conn_id": s3_server.conn_id}
        for key in ("tiny.png", "text.png", "gone.png")
    ]
    assert plan_only(requests).state == "failed"
    out = capfd.readouterr().out
    assert "request 0: `image_url` must have a short side over 300 px" in out
    assert "request 1: `image_url` must be a JPEG, PNG or WebP image" in out
    assert "request 2: `image_url` must name an existing object" in out
    assert hailuo_conn.counters()["requests"] == 0


# --------------------------------------------------------------------------------------------------
# One submit's own limit: max_cost
# --------------------------------------------------------------------------------------------------
def submit_with_max_cost(**conf):
    return run_dag(load_dag(PLAN_DAGS, "submit_max_cost"), conf)


def test_a_submit_within_max_cost_buys_and_records_its_estimate(airflow_db, hailuo_conn):
    outcome = submit_with_max_cost(max_cost="1.80 CNY")
    assert outcome.state == "success"
    (record,) = outcome.pushed("submit", "hailuo_request")
    assert record["estimated_cost"] == PPINFRA_768P_6S
    assert hailuo_conn.counters()["submits"] == 1


def test_a_submit_above_max_cost_fails_before_any_http_call(airflow_db, hailuo_conn, capfd):
    outcome = submit_with_max_cost(max_cost=3, resolution="1080P")
    assert outcome.state == "failed"
    assert outcome.tries("submit") == [1]  # retries=2, yet not retried: it would be refused again
    assert (
        "Not bought: hailuo-02 6 s 1080P on ppinfra, est. 3.15 CNY > max_cost 3.00 CNY"
        in capfd.readouterr().out
    )
    assert hailuo_conn.counters()["requests"] == 0


def test_a_submit_with_max_cost_and_an_unknown_price_fails_closed(airflow_db, hailuo_conn, monkeypatch):
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_hailuo.operators.hailuo import HailuoSubmitVideoOperator

    connect(monkeypatch, hailuo_conn, api="minimax")  # MiniMax publishes no prices
    submit = HailuoSubmitVideoOperator(task_id="submit", prompt="p", max_cost=100)
    with pytest.raises(AirflowFailException) as refused:
        submit.execute(context={})
    message = str(refused.value)
    assert (
        "No price is known for hailuo-02 6 s 768P on minimax, and max_cost is set: nothing was bought"
        in message
    )
    assert '{"currency": "USD", "hailuo-02": {"768P-6s": <price>}}' in message
    assert hailuo_conn.counters()["requests"] == 0
    # The same connection with the price set buys within the limit.
    connect(
        monkeypatch, hailuo_conn, api="minimax", prices={"currency": "USD", "hailuo-02": {"768P-6s": 0.3}}
    )
    with pytest.raises(AirflowFailException, match=r"0\.30 USD > max_cost 0\.25 USD"):
        HailuoSubmitVideoOperator(task_id="submit", prompt="p", max_cost="0.25 USD").execute(context={})
    assert hailuo_conn.counters()["requests"] == 0


def test_an_unreadable_max_cost_fails_when_the_dag_is_parsed():
    from airflow_provider_hailuo.api import HailuoValidationError
    from airflow_provider_hailuo.operators.hailuo import HailuoSubmitVideoOperator

    with pytest.raises(HailuoValidationError, match="`max_cost` is not an amount"):
        HailuoSubmitVideoOperator(task_id="submit", prompt="p", max_cost="cheap")
