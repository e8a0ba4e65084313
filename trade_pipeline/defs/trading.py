"""Dagster objects for the trading area: the `backtest_results` asset (a thin wrapper over
trade_pipeline.trading)."""

import base64

import dagster as dg
from pydantic import Field

from trade_pipeline.defs.partitions import DAILY
from trade_pipeline.defs.resources import DUCKDB_POOL, MlflowResource, PipelineResource
from trade_pipeline.defs.warehouse import WAREHOUSE_READY
from trade_pipeline.models.oos import InSampleError
from trade_pipeline.settings import SettingsError

TRADE_COLUMNS = [
    ("decided_at", "timestamp[us, UTC]"), ("timestamp", "timestamp[us, UTC]"), ("side", "int8"),
    ("qty", "float64"), ("price", "float64"), ("notional", "float64"), ("fee", "float64"),
    ("liquidity", "string"), ("levels", "int32"), ("unfilled", "float64"),
    ("position_after", "float64"), ("realized_pnl", "float64"), ("reason", "string"),
]


CHECK_ROWS = "rows_backtested"
CHECK_OOS = "out_of_sample"


class BacktestConfig(dg.Config):
    model: str = Field(default="btc_l2_5s@champion",
                          description="registered model NAME@ALIAS whose predictions are traded")
    exec_config: str = Field(default="", description="TOML file of execution assumptions and "
                                "strategy limits (empty: the defaults of ExecutionConfig/StrategyConfig)")
    allow_in_sample: bool = Field(default=False, description="backtest even a day inside the "
                                  "model's training range (refused by default); the result is "
                                  "labelled in-sample")


def _png_markdown(png: bytes) -> str:
    return f"![equity and drawdown](data:image/png;base64,{base64.b64encode(png).decode()})"


@dg.asset(
    partitions_def=DAILY,
    deps=["l2_model", "l2_features", "l2_snapshots", WAREHOUSE_READY],
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
           for t in ("l2_features", "l2_snapshots")):
        raise dg.Failure(f"l2_snapshots has no rows for {key.relpath('l2_snapshots')}: "
                         "materialize it first")
    name, alias, _version = parse_ref(config.model)
    target = MlflowTarget(mlflow.resolved_tracking_uri(), mlflow.resolved_artifact_uri())
    if alias is not None and get_by_alias(target.client(), name, alias) is None:
        reason = (f"skipped: no model holds {config.model} yet (the champion gate has promoted "
                  "none); nothing to backtest")
        context.log.warning(reason)
        return dg.MaterializeResult(
            metadata={"skipped": True, "reason": reason, "model": config.model, "rows": 0,
                      "dagster/column_schema": schema},
            check_results=[
                dg.AssetCheckResult(check_name=CHECK_ROWS, passed=True, description=reason),
                dg.AssetCheckResult(check_name=CHECK_OOS, passed=True, description=reason)])
    trading = TradingConfig.load(config.exec_config or None)
    day = dt.date.fromisoformat(context.partition_key)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    params = load_model(settings, config.model).feature_params
    try:
        features, provenance = read_lake_features(settings, start, start + dt.timedelta(days=1),
                                                  params)
    except SettingsError as exc:
        raise dg.Failure(f"no rows to backtest for {context.partition_key}: {exc}") from None
    if features.height == 0:
        raise dg.Failure(f"l2_snapshots has no rows for {context.partition_key}: materialize it first")
    try:
        result, preds, model = backtest_model(
            settings, config.model, features, trading, features=features,
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
    numeric = {k: float(v) for k, v in m.items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    return dg.MaterializeResult(metadata={
        "run_id": rec.run_id,
        "model": f"{model.name}/{model.version} ({config.model})",
        "rows": result.metrics["rows"],
        "dagster/row_count": len(result.trades),
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


defs = dg.Definitions(assets=[backtest_results])
