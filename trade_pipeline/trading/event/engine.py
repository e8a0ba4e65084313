"""`EventEngine`: the Python face of the event-level backtest.

    engine = EventEngine(config, events)          # a whole recorded stream
    engine.run_until(t_ns)                        # process every event / message up to t
    engine.submit_limit(1, BUY, 108000.0, 0.01, post_only=True)
    engine.run_until(NEVER)                       # to the end
    engine.fills()                                # one row per fill (per level for a walk)

Live (paper trading): `EventEngine(config, None, live=True)`, then `append(events)` as
messages arrive and `finish()` at the end; `run_until` returns RUN_NEED_DATA while the next
step could still depend on an event that has not arrived, so the live run equals the run
over the whole stream.

The execution assumptions come from one `EventExecutionConfig`; `prepare_events` applies its
feed clock to a stream before the run.
"""

import numba as nb
import numpy as np
import polars as pl

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.market.event_execution_config import EventExecutionConfig
from trade_pipeline.market.events import (
    BOTH_CLOCKS,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_DTYPE,
    EVENT_TYPE_MASK,
    EXCH_EVENT,
    LOCAL_EVENT,
    TRADE_EVENT,
)
from trade_pipeline.trading.event import layout as L
from trade_pipeline.trading.event import local
from trade_pipeline.trading.event.depth import tick_price, tick_prices
from trade_pipeline.trading.event.latency import check_table, table_from_feed
from trade_pipeline.trading.event.loop import order_arrays, room_for_orders, run_until
from trade_pipeline.trading.event.queue import QUEUE_MODELS
from trade_pipeline.trading.event.state import (
    EngineState,
    likely_step,
    off_grid,
    outside,
    params_array,
    price_ticks,
)

STATUS_NAMES = {L.ST_NONE: "pending", L.ST_NEW: "resting", L.ST_EXPIRED: "expired",
                L.ST_FILLED: "filled", L.ST_CANCELED: "cancelled", L.ST_PARTIAL: "partially_filled",
                L.ST_REJECTED: "rejected"}
_STATUS_COLUMN = np.array([STATUS_NAMES[k] for k in range(len(STATUS_NAMES))])  # code -> name
REFUSALS = {local.E_DUPLICATE_ID: "duplicate order id", local.E_UNKNOWN_ID: "unknown order id",
            local.E_IN_FLIGHT: "a request for this order is already in flight",
            local.E_BAD_QTY: "quantity is not a positive whole number of lots",
            local.E_BAD_PRICE: "price is not a positive multiple of the tick size",
            local.E_ENDED: "the order has already ended (filled, cancelled or expired)",
            local.E_NOT_LIVE: "the order is not resting"}


class EventStreamError(TradePipelineError, ValueError):
    """An event stream the engine cannot run (clocks out of order, no clock flags...)."""


@nb.njit(cache=True)
def _order_problem(events) -> tuple[int, int]:
    """(problem, row): 0 none, 1 an event on no clock, 2 exchange clock back, 3 local back."""
    last_x = np.iinfo(np.int64).min
    last_l = np.iinfo(np.int64).min
    for i in range(len(events)):
        e = events[i]
        on_x = (e.ev & EXCH_EVENT) != 0
        on_l = (e.ev & LOCAL_EVENT) != 0
        if not on_x and not on_l:
            return 1, i
        if on_x:
            if e.exch_ts < last_x:
                return 2, i
            last_x = e.exch_ts
        if on_l:
            if e.local_ts < last_l:
                return 3, i
            last_l = e.local_ts
    return 0, -1


@nb.njit(cache=True)
def _last_times(events) -> tuple[int, int]:
    """The last local time and the last exchange time of a stream (INVALID_MIN if none)."""
    last_l = np.iinfo(np.int64).min
    last_x = np.iinfo(np.int64).min
    i = len(events) - 1
    while i >= 0 and (last_l == np.iinfo(np.int64).min or last_x == np.iinfo(np.int64).min):
        e = events[i]
        if last_l == np.iinfo(np.int64).min and e.ev & LOCAL_EVENT:
            last_l = e.local_ts
        if last_x == np.iinfo(np.int64).min and e.ev & EXCH_EVENT:
            last_x = e.exch_ts
        i -= 1
    return last_l, last_x


def check_events(events: np.ndarray) -> np.ndarray:
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        raise EventStreamError("events must be a numpy array of market.events.EVENT_DTYPE")
    problem, row = _order_problem(events)
    if problem == 1:
        raise EventStreamError(f"event {row} carries neither EXCH_EVENT nor LOCAL_EVENT")
    if problem == 2:
        raise EventStreamError(f"exchange events are not in exch_ts order (event {row})")
    if problem == 3:
        raise EventStreamError(f"local events are not in local_ts order (event {row})")
    return events


