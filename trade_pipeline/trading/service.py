"""Backtest runs end to end: inputs -> `run_backtest` -> warehouse + MLflow.

Shared by the CLI (`trade-pipeline backtest`) and the `backtest_results` asset.
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
    written = write_run(
        settings, run_id=run_id, source="backtest", model=model,
        start_us=int(result.ts_us[0]), end_us=int(result.ts_us[-1]),
        metrics={**result.metrics, **result.counts}, config=result.config.as_dict(),
        trades=result.trades, predictions=preds)
    png = equity_drawdown_png(result.ts_us, result.equity, title=f"backtest {model} ({run_id})")
    mlflow_id = None
    if mlflow:
        from trade_pipeline.trading.tracking import log_run

        mlflow_id = log_run(
            settings, run_name=run_id, kind="backtest", params=result.config.as_dict(),
            metrics={**result.metrics, **result.counts}, pngs={"equity_drawdown.png": png},
            tables={"trades.csv": result.trades_frame()}, tags={"model": model, "run_id": run_id},
            tracking_uri=tracking_uri, artifact_uri=artifact_uri)
    return RecordedBacktest(run_id, result, model, written, mlflow_id, png)


def _row_signals(result: BacktestResult, predictions: pl.DataFrame) -> np.ndarray:
    return predictions["_signal"].to_numpy() if "_signal" in predictions.columns else np.zeros(predictions.height, dtype=np.int8)


def backtest_model(settings: Settings, model_ref: str, snapshots: pl.DataFrame, config: TradingConfig):
    """Predictions of a registered model over the snapshot rows and the backtest on them.
    Returns (result, predictions frame with _ts_us and _signal, loaded model)."""
    from trade_pipeline.trading.backtest import align_signals, run_signals
    from trade_pipeline.trading.model_adapter import load_model

    model = load_model(settings, model_ref)
    snapshots = snapshots.sort("timestamp")
    preds = inputs.model_predictions(model, snapshots)
    signals, counts = align_signals(snapshots, preds, config)
    result = run_signals(snapshots, signals, config)
    result.counts = counts
    grid = snapshots.select(pl.col("timestamp").dt.epoch("us").alias("_ts_us"),
                            pl.Series("_signal", signals))
    preds = preds.with_columns(pl.col("timestamp").dt.epoch("us").alias("_ts_us")).join(
        grid, on="_ts_us", how="left")
    return result, preds, model


def backtest_command(
    settings: Settings, *, config: TradingConfig, model_ref: str | None, predictions_path: str | None,
    snapshots_path: str | None, start: str | None, end: str | None, store: bool = True,
) -> dict:
    t0 = inputs.parse_bound(start, end=False)
    t1 = inputs.parse_bound(end, end=True)
    if snapshots_path:
        snapshots = inputs.window(inputs.read_snapshots_file(snapshots_path), t0, t1)
    else:
        snapshots = inputs.read_lake_snapshots(settings, t0, t1)
        snapshots = inputs.window(snapshots, t0, t1)
    if snapshots.height == 0:
        raise SettingsError("no snapshot rows in the requested window")
    if model_ref:
        result, preds, model = backtest_model(settings, model_ref, snapshots, config)
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
