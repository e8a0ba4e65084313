"""The per-row trading step shared by the backtest and paper trading.

`TradingEngine.on_row(ts_us, book, signal)` is called once per grid row, in time order, by
both: first a pending order that has arrived fills against this row's book (execution
model of `execution.py`), then the position is marked to the mid, the risk limits are
checked, and finally the row's signal may create a new order, which arrives
`latency_steps` grid steps later. Because both paths run exactly this code on the same
rows, they produce the same trades and PnL.
"""

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trade_pipeline.settings import SettingsError
from trade_pipeline.trading.accounting import Account
from trade_pipeline.trading.execution import (
    ExecutionConfig,
    config_from_mapping,
    fill_limit,
    fill_market,
    funding_times_crossed,
    read_toml,
)
from trade_pipeline.trading.strategy import StrategyConfig


@dataclass(frozen=True)
class TradingConfig:
    """Execution assumptions plus strategy/risk limits; loaded from one TOML file:
    execution keys at the top level (or under `[execution]`), strategy keys under
    `[strategy]`."""

    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)

    @classmethod
    def load(cls, path: str | Path | None) -> "TradingConfig":
        if path is None:
            return cls()
        data = read_toml(path)
        strategy = data.pop("strategy", {})
        execution = data.pop("execution", {})
        top = {k: v for k, v in data.items() if not isinstance(v, dict)}
        extra_sections = sorted(k for k, v in data.items() if isinstance(v, dict))
        if extra_sections:
            raise SettingsError(f"{path}: unknown sections {extra_sections}; known: execution, strategy")
        return cls(
            execution=config_from_mapping(ExecutionConfig, {**top, **execution}, "execution"),
            strategy=config_from_mapping(StrategyConfig, strategy, "strategy"),
        )

    def as_dict(self) -> dict:
        return {"execution": self.execution.as_dict(), "strategy": self.strategy.as_dict()}


@dataclass
class Order:
    decided_us: int
    arrival_us: int
    side: int  # +1 buy, -1 sell
    qty: float
    reason: str
    kind: str = "market"
    limit_price: float = math.nan
    placed: bool = False
    rows_resting: int = 0


@dataclass(frozen=True)
class Trade:
    decided_us: int
    fill_us: int
    side: int
    qty: float
    price: float  # volume-weighted over the levels walked
    notional: float
    fee: float
    liquidity: str
    levels: int
    unfilled: float
    position_after: float
    realized_pnl: float
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Book:
    """One grid row's book: per side, prices (NaN where no level) and sizes, best first."""

    bid_px: list
    bid_sz: list
    ask_px: list
    ask_sz: list

    @property
    def mid(self) -> float:
        return (self.bid_px[0] + self.ask_px[0]) / 2.0


