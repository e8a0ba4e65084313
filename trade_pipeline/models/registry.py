"""MLflow I/O: one experiment per symbol and horizon, runs, the model registry and aliases.

- Experiment `l2_<exchange>_<SYMBOL>_<horizon>` (e.g. `l2_bybit_BTCUSDT_5s`), its artifacts
  under `<artifact_uri>/<experiment>` (always explicit, never the working directory).
- Each training run logs: parameters, per-fold metrics (`cv_<metric>` with step = fold),
  tail and baseline metrics, the feature list with per-feature versions and the catalog hash
  (`contract.feature_spec`), the data range and partition keys, importance ranking, the model
  (LightGBM flavour, with signature, input example and pinned `pip_requirements`) and plots.
- The model is registered as `<base>_l2_<horizon>` (`btc_l2_5s` for BTCUSDT) for regression
  and `<base>_l2_<horizon>_cls` for classification: two tasks never share a name (their
  outputs mean different things). Each new version gets the alias `challenger`. Whether it
  becomes `champion` is `gate.py`'s decision.
- The version records its serving contract as metadata and tags: task, decision rule
  (`decision.py`: costs, entry threshold, a classifier's calibration), the execution config
  it was priced with, feature parameters and catalog hash, and its data range (the
  out-of-sample guard of backtests and paper trading reads it).
- Explainability: `importance` (gain, split, mean |SHAP|) as an MLflow table and a plot;
  with `--top-k`, the subset models' report (tail IC and inference time against k).
"""

import datetime as dt
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trade_pipeline.models import contract
from trade_pipeline.models.labels import horizon_name
from trade_pipeline.settings import check_exchange, check_symbol

CHALLENGER = "challenger"
CHAMPION = "champion"
TASK_SUFFIX = {"regression": "", "classification": "_cls"}
_QUOTES = ("USDT", "USDC", "USD", "BUSD", "PERP")


@dataclass(frozen=True)
class MlflowTarget:
    """Where MLflow lives: both URIs explicit."""

    tracking_uri: str
    artifact_uri: str

    @classmethod
    def from_settings(cls, settings) -> "MlflowTarget":
        if settings.mlflow_tracking_uri.startswith("sqlite:///"):
            Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        return cls(settings.mlflow_tracking_uri, settings.mlflow_artifact_uri)

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    @contextmanager
    def active(self):
        """Point MLflow's fluent API here for the block, then restore the previous state.

        `mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI process-wide, which
        `Settings.load` reads: left set, it would send every other home to this store."""
        import mlflow

        saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
            mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str
    experiment_id: str


def model_name(symbol: str, horizon: str, task: str = "regression") -> str:
    """BTCUSDT, 5s -> btc_l2_5s; a classifier -> btc_l2_5s_cls."""
    check_symbol(symbol)
    if task not in TASK_SUFFIX:
        raise contract.ServingError(f"unknown task {task!r}")
    base = symbol
    for quote in _QUOTES:
        if base.endswith(quote) and len(base) > len(quote):
            base = base[: -len(quote)]
            break
    return f"{base.lower()}_l2_{horizon_name(horizon)}{TASK_SUFFIX[task]}"


def task_of_name(name: str) -> str:
    """The task a registered name is for (the suffix rule of `model_name`)."""
    return "classification" if name.endswith(TASK_SUFFIX["classification"]) else "regression"


def experiment_name(exchange: str, symbol: str, horizon: str) -> str:
    return f"l2_{check_exchange(exchange)}_{check_symbol(symbol)}_{horizon_name(horizon)}"


