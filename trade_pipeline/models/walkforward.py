"""Walk-forward evaluation: retrain on the last `train`, predict the next `test`, move by `step`.

The number a user should believe (qlib's rolling retraining, FreqAI's train/backtest
periods): every prediction comes from a model fitted strictly before it.

- Windows are anchored at the first row: window k trains on rows in
  `[t0 + k*step, t0 + k*step + train - embargo)` and predicts `[.. + train, .. + train + test)`.
  The embargo (>= the label horizon) purges the training rows whose label would reach into
  the test period, as in the CV. Windows with too few rows are skipped and reported.
- Each window's model is fitted by `training.fit_window` (an Optuna search on purged folds
  of its training rows when trials > 1, then the final model and its decision rule: fees from
  `ExecutionConfig`, a classifier's calibration from its own early-stopping rows).
- Stitched out-of-sample predictions: every row of every test period, with its window id,
  its score, its expected return and the window rule's thresholds (rows whose label is
  undefined, at session ends, are predicted and traded but not scored).
- Scores: pooled IC over all scored rows with a block-bootstrap interval
  (`significance.py`), per-window IC, and the sign(order-book imbalance) baseline on the
  same rows.
- IC decay: each window's model is also scored on the test periods 1..`max_age` steps
  later (every half-horizon-th row: the independent returns are what counts; the
  bootstrap blocks are sized in those rows). IC against model age with intervals; the recommended retraining interval is
  `(a + 1) * step` for the largest age `a` whose IC lower bound, at that age and every
  younger one, stays above `decay_fraction` x the fresh (age 0) IC. None when even fresh
  models are not reliably above that line.

Trading the stitched predictions through the backtest engine is the trading layer's part
(`trading/walkforward.py`).
"""

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.models import cv, significance
from trade_pipeline.models.decision import horizon_trades, signed_score
from trade_pipeline.models.training import (
    BASELINE_FEATURE,
    TrainConfig,
    fit_window,
    prepare,
)

_DURATION_RE = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_US = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000,
            "d": 86_400_000_000}
DECAY_REPS = 200  # bootstrap draws per age (the decay curve is descriptive)


class WalkForwardError(TradePipelineError, ValueError):
    """Walk-forward cannot run as asked; the message says why."""


def parse_duration(text: str | dt.timedelta) -> dt.timedelta:
    """'3h', '2d', '90m', '1h30m', '500ms' -> timedelta (strictly positive)."""
    if isinstance(text, dt.timedelta):
        value = text
    else:
        s = str(text).strip()
        parts = _DURATION_RE.findall(s)
        if not parts or "".join(n + u for n, u in parts) != s:
            raise WalkForwardError(f"invalid duration {text!r}: expected e.g. 30m, 3h, 2d, 1h30m")
        value = dt.timedelta(microseconds=sum(int(n) * _UNIT_US[u] for n, u in parts))
    if value <= dt.timedelta(0):
        raise WalkForwardError(f"duration must be positive, got {text!r}")
    return value


def duration_name(value: dt.timedelta) -> str:
    """The shortest spelling parse_duration reads back: 3h, 90m -> 1h30m, 2d."""
    us = value // dt.timedelta(microseconds=1)
    out = []
    for unit in ("d", "h", "m", "s", "ms"):
        n, us = divmod(us, _UNIT_US[unit])
        if n:
            out.append(f"{n}{unit}")
    return "".join(out) or "0s"


