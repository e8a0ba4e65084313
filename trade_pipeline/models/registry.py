"""MLflow: one experiment per symbol and horizon, the model registry and the champion gate.

- Experiment `l2_<exchange>_<SYMBOL>_<horizon>` (e.g. `l2_bybit_BTCUSDT_5s`), its artifacts
  under `<artifact_uri>/<experiment>` (always explicit, never the working directory).
- Each training run logs: parameters, per-fold metrics (`cv_<metric>` with step = fold),
  tail and baseline metrics, the feature list with per-feature versions and the catalog hash,
  the data range and partition keys, importance ranking, the model (LightGBM flavour, with
  signature, input example and pinned `pip_requirements`) and three plots.
- The model is registered as `<base>_l2_<horizon>` (`btc_l2_5s` for BTCUSDT); each new version
  gets the alias `challenger`.
- `champion_gate` moves `champion` to the challenger only when the challenger's score on the
  challenger's held-out tail beats the champion's score on the same rows by `margin`
  (regression: IC; classification: -log loss). No champion yet, or a champion the serving
  check refuses (its features no longer match the catalog), lets the challenger through.
"""

import datetime as dt
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from trade_pipeline.models.labels import horizon_name
from trade_pipeline.settings import check_exchange, check_symbol

CHALLENGER = "challenger"
CHAMPION = "champion"
DEFAULT_MARGIN = 0.005
_QUOTES = ("USDT", "USDC", "USD", "BUSD", "PERP")


class RegistryError(RuntimeError):
    """A registry operation cannot be done as asked; the message says why."""


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


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    promoted: bool
    challenger_version: str
    champion_version: str | None
    challenger_score: float | None
    champion_score: float | None
    margin: float
    reason: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def model_name(symbol: str, horizon: str) -> str:
    """BTCUSDT, 5s -> btc_l2_5s."""
    check_symbol(symbol)
    base = symbol
    for quote in _QUOTES:
        if base.endswith(quote) and len(base) > len(quote):
            base = base[: -len(quote)]
            break
    return f"{base.lower()}_l2_{horizon_name(horizon)}"


def experiment_name(exchange: str, symbol: str, horizon: str) -> str:
    return f"l2_{check_exchange(exchange)}_{check_symbol(symbol)}_{horizon_name(horizon)}"


def feature_spec(features: list[str]) -> dict:
    """What serving checks: the feature list, each feature's catalog version, the hash."""
    from trade_pipeline.features.catalog import SPECS, catalog_hash

    unknown = [f for f in features if f not in SPECS]
    if unknown:
        raise RegistryError(f"features not in the catalog: {unknown[:5]}")
    return {
        "features": list(features),
        "feature_versions": {f: SPECS[f].version for f in features},
        "feature_catalog_hash": catalog_hash(),
    }


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


