"""What an event backtest did, in figures a maker strategy is judged by.

- markouts per fill: side * (mid(t + h) - price) / price in bp, at the fill (h = 0: the
  spread captured, negative for a taker) and h = 1 s, 5 s, 30 s after it, with the
  exchange-side mid (the last mid at or before t + h; None past the end of the data);
- fill ratio, over the limit orders that rested on the book (a crossing order's taker part
  and a post-only order refused for crossing never rested): the share of them with any maker
  fill, and their maker-filled quantity over the quantity they posted to rest;
- time in queue: from an order's acceptance to each of its maker fills, and to its end for
  the orders that left unfilled (cancelled);
- PnL split (quote currency): spread capture sum(side * (mid at fill - price) * qty), fees
  (rebates count negative), and inventory PnL, the rest: what holding the position did
  (total = spread capture + inventory - fees, with the position marked at the last mid);
- the equity and inventory path every `every_s` seconds, from the fills and the mid path;
- uncertainty: each mean markout and the total PnL come with a 95 % block-bootstrap interval
  and the p-value of "<= 0" (`models.significance.mean_test`), blocks sized for what
  overlaps: the fills within one markout horizon, and 30 s of PnL increments. A run too short
  for ten such blocks gets no interval (None): it cannot tell.
"""

import math

import numba as nb
import numpy as np
import polars as pl

from trade_pipeline.market.events import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_TYPE_MASK,
    EXCH_EVENT,
    SELL_EVENT,
)
from trade_pipeline.models.significance import block_rows_for, mean_test
from trade_pipeline.trading.event import depth
from trade_pipeline.trading.event.state import EngineState, params_array, price_ticks

MARKOUT_HORIZONS_S = (0, 1, 5, 30)


@nb.njit(cache=True)
def _mid_path(events, q, m, tick, lot, out_t, out_mid) -> int:
    k = 0
    last = math.nan
    for i in range(len(events)):
        e = events[i]
        if (e.ev & EXCH_EVENT) == 0:
            continue
        kind = e.ev & EVENT_TYPE_MASK
        if kind in (DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT):
            if e.ev & BUY_EVENT:
                depth.update_bid(q, m, e.px, e.qty, tick, lot)
            elif e.ev & SELL_EVENT:
                depth.update_ask(q, m, e.px, e.qty, tick, lot)
        elif kind == DEPTH_CLEAR_EVENT:
            if e.ev & BUY_EVENT:
                depth.clear_bids(q, m, e.px, tick)
            elif e.ev & SELL_EVENT:
                depth.clear_asks(q, m, e.px, tick)
            else:
                depth.clear_bids(q, m, e.px, tick)
                depth.clear_asks(q, m, e.px, tick)
        else:
            continue
        mid = depth.mid(m, tick)
        if m[2] >= m[3]:  # crossed or locked mid-update: not a price
            mid = math.nan
        if mid != last and not (mid != mid and last != last):
            out_t[k] = e.exch_ts
            out_mid[k] = mid
            k += 1
            last = mid
    return k


def mid_path(events: np.ndarray, tick_size: float, lot_size: float) -> tuple[np.ndarray, np.ndarray]:
    """(exch_ts, mid) at every change of the exchange-side mid (NaN while a side is empty or
    the book is crossed)."""
    ticks = price_ticks(events, tick_size) or (0, 0)
    st = EngineState(params_array(tick_size=tick_size, lot_size=lot_size, maker_fee=0.0, taker_fee=0.0,
                                  entry_ns=0, response_ns=0, latency_table=False, queue=0,
                                  queue_power=1.0), None, roi=ticks, slots=1, fills=1, orders_log=1, bus=1)
    n = len(events)
    t = np.empty(n, dtype=np.int64)
    mids = np.empty(n, dtype=np.float64)
    k = _mid_path(events, st.xq, st.xm, tick_size, lot_size, t, mids)
    return t[:k].copy(), mids[:k].copy()


def mid_at(path: tuple[np.ndarray, np.ndarray], times_ns: np.ndarray) -> np.ndarray:
    t, mids = path
    idx = np.searchsorted(t, times_ns, side="right") - 1
    out = np.where(idx >= 0, mids[np.clip(idx, 0, None)], np.nan)
    return out


def markouts(fills: pl.DataFrame, path, end_ns: int) -> pl.DataFrame:
    """Per fill: markout_<h>s_bp for each horizon (null past the end of the data)."""
    if fills.height == 0:
        return fills.with_columns([pl.lit(None, pl.Float64).alias(f"markout_{h}s_bp") for h in MARKOUT_HORIZONS_S])
    t = fills["fill_at"].dt.epoch("ns").to_numpy()
    side = fills["side"].to_numpy().astype(np.float64)
    price = fills["price"].to_numpy()
    cols = []
    for h in MARKOUT_HORIZONS_S:
        at = t + int(h * 1e9)
        # at the fill: the exchange mid the fill met (the spread it captured or paid)
        m = fills["mid_at_fill"].to_numpy() if h == 0 else mid_at(path, at)
        mk = side * (m - price) / price * 1e4
        mk = np.where(at <= end_ns, mk, np.nan)
        cols.append(pl.Series(f"markout_{h}s_bp", mk).fill_nan(None))
    return fills.with_columns(cols)


