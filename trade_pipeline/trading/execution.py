"""Every execution assumption in one explicit, frozen config object, and the fill model.

Backtest and paper trading both fill orders with `fill_market` / `fill_limit` below, so
they cannot disagree about prices, fees or latency. Assumptions (see `ExecutionConfig`):

- Fees: Bybit linear perpetual defaults, taker 0.055 %, maker 0.02 %, on traded notional.
- Latency: an order decided on the grid row at time `t` reaches the exchange at
  `t + latency_steps * cadence`; it fills against the first grid row whose timestamp is at
  or after that time (on a gap-free grid: row `t + latency_steps`). At least one step.
- Market orders walk the book of the row where they arrive, level by level; never at mid.
  The snapshot grid holds 10 levels a side. If those hold less than the order
  (`thin_book`): "partial" fills what the 10 levels hold and cancels the rest (the trade
  records the unfilled quantity), "reject" fills nothing.
- Limit orders (`order_type = "limit"`) rest at our own best price of the arrival row
  (buy at the best bid, sell at the best ask) and fill completely at that price, with the
  maker fee, on the first later row whose opposite best price reaches it (buy: best ask
  <= our price); after `limit_timeout_steps` rows unfilled they are cancelled. This is a
  conservative queue-free model: no partial maker fills, no fill while the price only
  touches our side.
- Quantities are rounded down to `qty_step` (Bybit BTCUSDT: 0.001 BTC).
- Funding is off unless `funding_rate_8h` is set: then at 00:00, 08:00 and 16:00 UTC a
  position pays `rate * qty * mid` (longs pay a positive rate, shorts receive it).
"""

import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from trade_pipeline.settings import SettingsError

THIN_BOOK_POLICIES = ("partial", "reject")
ORDER_TYPES = ("market", "limit")


@dataclass(frozen=True)
class ExecutionConfig:
    taker_fee: float = 0.00055
    maker_fee: float = 0.0002
    latency_steps: int = 1
    cadence_ms: int = 100
    order_type: str = "market"
    limit_timeout_steps: int = 50
    thin_book: str = "partial"
    qty_step: float = 0.001
    initial_capital: float = 10_000.0
    funding_rate_8h: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.latency_steps, int) or self.latency_steps < 1:
            raise SettingsError(f"latency_steps must be an integer >= 1, got {self.latency_steps!r}")
        if self.cadence_ms <= 0:
            raise SettingsError(f"cadence_ms must be positive, got {self.cadence_ms!r}")
        for name in ("taker_fee", "maker_fee"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and -0.01 < value < 0.01):
                raise SettingsError(f"{name} must be a fraction of notional in (-0.01, 0.01), got {value!r}")
        if self.order_type not in ORDER_TYPES:
            raise SettingsError(f"order_type must be one of {ORDER_TYPES}, got {self.order_type!r}")
        if self.thin_book not in THIN_BOOK_POLICIES:
            raise SettingsError(f"thin_book must be one of {THIN_BOOK_POLICIES}, got {self.thin_book!r}")
        if not self.qty_step > 0:
            raise SettingsError(f"qty_step must be positive, got {self.qty_step!r}")
        if not self.initial_capital > 0:
            raise SettingsError(f"initial_capital must be positive, got {self.initial_capital!r}")
        if self.limit_timeout_steps < 1:
            raise SettingsError(f"limit_timeout_steps must be >= 1, got {self.limit_timeout_steps!r}")

    @property
    def latency_us(self) -> int:
        return self.latency_steps * self.cadence_ms * 1000

    def round_qty(self, qty: float) -> float:
        """Round a non-negative quantity down to the lot step (with a little float slack)."""
        lots = math.floor(qty / self.qty_step + 1e-9)
        return round(lots * self.qty_step, 12)

    def as_dict(self) -> dict:
        return asdict(self)


def config_from_mapping(cls, data: dict, section: str):
    """Build a frozen config dataclass from a TOML section; unknown keys are an error."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"[{section}]: unknown keys {unknown}; known: {sorted(known)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise SettingsError(f"[{section}]: {exc}") from None


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise SettingsError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: {exc}") from None


@dataclass(frozen=True)
class Fill:
    """The result of one order against one book: `qty` filled at `vwap` (total `notional`)."""

    qty: float
    notional: float
    fee: float
    levels: int
    unfilled: float
    liquidity: str  # "taker" | "maker"

    @property
    def vwap(self) -> float:
        return self.notional / self.qty if self.qty > 0 else math.nan


def fill_market(
    side: int, qty: float, prices, sizes, config: ExecutionConfig
) -> Fill:
    """Walk the opposite side of one book (`prices`/`sizes`: that side's 10 levels, best
    first; missing levels have NaN price) for a market order of `qty` (> 0), `side` +1 buy
    / -1 sell. Returns what filled; the rest follows `config.thin_book`."""
    remaining = qty
    notional = 0.0
    filled = 0.0
    levels = 0
    available = 0.0
    prices = [float(p) for p in prices]  # Python floats, whatever the row container
    sizes = [float(q) for q in sizes]
    for i in range(len(prices)):
        price = prices[i]
        size = sizes[i]
        if price != price or size <= 0:  # NaN price: no level (and no deeper ones)
            break
        available += size
    if available + 1e-12 < qty and config.thin_book == "reject":
        return Fill(0.0, 0.0, 0.0, 0, qty, "taker")
    for i in range(len(prices)):
        if remaining <= 1e-12:
            break
        price = prices[i]
        size = sizes[i]
        if price != price or size <= 0:
            break
        take = size if size < remaining else remaining
        notional += take * price
        filled += take
        remaining -= take
        levels += 1
    filled = round(filled, 12)
    unfilled = round(qty - filled, 12)
    return Fill(filled, notional, notional * config.taker_fee, levels, unfilled, "taker")


def fill_limit(qty: float, price: float, config: ExecutionConfig) -> Fill:
    """A resting limit order that the market reached: all of it at its own price, maker fee."""
    notional = qty * price
    return Fill(qty, notional, notional * config.maker_fee, 1, 0.0, "maker")


def funding_times_crossed(prev_us: int, now_us: int) -> int:
    """How many funding instants (every 8 h from 00:00 UTC) lie in (prev_us, now_us]."""
    period = 8 * 3600 * 1_000_000
    return max(0, now_us // period - prev_us // period)
