"""The event backtest end to end: stream + config (+ signals) -> fills, accounts, samples.

    result = run_event_backtest(events, config, signals=None)

`EventRun` is the incremental form paper trading uses: `append(events, signals)` as messages
arrive, `advance()`, and `finish()`; fed the same stream it reproduces the batch run exactly
(the driver and the engine wait wherever an event still to come could change a step).

Signals (for the taker and the maker) are a frame with `available_ns` (the receive time from
which the strategy may use the value) and `value` (for the maker: the model's expected return;
for the taker: the target sign), in time order. `signals_from_predictions` builds it from grid
predictions and the stream (`market.event_stream`'s events and the same rows prepared).
"""

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from trade_pipeline.market.event_stream import event_type
from trade_pipeline.market.events import EVENT_DTYPE, TRADE_EVENT
from trade_pipeline.trading.accounting import Account
from trade_pipeline.trading.event import layout as L
from trade_pipeline.trading.event.engine import EventEngine, prepare_events
from trade_pipeline.trading.event_config import EventBacktestConfig
from trade_pipeline.trading.event_driver import (
    DV_BOOKED,
    DV_HALT,
    DV_NSAMPLE,
    DV_NSIG,
    DV_STEPS,
    HALT_DRAWDOWN,
    HALT_STOP,
    SM_EQUITY,
    SM_MID,
    SM_POS,
    SM_SIGNAL,
    STRATEGY_KINDS,
    drive,
    driver_arrays,
    halt_now,
)

HALT_NAMES = {0: None, HALT_DRAWDOWN: "drawdown_stop", HALT_STOP: "stopped"}


def signals_from_predictions(stream: np.ndarray, prepared: np.ndarray, ts_us: np.ndarray,
                             values: np.ndarray) -> pl.DataFrame:
    """Grid predictions (row time in us, value) -> signals usable from the receive time of
    the message that completed each row (as the live sampler emits it): the first book event
    of `stream` (the builder's events, book times as the grid sampler applies them) after the
    row's time, at that event's local time in `prepared` (the same rows as the engine runs
    them). Trades complete no row. Rows no later book event completes are never usable
    (dropped)."""
    if len(stream) != len(prepared):
        raise ValueError(f"the prepared stream has {len(prepared)} events, the built one "
                         f"{len(stream)}: they must be the same rows")
    book = np.flatnonzero(event_type(stream) != TRADE_EVENT)
    row_ns = np.asarray(ts_us, dtype=np.int64) * 1000
    idx = np.searchsorted(stream["exch_ts"][book], row_ns, side="right")
    ok = idx < len(book)
    avail = prepared["local_ts"][book[idx[ok]]]
    frame = pl.DataFrame({"available_ns": avail, "value": np.asarray(values, dtype=np.float64)[ok]})
    return frame.filter(pl.col("value").is_not_nan())


