"""Performance metrics of an equity curve and its round trips.

- total_return: final equity / initial capital - 1.
- sharpe_1m: Sharpe ratio of 1-minute time-based returns (equity at the last row of each
  UTC minute that has data, return from one such minute to the next, the first measured
  from the initial capital), annualized with sqrt(365 * 24 * 60); None if fewer than two
  returns or zero variance (undefined, not zero).
- max_drawdown: largest peak-to-trough fall as a fraction of the running peak, one pass
  (O(n)); also in quote currency.
- hit_rate, profit_factor: over round trips (flat to flat, or reversal to reversal), net
  of fees; profit factor = gross profit / gross loss (None when there is no loss).
- turnover: traded notional / initial capital. fees_paid, funding_paid.
"""

import math

import numpy as np

from trade_pipeline.trading.accounting import Account

MINUTES_PER_YEAR = 365 * 24 * 60
MINUTE_US = 60_000_000


def max_drawdown(equity: np.ndarray) -> tuple[float, float]:
    """(fraction, amount) of the largest fall from a running peak; O(n)."""
    if len(equity) == 0:
        return 0.0, 0.0
    peak = np.maximum.accumulate(equity)
    fall = peak - equity
    frac = fall / peak
    return float(frac.max()), float(fall.max())


def minute_returns(ts_us: np.ndarray, equity: np.ndarray, initial: float) -> np.ndarray:
    if len(equity) == 0:
        return np.empty(0)
    minute = ts_us // MINUTE_US
    last_of_minute = np.flatnonzero(np.r_[minute[1:] != minute[:-1], True])
    closes = np.r_[initial, equity[last_of_minute]]
    return closes[1:] / closes[:-1] - 1.0


def sharpe_1m(ts_us: np.ndarray, equity: np.ndarray, initial: float) -> float | None:
    r = minute_returns(ts_us, equity, initial)
    if len(r) < 2:
        return None
    sd = float(np.std(r, ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return None
    return float(np.mean(r) / sd * math.sqrt(MINUTES_PER_YEAR))


def compute_metrics(ts_us: np.ndarray, equity: np.ndarray, account: Account, n_fills: int) -> dict:
    initial = account.initial_capital
    final = float(equity[-1]) if len(equity) else initial
    dd_frac, dd_amount = max_drawdown(np.asarray(equity, dtype=np.float64))
    trips = [t.pnl for t in account.trips]
    wins = [p for p in trips if p > 0]
    losses = [p for p in trips if p < 0]
    gross_profit, gross_loss = float(sum(wins)), float(-sum(losses))
    return {
        "rows": len(equity),
        "initial_capital": initial,
        "final_equity": final,
        "total_return": final / initial - 1.0,
        "pnl": final - initial,
        "realized_pnl": account.realized,
        "sharpe_1m": sharpe_1m(np.asarray(ts_us, dtype=np.int64), np.asarray(equity), initial),
        "max_drawdown": dd_frac,
        "max_drawdown_amount": dd_amount,
        "n_fills": n_fills,
        "n_round_trips": len(trips),
        "hit_rate": len(wins) / len(trips) if trips else None,
        "profit_factor": gross_profit / gross_loss if gross_loss > 0 else None,
        "gross_profit": gross_profit,
        "gross_loss": gross_loss,
        "turnover": account.traded_notional / initial,
        "traded_notional": account.traded_notional,
        "fees_paid": account.fees,
        "funding_paid": account.funding,
        "final_position": account.position,
    }
