"""The one implementation of the 78 derived features: a numba kernel over rows in time order.

`process_rows` walks rows one by one and keeps all history in a `KernelState` (previous row,
quote-change times, a ring buffer of per-row series and running window sums). Batch calls it
on a whole (exchange, symbol) stream; online calls it on a window of one row with the same
state object, so both run the same machine code in the same order and agree exactly.

Time windows (t - w, t] of one session: each window keeps the absolute row index of its first
row; rows leave when `ts <= t - w`. Running sums of (x - K) and (x - K)^2 per (series, window)
give mean and sample std in O(1). Precision: K is a shift (the window mean at the last exact
recompute); every RECOMPUTE_EVERY rows all sums are recomputed exactly from the ring (bounds
float drift); a std whose running sums cancel too much (large values passed through the
window since the last recompute, or K drifted far from the values relative to their spread)
recomputes its window exactly on the spot; and a window whose non-null values
are all equal reports std 0 and its mean exactly (detected from the position of the latest
value change), so round-off never shows as a spurious tiny std.

Nulls are NaN inside the kernel (inputs: missing price; outputs: null results); the engines
turn NaN into null at the edge.
"""

import math

import numba as nb
import numpy as np

from trade_pipeline.features.catalog import FEATURE_INDEX, N_FEATURES, N_RAW, REFERENCE_CADENCE_MS

N_DERIVED = N_FEATURES - N_RAW
RECOMPUTE_EVERY = 1024
# Running sums err by about eps * (ops since the last recompute, <= 2 * RECOMPUTE_EVERY) *
# (largest S2 since then); a variance below CANCEL_RATIO times that scale is recomputed
# exactly, which keeps every std within ~1e-10 relative of the two-pass value.
CANCEL_RATIO = 1.0 / 256.0
INITIAL_RING = 4096  # rows; holds 300 s at 100 ms, grows for denser streams

# Status codes left in si[SI_STATUS] when process_rows stops early.
ST_OK, ST_GROW, ST_ORDER = 0, 1, 2


def _o(name: str) -> int:
    return FEATURE_INDEX[name] - N_RAW


# Output rows (derived features), from the catalog order.
O_MID, O_SPREAD, O_SPREAD_BPS = _o("mid_price"), _o("spread"), _o("spread_bps")
O_TBV10, O_TAV10 = _o("total_bid_volume_10"), _o("total_ask_volume_10")
O_WBP, O_WAP = _o("weighted_bid_price"), _o("weighted_ask_price")
O_OBI, O_MICRO = _o("order_book_imbalance"), _o("microprice")
O_PIB, O_PIA = _o("price_impact_bid"), _o("price_impact_ask")
O_BAS, O_BAS_PCT, O_WMID = _o("bid_ask_spread"), _o("bid_ask_spread_pct"), _o("weighted_mid_price")
O_OBI2, O_OBI3, O_OBI5 = (_o(f"order_book_imbalance_{k}") for k in (2, 3, 5))
O_TBV1, O_TAV1 = _o("total_bid_volume_1"), _o("total_ask_volume_1")  # then pairs up to 9
O_PI_BUY, O_PI_SELL = _o("price_impact_buy"), _o("price_impact_sell")
O_PI1, O_PI5, O_PI10 = (_o(f"price_impact_{k}") for k in (1, 5, 10))
O_RET = _o("mid_price_return")
O_VOL10, O_VOL50, O_VOL200 = (_o(f"l2_volatility_{n}") for n in (10, 50, 200))
O_OFI10 = _o("ofi_10s")  # then (ofi, normalized, weighted) x 4 windows
O_BP, O_BPW = _o("bid_pressure"), _o("bid_pressure_weighted")
O_AP, O_APW = _o("ask_pressure"), _o("ask_pressure_weighted")
O_PIMB, O_PIMBW, O_BDA = _o("pressure_imbalance"), _o("pressure_imbalance_weighted"), _o(
    "book_depth_asymmetry")
