"""Paper trading with limit orders (event execution) on the replay server equals the event
backtest on the same file: same events (book and trades, one conversion), same fills, same
PnL. And the kill switch cancels resting orders."""

import asyncio
import datetime as dt
import time

import numpy as np
import pytest

from trade_pipeline.market.event_execution_config import EventExecutionConfig
from trade_pipeline.market.replay_server import ReplayServerThread
from trade_pipeline.market.simulator import SimulatorConfig, simulate
from trade_pipeline.market.snapshots import build_snapshots
from trade_pipeline.trading.engine import TradingConfig
from trade_pipeline.trading.event.engine import prepare_events
from trade_pipeline.trading.event_backtest import run_event_backtest, signals_from_predictions
from trade_pipeline.trading.event_config import EventBacktestConfig, EventRunConfig
from trade_pipeline.trading.event_service import load_events
from trade_pipeline.trading.inputs import model_predictions
from trade_pipeline.trading.maker import MakerConfig
from trade_pipeline.trading.paper import build_trader, run_paper, run_stream
from trade_pipeline.trading.paper_config import PaperConfig
from trade_pipeline.trading.risk import KillSwitch, StaleDataGuard
from trade_pipeline_tests.market.streams import interleave_trades, read_records, write_lines


def _config() -> EventBacktestConfig:
    # a maker rebate so that quoting at the touch pays; the feed clock is modelled (exchange
    # time + 5 ms), as a replayed stream's receive times are the replay's
    return EventBacktestConfig(
        execution=EventExecutionConfig(maker_fee=-0.00005, feed_latency_ms=5.0,
                                       entry_latency_ms=8.0, response_latency_ms=8.0),
        run=EventRunConfig(strategy="maker", interval_ms=100.0, drawdown_stop=None),
        maker=MakerConfig(order_qty=0.01, max_position=0.03, adverse_prior_bp=0.0,
                          adverse_prior_weight=5.0, adverse_horizon_s=2.0,
                          requote_ticks=30))


def _backtest(path, model, cfg):
    data = load_events([str(path)])
    prepared, _ = prepare_events(data.events, cfg.execution)
    preds = model_predictions(model, build_snapshots([path]).frame)
    signals = signals_from_predictions(data.stream, prepared,
                                       preds["timestamp"].dt.epoch("us").to_numpy(),
                                       preds["prediction"].to_numpy())
    return run_event_backtest(data.events, cfg, signals=signals), data.report


def _simulated_capture(tmp_path, shared_data):
    """The simulator's raw store file: book pushes and publicTrade pushes."""
    cfg = SimulatorConfig(start=dt.datetime(2025, 8, 1, tzinfo=dt.UTC), duration_s=120, seed=5,
                          trades=True)
    return write_lines(tmp_path / "000000000000-00000005.raw.gz",
                       [b"%d %s" % (ns, f.encode()) for ns, f in simulate(cfg)])


def _real_capture_with_trades(tmp_path, shared_data):
    """A real Bybit capture with format-2b trade lines among its book lines."""
    path = shared_data / "bybit" / "l2_data_BTC_USDT_USDT_20250707_053714.jsonl.gz"
    lines, _trades = interleave_trades(read_records(path), every=2)
    return write_lines(tmp_path / "mixed.jsonl.gz", lines)


