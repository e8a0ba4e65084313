"""A model-driven maker: quote at the touch on the side the model favours, when it pays.

At each wake-up, with `pred` the model's latest expected return over its horizon (a
fraction; NaN before the first prediction):

- the favoured side is buy when pred > 0, sell when pred < 0 (none at 0 or NaN);
- quoting there, at our own best price, earns in expectation
  `edge = side * pred + half_spread - adverse_selection`, where half_spread =
  |mid - touch| / mid is the spread capture and adverse_selection the expected move of the
  mid against a maker fill (below); the quote stands only while edge - maker_fee >
  min_edge_bp (a negative maker fee, a rebate, helps);
- the quote is post-only (`GTX`: rejected if it would cross), `order_qty` in size, and never
  takes the position beyond +-`max_position` (the quantity shrinks to what fits, in lots);
- when the favoured side changes or the edge is gone the quote is cancelled; when the touch
  moves more than `requote_ticks` away from it (0: at all) it is replaced at the new touch
  (a replace at a new price goes to the back of the queue: that is the exchange's rule).
  A replace sets the quantity left whatever filled while it was on its way, so it is sized
  for the worst case, the whole quote filling unseen meanwhile: at most
  max_position - side * position - leaves; when that is less than a lot the quote is
  cancelled instead and posted afresh once the cancel is known.

Adverse selection is estimated from the strategy's own fills, online: `adverse_horizon_s`
after each fill, -side * (mid now - mid when the fill was learned) / that mid, averaged with
a prior of `adverse_prior_bp` worth `adverse_prior_weight` fills. Only the past is used.
"""

import math
from dataclasses import asdict, dataclass

import numba as nb
import numpy as np

from trade_pipeline.settings import SettingsError
from trade_pipeline.trading.event import view
from trade_pipeline.trading.event.layout import FF_QTY, FI_SIDE, P_MAKER_FEE

BP = 1e-4
PENDING = 256  # fills awaiting their adverse-selection measurement

# int state
S_NEXT_ID, S_BID, S_ASK, S_HEAD, S_COUNT, S_SKIPPED, S_QUOTES, S_CANCELS = range(8)
SI0 = 16  # due times of pending measurements from here
# float state
F_AS_SUM, F_AS_N, F_LAST_EDGE = range(3)
SF0 = 16  # (mid when learned, side) pairs of pending measurements from here


@dataclass(frozen=True)
class MakerConfig:
    order_qty: float = 0.01
    max_position: float = 0.05
    min_edge_bp: float = 0.0
    adverse_prior_bp: float = 1.0
    adverse_prior_weight: float = 20.0
    adverse_horizon_s: float = 5.0
    requote_ticks: int = 0

    def __post_init__(self) -> None:
        for name in ("order_qty", "max_position", "adverse_horizon_s"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"maker.{name} must be positive, got {getattr(self, name)!r}")
        if not isinstance(self.requote_ticks, int) or self.requote_ticks < 0:
            raise SettingsError(f"maker.requote_ticks must be an integer >= 0, got {self.requote_ticks!r}")
        if self.adverse_prior_weight < 0:
            raise SettingsError(f"maker.adverse_prior_weight must be >= 0, got {self.adverse_prior_weight!r}")

    def params(self) -> np.ndarray:
        return np.array([self.order_qty, self.max_position, self.min_edge_bp * BP,
                         self.adverse_prior_bp * BP, self.adverse_prior_weight,
                         self.adverse_horizon_s * 1e9, self.requote_ticks], dtype=np.float64)

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        si = np.zeros(SI0 + PENDING, dtype=np.int64)
        si[S_NEXT_ID] = 1
        return si, np.zeros(SF0 + 2 * PENDING, dtype=np.float64)

    def as_dict(self) -> dict:
        return asdict(self)


@nb.njit(cache=True)
def adverse_selection(par, sf) -> float:
    w = par[4]
    n = sf[F_AS_N]
    if w + n == 0.0:
        return 0.0
    return (par[3] * w + sf[F_AS_SUM]) / (w + n)


