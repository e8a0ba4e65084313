"""Allocation and growth of the engine's state arrays.

`EngineState.S` is the tuple every compiled function takes:
(cnt, prm, xq, xm, lq, lm, oi, of, rest, rq, rqf, rs, rsf, fi, ff, ol, olf, lat, acc)
(layouts in `layout.py`). The fills log, the order log, the buses and the order table
grow by doubling when a compiled step asks for room (`RUN_NEED_SPACE`); the two books grow
when a live batch brings a price outside their tick range. Growing copies the contents, so
a run continues exactly where it stopped.
"""

import math

import numba as nb
import numpy as np

from trade_pipeline.market.events import (
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_TYPE_MASK,
    TRADE_EVENT,
)
from trade_pipeline.trading.event import depth
from trade_pipeline.trading.event.layout import (
    C_HIGH,
    C_LAST_EXCH_TS,
    C_LAST_LOCAL_TS,
    C_NFILL,
    C_NLOG,
    C_NREST,
    C_RQ_TAIL,
    C_RS_HEAD,
    C_RS_TAIL,
    D_LO,
    D_N,
    INVALID_MIN,
    NA,
    NC,
    NDM,
    NFF,
    NFI,
    NOF,
    NOI,
    NOL,
    NOLF,
    NP,
    NRQ,
    NRS,
    P_ENTRY_NS,
    P_LAT_KIND,
    P_LOT,
    P_MAKER_FEE,
    P_QUEUE,
    P_QUEUE_N,
    P_RESP_NS,
    P_TAKER_FEE,
    P_TICK,
)
from trade_pipeline.trading.event.local import clear_last_trades

ROI_MARGIN_TICKS = 2_000  # beyond the range of interest: room for our orders' levels and walks
ROI_WIDEN = 0.02  # the range of interest: the book's central prices +- 2 % of the price