O_BQL, O_AQL, O_QL, O_RES = (_o(n) for n in (
    "bid_quote_lifetime", "ask_quote_lifetime", "quote_lifetime", "book_resilience"))
O_SS10 = _o("spread_stability_10")  # then (std, norm) x 3 windows
O_SHAPE, O_SHAPE_STD = _o("book_shape_1_5"), _o("book_shape_stability")
O_BVC, O_AVC, O_VC = (_o(n) for n in (
    "bid_volume_concentration", "ask_volume_concentration", "volume_concentration"))

# Per-row series kept in the ring buffer (inputs of the window statistics).
S_RET, S_E1, S_EW, S_DEP1, S_D5, S_SPR, S_SHAPE = range(7)
N_SERIES = 7

# Windows, in microseconds (deduplicated durations).
_MS = REFERENCE_CADENCE_MS * 1000
WINDOW_US = np.array([10 * _MS, 50 * _MS, 100 * _MS, 200 * _MS, 30_000_000, 60_000_000,
                      300_000_000], dtype=np.int64)  # 1 s, 5 s, 10 s, 20 s, 30 s, 1 m, 5 m
W1S, W5S, W10S, W20S, W30S, W60S, W300S = range(7)
N_WINDOWS = len(WINDOW_US)
# The window of 10 s is also OFI's 10 s (100 x 100 ms == 10 s).

# Accumulators: (series, window, kind); kind 0 = plain sum (K = 0), 1 = mean (shifted sum),
# 2 = mean and std (shifted sums of x and x^2).
_ACC = [
    (S_RET, W1S, 2), (S_RET, W5S, 2), (S_RET, W20S, 2),
    (S_E1, W10S, 0), (S_E1, W30S, 0), (S_E1, W60S, 0), (S_E1, W300S, 0),
    (S_EW, W10S, 0), (S_EW, W30S, 0), (S_EW, W60S, 0), (S_EW, W300S, 0),
    (S_DEP1, W10S, 1), (S_DEP1, W30S, 1), (S_DEP1, W60S, 1), (S_DEP1, W300S, 1),
    (S_D5, W30S, 1),
    (S_SPR, W1S, 2), (S_SPR, W5S, 2), (S_SPR, W10S, 2),
    (S_SHAPE, W5S, 2),
]
ACC_SERIES = np.array([a[0] for a in _ACC], dtype=np.int64)
ACC_WINDOW = np.array([a[1] for a in _ACC], dtype=np.int64)
ACC_KIND = np.array([a[2] for a in _ACC], dtype=np.int64)
N_ACC = len(_ACC)
# Accumulators of each window: WIN_ACC[WIN_PTR[w]:WIN_PTR[w + 1]].
WIN_ACC = np.array([a for w in range(len(WINDOW_US)) for a in range(N_ACC) if _ACC[a][1] == w],
                   dtype=np.int64)
WIN_PTR = np.cumsum([0] + [sum(1 for a in _ACC if a[1] == w) for w in range(len(WINDOW_US))]
                    ).astype(np.int64)
A_RET = 0
A_E1 = 3
A_EW = 7
A_DEP1 = 11
A_D5 = 15
A_SPR = 16
A_SHAPE = 19

# Integer state slots.
SI_STATUS, SI_HAS_SESSION, SI_SESSION, SI_N, SI_PREV_TS, SI_TAU_BID, SI_TAU_ASK, SI_SINCE = range(8)
SI_WSTART = 8  # N_WINDOWS window starts (absolute row index in the session)
SI_LCP = SI_WSTART + N_WINDOWS  # per series: position of the earlier row of the latest change
SI_LASTPOS = SI_LCP + N_SERIES  # per series: position of the latest non-null value
N_SI = SI_LASTPOS + N_SERIES