# More than this share of a stream's prices (sizes) off the configured tick (lot) means the
# config is not the instrument's: Binance spot BTCUSDT trades in 0.01 and 0.00001, Bybit's
# linear contract in 0.1 and 0.001. A few are real: Binance keeps far levels whose sizes
# predate a lot-size change (200000.00 x 25.426189); those are counted, not refused.
OFF_GRID_LIMIT = 0.01
OFF_GRID_MIN = 20


class GridCheck:
    """Book and trade prices against the tick, sizes against the lot, over a whole stream
    (batch) or everything appended so far (live)."""

    def __init__(self, config: EventExecutionConfig):
        self.config = config
        self.seen = self.off_tick = self.off_lot = 0

    def add(self, events: np.ndarray) -> None:
        n, n_px, row_px, n_qty, row_qty = off_grid(events, self.config.tick_size, self.config.lot_size)
        self.seen += n
        self.off_tick += n_px
        self.off_lot += n_qty
        for off, row, column, name in ((self.off_tick, row_px, "px", "tick_size"),
                                       (self.off_lot, row_qty, "qty", "lot_size")):
            if off >= OFF_GRID_MIN and off > OFF_GRID_LIMIT * self.seen:
                raise EventStreamError(self._message(events, off, row, column, name))

    def _message(self, events: np.ndarray, off: int, row: int, column: str, name: str) -> str:
        kind = events["ev"] & EVENT_TYPE_MASK
        sample = events[column][np.isin(kind, (DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT, TRADE_EVENT))]
        step = likely_step(sample[:: max(1, len(sample) // 50_000)])
        hint = f"the data's look like multiples of {step:g}" if step else "the data's fit no usual step"
        first = f" (first: {float(events[column][row])!r})" if row >= 0 else ""
        return (f"{off:,} of the stream's {self.seen:,} {'prices' if column == 'px' else 'sizes'} "
                f"are not multiples of {name} {getattr(self.config, name):g}{first}; {hint}: set "
                f"event_execution.{name} to the instrument's")


def prepare_events(events: np.ndarray, config: EventExecutionConfig) -> tuple[np.ndarray, dict]:
    """The stream with the config's feed clock applied (a copy), and what was changed.

    `feed_latency_ms` set: every exchange event is seen locally that much later (local-only
    copies are dropped, exchange-only ones become both). Unset: the recorded receive clock,
    shifted later as a whole when it runs ahead of the exchange clock."""
    check_events(events)
    info = {"events_in": len(events), "feed_clock": "recorded", "local_shift_ns": 0}
    if config.feed_latency_ms is not None:
        out = events[(events["ev"] & EXCH_EVENT) != 0].copy()
        out["ev"] |= BOTH_CLOCKS
        out["local_ts"] = out["exch_ts"] + round(config.feed_latency_ms * 1_000_000)
        info["feed_clock"] = f"exchange + {config.feed_latency_ms} ms"
    else:
        out = events.copy()
        both = (out["ev"] & BOTH_CLOCKS) == BOTH_CLOCKS
        if np.any(both):
            worst = int((out["local_ts"][both] - out["exch_ts"][both]).min())
            if worst < 0:
                out["local_ts"] -= worst  # hftbacktest's correct_local_timestamp
                info["local_shift_ns"] = -worst
    info["events"] = len(out)
    # trades are what maker orders fill on: a stream without any fills them on the book alone
    info["trade_events"] = int(np.count_nonzero((out["ev"] & EVENT_TYPE_MASK) == TRADE_EVENT))
    return out, info


class EventEngine:
    def __init__(self, config: EventExecutionConfig, events: np.ndarray | None, *, live: bool = False,
                 latency_table: np.ndarray | None = None, prepared: bool = False):
        self.config = config
        self.prepare_info: dict = {}
        if events is not None and not prepared:
            events, self.prepare_info = prepare_events(events, config)
        elif events is not None:
            check_events(events)
        self.grid = GridCheck(config)
        if events is not None:
            self.grid.add(events)
        table = self._latency_table(config, events, latency_table)
        prm = params_array(tick_size=config.tick_size, lot_size=config.lot_size,
                           maker_fee=config.maker_fee, taker_fee=config.taker_fee,
                           entry_ns=config.entry_ns, response_ns=config.response_ns,
                           latency_table=table is not None, queue=QUEUE_MODELS[config.queue_model],
                           queue_power=config.queue_power)
        ticks = price_ticks(events, config.tick_size) if events is not None and len(events) else None
        self.state = EngineState(prm, table, roi=ticks or (0, 0))
        self._roi_set = ticks is not None
        self.outside_roi = 0
        if ticks is not None:
            self.outside_roi = outside(events, config.tick_size, *self._roi())
        self.live = live
        if events is None:
            self.events = np.zeros(1024, dtype=EVENT_DTYPE)
        else:
            self.events = np.ascontiguousarray(events)
            self._set_count(len(events))
        if not live:
            self.state.cnt[L.C_FINISHED] = 1

    @staticmethod
    def _latency_table(config, events, table):
        if table is not None:
            return check_table(table)
        if config.latency == "table":
            return check_table(read_latency_table(config.latency_table))
        if config.latency == "feed":
            if events is None:
                raise EventStreamError("latency = 'feed' reads the recorded stream: not available live")
            return table_from_feed(events, every_ns=int(config.feed_every_s * 1e9),
                                   entry_mul=config.entry_feed_mul, entry_offset_ns=config.entry_ns,
                                   response_mul=config.response_feed_mul,
                                   response_offset_ns=config.response_ns)
        return None

    def _set_count(self, n: int) -> None:
        cnt = self.state.cnt
        cnt[L.C_NEV] = n
        if n:
            last_local, last_exch = _last_times(self.events[:n])
            cnt[L.C_LAST_LOCAL_TS] = max(cnt[L.C_LAST_LOCAL_TS], last_local)
            cnt[L.C_LAST_EXCH_TS] = max(cnt[L.C_LAST_EXCH_TS], last_exch)

    # ---- live feeding ------------------------------------------------------------------------
    def append(self, events: np.ndarray) -> None:
        """More events (live): already prepared (feed clock applied), in order on each clock."""
        if not self.live:
            raise EventStreamError("append() is for a live engine")
        if len(events) == 0:
            return
        check_events(events)
        self.grid.add(events)
        cnt = self.state.cnt
        loc = events[(events["ev"] & LOCAL_EVENT) != 0]
        exch = events[(events["ev"] & EXCH_EVENT) != 0]
        if (len(loc) and loc["local_ts"][0] < cnt[L.C_LAST_LOCAL_TS]) or (
                len(exch) and exch["exch_ts"][0] < cnt[L.C_LAST_EXCH_TS]):
            raise EventStreamError("appended events go back in time")
        ticks = price_ticks(events, self.config.tick_size)
        if ticks is not None:
            if not self._roi_set:
                self.state = self._fresh_state(*ticks)
                self._roi_set = True
            else:
                # grow towards the new prices, but never beyond +-50 % of the current range's
                # centre: a stray far level must not make the books gigabytes
                lo, hi = self._roi()
                centre, half = (lo + hi) // 2, (hi - lo) // 2
                cap = max(half, centre // 2)
                self.state.cover_ticks(max(ticks[0], centre - cap), min(ticks[1], centre + cap))
            self.outside_roi += outside(events, self.config.tick_size, *self._roi())
        n = int(cnt[L.C_NEV])
        self._compact()
        n = int(self.state.cnt[L.C_NEV])
        need = n + len(events)
        if need > len(self.events):
            bigger = np.zeros(max(need, 2 * len(self.events)), dtype=EVENT_DTYPE)
            bigger[:n] = self.events[:n]
            self.events = bigger
        self.events[n:need] = events
        self._set_count(need)

    def _roi(self) -> tuple[int, int]:
        m = self.state.xm
        return int(m[L.D_LO]), int(m[L.D_LO] + m[L.D_N] - 1)

    def _fresh_state(self, lo: int, hi: int) -> EngineState:
        old = self.state
        new = EngineState(old.prm, old.lat if old.prm[L.P_LAT_KIND] else None, roi=(lo, hi))
        new.cnt[:] = old.cnt
        return new

    def _compact(self) -> None:
        """Drop the events both sides have processed (live runs would grow without bound)."""
        cnt = self.state.cnt
        done = int(min(cnt[L.C_XROW], cnt[L.C_LROW]))
        if done < 65536:
            return
        n = int(cnt[L.C_NEV])
        self.events[: n - done] = self.events[done:n]
        cnt[L.C_XROW] -= done
        cnt[L.C_LROW] -= done
        cnt[L.C_NEV] = n - done

    def finish(self) -> None:
        """No more events will be appended."""
        self.state.cnt[L.C_FINISHED] = 1

    # ---- running -----------------------------------------------------------------------------
    def run_until(self, t_ns: int) -> int:
        """Process everything up to local time `t_ns`; RUN_DONE, RUN_END or RUN_NEED_DATA."""
        while True:
            code = run_until(self.state.S, self.events, int(t_ns))
            if code != L.RUN_NEED_SPACE:
                return code
            self.state.grow()

    def run_to_end(self) -> None:
        self.finish()
        self.run_until(L.NEVER)

    # ---- requests ----------------------------------------------------------------------------
    def _ensure_room(self) -> None:
        while not room_for_orders(*order_arrays(self.state), 4):
            self.state.grow()

    def _check(self, code: int) -> int:
        if code < 0:
            raise OrderRefused(REFUSALS.get(code, f"refused ({code})"))
        return code

    def submit_limit(self, order_id: int, side: int, price: float, qty: float, *,
                     post_only: bool = False) -> int:
        self._ensure_room()
        return self._check(local.submit(self.state.S, int(order_id), int(side), L.LIMIT,
                                        L.GTX if post_only else L.GTC, float(price), float(qty)))

    def submit_market(self, order_id: int, side: int, qty: float) -> int:
        self._ensure_room()
        return self._check(local.submit(self.state.S, int(order_id), int(side), L.MARKET, L.GTC,
                                        0.0, float(qty)))

    def cancel(self, order_id: int) -> int:
        self._ensure_room()
        return self._check(local.cancel(self.state.S, int(order_id)))

    def replace(self, order_id: int, price: float, qty: float) -> int:
        self._ensure_room()
        return self._check(local.replace(self.state.S, int(order_id), float(price), float(qty)))

    # ---- what the strategy sees --------------------------------------------------------------
    @property
    def now(self) -> int:
        return int(self.state.cnt[L.C_NOW])

    def _best(self, which: int) -> float:
        m = self.state.lm
        t = int(m[which])
        if t in (L.INVALID_MIN, L.INVALID_MAX):
            return float("nan")
        return float(tick_price(t, self.config.tick_size))

    @property
    def best_bid(self) -> float:
        return self._best(L.D_BEST_BID)

    @property
    def best_ask(self) -> float:
        return self._best(L.D_BEST_ASK)

    def level(self, side: int, price: float) -> float:
        """The size the strategy sees at `price` on the bid (side 1) or ask (-1) side."""
        from trade_pipeline.trading.event.depth import qty_at, to_tick

        return float(qty_at(self.state.lq, self.state.lm, 0 if side == 1 else 1,
                            to_tick(float(price), self.config.tick_size)))

    @property
    def position(self) -> float:
        """Position as the strategy knows it (fills whose response has arrived)."""
        return round(float(self.state.acc[L.A_LPOS]), 9)

    @property
    def exchange_position(self) -> float:
        return round(float(self.state.acc[L.A_XPOS]), 9)

    def order(self, order_id: int) -> dict | None:
        """The strategy's view of a live order (None once it is done and forgotten)."""
        slot = local.find(self.state.S, int(order_id))
        if slot < 0:
            return None
        oi, of = self.state.oi[slot], self.state.of[slot]
        decimals = lot_decimals(self.config.lot_size)
        return {"order_id": int(oi[L.OI_ID]), "status": STATUS_NAMES[int(oi[L.OI_LSTATUS])],
                "price": float(tick_price(int(oi[L.OI_LTICK]), self.config.tick_size)),
                "qty": round(float(of[L.OF_LQTY]), decimals),
                "leaves": round(float(of[L.OF_LLEAVES]), decimals),
                "request_in_flight": int(oi[L.OI_LREQ]) != L.REQ_NONE}

    def queue_ahead(self, order_id: int) -> float | None:
        """The queue ahead of a resting order on the exchange (for tests and reports)."""
        slot = local.find(self.state.S, int(order_id))
        if slot < 0 or not self.state.oi[slot, L.OI_XRESTING]:
            return None
        return float(self.state.of[slot, L.OF_FRONT])

    @property
    def refused_requests(self) -> int:
        return int(self.state.cnt[L.C_ERRORS])

    # ---- results -----------------------------------------------------------------------------
    def fills(self) -> pl.DataFrame:
        """Every fill so far, in the order the exchange made them."""
        n = int(self.state.cnt[L.C_NFILL])
        fi, ff = self.state.fi[:n], self.state.ff[:n]
        return fills_frame(fi, ff, self.config.lot_size)

    def order_log(self) -> pl.DataFrame:
        n = int(self.state.cnt[L.C_NLOG])
        return order_log_frame(self.state.ol[:n], self.state.olf[:n], self.config.tick_size,
                               self.config.lot_size)

    def counts(self) -> dict:
        c = self.state.cnt
        return {"events": int(c[L.C_NEV]), "exchange_events": int(c[L.C_XEVENTS]),
                "local_events": int(c[L.C_LEVENTS]), "fills": int(c[L.C_NFILL]),
                "orders": int(c[L.C_NLOG]), "refused_requests": int(c[L.C_ERRORS]),
                "levels_outside_price_range": self.outside_roi,
                "prices_off_tick": self.grid.off_tick, "sizes_off_lot": self.grid.off_lot,
                **self.prepare_info}


class OrderRefused(TradePipelineError, ValueError):
    """The engine refused a request before it left (see `REFUSALS`)."""


def _ts(values: np.ndarray) -> pl.Series:
    v = values.astype(np.int64)
    out = pl.Series(v).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
    return out.set(pl.Series(v == L.NEVER), None)


def lot_decimals(lot_size: float) -> int:
    """Decimals that write any multiple of `lot_size` exactly (0.001 -> 3, 1e-05 -> 5)."""
    for d in range(13):
        if abs(lot_size * 10**d - round(lot_size * 10**d)) < 1e-9:
            return d
    return 12


def in_lots(values: np.ndarray, lot_size: float) -> np.ndarray:
    """Quantities as the decimals they are: sums of lots carry float noise (8 lots of 0.001
    summed are 0.007999999999999998), which the reports must not show."""
    return np.round(values, lot_decimals(lot_size))


def fills_frame(fi: np.ndarray, ff: np.ndarray, lot_size: float) -> pl.DataFrame:
    return pl.DataFrame({
        "order_id": fi[:, L.FI_ID],
        "side": fi[:, L.FI_SIDE].astype(np.int8),
        "liquidity": np.where(fi[:, L.FI_MAKER] == 1, "maker", "taker"),
        "price": ff[:, L.FF_PRICE],
        "qty": in_lots(ff[:, L.FF_QTY], lot_size),
        "fee": ff[:, L.FF_FEE],
        "leaves": in_lots(ff[:, L.FF_LEAVES], lot_size),
        "fill_at": _ts(fi[:, L.FI_EXCH_TS]),
        "known_at": _ts(fi[:, L.FI_LOCAL_TS]),
        "mid_at_fill": ff[:, L.FF_MID],
        "order_row": fi[:, L.FI_LOG],
    })


def order_log_frame(ol: np.ndarray, olf: np.ndarray, tick_size: float, lot_size: float) -> pl.DataFrame:
    return pl.DataFrame({
        "order_id": ol[:, L.OL_ID],
        "side": ol[:, L.OL_SIDE].astype(np.int8),
        "type": np.where(ol[:, L.OL_TYPE] == L.MARKET, "market", "limit"),
        "post_only": ol[:, L.OL_TIF] == L.GTX,
        "price": np.where(ol[:, L.OL_TYPE] == L.MARKET, np.nan,
                          tick_prices(ol[:, L.OL_TICK].astype(np.int64), tick_size)),
        "qty": in_lots(olf[:, L.OLF_QTY], lot_size),
        "filled": in_lots(olf[:, L.OLF_FILLED], lot_size),
        "fills": ol[:, L.OL_NFILLS],
        "replaces": ol[:, L.OL_REPLACES],
        "status": _STATUS_COLUMN[ol[:, L.OL_STATUS]],
        "queue_at_entry": olf[:, L.OLF_QUEUE_AT_ENTRY],
        "submitted_at": _ts(ol[:, L.OL_SUBMIT_TS]),
        "accepted_at": _ts(ol[:, L.OL_ACK_TS]),
        "first_fill_at": _ts(ol[:, L.OL_FIRST_FILL_TS]),
        "ended_at": _ts(ol[:, L.OL_END_TS]),
    })


def read_latency_table(path: str) -> np.ndarray:
    """(req_ts, exch_ts, resp_ts) rows in ns from Parquet, CSV or npz (hftbacktest's format)."""
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise EventStreamError(f"latency table {p} does not exist")
    if p.suffix == ".npz":
        data = np.load(p)["data"]
        return np.stack([data["req_ts"], data["exch_ts"], data["resp_ts"]], axis=1)
    frame = pl.read_parquet(p) if p.suffix == ".parquet" else pl.read_csv(p)
    missing = {"req_ts", "exch_ts", "resp_ts"} - set(frame.columns)
    if missing:
        raise EventStreamError(f"latency table {p} lacks columns {sorted(missing)}")
    return frame.select("req_ts", "exch_ts", "resp_ts").to_numpy().astype(np.int64)
