"""A GLFT market maker with inventory skew (Guéant, Lehalle, Fernandez-Tapia), its volatility
and order-arrival parameters estimated from the data as it runs.

The rule is hftbacktest's GLFT tutorial ("GLFT Market Making Model and Grid Trading"),
kept line for line so the benchmark can run the same strategy on both engines. In ticks, at
each wake-up (every `interval` of the run):

- arrival depth: how far from the previous mid the takers reached since the last wake-up
  (the highest buy / lowest sell trade price; with `arrival = "touch"`, for streams without
  trades, the best level that was taken out: a stand-in that also counts cancellations);
- every `refit_every` wake-ups, over the last `window` wake-ups: the arrival intensity
  lambda(d) of depth >= d is fitted as A exp(-k d) (log-linear regression over the first
  `fit_ticks` half-tick depths), and the volatility is the std of the mid changes scaled to
  one second;
- c1 = log(1 + xi delta / k) / (xi delta),
  c2 = sqrt(gamma / (2 A delta k) * (1 + xi delta / k) ** (k / (xi delta) + 1)), xi = gamma;
  half spread = (c1 + delta / 2 * c2 * vol) * adj1, skew = c2 * vol * adj2;
- reservation = mid - skew * q (q = position / order_qty), bid = min(round(reservation -
  half spread), best bid), ask = max(round(reservation + half spread), best ask);
- orders at other prices are cancelled; a post-only order of `order_qty` is placed at the bid
  (while position < max_position) and at the ask (while position > -max_position) unless one
  is there already. Order ids are the price in ticks (as in the tutorial).

Nothing is quoted until the first fit (`window` wake-ups of data): no look-ahead.
"""

from dataclasses import asdict, dataclass

import numba as nb
import numpy as np

from trade_pipeline.settings import SettingsError
from trade_pipeline.trading.event import view
from trade_pipeline.trading.event.layout import (
    A_LT_BUY,
    A_LT_SELL,
    A_TOUCH_BUY,
    A_TOUCH_SELL,
    BUY,
    C_HIGH,
    OI_ID,
    OI_USED,
    SELL,
)
from trade_pipeline.trading.event.local import clear_last_trades

ARRIVALS = ("trades", "touch")
INTENSITY_TICKS = 500

# parameters
P_GAMMA, P_DELTA, P_ADJ1, P_ADJ2, P_QTY, P_MAXPOS, P_WINDOW, P_REFIT, P_FIT_TICKS, P_ARRIVAL, \
    P_STEP_S = range(11)
# float state
F_MID, F_A, F_K, F_VOL, F_HALF, F_SKEW = range(6)
SF0 = 8  # then: arrival depths [window], mid changes [window], intensity buffer
# int state
S_T = 0
S_QUOTES = 1
S_CANCELS = 2


