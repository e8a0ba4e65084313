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
from dataclasses import dataclass

from trade_pipeline.market.execution_config import (  # noqa: F401 - re-exported
    ORDER_TYPES,
    THIN_BOOK_POLICIES,
    ExecutionConfig,
    config_from_mapping,
    read_toml,
)


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