# Float state slots.
SF_PREV_BOOK = 0  # the previous row's 40 book values
SF_PREV_MID = 40
SF_LASTVAL = 41  # per series: latest non-null value
SF_CNT = SF_LASTVAL + N_SERIES  # per accumulator
SF_S1 = SF_CNT + N_ACC
SF_S2 = SF_S1 + N_ACC
SF_K = SF_S2 + N_ACC
SF_SCALE = SF_K + N_ACC  # per accumulator: largest S2 since its last exact recompute
N_SF = SF_SCALE + N_ACC

# Params vector layout.
P_DELTA, P_LAMBDA, P_Q, P_OFI_LEVELS = range(4)


def params_vector(params: dict) -> np.ndarray:
    return np.array([params["delta_bp"], params["lambda_bp"], params["impact_qty"],
                     params["ofi_levels"]], dtype=np.float64)


class KernelState:
    """Everything `process_rows` remembers between calls (one (exchange, symbol) stream)."""

    __slots__ = ("ring_ts", "ring_v", "sf", "si")

    def __init__(self, ring_rows: int = INITIAL_RING) -> None:
        self.si = np.zeros(N_SI, dtype=np.int64)
        self.sf = np.zeros(N_SF, dtype=np.float64)
        self.ring_ts = np.zeros(ring_rows, dtype=np.int64)
        self.ring_v = np.zeros((ring_rows, N_SERIES), dtype=np.float64)

    def grow(self) -> None:
        """Double the ring, keeping every live row at its index modulo the new size."""
        old_cap = len(self.ring_ts)
        new_cap = old_cap * 2
        n = int(self.si[SI_N])
        first = int(self.si[SI_WSTART:SI_WSTART + N_WINDOWS].min())
        idx = np.arange(first, n, dtype=np.int64)
        ring_ts = np.zeros(new_cap, dtype=np.int64)
        ring_v = np.zeros((new_cap, N_SERIES), dtype=np.float64)
        ring_ts[idx % new_cap] = self.ring_ts[idx % old_cap]
        ring_v[idx % new_cap] = self.ring_v[idx % old_cap]
        self.ring_ts, self.ring_v = ring_ts, ring_v


def process(ts: np.ndarray, sess: np.ndarray, book: np.ndarray, out: np.ndarray,
            state: KernelState, params: np.ndarray) -> None:
    """Process every row (growing the ring as needed); raises on rows out of time order.

    book: (n, 40) in BOOK_COLUMNS order; out: (N_DERIVED, n), any strides (row-major
    n x N_DERIVED seen through .T is the fast layout)."""
    start = 0
    n = len(ts)
    while start < n:
        start = process_rows(ts, sess, book, out, state.ring_ts, state.ring_v, state.si,
                             state.sf, params, start)
        status = state.si[SI_STATUS]
        if status == ST_GROW:
            state.si[SI_STATUS] = ST_OK
            state.grow()
        elif status == ST_ORDER:
            state.si[SI_STATUS] = ST_OK
            raise ValueError(
                f"snapshot rows out of time order at row {start}: timestamp {int(ts[start])} us "
                f"is before the previous row's {int(state.si[SI_PREV_TS])} us"
            )


