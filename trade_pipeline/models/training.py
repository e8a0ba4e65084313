"""Training: Optuna TPE over LightGBM parameters, scored by purged walk-forward CV.

Flow (`train_model`):
1. Forward returns for the horizon (`labels.py`); rows whose label is null are dropped (never
   filled). Rows are sorted by time (one exchange + symbol per frame).
2. `cv.make_split`: held-out tail, and walk-forward folds over the rows before it, purged
   with an embargo >= the horizon.
3. Each Optuna trial trains one booster per fold: fitted on the fold's fit rows, early-stopped
   on its inner validation slice, scored on its test block. Every statistic (LightGBM's bin
   edges, the classification dead zone, the decision rule's spread cost and calibration)
   comes from training-window rows only.
4. The best parameters train the final model on the whole search region (early-stopped on its
   last slice); its decision rule (`decision.py`: costs from `ExecutionConfig`, a classifier's
   calibration from the early-stopping slice) is fitted there too. The tail, never seen by
   the search, gives the reported scores with block-bootstrap confidence intervals
   (`significance.py`), next to a naive baseline (the sign of `order_book_imbalance`).
5. Feature importance (gain, split, mean |SHAP|; `explain.py`); optional `top_k` retrains on
   the k features with the largest mean |SHAP| and reports, per k, the tail IC and the
   single-row inference time of the compiled model.

`fit_window` is the same fit (search only when trials > 1, then the final model and its
rule) on any training rows: walk-forward retrains with it.
"""

import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.market.execution_config import ExecutionConfig
from trade_pipeline.models import cv, explain, significance
from trade_pipeline.models.decision import DecisionRule, fit_rule, horizon_trades, signed_score
from trade_pipeline.models.labels import (
    DEFAULT_DEAD_ZONE_FACTOR,
    dead_zone,
    direction_labels,
    forward_returns,
    horizon_name,
    return_column,
)
from trade_pipeline.models.labels import horizon_rows as label_rows

TASKS = ("regression", "classification")
BASELINE_FEATURE = "order_book_imbalance"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# Absolute price levels are non-stationary (a model would learn "BTC was at 108k that day");
# the feature tables keep them, the default model inputs leave them out
# (docs/FEATURES_REFERENCE.md allows it, and the model records the columns it used). So are the spread divided by the mid: with the
# spread at one tick nearly all the time (BTCUSDT: 99.9 % of rows), their variation *is*
# 1 / price level, and trees split it into price bands. Measured on a pure random walk (400,000
# rows, one-tick spread): a model fed `spread_bps` learned spurious mean reversion and its
# held-out IC passed a 5 % test in 4 of 7 seeds (Dickey-Fuller-like bias of a unit-root
# predictor). The spread itself (`spread`, in price units: ticks) stays an input.
PRICE_LEVEL_FEATURES: frozenset[str] = frozenset(
    [f"{side}_price_{i}" for side in ("bid", "ask") for i in range(1, 11)]
    + ["mid_price", "microprice", "weighted_mid_price", "weighted_bid_price",
       "weighted_ask_price", "spread_bps", "bid_ask_spread_pct", "price_impact_1"]
)


class TrainingError(TradePipelineError, ValueError):
    """Training cannot run on this input; the message says why."""