def _stats(values: np.ndarray) -> dict:
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return {"n": 0, "mean": None, "median": None}
    return {"n": len(v), "mean": float(v.mean()), "median": float(np.median(v))}


def markout_stats(marked: pl.DataFrame, h: int) -> dict:
    """n, mean, median of the fills' markouts at `h` s, and the mean's 95 % interval and the
    p-value of "mean <= 0". Markouts of fills closer than the horizon share the same price
    moves: the bootstrap blocks are sized for the fills within one horizon (models'
    `block_rows_for`, as for overlapping labels)."""
    values = marked[f"markout_{h}s_bp"].to_numpy().astype(np.float64) if marked.height else np.array([])
    out = _stats(values)
    t = marked["fill_at"].dt.epoch("ns").to_numpy() if marked.height else np.array([0])
    span_s = max((int(t[-1]) - int(t[0])) / 1e9, 1.0)
    per_horizon = math.ceil(len(values) * max(h, 1) / span_s)
    test = mean_test(values, block_rows_for(per_horizon))
    return {**out, "ci_low": test.ci_low, "ci_high": test.ci_high, "p_value": test.p_value,
            "block_fills": test.block_rows}


def pnl_uncertainty(equity: pl.DataFrame, every_s: float = 1.0) -> dict:
    """The total PnL's 95 % interval and the p-value of "PnL <= 0", from the equity path's
    increments (every `every_s`), resampled in blocks sized for the longest markout horizon
    (the time over which a fill's adverse selection plays out): total = n x mean increment."""
    inc = np.diff(equity["equity"].to_numpy()) if equity.height > 1 else np.array([])
    test = mean_test(inc, block_rows_for(round(max(MARKOUT_HORIZONS_S) / every_s)))
    n = len(inc)
    low, high = (None if v is None else v * n for v in (test.ci_low, test.ci_high))
    return {"total_ci_low": low, "total_ci_high": high, "total_p_value": test.p_value,
            "increments": n, "block_increments": test.block_rows}


def pnl_split(fills: pl.DataFrame, final_mid: float) -> dict:
    if fills.height == 0:
        return {"spread_capture": 0.0, "fees": 0.0, "inventory_pnl": 0.0, "total": 0.0}
    side = fills["side"].to_numpy().astype(np.float64)
    qty = fills["qty"].to_numpy()
    price = fills["price"].to_numpy()
    mid = fills["mid_at_fill"].to_numpy()
    fees = float(fills["fee"].sum())
    cash = float(-(side * qty * price).sum())
    pos = float((side * qty).sum())
    gross = cash + (pos * final_mid if pos else 0.0)
    spread = float(np.nansum(side * (mid - price) * qty))
    return {"spread_capture": spread, "fees": fees, "inventory_pnl": gross - spread,
            "total": gross - fees}


