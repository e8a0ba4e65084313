"""The event report on hand-built streams (markouts, PnL split, fill ratio over the orders
that rested, time in queue) and the run configuration file."""

import pytest

from trade_pipeline.market.event_execution_config import EventExecutionConfig
from trade_pipeline.settings import SettingsError
from trade_pipeline.trading.event.engine import EventEngine
from trade_pipeline.trading.event_config import EventBacktestConfig
from trade_pipeline.trading.event_report import fill_ratios, report

from .event_streams import Stream, at


def test_markouts_and_pnl_split_by_hand():
    # Book 100.0 / 100.2 (mid 100.1). Buy 1.0 @ 100.0 rests behind 2.0; a 3.0 sell trade at
    # 1.0 s fills it (maker, fee 100 * 0.0002 = 0.02). The mid then moves: 100.05 at 1.5 s
    # (ask 100.1), 99.95 at 5.5 s (bid 99.9, ask 100.0), back to 100.15 at 20 s.
    # Markouts (bp) = side * (mid(t + h) - price) / price * 1e4 with t = 1.0 s:
    #   0 s: mid at the fill 100.1 -> +10.0 bp (half the 0.2 spread captured)
    #   1 s (2.0 s): 100.05 -> +5.0;  5 s (6.0 s): 99.95 -> -5.0;  30 s (31 s): past the data end (30 s) -> None
    # PnL split with the final mid 100.15: spread capture 1.0 * (100.1 - 100.0) = 0.1;
    # inventory 1.0 * (100.15 - 100.1) = 0.05; fees 0.02; total 0.1 + 0.05 - 0.02 = 0.13.
    s = (Stream().snapshot(0, [(100.0, 2.0)], [(100.2, 2.0)])
         .sell_trade(1000, 100.0, 3.0).bid(1000, 100.0, 1.0)
         .ask(1500, 100.1, 1.0)
         .bid(5500, 99.9, 1.0).bid(5500, 100.0, 0.0).ask(5500, 100.0, 1.0).ask(5500, 100.1, 0.0)
         .bid(20000, 100.1, 1.0).ask(20000, 100.2, 1.0).ask(20000, 100.0, 0.0)
         .bid(30000, 99.0, 1.0))
    cfg = EventExecutionConfig(tick_size=0.1, lot_size=0.1, entry_latency_ms=1, response_latency_ms=1)
    eng = EventEngine(cfg, s.array())
    eng.run_until(at(100))
    eng.submit_limit(1, 1, 100.0, 1.0)
    eng.run_to_end()
    figures, fills, equity = report(eng.fills(), eng.order_log(), eng.events, tick_size=0.1,
                                    lot_size=0.1, initial_capital=1000.0)
    f = fills.row(0, named=True)
    assert f["markout_0s_bp"] == pytest.approx(10.0)
    assert f["markout_1s_bp"] == pytest.approx(5.0)
    assert f["markout_5s_bp"] == pytest.approx(-5.0)
    assert f["markout_30s_bp"] is None
    pnl = figures["pnl"]
    assert pnl["spread_capture"] == pytest.approx(0.1)
    assert pnl["inventory_pnl"] == pytest.approx(0.05)
    assert pnl["fees"] == pytest.approx(0.02)
    assert pnl["total"] == pytest.approx(0.13)
    assert figures["fill_ratio_qty"] == 1.0 and figures["fill_ratio_orders"] == 1.0
    # accepted at 101 ms, filled at 1000 ms: 0.899 s in the queue
    assert figures["time_in_queue_to_fill_s"]["median"] == pytest.approx(0.899)
    # equity path: 1000 - 100 - 0.02 + 1.0 * mid; at 25 s the mid is 100.15
    e = equity.filter(equity["ts_ns"] == at(25000)).row(0, named=True)
    assert e["equity"] == pytest.approx(1000 - 100.0 - 0.02 + 100.15)
    assert e["position"] == 1.0
    # one fill and 30 s of data: far too little to put an interval on anything
    assert all(m["ci_low"] is None and m["p_value"] == 1.0 for m in figures["markout_bp"].values())
    assert figures["pnl_uncertainty"]["total_ci_low"] is None


def test_markouts_and_pnl_carry_intervals_sized_for_their_overlap(binance_files):
    """The GLFT maker on the Binance capture (265 fills in 11 minutes): the mean markout at
    1 s has a 95 % block-bootstrap interval around it, its blocks as long as ten horizons'
    worth of fills; at 30 s (and for the PnL, blocks of 30 s of increments) the capture holds
    fewer than ten blocks, and the report says it cannot tell instead of a narrow interval."""
    import math

    from trade_pipeline.trading.event.engine import prepare_events
    from trade_pipeline.trading.event_backtest import EventRun
    from trade_pipeline.trading.event_config import EventRunConfig
    from trade_pipeline.trading.event_service import load_events
    from trade_pipeline.trading.market_maker import MarketMakerConfig

    stream = load_events([str(p) for p in binance_files]).events
    ex = EventExecutionConfig(tick_size=0.01, lot_size=0.00001, maker_fee=-0.00005, taker_fee=0.0007,
                              entry_latency_ms=10.0, response_latency_ms=10.0)
    cfg = EventBacktestConfig(execution=ex, run=EventRunConfig(strategy="market_maker", drawdown_stop=None),
                              market_maker=MarketMakerConfig(order_qty=0.00001, max_position=0.0002,
                                                             window=600, adj1=0.02))
    events, _ = prepare_events(stream, ex)
    run = EventRun(cfg, events, prepared=True)
    run.finish()
    res = run.result()
    figures, marked, _ = report(res.fills, res.orders, events, tick_size=0.01, lot_size=0.00001,
                                initial_capital=10_000.0)
    n = marked.height
    assert n >= 200
    span_s = (marked["fill_at"].max() - marked["fill_at"].min()).total_seconds()
    one = figures["markout_bp"]["1s"]
    assert one["block_fills"] == 10 * math.ceil(n / span_s)
    assert one["ci_low"] < one["mean"] < one["ci_high"]
    thirty = figures["markout_bp"]["30s"]
    assert thirty["n"] < 10 * thirty["block_fills"] and thirty["ci_low"] is None
    unc = figures["pnl_uncertainty"]
    assert unc["block_increments"] == 300 and unc["increments"] < 3000 and unc["total_ci_low"] is None



