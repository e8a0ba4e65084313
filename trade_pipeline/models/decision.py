"""The cost-aware taker decision rule: a model output -> an expected return -> a position.

One rule for training's scoring, the champion gate, walk-forward, the backtest, paper trading
and serving (`trading/strategy.py` applies it row by row):

1. **Expected return** in the strategy's units (a fraction of price over the horizon): a
   regression model's prediction as it is; a classifier's signed score P(up) - P(down)
   mapped through a `Calibration` fitted on rows of the training window only (the
   early-stopping slice: rows the trees were not fitted on): quantile bins of the score, the
   mean forward return per bin, made monotone (pool adjacent violators).
2. **Costs** come from `ExecutionConfig` only: a taker round trip pays the taker fee twice
   and crosses the spread once (enter at the ask, leave at the bid, or the reverse). The
   spread part is the mean relative spread of the fit window.
3. **Entry** when |expected return| > round-trip cost + margin (long or short), **exit** when
   the expected return no longer favours the position (crosses `exit_threshold`, 0), so a
   model that cannot beat its costs stays flat.

The rule (task, costs, thresholds, calibration) is stored with the model version
(`to_dict`), and serving refuses an execution config whose fee differs from the one the
threshold was priced with (`check_execution`).
"""

import bisect
import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.market.execution_config import (
    ExecutionConfig,
    config_from_mapping,
    read_toml,
)
from trade_pipeline.models.labels import parse_horizon

RULE_KIND = "taker_expected_return"
TASKS = ("regression", "classification")
CALIBRATION_BINS = 20
MIN_ROWS_PER_BIN = 50


class DecisionError(TradePipelineError, ValueError):
    """The decision rule cannot be built or does not fit the model / execution config."""


def load_execution(path: str | None) -> ExecutionConfig:
    """The execution part of a trading TOML (`--config exec.toml`: keys at the top level or
    under [execution]; a [strategy] section is the trading area's and ignored here)."""
    if not path:
        return ExecutionConfig()
    data = read_toml(path)
    section = data.get("execution", {})
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    return config_from_mapping(ExecutionConfig, {**top, **section}, "execution")


def round_trip_cost(exe: ExecutionConfig, rel_spread: np.ndarray | float):
    """A taker round trip as a fraction of price: two taker fees plus one spread."""
    return 2.0 * exe.taker_fee + rel_spread


def signed_score(raw: np.ndarray, task: str) -> np.ndarray:
    """The model's signed output: the predicted return, or P(up) - P(down) from a [n, 3]
    probability matrix (classes down, flat, up)."""
    raw = np.asarray(raw, dtype=np.float64)
    if task == "regression" or raw.ndim == 1:
        return raw
    return raw[:, 2] - raw[:, 0]


