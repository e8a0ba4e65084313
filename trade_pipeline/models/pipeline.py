"""Train, register and gate in one step: what the CLI, the `l2_model` asset and the demo share."""

from dataclasses import dataclass

import polars as pl

from trade_pipeline.models import contract
from trade_pipeline.models.gate import DEFAULT_ALPHA, DEFAULT_MARGIN, GateDecision, champion_gate
from trade_pipeline.models.registry import (
    CHALLENGER,
    CHAMPION,
    MlflowTarget,
    ModelRef,
    get_by_alias,
    log_and_register,
)


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
    margin: float = DEFAULT_MARGIN, alpha: float = DEFAULT_ALPHA,
    partitions: list[str] | None = None, on_trial=None, settings=None,
    feature_stamp: dict | None = None, **overrides,
) -> Trained:
    """The whole step the CLI, the `l2_model` asset and the demo share: train (Optuna +
    purged CV), log + register as challenger, run the champion gate on the same frame
    (significance level `alpha`, costs from the training config's `ExecutionConfig`).
    With `settings`, the version's row and the current aliases go to the warehouse `models`
    table too (`warehouse_log`), after the gate so the row shows where `champion` ended up."""
    from trade_pipeline.models.training import train_model

    result = train_model(frame, config, on_trial=on_trial, partitions=partitions,
                         feature_stamp=feature_stamp, **overrides)
    return register_trained(result, frame, target, exchange, symbol, margin=margin,
                            alpha=alpha, settings=settings)


def register_trained(result, frame: pl.DataFrame, target: MlflowTarget, exchange: str,
                     symbol: str, *, margin: float = DEFAULT_MARGIN,
                     alpha: float = DEFAULT_ALPHA, settings=None, example=None) -> Trained:
    """The registry half of `train_and_register`, for a model already trained: log +
    register as challenger, gate on `frame` (costs from the training config's
    `ExecutionConfig`), mirror into the warehouse. (Split out so a model trained while the
    registry was down can be registered later: models/pending.py.)"""
    if example is None:
        example = frame.select(result.features).tail(5).cast(pl.Float64).to_numpy()
    ref = log_and_register(result, target, exchange, symbol, example)
    gate = champion_gate(target, ref.name, ref.version, frame, alpha=alpha, margin=margin,
                         execution=result.config.execution, seed=result.config.seed)
    if settings is not None:
        log_to_warehouse(settings, target, ref, result)
    return Trained(result, ref, gate)


def log_to_warehouse(settings, target: MlflowTarget, ref: ModelRef, result) -> None:
    """Mirror a registered version and the name's current MLflow aliases into `models`."""
    from trade_pipeline.models import warehouse_log

    client = target.client()
    champion = get_by_alias(client, ref.name, CHAMPION)
    challenger = get_by_alias(client, ref.name, CHALLENGER)
    spec = contract.feature_spec(result.features, result.feature_stamp.get("params"))
    warehouse_log.record_version(
        settings, name=ref.name, version=ref.version, horizon=result.horizon,
        run_id=ref.run_id,
        features_hash=warehouse_log.feature_hash(spec["features"], spec["feature_versions"]),
        metrics=result.metrics(), data_start=result.data_start, data_end=result.data_end,
        champion_version=champion.version if champion is not None else None,
        challenger_version=challenger.version if challenger is not None else None,
    )
