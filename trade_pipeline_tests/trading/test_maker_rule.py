"""The model-driven maker's decision rule (`trading/maker.py`), checked from its order log and
fills on the real Binance capture (book diffs and its 19,904 trades):

- it quotes post-only at the touch on the side the signal favours (bid for a positive
  expected return, ask for a negative one);
- it quotes only when side * signal + half spread - adverse selection - maker fee > min edge:
  runs a hair either side of that threshold (computed from the config as maker.py does, on
  the book the strategy saw) post one order and none;
- when the signal flips, the resting quote is cancelled at the first wake-up that sees the
  flip (it ends at that wake-up plus the entry latency) and the other side is quoted;
- |position| stays within max_position under a signal that never changes side.

Plus a hand-built race (the only way to place a fill exactly inside a replace's flight):
a replace must not take the position past the limit when the order fills unseen meanwhile.
"""

import numpy as np
import polars as pl
import pytest

from trade_pipeline.market.event_execution_config import EventExecutionConfig
from trade_pipeline.trading.event.engine import prepare_events
from trade_pipeline.trading.event_backtest import run_event_backtest
from trade_pipeline.trading.event_config import EventBacktestConfig, EventRunConfig
from trade_pipeline.trading.event_service import load_events
from trade_pipeline.trading.maker import BP, MakerConfig
from trade_pipeline_tests.market.event_book import book_rows_at

from .event_streams import Stream, at

MS = 1_000_000
S = 1_000_000_000
TICK, LOT = 0.01, 0.00001  # Binance spot BTCUSDT
ENTRY_MS, RESPONSE_MS, INTERVAL_MS = 10.0, 10.0, 100.0
BID_PX, ASK_PX = 0, 20  # columns of book_rows_at's row: best bid and best ask prices


def _execution(maker_fee: float = 0.0) -> EventExecutionConfig:
    # exchange time + 5 ms as the feed clock: one clock the test's own book can replay
    return EventExecutionConfig(tick_size=TICK, lot_size=LOT, maker_fee=maker_fee,
                                feed_latency_ms=5.0, entry_latency_ms=ENTRY_MS,
                                response_latency_ms=RESPONSE_MS)


def _config(maker: MakerConfig, maker_fee: float = 0.0) -> EventBacktestConfig:
    return EventBacktestConfig(
        execution=_execution(maker_fee),
        run=EventRunConfig(strategy="maker", interval_ms=INTERVAL_MS, drawdown_stop=None),
        maker=maker)


@pytest.fixture(scope="module")
def events(binance_files) -> np.ndarray:
    """The capture as the engine runs it (the feed clock applied: the fee does not change it)."""
    prepared, info = prepare_events(load_events([str(p) for p in binance_files]).events, _execution())
    assert info["trade_events"] == 19_904
    return prepared


def _signals(times_ns, values) -> pl.DataFrame:
    return pl.DataFrame({"available_ns": np.asarray(times_ns, dtype=np.int64),
                         "value": np.asarray(values, dtype=np.float64)})


def _ns(col: pl.Series) -> np.ndarray:
    return col.dt.epoch("ns").to_numpy()


def _local_touch(events: np.ndarray, t_ns) -> np.ndarray:
    """(best bid, best ask) the strategy saw at each time: the book from every event with
    local time <= t, replayed by the tests' own simple book."""
    rows = book_rows_at(events, np.atleast_1d(np.asarray(t_ns, dtype=np.int64)), clock="local_ts")
    return rows[:, [BID_PX, ASK_PX]]


# ---- (a) the side and the price --------------------------------------------------------------
@pytest.mark.parametrize("sign", [1, -1])
def test_quotes_post_only_at_the_touch_on_the_favoured_side(events, sign):
    # +-5 bp for 20 s, then 0 (no side: the quote is pulled) for 10 s, and again
    t0 = int(events["local_ts"][0])
    times = np.arange(t0, int(events["local_ts"][-1]), 10 * S)
    values = np.where(np.arange(len(times)) % 3 == 2, 0.0, sign * 5e-4)
    maker = MakerConfig(order_qty=0.002, max_position=1.0, adverse_prior_bp=0.5)
    r = run_event_backtest(events, _config(maker), signals=_signals(times, values))
    o = r.orders
    assert o.height >= 30 and r.fills.height >= 10, "the check needs orders and fills"
    assert (o["side"] == sign).all() and (o["type"] == "limit").all() and o["post_only"].all()
    assert (r.fills["side"] == sign).all() and (r.fills["liquidity"] == "maker").all()
    # never replaced: the price logged is the one sent, at the touch the strategy saw then
    sent = o.filter(pl.col("replaces") == 0)
    assert sent.height >= 20
    touch = _local_touch(events, _ns(sent["submitted_at"]))[:, 0 if sign == 1 else 1]
    np.testing.assert_allclose(sent["price"].to_numpy(), touch, rtol=0, atol=TICK / 10)
    # ... and the touch it saw is the driver's: its local mid at every wake-up
    smp = r.samples.filter(pl.col("mid").is_not_nan())
    seen = _local_touch(events, smp["ts_ns"].to_numpy())
    np.testing.assert_allclose(seen.mean(axis=1), smp["mid"].to_numpy(), rtol=0, atol=TICK / 10)