def _pool_adjacent_violators(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Non-decreasing least-squares fit of `values` (weighted), the classic PAVA."""
    blocks: list[list[float]] = []  # [value, weight, count]
    for v, w in zip(values.tolist(), weights.tolist(), strict=True):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([np.full(c, v) for v, _, c in blocks])


@dataclass(frozen=True)
class Calibration:
    """Score -> expected return: piecewise constant over score bins (upper edges)."""

    edges: tuple[float, ...]  # len(values) - 1 inner bin edges, ascending
    values: tuple[float, ...]  # expected return per bin, non-decreasing

    @classmethod
    def fit(cls, score: np.ndarray, realized: np.ndarray,
            bins: int = CALIBRATION_BINS) -> "Calibration":
        ok = np.isfinite(score) & np.isfinite(realized)
        score, realized = score[ok], realized[ok]
        if score.size < MIN_ROWS_PER_BIN:
            raise DecisionError(f"{score.size} rows cannot calibrate a classifier "
                                f"(need >= {MIN_ROWS_PER_BIN})")
        k = int(max(1, min(bins, score.size // MIN_ROWS_PER_BIN)))
        edges = np.unique(np.quantile(score, np.linspace(0, 1, k + 1)[1:-1]))
        while True:  # merge empty bins (ties) into a neighbour
            which = np.searchsorted(edges, score, side="right")
            counts = np.bincount(which, minlength=edges.size + 1)
            empty = np.flatnonzero(counts == 0)
            if empty.size == 0:
                break
            edges = np.delete(edges, min(int(empty[0]), edges.size - 1))
        sums = np.bincount(which, weights=realized, minlength=edges.size + 1)
        fitted = _pool_adjacent_violators(sums / counts, counts.astype(np.float64))
        return cls(tuple(float(e) for e in edges), tuple(float(v) for v in fitted))

    def __call__(self, score: np.ndarray) -> np.ndarray:
        score = np.asarray(score, dtype=np.float64)
        values = np.asarray(self.values)
        out = values[np.searchsorted(np.asarray(self.edges), score, side="right")]
        return np.where(np.isfinite(score), out, np.nan)

    def scalar(self, score: float) -> float:
        """One score (the live path): bisect over the edges, no numpy overhead."""
        if score != score:
            return math.nan
        return self.values[bisect.bisect_right(self.edges, score)]

    def to_dict(self) -> dict:
        return {"edges": list(self.edges), "values": list(self.values)}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        return cls(tuple(float(e) for e in d["edges"]), tuple(float(v) for v in d["values"]))


@dataclass(frozen=True)
class DecisionRule:
    task: str
    taker_fee: float  # per side, as in ExecutionConfig
    spread_cost: float  # mean relative spread of the fit window (crossed once per round trip)
    margin: float = 0.0  # extra expected return required beyond the cost
    calibration: Calibration | None = None  # classification only
    kind: str = RULE_KIND

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DecisionError(f"task must be one of {TASKS}, got {self.task!r}")
        if (self.task == "classification") != (self.calibration is not None):
            raise DecisionError("a classifier needs a calibration and a regression none")
        for name in ("taker_fee", "spread_cost", "margin"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)) or value < 0:
                raise DecisionError(f"{name} must be a finite number >= 0, got {value!r}")

    @property
    def round_trip_cost(self) -> float:
        return 2.0 * self.taker_fee + self.spread_cost

    @property
    def entry_threshold(self) -> float:
        return self.round_trip_cost + self.margin

    @property
    def exit_threshold(self) -> float:
        return 0.0

    def expected_return(self, output) -> np.ndarray:
        """Model output (LightGBM predict, or the signed score) -> expected return."""
        score = signed_score(output, self.task)
        return score if self.calibration is None else self.calibration(score)

    def check_execution(self, exe: ExecutionConfig) -> None:
        if not math.isclose(exe.taker_fee, self.taker_fee, rel_tol=1e-9, abs_tol=1e-12):
            raise DecisionError(
                f"the model's entry threshold was priced with a taker fee of "
                f"{self.taker_fee:.6g} per side; the execution config says {exe.taker_fee:.6g}: "
                "retrain with this config (or set [strategy] entry_threshold explicitly)")

    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "task": self.task, "taker_fee": self.taker_fee,
            "spread_cost": self.spread_cost, "margin": self.margin,
            "round_trip_cost": self.round_trip_cost, "entry_threshold": self.entry_threshold,
            "exit_threshold": self.exit_threshold,
            "calibration": self.calibration.to_dict() if self.calibration else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DecisionRule":
        if not isinstance(d, dict) or d.get("kind") != RULE_KIND:
            raise DecisionError(f"unknown decision rule {d!r:.200}: expected kind {RULE_KIND!r}")
        cal = d.get("calibration")
        rule = cls(task=d["task"], taker_fee=float(d["taker_fee"]),
                   spread_cost=float(d["spread_cost"]), margin=float(d.get("margin", 0.0)),
                   calibration=Calibration.from_dict(cal) if cal else None)
        stored = d.get("entry_threshold")
        if stored is not None and not math.isclose(float(stored), rule.entry_threshold,
                                                    rel_tol=1e-9, abs_tol=1e-15):
            raise DecisionError(f"stored entry threshold {stored} does not match its costs "
                                f"({rule.entry_threshold})")
        return rule


def fit_rule(task: str, exe: ExecutionConfig, rel_spread_fit: np.ndarray,
             calib_score: np.ndarray | None = None, calib_realized: np.ndarray | None = None,
             margin: float = 0.0) -> DecisionRule:
    """The rule of one model: costs from `exe` and the fit window's spread; a classifier's
    calibration from scores and realized returns of training-window rows."""
    spread = rel_spread_fit[np.isfinite(rel_spread_fit)]
    if spread.size == 0:
        raise DecisionError("no finite spread in the fit window: cannot price a round trip")
    calibration = None
    if task == "classification":
        if calib_score is None or calib_realized is None:
            raise DecisionError("a classifier needs calibration rows")
        calibration = Calibration.fit(np.asarray(calib_score), np.asarray(calib_realized))
    return DecisionRule(task=task, taker_fee=float(exe.taker_fee),
                        spread_cost=float(spread.mean()), margin=float(margin),
                        calibration=calibration)


def horizon_trades(
    ts_us: np.ndarray, expected: np.ndarray, realized: np.ndarray, rel_spread: np.ndarray,
    horizon: str | dt.timedelta, exe: ExecutionConfig, entry: float | np.ndarray,
) -> dict:
    """The rule scored the way the labels are measured (the models layer's view; the
    backtest engine is trading's): from the first row, enter sign(expected) when
    |expected| > entry, hold exactly one horizon (the realized forward return), pay the
    taker round trip at that row's spread, then decide again at the first row at or after
    the exit. Returns summed (not compounded) fractions of the position's notional."""
    h_us = int(parse_horizon(horizon) / dt.timedelta(microseconds=1))
    picks = []
    i, n = 0, ts_us.size
    while i < n:
        picks.append(i)
        i = int(np.searchsorted(ts_us, ts_us[i] + h_us, side="left"))
    idx = np.asarray(picks, dtype=np.int64)
    thr = entry[idx] if isinstance(entry, np.ndarray) else entry
    e = expected[idx]
    pos = np.where(np.isfinite(e) & (np.abs(e) > thr), np.sign(e), 0.0)
    traded = pos != 0
    gross = np.where(traded, pos * realized[idx], 0.0)
    net = gross - traded * round_trip_cost(exe, rel_spread[idx])
    return {
        "strategy_return": float(net.sum()),
        "strategy_gross_return": float(gross.sum()),
        "strategy_trades": int(traded.sum()),
        "strategy_opportunities": int(idx.size),
    }
