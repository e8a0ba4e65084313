"""Accounting and execution worked out by hand: long, short, reversal, levels, fees, latency."""

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trade_pipeline.settings import SettingsError
from trade_pipeline.trading.accounting import Account
from trade_pipeline.trading.backtest import run_backtest
from trade_pipeline.trading.engine import TradingConfig
from trade_pipeline.trading.execution import ExecutionConfig, fill_market
from trade_pipeline.trading.strategy import StrategyConfig

from .books import frame, level_book, signals

TAKER = 0.00055
MAKER = 0.0002


def cfg(latency=1, qty=1.0, max_pos=1.0, **exe) -> TradingConfig:
    return TradingConfig(
        execution=ExecutionConfig(latency_steps=latency, **exe),
        strategy=StrategyConfig(order_qty=qty, max_position=max_pos, drawdown_stop=None),
    )


def test_long_round_trip_by_hand():
    snap = frame([level_book(100, 101), level_book(100, 101), level_book(105, 106),
                  level_book(109, 110), level_book(110, 111), level_book(110, 111)])
    res = run_backtest(snap, signals(snap, [1, 1, 1, 0, 0, 0]), cfg())
    buy, sell = res.trades
    # Decided at row 0, filled at row 1's best ask; closed at row 3, filled at row 4's best bid.
    assert (buy.side, buy.qty, buy.price, buy.fill_us - buy.decided_us) == (1, 1.0, 101.0, 100_000)
    assert buy.fee == pytest.approx(101 * TAKER)
    assert (sell.side, sell.price, sell.position_after) == (-1, 110.0, 0.0)
    assert sell.realized_pnl == pytest.approx(9.0)
    # Equity at row 2 marks the long at mid 105.5.
    assert res.equity[2] == pytest.approx(10_000 + 4.5 - 101 * TAKER)
    net = 9.0 - (101 + 110) * TAKER
    assert res.metrics["final_equity"] == pytest.approx(10_000 + net)
    assert res.metrics["fees_paid"] == pytest.approx(211 * TAKER)
    assert res.metrics["n_round_trips"] == 1 and res.metrics["hit_rate"] == 1.0
    assert res.metrics["turnover"] == pytest.approx(211 / 10_000)


def test_short_by_hand_exact():
    snap = frame([level_book(100, 101), level_book(100, 101), level_book(95, 96),
                  level_book(90, 91), level_book(90, 91)])
    res = run_backtest(snap, signals(snap, [-1, -1, 0, 0, 0]), cfg())
    sell, buy = res.trades
    assert (sell.side, sell.price) == (-1, 100.0)  # sold at row 1's best bid
    # Close decided at row 2, filled at row 3's best ask 91.
    assert buy.fill_us == 1_751_865_300_300_000 and buy.price == 91.0
    assert buy.realized_pnl == pytest.approx(9.0)
    assert res.equity[2] == pytest.approx(10_000 + (100 - 95.5) - 100 * TAKER)
    assert res.metrics["final_equity"] == pytest.approx(10_000 + 9 - (100 + 91) * TAKER)


def test_reversal_long_to_short_in_one_order():
    snap = frame([level_book(100, 101), level_book(100, 101), level_book(120, 121),
                  level_book(120, 121), level_book(110, 111), level_book(110, 111)])
    res = run_backtest(snap, signals(snap, [1, 1, -1, -1, 0, 0]), cfg())
    buy, rev, cover = res.trades
    assert (buy.price, buy.position_after) == (101.0, 1.0)
    assert (rev.side, rev.qty, rev.price, rev.position_after) == (-1, 2.0, 120.0, -1.0)
    assert rev.realized_pnl == pytest.approx(19.0)  # long 1 @101 closed @120
    assert (cover.price, cover.realized_pnl) == (111.0, pytest.approx(9.0))  # short 1 @120 -> 111
    fees = (101 + 240 + 111) * TAKER
    assert res.metrics["final_equity"] == pytest.approx(10_000 + 19 + 9 - fees)
    acc_trips = res.metrics["n_round_trips"]
    assert acc_trips == 2
    # Each round trip carries its own share of the reversal's fee.
    assert res.metrics["gross_profit"] == pytest.approx(28 - fees)