# ---- (b) the threshold -----------------------------------------------------------------------
def _pulse(events: np.ndarray, k: int) -> tuple[int, np.ndarray]:
    """The k-th wake-up time, and signal times that make a value the latest one at that
    wake-up only (available 50 ms before it, replaced by 0 50 ms after it)."""
    t_k = int(events["exch_ts"][0]) + k * round(INTERVAL_MS * MS)  # the driver's schedule
    return t_k, np.array([t_k - 50 * MS, t_k + 50 * MS])


def _threshold(events, t_k: int, side: int, maker: MakerConfig, maker_fee: float) -> float:
    """The smallest |signal| that quotes at wake-up t_k, as maker.py computes the edge: the
    touch on `side`, half spread |mid - touch| / mid, adverse selection = the prior (no fill
    yet), fee and min edge as fractions."""
    bid, ask = _local_touch(events, t_k)[0]
    bt, at_ = round(bid / TICK), round(ask / TICK)
    mid = (bt + at_) * TICK / 2.0
    touch = (bt if side == 1 else at_) * TICK
    half_spread = abs(mid - touch) / mid
    return maker_fee + maker.min_edge_bp * BP + maker.adverse_prior_bp * BP - half_spread


@pytest.mark.parametrize("side", [1, -1])
def test_quotes_only_when_the_edge_beats_the_fee(events, side):
    maker = MakerConfig(order_qty=0.001, max_position=0.01, min_edge_bp=0.3, adverse_prior_bp=0.7)
    fee = 0.0001
    t_k, times = _pulse(events, 1200)  # two minutes in
    need = _threshold(events, t_k, side, maker, fee)
    assert 0.5e-4 < need < 2e-4  # fee 1 bp + min edge 0.3 + adverse 0.7 - a tiny half spread
    eps = 1e-10  # far above float error (~1e-20 here), far below any price effect

    def orders(signal: float, maker_fee: float) -> pl.DataFrame:
        r = run_event_backtest(events, _config(maker, maker_fee),
                               signals=_signals(times, [side * signal, 0.0]))
        assert t_k in r.samples["ts_ns"].to_list()  # the schedule above is the driver's
        return r.orders

    above = orders(need + eps, fee)
    assert above.height == 1 and above["side"][0] == side
    assert _ns(above["submitted_at"])[0] == t_k
    assert above["price"][0] == pytest.approx(_local_touch(events, t_k)[0][0 if side == 1 else 1])
    assert orders(need - eps, fee).height == 0
    # the same boundary through the fee: a 3 bp signal quotes under a fee just below
    # 3 bp + half spread - adverse - min edge, and not under one just above
    signal = 3e-4
    fee_max = signal - (need - fee)
    assert orders(signal, fee_max - eps).height == 1
    assert orders(signal, fee_max + eps).height == 0


# ---- (c) a flip cancels and quotes the other side ----------------------------------------------
def test_a_flip_cancels_the_resting_quote_and_quotes_the_other_side(events):
    # +5 bp / -5 bp, flipping every 30 s; quotes stay where they were posted (no requote), so
    # a quote is usually still resting when the signal flips
    t0 = int(events["local_ts"][0])
    flips = np.arange(t0 + 30 * S, int(events["local_ts"][-1]) - 5 * S, 30 * S)
    times = np.concatenate([[t0], flips])
    values = np.where(np.arange(len(times)) % 2 == 0, 5e-4, -5e-4)
    maker = MakerConfig(order_qty=0.001, max_position=1.0, adverse_prior_bp=0.5,
                        requote_ticks=1_000_000)
    r = run_event_backtest(events, _config(maker), signals=_signals(times, values))
    o = r.orders.with_columns(sub=pl.col("submitted_at").dt.epoch("ns"),
                              acc=pl.col("accepted_at").dt.epoch("ns"),
                              end=pl.col("ended_at").dt.epoch("ns"))
    wakeups = r.samples["ts_ns"].to_numpy()
    entry = round(ENTRY_MS * MS)
    cancelled_at_flip = 0
    for i, a in enumerate(flips.tolist()):
        new_side = 1 if values[i + 1] > 0 else -1
        t_w = int(wakeups[np.searchsorted(wakeups, a)])  # the first wake-up that sees it
        assert a <= t_w < a + INTERVAL_MS * MS
        # the old side's quote on the book at that wake-up (acknowledged by then)
        old = o.filter((pl.col("side") == -new_side) & (pl.col("acc") <= t_w)
                       & (pl.col("end").is_null() | (pl.col("end") > t_w)))
        assert old.height <= 1
        if old.height:
            q = old.row(0, named=True)
            # cancelled as the request lands, or filled before it could
            assert q["end"] is not None and q["end"] <= t_w + entry
            if q["status"] == "cancelled":
                assert q["end"] == t_w + entry
                cancelled_at_flip += 1
            else:
                assert q["status"] == "filled"
        # the other side is quoted at once, and the old side not again until the next flip
        nxt = flips[i + 1] if i + 1 < len(flips) else np.iinfo(np.int64).max
        window = o.filter((pl.col("sub") >= t_w) & (pl.col("sub") < nxt))
        assert (window["side"] == new_side).all()
        first = window.filter(pl.col("sub") == t_w)
        assert first.height == 1
        touch = _local_touch(events, t_w)[0][0 if new_side == 1 else 1]
        assert first["price"][0] == pytest.approx(touch)
    assert cancelled_at_flip >= 10, "the flips must find quotes resting"
    assert (o["replaces"] == 0).all()