def _plots(result) -> dict:
    """importance, predicted vs realized, calibration (matplotlib Agg, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}
    top = result.importance[:20][::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh([r["feature"] for r in top], [r["gain"] for r in top])
    ax.set_title("feature importance (gain)")
    fig.tight_layout()
    figs["plots/importance.png"] = fig

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
    name = model_name(symbol, result.horizon)
    spec = feature_spec(result.features)
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
    meta = {
        **spec, "horizon": result.horizon, "task": result.config.task,
        "dead_zone": result.dead_zone, "tail_score": result.score, **range_tags,
        "top_features": [r["feature"] for r in result.importance[:10]],
        "partitions": result.partitions[:400],
    }
    with target.active(), mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.set_tags({
            "exchange": exchange, "symbol": symbol, "horizon": result.horizon,
            "task": result.config.task, "feature_catalog_hash": spec["feature_catalog_hash"],
            "n_features": str(len(result.features)), **range_tags,
        })
        mlflow.log_params({**result.params, "horizon": result.horizon,
                           "task": result.config.task, "trials": result.config.trials,
                           "n_folds": result.config.n_folds,
                           "tail_fraction": result.config.tail_fraction,
                           "dead_zone": result.dead_zone,
                           "fee_bps_per_side": result.config.costs.fee_bps_per_side})
        for k, fold in enumerate(result.fold_metrics):
            ok, _ = _finite_metrics("cv_", fold)
            for key, value in ok.items():
                mlflow.log_metric(key, value, step=k)
        undefined = []
        for prefix, metrics in (("tail_", result.tail_metrics),
                                ("baseline_", result.baseline_metrics)):
            ok, missing = _finite_metrics(prefix, metrics)
            mlflow.log_metrics(ok)
            undefined += missing
        mlflow.log_metrics({"cv_score": result.cv_score, "tail_score": result.score,
                            "rows": result.n_rows, "trees": result.booster.num_trees()})
        if result.top_k:
            ok, _ = _finite_metrics("top_k_", {k: v for k, v in result.top_k.items()
                                               if k != "features"})
            mlflow.log_metrics(ok)
            mlflow.log_dict(result.top_k, "top_k.json")
        if undefined:
            mlflow.set_tag("undefined_metrics", ",".join(sorted(set(undefined))))
        mlflow.log_dict(spec, "features.json")
        mlflow.log_dict({"partitions": result.partitions, **range_tags}, "data.json")
        mlflow.log_dict({"importance": result.importance}, "importance.json")
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
        for key, value in range_tags.items():
            client.set_model_version_tag(name, version, key, value)
        client.set_registered_model_alias(name, CHALLENGER, version)
        return ModelRef(name=name, version=version, run_id=run.info.run_id, experiment_id=exp_id)


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


def champion_gate(
    target: MlflowTarget, name: str, challenger_version: str, frame: pl.DataFrame,
    margin: float = DEFAULT_MARGIN, fee_bps_per_side: float | None = None,
) -> GateDecision:
    """Score challenger and champion on the challenger's tail rows of `frame`; move
    `champion` when the challenger wins by `margin`. `frame` must hold those rows (and the
    rows after them that their labels need): the training frame, or the same lake range."""
    from trade_pipeline.models import serving
    from trade_pipeline.models.training import Costs, TrainConfig, score_on_tail, tail_score

    client = target.client()
    challenger = client.get_model_version(name, str(challenger_version))
    meta = version_metadata(target, name, challenger.version)
    bounds = (dt.datetime.fromisoformat(meta["tail_start"]),
              dt.datetime.fromisoformat(meta["tail_end"]))
    costs = Costs() if fee_bps_per_side is None else Costs(fee_bps_per_side=fee_bps_per_side)
    config = TrainConfig(horizon=meta["horizon"], task=meta["task"], costs=costs)
    zone = meta.get("dead_zone")

    def score(version: str, features: list[str]) -> float:
        booster = load_booster(target, name, version)
        metrics = score_on_tail(booster.predict, features, frame, bounds, config, zone)
        return tail_score(metrics, config.task)

    champion = get_by_alias(client, name, CHAMPION)
    chal_score = score(challenger.version, meta["features"])

    def decide(passed: bool, champ_v, champ_score, reason: str) -> GateDecision:
        if passed:
            client.set_registered_model_alias(name, CHAMPION, challenger.version)
        client.set_model_version_tag(name, challenger.version, "gate",
                                     "promoted" if passed else "rejected")
        client.set_model_version_tag(name, challenger.version, "gate_reason", reason[:4000])
        return GateDecision(passed, passed, str(challenger.version), champ_v, chal_score,
                            champ_score, margin, reason)

    if champion is None:
        return decide(True, None, None, "no champion yet")
    if str(champion.version) == str(challenger.version):
        return decide(True, str(champion.version), chal_score, "challenger is the champion")
    champ_meta = version_metadata(target, name, champion.version)
    try:
        serving.check_feature_spec(champ_meta)
    except serving.ServingError as exc:
        return decide(True, str(champion.version), None,
                      f"champion v{champion.version} no longer serves: {exc}")
    champ_score = score(champion.version, champ_meta["features"])
    passed = bool(np.isfinite(chal_score) and chal_score >= champ_score + margin)
    reason = (
        f"challenger v{challenger.version} {chal_score:.6g} vs champion v{champion.version} "
        f"{champ_score:.6g} + margin {margin:g} on the same tail ({bounds[0]} .. {bounds[1]})"
    )
    return decide(passed, str(champion.version), champ_score, reason)


def champion_info(target: MlflowTarget, name: str) -> dict | None:
    """The champion's version, creation time and logged metadata (sensors use this)."""
    client = target.client()
    mv = get_by_alias(client, name, CHAMPION)
    if mv is None:
        return None
    meta = version_metadata(target, name, mv.version)
    return {
        "version": str(mv.version), "run_id": mv.run_id,
        "created": dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=dt.UTC),
        **meta,
    }


@dataclass(frozen=True)
class Trained:
    result: object  # training.TrainResult
    ref: ModelRef
    gate: GateDecision

    def metrics(self) -> dict:
        out = self.result.metrics()
        out["model"] = {"name": self.ref.name, "version": self.ref.version,
                        "run_id": self.ref.run_id, "experiment_id": self.ref.experiment_id,
                        "gate": self.gate.as_dict()}
        return out


def train_and_register(
    frame: pl.DataFrame, target: MlflowTarget, exchange: str, symbol: str, config=None, *,
    margin: float = DEFAULT_MARGIN, partitions: list[str] | None = None, on_trial=None,
    settings=None, **overrides,
) -> Trained:
    """The whole step the CLI, the `l2_model` asset and the demo share: train (Optuna +
    purged CV), log + register as challenger, run the champion gate on the same frame.
    With `settings`, the version's row and the current aliases go to the warehouse `models`
    table too (`warehouse_log`), after the gate so the row shows where `champion` ended up."""
    from trade_pipeline.models.training import train_model

    result = train_model(frame, config, on_trial=on_trial, partitions=partitions, **overrides)
    example = frame.select(result.features).tail(5).cast(pl.Float64).to_numpy()
    ref = log_and_register(result, target, exchange, symbol, example)
    gate = champion_gate(target, ref.name, ref.version, frame, margin=margin,
                         fee_bps_per_side=result.config.costs.fee_bps_per_side)
    if settings is not None:
        log_to_warehouse(settings, target, ref, result)
    return Trained(result, ref, gate)


def log_to_warehouse(settings, target: MlflowTarget, ref: ModelRef, result) -> None:
    """Mirror a registered version and the name's current MLflow aliases into `models`."""
    from trade_pipeline.models import warehouse_log

    client = target.client()
    champion = get_by_alias(client, ref.name, CHAMPION)
    challenger = get_by_alias(client, ref.name, CHALLENGER)
    spec = feature_spec(result.features)
    warehouse_log.record_version(
        settings, name=ref.name, version=ref.version, horizon=result.horizon,
        run_id=ref.run_id,
        features_hash=warehouse_log.feature_hash(spec["features"], spec["feature_versions"]),
        metrics=result.metrics(), data_start=result.data_start, data_end=result.data_end,
        champion_version=champion.version if champion is not None else None,
        challenger_version=challenger.version if challenger is not None else None,
    )