class TradingEngine:
    def __init__(self, config: TradingConfig):
        self.config = config
        self.exe = config.execution
        self.strat = config.strategy
        self.account = Account(self.exe.initial_capital)
        self.pending: Order | None = None
        self.trades: list[Trade] = []
        self.halted: str | None = None
        self.peak = self.exe.initial_capital
        self.equity = self.exe.initial_capital
        self.last_us: int | None = None
        self.last_book: Book | None = None
        self.last_flat_us: int | None = None
        self.cancelled_orders = 0
        self.unfilled_qty = 0.0
        self.rows = 0
        self._quiet: tuple | None = None

    # ---- the step --------------------------------------------------------------------
    def on_row(self, ts_us: int, book: Book, signal: int) -> float:
        """Process one grid row; returns the equity marked at this row's mid."""
        if self.last_us is not None and ts_us <= self.last_us:
            raise ValueError(f"rows out of order: {ts_us} after {self.last_us}")
        mid = book.mid
        if self.exe.funding_rate_8h is not None and self.last_us is not None and self.account.position:
            n = funding_times_crossed(self.last_us, ts_us)
            if n:
                self.account.apply_funding(n * self.exe.funding_rate_8h * self.account.position * mid)
        self.last_us = ts_us
        self.last_book = book
        self.rows += 1
        if self.pending is not None:
            self._work_order(ts_us, book)
        self.equity = self.account.equity(mid)
        if self.equity > self.peak:
            self.peak = self.equity
        stop = self.strat.drawdown_stop
        if stop is not None and self.halted is None and self.equity <= self.peak * (1.0 - stop):
            self.halted = "drawdown_stop"
        if self.pending is None:
            self._decide(ts_us, signal)
        return self.equity

    def _decide(self, ts_us: int, signal: int) -> None:
        pos = self.account.position
        # Fast path: same signal, same position, nothing was to do last time -> nothing now.
        if self._quiet == (signal, pos, self.halted):
            return
        if self.halted is not None:
            target = 0.0
        else:
            target = self.strat.target_qty(signal)
            if self.strat.cooldown_steps and target != 0.0:
                if pos != 0.0 and (target > 0) != (pos > 0):
                    target = 0.0  # with a cooldown a reversal first goes flat
                elif pos == 0.0 and self.last_flat_us is not None and (
                    ts_us - self.last_flat_us
                    < self.strat.cooldown_steps * self.exe.cadence_ms * 1000
                ):
                    return
        delta = target - pos
        qty = self.exe.round_qty(abs(delta))
        if qty <= 0:
            self._quiet = (signal, pos, self.halted)
            return
        kind = "market" if self.halted is not None else self.exe.order_type
        reason = self.halted or "signal"
        self.pending = Order(ts_us, ts_us + self.exe.latency_us, 1 if delta > 0 else -1, qty, reason, kind)

    def _work_order(self, ts_us: int, book: Book) -> None:
        order = self.pending
        assert order is not None
        if ts_us < order.arrival_us:
            return
        if order.kind == "market":
            if order.side > 0:
                fill = fill_market(1, order.qty, book.ask_px, book.ask_sz, self.exe)
            else:
                fill = fill_market(-1, order.qty, book.bid_px, book.bid_sz, self.exe)
            self.pending = None
            if fill.unfilled > 0:
                self.unfilled_qty += fill.unfilled
            if fill.qty > 0:
                self._book_fill(order, ts_us, fill)
            else:
                self.cancelled_orders += 1
            return
        # Limit order: placed at our own best on arrival, fills on a later row that reaches it.
        if not order.placed:
            order.placed = True
            order.limit_price = float(book.bid_px[0] if order.side > 0 else book.ask_px[0])
            return
        order.rows_resting += 1
        reached = (
            book.ask_px[0] <= order.limit_price if order.side > 0 else book.bid_px[0] >= order.limit_price
        )
        if reached:
            self.pending = None
            self._book_fill(order, ts_us, fill_limit(order.qty, order.limit_price, self.exe))
        elif order.rows_resting >= self.exe.limit_timeout_steps:
            self.pending = None
            self.cancelled_orders += 1

    def _book_fill(self, order: Order, ts_us: int, fill) -> None:
        realized = self.account.apply_fill(ts_us, order.side, fill.qty, fill.notional, fill.fee)
        if self.account.position == 0.0:
            self.last_flat_us = ts_us
        self.trades.append(
            Trade(
                decided_us=order.decided_us,
                fill_us=ts_us,
                side=order.side,
                qty=fill.qty,
                price=fill.vwap,
                notional=fill.notional,
                fee=fill.fee,
                liquidity=fill.liquidity,
                levels=fill.levels,
                unfilled=fill.unfilled,
                position_after=self.account.position,
                realized_pnl=realized,
                reason=order.reason,
            )
        )

    # ---- out-of-band stops (paper trading: kill switch, stale data) ---------------------
    def flatten_now(self, reason: str) -> Trade | None:
        """Halt and close the position at once against the last book seen (taker); used when
        no further row will come (kill switch, stale data)."""
        self.halted = reason
        self.pending = None
        pos = self.account.position
        if pos == 0.0 or self.last_book is None or self.last_us is None:
            return None
        side = -1 if pos > 0 else 1
        qty = self.exe.round_qty(abs(pos))
        book = self.last_book
        px, sz = (book.ask_px, book.ask_sz) if side > 0 else (book.bid_px, book.bid_sz)
        fill = fill_market(side, qty, px, sz, self.exe)
        if fill.qty <= 0:
            return None
        order = Order(self.last_us, self.last_us, side, qty, reason)
        self._book_fill(order, self.last_us, fill)
        self.equity = self.account.equity(book.mid)
        return self.trades[-1]


# ---- books from snapshot rows (the same floats for batch frames and live rows) -------------
def _col_index() -> tuple[list[int], list[int], list[int], list[int]]:
    from trade_pipeline.market.schema import (
        ASK_PRICE,
        ASK_SIZE,
        BID_PRICE,
        BID_SIZE,
        SNAPSHOT_COLUMNS,
    )

    pos = {c: i for i, c in enumerate(SNAPSHOT_COLUMNS)}
    return ([pos[c] for c in BID_PRICE], [pos[c] for c in BID_SIZE],
            [pos[c] for c in ASK_PRICE], [pos[c] for c in ASK_SIZE])


_IDX = _col_index()
_BP = [f"bid_price_{i}" for i in range(1, 11)]
_BS = [f"bid_size_{i}" for i in range(1, 11)]
_AP = [f"ask_price_{i}" for i in range(1, 11)]
_AS = [f"ask_size_{i}" for i in range(1, 11)]


def _px(v) -> float:
    return math.nan if v is None else float(v)


def _sz(v) -> float:
    return 0.0 if v is None else float(v)


def book_from_row(row) -> Book:
    """A `Book` from one snapshot row: a dict keyed by column (the live sampler's rows) or
    a sequence in SNAPSHOT_COLUMNS order."""
    if isinstance(row, dict):
        return Book([_px(row[c]) for c in _BP], [_sz(row[c]) for c in _BS],
                    [_px(row[c]) for c in _AP], [_sz(row[c]) for c in _AS])
    bp, bs, ap, asz = _IDX
    return Book([_px(row[i]) for i in bp], [_sz(row[i]) for i in bs],
                [_px(row[i]) for i in ap], [_sz(row[i]) for i in asz])