def process_batch(ts: np.ndarray, sess: np.ndarray, columns: tuple, out: np.ndarray,
                  state: KernelState, params: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Batch driver: `columns` = the 40 book columns (contiguous float64, BOOK_COLUMNS order),
    `out` = (N_DERIVED, n) column-major (one contiguous array per feature).

    Works in cache-sized chunks: gather the chunk's book rows, run the kernel into a
    row-major buffer, scatter it into the output columns (about 2x faster than writing 78
    strided output streams directly). The chunk loop is compiled too (`_batch_rows`): it
    returns to Python only when the ring must grow or rows are out of order. Returns the NaN
    (null) count of each output column."""
    n = len(ts)
    book = np.empty((chunk, len(columns)), dtype=np.float64)
    buf = np.empty((chunk, N_DERIVED), dtype=np.float64)
    nans = np.zeros(N_DERIVED, dtype=np.int64)
    start = 0
    while start < n:
        start = _batch_rows(ts, sess, columns, out, book, buf, nans, state.ring_ts, state.ring_v,
                            state.si, state.sf, params, start)
        status = state.si[SI_STATUS]
        if status == ST_GROW:
            state.si[SI_STATUS] = ST_OK
            state.grow()
        elif status == ST_ORDER:
            state.si[SI_STATUS] = ST_OK
            raise ValueError(
                f"snapshot rows out of time order at row {start}: timestamp {int(ts[start])} us "
                f"is before the previous row's {int(state.si[SI_PREV_TS])} us"
            )
    return nans


@nb.njit(cache=True, error_model="numpy")
def _batch_rows(ts, sess, columns, out, book, buf, nans, ring_ts, ring_v, si, sf, params, start):
    """Chunks of rows start.. through `process_rows`; returns the first row not done (a
    status in si says why, as `process_rows`)."""
    n = len(ts)
    chunk = book.shape[0]
    lo = start
    while lo < n:
        m = min(chunk, n - lo)
        _gather(columns, book, lo, m)
        done = process_rows(ts[lo:lo + m], sess[lo:lo + m], book[:m], buf[:m].T, ring_ts, ring_v,
                            si, sf, params, 0)
        _scatter(buf, out, lo, done, nans)
        lo += done
        if done < m:
            return lo
    si[SI_STATUS] = ST_OK
    return n


@nb.njit(cache=True)
def _gather(columns, book, lo, m):
    for c in range(len(columns)):
        col = columns[c]
        for i in range(m):
            book[i, c] = col[lo + i]


@nb.njit(cache=True)
def _scatter(buf, out, lo, m, nans):
    for k in range(out.shape[0]):
        cnt = 0
        for i in range(m):
            x = buf[i, k]
            out[k, lo + i] = x
            cnt += x != x
        nans[k] += cnt


@nb.njit(cache=True, error_model="numpy", inline="always")
def _div(a: float, b: float) -> float:
    if b == 0.0:
        return np.nan
    return a / b


@nb.njit(cache=True, error_model="numpy", inline="always")
def _e_level(pb0, qb0, pa0, qa0, pb1, qb1, pa1, qa1) -> float:
    """Cont-Kukanov-Stoikov e_n for one level (row 0 = previous, row 1 = current)."""
    e = 0.0
    if pb1 >= pb0:
        e += qb1
    if pb1 <= pb0:
        e -= qb0
    if pa1 <= pa0:
        e -= qa1
    if pa1 >= pa0:
        e += qa0
    return e


@nb.njit(cache=True, error_model="numpy")
def _recompute_acc(ring_v, si, sf, a, n_last):
    """Exact sums of accumulator a over its window rows [start, n_last], two-pass: the shift
    K becomes the window mean, so the sums start small and cancellation-free."""
    mask = len(ring_v) - 1
    s = ACC_SERIES[a]
    start = si[SI_WSTART + ACC_WINDOW[a]]
    k = 0.0
    if ACC_KIND[a] >= 1:
        cnt = 0.0
        total = 0.0
        for j in range(start, n_last + 1):
            x = ring_v[j & mask, s]
            if not math.isnan(x):
                cnt += 1.0
                total += x
        if cnt > 0.0:
            k = total / cnt
    cnt = 0.0
    s1 = 0.0
    s2 = 0.0
    for j in range(start, n_last + 1):
        x = ring_v[j & mask, s]
        if not math.isnan(x):
            d = x - k
            cnt += 1.0
            s1 += d
            s2 += d * d
    sf[SF_CNT + a] = cnt
    sf[SF_S1 + a] = s1
    sf[SF_S2 + a] = s2
    sf[SF_K + a] = k
    sf[SF_SCALE + a] = s2


@nb.njit(cache=True, error_model="numpy")
def _recompute(ring_v, si, sf, n_last):
    """Exact sums of every accumulator (bounds the drift of running sums)."""
    for a in range(N_ACC):
        _recompute_acc(ring_v, si, sf, a, n_last)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _constant(si, s, w) -> bool:
    """All non-null values of series s in window w are equal (no change inside the window)."""
    return si[SI_LCP + s] < si[SI_WSTART + w]


@nb.njit(cache=True, error_model="numpy", inline="always")
def _mean(si, sf, a) -> float:
    cnt = sf[SF_CNT + a]
    if cnt == 0.0:
        return np.nan
    s = ACC_SERIES[a]
    if _constant(si, s, ACC_WINDOW[a]):
        return sf[SF_LASTVAL + s]
    return sf[SF_K + a] + sf[SF_S1 + a] / cnt


# The accumulators whose std is reported (kind 2).
STD_ACC = np.array([a for a in range(N_ACC) if ACC_KIND[a] == 2], dtype=np.int64)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _cancels(si, sf, a) -> bool:
    """The running sums of accumulator a carry round-off of the order of eps * SCALE (large
    values that were in the window since the last recompute, or a shift K far from the
    values): too much relative to its variance, which must be recomputed exactly.
    Branch-free (this runs for every std of every row; see `_guard`)."""
    cnt = sf[SF_CNT + a]
    s1 = sf[SF_S1 + a]
    # var_n * cnt < SCALE * RATIO * cnt: no division (cnt >= 2 here)
    low = (sf[SF_S2 + a] * cnt - s1 * s1) < sf[SF_SCALE + a] * CANCEL_RATIO * cnt
    varies = si[SI_LCP + ACC_SERIES[a]] >= si[SI_WSTART + ACC_WINDOW[a]]
    return (cnt >= 2.0) & varies & low


@nb.njit(cache=True, error_model="numpy", no_cpython_wrapper=True)
def _guard_slow(ring_v, si, sf, n_last):
    for a in STD_ACC:
        if _cancels(si, sf, a):
            _recompute_acc(ring_v, si, sf, a, n_last)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _guard(ring_v, si, sf, n_last):
    """Recompute exactly every std accumulator whose running sums cancel too much. One
    rarely taken call site: a recompute call inside each std in the row loop costs the
    whole loop about a third of its speed (the compiler must assume state changes)."""
    need = False
    for a in STD_ACC:
        need |= _cancels(si, sf, a)
    if need:
        _guard_slow(ring_v, si, sf, n_last)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _std(si, sf, a) -> float:
    """Sample std of accumulator a (after `_guard`)."""
    cnt = sf[SF_CNT + a]
    if cnt < 2.0:
        return np.nan
    if _constant(si, ACC_SERIES[a], ACC_WINDOW[a]):
        return 0.0
    s1 = sf[SF_S1 + a]
    var_n = sf[SF_S2 + a] - s1 * s1 / cnt
    if var_n <= 0.0:
        return 0.0
    return math.sqrt(var_n / (cnt - 1.0))


@nb.njit(cache=True, error_model="numpy")
def process_rows(ts, sess, book, out, ring_ts, ring_v, si, sf, params, start):
    """Compute rows start.. of `out` (N_DERIVED x n) from `book` (n x 40, BOOK_COLUMNS order).

    Returns the index of the first row not processed (len(ts) when done); si[SI_STATUS] says
    why it stopped early (ST_GROW: the ring is full, ST_ORDER: a timestamp went backwards).
    """
    n_rows = len(ts)
    mask = len(ring_ts) - 1
    cap = len(ring_ts)
    inv_delta = 1.0 / params[P_DELTA]
    inv_lam = 1.0 / params[P_LAMBDA]
    qty = params[P_Q]
    ofi_levels = int(params[P_OFI_LEVELS])
    hsum = 0.0
    for m in range(1, ofi_levels + 1):
        hsum += 1.0 / m
    for r in range(start, n_rows):
        t = ts[r]
        # ---- session bookkeeping -------------------------------------------------------
        if si[SI_HAS_SESSION] != 0 and t < si[SI_PREV_TS]:
            si[SI_STATUS] = ST_ORDER
            return r
        if si[SI_HAS_SESSION] == 0 or sess[r] != si[SI_SESSION]:
            si[SI_HAS_SESSION] = 1
            si[SI_SESSION] = sess[r]
            si[SI_N] = 0
            si[SI_TAU_BID] = t
            si[SI_TAU_ASK] = t
            si[SI_SINCE] = 0
            for w in range(N_WINDOWS):
                si[SI_WSTART + w] = 0
            for s in range(N_SERIES):
                si[SI_LCP + s] = -1
                si[SI_LASTPOS + s] = -1
                sf[SF_LASTVAL + s] = np.nan
            for a in range(N_ACC):
                sf[SF_CNT + a] = 0.0
                sf[SF_S1 + a] = 0.0
                sf[SF_S2 + a] = 0.0
                sf[SF_K + a] = 0.0
                sf[SF_SCALE + a] = 0.0
        n = si[SI_N]
        first = n == 0
        # ---- expire rows that left each window -------------------------------------------
        for w in range(N_WINDOWS):
            thr = t - WINDOW_US[w]
            j = si[SI_WSTART + w]
            while j < n and ring_ts[j & mask] <= thr:
                for p in range(WIN_PTR[w], WIN_PTR[w + 1]):
                    a = WIN_ACC[p]
                    x = ring_v[j & mask, ACC_SERIES[a]]
                    if not math.isnan(x):
                        d = x - sf[SF_K + a]
                        sf[SF_CNT + a] -= 1.0
                        sf[SF_S1 + a] -= d
                        if ACC_KIND[a] == 2:
                            sf[SF_S2 + a] -= d * d
                j += 1
            si[SI_WSTART + w] = j
        oldest = n
        for w in range(N_WINDOWS):
            if si[SI_WSTART + w] < oldest:
                oldest = si[SI_WSTART + w]
        if n - oldest >= cap:
            si[SI_STATUS] = ST_GROW
            return r
        for a in range(N_ACC):  # an empty window restarts from exact zero sums
            if sf[SF_CNT + a] == 0.0:
                sf[SF_S1 + a] = 0.0
                sf[SF_S2 + a] = 0.0
                sf[SF_SCALE + a] = 0.0

        # ---- per-row formulas ------------------------------------------------------------
        bp1 = book[r, 0]
        bq1 = book[r, 1]
        ap1 = book[r, 20]
        aq1 = book[r, 21]
        mid = (bp1 + ap1) / 2.0
        spread = ap1 - bp1
        spread_bps = _div(spread, mid) * 1e4
        out[O_MID, r] = mid
        out[O_SPREAD, r] = spread
        out[O_SPREAD_BPS, r] = spread_bps
        out[O_BAS, r] = spread
        out[O_BAS_PCT, r] = _div(spread, mid) * 100.0
        out[O_OBI, r] = _div(bq1 - aq1, bq1 + aq1)
        micro = _div(bp1 * aq1 + ap1 * bq1, bq1 + aq1)
        out[O_MICRO, r] = micro
        out[O_PIB, r] = _div(micro - bp1, mid)
        out[O_PIA, r] = _div(ap1 - micro, mid)
        out[O_WMID, r] = _div(bp1 * bq1 + ap1 * aq1, bq1 + aq1)

        bp_per_price = 1e4 / mid  # d_i = |p_i - mid| * bp_per_price (basis points)
        bsum = 0.0  # B_k
        asum = 0.0
        bpq = 0.0  # sum bp_i bq_i
        apq = 0.0
        bpress = 0.0
        apress = 0.0
        bpress_w = 0.0
        apress_w = 0.0
        b5 = 0.0
        a5 = 0.0
        bq5 = 0.0
        aq5 = 0.0
        bfill = 0.0  # VWAP fills
        afill = 0.0
        bcost = 0.0
        acost = 0.0
        bdone = False
        adone = False
        for i in range(10):
            bp = book[r, 2 * i]
            bq = book[r, 2 * i + 1]
            ap = book[r, 20 + 2 * i]
            aq = book[r, 21 + 2 * i]
            bsum += bq
            asum += aq
            if bq != 0.0:  # a missing level (null price, size 0) contributes nothing
                bpq += bp * bq
                d = abs(bp - mid) * bp_per_price
                bpress += bq / (1.0 + d * inv_delta)
                bpress_w += bq * math.exp(-d * inv_lam)
                if not bdone:
                    if bfill + bq >= qty:
                        bcost += (qty - bfill) * bp
                        bdone = True
                    else:
                        bcost += bq * bp
                        bfill += bq
            if aq != 0.0:
                apq += ap * aq
                d = abs(ap - mid) * bp_per_price
                apress += aq / (1.0 + d * inv_delta)
                apress_w += aq * math.exp(-d * inv_lam)
                if not adone:
                    if afill + aq >= qty:
                        acost += (qty - afill) * ap
                        adone = True
                    else:
                        acost += aq * ap
                        afill += aq
            k = i + 1
            if k <= 9:
                out[O_TBV1 + 2 * i, r] = bsum
                out[O_TAV1 + 2 * i, r] = asum
            if k == 1:
                out[O_PI1, r] = _div(_div(apq, asum) - _div(bpq, bsum), 2.0 * mid)
            elif k == 2:
                out[O_OBI2, r] = _div(bsum - asum, bsum + asum)
            elif k == 3:
                out[O_OBI3, r] = _div(bsum - asum, bsum + asum)
            elif k == 5:
                out[O_OBI5, r] = _div(bsum - asum, bsum + asum)
                out[O_PI5, r] = _div(_div(apq, asum) - _div(bpq, bsum), 2.0 * mid)
                b5 = bsum
                a5 = asum
                bq5 = bq
                aq5 = aq
        out[O_TBV10, r] = bsum
        out[O_TAV10, r] = asum
        out[O_WBP, r] = _div(bpq, bsum)
        out[O_WAP, r] = _div(apq, asum)
        out[O_PI10, r] = _div(_div(apq, asum) - _div(bpq, bsum), 2.0 * mid)
        out[O_PI_BUY, r] = _div(acost / qty - mid, mid) if adone else np.nan
        out[O_PI_SELL, r] = _div(mid - bcost / qty, mid) if bdone else np.nan
        out[O_BP, r] = bpress
        out[O_AP, r] = apress
        out[O_BPW, r] = bpress_w
        out[O_APW, r] = apress_w
        out[O_PIMB, r] = _div(bpress - apress, bpress + apress)
        out[O_PIMBW, r] = _div(bpress_w - apress_w, bpress_w + apress_w)
        out[O_BDA, r] = _div(bsum - asum, bsum + asum)
        shape = (_div(bq1, bq5) + _div(aq1, aq5)) / 2.0
        out[O_SHAPE, r] = shape
        out[O_BVC, r] = _div(bq1, b5)
        out[O_AVC, r] = _div(aq1, a5)
        out[O_VC, r] = _div(bq1 + aq1, b5 + a5)

        # ---- consecutive-row quantities ---------------------------------------------------
        e1 = 0.0
        ew = 0.0
        ret = np.nan
        if not first:
            ret = _div(mid, sf[SF_PREV_MID]) - 1.0
            if bp1 != sf[SF_PREV_BOOK + 0]:
                si[SI_TAU_BID] = t
            if ap1 != sf[SF_PREV_BOOK + 20]:
                si[SI_TAU_ASK] = t
            for m in range(ofi_levels):
                pb0 = sf[SF_PREV_BOOK + 2 * m]
                pa0 = sf[SF_PREV_BOOK + 20 + 2 * m]
                pb1 = book[r, 2 * m]
                pa1 = book[r, 20 + 2 * m]
                # either row lacking level m (null price) gives e^m = 0
                if math.isnan(pb0) or math.isnan(pa0) or math.isnan(pb1) or math.isnan(pa1):
                    continue
                e = _e_level(pb0, sf[SF_PREV_BOOK + 2 * m + 1], pa0, sf[SF_PREV_BOOK + 21 + 2 * m],
                             pb1, book[r, 2 * m + 1], pa1, book[r, 21 + 2 * m])
                if m == 0:
                    e1 = e
                ew += e / (m + 1)
        out[O_RET, r] = ret
        out[O_BQL, r] = (t - si[SI_TAU_BID]) / 1e6
        out[O_AQL, r] = (t - si[SI_TAU_ASK]) / 1e6
        out[O_QL, r] = (out[O_BQL, r] + out[O_AQL, r]) / 2.0

        # ---- push the row's series and update the windows ---------------------------------
        d5 = b5 + a5
        slot = n & mask
        ring_ts[slot] = t
        ring_v[slot, S_RET] = ret
        ring_v[slot, S_E1] = e1
        ring_v[slot, S_EW] = ew
        ring_v[slot, S_DEP1] = (bq1 + aq1) / 2.0
        ring_v[slot, S_D5] = d5
        ring_v[slot, S_SPR] = spread_bps
        ring_v[slot, S_SHAPE] = shape
        for s in range(N_SERIES):
            x = ring_v[slot, s]
            if not math.isnan(x):
                last = sf[SF_LASTVAL + s]
                if not math.isnan(last) and x != last:
                    si[SI_LCP + s] = si[SI_LASTPOS + s]
                si[SI_LASTPOS + s] = n
                sf[SF_LASTVAL + s] = x
        for a in range(N_ACC):
            x = ring_v[slot, ACC_SERIES[a]]
            if not math.isnan(x):
                kind = ACC_KIND[a]
                if kind != 0 and sf[SF_CNT + a] == 0.0:
                    sf[SF_K + a] = x  # re-anchor the shift on an empty window
                d = x - sf[SF_K + a]
                sf[SF_CNT + a] += 1.0
                sf[SF_S1 + a] += d
                if kind == 2:
                    s2 = sf[SF_S2 + a] + d * d
                    sf[SF_S2 + a] = s2
                    if s2 > sf[SF_SCALE + a]:
                        sf[SF_SCALE + a] = s2
        si[SI_SINCE] += 1
        if si[SI_SINCE] >= RECOMPUTE_EVERY:
            _recompute(ring_v, si, sf, n)
            si[SI_SINCE] = 0

        # ---- window features --------------------------------------------------------------
        _guard(ring_v, si, sf, n)
        out[O_VOL10, r] = _std(si, sf, A_RET + 0)
        out[O_VOL50, r] = _std(si, sf, A_RET + 1)
        out[O_VOL200, r] = _std(si, sf, A_RET + 2)
        for k in range(4):
            ofi = sf[SF_S1 + A_E1 + k]
            out[O_OFI10 + 3 * k, r] = ofi
            out[O_OFI10 + 3 * k + 1, r] = _div(ofi, _mean(si, sf, A_DEP1 + k))
            out[O_OFI10 + 3 * k + 2, r] = sf[SF_S1 + A_EW + k] / hsum
        out[O_RES, r] = _div(d5, _mean(si, sf, A_D5))
        for k in range(3):
            sd = _std(si, sf, A_SPR + k)
            out[O_SS10 + 2 * k, r] = sd
            out[O_SS10 + 2 * k + 1, r] = _div(sd, _mean(si, sf, A_SPR + k))
        out[O_SHAPE_STD, r] = _std(si, sf, A_SHAPE)

        # ---- remember this row ------------------------------------------------------------
        for c in range(40):
            sf[SF_PREV_BOOK + c] = book[r, c]
        sf[SF_PREV_MID] = mid
        si[SI_PREV_TS] = t
        si[SI_N] = n + 1
    si[SI_STATUS] = ST_OK
    return n_rows
