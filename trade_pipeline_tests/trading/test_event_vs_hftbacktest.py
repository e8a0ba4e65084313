"""Our event engine against hftbacktest 2.4.4 on the same arrays: the GLFT market maker of
hftbacktest's tutorial on the Binance capture with its trades (hftbacktest's own example
data, through the event backtest's own input: `market/event_stream.py`) makes exactly the
same fills on both engines (order id, exchange time to the ns,
price, quantity, maker flag), with each queue model. The comparison code is the benchmark's
(`benchmarks/bench_events.py`)."""

import importlib.util

import pytest

from trade_pipeline_tests.conftest import REPO_ROOT

pytest.importorskip("hftbacktest")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_events", REPO_ROOT / "benchmarks" / "bench_events.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("queue", ["risk_averse", "prob_power", "prob_log"])
def test_glft_fills_identical_to_hftbacktest(bench, binance_files, queue):
    from trade_pipeline.trading.event.engine import prepare_events

    stream, report = bench.engine_stream(binance_files)
    assert report["trade_events"] == report["trades"] == 19_904  # the capture's trades
    cfg = bench._maker_config(0.01, 0.00001, queue, window=600)
    events, _ = prepare_events(stream, cfg.execution)
    ours = bench.run_ours(events, cfg)
    ref = bench.run_hbt_glft(events, cfg, queue)
    cmp = bench._compare(ours, ref, 0.01, 0.00001)
    assert cmp["fills_ours"] >= 100, "the comparison needs fills"
    assert cmp["fills_identical"], cmp["first_difference"]
    assert cmp["fees_ours"] == pytest.approx(cmp["fees_hftbacktest"], rel=1e-12)
    assert cmp["cash_ours"] == pytest.approx(cmp["cash_hftbacktest"], rel=1e-9)
    assert cmp["position_ours"] == pytest.approx(cmp["position_hftbacktest"], abs=1e-12)
