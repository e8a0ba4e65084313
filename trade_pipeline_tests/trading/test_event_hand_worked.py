"""The event engine on hand-built streams: every figure below is worked out by hand.

Instrument for all tests: tick 0.1, lot 0.1, maker fee 0.02 %, taker fee 0.055 %; order
entry latency 1 ms and response latency 1 ms unless a test says otherwise; the stream's
feed latency is 0 (each event is seen locally at its exchange time).
"""

import math

import pytest

from trade_pipeline.market.event_execution_config import EventExecutionConfig
from trade_pipeline.trading.event.engine import EventEngine

from .event_streams import Stream, at

BUY, SELL = 1, -1


def _engine(stream: Stream, **cfg) -> EventEngine:
    base = dict(tick_size=0.1, lot_size=0.1, maker_fee=0.0002, taker_fee=0.00055,
                entry_latency_ms=1.0, response_latency_ms=1.0)
    base.update(cfg)
    return EventEngine(EventExecutionConfig(**base), stream.array())


def _book(s: Stream) -> Stream:
    # bids 100.0 x 5, 99.9 x 3; asks 100.1 x 4, 100.2 x 6, 100.3 x 10
    return s.snapshot(0, [(100.0, 5.0), (99.9, 3.0)], [(100.1, 4.0), (100.2, 6.0), (100.3, 10.0)])


def test_queue_ahead_consumed_by_trades_then_maker_fill():
    # Buy 1.0 @ 100.0 sent at t=10 ms, reaches the exchange at 11 ms behind the 5.0 resting
    # there: queue ahead 5.0. Sell trades at 100.0: 3.0 at 20 ms (ahead 2.0), 2.0 at 30 ms
    # (ahead 0.0, nothing beyond it), 1.5 at 40 ms: 1.5 beyond the queue fills all 1.0 of us.
    # Maker fill 1.0 @ 100.0 at 40 ms, fee 100.0 * 0.0002 = 0.02; we learn of it at 41 ms.
    s = _book(Stream()).sell_trade(20, 100.0, 3.0).sell_trade(30, 100.0, 2.0).sell_trade(40, 100.0, 1.5)
    s.bid(50, 100.0, 0.5)
    eng = _engine(s)
    eng.run_until(at(10))
    eng.submit_limit(1, BUY, 100.0, 1.0)
    eng.run_until(at(12))
    assert eng.queue_ahead(1) == pytest.approx(5.0)
    eng.run_until(at(25))
    assert eng.queue_ahead(1) == pytest.approx(2.0)
    eng.run_until(at(35))
    assert eng.queue_ahead(1) == pytest.approx(0.0) and eng.position == 0.0
    eng.run_until(at(40.5))
    assert eng.position == 0.0  # filled on the exchange, not known yet
    eng.run_until(at(41))
    assert eng.position == pytest.approx(1.0)
    f = eng.fills().row(0, named=True)
    assert (f["liquidity"], f["price"], f["qty"]) == ("maker", 100.0, 1.0)
    assert f["fee"] == pytest.approx(0.02)
    assert f["fill_at"].isoformat() == "2025-07-07T05:15:09.040000+00:00"


def test_trade_touching_our_price_with_queue_ahead_does_not_fill():
    # Sell @ 100.1 with 4.0 ahead. A buy trade of 2.5 at 100.1 leaves 1.5 ahead: no fill.
    # A buy trade at 100.0 (below us) does nothing to our queue either.
    s = _book(Stream()).buy_trade(20, 100.1, 2.5).buy_trade(30, 100.0, 9.0).ask(40, 100.1, 4.0)
    eng = _engine(s)
    eng.run_until(at(10))
    eng.submit_limit(1, SELL, 100.1, 1.0)
    eng.run_until(at(35))
    assert eng.queue_ahead(1) == pytest.approx(1.5)
    eng.run_to_end()
    assert eng.fills().height == 0 and eng.position == 0.0
    assert eng.order(1)["status"] == "resting"


