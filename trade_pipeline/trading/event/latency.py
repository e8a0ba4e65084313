"""Order-entry and response latency: a constant, or interpolated from a table.

Constant (`P_LAT_KIND` 0): every request reaches the exchange `entry_ns` after it is sent;
every response reaches us `response_ns` after the exchange event that caused it.

Table (kind 1, hftbacktest's `IntpOrderLatency`): rows (req_ts, exch_ts, resp_ts) sorted by
req_ts. The entry latency of a request sent at t is interpolated linearly between the rows
around t on (req_ts, exch_ts - req_ts); the response latency of an exchange event at t
between the rows around t on (exch_ts, resp_ts - exch_ts); outside the table the first / last
row's latency holds. Integer truncation as in the reference (so both engines agree to the ns).

`table_from_feed` builds such a table from recorded data, as hftbacktest's
`generate_order_latency` does: the feed latency `local_ts - exch_ts` of the stream, sampled
every `every_ns`, scaled and offset into entry and response latencies.
"""

import numba as nb
import numpy as np

from trade_pipeline.trading.event.layout import P_ENTRY_NS, P_LAT_KIND, P_RESP_NS

LT_REQ = 0
LT_EXCH = 1
LT_RESP = 2


@nb.njit(cache=True, inline="always")
def _intp(x: int, x1: int, y1: int, x2: int, y2: int) -> int:
    return int(float(y2 - y1) / float(x2 - x1) * float(x - x1)) + y1


@nb.njit(cache=True)
def _last_le(col, lat, x: int) -> int:
    """Index of the last row whose column `col` is <= x (-1 if none); binary search."""
    lo = 0
    hi = lat.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if lat[mid, col] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


@nb.njit(cache=True)
def entry_latency(prm, lat, t: int) -> int:
    if prm[P_LAT_KIND] == 0.0:
        return int(prm[P_ENTRY_NS])
    n = lat.shape[0]
    if t < lat[0, LT_REQ]:
        return lat[0, LT_EXCH] - lat[0, LT_REQ]
    i = _last_le(LT_REQ, lat, t)
    if i >= n - 1:
        return lat[n - 1, LT_EXCH] - lat[n - 1, LT_REQ]
    return _intp(t, lat[i, LT_REQ], lat[i, LT_EXCH] - lat[i, LT_REQ],
                 lat[i + 1, LT_REQ], lat[i + 1, LT_EXCH] - lat[i + 1, LT_REQ])


@nb.njit(cache=True)
def response_latency(prm, lat, t: int) -> int:
    if prm[P_LAT_KIND] == 0.0:
        return int(prm[P_RESP_NS])
    n = lat.shape[0]
    if t < lat[0, LT_EXCH]:
        return lat[0, LT_RESP] - lat[0, LT_EXCH]
    i = _last_le(LT_EXCH, lat, t)
    if i >= n - 1:
        return lat[n - 1, LT_RESP] - lat[n - 1, LT_EXCH]
    return _intp(t, lat[i, LT_EXCH], lat[i, LT_RESP] - lat[i, LT_EXCH],
                 lat[i + 1, LT_EXCH], lat[i + 1, LT_RESP] - lat[i + 1, LT_EXCH])


def table_from_feed(events: np.ndarray, *, every_ns: int = 1_000_000_000, entry_mul: float = 1.0,
                    entry_offset_ns: int = 0, response_mul: float = 1.0,
                    response_offset_ns: int = 0) -> np.ndarray:
    """A latency table (n x 3 int64: req_ts, exch_ts, resp_ts) from a stream's feed latency:
    the last event of each `every_ns` bucket of receive time gives
    entry = entry_mul * feed + entry_offset, response = response_mul * feed + response_offset."""
    from trade_pipeline.market.events import BOTH_CLOCKS

    both = events[(events["ev"] & BOTH_CLOCKS) == BOTH_CLOCKS]
    if len(both) == 0:
        raise ValueError("no event carries both clocks: cannot read a feed latency")
    local = both["local_ts"]
    bucket = local // every_ns
    last = np.flatnonzero(np.r_[bucket[1:] != bucket[:-1], True])
    feed = (local[last] - both["exch_ts"][last]).astype(np.float64)
    req = local[last]
    exch = req + (entry_mul * feed + entry_offset_ns).astype(np.int64)
    resp = exch + (response_mul * feed + response_offset_ns).astype(np.int64)
    if np.any(exch < req) or np.any(resp < exch):
        raise ValueError("the feed latency gives a negative order latency: set an offset")
    return np.ascontiguousarray(np.stack([req, exch, resp], axis=1).astype(np.int64))


def check_table(table: np.ndarray) -> np.ndarray:
    table = np.ascontiguousarray(np.asarray(table, dtype=np.int64))
    if table.ndim != 2 or table.shape[1] != 3 or table.shape[0] < 1:
        raise ValueError("a latency table has rows (req_ts, exch_ts, resp_ts)")
    if np.any(np.diff(table[:, LT_REQ]) < 0) or np.any(np.diff(table[:, LT_EXCH]) < 0):
        raise ValueError("a latency table must be sorted by req_ts and exch_ts")
    if np.any(table[:, LT_EXCH] < table[:, LT_REQ]) or np.any(table[:, LT_RESP] < table[:, LT_EXCH]):
        raise ValueError("a latency table holds a negative latency")
    return table
