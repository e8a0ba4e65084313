"""The L2 book on a tick grid, with hftbacktest's `HashMapMarketDepth` rules.

One book is a pair of level arrays `q[0]` (bids) and `q[1]` (asks), indexed by
`tick - meta[D_LO]`, plus its meta row (best ticks and scan bounds). Prices become ticks by
rounding half away from zero (Rust's `f64::round`), so both engines put every price on the
same tick. A level whose size rounds to zero lots is removed.

The rules copied on purpose (they decide which orders fill, so the comparison with
hftbacktest must not differ here):
- a new bid above the best bid becomes the best bid; if it reaches the best ask, the best ask
  moves up to the next ask above it (the crossed asks stay stored, as on the exchange
  until its own delete arrives), and the same mirrored for asks;
- removing the best level scans down (bids) / up (asks) for the next non-empty one, bounded
  by the lowest bid / highest ask ever stored;
- a clear event with a finite price removes the side from the best level to that price; with
  NaN it removes the whole side.

The arrays cover a range of interest (ROI) around the prices traded (`state.py` sizes it from
the data and grows it for live data); a level outside it is ignored, as hftbacktest's
`ROIVectorMarketDepth` does (Binance's REST snapshot holds asks 3x the price: a vector over
every tick of them would take gigabytes, and such levels never meet an order).
"""

import math

import numba as nb
import numpy as np

from trade_pipeline.trading.event.layout import (
    D_BEST_ASK,
    D_BEST_BID,
    D_BOTTOM_ASK,
    D_CEIL_ASK,
    D_FLOOR_BID,
    D_HIGH_ASK,
    D_LO,
    D_LOW_BID,
    D_N,
    D_TOP_BID,
    INVALID_MAX,
    INVALID_MIN,
)


@nb.njit(cache=True, inline="always", error_model="numpy")
def rust_round(x: float) -> float:
    """Round half away from zero (Rust's f64::round; Python's round() rounds half to even)."""
    if x >= 0.0:
        return math.floor(x + 0.5)
    return -math.floor(-x + 0.5)


GRID_TOLERANCE = 1e-4  # of a step: far above float error, far below any real mismatch


@nb.njit(cache=True, inline="always", error_model="numpy")
def steps_of(x: float, step: float) -> float:
    """How many whole `step`s `x` is (a tick count, a lot count), or NaN when `x` is not on
    the grid: the one test of "a multiple of the tick / lot" for orders and for the data."""
    r = x / step
    n = rust_round(r)
    return n if abs(r - n) <= GRID_TOLERANCE else math.nan


@nb.njit(cache=True, inline="always", error_model="numpy")
def to_tick(px: float, tick_size: float) -> int:
    return int(rust_round(px / tick_size))


@nb.njit(cache=True, error_model="numpy")
def tick_price(tick: int, tick_size: float) -> float:
    """The price of a tick, as the decimal the exchange shows: for a tick size 1/k (0.1, 0.01,
    0.5...) the division by k is the correctly rounded decimal (1080837 * 0.1 would give
    108083.70000000001, 1080837 / 10 gives 108083.7)."""
    inv = 1.0 / tick_size
    k = rust_round(inv)
    if k >= 1.0 and abs(inv - k) < 1e-9 * k:
        return tick / k
    return tick * tick_size


@nb.njit(cache=True, error_model="numpy")
def tick_prices(ticks: np.ndarray, tick_size: float) -> np.ndarray:
    """`tick_price` of each tick (one compiled call for a whole column)."""
    out = np.empty(len(ticks), dtype=np.float64)
    for i in range(len(ticks)):
        out[i] = tick_price(ticks[i], tick_size)
    return out


@nb.njit(cache=True, inline="always", error_model="numpy")
def rmin(a: float, b: float) -> float:
    """Rust's f64::min: a NaN operand yields the other one."""
    if a != a:
        return b
    if b != b:
        return a
    return a if a < b else b