def test_cancel_before_the_fill():
    # Buy 1.0 @ 100.0 behind 5.0. Cancel sent at 15 ms reaches the exchange at 16 ms. The
    # 7.0 sell trade at 20 ms (enough to fill us) comes after: nothing fills; the order ends
    # cancelled at 16 ms and we learn of it at 17 ms.
    s = _book(Stream()).sell_trade(20, 100.0, 7.0)
    eng = _engine(s)
    eng.run_until(at(10))
    eng.submit_limit(1, BUY, 100.0, 1.0)
    eng.run_until(at(15))
    eng.cancel(1)
    eng.run_until(at(16.5))
    assert eng.order(1)["status"] == "resting" and eng.order(1)["request_in_flight"]
    eng.run_until(at(17))
    assert eng.order(1) is None  # done, and forgotten by the strategy's view
    eng.run_to_end()
    assert eng.fills().height == 0
    log = eng.order_log().row(0, named=True)
    assert log["status"] == "cancelled" and log["ended_at"].isoformat().endswith("09.016000+00:00")


def test_cancel_too_late_is_rejected_after_the_fill():
    # Same, but the cancel leaves at 25 ms: the 7.0 trade at 20 ms filled us (7.0 - 5.0 =
    # 2.0 beyond the queue >= 1.0). The cancel reaches an order that no longer rests.
    s = _book(Stream()).sell_trade(20, 100.0, 7.0).bid(30, 100.0, 1.0)
    eng = _engine(s)
    eng.run_until(at(10))
    eng.submit_limit(1, BUY, 100.0, 1.0)
    eng.run_until(at(20.5))
    eng.cancel(1)  # the strategy does not know of the fill yet
    eng.run_to_end()
    assert eng.fills()["qty"].to_list() == [1.0] and eng.position == pytest.approx(1.0)


def test_partial_fill():
    # Buy 2.0 @ 100.0 behind 5.0. Sell trade 5.8 at 20 ms: 0.8 beyond the queue -> fills 0.8
    # (8 lots), 1.2 left, queue ahead 0. Sell trade 0.5 at 30 ms fills 0.5, 0.7 left.
    # Position 1.3, fees 1.3 * 100 * 0.0002 = 0.026.
    s = _book(Stream()).sell_trade(20, 100.0, 5.8).sell_trade(30, 100.0, 0.5).bid(40, 100.0, 2.0)
    eng = _engine(s)
    eng.run_until(at(10))
    eng.submit_limit(1, BUY, 100.0, 2.0)
    eng.run_to_end()
    fills = eng.fills()
    assert fills["qty"].to_list() == pytest.approx([0.8, 0.5])
    assert fills["leaves"].to_list() == pytest.approx([1.2, 0.7])
    assert eng.position == pytest.approx(1.3)
    assert fills["fee"].sum() == pytest.approx(0.026)
    assert eng.order(1)["status"] == "partially_filled" and eng.order(1)["leaves"] == pytest.approx(0.7)


def test_latency_puts_the_order_behind_a_queue_that_grew():
    # Buy @ 100.0 sent at 10 ms with a 50 ms entry latency: it reaches the exchange at 60
    # ms. Meanwhile the level grew 5.0 -> 9.0 at 30 ms, so the queue ahead is 9.0, not the
    # 5.0 the strategy saw. A 6.0 sell trade at 70 ms (enough behind 5.0) does not fill us.
    # With a 1 ms entry latency the same order joins behind 5.0 and that trade fills 1.0.
    s = _book(Stream()).bid(30, 100.0, 9.0).sell_trade(70, 100.0, 6.0).bid(80, 100.0, 3.0)
    slow = _engine(s, entry_latency_ms=50.0)
    slow.run_until(at(10))
    slow.submit_limit(1, BUY, 100.0, 1.0)
    slow.run_until(at(65))
    assert slow.queue_ahead(1) == pytest.approx(9.0)
    slow.run_to_end()
    assert slow.fills().height == 0
    fast = _engine(s, entry_latency_ms=1.0)
    fast.run_until(at(10))
    fast.submit_limit(1, BUY, 100.0, 1.0)
    fast.run_to_end()
    assert fast.fills()["qty"].to_list() == [1.0]


