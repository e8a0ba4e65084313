"""Dagster objects for the trading area: the `backtest_results` asset (the grid backtest of
the registered model) and `event_backtest_results` (a strategy on the day's raw book
changes, on the event engine): thin wrappers over trade_pipeline.trading."""

import base64
from typing import NamedTuple

import dagster as dg
from pydantic import Field

from trade_pipeline.defs.partitions import DAILY
from trade_pipeline.defs.resources import DUCKDB_POOL, MlflowResource, PipelineResource
from trade_pipeline.defs.warehouse import WAREHOUSE_READY

TRADE_COLUMNS = [
    ("decided_at", "timestamp[us, UTC]"), ("timestamp", "timestamp[us, UTC]"), ("side", "int8"),
    ("qty", "float64"), ("price", "float64"), ("notional", "float64"), ("fee", "float64"),
    ("liquidity", "string"), ("levels", "int32"), ("unfilled", "float64"),
    ("position_after", "float64"), ("realized_pnl", "float64"), ("reason", "string"),
]


class BacktestConfig(dg.Config):
    model: str = Field(default="", description="registered model NAME@ALIAS whose predictions are "
                       "traded (empty: the settings' model, TRADE_PIPELINE_MODEL)")
    exec_config: str = Field(default="", description="TOML file of execution assumptions and "
                                "strategy limits (empty: the defaults of ExecutionConfig/StrategyConfig)")


class _Outcome(NamedTuple):
    text: str
    empty_is_result: bool  # zero trades is the honest result, not a fault


def _outcome(metrics: dict, counts: dict, signal_rows: int) -> _Outcome:
    """What the backtest found, in words. No trade is a result when the model predicted rows
    and the cost-aware strategy never signalled (no prediction cleared the costs); no trade
    despite signals, or without predictions, is not (the row_count check warns)."""
    fills = int(metrics.get("n_fills", 0))
    if fills:
        return _Outcome(f"{fills} fills", False)
    if counts.get("rows_with_prediction", 0) == 0:
        return _Outcome("no trade: no grid row had a prediction", False)
    if signal_rows == 0:
        return _Outcome("no trade: no signal cleared the costs", True)
    return _Outcome(f"no trade although {signal_rows} rows signalled", False)


def _png_markdown(png: bytes) -> str:
    return f"![equity and drawdown](data:image/png;base64,{base64.b64encode(png).decode()})"


@dg.asset(
    partitions_def=DAILY,
    deps=["l2_model", "l2_features", "l2_snapshots", WAREHOUSE_READY],
    pool=DUCKDB_POOL,
    group_name="trading",
    kinds={"python", "duckdb", "mlflow"},
    description="Backtest of the registered model on one day of the snapshot grid: trades, "
    "equity curve and metrics (warehouse: backtest_results, trades, predictions; MLflow run "
    "with the equity/drawdown plot).",
)
def backtest_results(
    context: dg.AssetExecutionContext,
    config: BacktestConfig,
    pipeline: PipelineResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    from trade_pipeline.lake.warehouse import ensure_warehouse
    from trade_pipeline.storage.layout import PartitionKey, read_partition
    from trade_pipeline.trading.engine import TradingConfig
    from trade_pipeline.trading.service import backtest_model, record_backtest

    settings = pipeline.settings().with_(
        mlflow_tracking_uri_override=mlflow.resolved_tracking_uri(),
        mlflow_artifact_uri_override=mlflow.resolved_artifact_uri(),
    )
    key = PartitionKey(settings.exchange, settings.symbol, context.partition_key)
    snapshots = read_partition(settings.lake_dir, "l2_snapshots", key)
    if snapshots is None or snapshots.height == 0:
        raise dg.Failure(f"l2_snapshots has no rows for {key.relpath('l2_snapshots')}: materialize it first")
    trading = TradingConfig.load(config.exec_config or None)
    model_ref = config.model or settings.model_ref
    result, preds, model = backtest_model(settings, model_ref, snapshots.drop("date", strict=False), trading)
    ensure_warehouse(settings)
    rec = record_backtest(settings, result, model=f"{model.name}/{model.version}", predictions=preds,
                          model_name=model.name, model_version=model.version,
                          tracking_uri=mlflow.resolved_tracking_uri(),
                          artifact_uri=mlflow.resolved_artifact_uri())
    m = result.metrics
    context.log.info(f"backtest {rec.run_id}: {m['n_fills']} fills, return {m['total_return']:.5f}")
    outcome = _outcome(m, result.counts, int((preds.get_column("_signal") != 0).sum()))
    numeric = {k: float(v) for k, v in m.items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    return dg.MaterializeResult(metadata={
        "run_id": rec.run_id,
        "model": f"{model.name}/{model.version} ({model_ref})",
        "rows": result.metrics["rows"],
        "dagster/row_count": len(result.trades),
        "outcome": outcome.text,
        **({"empty_reason": outcome.text} if outcome.empty_is_result else {}),
        "mlflow_run_id": rec.mlflow_run_id or "",
        **{f"metric_{k}": v for k, v in numeric.items()},
        "equity_curve": dg.MetadataValue.md(_png_markdown(rec.png)),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name, type_) for name, type_ in TRADE_COLUMNS]),
    })