def test_fill_ratio_counts_only_orders_that_rested():
    # Book 100.0 x 2.0 / 100.2 x 2.0, 100.3 x 2.0; tick 0.1, lot 0.1, 1 ms latencies. At
    # 100 ms (on the book at 101 ms):
    #   1: buy 1.0 @ 100.2 crosses: 1.0 taker @ 100.2, never rests;
    #   2: buy 1.0 @ 100.0 rests behind 2.0; the 2.5 sell at 100.0 at 1 s fills 0.5 of it
    #      (maker); cancelled at 2 s: posted 1.0, maker 0.5;
    #   3: sell 2.0 @ 100.5 rests and never fills: posted 2.0, maker 0; cancelled at 2 s
    #      (on the book from 101 ms to 2001 ms: 1.9 s resting unfilled);
    #   4: post-only buy 1.0 @ 100.2 would cross: expired, never rests;
    #   5: buy 3.0 @ 100.2 takes the 2.0 at 100.2 (taker) and rests 1.0 there, which the
    #      1 s sell at 100.0 goes through: posted 1.0, maker 1.0.
    # Rested: 2, 3, 5. fill_ratio_orders = 2 / 3 (2 and 5 got maker fills);
    # fill_ratio_qty = (0.5 + 1.0) / (1.0 + 2.0 + 1.0) = 0.375.
    # (Counting every limit order and every fill would give 3 / 5 and 4.5 / 8.)
    s = (Stream().snapshot(0, [(100.0, 2.0)], [(100.2, 2.0), (100.3, 2.0)])
         .sell_trade(1000, 100.0, 2.5).ask(3000, 100.4, 1.0))
    cfg = EventExecutionConfig(tick_size=0.1, lot_size=0.1, entry_latency_ms=1, response_latency_ms=1)
    eng = EventEngine(cfg, s.array())
    eng.run_until(at(100))
    eng.submit_limit(1, 1, 100.2, 1.0)
    eng.submit_limit(2, 1, 100.0, 1.0)
    eng.submit_limit(3, -1, 100.5, 2.0)
    eng.submit_limit(4, 1, 100.2, 1.0, post_only=True)
    eng.submit_limit(5, 1, 100.2, 3.0)
    eng.run_until(at(2000))
    eng.cancel(2)
    eng.cancel(3)
    eng.run_to_end()
    fills, orders = eng.fills(), eng.order_log()
    # the by-hand story above is what the engine did
    assert [(r["order_id"], r["liquidity"], r["qty"]) for r in fills.iter_rows(named=True)] == [
        (1, "taker", 1.0), (5, "taker", 2.0), (2, "maker", 0.5), (5, "maker", 1.0)]
    assert orders["status"].to_list() == ["filled", "cancelled", "cancelled", "expired", "filled"]
    figures, _, _ = report(fills, orders, eng.events, tick_size=0.1, lot_size=0.1,
                           initial_capital=1000.0)
    assert figures["fill_ratio_orders"] == pytest.approx(2 / 3)
    assert figures["fill_ratio_qty"] == pytest.approx(0.375)
    assert figures["limit_orders"] == 5
    # resting unfilled: order 3 only (the refused post-only order 4 never rested)
    assert figures["time_resting_unfilled_s"] == {"n": 1, "mean": pytest.approx(1.9),
                                                  "median": pytest.approx(1.9)}
    # order 1 alone only took: nothing rested, so no ratio (rather than 0 or 1)
    assert fill_ratios(fills.filter(fills["order_row"] == 0), orders.head(1), 0.1) == (None, None)

def test_run_config_from_toml(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[event_execution]\nqueue_model = "prob_log"\nmaker_fee = -0.0001\n'
                    '[event_run]\nstrategy = "maker"\ninterval_ms = 50\n[maker]\nmax_position = 0.2\n')
    cfg = EventBacktestConfig.load(path)
    assert cfg.execution.queue_model == "prob_log" and cfg.execution.maker_fee == -0.0001
    assert cfg.run.strategy == "maker" and cfg.run.interval_ns == 50_000_000
    assert cfg.maker.max_position == 0.2 and cfg.strategy_config() is cfg.maker
    path.write_text("[event_execution]\nqueue = 'x'\n")
    with pytest.raises(SettingsError, match=r"unknown keys \['queue'\]"):
        EventBacktestConfig.load(path)
    path.write_text("[engine]\nx = 1\n")
    with pytest.raises(SettingsError, match="unknown sections"):
        EventBacktestConfig.load(path)
    path.write_text('[event_execution]\nqueue_model = "fifo"\n')
    with pytest.raises(SettingsError, match="queue_model must be one of"):
        EventBacktestConfig.load(path)
    path.write_text('[event_execution]\nlatency = "table"\n')
    with pytest.raises(SettingsError, match="latency_table"):
        EventBacktestConfig.load(path)
