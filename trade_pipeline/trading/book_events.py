"""A minimal capture -> event stream adapter (book messages, plus trades given as a frame).

STOPGAP: the market layer's event-stream builders (captures with their trade lines ->
`market.events` arrays, sequence checks and all) replace this module once they land; keep it
small and do not build on it. It exists so the event backtest can run on the real captures
today:

- book messages come from `market.readers` (the same parsers as the snapshot builder); a
  snapshot (or a full ccxt book, or a Binance REST snapshot) clears each side (`px` NaN) and
  sets its levels as DEPTH_SNAPSHOT events; a delta sets levels as DEPTH events. No sequence
  or gap check is done here (the snapshot builder reports those for the same files).
- trades, when given, are a frame in the `l2_trades` layout (`market.schema.TRADE_SCHEMA`:
  `timestamp`, `received_timestamp`, `side` of the taker, `price`, `size`); they are merged
  with the book in order of receipt (book first at equal receive times).
- every event carries both clocks: `exch_ts` = the time of record, `local_ts` = the receive
  time (the time of record where a capture has none). Each clock is made non-decreasing in
  order of receipt (a time of record that goes back is moved up to the previous one) and the
  events so moved are counted.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numba as nb
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
from trade_pipeline.market.messages import (
    F_KIND,
    F_NA,
    F_NB,
    F_OFF,
    F_RECV,
    F_T,
    K_DELTA,
    K_REPLAY,
    NULL_TIME,
)


@dataclass
class BookStream:
    events: np.ndarray
    report: dict = field(default_factory=dict)


@nb.njit(cache=True)
def _count(msgs) -> int:
    n = 0
    for i in range(msgs.shape[0]):
        n += msgs[i, F_NB] + msgs[i, F_NA]
        if msgs[i, F_KIND] != K_DELTA and msgs[i, F_KIND] != K_REPLAY:
            n += 2
    return n


@nb.njit(cache=True)
def _fill(msgs, levels, out_ev, out_t, out_l, out_px, out_qty) -> None:
    k = 0
    for i in range(msgs.shape[0]):
        t = msgs[i, F_T] * 1000
        recv = msgs[i, F_RECV]
        loc = t if recv == NULL_TIME else recv * 1000
        full = msgs[i, F_KIND] != K_DELTA and msgs[i, F_KIND] != K_REPLAY
        kind = DEPTH_SNAPSHOT_EVENT if full else DEPTH_EVENT
        off = msgs[i, F_OFF]
        for side in range(2):
            flag = BUY_EVENT if side == 0 else SELL_EVENT
            start = off if side == 0 else off + msgs[i, F_NB]
            count = msgs[i, F_NB] if side == 0 else msgs[i, F_NA]
            if full:
                out_ev[k] = DEPTH_CLEAR_EVENT | flag | BOTH_CLOCKS
                out_t[k] = t
                out_l[k] = loc
                out_px[k] = np.nan
                out_qty[k] = 0.0
                k += 1
            for j in range(start, start + count):
                out_ev[k] = kind | flag | BOTH_CLOCKS
                out_t[k] = t
                out_l[k] = loc
                out_px[k] = levels[j, 0]
                out_qty[k] = levels[j, 1]
                k += 1


def events_from_messages(msgs: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Normalized book messages (`MessageBuffer.arrays()`) -> events (clocks not yet made
    monotone)."""
    n = _count(msgs)
    out = np.zeros(n, dtype=EVENT_DTYPE)
    ev = np.empty(n, dtype=np.uint64)
    t = np.empty(n, dtype=np.int64)
    loc = np.empty(n, dtype=np.int64)
    px = np.empty(n, dtype=np.float64)
    qty = np.empty(n, dtype=np.float64)
    _fill(msgs, levels, ev, t, loc, px, qty)
    out["ev"], out["exch_ts"], out["local_ts"], out["px"], out["qty"] = ev, t, loc, px, qty
    return out


def trade_events(trades: pl.DataFrame) -> np.ndarray:
    """Trades in the `l2_trades` layout -> TRADE events (side = the taker's)."""
    missing = {"timestamp", "side", "price", "size"} - set(trades.columns)
    if missing:
        raise ValueError(f"trades lack columns {sorted(missing)}")
    bad = trades.filter(~pl.col("side").is_in(["buy", "sell"]))
    if bad.height:
        raise ValueError(f"{bad.height} trades have a side other than buy/sell")
    exch = trades["timestamp"].dt.epoch("ns").to_numpy()
    if "received_timestamp" in trades.columns:
        recv = trades["received_timestamp"].dt.epoch("ns").fill_null(pl.Series(exch)).to_numpy()
    else:
        recv = exch
    out = np.zeros(trades.height, dtype=EVENT_DTYPE)
    buy = (trades["side"] == "buy").to_numpy()
    out["ev"] = np.where(buy, TRADE_EVENT | BUY_EVENT, TRADE_EVENT | SELL_EVENT) | BOTH_CLOCKS
    out["exch_ts"] = exch
    out["local_ts"] = recv
    out["px"] = trades["price"].to_numpy()
    out["qty"] = trades["size"].to_numpy()
    return out


def monotone_clocks(events: np.ndarray) -> tuple[np.ndarray, dict]:
    """Each clock non-decreasing in order of receipt (in place); counts of moved events."""
    counts = {}
    for name in ("local_ts", "exch_ts"):
        col = events[name]
        fixed = np.maximum.accumulate(col)
        counts[f"{name.split('_')[0]}_clock_moved"] = int(np.sum(fixed != col))
        events[name] = fixed
    return events, counts


def merge_receipt_order(book: np.ndarray, trades: np.ndarray) -> np.ndarray:
    """Book and trade events in order of receipt (stable: book first at equal receive times)."""
    both = np.concatenate([book, trades])
    key = np.r_[np.zeros(len(book), np.int8), np.ones(len(trades), np.int8)]
    order = np.lexsort((key, both["local_ts"]))  # last key sorts first
    if len(book):
        # keep the book's own order of receipt even where its receive times tie or go back
        book_rank = np.arange(len(book))
        rank = np.r_[book_rank, np.full(len(trades), -1)]
        order = np.lexsort((rank, key, both["local_ts"]))
    return both[order]


def book_events(paths: list[str | Path] | str | Path, fmt: str = "auto",
                trades: pl.DataFrame | None = None) -> BookStream:
    """The event stream of recorded book captures (and trades, if given)."""
    from trade_pipeline.market.readers import (
        FileStatus,
        ParseContext,
        read_messages,
        resolve_format,
    )

    if isinstance(paths, str | Path):
        paths = [paths]
    parts = []
    report: dict = {"files": [], "messages": 0, "bad_lines": 0}
    for path in paths:
        kind = resolve_format(path, fmt)
        ctx = ParseContext()
        status = FileStatus(str(path))
        for buf in read_messages(path, kind, ctx, status):
            msgs, levels = buf.arrays()
            parts.append(events_from_messages(msgs, levels))
        report["files"].append({"path": str(path), "format": kind, "messages": ctx.messages,
                                "bad_lines": ctx.bad_lines, "truncated": status.truncated})
        report["messages"] += ctx.messages
        report["bad_lines"] += ctx.bad_lines
    book = np.concatenate(parts) if parts else np.zeros(0, dtype=EVENT_DTYPE)
    if trades is not None and trades.height:
        tr = trade_events(trades)
        events = merge_receipt_order(book, tr)
        report["trades"] = len(tr)
    else:
        events = book
        report["trades"] = 0
    events, moved = monotone_clocks(events)
    report.update(moved)
    report["events"] = len(events)
    return BookStream(events, report)


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
