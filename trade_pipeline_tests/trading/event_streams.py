"""Hand-built event streams for the event engine's tests (market.events layout)."""

import numpy as np

from trade_pipeline.market.events import (
    BOTH_CLOCKS,
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_DTYPE,
    SELL_EVENT,
    TRADE_EVENT,
)

MS = 1_000_000
T0 = 1_751_865_309_000 * MS  # 2025-07-07 05:15:09 UTC, a real capture's start


class Stream:
    """Append events in receipt order; times in ms after T0, feed latency `feed_ms`."""

    def __init__(self, feed_ms: float = 0.0):
        self.rows: list[tuple] = []
        self.feed_ns = int(feed_ms * MS)

    def _add(self, ev: int, t_ms: float, px: float, qty: float) -> "Stream":
        exch = T0 + round(t_ms * MS)
        self.rows.append((ev | BOTH_CLOCKS, exch, exch + self.feed_ns, px, qty, 0, 0, 0.0))
        return self

    def bid(self, t_ms, px, qty):
        return self._add(DEPTH_EVENT | BUY_EVENT, t_ms, px, qty)

    def ask(self, t_ms, px, qty):
        return self._add(DEPTH_EVENT | SELL_EVENT, t_ms, px, qty)

    def snapshot(self, t_ms, bids, asks):
        self._add(DEPTH_CLEAR_EVENT | BUY_EVENT, t_ms, float("nan"), 0.0)
        for px, qty in bids:
            self._add(DEPTH_SNAPSHOT_EVENT | BUY_EVENT, t_ms, px, qty)
        self._add(DEPTH_CLEAR_EVENT | SELL_EVENT, t_ms, float("nan"), 0.0)
        for px, qty in asks:
            self._add(DEPTH_SNAPSHOT_EVENT | SELL_EVENT, t_ms, px, qty)
        return self

    def buy_trade(self, t_ms, px, qty):
        """A taker bought (lifts asks)."""
        return self._add(TRADE_EVENT | BUY_EVENT, t_ms, px, qty)

    def sell_trade(self, t_ms, px, qty):
        """A taker sold (hits bids)."""
        return self._add(TRADE_EVENT | SELL_EVENT, t_ms, px, qty)

    def array(self) -> np.ndarray:
        return np.array(self.rows, dtype=EVENT_DTYPE)


def at(t_ms: float) -> int:
    return T0 + round(t_ms * MS)