# ---- (d) the inventory limit -------------------------------------------------------------------
@pytest.mark.parametrize("sign", [1, -1])
def test_position_stays_within_the_limit_under_a_one_sided_signal(events, sign):
    # 0.004 a quote against a 0.01 limit: the last quote shrinks to the 0.002 that fits
    maker = MakerConfig(order_qty=0.004, max_position=0.01, adverse_prior_bp=0.0)
    t0 = int(events["local_ts"][0])
    r = run_event_backtest(events, _config(maker), signals=_signals([t0], [sign * 5e-4]))
    pos = r.samples["position"].to_numpy()
    assert np.abs(pos).max() <= maker.max_position + 1e-12
    assert (sign * pos).max() == pytest.approx(maker.max_position)  # the limit is reached
    # the exchange's own account (every fill, known to the strategy or not) never exceeds it
    truth = np.cumsum(r.fills["side"].to_numpy() * r.fills["qty"].to_numpy())
    assert np.abs(truth).max() <= maker.max_position + 1e-12
    assert (r.orders["qty"] <= maker.order_qty + 1e-12).all()
    assert 0.002 in np.round(r.orders["qty"].to_numpy(), 9).tolist()


def test_a_replace_cannot_breach_the_limit_with_a_fill_in_flight():
    """Tick 0.1, lot 0.1, 10 ms each way, wake-ups every 25 ms, feed latency 0; a 10 bp
    signal from the start; order_qty = max_position = 1.0.

    25 ms: bid 1.0 @ 100.0 (behind 2.0), resting from 35 ms.  192 ms: a 2.5 sell at 100.0
    fills 0.5 of it (we learn of it at 202 ms).  195 ms: a bid appears at 100.1.  200 ms:
    the maker sees its bid live with 1.0 left, position 0, the touch at 100.1.  215 ms: a
    5.0 sell at 100.1.

    Replacing to 100.1 with 1.0 (the room it sees) would land at 210 ms and rest 1.0 more,
    which the 215 ms sell fills: position 1.5. The replace must be sized for the fill it
    cannot see yet (room 1.0 - 1.0 left = nothing), so the maker cancels instead: the
    cancel lands at 210 ms, the position stays 0.5 and the quote is renewed at 100.1 for the
    0.5 that fits once the cancel is known (225 ms)."""
    s = (Stream().snapshot(0, [(100.0, 2.0), (99.9, 2.0)], [(100.2, 2.0)])
         .sell_trade(192, 100.0, 2.5).bid(195, 100.1, 1.0).sell_trade(215, 100.1, 5.0)
         .ask(400, 100.3, 1.0).ask(1000, 100.4, 1.0))
    cfg = EventBacktestConfig(
        execution=EventExecutionConfig(tick_size=0.1, lot_size=0.1, maker_fee=0.0,
                                       entry_latency_ms=10, response_latency_ms=10),
        run=EventRunConfig(strategy="maker", interval_ms=25.0, drawdown_stop=None),
        maker=MakerConfig(order_qty=1.0, max_position=1.0, adverse_prior_bp=0.0,
                          adverse_prior_weight=0.0))
    r = run_event_backtest(s.array(), cfg, signals=_signals([at(0)], [1e-3]))
    truth = np.cumsum(r.fills["side"].to_numpy() * r.fills["qty"].to_numpy())
    assert truth.max() <= 1.0 + 1e-9
    first = r.orders.row(0, named=True)
    assert (first["status"], first["filled"], first["replaces"]) == ("cancelled", 0.5, 0)
    assert _ns(r.orders["ended_at"])[0] == at(210)
    renewed = r.orders.row(1, named=True)
    assert (renewed["price"], renewed["qty"]) == (pytest.approx(100.1), pytest.approx(0.5))
    assert _ns(r.orders["submitted_at"])[1] == at(225)