@nb.njit(cache=True, error_model="numpy")
def reset(q, m, lo, n) -> None:
    q[:, :] = 0.0
    reset_meta(m, lo, n)


@nb.njit(cache=True, error_model="numpy")
def reset_meta(m, lo, n) -> None:
    m[D_LO] = lo
    m[D_N] = n
    m[D_BEST_BID] = INVALID_MIN
    m[D_BEST_ASK] = INVALID_MAX
    m[D_LOW_BID] = INVALID_MAX
    m[D_HIGH_ASK] = INVALID_MIN
    m[D_TOP_BID] = INVALID_MIN
    m[D_FLOOR_BID] = INVALID_MAX
    m[D_BOTTOM_ASK] = INVALID_MAX
    m[D_CEIL_ASK] = INVALID_MIN


@nb.njit(cache=True, error_model="numpy")
def depth_below(levels, m, start: int, end: int) -> int:
    """The highest tick t in [end, start) with size > 0, else INVALID_MIN."""
    lo = m[D_LO]
    hi = lo + m[D_N] - 1
    t = start - 1
    if t > hi:
        t = hi
    stop = end if end > lo else lo
    while t >= stop:
        if levels[t - lo] > 0.0:
            return t
        t -= 1
    return INVALID_MIN


@nb.njit(cache=True, error_model="numpy")
def depth_above(levels, m, start: int, end: int) -> int:
    """The lowest tick t in (start, end] with size > 0, else INVALID_MAX."""
    lo = m[D_LO]
    hi = lo + m[D_N] - 1
    t = start + 1
    if t < lo:
        t = lo
    stop = end if end < hi else hi
    while t <= stop:
        if levels[t - lo] > 0.0:
            return t
        t += 1
    return INVALID_MAX


@nb.njit(cache=True, error_model="numpy")
def update_bid(q, m, px: float, qty: float, tick_size: float, lot_size: float):
    """Set the bid level at `px` to `qty`; returns (tick, prev_best, best, prev_qty)."""
    tick = to_tick(px, tick_size)
    i = tick - m[D_LO]
    prev_best = m[D_BEST_BID]
    if i < 0 or i >= m[D_N]:
        return tick, prev_best, prev_best, 0.0
    prev_qty = q[0, i]
    lots = rust_round(qty / lot_size)
    if lots > 0.0:
        q[0, i] = qty
        if tick > m[D_BEST_BID]:
            m[D_BEST_BID] = tick
            if m[D_BEST_BID] >= m[D_BEST_ASK]:
                m[D_BEST_ASK] = depth_above(q[1], m, m[D_BEST_BID], m[D_HIGH_ASK])
        if tick < m[D_LOW_BID]:
            m[D_LOW_BID] = tick
        if tick > m[D_TOP_BID]:
            m[D_TOP_BID] = tick
        if tick < m[D_FLOOR_BID]:
            m[D_FLOOR_BID] = tick
    else:
        q[0, i] = 0.0
        if tick == m[D_BEST_BID]:
            m[D_BEST_BID] = depth_below(q[0], m, m[D_BEST_BID], m[D_LOW_BID])
            if m[D_BEST_BID] == INVALID_MIN:
                m[D_LOW_BID] = INVALID_MAX
    return tick, prev_best, m[D_BEST_BID], prev_qty


