"""Backtest runs end to end: inputs -> `run_backtest` -> warehouse + MLflow.

Shared by the CLI (`trade-pipeline backtest`) and the `backtest_results` asset. A model's
backtest is out of sample by default (`models/oos.py`: rows of its training range are
refused unless `allow_in_sample`, and the result is then labelled in-sample), is fed the
features its training rows were computed with (`inputs.read_lake_features`, checked by
`contract.check_feature_source`), and trades the model's expected return with the
thresholds of its decision rule (or an explicit `[strategy] entry_threshold`).
"""

import uuid
from dataclasses import dataclass

import numpy as np
import polars as pl

from trade_pipeline.lake.warehouse import ensure_warehouse
from trade_pipeline.settings import Settings, SettingsError
from trade_pipeline.trading import inputs
from trade_pipeline.trading.backtest import BacktestResult, run_backtest
from trade_pipeline.trading.engine import TradingConfig
from trade_pipeline.trading.store import _json_safe, predictions_frame, write_run


def new_run_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


@dataclass
class RecordedBacktest:
    run_id: str
    result: BacktestResult
    model: str
    written: dict
    mlflow_run_id: str | None
    png: bytes | None


def record_backtest(
    settings: Settings,
    result: BacktestResult,
    *,
    model: str,
    predictions: pl.DataFrame | None = None,
    model_name: str | None = None,
    model_version: int | None = None,
    run_id: str | None = None,
    mlflow: bool = True,
    tracking_uri: str | None = None,
    artifact_uri: str | None = None,
) -> RecordedBacktest:
    """Write one backtest to the warehouse (result row, trades, predictions when a model
    made them) and to MLflow (metrics, config, equity/drawdown plot, trades)."""
    from trade_pipeline.trading.plots import equity_drawdown_png

    run_id = run_id or new_run_id("bt")
    preds = []
    if predictions is not None and model_name is not None and model_version is not None:
        sig = _row_signals(result, predictions)
        preds.append(predictions_frame(
            predictions["_ts_us"].to_numpy(), predictions["prediction"].to_numpy(), sig,
            exchange=settings.exchange, symbol=settings.symbol, model_name=model_name,
            model_version=int(model_version), source="backtest", run_id=run_id))
    labels = _labels(result)
    written = write_run(
        settings, run_id=run_id, source="backtest", model=model,
        start_us=int(result.ts_us[0]), end_us=int(result.ts_us[-1]),
        metrics={**result.metrics, **result.counts, **labels,
                 "provenance": result.provenance},
        config=result.config.as_dict(), trades=result.trades, predictions=preds)
    png = equity_drawdown_png(result.ts_us, result.equity, title=f"backtest {model} ({run_id})")
    mlflow_id = None
    if mlflow:
        from trade_pipeline.trading.tracking import log_run

        mlflow_id = log_run(
            settings, run_name=run_id, kind="backtest", params=result.config.as_dict(),
            metrics={**result.metrics, **result.counts}, pngs={"equity_drawdown.png": png},
            tables={"trades.csv": result.trades_frame()},
            tags={"model": model, "run_id": run_id, **{k: str(v) for k, v in labels.items()}},
            tracking_uri=tracking_uri, artifact_uri=artifact_uri)
    return RecordedBacktest(run_id, result, model, written, mlflow_id, png)


def _labels(result: BacktestResult) -> dict:
    """The run's labels for the warehouse and MLflow: in-sample or not, threshold source."""
    oos = result.provenance.get("out_of_sample") or {}
    thr = result.provenance.get("thresholds") or {}
    return {"in_sample": bool(oos.get("in_sample", False)),
            "threshold_source": thr.get("source", "signals")}


def _row_signals(result: BacktestResult, predictions: pl.DataFrame) -> np.ndarray:
    return predictions["_signal"].to_numpy() if "_signal" in predictions.columns else np.zeros(predictions.height, dtype=np.int8)