def test_post_only_rejected_because_it_would_cross():
    # Post-only buy @ 100.1 = the best ask: it would take liquidity, so the exchange expires
    # it at 11 ms (no fill, no position); we learn at 12 ms. The same order without post-only
    # takes 1.0 of the 4.0 at 100.1 as taker: fee 100.1 * 0.00055 = 0.055055.
    s = _book(Stream()).bid(30, 99.9, 3.0)
    eng = _engine(s)
    eng.run_until(at(10))
    eng.submit_limit(1, BUY, 100.1, 1.0, post_only=True)
    eng.run_to_end()
    assert eng.fills().height == 0 and eng.position == 0.0
    assert eng.order_log()["status"].to_list() == ["expired"]
    taker = _engine(s)
    taker.run_until(at(10))
    taker.submit_limit(1, BUY, 100.1, 1.0)
    taker.run_to_end()
    f = taker.fills().row(0, named=True)
    assert (f["liquidity"], f["price"], f["qty"]) == ("taker", 100.1, 1.0)
    assert f["fee"] == pytest.approx(0.055055)


def test_market_order_walks_several_levels():
    # Market buy 12.0 at 10 ms (arrives 11 ms) against asks 100.1 x 4, 100.2 x 6, 100.3 x 10:
    # fills 4.0 @ 100.1, 6.0 @ 100.2, 2.0 @ 100.3, one fill per level, all taker.
    # Notional 400.4 + 601.2 + 200.6 = 1202.2; fees 1202.2 * 0.00055 = 0.66121.
    s = _book(Stream()).bid(30, 99.9, 3.0)
    eng = _engine(s)
    eng.run_until(at(10))
    eng.submit_market(1, BUY, 12.0)
    eng.run_to_end()
    fills = eng.fills()
    assert fills["price"].to_list() == pytest.approx([100.1, 100.2, 100.3])
    assert fills["qty"].to_list() == pytest.approx([4.0, 6.0, 2.0])
    assert fills["liquidity"].unique().to_list() == ["taker"]
    assert (fills["price"] * fills["qty"]).sum() == pytest.approx(1202.2)
    assert fills["fee"].sum() == pytest.approx(0.66121)
    assert eng.position == pytest.approx(12.0)


def test_market_order_larger_than_the_book_expires_the_rest():
    # 25.0 against 20.0 of asks: 20.0 fill, the remaining 5.0 expires.
    s = _book(Stream()).bid(30, 99.9, 3.0)
    eng = _engine(s)
    eng.run_until(at(10))
    eng.submit_market(1, BUY, 25.0)
    eng.run_to_end()
    assert eng.fills()["qty"].sum() == pytest.approx(20.0)
    assert eng.order_log()["status"].to_list() == ["expired"]


def test_best_price_moving_through_a_resting_order_fills_it():
    # Sell 1.0 @ 100.2 rests (behind 6.0). At 20 ms the bid jumps to 100.2 (a new best bid at
    # our price, the asks below are gone): the bid moved through us -> filled 1.0 @ 100.2 as
    # maker, without any trade.
    s = _book(Stream()).ask(15, 100.1, 0.0).bid(20, 100.2, 2.0)
    eng = _engine(s)
    eng.run_until(at(10))
    eng.submit_limit(1, SELL, 100.2, 1.0)
    eng.run_to_end()
    f = eng.fills().row(0, named=True)
    assert (f["liquidity"], f["price"], f["qty"]) == ("maker", 100.2, 1.0)
    assert f["fill_at"].isoformat().endswith("09.020000+00:00")