def test_partial_fill_across_levels():
    asks = [(101.0, 0.5), (102.0, 0.7), (103.0, 5.0)]
    bids = [(100.0, 1.0)]
    fill = fill_market(1, 1.5, [p for p, _ in asks] + [math.nan] * 7,
                       [q for _, q in asks] + [0.0] * 7, ExecutionConfig())
    assert fill.qty == pytest.approx(1.5) and fill.levels == 3
    assert fill.notional == pytest.approx(0.5 * 101 + 0.7 * 102 + 0.3 * 103)
    assert fill.vwap == pytest.approx(152.8 / 1.5)
    assert fill.fee == pytest.approx(152.8 * TAKER)
    # Through the engine: the book of the arrival row is walked.
    snap = frame([(bids, asks), (bids, asks), (bids, asks)])
    res = run_backtest(snap, signals(snap, [1, 1, 1]), cfg(qty=1.5, max_pos=2.0))
    assert res.trades[0].price == pytest.approx(152.8 / 1.5) and res.trades[0].levels == 3


def test_thin_book_partial_or_reject():
    asks = [(101.0, 0.5), (102.0, 0.7)]  # only 1.2 on the ask side
    px, sz = [101.0, 102.0] + [math.nan] * 8, [0.5, 0.7] + [0.0] * 8
    part = fill_market(1, 3.0, px, sz, ExecutionConfig(thin_book="partial"))
    assert part.qty == pytest.approx(1.2) and part.unfilled == pytest.approx(1.8)
    rej = fill_market(1, 3.0, px, sz, ExecutionConfig(thin_book="reject"))
    assert rej.qty == 0.0 and rej.unfilled == 3.0
    snap = frame([([(100.0, 1.0)], asks)] * 3)
    res = run_backtest(snap, signals(snap, [1, 1, 1]), cfg(qty=3.0, max_pos=3.0))
    # Row 1 fills 1.2 (rest cancelled); row 1's decision tops up 1.8, which row 2 partly fills.
    assert [t.qty for t in res.trades] == [pytest.approx(1.2), pytest.approx(1.2)]
    assert res.metrics["unfilled_qty"] == pytest.approx(1.8 + 0.6)


def test_maker_fee_on_limit_order():
    snap = frame([level_book(100, 101), level_book(100, 101), level_book(100, 101),
                  level_book(99, 100), level_book(99, 100)])
    res = run_backtest(snap, signals(snap, [1, 1, 1, 1, 1]), cfg(order_type="limit"))
    (buy,) = res.trades
    # Rests at row 1's best bid (100); row 3's best ask reaches 100: filled there, maker fee.
    assert (buy.price, buy.liquidity, buy.fill_us - buy.decided_us) == (100.0, "maker", 300_000)
    assert buy.fee == pytest.approx(100 * MAKER)


def test_limit_order_times_out():
    snap = frame([level_book(100, 101)] * 6)
    res = run_backtest(snap, signals(snap, [1] * 6), cfg(order_type="limit", limit_timeout_steps=2))
    assert res.trades == [] and res.metrics["cancelled_orders"] >= 1


@pytest.mark.parametrize("latency", [1, 2, 3])
def test_latency_fills_at_row_t_plus_latency(latency):
    # Every row has a distinct ask, so the fill price tells which row filled the order.
    snap = frame([level_book(100 + k, 101 + k) for k in range(6)])
    res = run_backtest(snap, signals(snap, [1] * 6), cfg(latency=latency))
    assert res.trades[0].price == 101 + latency
    assert res.trades[0].decided_us == frame([level_book(1, 2)]).get_column("timestamp").dt.epoch("us")[0]


def test_latency_counts_time_across_a_grid_gap():
    # Rows at 0, 100, 500 ms: with latency 2 (200 ms) the order arrives at 200 ms and fills
    # at the first row at or after it, the 500 ms row.
    snap = frame([level_book(100, 101), level_book(101, 102), level_book(104, 105)])
    snap = snap.with_columns(
        timestamp=snap["timestamp"] + pl.Series([0, 0, 300_000]).cast(pl.Duration("us"))
    )
    res = run_backtest(snap, signals(snap, [1, 1, 1]), cfg(latency=2))
    assert res.trades[0].price == 105.0


def test_max_position_caps_size():
    snap = frame([level_book(100, 101)] * 3)
    res = run_backtest(snap, signals(snap, [1, 1, 1]), cfg(qty=5.0, max_pos=0.5))
    assert res.trades[0].qty == pytest.approx(0.5)


def test_cooldown_blocks_reentry_and_reversal():
    snap = frame([level_book(100, 101)] * 8)
    config = TradingConfig(ExecutionConfig(), StrategyConfig(order_qty=1, max_position=1,
                                                             drawdown_stop=None, cooldown_steps=3))
    res = run_backtest(snap, signals(snap, [1, 1, -1, -1, -1, -1, -1, -1]), config)
    # Reversal becomes a close (fill at row 3); re-entry short waits 3 steps after it.
    assert [(t.side, t.position_after) for t in res.trades] == [(1, 1.0), (-1, 0.0), (-1, -1.0)]
    assert res.trades[1].fill_us == res.trades[0].fill_us + 200_000
    assert res.trades[2].decided_us - res.trades[1].fill_us == 300_000