def backtest_model(settings: Settings, model_ref: str, snapshots: pl.DataFrame,
                   config: TradingConfig, *, features: pl.DataFrame | None = None,
                   feature_provenance: dict | None = None, allow_in_sample: bool = False):
    """Predictions of a registered model over the snapshot rows and the backtest on them.
    `features`: the rows' features with their provenance (`inputs.read_lake_features`);
    None computes them from `snapshots` with the model's parameters.
    Returns (result, predictions frame with _ts_us and _signal, loaded model)."""
    from trade_pipeline.models.contract import ServingError, check_feature_source
    from trade_pipeline.trading.backtest import align_signals, run_signals
    from trade_pipeline.trading.model_adapter import load_model
    from trade_pipeline.trading.strategy import resolve_thresholds

    model = load_model(settings, model_ref)
    snapshots = snapshots.sort("timestamp")
    check = model.oos_guard(allow_in_sample).check(
        snapshots.get_column("timestamp").dt.epoch("us").to_numpy())
    if features is not None:
        stamp = (feature_provenance or {}).get("stamp")
        try:
            check_feature_source(model.metadata, stamp)
        except ServingError as exc:
            raise SettingsError(f"cannot feed model {model_ref}: {exc}") from None
    thresholds = resolve_thresholds(config.strategy, config.execution, model.rule)
    preds = inputs.model_predictions(model, snapshots, features)
    signals, counts = align_signals(snapshots, preds, config, thresholds)
    result = run_signals(snapshots, signals, config)
    result.counts = counts
    result.provenance = {
        "model": f"{model.name}/{model.version}", "task": model.info.get("task"),
        "out_of_sample": check.as_dict(), "thresholds": thresholds.as_dict(),
        "features": {k: v for k, v in (feature_provenance or {
            "computed_from": "snapshots", "params": model.feature_params}).items()
            if k != "stamp"},
    }
    grid = snapshots.select(pl.col("timestamp").dt.epoch("us").alias("_ts_us"),
                            pl.Series("_signal", signals))
    preds = preds.with_columns(pl.col("timestamp").dt.epoch("us").alias("_ts_us")).join(
        grid, on="_ts_us", how="left")
    return result, preds, model


def backtest_command(
    settings: Settings, *, config: TradingConfig, model_ref: str | None, predictions_path: str | None,
    snapshots_path: str | None, start: str | None, end: str | None, store: bool = True,
    allow_in_sample: bool = False,
) -> dict:
    t0 = inputs.parse_bound(start, end=False)
    t1 = inputs.parse_bound(end, end=True)
    features = provenance = None
    if snapshots_path:
        snapshots = inputs.window(inputs.read_snapshots_file(snapshots_path), t0, t1)
    elif model_ref:
        # The lake: the model's own features (l2_features, or computed with its parameters);
        # they carry the book columns the engine fills against.
        from trade_pipeline.trading.model_adapter import load_model

        params = load_model(settings, model_ref).feature_params
        features, provenance = inputs.read_lake_features(settings, t0, t1, params)
        snapshots = features
    else:
        snapshots = inputs.read_lake_snapshots(settings, t0, t1)
        snapshots = inputs.window(snapshots, t0, t1)
    if snapshots.height == 0:
        raise SettingsError("no snapshot rows in the requested window")
    if model_ref:
        result, preds, model = backtest_model(settings, model_ref, snapshots, config,
                                              features=features, feature_provenance=provenance,
                                              allow_in_sample=allow_in_sample)
        label, name, version = model_ref, model.name, model.version
    else:
        preds = inputs.read_predictions_file(predictions_path)
        result = run_backtest(snapshots, preds, config)
        label, name, version, preds = f"file:{predictions_path}", None, None, None
    run_id = None
    if store:
        ensure_warehouse(settings)
        rec = record_backtest(settings, result, model=label, predictions=preds,
                              model_name=name, model_version=version)
        run_id = rec.run_id
    out = result.to_dict()
    out["run_id"] = run_id
    out["model"] = label
    return _json_safe(out)