def price_ticks(events: np.ndarray, tick_size: float) -> tuple[int, int] | None:
    """The range of interest in ticks: from the 0.5 % to the 99.5 % quantile of the book
    events' finite prices, widened by ROI_WIDEN of the price on each side (None if the
    events hold no price). Levels outside it are ignored (see `depth.py`)."""
    step = max(1, len(events) // 50_000)  # a strided sample is plenty for two quantiles
    sample = events[::step]
    kind = sample["ev"] & EVENT_TYPE_MASK
    px = sample["px"][(kind == DEPTH_EVENT) | (kind == DEPTH_SNAPSHOT_EVENT) | (kind == DEPTH_CLEAR_EVENT)]
    px = px[np.isfinite(px)]
    if len(px) == 0:
        return None
    lo, hi = np.quantile(px, [0.005, 0.995])
    lo, hi = lo * (1.0 - ROI_WIDEN), hi * (1.0 + ROI_WIDEN)
    return depth.to_tick(float(lo), tick_size), depth.to_tick(float(hi), tick_size)


@nb.njit(cache=True)
def outside(events: np.ndarray, tick_size: float, lo_tick: int, hi_tick: int) -> int:
    """How many book levels of `events` lie outside ticks [lo, hi] (ignored by the books)."""
    n = 0
    for i in range(len(events)):
        e = events[i]
        kind = e.ev & EVENT_TYPE_MASK
        if kind in (DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT):
            t = depth.to_tick(e.px, tick_size)
            if t < lo_tick or t > hi_tick:
                n += 1
    return n


STEP_CANDIDATES = (1.0, 0.5, 0.1, 0.05, 0.01, 0.005, 0.001, 0.0005, 0.0001, 1e-5, 1e-6, 1e-7, 1e-8)


@nb.njit(cache=True)
def off_grid(events: np.ndarray, tick_size: float, lot_size: float) -> tuple[int, int, int, int, int]:
    """(book levels and trades checked, prices off the tick grid, first such row, sizes off
    the lot grid, first such row) over `events` (-1: none)."""
    n = n_px = n_qty = 0
    first_px = first_qty = -1
    for i in range(len(events)):
        e = events[i]
        kind = e.ev & EVENT_TYPE_MASK
        if kind in (DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT, TRADE_EVENT):
            n += 1
            if math.isfinite(e.px) and math.isnan(depth.steps_of(e.px, tick_size)):
                n_px += 1
                if first_px < 0:
                    first_px = i
            if math.isfinite(e.qty) and math.isnan(depth.steps_of(e.qty, lot_size)):
                n_qty += 1
                if first_qty < 0:
                    first_qty = i
    return n, n_px, first_px, n_qty, first_qty


def likely_step(values: np.ndarray, share: float = 0.99) -> float | None:
    """The largest usual step (1, 0.5, 0.1 ... 1e-8) of which at least `share` of the values
    are multiples (a few stray values must not hide the instrument's step)."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None
    for step in STEP_CANDIDATES:
        r = values / step
        if np.mean(np.abs(r - np.round(r)) <= depth.GRID_TOLERANCE) >= share:
            return step
    return None


class EngineState:
    """The arrays of one run, and their growth."""

    def __init__(self, params: np.ndarray, latency_table: np.ndarray | None, *,
                 roi: tuple[int, int], slots: int = 64, fills: int = 8192, orders_log: int = 1024,
                 bus: int = 1024):
        self.cnt = np.zeros(NC, dtype=np.int64)
        self.prm = np.asarray(params, dtype=np.float64).copy()
        assert len(self.prm) == NP
        lo, hi = roi[0] - ROI_MARGIN_TICKS, roi[1] + ROI_MARGIN_TICKS
        self.xq, self.xm = self._book(lo, hi - lo + 1)
        self.lq, self.lm = self._book(lo, hi - lo + 1)
        self.oi = np.zeros((slots, NOI), dtype=np.int64)
        self.of = np.zeros((slots, NOF), dtype=np.float64)
        self.rest = np.zeros((2, slots), dtype=np.int64)
        self.rq = np.zeros((bus, NRQ), dtype=np.int64)
        self.rqf = np.zeros((bus, 1), dtype=np.float64)
        self.rs = np.zeros((bus, NRS), dtype=np.int64)
        self.rsf = np.zeros((bus, 2), dtype=np.float64)
        self.fi = np.zeros((fills, NFI), dtype=np.int64)
        self.ff = np.zeros((fills, NFF), dtype=np.float64)
        self.ol = np.zeros((orders_log, NOL), dtype=np.int64)
        self.olf = np.zeros((orders_log, NOLF), dtype=np.float64)
        if latency_table is None:
            self.lat = np.zeros((1, 3), dtype=np.int64)
        else:
            self.lat = np.ascontiguousarray(latency_table, dtype=np.int64)
        self.acc = np.zeros(NA, dtype=np.float64)
        clear_last_trades(self.acc)
        self.cnt[C_LAST_LOCAL_TS] = INVALID_MIN
        self.cnt[C_LAST_EXCH_TS] = INVALID_MIN
        self._rebuild()

    @staticmethod
    def _book(lo: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.zeros((2, n), dtype=np.float64)  # zero pages: touched only where levels come
        m = np.zeros(NDM, dtype=np.int64)
        depth.reset_meta(m, lo, n)
        return q, m

    def _rebuild(self) -> None:
        self.S = (self.cnt, self.prm, self.xq, self.xm, self.lq, self.lm, self.oi, self.of,
                  self.rest, self.rq, self.rqf, self.rs, self.rsf, self.fi, self.ff, self.ol,
                  self.olf, self.lat, self.acc)

    # ---- growth --------------------------------------------------------------------------
    @staticmethod
    def _double(a: np.ndarray, axis: int = 0) -> np.ndarray:
        shape = list(a.shape)
        shape[axis] *= 2
        out = np.zeros(shape, dtype=a.dtype)
        out[tuple(slice(0, n) for n in a.shape)] = a
        return out

    def grow(self) -> None:
        """Double whatever is short of room (see `loop.has_room` / `room_for_orders`)."""
        from trade_pipeline.trading.event.loop import FILL_HEADROOM

        cnt = self.cnt
        need = cnt[C_NREST] + 64
        if len(self.fi) - cnt[C_NFILL] < FILL_HEADROOM + need:
            self.fi, self.ff = self._double(self.fi), self._double(self.ff)
        if len(self.rs) - (cnt[C_RS_TAIL] - cnt[C_RS_HEAD]) < 2 * need or len(self.rs) - cnt[C_RS_TAIL] < need:
            self.rs, self.rsf = self._double(self.rs), self._double(self.rsf)
        if len(self.rq) - cnt[C_RQ_TAIL] < 64:
            self.rq, self.rqf = self._double(self.rq), self._double(self.rqf)
        if len(self.ol) - cnt[C_NLOG] < 64:
            self.ol, self.olf = self._double(self.ol), self._double(self.olf)
        if len(self.oi) - cnt[C_HIGH] < 16:
            self.oi, self.of = self._double(self.oi), self._double(self.of)
            self.rest = self._double(self.rest, axis=1)
        self._rebuild()

    def cover_ticks(self, lo: int, hi: int) -> None:
        """Make both books hold ticks [lo, hi] (with margin), keeping their levels."""
        cur_lo = int(self.xm[D_LO])
        cur_hi = cur_lo + int(self.xm[D_N]) - 1
        if lo >= cur_lo and hi <= cur_hi:
            return
        new_lo = min(lo - ROI_MARGIN_TICKS, cur_lo)
        new_hi = max(hi + ROI_MARGIN_TICKS, cur_hi)
        for q_name, m in (("xq", self.xm), ("lq", self.lm)):
            q = getattr(self, q_name)
            nq = np.zeros((2, new_hi - new_lo + 1), dtype=np.float64)
            off = cur_lo - new_lo
            nq[:, off:off + q.shape[1]] = q
            setattr(self, q_name, nq)
            m[D_LO] = new_lo
            m[D_N] = new_hi - new_lo + 1
        self._rebuild()


def params_array(*, tick_size: float, lot_size: float, maker_fee: float, taker_fee: float,
                 entry_ns: int, response_ns: int, latency_table: bool, queue: int,
                 queue_power: float) -> np.ndarray:
    prm = np.zeros(NP, dtype=np.float64)
    prm[P_TICK] = tick_size
    prm[P_LOT] = lot_size
    prm[P_MAKER_FEE] = maker_fee
    prm[P_TAKER_FEE] = taker_fee
    prm[P_ENTRY_NS] = entry_ns
    prm[P_RESP_NS] = response_ns
    prm[P_LAT_KIND] = 1.0 if latency_table else 0.0
    prm[P_QUEUE] = queue
    prm[P_QUEUE_N] = queue_power
    return prm