@nb.njit(cache=True)
def _measure(S, par, si, sf, now: int, k0: int, k1: int) -> None:
    mid = view.mid(S)
    # due measurements first (oldest first)
    while si[S_COUNT] > 0:
        h = si[S_HEAD]
        if si[SI0 + h] > now or math.isnan(mid):
            break
        m0 = sf[SF0 + 2 * h]
        side = sf[SF0 + 2 * h + 1]
        sf[F_AS_SUM] += -side * (mid - m0) / m0
        sf[F_AS_N] += 1.0
        si[S_HEAD] = (h + 1) % PENDING
        si[S_COUNT] -= 1
    if math.isnan(mid):
        return
    fi, ff = S[13], S[14]
    for k in range(k0, k1):
        if ff[k, FF_QTY] <= 0.0:
            continue
        if si[S_COUNT] == PENDING:
            si[S_SKIPPED] += 1
            continue
        j = (si[S_HEAD] + si[S_COUNT]) % PENDING
        si[SI0 + j] = now + int(par[5])
        sf[SF0 + 2 * j] = mid
        sf[SF0 + 2 * j + 1] = fi[k, FI_SIDE]
        si[S_COUNT] += 1


@nb.njit(cache=True)
def _drop(S, si, which: int) -> None:
    """Cancel our quote in slot `which` (S_BID / S_ASK) if it can be cancelled; forget it
    once the engine no longer knows it."""
    oid = si[which]
    if oid == 0:
        return
    exists, _side, _tick, _leaves, live = view.order_state(S, oid)
    if not exists:
        si[which] = 0
    elif live:
        view.cancel(S, oid)
        si[S_CANCELS] += 1


@nb.njit(cache=True)
def step(S, par, si, sf, now: int, signal: float, k0: int, k1: int) -> None:
    _measure(S, par, si, sf, now, k0, k1)
    # forget quotes the engine has finished with (filled, cancelled, expired)
    for which in (S_BID, S_ASK):
        if si[which] != 0 and not view.order_state(S, si[which])[0]:
            si[which] = 0
    want = 0
    tick = 0
    qty = 0.0
    room = 0.0
    mid = view.mid(S)
    if not math.isnan(signal) and signal != 0.0 and not math.isnan(mid):
        side = 1 if signal > 0 else -1
        tick = view.best_bid_tick(S) if side == 1 else view.best_ask_tick(S)
        half_spread = abs(mid - tick * view.tick_size(S)) / mid
        edge = side * signal + half_spread - adverse_selection(par, sf)
        sf[F_LAST_EDGE] = edge
        pos = view.position(S)
        room = par[1] - side * pos
        qty = view.floor_lots(S, min(par[0], room))
        if edge - S[1][P_MAKER_FEE] > par[2] and qty > 0.0:
            want = side
    # the side we do not want: cancel
    if want != 1:
        _drop(S, si, S_BID)
    if want != -1:
        _drop(S, si, S_ASK)
    if want == 0:
        return
    which = S_BID if want == 1 else S_ASK
    oid = si[which]
    if oid != 0:
        _exists, _side, cur_tick, leaves, live = view.order_state(S, oid)
        if live and (abs(cur_tick - tick) > par[6] or leaves > qty + 1e-12):
            # the touch moved (or the room shrank). Until the replace lands the order may
            # fill up to `leaves` unseen, and the replace then rests its qty on top: leave
            # room for both, or cancel and quote again once the cancel is known.
            safe = view.floor_lots(S, min(par[0], room - leaves))
            if safe > 0.0:
                view.replace(S, oid, tick, safe)
            else:
                _drop(S, si, which)
        return
    oid = si[S_NEXT_ID]
    si[S_NEXT_ID] += 1
    if want == 1:
        code = view.buy_limit(S, oid, tick, qty, True)
    else:
        code = view.sell_limit(S, oid, tick, qty, True)
    if code >= 0:
        si[which] = oid
        si[S_QUOTES] += 1
