"""The taker strategy: expected returns to a target position, thresholds, sizing, risk limits.

What is traded is an expected return over the model's horizon (`models/decision.py`: a
regression model's prediction, a classifier's calibrated score). The entry threshold is the
cost of a taker round trip plus a margin, so a model that cannot beat its costs stays flat:

- a model's own decision rule (recorded with its version: fees from `ExecutionConfig`,
  the spread of its fit window, its margin) gives the thresholds by default; the execution
  config must carry the fee the rule was priced with (serving refuses a mismatch);
- `[strategy] entry_threshold` overrides it explicitly (the result records the override);
- signals from a file with a `prediction` column and no model: two taker fees.

`next_signal` is the one per-step rule, used by the backtest (over an array) and by paper
trading (one row at a time), with hysteresis:

- prediction >= entry_threshold: long; <= -entry_threshold: short (from flat, or as a
  reversal);
- a long is closed when the prediction falls below exit_threshold, a short when it rises
  above -exit_threshold (default 0: when the expected move no longer favours it);
- a missing (NaN) prediction makes no new decision: the previous target stays.

Sizing: the target position is `signal * order_qty` (base currency), clipped to
`max_position`. Risk limits applied by the engine: `drawdown_stop` (fraction of peak
equity: flatten and stop trading) and `cooldown_steps` (grid steps after a position is
closed before a new one may open).
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from trade_pipeline.market.execution_config import ExecutionConfig
from trade_pipeline.settings import SettingsError

SOURCES = ("config", "model", "execution_config")


@dataclass(frozen=True)
class StrategyConfig:
    entry_threshold: float | None = None  # None: the model's decision rule (see above)
    exit_threshold: float | None = None  # None: 0 (or the model's rule)
    order_qty: float = 0.01
    max_position: float = 0.01
    drawdown_stop: float | None = 0.10
    cooldown_steps: int = 0

    def __post_init__(self) -> None:
        if self.entry_threshold is not None and not self.entry_threshold >= 0:
            raise SettingsError(f"entry_threshold must be >= 0, got {self.entry_threshold!r}")
        if self.exit_threshold is not None and self.entry_threshold is not None and \
                not self.exit_threshold <= self.entry_threshold:
            raise SettingsError(
                f"exit_threshold ({self.exit_threshold}) must not exceed entry_threshold "
                f"({self.entry_threshold})"
            )
        if self.exit_threshold is not None and self.entry_threshold is None:
            raise SettingsError("exit_threshold needs an explicit entry_threshold")
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


@dataclass(frozen=True)
class Thresholds:
    entry: float
    exit: float
    source: str  # one of SOURCES

    def as_dict(self) -> dict:
        return asdict(self)


def resolve_thresholds(strategy: StrategyConfig, execution: ExecutionConfig,
                       rule=None) -> Thresholds:
    """The thresholds a run trades with: the explicit config, else the model's decision rule
    (`models.decision.DecisionRule`, checked against `execution`'s fee), else two taker fees."""
    if strategy.entry_threshold is not None:
        exit_ = strategy.exit_threshold if strategy.exit_threshold is not None else 0.0
        return Thresholds(float(strategy.entry_threshold), float(exit_), "config")
    if rule is not None:
        from trade_pipeline.models.decision import DecisionError

        try:
            rule.check_execution(execution)
        except DecisionError as exc:
            raise SettingsError(str(exc)) from None
        return Thresholds(rule.entry_threshold, rule.exit_threshold, "model")
    return Thresholds(2.0 * execution.taker_fee, 0.0, "execution_config")


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


def signals_from_predictions(predictions, config: StrategyConfig | Thresholds) -> np.ndarray:
    """`next_signal` over a whole array of predictions (row order), starting flat."""
    if isinstance(config, StrategyConfig):
        config = resolve_thresholds(config, ExecutionConfig())
    out = np.zeros(len(predictions), dtype=np.int8)
    prev = 0
    entry, exit_ = config.entry, config.exit
    for i, p in enumerate(np.asarray(predictions, dtype=np.float64).tolist()):
        prev = next_signal(prev, p, entry, exit_)
        out[i] = prev
    return out