@dataclass(frozen=True)
class MarketMakerConfig:
    gamma: float = 0.05
    delta: float = 1.0
    adj1: float = 1.0
    adj2: float = 0.05
    order_qty: float = 0.001
    max_position: float = 0.02
    window: int = 6000  # wake-ups (10 min at 100 ms)
    refit_every: int = 50
    fit_ticks: int = 70
    arrival: str = "trades"

    def __post_init__(self) -> None:
        for name in ("gamma", "delta", "adj1", "order_qty", "max_position"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"market_maker.{name} must be positive, got {getattr(self, name)!r}")
        if self.adj2 < 0:
            raise SettingsError(f"market_maker.adj2 must be >= 0, got {self.adj2!r}")
        for name in ("window", "refit_every", "fit_ticks"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 3:
                raise SettingsError(f"market_maker.{name} must be an integer >= 3, got {v!r}")
        if self.arrival not in ARRIVALS:
            raise SettingsError(f"market_maker.arrival must be one of {ARRIVALS}, got {self.arrival!r}")

    def params(self, interval_s: float) -> np.ndarray:
        return np.array([self.gamma, self.delta, self.adj1, self.adj2, self.order_qty,
                         self.max_position, self.window, self.refit_every, self.fit_ticks,
                         ARRIVALS.index(self.arrival), interval_s], dtype=np.float64)

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        sf = np.full(SF0 + 2 * self.window + INTENSITY_TICKS, np.nan, dtype=np.float64)
        return np.zeros(4, dtype=np.int64), sf

    def as_dict(self) -> dict:
        return asdict(self)


@nb.njit(cache=True, error_model="numpy")
def measure_trading_intensity(order_arrival_depth, out):
    """Count, per half-tick depth, the wake-ups whose arrivals reached beyond it (tutorial)."""
    max_tick = 0
    for depth in order_arrival_depth:
        if not np.isfinite(depth):
            continue
        tick = round(depth / 0.5) - 1
        if tick < 0 or tick >= len(out):
            continue
        out[:tick] += 1
        max_tick = max(max_tick, tick)
    return out[:max_tick]


@nb.njit(cache=True, error_model="numpy")
def linear_regression(x, y):
    sx = np.sum(x)
    sy = np.sum(y)
    sx2 = np.sum(x**2)
    sxy = np.sum(x * y)
    w = len(x)
    slope = (w * sxy - sx * sy) / (w * sx2 - sx**2)
    intercept = (sy - slope * sx) / w
    return slope, intercept


@nb.njit(cache=True, error_model="numpy")
def compute_coeff(xi, gamma, delta, A, k):
    inv_k = np.divide(1, k)
    c1 = 1 / (xi * delta) * np.log(1 + xi * delta * inv_k)
    c2 = np.sqrt(np.divide(gamma, 2 * A * delta * k) * ((1 + xi * delta * inv_k) ** (k / (xi * delta) + 1)))
    return c1, c2


@nb.njit(cache=True, error_model="numpy")
def _fit(par, sf) -> None:
    w = int(par[P_WINDOW])
    depths = sf[SF0:SF0 + w]
    chg = sf[SF0 + w:SF0 + 2 * w]
    tmp = sf[SF0 + 2 * w:SF0 + 2 * w + INTENSITY_TICKS]
    tmp[:] = 0.0
    lam = measure_trading_intensity(depths, tmp)
    if len(lam) > 2:
        n = min(len(lam), int(par[P_FIT_TICKS]))
        seconds = w * par[P_STEP_S]
        lam = lam[:n] / seconds
        x = np.arange(n) + 0.5
        y = np.log(lam)
        k_, log_a = linear_regression(x, y)
        sf[F_A] = np.exp(log_a)
        sf[F_K] = -k_
    sf[F_VOL] = np.nanstd(chg) * np.sqrt(1.0 / par[P_STEP_S])


@nb.njit(cache=True, error_model="numpy")
def step(S, par, si, sf, now: int, signal: float, k0: int, k1: int) -> None:
    acc = S[18]
    tick_size = view.tick_size(S)
    w = int(par[P_WINDOW])
    t = si[S_T]
    j = t % w
    mid_prev = sf[F_MID]
    if not np.isnan(mid_prev):
        if par[P_ARRIVAL] == 0:
            hi, lo = acc[A_LT_BUY], acc[A_LT_SELL]
        else:
            hi, lo = acc[A_TOUCH_BUY], acc[A_TOUCH_SELL]
        depth = -np.inf
        if hi > -np.inf:
            depth = max(hi / tick_size - mid_prev, depth)
        if lo < np.inf:
            depth = max(mid_prev - lo / tick_size, depth)
        sf[SF0 + j] = depth
    else:
        sf[SF0 + j] = np.nan
    clear_last_trades(acc)
    bb = view.best_bid_tick(S)
    ba = view.best_ask_tick(S)
    if not view.book_ok(S):
        sf[F_MID] = np.nan
        sf[SF0 + w + j] = np.nan
        si[S_T] = t + 1
        return
    mid = (bb + ba) / 2.0
    sf[SF0 + w + j] = mid - mid_prev
    sf[F_MID] = mid
    if t % int(par[P_REFIT]) == 0 and t >= w - 1:
        _fit(par, sf)
    si[S_T] = t + 1
    gamma = par[P_GAMMA]
    delta = par[P_DELTA]
    c1, c2 = compute_coeff(gamma, gamma, delta, sf[F_A], sf[F_K])
    half_spread = (c1 + delta / 2 * c2 * sf[F_VOL]) * par[P_ADJ1]
    skew = c2 * sf[F_VOL] * par[P_ADJ2]
    sf[F_HALF] = half_spread
    sf[F_SKEW] = skew
    position = view.position(S)
    q = position / par[P_QTY]
    reservation = mid - skew * q
    bid_tick = min(np.round(reservation - half_spread), bb)
    ask_tick = max(np.round(reservation + half_spread), ba)
    # cancel orders that are not at the new prices
    oi = S[6]
    for slot in range(S[0][C_HIGH]):
        if oi[slot, OI_USED] == 1:
            oid = oi[slot, OI_ID]
            _exists, side, tick, _leaves, live = view.order_state(S, oid)
            if live and ((side == BUY and tick != bid_tick) or (side == SELL and tick != ask_tick)):
                view.cancel(S, oid)
                si[S_CANCELS] += 1
    if position < par[P_MAXPOS] and np.isfinite(bid_tick):
        oid = int(bid_tick)
        if not view.order_state(S, oid)[0] and view.buy_limit(S, oid, oid, par[P_QTY], True) >= 0:
            si[S_QUOTES] += 1
    if position > -par[P_MAXPOS] and np.isfinite(ask_tick):
        oid = int(ask_tick)
        if not view.order_state(S, oid)[0] and view.sell_limit(S, oid, oid, par[P_QTY], True) >= 0:
            si[S_QUOTES] += 1