@nb.njit(cache=True, error_model="numpy")
def update_ask(q, m, px: float, qty: float, tick_size: float, lot_size: float):
    """Set the ask level at `px` to `qty`; returns (tick, prev_best, best, prev_qty)."""
    tick = to_tick(px, tick_size)
    i = tick - m[D_LO]
    prev_best = m[D_BEST_ASK]
    if i < 0 or i >= m[D_N]:
        return tick, prev_best, prev_best, 0.0
    prev_qty = q[1, i]
    lots = rust_round(qty / lot_size)
    if lots > 0.0:
        q[1, i] = qty
        if tick < m[D_BEST_ASK]:
            m[D_BEST_ASK] = tick
            if m[D_BEST_BID] >= m[D_BEST_ASK]:
                m[D_BEST_BID] = depth_below(q[0], m, m[D_BEST_ASK], m[D_LOW_BID])
        if tick > m[D_HIGH_ASK]:
            m[D_HIGH_ASK] = tick
        if tick < m[D_BOTTOM_ASK]:
            m[D_BOTTOM_ASK] = tick
        if tick > m[D_CEIL_ASK]:
            m[D_CEIL_ASK] = tick
    else:
        q[1, i] = 0.0
        if tick == m[D_BEST_ASK]:
            m[D_BEST_ASK] = depth_above(q[1], m, m[D_BEST_ASK], m[D_HIGH_ASK])
            if m[D_BEST_ASK] == INVALID_MAX:
                m[D_HIGH_ASK] = INVALID_MIN
    return tick, prev_best, m[D_BEST_ASK], prev_qty


@nb.njit(cache=True, error_model="numpy")
def _zero(levels, m, a: int, b: int) -> None:
    """Zero ticks [a, b] (clipped to the arrays)."""
    lo = m[D_LO]
    hi = lo + m[D_N] - 1
    if a < lo:
        a = lo
    if b > hi:
        b = hi
    for t in range(a, b + 1):
        levels[t - lo] = 0.0


@nb.njit(cache=True, error_model="numpy")
def clear_bids(q, m, px: float, tick_size: float) -> None:
    if px == px and not math.isinf(px):
        upto = to_tick(px, tick_size)
        if m[D_BEST_BID] != INVALID_MIN:
            _zero(q[0], m, upto, m[D_BEST_BID])
        m[D_BEST_BID] = depth_below(q[0], m, upto - 1, m[D_LOW_BID])
    else:
        if m[D_TOP_BID] != INVALID_MIN:
            _zero(q[0], m, m[D_FLOOR_BID], m[D_TOP_BID])
        m[D_BEST_BID] = INVALID_MIN
        m[D_TOP_BID] = INVALID_MIN
        m[D_FLOOR_BID] = INVALID_MAX
    if m[D_BEST_BID] == INVALID_MIN:
        m[D_LOW_BID] = INVALID_MAX


@nb.njit(cache=True, error_model="numpy")
def clear_asks(q, m, px: float, tick_size: float) -> None:
    if px == px and not math.isinf(px):
        upto = to_tick(px, tick_size)
        if m[D_BEST_ASK] != INVALID_MAX:
            _zero(q[1], m, m[D_BEST_ASK], upto)
        m[D_BEST_ASK] = depth_above(q[1], m, upto + 1, m[D_HIGH_ASK])
    else:
        if m[D_BOTTOM_ASK] != INVALID_MAX:
            _zero(q[1], m, m[D_BOTTOM_ASK], m[D_CEIL_ASK])
        m[D_BEST_ASK] = INVALID_MAX
        m[D_BOTTOM_ASK] = INVALID_MAX
        m[D_CEIL_ASK] = INVALID_MIN
    if m[D_BEST_ASK] == INVALID_MAX:
        m[D_HIGH_ASK] = INVALID_MIN


@nb.njit(cache=True, inline="always", error_model="numpy")
def qty_at(q, m, side_row: int, tick: int) -> float:
    i = tick - m[D_LO]
    if i < 0 or i >= m[D_N]:
        return 0.0
    return q[side_row, i]


@nb.njit(cache=True, inline="always", error_model="numpy")
def mid(m, tick_size: float) -> float:
    if m[D_BEST_BID] == INVALID_MIN or m[D_BEST_ASK] == INVALID_MAX:
        return math.nan
    return (m[D_BEST_BID] + m[D_BEST_ASK]) * tick_size / 2.0
