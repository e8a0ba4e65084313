"""Paper trading with limit orders (event execution) on the replay server equals the event
backtest on the same file: same fills, same PnL. And the kill switch cancels resting orders."""

import asyncio
import time

import numpy as np
import pytest

from trade_pipeline.market.event_execution_config import EventExecutionConfig
from trade_pipeline.market.replay_server import ReplayServerThread
from trade_pipeline.market.snapshots import build_snapshots
from trade_pipeline.trading.book_events import book_events
from trade_pipeline.trading.engine import TradingConfig
from trade_pipeline.trading.event.engine import prepare_events
from trade_pipeline.trading.event_backtest import run_event_backtest, signals_from_predictions
from trade_pipeline.trading.event_config import EventBacktestConfig, EventRunConfig
from trade_pipeline.trading.inputs import model_predictions
from trade_pipeline.trading.maker import MakerConfig
from trade_pipeline.trading.paper import build_trader, run_paper, run_stream
from trade_pipeline.trading.paper_config import PaperConfig
from trade_pipeline.trading.risk import KillSwitch, StaleDataGuard


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
    events = book_events([path]).events
    prepared, _ = prepare_events(events, cfg.execution)
    preds = model_predictions(model, build_snapshots([path]).frame)
    signals = signals_from_predictions(prepared, preds["timestamp"].dt.epoch("us").to_numpy(),
                                       preds["prediction"].to_numpy())
    return run_event_backtest(events, cfg, signals=signals)


@pytest.mark.slow
def test_paper_limit_orders_equal_event_backtest(bybit_delta_files, test_models, settings):
    champion, _ = test_models
    path = next(p for p in bybit_delta_files if "20250707_053714" in p.name)
    cfg = _config()
    bt = _backtest(path, champion, cfg)
    assert bt.fills.height >= 3 and bt.orders.height >= 10, "the comparison needs orders and fills"
    with ReplayServerThread([path], speed=0) as srv:
        out = run_paper(settings, PaperConfig(url=srv.url, duration_s=120, execution="events",
                                              stale_after_s=30, store=False, mlflow=False),
                        trading=TradingConfig(), model=champion, events=cfg,
                        end_of_stream=lambda: srv.finished.is_set())
    assert out["stop_reason"] == "end_of_stream" and out["execution"] == "events"
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