@dataclass(frozen=True)
class WalkForwardConfig:
    train: dt.timedelta
    test: dt.timedelta
    step: dt.timedelta | None = None  # None: the test length
    model: TrainConfig = field(default_factory=TrainConfig)
    max_age: int = 6  # test periods a model is also scored on (IC decay)
    decay_fraction: float = 0.5
    min_train_rows: int = 500
    min_test_rows: int = 50
    reps: int = 300  # bootstrap draws of the pooled out-of-sample tests

    def __post_init__(self) -> None:
        for name in ("train", "test"):
            if not isinstance(getattr(self, name), dt.timedelta):
                object.__setattr__(self, name, parse_duration(getattr(self, name)))
        if self.step is not None and not isinstance(self.step, dt.timedelta):
            object.__setattr__(self, "step", parse_duration(self.step))
        if self.max_age < 0:
            raise WalkForwardError(f"max_age must be >= 0, got {self.max_age}")
        if not 0 <= self.decay_fraction < 1:
            raise WalkForwardError(f"decay_fraction must be in [0, 1), got {self.decay_fraction}")
        emb = cv.resolve_embargo(self.model.horizon, self.model.embargo)
        if emb >= self.train:
            raise WalkForwardError(f"the training period {self.train} is not longer than the "
                                   f"embargo {emb}")

    @property
    def stride(self) -> dt.timedelta:
        return self.step or self.test

    def as_dict(self) -> dict:
        m = self.model
        return {"train": duration_name(self.train), "test": duration_name(self.test),
                "step": duration_name(self.stride), "horizon": m.horizon, "task": m.task,
                "trials": m.trials, "max_age": self.max_age,
                "decay_fraction": self.decay_fraction, "margin": m.margin,
                "execution": m.execution.as_dict()}


@dataclass(frozen=True)
class Window:
    id: int
    train_start_us: int
    test_start_us: int
    test_end_us: int  # exclusive
    train_rows: np.ndarray  # labelled rows, purged before the test period
    test_rows: np.ndarray  # every row of the test period


def _us(td: dt.timedelta) -> int:
    return td // dt.timedelta(microseconds=1)


def _dt(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))


def plan_windows(ts_us: np.ndarray, labelled: np.ndarray, config: WalkForwardConfig
                 ) -> tuple[list[Window], list[dict]]:
    """The windows over time-sorted rows (`labelled`: bool mask of defined labels) and the
    skipped ones with the reason."""
    if ts_us.size == 0:
        return [], []
    emb = _us(cv.resolve_embargo(config.model.horizon, config.model.embargo))
    train, test, step = _us(config.train), _us(config.test), _us(config.stride)
    windows, skipped = [], []
    k, t0, last = 0, int(ts_us[0]), int(ts_us[-1])
    while True:
        train_start = t0 + k * step
        test_start = train_start + train
        if test_start > last:
            break
        test_end = test_start + test
        lo, cut, hi, end = np.searchsorted(
            ts_us, [train_start, test_start - emb, test_start, test_end], side="left")
        train_rows = np.arange(lo, cut)[labelled[lo:cut]]
        test_rows = np.arange(hi, end)
        if train_rows.size < config.min_train_rows or test_rows.size < config.min_test_rows:
            skipped.append({"window": k, "test_start": _dt(test_start).isoformat(),
                            "train_rows": int(train_rows.size), "test_rows": int(test_rows.size),
                            "reason": "too few rows"})
        else:
            windows.append(Window(k, train_start, test_start, test_end, train_rows, test_rows))
        k += 1
    return windows, skipped


@dataclass
class WalkForwardResult:
    config: WalkForwardConfig
    windows: list[dict]  # per window: bounds, rows, IC, thresholds, trees, seconds
    skipped: list[dict]
    predictions: pl.DataFrame  # stitched: timestamp, window_id, score, expected_return, ...
    oos: significance.ICTest
    baseline: significance.ICTest | None
    decay: list[dict]  # per age: windows, rows, ic, ci_low, ci_high
    recommended_retrain_every: dt.timedelta | None
    horizon_strategy: dict  # decision.horizon_trades of the stitched rows (models' view)
    timings: dict = field(default_factory=dict)
    # the baseline traded naively (always in the market, sign(imbalance)): what it costs
    baseline_strategy: dict | None = None

    def summary(self) -> dict:
        """The JSON-able figures of the models part (trading adds the engine's)."""
        rec = self.recommended_retrain_every
        return {
            "windows": len(self.windows), "windows_skipped": len(self.skipped),
            "oos_n": self.oos.n, "oos_ic": self.oos.ic, "oos_ic_ci": self.oos.ci,
            "oos_ic_p_value": self.oos.p_value,
            "oos_independent_returns": round(self.oos.n_independent, 1),
            "baseline_ic": self.baseline.ic if self.baseline else None,
            "baseline_ic_ci": self.baseline.ci if self.baseline else None,
            "recommended_retrain_every": duration_name(rec) if rec else None,
            "ic_decay": self.decay, "per_window": self.windows,
            "skipped": self.skipped[:20],  # the first ones; windows_skipped counts them all
            "horizon_strategy": self.horizon_strategy,
            "baseline_strategy": self.baseline_strategy, "config": self.config.as_dict(),
            "timings": self.timings,
        }


