"""Hand-built event streams for the event engine's tests (market.events layout), and the
snapshot grid as a stream (the two engines' comparison)."""

import numpy as np
import polars as pl

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


def events_from_grid(snapshots: pl.DataFrame) -> np.ndarray:
    """The snapshot grid as an event stream: each row replaces the book (both sides cleared,
    then its 10 levels a side) at the row's time, on both clocks. For running the event
    engine on exactly the data the grid backtest sees (the two engines' comparison)."""
    from trade_pipeline.market.schema import ASK_PRICE, ASK_SIZE, BID_PRICE, BID_SIZE

    ts = snapshots["timestamp"].dt.epoch("ns").to_numpy()
    parts = []
    for flag, pcols, qcols in ((BUY_EVENT, BID_PRICE, BID_SIZE), (SELL_EVENT, ASK_PRICE, ASK_SIZE)):
        px = snapshots.select(pcols).to_numpy().astype(np.float64)
        qty = np.nan_to_num(snapshots.select(qcols).to_numpy().astype(np.float64))
        n, k = px.shape
        clear = np.zeros(n, dtype=EVENT_DTYPE)
        clear["ev"] = DEPTH_CLEAR_EVENT | flag | BOTH_CLOCKS
        clear["px"] = np.nan
        lv = np.zeros((n, k), dtype=EVENT_DTYPE)
        lv["ev"] = DEPTH_SNAPSHOT_EVENT | flag | BOTH_CLOCKS
        lv["px"], lv["qty"] = px, qty
        block = np.concatenate([clear[:, None], lv], axis=1)  # n x (1 + k)
        keep = np.concatenate([np.ones((n, 1), bool), np.isfinite(px) & (qty > 0)], axis=1)
        block["exch_ts"] = ts[:, None]
        block["local_ts"] = ts[:, None]
        parts.append((block, keep))
    rows = np.concatenate([parts[0][0], parts[1][0]], axis=1)
    keep = np.concatenate([parts[0][1], parts[1][1]], axis=1)
    return rows[keep]
