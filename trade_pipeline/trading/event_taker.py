"""The taker strategy on the event engine: it executes a target-position signal.

The signal (-1, 0, +1: the target position's sign) is produced by the strategy rule of
`strategy.py` from the model's predictions, as for the grid backtest; this module only turns
it into market orders, with the grid engine's sizing: target = clip(signal * order_qty,
-max_position, max_position); when no order of ours is working, a market order for the
difference (rounded down to lots). A NaN signal (no prediction yet) decides nothing.
"""

import math
from dataclasses import asdict, dataclass

import numba as nb
import numpy as np

from trade_pipeline.settings import SettingsError
from trade_pipeline.trading.event import view

S_NEXT_ID = 0


@dataclass(frozen=True)
class TakerConfig:
    order_qty: float = 0.01
    max_position: float = 0.01

    def __post_init__(self) -> None:
        for name in ("order_qty", "max_position"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"taker.{name} must be positive, got {getattr(self, name)!r}")

    def params(self) -> np.ndarray:
        return np.array([self.order_qty, self.max_position], dtype=np.float64)

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        si = np.zeros(4, dtype=np.int64)
        si[S_NEXT_ID] = 1
        return si, np.zeros(1, dtype=np.float64)

    def as_dict(self) -> dict:
        return asdict(self)


@nb.njit(cache=True)
def step(S, par, si, sf, now: int, signal: float, k0: int, k1: int) -> None:
    if math.isnan(signal) or view.any_order(S):
        return
    target = max(-par[1], min(par[1], signal * par[0]))
    delta = target - view.position(S)
    qty = view.floor_lots(S, abs(delta))
    if qty > 0.0:
        oid = si[S_NEXT_ID]
        si[S_NEXT_ID] += 1
        view.market(S, oid, 1 if delta > 0 else -1, qty)