def test_drawdown_stop_flattens_and_stops():
    snap = frame([level_book(100, 101), level_book(100, 101), level_book(80, 81),
                  level_book(80, 81), level_book(90, 91), level_book(90, 91)])
    config = TradingConfig(ExecutionConfig(initial_capital=1000.0),
                           StrategyConfig(order_qty=1, max_position=1, drawdown_stop=0.01))
    res = run_backtest(snap, signals(snap, [1] * 6), config)
    assert res.metrics["halted"] == "drawdown_stop"
    assert [t.reason for t in res.trades] == ["signal", "drawdown_stop"]
    assert res.trades[1].price == 80.0 and res.metrics["final_position"] == 0.0


def test_funding_off_by_default_and_charged_when_configured():
    eight_h = 8 * 3600 * 1_000_000
    t0 = (1_751_865_300_000_000 // eight_h + 1) * eight_h - 200_000  # 200 ms before funding
    snap = frame([level_book(100, 101)] * 5, t0_us=t0)
    off = run_backtest(snap, signals(snap, [1] * 5), cfg())
    assert off.metrics["funding_paid"] == 0.0
    on = run_backtest(snap, signals(snap, [1] * 5), cfg(funding_rate_8h=0.0001))
    assert on.metrics["funding_paid"] == pytest.approx(0.0001 * 1 * 100.5)


def test_config_from_toml(tmp_path):
    p = tmp_path / "exec.toml"
    p.write_text("taker_fee = 0.0006\nlatency_steps = 2\n[strategy]\nentry_threshold = 0.001\n")
    c = TradingConfig.load(p)
    assert c.execution.taker_fee == 0.0006 and c.execution.latency_steps == 2
    assert c.execution.maker_fee == MAKER and c.execution.funding_rate_8h is None
    assert c.strategy.entry_threshold == 0.001
    p.write_text("latency_steps = 0\n")
    with pytest.raises(SettingsError, match="latency_steps"):
        TradingConfig.load(p)
    p.write_text("taker_fe = 0.1\n")
    with pytest.raises(SettingsError, match="unknown keys"):
        TradingConfig.load(p)


def test_bad_signal_values_are_an_error():
    snap = frame([level_book(100, 101)] * 2)
    with pytest.raises(ValueError, match="-1, 0 or"):
        run_backtest(snap, signals(snap, [2, 0]), cfg())


fills = st.lists(
    st.tuples(st.sampled_from([1, -1]), st.integers(1, 5000), st.floats(50, 200)),
    min_size=1, max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(fills, st.floats(50, 200))
def test_average_cost_equals_cash_accounting(seq, mark):
    """Whatever the sequence (adds, reductions, reversals), average-cost equity equals
    cash accounting: initial + cash flows - fees + position * mark."""
    acc = Account(10_000.0)
    cash = 0.0
    pos = 0.0
    for k, (side, lots, price) in enumerate(seq):
        qty = lots / 1000
        fee = qty * price * TAKER
        acc.apply_fill(k, side, qty, qty * price, fee)
        cash -= side * qty * price
        pos = round(pos + side * qty, 9)
    assert acc.position == pytest.approx(pos, abs=1e-9)
    expected = 10_000.0 + cash + pos * mark - acc.fees
    assert acc.equity(mark) == pytest.approx(expected, rel=1e-9, abs=1e-6)
    # Closed round trips plus the open one's running PnL add up to realized minus fees.
    trips = sum(t.pnl for t in acc.trips)
    open_part = acc.trip_pnl if acc.position else 0.0
    assert trips + open_part == pytest.approx(acc.realized - acc.fees, abs=1e-6)


def test_trip_pnl_with_fees_sums():
    acc = Account(1000.0)
    acc.apply_fill(0, 1, 1.0, 100.0, 0.1)
    acc.apply_fill(1, -1, 2.0, 220.0, 0.2)  # reversal at 110: +10 realized
    acc.apply_fill(2, 1, 1.0, 105.0, 0.05)  # short 1 @110 covered @105: +5
    assert [round(t.pnl, 9) for t in acc.trips] == [round(10 - 0.1 - 0.1, 9), round(5 - 0.1 - 0.05, 9)]
    assert acc.position == 0.0 and acc.equity(0) == pytest.approx(1000 + 15 - 0.35)
    assert np.isclose(acc.realized, 15.0)