class EventRun:
    """One run of a strategy on the event engine (batch: everything at once; live: fed)."""

    def __init__(self, config: EventBacktestConfig, events: np.ndarray | None = None, *,
                 live: bool = False, signals: pl.DataFrame | None = None, prepared: bool = False):
        self.config = config
        self.engine = EventEngine(config.execution, events, live=live, prepared=prepared)
        self.kind = STRATEGY_KINDS[config.run.strategy]
        strat = config.strategy_config()
        if config.run.strategy == "market_maker":
            self.par = strat.params(config.run.interval_ns / 1e9)
        elif strat is not None:
            self.par = strat.params()
        else:
            self.par = np.zeros(1)
        self.si, self.sf = strat.state() if strat is not None else (np.zeros(1, np.int64), np.zeros(1))
        self.dv, self.dvf, self.smp_i, self.smp_f = driver_arrays(
            config.run.interval_ns, config.execution.initial_capital, config.run.drawdown_stop)
        self.sig_ts = np.zeros(1024, dtype=np.int64)
        self.sig_val = np.zeros(1024, dtype=np.float64)
        if signals is not None:
            self.add_signals(signals["available_ns"].to_numpy(), signals["value"].to_numpy())
        self.code = L.RUN_DONE

    # ---- feeding -----------------------------------------------------------------------------
    def add_signals(self, available_ns, values) -> None:
        available_ns = np.asarray(available_ns, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        n = int(self.dv[DV_NSIG])
        if len(available_ns) == 0:
            return
        if np.any(np.diff(available_ns) < 0) or (n and available_ns[0] < self.sig_ts[n - 1]):
            raise ValueError("signals must come in order of their available time")
        need = n + len(available_ns)
        if need > len(self.sig_ts):
            size = max(need, 2 * len(self.sig_ts))
            self.sig_ts = np.resize(self.sig_ts, size)
            self.sig_val = np.resize(self.sig_val, size)
        self.sig_ts[n:need] = available_ns
        self.sig_val[n:need] = values
        self.dv[DV_NSIG] = need

    def append(self, events: np.ndarray, signals_ns=None, signal_values=None) -> None:
        if signals_ns is not None and len(signals_ns):
            self.add_signals(signals_ns, signal_values)
        self.engine.append(events)

    def advance(self) -> int:
        """Run every wake-up the data received so far allows."""
        while True:
            e = self.engine
            code = drive(e.state.S, e.events, self.kind, self.par, self.si, self.sf, self.sig_ts,
                         self.sig_val, self.dv, self.dvf, self.smp_i, self.smp_f)
            if code != L.RUN_NEED_SPACE:
                self.code = code
                return code
            e.state.grow()
            if self.dv[DV_NSAMPLE] >= len(self.smp_i):
                self.smp_i = np.concatenate([self.smp_i, np.zeros_like(self.smp_i)])
                self.smp_f = np.concatenate([self.smp_f, np.zeros_like(self.smp_f)])

    def finish(self) -> None:
        """End of the stream: the remaining wake-ups, then every message still in flight."""
        self.engine.finish()
        self.advance()
        self.engine.run_until(L.NEVER)

    def stop(self, reason: str = "stopped") -> None:
        """Kill switch / stale data: cancel resting orders and flatten now, then end the
        stream and let those requests reach the exchange (against the last book it had)."""
        self.halt_reason = reason
        while not _room(self.engine):
            self.engine.state.grow()
        halt_now(self.engine.state.S, self.dv)
        self.engine.finish()
        self.engine.run_until(L.NEVER)

    # ---- results -----------------------------------------------------------------------------
    def result(self) -> "EventBacktestResult":
        e = self.engine
        n = int(self.dv[DV_NSAMPLE])
        fills = e.fills()
        account = Account(self.config.execution.initial_capital)
        fi = e.state.fi[: int(e.state.cnt[L.C_NFILL])]
        ff = e.state.ff[: len(fi)]
        known = fi[:, L.FI_LOCAL_TS] != L.NEVER
        for k in np.flatnonzero(known):
            qty = float(ff[k, L.FF_QTY])
            account.apply_fill(int(fi[k, L.FI_LOCAL_TS]) // 1000, int(fi[k, L.FI_SIDE]), qty,
                               float(ff[k, L.FF_PRICE]) * qty, float(ff[k, L.FF_FEE]))
        halted = getattr(self, "halt_reason", None) or HALT_NAMES.get(int(self.dv[DV_HALT]))
        return EventBacktestResult(
            config=self.config, fills=fills, orders=e.order_log(),
            samples=pl.DataFrame({
                "ts_ns": self.smp_i[:n, 0], "equity": self.smp_f[:n, SM_EQUITY],
                "position": self.smp_f[:n, SM_POS], "mid": self.smp_f[:n, SM_MID],
                "signal": self.smp_f[:n, SM_SIGNAL]}),
            account=account, counts={**e.counts(), "wakeups": int(self.dv[DV_STEPS]),
                                     "fills_booked": int(self.dv[DV_BOOKED])},
            halted=halted, strategy_state={"int": self.si.copy(), "float": self.sf.copy()})


def _room(engine: EventEngine) -> bool:
    from trade_pipeline.trading.event.loop import order_arrays, room_for_orders

    return room_for_orders(*order_arrays(engine.state), 16)


@dataclass
class EventBacktestResult:
    config: EventBacktestConfig
    fills: pl.DataFrame
    orders: pl.DataFrame
    samples: pl.DataFrame
    account: Account
    counts: dict
    halted: str | None = None
    strategy_state: dict = field(default_factory=dict)

    @property
    def final_equity(self) -> float:
        mid = self.samples["mid"].drop_nans().drop_nulls()
        mark = float(mid[-1]) if len(mid) else float("nan")
        return self.account.equity(mark) if self.account.position else self.account.equity(0.0)


def run_event_backtest(events: np.ndarray, config: EventBacktestConfig | None = None, *,
                       signals: pl.DataFrame | None = None) -> EventBacktestResult:
    config = config or EventBacktestConfig()
    if events.dtype != EVENT_DTYPE:
        raise ValueError("events must be market.events.EVENT_DTYPE")
    run = EventRun(config, events, signals=signals)
    run.finish()
    return run.result()


__all__ = ["EventBacktestResult", "EventRun", "prepare_events", "run_event_backtest",
           "signals_from_predictions"]