def test_risk_averse_queue_moves_only_when_the_level_shrinks_below_it():
    # Buy @ 99.9 behind 3.0. The level grows to 8.0 (ahead stays 3.0), shrinks to 4.0 (still
    # 3.0: cancels are assumed behind us), then to 2.0 (ahead becomes 2.0).
    s = _book(Stream()).bid(20, 99.9, 8.0).bid(30, 99.9, 4.0).bid(40, 99.9, 2.0)
    eng = _engine(s)
    eng.run_until(at(10))
    eng.submit_limit(1, BUY, 99.9, 1.0)
    for t, ahead in ((25, 3.0), (35, 3.0), (45, 2.0)):
        eng.run_until(at(t))
        assert eng.queue_ahead(1) == pytest.approx(ahead)


def test_probabilistic_queue_power_model():
    # prob_power with n = 2: buy @ 99.9 behind front = 3.0; the level grows to 8.0 (back = 5.0
    # behind us... the model counts back = level - front) then shrinks 8.0 -> 6.0: chg = 2.0,
    # front 3, back 5, p = 5^2 / (5^2 + 3^2) = 25/34; front -= (1 - p) * chg = 9/34 * 2
    # = 0.5294117647 -> 2.4705882353 (and min(back - p chg, 0) = 0).
    s = _book(Stream()).bid(20, 99.9, 8.0).bid(30, 99.9, 6.0)
    eng = _engine(s, queue_model="prob_power", queue_power=2.0)
    eng.run_until(at(10))
    eng.submit_limit(1, BUY, 99.9, 1.0)
    eng.run_until(at(35))
    assert eng.queue_ahead(1) == pytest.approx(3.0 - 2.0 * 9.0 / 34.0)
    # prob_log: p = log(6) / (log(6) + log(4)) = 0.5637..., front = 3 - (1 - p) * 2
    logm = _engine(s, queue_model="prob_log")
    logm.run_until(at(10))
    logm.submit_limit(1, BUY, 99.9, 1.0)
    logm.run_until(at(35))
    p = math.log(6.0) / (math.log(6.0) + math.log(4.0))
    assert logm.queue_ahead(1) == pytest.approx(3.0 - (1.0 - p) * 2.0)


def test_probabilistic_queue_does_not_count_a_trade_twice():
    # prob_power n=2, buy @ 100.0 behind 5.0. A 2.0 sell trade at 100.0 (front 3.0) and then
    # the level update 5.0 -> 3.0 that reflects it: chg = 2.0 - 2.0 traded = 0 -> front
    # stays 3.0.
    s = _book(Stream()).sell_trade(20, 100.0, 2.0).bid(21, 100.0, 3.0)
    eng = _engine(s, queue_model="prob_power")
    eng.run_until(at(10))
    eng.submit_limit(1, BUY, 100.0, 1.0)
    eng.run_until(at(25))
    assert eng.queue_ahead(1) == pytest.approx(3.0)


def test_replace_keeps_the_queue_only_when_shrinking_at_the_same_price():
    # Buy 2.0 @ 100.0 behind 5.0; a 2.0 sell trade leaves 3.0 ahead. Replace to 1.0 at the same
    # price keeps 3.0 ahead. Replace to 99.9 goes to the back there: 3.0 ahead (the level).
    s = _book(Stream()).sell_trade(20, 100.0, 2.0).bid(21, 100.0, 3.0).bid(60, 99.9, 3.0)
    eng = _engine(s)
    eng.run_until(at(10))
    eng.submit_limit(1, BUY, 100.0, 2.0)
    eng.run_until(at(30))
    eng.replace(1, 100.0, 1.0)
    eng.run_until(at(40))
    assert eng.queue_ahead(1) == pytest.approx(3.0)
    assert eng.order(1)["qty"] == pytest.approx(1.0)
    eng.replace(1, 99.9, 1.0)
    eng.run_until(at(50))
    assert eng.order(1)["price"] == pytest.approx(99.9) and eng.queue_ahead(1) == pytest.approx(3.0)
    log = eng.order_log()
    # the log follows the replaces while the order still rests: 1.0 at 99.9, not 2.0 at 100.0
    assert (log["replaces"].to_list(), log["qty"].to_list(), log["price"].to_list()) == ([2], [1.0], [99.9])


