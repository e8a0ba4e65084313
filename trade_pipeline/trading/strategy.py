"""From model predictions to a target position: thresholds, sizing and risk limits.

The signal is the sign of the target position (-1, 0, +1). `next_signal` is the one
per-step rule, used by the backtest (over an array) and by paper trading (one row at a
time), with hysteresis:

- prediction >= entry_threshold: long; <= -entry_threshold: short (from flat, or as a
  reversal);
- a long is closed when the prediction falls below exit_threshold, a short when it rises
  above -exit_threshold;
- a missing (NaN) prediction makes no new decision: the previous target stays.

Sizing: the target position is `signal * order_qty` (base currency), clipped to
`max_position`. Risk limits applied by the engine: `drawdown_stop` (fraction of peak
equity: flatten and stop trading) and `cooldown_steps` (grid steps after a position is
closed before a new one may open).
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from trade_pipeline.settings import SettingsError


@dataclass(frozen=True)
class StrategyConfig:
    entry_threshold: float = 0.0005
    exit_threshold: float = 0.0
    order_qty: float = 0.01
    max_position: float = 0.01
    drawdown_stop: float | None = 0.10
    cooldown_steps: int = 0

    def __post_init__(self) -> None:
        if not self.entry_threshold >= 0:
            raise SettingsError(f"entry_threshold must be >= 0, got {self.entry_threshold!r}")
        if not self.exit_threshold <= self.entry_threshold:
            raise SettingsError(
                f"exit_threshold ({self.exit_threshold}) must not exceed entry_threshold "
                f"({self.entry_threshold})"
            )
        if not self.order_qty > 0:
            raise SettingsError(f"order_qty must be positive, got {self.order_qty!r}")
        if not self.max_position > 0:
            raise SettingsError(f"max_position must be positive, got {self.max_position!r}")
        if self.drawdown_stop is not None and not 0 < self.drawdown_stop <= 1:
            raise SettingsError(f"drawdown_stop must be in (0, 1] or unset, got {self.drawdown_stop!r}")
        if not isinstance(self.cooldown_steps, int) or self.cooldown_steps < 0:
            raise SettingsError(f"cooldown_steps must be an integer >= 0, got {self.cooldown_steps!r}")

    def target_qty(self, signal: int) -> float:
        return max(-self.max_position, min(self.max_position, signal * self.order_qty))

    def as_dict(self) -> dict:
        return asdict(self)


def next_signal(prev: int, prediction: float, entry: float, exit_: float) -> int:
    """The target position sign after one prediction (see the module docstring)."""
    if prediction != prediction or math.isinf(prediction):
        return prev
    if (prediction >= entry and entry > 0) or (entry == 0 and prediction > 0):
        return 1
    if (prediction <= -entry and entry > 0) or (entry == 0 and prediction < 0):
        return -1
    if prev == 1 and prediction < exit_:
        return 0
    if prev == -1 and prediction > -exit_:
        return 0
    return prev


def signals_from_predictions(predictions, config: StrategyConfig) -> np.ndarray:
    """`next_signal` over a whole array of predictions (row order), starting flat."""
    out = np.zeros(len(predictions), dtype=np.int8)
    prev = 0
    entry, exit_ = config.entry_threshold, config.exit_threshold
    for i, p in enumerate(np.asarray(predictions, dtype=np.float64).tolist()):
        prev = next_signal(prev, p, entry, exit_)
        out[i] = prev
    return out