def _pooled_test(pairs: list[tuple[np.ndarray, np.ndarray]], horizon_rows: int, reps: int,
                 seed: int) -> significance.ICTest:
    score = np.concatenate([p[0] for p in pairs]) if pairs else np.empty(0)
    real = np.concatenate([p[1] for p in pairs]) if pairs else np.empty(0)
    return significance.ic_test(score, real, horizon_rows, reps=reps, seed=seed)


def recommend(decay: list[dict], fraction: float, step: dt.timedelta) -> dt.timedelta | None:
    """(a + 1) * step for the largest age a with every lower bound up to a above
    fraction x fresh IC; None when the fresh IC itself does not clear it."""
    if not decay or decay[0]["ic"] is None or decay[0]["ic"] <= 0:
        return None
    line = fraction * decay[0]["ic"]
    best = None
    for expected, row in enumerate(decay):
        if row["age"] != expected or row["ci_low"] is None or row["ci_low"] <= line:
            break  # an age never measured (skipped windows) ends the evidence too
        best = row["age"]
    return None if best is None else (best + 1) * step


WindowCallback = Callable[[int, int, dict], None]


def run_walkforward(frame: pl.DataFrame, config: WalkForwardConfig,
                    on_window: WindowCallback | None = None) -> WalkForwardResult:
    """Walk-forward over one exchange + symbol's feature rows (see the module docstring)."""
    started = time.perf_counter()
    m = config.model
    prep = prepare(frame, m.horizon, list(m.features) if m.features else None,
                   keep_unlabelled=True)
    labelled = np.isfinite(prep.returns)
    windows, skipped = plan_windows(prep.ts_us, labelled, config)
    if not windows:
        span = (f"{_dt(prep.ts_us[0])} .. {_dt(prep.ts_us[-1])}" if prep.ts_us.size
                else "no rows")
        raise WalkForwardError(
            f"no walk-forward window fits the data ({span}) with train {config.train} and test "
            f"{config.test}: need a longer range or shorter windows")
    h_rows = m.horizon_rows
    decay_stride = max(1, h_rows // 2)
    base_sig = (np.sign(prep.frame.get_column(BASELINE_FEATURE).cast(pl.Float64).to_numpy())
                if BASELINE_FEATURE in prep.frame.columns else None)
    ages: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(config.max_age + 1)]
    by_id = {w.id: w for w in windows}
    parts, per_window = [], []
    fit_s = predict_s = 0.0
    for i, w in enumerate(windows):
        w_started = t = time.perf_counter()
        fitted, _search = fit_window(prep, w.train_rows, replace(m, seed=m.seed + w.id))
        fit_s += time.perf_counter() - t
        t = time.perf_counter()
        raw = fitted.booster.predict(prep.x[w.test_rows], num_threads=m.num_threads)
        score = signed_score(raw, m.task)
        expected = fitted.rule.expected_return(raw)
        real = prep.returns[w.test_rows]
        ages[0].append((score, real))
        for age in range(1, config.max_age + 1):
            # Age in steps of clock time: the window `age` steps later, if it was not skipped.
            if w.id + age not in by_id:
                continue
            # Thinned to every `decay_stride`-th row: the decay curve needs the independent
            # returns (one per horizon), not every overlapping one.
            later = by_id[w.id + age].test_rows[::decay_stride]
            later_raw = fitted.booster.predict(prep.x[later], num_threads=m.num_threads)
            ages[age].append((signed_score(later_raw, m.task), prep.returns[later]))
        predict_s += time.perf_counter() - t
        ok = np.isfinite(score) & np.isfinite(real)
        ic = (significance.corr(score[ok], real[ok]) if ok.sum() >= significance.MIN_ROWS
              else None)
        trained_to = int(prep.ts_us[w.train_rows[-1]])
        info = {"window": w.id, "train_start": _dt(w.train_start_us).isoformat(),
                "test_start": _dt(w.test_start_us).isoformat(),
                "test_end": _dt(w.test_end_us).isoformat(),
                "trained_to": _dt(trained_to).isoformat(),
                "train_rows": int(w.train_rows.size), "test_rows": int(w.test_rows.size),
                "scored_rows": int(ok.sum()), "ic": ic, "trees": fitted.booster.num_trees(),
                "entry_threshold": fitted.rule.entry_threshold,
                "seconds": round(time.perf_counter() - w_started, 3)}
        per_window.append(info)
        parts.append(pl.DataFrame({
            "timestamp": pl.Series(prep.ts_us[w.test_rows], dtype=pl.Int64),
            "window_id": pl.Series(np.full(w.test_rows.size, w.id), dtype=pl.Int32),
            "trained_to": pl.Series(np.full(w.test_rows.size, trained_to), dtype=pl.Int64),
            "score": score, "expected_return": expected, "realized_return": real,
            "entry_threshold": np.full(w.test_rows.size, fitted.rule.entry_threshold),
            "exit_threshold": np.full(w.test_rows.size, fitted.rule.exit_threshold),
            "rel_spread": prep.rel_spread[w.test_rows],
            "baseline_signal": (base_sig[w.test_rows] if base_sig is not None
                                else np.full(w.test_rows.size, np.nan)),
        }))
        if on_window:
            on_window(i + 1, len(windows), info)
    t = time.perf_counter()
    preds = pl.concat(parts).with_columns(
        pl.col("timestamp", "trained_to").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    signals = {"model": preds["score"].to_numpy()}
    if base_sig is not None:
        signals["baseline"] = preds["baseline_signal"].to_numpy()
    tests, _ = significance.joint_tests(signals, preds["realized_return"].to_numpy(), h_rows,
                                        reps=config.reps, seed=m.seed)
    oos, base = tests["model"], tests.get("baseline")
    decay = []
    for age, pairs in enumerate(ages):
        if not pairs:
            continue
        test = oos if age == 0 else _pooled_test(pairs, max(1, h_rows // decay_stride),
                                                 DECAY_REPS, m.seed + age)
        decay.append({"age": age, "age_duration": duration_name((age + 1) * config.stride),
                      "windows": len(pairs), "rows": test.n, "ic": test.ic,
                      "ci_low": test.ci_low, "ci_high": test.ci_high})
    rec = recommend(decay, config.decay_fraction, config.stride)
    labelled_rows = preds.filter(pl.col("realized_return").is_not_nan())
    ts = labelled_rows["timestamp"].dt.epoch("us").to_numpy()
    strat = horizon_trades(ts, labelled_rows["expected_return"].to_numpy(),
                           labelled_rows["realized_return"].to_numpy(),
                           labelled_rows["rel_spread"].to_numpy(), m.horizon, m.execution,
                           labelled_rows["entry_threshold"].to_numpy())
    base_strat = horizon_trades(ts, np.nan_to_num(labelled_rows["baseline_signal"].to_numpy()),
                                labelled_rows["realized_return"].to_numpy(),
                                labelled_rows["rel_spread"].to_numpy(), m.horizon, m.execution,
                                0.0) if base_sig is not None else None
    stats_s = time.perf_counter() - t
    timings = {"fit_s": round(fit_s, 2), "predict_s": round(predict_s, 2),
               "statistics_s": round(stats_s, 2),
               "total_s": round(time.perf_counter() - started, 2)}
    return WalkForwardResult(config, per_window, skipped, preds, oos, base, decay, rec, strat,
                             timings, base_strat)