def test_negative_maker_fee_is_a_rebate():
    # Maker fee -0.01 %: a 1.0 @ 100.0 maker fill pays -0.01 (we receive 0.01).
    s = _book(Stream()).sell_trade(20, 100.0, 6.0).bid(30, 100.0, 1.0)
    eng = _engine(s, maker_fee=-0.0001)
    eng.run_until(at(10))
    eng.submit_limit(1, BUY, 100.0, 1.0)
    eng.run_to_end()
    assert eng.fills()["fee"].to_list() == pytest.approx([-0.01])


def test_refused_requests_are_counted_not_sent():
    eng = _engine(_book(Stream()).bid(30, 99.9, 3.0))
    eng.run_until(at(10))
    eng.submit_limit(1, BUY, 100.0, 1.0)
    from trade_pipeline.trading.event.engine import OrderRefused

    with pytest.raises(OrderRefused, match="duplicate"):
        eng.submit_limit(1, BUY, 100.0, 1.0)
    with pytest.raises(OrderRefused, match="lot"):
        eng.submit_limit(2, BUY, 100.0, 0.04)  # below one lot of 0.1
    with pytest.raises(OrderRefused, match="unknown"):
        eng.cancel(99)
    assert eng.refused_requests == 3


@pytest.mark.parametrize("action, price, qty, reason", [
    ("limit", 100.05, 1.0, "tick"),  # between ticks: never rounded to a more aggressive price
    ("limit", 100.0, 1.05, "lots"),  # 10.5 lots: never rounded up to 1.1
    ("market", None, 0.15, "lots"),
    ("limit", -0.1, 1.0, "tick"),
    ("limit", math.nan, 1.0, "tick"),
    ("limit", 100.0, math.nan, "lots"),
    ("replace", 100.05, 1.0, "tick"),
    ("replace", 100.0, 0.25, "lots"),
])
def test_orders_off_the_tick_or_lot_grid_are_refused_not_rounded(action, price, qty, reason):
    from trade_pipeline.trading.event.engine import OrderRefused

    eng = _engine(_book(Stream()).bid(30, 99.9, 3.0))
    eng.run_until(at(10))
    if action == "replace":
        eng.submit_limit(1, BUY, 99.9, 1.0)
        eng.run_until(at(20))
    with pytest.raises(OrderRefused, match=reason):
        if action == "limit":
            eng.submit_limit(2, BUY, price, qty)
        elif action == "market":
            eng.submit_market(2, BUY, qty)
        else:
            eng.replace(1, price, qty)
    eng.run_to_end()
    assert eng.refused_requests == 1 and eng.fills().height == 0
    assert eng.order_log().height == (1 if action == "replace" else 0)


def test_cancel_after_the_fill_is_known_names_the_ended_order():
    """Once the strategy has seen its order fill, a cancel is refused as 'ended', not as an
    id it never used."""
    from trade_pipeline.trading.event.engine import OrderRefused

    s = _book(Stream()).sell_trade(20, 100.0, 7.0).bid(30, 100.0, 1.0)
    eng = _engine(s)
    eng.run_until(at(10))
    eng.submit_limit(1, BUY, 100.0, 1.0)
    eng.run_until(at(25))
    assert eng.position == pytest.approx(1.0) and eng.order(1) is None
    with pytest.raises(OrderRefused, match="already ended"):
        eng.cancel(1)
    with pytest.raises(OrderRefused, match="unknown"):
        eng.cancel(2)


