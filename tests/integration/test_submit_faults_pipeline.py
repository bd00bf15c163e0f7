"""
The example pipeline (``hailuo_daily_content``, ``retries=2``) with its submit broken at the socket.

Under each fault after which the submission may have been accepted it pays at most once (exactly
once where the service got the request) and fails with that message, with no Airflow retry; under
each fault that proves nothing was created it lands the video with exactly one paid task.
"""

from __future__ import annotations

import ssl

import pytest

from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from tests.conftest import AIRFLOW_LINE, EMULATOR_KEY
from tests.integration.test_example_dags import daily, landed_files
from tests.support.connections import hailuo_conn_json
from tests.support.fault_proxy import FaultProxy, tls_contexts
from tests.support.submit_faults import MAY, NOTHING, SUBMIT_FAULTS, retrying_with_heal, walked

#: The pipeline is vendor-neutral (the matrix walks both families at the hook): PPInfra's cells,
#: over TLS for the faults that only TLS has, plain TCP otherwise.
CELLS = [
    pytest.param(cell, id=cell.fault.name)
    for cell in walked(SUBMIT_FAULTS, AIRFLOW_LINE >= (3, 3))
    if "ppinfra" in cell.families and cell.verdict in (MAY, NOTHING)
]


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[ssl.SSLContext, ssl.SSLContext, str]:
    """A trusted server context (its CA given to the connection), and one from a CA nobody trusts."""
    ca_path = str(tmp_path_factory.mktemp("pipeline-ca") / "ca.pem")
    return (*tls_contexts(ca_path), ca_path)


@pytest.mark.parametrize("cell", CELLS)
def test_the_example_pipeline_pays_once_under_each_submit_fault(
    airflow_db, hailuo_conn, tmp_path, monkeypatch, capfd, tls, cell
):
    trusted, stranger, ca_path = tls
    use_tls = cell.fault.tls_only
    proxy = FaultProxy(
        hailuo_conn.url,
        cell.fault,
        server_context=trusted if use_tls else None,
        untrusted_context=stranger if use_tls else None,
    )
    with proxy:
        extra = {"ca_bundle": ca_path, "timeout": 1} if use_tls else {"timeout": 1}
        monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(proxy.url, EMULATOR_KEY, extra))
        monkeypatch.setattr(HailuoHook, "_retrying", retrying_with_heal(proxy))
        outcome = daily(tmp_path / "videos", prompts=["one paid video"])
    tasks = hailuo_conn.tasks()
    output = capfd.readouterr().out
    assert EMULATOR_KEY not in output
    if cell.verdict is NOTHING:
        assert outcome.state == "success", [
            (t, outcome.states(t)) for t in ("generate.submit", "generate.download")
        ]
        assert len(tasks) == 1 and outcome.values("generate.submit") == list(tasks)
        assert len(landed_files(tmp_path / "videos")) == 1
    else:
        assert outcome.state == "failed"
        assert outcome.states("generate.submit") == ["failed"]
        assert outcome.tries("generate.submit") == [1]  # retries=2, yet never sent again
        assert "may have been accepted" in output
        assert len(tasks) == (1 if cell.fault.phase == "answer" and cell.fault.forward else 0)
        assert proxy.connections == 1
        assert landed_files(tmp_path / "videos") == []
