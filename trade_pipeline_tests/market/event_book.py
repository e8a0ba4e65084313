"""A deliberately simple book for tests: replays event-stream arrays with two dicts.

Independent of the pipeline's numba book: DEPTH / DEPTH_SNAPSHOT events set a level (qty 0
deletes it); DEPTH_CLEAR removes bids at or above px / asks at or below px (hftbacktest's
`clear_depth`), nothing when px is NaN; trades do not change the book.
"""

import heapq
import math

import numpy as np

from trade_pipeline.market.events import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    EVENT_TYPE_MASK,
    TRADE_EVENT,
)
from trade_pipeline.market.schema import DEPTH


class SimpleBook:
    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def apply(self, ev: int, px: float, qty: float) -> None:
        kind = ev & EVENT_TYPE_MASK
        if kind == TRADE_EVENT:
            return
        side = self.bids if ev & BUY_EVENT else self.asks
        if kind == DEPTH_CLEAR_EVENT:
            if math.isnan(px):
                return
            if side is self.bids:
                for p in [p for p in side if p >= px]:
                    del side[p]
            else:
                for p in [p for p in side if p <= px]:
                    del side[p]
        elif qty == 0.0:
            side.pop(px, None)
        else:
            side[px] = qty

    def row(self, depth: int = DEPTH) -> np.ndarray:
        """Top levels in l2_snapshots' BOOK_COLUMNS order (missing level: NaN price, 0)."""
        out = np.full(4 * DEPTH, np.nan)
        out[1::2] = 0.0
        for k, p in enumerate(heapq.nlargest(depth, self.bids)):
            out[2 * k], out[2 * k + 1] = p, self.bids[p]
        for k, p in enumerate(heapq.nsmallest(depth, self.asks)):
            out[2 * DEPTH + 2 * k], out[2 * DEPTH + 2 * k + 1] = p, self.asks[p]
        return out


def book_rows_at(events: np.ndarray, times_ns: np.ndarray, clock: str = "exch_ts") -> np.ndarray:
    """The simple book's top-10 row after every book event with `clock` <= each time (times
    ascending; book events must be in `clock` order, as the builder emits them)."""
    book = SimpleBook()
    is_book = (events["ev"] & EVENT_TYPE_MASK) != TRADE_EVENT
    idx = np.flatnonzero(is_book)
    ev = events["ev"][idx].tolist()
    px = events["px"][idx].tolist()
    qty = events["qty"][idx].tolist()
    ts = events[clock][idx]
    assert np.all(np.diff(ts) >= 0), f"book events not in {clock} order"
    ends = np.searchsorted(ts, times_ns, side="right")
    rows = np.empty((len(times_ns), 4 * DEPTH))
    j = 0
    for r, end in enumerate(ends.tolist()):
        while j < end:
            book.apply(ev[j], px[j], qty[j])
            j += 1
        rows[r] = book.row()
    return rows