def ensure_experiment(client, name: str, artifact_uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = f"{artifact_uri.rstrip('/')}/{name}"
    return client.create_experiment(name, artifact_location=location)


def _pip_requirements() -> list[str]:
    import lightgbm

    return [f"lightgbm=={lightgbm.__version__}", f"numpy=={np.__version__}"]


def _finite_metrics(prefix: str, metrics: dict) -> tuple[dict, list[str]]:
    """Numeric metrics MLflow can store; undefined ones (None, NaN) are listed, not faked."""
    ok, undefined = {}, []
    for key, value in metrics.items():
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            undefined.append(f"{prefix}{key}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            ok[f"{prefix}{key}"] = float(value)
    return ok, undefined


def _log_metric_groups(groups) -> None:
    """Log each (prefix, metrics) group's numeric values in the active run; undefined ones
    are named in the `undefined_metrics` tag instead of being faked."""
    import mlflow

    undefined: list[str] = []
    for prefix, metrics in groups:
        ok, missing = _finite_metrics(prefix, metrics)
        mlflow.log_metrics(ok)
        undefined += missing
    if undefined:
        mlflow.set_tag("undefined_metrics", ",".join(sorted(set(undefined))))


def _plots(result) -> dict:
    """importance, predicted vs realized, calibration (matplotlib Agg, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trade_pipeline.models import explain

    figs = {"plots/importance.png": explain.importance_figure(result.importance)}
    if result.top_k_report:
        figs["plots/top_k.png"] = explain.top_k_figure(result.top_k_report)

    pred, real = result.tail_predictions, result.tail_returns
    pick = np.random.default_rng(0).choice(pred.size, min(pred.size, 5000), replace=False)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(pred[pick], real[pick], s=3, alpha=0.3)
    ax.set_xlabel("predicted" if result.config.task == "regression" else "P(up) - P(down)")
    ax.set_ylabel(f"realized {result.horizon} return")
    ax.set_title("held-out tail: predicted vs realized")
    fig.tight_layout()
    figs["plots/predicted_vs_realized.png"] = fig

    edges = np.unique(np.quantile(pred, np.linspace(0, 1, 11)))
    bins = np.clip(np.searchsorted(edges, pred, side="right") - 1, 0, max(edges.size - 2, 0))
    xs = [pred[bins == b].mean() for b in np.unique(bins)]
    ys = [real[bins == b].mean() for b in np.unique(bins)]
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(xs, ys, marker="o")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("mean prediction (decile)")
    ax.set_ylabel("mean realized return")
    ax.set_title("calibration on the held-out tail")
    fig.tight_layout()
    figs["plots/calibration.png"] = fig
    return figs


def log_and_register(
    result, target: MlflowTarget, exchange: str, symbol: str, example: np.ndarray | None = None
) -> ModelRef:
    """Log one TrainResult as a run, register its model, give it the alias `challenger`."""
    import matplotlib.pyplot as plt
    import mlflow
    import mlflow.lightgbm
    import pandas as pd
    from mlflow.models import infer_signature

    client = target.client()
    exp_id = ensure_experiment(client, experiment_name(exchange, symbol, result.horizon),
                               target.artifact_uri)
    name = model_name(symbol, result.horizon, result.config.task)
    params = result.feature_stamp.get("params")
    spec = contract.feature_spec(result.features, params)
    if example is None:
        example = np.zeros((1, len(result.features)))
    example_df = pd.DataFrame(example[:5], columns=result.features)
    signature = infer_signature(example_df, result.booster.predict(example[:5]))
    range_tags = {
        "data_start": result.data_start.isoformat(), "data_end": result.data_end.isoformat(),
        "tail_start": result.tail_start.isoformat(), "tail_end": result.tail_end.isoformat(),
        "data_start_date": result.data_start.date().isoformat(),
        "data_end_date": result.data_end.date().isoformat(),
    }
    meta = {**spec, **result.version_metadata(), **range_tags}
    rule = result.rule.to_dict()
    contract_tags = {
        "task": result.config.task, "decision_rule": rule["kind"],
        "entry_threshold": repr(rule["entry_threshold"]),
        "round_trip_cost": repr(rule["round_trip_cost"]), "taker_fee": repr(rule["taker_fee"]),
        "feature_catalog_hash": spec["feature_catalog_hash"],
        "feature_params": json.dumps(params, sort_keys=True) if params else "defaults",
    }
    with target.active(), mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.set_tags({
            "exchange": exchange, "symbol": symbol, "horizon": result.horizon,
            "n_features": str(len(result.features)), **contract_tags, **range_tags,
        })
        mlflow.log_params({**result.params, "horizon": result.horizon,
                           "task": result.config.task, "trials": result.config.trials,
                           "n_folds": result.config.n_folds,
                           "tail_fraction": result.config.tail_fraction,
                           "dead_zone": result.dead_zone, "margin": result.config.margin,
                           **{f"execution.{k}": v for k, v in
                              result.config.execution.as_dict().items()}})
        for k, fold in enumerate(result.fold_metrics):
            ok, _ = _finite_metrics("cv_", fold)
            for key, value in ok.items():
                mlflow.log_metric(key, value, step=k)
        _log_metric_groups((("tail_", result.tail_metrics), ("baseline_", result.baseline_metrics)))
        mlflow.log_metrics({"cv_score": result.cv_score, "tail_score": result.score,
                            "rows": result.n_rows, "trees": result.booster.num_trees()})
        if result.top_k:
            ok, _ = _finite_metrics("top_k_", {k: v for k, v in result.top_k.items()
                                               if k != "features"})
            mlflow.log_metrics(ok)
            mlflow.log_dict(result.top_k, "top_k.json")
        mlflow.log_dict(spec, "features.json")
        mlflow.log_dict({"partitions": result.partitions, **range_tags}, "data.json")
        mlflow.log_dict({"importance": result.importance}, "importance.json")
        mlflow.log_table(pd.DataFrame(result.importance), "tables/importance.json")
        mlflow.log_dict(rule, "decision_rule.json")
        if result.top_k_report:
            mlflow.log_table(pd.DataFrame(result.top_k_report).drop(columns="features"),
                             "tables/top_k.json")
            mlflow.log_dict({"top_k_report": result.top_k_report}, "top_k_report.json")
        ic_tests = {name: t.as_dict() for name, t in (("tail", result.tail_ic_test),
                                                      ("baseline", result.baseline_ic_test))
                    if t is not None}
        mlflow.log_dict(ic_tests, "ic_tests.json")
        for name_, t in ic_tests.items():
            ok, _ = _finite_metrics(f"{name_}_ic_", {"ci_low": t["ci_low"], "ci_high": t["ci_high"],
                                                     "p_value": t["p_value"]})
            mlflow.log_metrics(ok)
        mlflow.log_dict({"trials": result.trials}, "optuna_trials.json")
        for path, fig in _plots(result).items():
            mlflow.log_figure(fig, path)
            plt.close(fig)
        info = mlflow.lightgbm.log_model(
            result.booster, name="model", signature=signature, input_example=example_df,
            pip_requirements=_pip_requirements(), metadata=meta, registered_model_name=name,
        )
        version = str(info.registered_model_version)
        client.set_model_version_tag(name, version, "horizon", result.horizon)
        client.set_model_version_tag(name, version, "tail_score", str(result.score))
        for key, value in {**contract_tags, **range_tags}.items():
            client.set_model_version_tag(name, version, key, value)
        client.set_registered_model_alias(name, CHALLENGER, version)
        return ModelRef(name=name, version=version, run_id=run.info.run_id, experiment_id=exp_id)


DISTRIBUTED_NOT_REGISTERED = (
    "trained across a Dask cluster: logged for comparison, not registered (the champion gate "
    "scores the tail on one machine; train the chosen setup with `train` to register it)")


def _split_ci(metrics: dict) -> dict:
    """An `ic_ci` pair as two metrics (MLflow stores numbers)."""
    flat = dict(metrics)
    if "ic_ci" in flat:
        low, high = flat.pop("ic_ci")
        flat.update({"ic_ci_low": low, "ic_ci_high": high})
    return flat


def log_distributed(result, target: MlflowTarget, exchange: str, symbol: str) -> str:
    """Log a `distributed.DistributedResult` as a run (metrics with their intervals, where
    the rows were, the model) in the horizon's experiment, without registering it; returns
    the run id."""
    import mlflow
    import mlflow.lightgbm

    client = target.client()
    exp_id = ensure_experiment(client, experiment_name(exchange, symbol, result.horizon),
                               target.artifact_uri)
    metrics = result.metrics()
    with target.active(), mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.set_tags({
            "exchange": exchange, "symbol": symbol, "horizon": result.horizon,
            "training": "distributed (lightgbm.dask)", "registered": "no",
            "why_not_registered": DISTRIBUTED_NOT_REGISTERED,
            "data_start": metrics["data_start"], "data_end": metrics["data_end"],
            "tail_start": metrics["tail_start"], "n_features": str(len(result.features)),
        })
        mlflow.log_params({"rounds": result.rounds, "stride": result.stride,
                           "workers": metrics["workers"], "horizon": result.horizon})
        _log_metric_groups((prefix, _split_ci(values)) for prefix, values in
                           (("tail_", result.tail_metrics), ("baseline_", result.baseline_metrics)))
        mlflow.log_metrics({"rows": result.rows, "tail_rows": result.tail_rows,
                            "max_worker_share": metrics["max_worker_share"],
                            "trees": result.booster.num_trees(),
                            "elapsed_s": result.elapsed_s})
        mlflow.log_dict({"rows_per_worker": result.rows_per_worker,
                         "days_per_worker": result.days_per_worker}, "placement.json")
        mlflow.log_dict({"features": result.features}, "features.json")
        info = mlflow.lightgbm.log_model(result.booster, name="model",
                                         pip_requirements=_pip_requirements())
        mlflow.set_tag("model_uri", info.model_uri)
        return run.info.run_id


def get_by_alias(client, name: str, alias: str):
    """The model version holding `alias`, or None if the alias (or model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def version_metadata(target: MlflowTarget, name: str, version: str) -> dict:
    """The metadata logged with a model version (feature spec, horizon, task, ranges)."""
    import mlflow.models

    with target.active():
        return dict(mlflow.models.get_model_info(f"models:/{name}/{version}").metadata or {})


def load_booster(target: MlflowTarget, name: str, version: str):
    """The LightGBM booster of a registered model version."""
    import mlflow.lightgbm

    with target.active():
        return mlflow.lightgbm.load_model(f"models:/{name}/{version}")


def champion_info(target: MlflowTarget, name: str) -> dict | None:
    """The champion's version, creation time and logged metadata (sensors use this)."""
    client = target.client()
    mv = get_by_alias(client, name, CHAMPION)
    if mv is None:
        return None
    meta = version_metadata(target, name, mv.version)
    tags = dict(client.get_registered_model(name).tags or {})
    return {
        "version": str(mv.version), "run_id": mv.run_id,
        "created": dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=dt.UTC),
        **meta,
        # walk-forward's recommendation for this name (trading/walkforward.py sets it)
        "recommended_retrain_every": tags.get("recommended_retrain_every"),
    }