@pytest.mark.slow
@pytest.mark.parametrize("capture", [_simulated_capture, _real_capture_with_trades])
def test_paper_limit_orders_equal_event_backtest(capture, shared_data, test_models, settings,
                                                 tmp_path):
    champion, _ = test_models
    path = capture(tmp_path, shared_data)
    cfg = _config()
    bt, report = _backtest(path, champion, cfg)
    assert report["trade_events"] > 1000, "the comparison needs trades"
    assert bt.fills.height >= 3 and bt.orders.height >= 10, "the comparison needs orders and fills"
    with ReplayServerThread([path], speed=0) as srv:
        out = run_paper(settings, PaperConfig(url=srv.url, duration_s=120, execution="events",
                                              stale_after_s=30, store=False, mlflow=False,
                                              allow_in_sample=True),
                        trading=TradingConfig(), model=champion, events=cfg,
                        end_of_stream=lambda: srv.finished.is_set())
    assert out["stop_reason"] == "end_of_stream" and out["execution"] == "events"
    # the same events: every trade of the file reached the paper session
    seen = out["event_input"]
    for key in ("trade_events", "depth_events", "snapshot_events", "clear_events",
                "exch_ts_raised"):
        assert seen[key] == report[key], key
    fills = out["trades"]
    assert [(f["order_id"], f["side"], f["price"], f["qty"], f["liquidity"], f["fill_at"])
            for f in fills] == [(r["order_id"], r["side"], r["price"], r["qty"], r["liquidity"],
                                 r["fill_at"].isoformat()) for r in bt.fills.iter_rows(named=True)]
    assert out["metrics"]["fees_paid"] == bt.account.fees
    assert out["metrics"]["realized_pnl"] == bt.account.realized
    assert out["metrics"]["final_position"] == bt.account.position
    assert out["metrics"]["orders"] == bt.orders.height
    assert out["metrics"]["orders_by_status"] == dict(bt.orders["status"].value_counts().iter_rows())


def test_kill_switch_cancels_resting_orders(bybit_delta_files, test_models, settings):
    """The kill switch trips while a quote rests: it is cancelled, nothing rests after."""
    champion, _ = test_models
    path = next(p for p in bybit_delta_files if "20250707_034621" in p.name)
    cfg = _config()
    trader = build_trader(settings, TradingConfig(), champion, events=cfg)
    kill = KillSwitch()

    def resting() -> bool:
        log = trader.events.run.engine.order_log()
        return log.height > 0 and (log["status"] == "resting").any()

    async def session():
        loop = asyncio.get_running_loop()

        def watch():
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if resting():
                    kill.trip("kill_switch:test")
                    return
                time.sleep(0.005)

        watcher = loop.run_in_executor(None, watch)
        result = await run_stream(trader, srv.url, "BTCUSDT", 30, stale=StaleDataGuard(20), kill=kill)
        await watcher
        return result

    with ReplayServerThread([path], speed=1) as srv:
        loop_result = asyncio.run(session())
    assert loop_result.stop_reason == "kill_switch:test"
    log = trader.events.run.engine.order_log()
    assert log.height > 0 and "cancelled" in log["status"].to_list()
    assert not (log["status"].is_in(["resting", "partially_filled", "pending"])).any()
    assert trader.events.run.engine.exchange_position == pytest.approx(0.0, abs=1e-12)
    assert np.isfinite(trader.events.run.result().final_equity)


def test_paper_with_a_tick_that_is_not_the_instruments_stops_at_the_first_snapshot(
        bybit_delta_files, test_models, settings):
    """Live, the engine checks each batch as it arrives: a tick of 0.5 on Bybit's 0.1 prices
    is one clear error at the first snapshot, before any order."""
    import dataclasses

    from trade_pipeline.trading.event.engine import EventStreamError

    champion, _ = test_models
    path = next(p for p in bybit_delta_files if "20250707_034621" in p.name)
    cfg = _config()
    cfg = dataclasses.replace(cfg, execution=dataclasses.replace(cfg.execution, tick_size=0.5))
    with ReplayServerThread([path], speed=0) as srv, pytest.raises(
            EventStreamError, match=r"not multiples of tick_size 0\.5.*multiples of 0\.1"):
        run_paper(settings, PaperConfig(url=srv.url, duration_s=30, execution="events",
                                        stale_after_s=30, store=False, mlflow=False,
                                        allow_in_sample=True),
                  trading=TradingConfig(), model=champion, events=cfg,
                  end_of_stream=lambda: srv.finished.is_set())