@dataclass(frozen=True)
class TrainConfig:
    horizon: str = "5s"
    trials: int = 10
    task: str = "regression"
    n_folds: int = 3
    tail_fraction: float = 0.2
    inner_valid_fraction: float = 0.15
    embargo: dt.timedelta | None = None  # None: the horizon
    dead_zone_factor: float = DEFAULT_DEAD_ZONE_FACTOR
    max_boost_round: int = 300
    early_stopping_rounds: int = 20
    # One thread by default: LightGBM's OpenMP threads spin while waiting, and on a shared
    # 2-core machine two threads ran 2-8x slower than one (measured); raise it on a free box.
    num_threads: int = 1
    seed: int = 7
    # k of the top-k subset models: one int K (compares K/4, K/2 and K) or several.
    top_k: int | tuple[int, ...] | None = None
    features: tuple[str, ...] | None = None  # None: catalog minus price levels
    # The one cost model (fees, cadence): training's scoring, the gate, walk-forward, backtest.
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    margin: float = 0.0  # expected return required beyond the round-trip cost to trade
    min_rows: int = 50
    # Cap on the rows one booster is fitted on: evenly spaced rows of the fit window (time
    # order kept). 100 ms rows a few rows apart are near-duplicates, so thinning a day
    # (864,000 rows) to this many costs little signal and keeps a trial within budget.
    # None = every row.
    max_fit_rows: int | None = 150_000
    shap_rows: int = explain.SHAP_ROWS
    # Bootstrap draws of the held-out tail's descriptive intervals (the gate decides with
    # its own, more numerous draws).
    significance_reps: int = 200

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise TrainingError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.trials < 1:
            raise TrainingError(f"trials must be >= 1, got {self.trials}")
        if self.top_k is not None and min(self.top_ks or (0,)) < 1:
            raise TrainingError(f"top_k must be >= 1, got {self.top_k}")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise TrainingError(f"margin must be a finite number >= 0, got {self.margin}")
        horizon_name(self.horizon)  # validates

    @property
    def top_ks(self) -> tuple[int, ...]:
        if self.top_k is None:
            return ()
        if isinstance(self.top_k, int):
            k = self.top_k
            return tuple(sorted({max(1, k // 4), max(1, k // 2), k}))
        return tuple(sorted(set(int(k) for k in self.top_k)))

    @property
    def horizon_rows(self) -> int:
        """Grid rows one label spans (its overlap with the next labels)."""
        return label_rows(self.horizon, self.execution.cadence_ms)


@dataclass
class TrainResult:
    booster: object  # lightgbm.Booster, trimmed to its best iteration
    config: TrainConfig
    features: list[str]
    params: dict
    cv_score: float
    fold_metrics: list[dict]
    tail_metrics: dict
    baseline_metrics: dict
    importance: list[dict]  # [{feature, gain, split, shap}] sorted by gain, descending
    dead_zone: float | None  # classification: the zone fitted on the final fit rows
    rule: DecisionRule
    data_start: dt.datetime
    data_end: dt.datetime
    tail_start: dt.datetime
    tail_end: dt.datetime
    n_rows: int
    n_unlabelled: int
    tail_predictions: np.ndarray  # signed score (predicted return, or P(up) - P(down))
    tail_returns: np.ndarray
    tail_ic_test: significance.ICTest | None = None
    baseline_ic_test: significance.ICTest | None = None
    feature_stamp: dict = field(default_factory=dict)  # features/provenance.py
    top_k: dict | None = None  # the largest k's subset model (back-compatible summary)
    top_k_report: list[dict] = field(default_factory=list)  # one row per k, and the full model
    trials: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0
    partitions: list[str] = field(default_factory=list)

    @property
    def horizon(self) -> str:
        return horizon_name(self.config.horizon)

    @property
    def score(self) -> float:
        """The tail's IC (regression) or -log loss (classification)."""
        return tail_score(self.tail_metrics, self.config.task)

    def metrics(self) -> dict:
        """Flat, JSON-able figures (what `train --json` prints and MLflow logs)."""
        out = {
            "horizon": self.horizon, "task": self.config.task, "trials": self.config.trials,
            "rows": self.n_rows, "unlabelled_rows": self.n_unlabelled,
            "features": len(self.features), "cv_score": self.cv_score, "tail_score": self.score,
            "trees": self.booster.num_trees(),
            "data_start": self.data_start.isoformat(), "data_end": self.data_end.isoformat(),
            "tail_start": self.tail_start.isoformat(), "tail_end": self.tail_end.isoformat(),
            "elapsed_s": round(self.elapsed_s, 3),
        }
        out.update({f"tail_{k}": v for k, v in self.tail_metrics.items()})
        out.update({f"baseline_{k}": v for k, v in self.baseline_metrics.items()})
        for name, test in (("tail", self.tail_ic_test), ("baseline", self.baseline_ic_test)):
            if test is not None:
                out[f"{name}_ic_ci"] = test.ci
                out[f"{name}_ic_p_value"] = test.p_value
                out[f"{name}_independent_returns"] = round(test.n_independent, 1)
        for i, fm in enumerate(self.fold_metrics):
            out.update({f"fold{i}_{k}": v for k, v in fm.items()})
        out["top_features"] = [r["feature"] for r in self.importance[:10]]
        out["decision_rule"] = self.rule.kind
        out["decision_entry_threshold"] = self.rule.entry_threshold
        out["decision_round_trip_cost"] = self.rule.round_trip_cost
        out["feature_catalog_hash"] = self.feature_stamp.get("catalog_hash")
        if self.top_k:
            out.update({f"top_k_{k}": v for k, v in self.top_k.items() if k != "features"})
        if self.top_k_report:
            out["top_k_report"] = [{k: v for k, v in r.items() if k != "features"}
                                   for r in self.top_k_report]
        return out

    def version_metadata(self) -> dict:
        """What the registered version records beside the feature spec: task, decision rule,
        ranges, feature parameters (the serving contract reads these back)."""
        return {
            "horizon": self.horizon, "task": self.config.task, "dead_zone": self.dead_zone,
            "tail_score": self.score, "decision_rule": self.rule.to_dict(),
            "execution": self.config.execution.as_dict(),
            "feature_params": self.feature_stamp.get("params"),
            "feature_params_stamped": self.feature_stamp.get("stamped"),
            "data_start": self.data_start.isoformat(), "data_end": self.data_end.isoformat(),
            "tail_start": self.tail_start.isoformat(), "tail_end": self.tail_end.isoformat(),
            "top_features": [r["feature"] for r in self.importance[:10]],
            "partitions": self.partitions[:400],
        }


# ---- metrics ----------------------------------------------------------------------------

def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    """The IC: correlation about zero (`significance.corr`, see there why)."""
    return significance.corr(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None  # undefined (constant input), not 0
    return float(np.corrcoef(a, b)[0, 1])


def _rank(a: np.ndarray) -> np.ndarray:
    return pl.Series(a).rank("average").to_numpy()


def hit_rate(pred: np.ndarray, realized: np.ndarray) -> float | None:
    """Share of rows where sign(pred) == sign(realized), over rows where both are non-zero."""
    mask = (pred != 0) & (realized != 0)
    if not mask.any():
        return None
    return float(np.mean(np.sign(pred[mask]) == np.sign(realized[mask])))


def regression_metrics(pred: np.ndarray, realized: np.ndarray) -> dict:
    return {
        "ic": _corr(pred, realized),
        "rank_ic": _pearson(_rank(pred), _rank(realized)),
        "rmse": float(np.sqrt(np.mean((pred - realized) ** 2))),
        "hit_rate": hit_rate(pred, realized),
        "n": int(pred.size),
    }


def classification_metrics(proba: np.ndarray, classes: np.ndarray) -> dict:
    """`proba` [n, 3] for classes (down, flat, up) = 0, 1, 2."""
    from sklearn.metrics import balanced_accuracy_score, log_loss, roc_auc_score

    present = np.unique(classes)
    out = {
        "log_loss": float(log_loss(classes, proba, labels=[0, 1, 2])),
        "balanced_accuracy": float(balanced_accuracy_score(classes, proba.argmax(axis=1))),
        "n": int(classes.size),
    }
    # AUC needs every class in the sample: otherwise it is undefined (None), not a guess.
    out["auc"] = (
        float(roc_auc_score(classes, proba, multi_class="ovr", labels=[0, 1, 2]))
        if present.size == 3 else None
    )
    return out


def signal_of(pred: np.ndarray, task: str) -> np.ndarray:
    """Signed signal: the predicted return, or P(up) - P(down)."""
    return signed_score(pred, task)


def tail_score(metrics: dict, task: str) -> float:
    value = metrics.get("ic") if task == "regression" else metrics.get("log_loss")
    if value is None or not math.isfinite(value):
        return float("-inf")
    return float(value) if task == "regression" else -float(value)


# ---- data preparation --------------------------------------------------------------------

@dataclass
class Prepared:
    frame: pl.DataFrame  # labelled rows, time-sorted
    x: np.ndarray  # [n, features] (a dataset.FeatureMatrix), float32 or float64, NaN for null
    returns: np.ndarray
    ts_us: np.ndarray
    rel_spread: np.ndarray
    features: list[str]
    n_unlabelled: int

    def labelled_rows(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The rows (of `rows`, default all) whose label is defined."""
        rows = np.arange(self.returns.size) if rows is None else rows
        return rows[np.isfinite(self.returns[rows])]


def default_features(frame_columns) -> list[str]:
    from trade_pipeline.features.catalog import FEATURE_NAMES

    wanted = [n for n in FEATURE_NAMES if n not in PRICE_LEVEL_FEATURES]
    missing = [n for n in wanted if n not in frame_columns]  # [dataset] frames are pruned
    if missing:
        raise TrainingError(f"feature frame lacks {len(missing)} catalog features, e.g. {missing[:3]}")
    return wanted


def prepare(frame: pl.DataFrame, horizon: str, features: list[str] | None,
            keep_unlabelled: bool = False) -> Prepared:
    """Label the frame for `horizon`, drop unlabelled rows, sort by time, build the matrix.
    `keep_unlabelled`: keep every row (return NaN where the label is null; walk-forward
    predicts those rows too, and fits only on `labelled_rows()`)."""
    for col in ("timestamp", "session_id", "mid_price", "spread"):
        if col not in frame.columns:
            raise TrainingError(f"feature frame lacks column {col!r}")
    for col in ("exchange", "symbol"):
        if col in frame.columns and frame.get_column(col).n_unique() > 1:
            raise TrainingError(f"feature frame mixes several values of {col!r}; train one at a time")
    features = list(features) if features else default_features(frame.columns)
    unknown = [f for f in features if f not in frame.columns]
    if unknown:
        raise TrainingError(f"unknown feature(s) {unknown[:5]}")
    # [dataset] A frame streamed by models.dataset carries its labels (computed per session
    # at full resolution, before the stride) and only labelled, time-sorted rows: no copy.
    label = return_column(horizon)
    ret = frame.get_column(label) if label in frame.columns else forward_returns(frame, horizon)
    labelled = frame.with_columns(ret.alias("_ret"))
    if not keep_unlabelled and ret.null_count():
        labelled = labelled.filter(pl.col("_ret").is_not_null())
    if not labelled.get_column("timestamp").is_sorted():
        labelled = labelled.sort("timestamp", maintain_order=True)
    from trade_pipeline.models.dataset import FeatureMatrix

    return Prepared(
        frame=labelled,
        x=FeatureMatrix(labelled, features),  # [dataset] gathers rows on demand, no 2nd copy
        returns=labelled.get_column("_ret").cast(pl.Float64).fill_null(np.nan).to_numpy(),
        ts_us=labelled.get_column("timestamp").dt.epoch("us").to_numpy(),
        rel_spread=(labelled.get_column("spread") / labelled.get_column("mid_price")).to_numpy(),
        features=features,
        n_unlabelled=int(labelled.get_column("_ret").null_count()) if keep_unlabelled
        else frame.height - labelled.height,
    )


def _zone(prep: Prepared, rows: np.ndarray, factor: float) -> float:
    return dead_zone(prep.frame.select("spread", "mid_price")[rows], factor)  # [dataset] 2 cols


def _classes(returns: np.ndarray, zone: float) -> np.ndarray:
    return direction_labels(returns, zone).to_numpy().astype(np.int64) + 1  # 0 down, 1 flat, 2 up


# ---- LightGBM ----------------------------------------------------------------------------

def base_params(config: TrainConfig) -> dict:
    params = {
        "verbosity": -1, "num_threads": config.num_threads, "seed": config.seed,
        "deterministic": True, "force_col_wise": True, "max_bin": 63,
        "feature_pre_filter": False,
    }
    if config.task == "regression":
        params.update(objective="regression", metric="l2")
    else:
        params.update(objective="multiclass", num_class=3, metric="multi_logloss")
    return params


# The first trial: a sane default, so `--trials 1` is a real model, not a random draw.
# Consecutive 100 ms rows are strongly correlated, so row bagging loses little signal and
# keeps a trial on a full day (864,000 rows) within budget.
DEFAULT_SEARCH_POINT = {
    "learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 200,
    "feature_fraction": 0.7, "bagging_fraction": 0.4, "lambda_l2": 1.0,
}


def suggest_params(trial) -> dict:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 20, 2000, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.2, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 100.0, log=True),
    }


def _thin(rows: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` evenly spaced entries of `rows` (all of them if fewer)."""
    if rows.size <= limit:
        return rows
    return rows[np.linspace(0, rows.size - 1, limit).round().astype(np.int64)]


def fit_booster(
    prep: Prepared, fit: np.ndarray, valid: np.ndarray, params: dict, config: TrainConfig,
    columns: list[int] | None = None, zone: float | None = None,
):
    """Train on `fit`, early-stop on `valid`. Bin edges come from the fit rows only (the
    validation set reuses them via `reference`). Returns a booster trimmed to its best
    iteration."""
    import lightgbm as lgb

    if config.max_fit_rows is not None:
        fit, valid = _thin(fit, config.max_fit_rows), _thin(valid, config.max_fit_rows)
    cols = columns if columns is not None else list(range(len(prep.features)))
    names = [prep.features[c] for c in cols]
    from trade_pipeline.models.dataset import lgb_rows  # [dataset] chunked when large

    x_fit = lgb_rows(prep.x, fit, columns)
    x_val = lgb_rows(prep.x, valid, columns)
    if config.task == "regression":
        y_fit, y_val = prep.returns[fit], prep.returns[valid]
    else:
        y_fit, y_val = _classes(prep.returns[fit], zone), _classes(prep.returns[valid], zone)
    full = {**base_params(config), **params}
    if full.get("bagging_fraction", 1.0) < 1.0:
        full["bagging_freq"] = 1
    train_set = lgb.Dataset(x_fit, y_fit, feature_name=names, free_raw_data=True)
    valid_set = lgb.Dataset(x_val, y_val, reference=train_set)
    booster = lgb.train(
        full, train_set, num_boost_round=config.max_boost_round, valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def evaluate(
    booster, prep: Prepared, rows: np.ndarray, config: TrainConfig, zone: float | None,
    rule: DecisionRule | None = None, columns: list[int] | None = None,
) -> tuple[dict, np.ndarray]:
    from trade_pipeline.models.dataset import predict_rows  # [dataset] in row chunks

    pred = predict_rows(booster.predict, prep.x, rows, columns)
    return evaluate_predictions(pred, prep, rows, config, zone, rule), pred


def evaluate_predictions(
    pred: np.ndarray, prep: Prepared, rows: np.ndarray, config: TrainConfig, zone: float | None,
    rule: DecisionRule | None = None,
) -> dict:
    """IC and friends of a model output on `rows`; with a rule, the cost-aware strategy's
    return too (`decision.horizon_trades`, costs from `config.execution`)."""
    realized = prep.returns[rows]
    score = signed_score(pred, config.task)
    if config.task == "regression":
        metrics = regression_metrics(score, realized)
    else:
        metrics = classification_metrics(pred, _classes(realized, zone))
        # IC of the signed score P(up) - P(down): comparable with regression and the baseline
        metrics["ic"] = _corr(score, realized)
        metrics["rank_ic"] = _pearson(_rank(score), _rank(realized))
        metrics["hit_rate"] = hit_rate(score, realized)
    if rule is not None:
        metrics.update(horizon_trades(
            prep.ts_us[rows], rule.expected_return(pred), realized, prep.rel_spread[rows],
            config.horizon, config.execution, rule.entry_threshold,
        ))
    return metrics


def baseline_signal(prep: Prepared, rows: np.ndarray) -> np.ndarray | None:
    """The naive model's signal, sign(order_book_imbalance), NaN where the feature is null."""
    if BASELINE_FEATURE not in prep.frame.columns:
        return None
    obi = prep.frame[rows].get_column(BASELINE_FEATURE).cast(pl.Float64).to_numpy()
    return np.sign(obi)


def baseline_metrics(prep: Prepared, rows: np.ndarray, config: TrainConfig) -> dict:
    """The naive model on the same rows: sign(order_book_imbalance) as the direction,
    always in the market (it has no notion of cost)."""
    sig = baseline_signal(prep, rows)
    if sig is None:
        return {}
    # [dataset] gather one column, not every column of the tail's rows
    obi = prep.frame.get_column(BASELINE_FEATURE).gather(rows).cast(pl.Float64).to_numpy()
    realized = prep.returns[rows]
    ok = np.isfinite(obi)
    out = {
        "ic": _corr(obi[ok], realized[ok]),
        "sign_ic": _corr(sig[ok], realized[ok]),
        "hit_rate": hit_rate(sig[ok], realized[ok]),
        "n": int(ok.sum()),
    }
    out.update(horizon_trades(
        prep.ts_us[rows], np.where(ok, sig, 0.0), realized, prep.rel_spread[rows],
        config.horizon, config.execution, 0.0,
    ))
    return out


def _to_dt(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=int(us))


def to_us(when: dt.datetime) -> int:
    """Exact epoch microseconds of an aware (or UTC-naive) datetime."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when - EPOCH) // dt.timedelta(microseconds=1)


# ---- fitting -----------------------------------------------------------------------------

TrialCallback = Callable[[int, int, float | None, float | None], None]


@dataclass
class Fitted:
    """One trained model with everything fitted on its training window."""

    booster: object
    params: dict
    zone: float | None
    rule: DecisionRule
    fit: np.ndarray
    valid: np.ndarray


@dataclass
class Search:
    params: dict
    cv_score: float
    fold_metrics: list[dict]
    trials: list[dict]


def search_params(prep: Prepared, folds: list[cv.Fold], config: TrainConfig,
                  on_trial: TrialCallback | None = None) -> Search:
    """Optuna TPE over LightGBM parameters, each trial scored on the purged folds (the first
    trial is `DEFAULT_SEARCH_POINT`)."""
    import optuna

    zones = [
        _zone(prep, f.fit, config.dead_zone_factor) if config.task == "classification" else None
        for f in folds
    ]

    def objective(trial) -> float:
        params = suggest_params(trial)
        scores, fold_metrics = [], []
        for fold, zone in zip(folds, zones, strict=True):
            booster = fit_booster(prep, fold.fit, fold.valid, params, config, zone=zone)
            metrics, _ = evaluate(booster, prep, fold.test, config, zone)
            metrics["trees"] = booster.num_trees()
            fold_metrics.append(metrics)
            scores.append(tail_score(metrics, config.task))
        trial.set_user_attr("fold_metrics", fold_metrics)
        # A fold whose IC is undefined (the booster predicts a constant: it found nothing)
        # ranks like a fold with no information, i.e. IC 0, for the search only; the
        # reported fold metric stays undefined (None).
        if config.task == "regression":
            scores = [s if math.isfinite(s) else 0.0 for s in scores]
        return float(np.mean(scores)) if all(math.isfinite(s) for s in scores) else -1e9

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=config.seed)
    )
    study.enqueue_trial(DEFAULT_SEARCH_POINT)

    def _progress(study_, trial_) -> None:
        if on_trial:
            best = study_.best_value if study_.best_trial is not None else None
            on_trial(trial_.number + 1, config.trials, trial_.value, best)

    study.optimize(objective, n_trials=config.trials, callbacks=[_progress])
    best = study.best_trial
    return Search(
        params=dict(best.params), cv_score=float(best.value),
        fold_metrics=best.user_attrs["fold_metrics"],
        trials=[{"number": t.number, "value": t.value, "params": t.params} for t in study.trials],
    )


def fit_final(prep: Prepared, rows: np.ndarray, params: dict, config: TrainConfig,
              columns: list[int] | None = None) -> Fitted:
    """The model on `rows` (its last slice, after a purge, early-stops it) and its decision
    rule: the spread cost from the fit rows, a classifier's calibration from the
    early-stopping rows (scores the trees were not fitted on)."""
    fit, valid = cv.final_fit_valid(prep.ts_us, rows, config.horizon,
                                    config.inner_valid_fraction, config.embargo)
    zone = _zone(prep, fit, config.dead_zone_factor) if config.task == "classification" else None
    booster = fit_booster(prep, fit, valid, params, config, columns=columns, zone=zone)
    calib_score = calib_real = None
    if config.task == "classification":
        x = prep.x[np.ix_(valid, columns)] if columns is not None else prep.x[valid]
        calib_score = signed_score(booster.predict(x, num_threads=config.num_threads),
                                   config.task)
        calib_real = prep.returns[valid]
    rule = fit_rule(config.task, config.execution, prep.rel_spread[fit], calib_score,
                    calib_real, margin=config.margin)
    return Fitted(booster, params, zone, rule, fit, valid)


def fit_window(prep: Prepared, rows: np.ndarray, config: TrainConfig,
               on_trial: TrialCallback | None = None) -> tuple[Fitted, Search | None]:
    """Walk-forward's retrain: search on purged folds of `rows` when trials > 1 (one trial
    is the default point: no search, no folds to fit), then the final model on `rows`."""
    search = None
    params = dict(DEFAULT_SEARCH_POINT)
    if config.trials > 1:
        emb = cv.resolve_embargo(config.horizon, config.embargo)
        folds = cv.folds_over(prep.ts_us, rows, emb, config.n_folds,
                              config.inner_valid_fraction, config.min_rows)
        search = search_params(prep, folds, config, on_trial)
        params = search.params
    return fit_final(prep, rows, params, config), search


# ---- the entry point ---------------------------------------------------------------------

def train_model(
    features_frame: pl.DataFrame,
    config: TrainConfig | None = None,
    *,
    on_trial: TrialCallback | None = None,
    partitions: list[str] | None = None,
    feature_stamp: dict | None = None,
    **overrides,
) -> TrainResult:
    """Search, train and score one model. `overrides` set TrainConfig fields, e.g.
    `train_model(frame, trials=5, horizon="5s", top_k=20)`. `feature_stamp`: the
    parameters the features were computed with (`features.provenance`; None: the catalog
    defaults, recorded as unstamped).

    `on_trial(done, total, value, best)` is called after each Optuna trial (progress)."""
    from trade_pipeline.features.provenance import stamp_of

    config = config or TrainConfig()
    if overrides:
        config = replace(config, **overrides)
    started = time.perf_counter()
    prep = prepare(features_frame, config.horizon, list(config.features) if config.features else None)
    if prep.x.shape[0] == 0:
        raise TrainingError("no labelled rows: every session is shorter than the horizon")
    split = cv.make_split(
        prep.ts_us, config.horizon, n_folds=config.n_folds, tail_fraction=config.tail_fraction,
        inner_valid_fraction=config.inner_valid_fraction, embargo=config.embargo,
        min_rows=config.min_rows,
    )
    search = search_params(prep, split.folds, config, on_trial)
    final = fit_final(prep, split.search, search.params, config)
    tail_metrics, tail_pred = evaluate(final.booster, prep, split.tail, config, final.zone,
                                       final.rule)
    importance = explain.importance_table(final.booster, prep.x[final.valid], config.shap_rows)
    tail_sig = signed_score(tail_pred, config.task)
    tail_ret = prep.returns[split.tail]
    reps, hr = config.significance_reps, config.horizon_rows
    tail_test = significance.ic_test(tail_sig, tail_ret, hr, reps=reps, seed=config.seed)
    base_sig = baseline_signal(prep, split.tail)
    base_test = (significance.ic_test(base_sig, tail_ret, hr, reps=reps, seed=config.seed)
                 if base_sig is not None else None)
    top_k, report = (top_k_models(prep, split, final, tail_metrics, importance, config)
                     if config.top_ks else (None, []))

    ts = prep.ts_us
    stamp = feature_stamp or stamp_of(None) | {"stamped": False}
    return TrainResult(
        booster=final.booster, config=config, features=prep.features, params=search.params,
        cv_score=search.cv_score, fold_metrics=search.fold_metrics,
        tail_metrics=tail_metrics, baseline_metrics=baseline_metrics(prep, split.tail, config),
        importance=importance, dead_zone=final.zone, rule=final.rule,
        data_start=_to_dt(int(ts[0])), data_end=_to_dt(int(ts[-1])),
        tail_start=_to_dt(int(ts[split.tail[0]])), tail_end=_to_dt(int(ts[split.tail[-1]])),
        n_rows=int(ts.size), n_unlabelled=prep.n_unlabelled,
        tail_predictions=tail_sig, tail_returns=tail_ret,
        tail_ic_test=tail_test, baseline_ic_test=base_test, feature_stamp=stamp,
        top_k=top_k, top_k_report=report, trials=search.trials,
        elapsed_s=time.perf_counter() - started, partitions=list(partitions or []),
    )


def top_k_models(prep: Prepared, split: cv.Split, full: Fitted, full_metrics: dict,
                 importance: list[dict], config: TrainConfig) -> tuple[dict, list[dict]]:
    """Subset models on the k features with the largest mean |SHAP|, same parameters and
    rows as the full model; per k the tail IC and the compiled single-row inference time.
    Returns (summary of the largest k, the report with the full model last)."""
    ranked = explain.by_shap(importance)
    x_tail = prep.x[split.tail]
    report = []
    summary = None
    full_score = tail_score(full_metrics, config.task)
    for k in [k for k in config.top_ks if k < len(prep.features)] + [len(prep.features)]:
        if k == len(prep.features):
            booster, metrics, names = full.booster, full_metrics, list(prep.features)
            cols = list(range(len(prep.features)))
        else:
            names = ranked[:k]
            cols = [prep.features.index(f) for f in names]
            small = fit_final(prep, split.search, full.params, config, columns=cols)
            metrics, _ = evaluate(small.booster, prep, split.tail, config, small.zone,
                                  small.rule, columns=cols)
            booster = small.booster
        timing = explain.inference_us(booster, x_tail[:, cols])
        row = {"k": k, "features": names, "tail_ic": metrics.get("ic"),
               "tail_score": tail_score(metrics, config.task),
               "inference_p50_us": timing["p50_us"], "inference_p99_us": timing["p99_us"],
               "trees": booster.num_trees()}
        report.append(row)
        if k == max(config.top_ks) or (summary is None and k == len(prep.features)):
            summary = {"k": k, "features": names, "tail_score": row["tail_score"],
                       "score_diff_vs_full": row["tail_score"] - full_score,
                       **{f"tail_{m}": v for m, v in metrics.items()}}
    return summary, report


def importance_ranking(booster) -> list[dict]:
    names = booster.feature_name()
    gain = booster.feature_importance("gain")
    split = booster.feature_importance("split")
    rows = [
        {"feature": n, "gain": float(g), "split": int(s)}
        for n, g, s in zip(names, gain, split, strict=True)
    ]
    return sorted(rows, key=lambda r: (-r["gain"], -r["split"], r["feature"]))


# ---- the lake ----------------------------------------------------------------------------

def load_feature_frame(
    settings, start: str | None = None, end: str | None = None, *,
    horizon: str | None = None, stride: int | None = 1, features: list[str] | None = None,
    report: list | None = None,
) -> tuple[pl.DataFrame, list[str]]:
    """The `l2_features` rows of the settings' exchange + symbol with start <= date <= end
    (inclusive; None = open), in time order, and their partition keys.

    [dataset] Streamed a day at a time by `models.dataset.load_training_frame`: only the model
    features (float32) and the columns training needs; with `horizon`, labelled per session
    and thinned to every `stride`-th grid time (None: `dataset.auto_stride`, every row unless
    that exceeds the budget). Refused with the
    figures when it would not fit `settings.train_memory_gb`. `report`, if given, receives the
    `dataset.DatasetReport`."""
    from trade_pipeline.features.catalog import FEATURE_NAMES
    from trade_pipeline.models.dataset import load_training_frame

    wanted = list(features) if features else [
        n for n in FEATURE_NAMES if n not in PRICE_LEVEL_FEATURES]
    if BASELINE_FEATURE in FEATURE_NAMES and BASELINE_FEATURE not in wanted:
        wanted.append(BASELINE_FEATURE)
    frame, loaded = load_training_frame(settings, start, end, features=wanted, horizon=horizon,
                                        stride=stride)
    if report is not None:
        report.append(loaded)
    return frame, loaded.partitions


def feature_stamp_of_partitions(settings, partitions: list[str]) -> dict:
    """The provenance stamp shared by the `l2_features` partitions `partitions` (relative
    paths as `load_feature_frame` returns them); ValueError if they differ."""
    from trade_pipeline.features.provenance import combine, read_stamp

    root = settings.lake_dir.rstrip("/")
    return combine([read_stamp(f"{root}/{p}/part-0.parquet") for p in partitions])


def tail_frame(frame: pl.DataFrame, result_or_bounds) -> pl.DataFrame:
    """Rows of `frame` in a result's held-out tail [tail_start, tail_end] (for the gate)."""
    start, end = (
        (result_or_bounds.tail_start, result_or_bounds.tail_end)
        if isinstance(result_or_bounds, TrainResult) else result_or_bounds
    )
    return frame.filter(pl.col("timestamp").is_between(start, end, closed="both"))


def rows_between(prep: Prepared, bounds: tuple[dt.datetime, dt.datetime]) -> np.ndarray:
    """Indices of the prepared rows with bounds[0] <= time <= bounds[1] (µs, inclusive)."""
    lo, hi = to_us(bounds[0]), to_us(bounds[1])
    return np.flatnonzero((prep.ts_us >= lo) & (prep.ts_us <= hi))


def score_on_tail(
    predict: Callable[[np.ndarray], np.ndarray],
    model_features: list[str],
    frame: pl.DataFrame,
    bounds: tuple[dt.datetime, dt.datetime],
    config: TrainConfig,
    zone: float | None = None,
    rule: DecisionRule | None = None,
) -> dict:
    """Metrics of any model (`predict(x) -> LightGBM-style output`) on the rows of `frame`
    within `bounds`, labelled on the whole frame (so the tail's last labels still see the
    rows after it)."""
    prep = prepare(frame, config.horizon, model_features)
    rows = rows_between(prep, bounds)
    if rows.size == 0:
        raise TrainingError(f"no labelled rows between {bounds[0]} and {bounds[1]}")
    from trade_pipeline.models.dataset import predict_rows  # [dataset] in row chunks

    return evaluate_predictions(predict_rows(predict, prep.x, rows), prep, rows, config, zone,
                                rule)
