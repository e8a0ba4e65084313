"""A stream fed in pieces (paper trading) runs exactly as the stream fed at once (backtest):
same wake-ups, same orders, same fills, same accounts. Property-tested on random markets."""

import itertools

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trade_pipeline.market.event_execution_config import EventExecutionConfig
from trade_pipeline.trading.event_backtest import EventRun, run_event_backtest
from trade_pipeline.trading.event_config import EventBacktestConfig, EventRunConfig
from trade_pipeline.trading.maker import MakerConfig
from trade_pipeline.trading.market_maker import MarketMakerConfig

from .event_streams import MS, Stream


def random_market(seed: int, steps: int = 400, feed_ms: float = 3.0) -> Stream:
    """A random walk of a 5-level book on a 0.1 tick with trades at the touch, ~10 ms apart."""
    rng = np.random.default_rng(seed)
    s = Stream(feed_ms=feed_ms)
    mid = 1000
    s.snapshot(0, [((mid - i) / 10, 5.0) for i in range(1, 6)], [((mid + i) / 10, 5.0) for i in range(1, 6)])
    t = 0.0
    for _ in range(steps):
        t += float(rng.integers(1, 20))
        r = rng.random()
        if r < 0.15:  # the mid moves a tick: the touch on one side empties
            if rng.random() < 0.5:
                s.ask(t, (mid + 1) / 10, 0.0)
                mid += 1
                s.bid(t, (mid - 1) / 10, 4.0)
                s.ask(t, (mid + 5) / 10, 5.0)
            else:
                s.bid(t, (mid - 1) / 10, 0.0)
                mid -= 1
                s.ask(t, (mid + 1) / 10, 4.0)
                s.bid(t, (mid - 5) / 10, 5.0)
        elif r < 0.55:
            side = 1 if rng.random() < 0.5 else -1
            lvl = int(rng.integers(1, 6))
            px = (mid - lvl) / 10 if side == 1 else (mid + lvl) / 10
            qty = round(float(rng.uniform(0.5, 9.0)), 1)
            (s.bid if side == 1 else s.ask)(t, px, qty)
        else:
            qty = round(float(rng.uniform(0.1, 3.0)), 1)
            if rng.random() < 0.5:
                s.buy_trade(t, (mid + 1) / 10, qty)
            else:
                s.sell_trade(t, (mid - 1) / 10, qty)
    return s


def _config(strategy: str, queue: str) -> EventBacktestConfig:
    return EventBacktestConfig(
        execution=EventExecutionConfig(tick_size=0.1, lot_size=0.1, entry_latency_ms=4.0,
                                       response_latency_ms=6.0, queue_model=queue),
        run=EventRunConfig(strategy=strategy, interval_ms=25.0, drawdown_stop=None),
        maker=MakerConfig(order_qty=0.5, max_position=1.5, adverse_prior_bp=0.0,
                          adverse_horizon_s=0.2),
        market_maker=MarketMakerConfig(order_qty=0.1, max_position=0.5, window=20, refit_every=5,
                                       fit_ticks=10))


def _signals(events, seed):
    rng = np.random.default_rng(seed + 1)
    t = np.sort(rng.choice(events["local_ts"], size=30, replace=False))
    return pl.DataFrame({"available_ns": t, "value": rng.normal(0, 0.002, len(t))})


def _same(a, b):
    assert a.fills.equals(b.fills)
    assert a.orders.equals(b.orders)
    assert a.samples.equals(b.samples)
    assert a.account.realized == b.account.realized and a.account.fees == b.account.fees


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), strategy=st.sampled_from(["maker", "market_maker"]),
       queue=st.sampled_from(["risk_averse", "prob_power"]), cuts=st.lists(st.integers(1, 2000), max_size=12))
def test_pieces_equal_whole(seed, strategy, queue, cuts):
    events = random_market(seed).array()
    cfg = _config(strategy, queue)
    sig = _signals(events, seed)
    whole = run_event_backtest(events, cfg, signals=sig)
    live = EventRun(cfg, None, live=True)
    bounds = sorted({0, len(events), *[c % len(events) for c in cuts]})
    sig_ts, sig_v = sig["available_ns"].to_numpy(), sig["value"].to_numpy()
    done = 0
    for a, b in itertools.pairwise(bounds):
        chunk = events[a:b]
        # signals arrive with the message that makes them available
        last = chunk["local_ts"][-1]
        upto = int(np.searchsorted(sig_ts, last, side="right"))
        live.append(chunk, sig_ts[done:upto], sig_v[done:upto])
        done = upto
        live.advance()
    live.add_signals(sig_ts[done:], sig_v[done:])
    live.finish()
    _same(whole, live.result())


def test_random_markets_produce_fills():
    """The property above is not vacuous: these markets make both strategies trade."""
    events = random_market(7, steps=1500).array()
    for strategy in ("maker", "market_maker"):
        r = run_event_backtest(events, _config(strategy, "risk_averse"), signals=_signals(events, 7))
        assert r.fills.height >= 3, strategy
        assert set(r.fills["liquidity"].to_list()) >= {"maker"}


def test_stream_clock_errors_are_clear():
    import pytest

    from trade_pipeline.trading.event.engine import EventStreamError

    events = random_market(1, steps=20).array()
    bad = events.copy()
    bad["exch_ts"][5] = bad["exch_ts"][4] - MS
    with pytest.raises(EventStreamError, match="exch_ts order"):
        run_event_backtest(bad, _config("maker", "risk_averse"))


def test_drawdown_stop_cancels_resting_orders_and_flattens():
    """A drawdown stop so tight the first loss trips it: the strategy stops, every resting
    order is cancelled and the position closed; nothing rests at the end."""
    import dataclasses

    events = random_market(11, steps=3000).array()
    cfg = _config("market_maker", "risk_averse")
    cfg = cfg.with_(run=dataclasses.replace(cfg.run, drawdown_stop=1e-7))
    r = run_event_backtest(events, cfg)
    assert r.halted == "drawdown_stop"
    assert r.orders.height > 0 and "cancelled" in r.orders["status"].to_list()
    assert not r.orders["status"].is_in(["resting", "partially_filled", "pending"]).any()
    assert r.account.position == pytest.approx(0.0, abs=1e-9)
    # after the halt only closing market orders are sent
    halted_at = r.samples.filter(pl.col("equity") <= r.samples["equity"].cum_max() * (1 - 1e-7))["ts_ns"][0]
    late = r.orders.filter(pl.col("submitted_at").dt.epoch("ns") > halted_at)
    assert late.height == 0 or (late["type"] == "market").all()