def equity_path(fills: pl.DataFrame, path, initial: float, end_ns: int | None = None,
                every_s: float = 1.0) -> pl.DataFrame:
    """Equity and position every `every_s` seconds of exchange time up to `end_ns` (the
    data's end; default: the last mid change), fills at their time."""
    t_mid, _mids = path
    if len(t_mid) == 0:
        return pl.DataFrame({"ts_ns": [], "equity": [], "position": [], "mid": []},
                            schema={"ts_ns": pl.Int64, "equity": pl.Float64, "position": pl.Float64, "mid": pl.Float64})
    step = int(every_s * 1e9)
    end = max(int(t_mid[-1]), end_ns or 0)
    grid = np.arange((t_mid[0] // step + 1) * step, end + 1, step, dtype=np.int64)
    mid = mid_at(path, grid)
    if fills.height:
        ft = fills["fill_at"].dt.epoch("ns").to_numpy()
        side = fills["side"].to_numpy().astype(np.float64)
        qty = fills["qty"].to_numpy()
        pos_c = np.cumsum(side * qty)
        cash_c = np.cumsum(-side * qty * fills["price"].to_numpy() - fills["fee"].to_numpy())
        j = np.searchsorted(ft, grid, side="right") - 1
        pos = np.where(j >= 0, pos_c[np.clip(j, 0, None)], 0.0)
        cash = np.where(j >= 0, cash_c[np.clip(j, 0, None)], 0.0)
    else:
        pos = np.zeros(len(grid))
        cash = np.zeros(len(grid))
    equity = initial + cash + np.where(pos != 0, pos * mid, 0.0)
    return pl.DataFrame({"ts_ns": grid, "equity": equity, "position": np.round(pos, 9), "mid": mid})


def fill_ratios(fills: pl.DataFrame, orders: pl.DataFrame, lot_size: float) -> tuple[float | None, float | None]:
    """(fill_ratio_orders, fill_ratio_qty) of the limit orders that rested on the book.

    An order rested when it reached the exchange (`accepted_at`), was not refused there (a
    post-only order that would cross: `expired`), and kept something after its taker fills
    (a crossing order takes what it can at once; only the rest rests). Its quantity posted
    to rest is `qty` minus those taker fills. Then
    - fill_ratio_orders: the share of resting orders with any maker fill;
    - fill_ratio_qty: maker-filled quantity / quantity posted to rest.
    Both None when no order rested. A limit order that crossed and filled as taker is about
    taking, not making: it counts in neither."""
    limit = orders.with_row_index("order_row").filter(
        (pl.col("type") == "limit") & pl.col("accepted_at").is_not_null() & (pl.col("status") != "expired"))
    by_kind = fills.group_by(pl.col("order_row").cast(pl.UInt32), "liquidity").agg(pl.col("qty").sum())
    qty_of = {kind: by_kind.filter(pl.col("liquidity") == kind).select("order_row", pl.col("qty").alias(kind))
              for kind in ("maker", "taker")}
    rested = (limit.join(qty_of["maker"], on="order_row", how="left")
              .join(qty_of["taker"], on="order_row", how="left")
              .with_columns(pl.col("maker", "taker").fill_null(0.0))
              .with_columns(posted=pl.col("qty") - pl.col("taker"))
              .filter(pl.col("posted") > lot_size / 2))
    if rested.height == 0:
        return None, None
    posted = float(rested["posted"].sum())
    return float((rested["maker"] > 0).mean()), float(rested["maker"].sum()) / posted


def report(fills: pl.DataFrame, orders: pl.DataFrame, events: np.ndarray, *, tick_size: float,
           lot_size: float, initial_capital: float) -> tuple[dict, pl.DataFrame, pl.DataFrame]:
    """(figures, fills with markouts, equity path) of one run.

    Figures: fill, order and limit-order counts; `fill_ratio_orders` and `fill_ratio_qty`
    over the limit orders that rested on the book (`fill_ratios`); time in queue to each
    maker fill and resting time of the orders that ended unfilled; markout stats per
    horizon; the PnL split; the final mid."""
    path = mid_path(events, tick_size, lot_size)
    exch = events["exch_ts"][(events["ev"] & EXCH_EVENT) != 0]
    end_ns = int(exch[-1]) if len(exch) else 0
    marked = markouts(fills, path, end_ns)
    final_mid = float(path[1][-1]) if len(path[1]) else math.nan
    limit = orders.filter(pl.col("type") == "limit")
    ratio_orders, ratio_qty = fill_ratios(fills, orders, lot_size)
    maker = marked.filter(pl.col("liquidity") == "maker").join(
        orders.with_row_index("order_row").select(pl.col("order_row").cast(pl.Int64), "accepted_at"),
        on="order_row", how="left")
    in_queue = ((maker["fill_at"] - maker["accepted_at"]).dt.total_microseconds().to_numpy() / 1e6
                if maker.height else np.array([]))
    # orders that rested and ended unfilled (a post-only order refused for crossing never rested)
    unfilled = limit.filter((pl.col("filled") == 0) & pl.col("ended_at").is_not_null()
                            & (pl.col("status") != "expired"))
    rest = ((unfilled["ended_at"] - unfilled["accepted_at"]).dt.total_microseconds().to_numpy() / 1e6
            if unfilled.height else np.array([]))
    figures = {
        "fills": marked.height,
        "maker_fills": int((marked["liquidity"] == "maker").sum()) if marked.height else 0,
        "taker_fills": int((marked["liquidity"] == "taker").sum()) if marked.height else 0,
        "orders": orders.height,
        "limit_orders": limit.height,
        "fill_ratio_qty": ratio_qty,
        "fill_ratio_orders": ratio_orders,
        "time_in_queue_to_fill_s": _stats(in_queue),
        "time_resting_unfilled_s": _stats(rest),
        "markout_bp": {f"{h}s": markout_stats(marked, h) for h in MARKOUT_HORIZONS_S},
        "pnl": pnl_split(fills, final_mid),
        "final_mid": final_mid,
    }
    equity = equity_path(fills, path, initial_capital, end_ns)
    figures["pnl_uncertainty"] = pnl_uncertainty(equity)
    return figures, marked, equity
