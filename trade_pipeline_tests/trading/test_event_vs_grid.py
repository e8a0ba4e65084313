"""One accounting, two engines: on a taker-only strategy the event engine fills exactly as
the grid backtest on the same data (the snapshot grid of a real capture as an event stream,
one grid step of order latency, responses at once)."""

import numpy as np
import polars as pl
import pytest

from trade_pipeline.market.event_execution_config import EventExecutionConfig
from trade_pipeline.market.snapshots import build_snapshots
from trade_pipeline.trading.backtest import run_backtest
from trade_pipeline.trading.engine import TradingConfig
from trade_pipeline.trading.event_backtest import run_event_backtest
from trade_pipeline.trading.event_config import EventBacktestConfig, EventRunConfig
from trade_pipeline.trading.event_taker import TakerConfig
from trade_pipeline.trading.execution import ExecutionConfig
from trade_pipeline.trading.strategy import StrategyConfig
from trade_pipeline_tests.trading.event_streams import events_from_grid


def _gap_free_session(path) -> pl.DataFrame:
    snaps = build_snapshots([path]).frame.sort("timestamp")
    sid = snaps["session_id"].mode()[0]
    s = snaps.filter(pl.col("session_id") == sid)
    assert (s["timestamp"].diff().drop_nulls().dt.total_milliseconds() == 100).all()
    return s


def _signals(snaps: pl.DataFrame) -> np.ndarray:
    """sign of the order-book imbalance, held until it flips (a taker that trades often);
    flat on the first row (the event driver's first wake-up is one interval in)."""
    bid = snaps.select([f"bid_size_{i}" for i in range(1, 6)]).sum_horizontal().to_numpy()
    ask = snaps.select([f"ask_size_{i}" for i in range(1, 6)]).sum_horizontal().to_numpy()
    imb = (bid - ask) / (bid + ask)
    sig = np.where(imb > 0.3, 1, np.where(imb < -0.3, -1, 0)).astype(np.int8)
    sig[0] = 0
    return sig


def test_taker_fills_identical_on_both_engines(bybit_delta_files):
    path = next(p for p in bybit_delta_files if "20250706_070028" in p.name)
    snaps = _gap_free_session(path)
    sig = _signals(snaps)
    preds = pl.DataFrame({"timestamp": snaps["timestamp"], "signal": sig})
    grid_cfg = TradingConfig(ExecutionConfig(latency_steps=1, order_type="market", qty_step=0.001),
                             StrategyConfig(order_qty=2.0, max_position=2.0, drawdown_stop=None))
    grid = run_backtest(snaps, preds, grid_cfg)
    assert len(grid.trades) >= 10, "the comparison needs trades"
    assert max(t.levels for t in grid.trades) >= 3, "and orders that walk the book"

    events = events_from_grid(snaps)
    cfg = EventBacktestConfig(
        execution=EventExecutionConfig(tick_size=0.1, lot_size=0.001, entry_latency_ms=100.0,
                                       response_latency_ms=0.0),
        run=EventRunConfig(strategy="taker", interval_ms=100.0, drawdown_stop=None),
        taker=TakerConfig(order_qty=2.0, max_position=2.0))
    ts_ns = snaps["timestamp"].dt.epoch("ns").to_numpy()
    signals = pl.DataFrame({"available_ns": ts_ns, "value": sig.astype(np.float64)})
    ev = run_event_backtest(events, cfg, signals=signals)

    # the event engine reports one fill per level walked; the grid one trade per order
    per_order = (ev.fills.group_by("order_id", maintain_order=True)
                 .agg(pl.col("fill_at").first(), pl.col("side").first(), pl.col("qty").sum(),
                      (pl.col("price") * pl.col("qty")).sum().alias("notional"),
                      pl.col("fee").sum(), pl.len().alias("levels")))
    assert per_order.height == len(grid.trades)
    for g, e in zip(grid.trades, per_order.iter_rows(named=True), strict=True):
        assert int(e["fill_at"].timestamp() * 1e6) == g.fill_us
        assert e["side"] == g.side and e["levels"] == g.levels
        assert e["qty"] == pytest.approx(g.qty, abs=1e-12)
        assert e["notional"] == pytest.approx(g.notional, rel=1e-12)
        assert e["fee"] == pytest.approx(g.fee, rel=1e-12)
    # ... and the one accounting gives the same PnL
    assert ev.account.position == pytest.approx(grid.metrics["final_position"], abs=1e-12)
    assert ev.account.realized == pytest.approx(grid.metrics["realized_pnl"], rel=1e-9, abs=1e-9)
    assert ev.account.fees == pytest.approx(grid.metrics["fees_paid"], rel=1e-12)