class EventBacktestAssetConfig(dg.Config):
    run_config: str = Field(default="", description="TOML with [event_execution], [event_run] "
                            "and strategy sections (empty: the GLFT market maker on book "
                            "changes, trading_pipeline.trading.event_service.day_config)")
    model: str = Field(default="", description="NAME@ALIAS whose signal the maker / taker "
                       "strategies trade (empty: the settings' model)")


FILL_COLUMNS = [
    ("order_id", "int64"), ("side", "int8"), ("liquidity", "string"), ("price", "float64"),
    ("qty", "float64"), ("fee", "float64"), ("fill_at", "timestamp[ns, UTC]"),
    ("markout_0s_bp", "float64"), ("markout_1s_bp", "float64"), ("markout_5s_bp", "float64"),
    ("markout_30s_bp", "float64"),
]


@dg.asset(
    partitions_def=DAILY,
    deps=["raw_l2_captures"],
    group_name="trading",
    kinds={"python", "mlflow"},
    description="The day's raw book changes replayed on the event engine (queue position, "
    "order-entry and response latency, maker/taker fees) under a strategy (default: the GLFT "
    "market maker): fills with markouts (0/1/5/30 s), fill ratio, time in queue, PnL split "
    "(spread capture, fees, inventory); MLflow run with the equity, inventory and markout plots.",
)
def event_backtest_results(
    context: dg.AssetExecutionContext,
    config: EventBacktestAssetConfig,
    pipeline: PipelineResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    from trade_pipeline.storage import raw_store
    from trade_pipeline.trading.event_config import EventBacktestConfig
    from trade_pipeline.trading.event_service import day_config, log_output, run_captures

    settings = pipeline.settings()
    day = context.partition_key
    files = raw_store.raw_files_for_day(settings, settings.exchange, settings.symbol, day)
    if not files:
        raise dg.Failure(f"no raw captures for {day}: materialize raw_l2_captures first")
    run_cfg = EventBacktestConfig.load(config.run_config) if config.run_config else day_config()
    out, report_in = run_captures(settings, [str(f) for f in files], run_cfg,
                                  model_ref=config.model or settings.model_ref)
    run_id, mlflow_id, png = log_output(settings, out, tracking_uri=mlflow.resolved_tracking_uri(),
                                        artifact_uri=mlflow.resolved_artifact_uri())
    numeric = {k: float(v) for k, v in out.metrics().items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    context.log.info(f"event backtest {run_id}: {out.figures['fills']} fills, PnL {out.figures['pnl']}")
    return dg.MaterializeResult(metadata={
        "run_id": run_id,
        "strategy": out.mode,
        "events": out.counts.get("events", 0),
        "messages": report_in["messages"],
        "dagster/row_count": out.fills.height,
        "mlflow_run_id": mlflow_id,
        **{f"metric_{k}": v for k, v in numeric.items()},
        "plots": dg.MetadataValue.md(
            f"![equity, inventory, markouts](data:image/png;base64,{base64.b64encode(png).decode()})"),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name, type_) for name, type_ in FILL_COLUMNS]),
    })


defs = dg.Definitions(assets=[backtest_results, event_backtest_results])