def test_quantities_are_reported_as_exact_decimals():
    """Lots summed in floats carry noise (0.1 + 0.2 = 0.30000000000000004); fills and the
    order log report the decimals the exchange would. Market buy 0.7 against asks of 0.3
    and 0.4 at two levels, with lot 0.1: fills 0.3 and 0.4, filled 0.7, leaves 0.4 and 0.0."""
    s = Stream().snapshot(0, [(100.0, 5.0)], [(100.1, 0.3), (100.2, 0.4), (100.3, 10.0)]).bid(30, 99.9, 3.0)
    eng = _engine(s)
    eng.run_until(at(10))
    eng.submit_market(1, BUY, 0.7)
    eng.run_to_end()
    fills, orders = eng.fills(), eng.order_log()
    assert fills["qty"].to_list() == [0.3, 0.4] and fills["leaves"].to_list() == [0.4, 0.0]
    assert orders["filled"].to_list() == [0.7] and orders["qty"].to_list() == [0.7]


def test_table_latency_is_interpolated():
    # Latency table rows (req_ts, exch_ts, resp_ts): at 0 ms entry 10 ms, at 100 ms entry 30 ms.
    # A request at 50 ms: entry = 10 + (30 - 10) * 50/100 = 20 ms -> reaches the exchange at
    # 70 ms. Response latency at exch 70 ms between rows (10 ms, 5 ms) and (130 ms, 25 ms):
    # 5 + 20 * 60/120 = 15 ms -> the ack arrives at 85 ms.
    import numpy as np

    from .event_streams import MS, T0

    table = np.array([[T0, T0 + 10 * MS, T0 + 15 * MS],
                      [T0 + 100 * MS, T0 + 130 * MS, T0 + 155 * MS]], dtype=np.int64)
    s = _book(Stream()).bid(200, 99.9, 3.0)
    eng = EventEngine(EventExecutionConfig(tick_size=0.1, lot_size=0.1), s.array(), latency_table=table)
    eng.run_until(at(50))
    eng.submit_limit(1, BUY, 99.0, 1.0)
    eng.run_until(at(84.9))
    assert eng.order(1)["status"] == "pending"
    eng.run_until(at(85))
    assert eng.order(1)["status"] == "resting"
    assert eng.order_log()["accepted_at"][0].isoformat().endswith("09.070000+00:00")


def test_feed_latency_delays_what_the_strategy_sees():
    # feed 20 ms: the bid moving to 100.0 -> 5.5 at 30 ms is seen locally at 50 ms.
    s = Stream(feed_ms=20).snapshot(0, [(100.0, 5.0)], [(100.1, 4.0)]).bid(30, 100.0, 5.5)
    eng = EventEngine(EventExecutionConfig(tick_size=0.1, lot_size=0.1), s.array())
    eng.run_until(at(45))
    assert eng.level(BUY, 100.0) == pytest.approx(5.0)
    eng.run_until(at(50))
    assert eng.level(BUY, 100.0) == pytest.approx(5.5)


def test_latency_read_from_the_recorded_feed():
    # latency = "feed": the stream's receive clock runs 20 ms behind the exchange's, so with
    # multipliers 1 and no offsets an order's entry and response latencies are 20 ms each.
    # Sent at 60 ms (local) -> accepted at 80 ms (exchange) -> known at 100 ms (local).
    s = Stream(feed_ms=20).snapshot(0, [(100.0, 5.0)], [(100.1, 4.0)])
    for t in range(100, 3000, 100):
        s.bid(t, 99.9, 1.0 + t / 1000)
    cfg = EventExecutionConfig(tick_size=0.1, lot_size=0.1, latency="feed", entry_latency_ms=0.0,
                               response_latency_ms=0.0, feed_every_s=0.05)
    eng = EventEngine(cfg, s.array())
    eng.run_until(at(60))
    eng.submit_limit(1, BUY, 99.0, 1.0)
    eng.run_until(at(99))
    assert eng.order(1)["status"] == "pending"
    eng.run_until(at(100))
    assert eng.order(1)["status"] == "resting"
    assert eng.order_log()["accepted_at"][0].isoformat().endswith("09.080000+00:00")
