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
from trade_pipeline.models.oos import InSampleError
from trade_pipeline.settings import SettingsError
from trade_pipeline.storage import tables

TRADE_COLUMNS = [
    ("decided_at", "timestamp[us, UTC]"), ("timestamp", "timestamp[us, UTC]"), ("side", "int8"),
    ("qty", "float64"), ("price", "float64"), ("notional", "float64"), ("fee", "float64"),
    ("liquidity", "string"), ("levels", "int32"), ("unfilled", "float64"),
    ("position_after", "float64"), ("realized_pnl", "float64"), ("reason", "string"),
]


CHECK_ROWS = "rows_backtested"
CHECK_OOS = "out_of_sample"


class BacktestConfig(dg.Config):
    model: str = Field(default="", description="registered model NAME@ALIAS whose predictions are "
                       "traded (empty: the settings' model, TRADE_PIPELINE_MODEL)")
    exec_config: str = Field(default="", description="TOML file of execution assumptions and "
                                "strategy limits (empty: the defaults of ExecutionConfig/StrategyConfig)")
    allow_in_sample: bool = Field(default=False, description="backtest even a day inside the "
                                  "model's training range (refused by default); the result is "
                                  "labelled in-sample")


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
    deps=["l2_model", tables.FEATURES, tables.SNAPSHOTS, WAREHOUSE_READY],
    pool=DUCKDB_POOL,
    group_name="trading",
    kinds={"python", "duckdb", "mlflow"},
    description="Backtest of the registered model on one day of the snapshot grid, out of "
    "sample (a day inside the model's training range is refused unless allow_in_sample), fed "
    "the day's l2_features (checked against the model's feature parameters): trades, equity "
    "curve and metrics (warehouse: backtest_results, trades, predictions; MLflow run with the "
    "equity/drawdown plot). Without a model under the alias it skips, saying so.",
    check_specs=[
        dg.AssetCheckSpec(CHECK_ROWS, asset="backtest_results",
                          description="the day was backtested over its grid rows (or skipped "
                          "because no model holds the alias yet: the gate promoted none)"),
        dg.AssetCheckSpec(CHECK_OOS, asset="backtest_results",
                          description="every backtested row lies outside the model's training "
                          "range (warns when allow_in_sample let an in-sample run through)"),
    ],
)
def backtest_results(
    context: dg.AssetExecutionContext,
    config: BacktestConfig,
    pipeline: PipelineResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    import datetime as dt

    from trade_pipeline.lake.warehouse import ensure_warehouse
    from trade_pipeline.models.registry import MlflowTarget, get_by_alias
    from trade_pipeline.models.serving import parse_ref
    from trade_pipeline.storage.layout import PartitionKey, list_partitions
    from trade_pipeline.trading.engine import TradingConfig
    from trade_pipeline.trading.inputs import read_lake_features
    from trade_pipeline.trading.model_adapter import load_model
    from trade_pipeline.trading.service import backtest_model, record_backtest

    settings = pipeline.settings().with_(
        mlflow_tracking_uri_override=mlflow.resolved_tracking_uri(),
        mlflow_artifact_uri_override=mlflow.resolved_artifact_uri(),
    )
    schema = dg.TableSchema(columns=[dg.TableColumn(name, type_) for name, type_ in TRADE_COLUMNS])
    key = PartitionKey(settings.exchange, settings.symbol, context.partition_key)
    if all(key not in list_partitions(settings.lake_dir, t)
           for t in (tables.FEATURES, tables.SNAPSHOTS)):
        raise dg.Failure(f"l2_snapshots has no rows for {key.relpath('l2_snapshots')}: "
                         "materialize it first")
    model_ref = config.model or settings.model_ref
    name, alias, _version = parse_ref(model_ref)
    target = MlflowTarget(mlflow.resolved_tracking_uri(), mlflow.resolved_artifact_uri())
    if alias is not None and get_by_alias(target.client(), name, alias) is None:
        reason = (f"skipped: no model holds {model_ref} yet (the champion gate has promoted "
                  "none); nothing to backtest")
        context.log.warning(reason)
        return dg.MaterializeResult(
            metadata={"skipped": True, "reason": reason, "model": model_ref, "rows": 0,
                      "dagster/column_schema": schema},
            check_results=[
                dg.AssetCheckResult(check_name=CHECK_ROWS, passed=True, description=reason),
                dg.AssetCheckResult(check_name=CHECK_OOS, passed=True, description=reason)])
    trading = TradingConfig.load(config.exec_config or None)
    day = dt.date.fromisoformat(context.partition_key)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    params = load_model(settings, model_ref).feature_params
    try:
        features, provenance = read_lake_features(settings, start, start + dt.timedelta(days=1),
                                                  params)
    except SettingsError as exc:
        raise dg.Failure(f"no rows to backtest for {context.partition_key}: {exc}") from None
    if features.height == 0:
        raise dg.Failure(f"l2_snapshots has no rows for {context.partition_key}: materialize it first")
    try:
        result, preds, model = backtest_model(
            settings, model_ref, features, trading, features=features,
            feature_provenance=provenance, allow_in_sample=config.allow_in_sample)
    except InSampleError as exc:
        raise dg.Failure(str(exc)) from None
    ensure_warehouse(settings)
    rec = record_backtest(settings, result, model=f"{model.name}/{model.version}", predictions=preds,
                          model_name=model.name, model_version=model.version,
                          tracking_uri=mlflow.resolved_tracking_uri(),
                          artifact_uri=mlflow.resolved_artifact_uri())
    m = result.metrics
    oos = result.provenance["out_of_sample"]
    thr = result.provenance["thresholds"]
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
        "in_sample": oos["in_sample"],
        "training_range": dg.MetadataValue.json(oos["training_range"]),
        "entry_threshold": thr["entry"],
        "threshold_source": thr["source"],
        "features_from_lake_days": dg.MetadataValue.json(provenance["days_from_lake"]),
        "features_computed_days": dg.MetadataValue.json(provenance["days_computed"]),
        **{f"metric_{k}": v for k, v in numeric.items()},
        "equity_curve": dg.MetadataValue.md(_png_markdown(rec.png)),
        "dagster/column_schema": schema,
    }, check_results=[
        dg.AssetCheckResult(
            check_name=CHECK_ROWS, passed=result.metrics["rows"] > 0,
            description=f"{result.metrics['rows']} grid rows backtested, "
            f"{m['n_fills']} fills (a cost-aware strategy may rightly stay flat)",
            metadata={"rows": result.metrics["rows"], "fills": m["n_fills"]}),
        dg.AssetCheckResult(
            check_name=CHECK_OOS, passed=not oos["in_sample"],
            severity=dg.AssetCheckSeverity.WARN,
            description=(f"{oos['in_sample_rows']} rows inside the training range (allowed)"
                         if oos["in_sample"] else "every row is out of sample"),
            metadata={"in_sample_rows": oos["in_sample_rows"]}),
    ])


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
    description="The day's raw book changes and public trades replayed on the event engine "
    "(maker orders fill on the trades; queue position, "
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
    run_id, mlflow_id, png = log_output(settings, out, source=report_in,
                                        tracking_uri=mlflow.resolved_tracking_uri(),
                                        artifact_uri=mlflow.resolved_artifact_uri())
    numeric = {k: float(v) for k, v in out.metrics().items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    context.log.info(f"event backtest {run_id}: {out.figures['fills']} fills, PnL {out.figures['pnl']}")
    return dg.MaterializeResult(metadata={
        "run_id": run_id,
        "strategy": out.mode,
        "events": out.counts.get("events", 0),
        "messages": report_in["messages"],
        "trade_events": report_in["trade_events"],
        "dagster/row_count": out.fills.height,
        "mlflow_run_id": mlflow_id,
        **{f"metric_{k}": v for k, v in numeric.items()},
        "plots": dg.MetadataValue.md(
            f"![equity, inventory, markouts](data:image/png;base64,{base64.b64encode(png).decode()})"),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name, type_) for name, type_ in FILL_COLUMNS]),
    })
