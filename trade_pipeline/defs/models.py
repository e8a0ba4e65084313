"""Dagster objects for the models area: the `l2_model` asset with its blocking champion gate,
the retraining sensors and the daily snapshots + features schedule.

Thin: the work is in `trade_pipeline.models` (labels, cv, training, registry, serving).

Default statuses, chosen deliberately:
- `daily_l2_features_schedule` RUNNING: a deployment should build each finished UTC day
  without anyone remembering to start it (days without raw captures fail visibly).
- the three retraining sensors RUNNING: they are cheap (registry + lake listing), do nothing
  until a champion exists, and each cursor keeps them from re-requesting the same retrain.
"""

import datetime as dt
from dataclasses import dataclass

import dagster as dg

from trade_pipeline.defs import tags
from trade_pipeline.defs.resources import DUCKDB_POOL, MlflowResource, PipelineResource
from trade_pipeline.defs.warehouse import WAREHOUSE_READY
from trade_pipeline.storage import tables

MODEL_ASSET = "l2_model"
GATE_CHECK = "champion_gate"
FEATURES_TABLE = tables.FEATURES


class ModelConfig(dg.Config):
    """Run parameters of one training run."""

    trials: int = 10
    horizon: str = "5s"
    start_date: str | None = None  # first l2_features day (YYYY-MM-DD); None = the first
    end_date: str | None = None  # last day, inclusive; None = the latest
    task: str = "regression"
    top_k: int | None = None
    threads: int = 1
    alpha: float = 0.05  # significance level of the champion gate's block-bootstrap tests
    margin: float = 0.0  # IC difference over the champion required on top of significance
    exec_config: str = ""  # TOML of execution assumptions (fees, cadence); empty: defaults
    stride: int | None = None  # keep every Nth grid row after labelling; None: auto (dataset.py)


def _target(mlflow: MlflowResource):
    from trade_pipeline.models.registry import MlflowTarget

    return MlflowTarget(mlflow.resolved_tracking_uri(), mlflow.resolved_artifact_uri())


def _md_value(value):
    if value is None:
        return dg.MetadataValue.text("undefined")
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    if isinstance(value, list | dict):
        return dg.MetadataValue.json(value)
    return dg.MetadataValue.text(str(value))


@dg.asset(
    deps=[dg.AssetKey(FEATURES_TABLE), WAREHOUSE_READY],
    pool=DUCKDB_POOL,  # it writes the warehouse `models` table
    group_name="models",
    kinds={"lightgbm", "mlflow"},
    tags=tags.MODEL,
    description="LightGBM model on the l2_features rows of a date range: Optuna search scored "
    "by purged walk-forward CV, final score on a held-out tail, logged and registered in "
    "MLflow as <base>_l2_<horizon> (alias challenger); the champion gate decides whether it "
    "becomes champion (metadata: promoted, gate_reason, gate_p_value).",
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK, asset=MODEL_ASSET, blocking=True,
            description="the champion gate ran: block-bootstrap tests on rows neither model "
            "was trained on. It passes whether or not the challenger was promoted (not "
            "promoting noise is the gate working); the decision is in the metadata",
        )
    ],
)
def l2_model(context: dg.AssetExecutionContext, config: ModelConfig,
             pipeline: PipelineResource, mlflow: MlflowResource) -> dg.MaterializeResult:
    from trade_pipeline.models.decision import load_execution
    from trade_pipeline.models.pipeline import train_and_register
    from trade_pipeline.models.training import (
        TrainConfig,
        feature_stamp_of_partitions,
        load_feature_frame,
    )

    settings = pipeline.settings().ensure_dirs()
    frame, partitions = load_feature_frame(settings, config.start_date, config.end_date,
                                           horizon=config.horizon, stride=config.stride)
    stamp = feature_stamp_of_partitions(settings, partitions)
    execution = load_execution(config.exec_config or None)
    train_config = TrainConfig(horizon=config.horizon, trials=config.trials, task=config.task,
                               top_k=config.top_k, num_threads=config.threads,
                               execution=execution)

    def on_trial(done: int, total: int, value, best) -> None:
        context.log.info(f"optuna trial {done}/{total}: score {value} (best {best})")

    trained = train_and_register(frame, _target(mlflow), settings.exchange, settings.symbol,
                                 train_config, margin=config.margin, alpha=config.alpha,
                                 partitions=partitions, on_trial=on_trial, settings=settings,
                                 feature_stamp=stamp)
    result, ref, gate = trained.result, trained.ref, trained.gate
    metrics = result.metrics()
    metadata = {k: _md_value(v) for k, v in metrics.items() if not k.startswith("fold")}
    metadata.update(
        model_name=dg.MetadataValue.text(ref.name),
        model_version=dg.MetadataValue.text(ref.version),
        run_id=dg.MetadataValue.text(ref.run_id),
        partitions=dg.MetadataValue.int(len(partitions)),
        fold_metrics=dg.MetadataValue.json(result.fold_metrics),
        promoted=dg.MetadataValue.bool(gate.promoted),
        gate_reason=dg.MetadataValue.text(gate.reason),
        gate_p_value=dg.MetadataValue.float(gate.p_value),
        importance=dg.MetadataValue.json(result.importance[:20]),
    )
    if gate.promoted:
        context.log.info(f"{ref.name} v{ref.version} is champion: {gate.reason}")
    else:
        # A normal outcome: the current champion (if any) stays in service.
        context.log.warning(f"{ref.name} v{ref.version} not promoted: {gate.reason}")
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name=GATE_CHECK, passed=gate.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={k: _md_value(v) for k, v in gate.as_dict().items()},
            )
        ],
    )


WALKFORWARD_ASSET = "walkforward_results"


class WalkForwardRunConfig(dg.Config):
    """Run parameters of one walk-forward evaluation over a range of l2_features days."""

    start_date: str | None = None  # first day (YYYY-MM-DD); None = the first
    end_date: str | None = None  # last day, inclusive; None = the latest
    train: str = "3h"
    test: str = "1h"
    step: str = ""  # empty: the test length
    horizon: str = "5s"
    trials: int = 1
    task: str = "regression"
    max_age: int = 6
    decay_fraction: float = 0.5
    threads: int = 1
    exec_config: str = ""  # TOML of execution assumptions and strategy limits


@dg.asset(
    name=WALKFORWARD_ASSET,
    deps=[dg.AssetKey(FEATURES_TABLE), WAREHOUSE_READY],
    pool=DUCKDB_POOL,  # it writes backtest_results / trades
    group_name="models",
    kinds={"lightgbm", "mlflow", "parquet"},
    description="Walk-forward evaluation over a range of l2_features days: retrain on `train`, "
    "predict the next `test`, stitched out-of-sample predictions (lake table "
    "walkforward_predictions) traded after costs through the backtest engine, IC decay "
    "and the recommended retraining interval (set on the registered model for the "
    "staleness sensor). Materialize on demand.",
)
def walkforward_results(context: dg.AssetExecutionContext, config: WalkForwardRunConfig,
                        pipeline: PipelineResource, mlflow: MlflowResource):
    import base64

    from trade_pipeline.models.training import TrainConfig
    from trade_pipeline.models.walkforward import WalkForwardConfig, parse_duration
    from trade_pipeline.trading.engine import TradingConfig
    from trade_pipeline.trading.walkforward import walkforward_command

    settings = pipeline.settings().ensure_dirs().with_(
        mlflow_tracking_uri_override=mlflow.resolved_tracking_uri(),
        mlflow_artifact_uri_override=mlflow.resolved_artifact_uri())
    trading = TradingConfig.load(config.exec_config or None)
    wf_config = WalkForwardConfig(
        train=parse_duration(config.train), test=parse_duration(config.test),
        step=parse_duration(config.step) if config.step else None,
        model=TrainConfig(horizon=config.horizon, trials=config.trials, task=config.task,
                          num_threads=config.threads, execution=trading.execution),
        max_age=config.max_age, decay_fraction=config.decay_fraction)

    def on_window(done: int, total: int, info: dict) -> None:
        context.log.info(f"walk-forward window {done}/{total}: IC {info['ic']}")

    pngs: dict = {}
    out = walkforward_command(settings, wf_config=wf_config, trading=trading,
                              start=config.start_date, end=config.end_date,
                              on_window=on_window, tracking_uri=mlflow.resolved_tracking_uri(),
                              artifact_uri=mlflow.resolved_artifact_uri(), plots_out=pngs)
    contract = ("windows", "oos_n", "oos_ic", "oos_ic_ci", "trades", "gross_return",
                "net_return", "recommended_retrain_every", "baseline_ic", "baseline_ic_ci",
                "oos_ic_p_value", "run_id", "mlflow_run_id")
    metadata = {k: _md_value(out.get(k)) for k in contract}
    metadata.update({
        "dagster/row_count": out["oos_n"],
        "ic_decay": dg.MetadataValue.json(out["ic_decay"]),
        "per_window": dg.MetadataValue.json(out["per_window"]),
        "dagster/column_schema": dg.TableSchema(columns=[
            dg.TableColumn(n, t) for n, t in (
                ("timestamp", "timestamp[us, UTC]"), ("window_id", "int32"),
                ("trained_to", "timestamp[us, UTC]"), ("score", "float64"),
                ("expected_return", "float64"), ("realized_return", "float64"),
                ("entry_threshold", "float64"), ("exit_threshold", "float64"),
                ("rel_spread", "float64"), ("baseline_signal", "float64"),
                ("exchange", "string"), ("symbol", "string"), ("run_id", "string"))]),
    })
    for name, png in pngs.items():
        title = name.removesuffix(".png")
        metadata[title] = dg.MetadataValue.md(
            f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")
    return dg.MaterializeResult(metadata=metadata)


train_l2_model_job = dg.define_asset_job(
    "train_l2_model", selection=dg.AssetSelection.assets(MODEL_ASSET),
    description="Train, register and gate the L2 model (run config: ops.l2_model.config).",
)

daily_l2_features_job = dg.define_asset_job(
    "daily_l2_features",
    selection=dg.AssetSelection.assets(tables.SNAPSHOTS, FEATURES_TABLE),
    description="One UTC day: rebuild its snapshots, then its features.",
)

@dg.schedule(
    cron_schedule="20 0 * * *", job=daily_l2_features_job, execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Shortly after midnight UTC: materialize the day that just ended.",
)
def daily_l2_features_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    # Not build_schedule_from_partitioned_job: DAILY has end_offset=1 (today's partition
    # exists for live data), so that helper would target the day that has just begun.
    day = (context.scheduled_execution_time.astimezone(dt.UTC).date()
           - dt.timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=f"daily_l2_features:{day}", partition_key=day)


# ---- retraining sensors --------------------------------------------------------------------

@dataclass(frozen=True)
class RetrainPolicy:
    """When to retrain, and the training run a trigger requests."""

    horizon: str = "5s"
    new_partitions: int = 3  # retrain after this many new days since the champion's data end
    psi_threshold: float = 0.25  # retrain when a top feature's PSI goes over this
    psi_top_features: int = 10
    max_age: dt.timedelta = dt.timedelta(days=7)
    window_days: int = 7  # a requested run trains on the last N days
    trials: int = 10


def _feature_days(settings) -> list[str]:
    from trade_pipeline.storage.layout import list_partitions

    return [k.date for k in list_partitions(settings.lake_dir, FEATURES_TABLE)
            if k.exchange == settings.exchange and k.symbol == settings.symbol]


def _run_request(policy: RetrainPolicy, end_day: str, key: str, reason: str) -> dg.RunRequest:
    start = (dt.date.fromisoformat(end_day) - dt.timedelta(days=policy.window_days - 1))
    config = {"trials": policy.trials, "horizon": policy.horizon,
              "start_date": start.isoformat(), "end_date": end_day}
    return dg.RunRequest(
        run_key=key, run_config={"ops": {MODEL_ASSET: {"config": config}}},
        tags={"trade_pipeline/retrain_reason": reason[:200]},
    )


def _champion(settings, mlflow: MlflowResource, policy: RetrainPolicy) -> dict | None:
    from trade_pipeline.models.registry import champion_info, model_name

    return champion_info(_target(mlflow), model_name(settings.symbol, policy.horizon))


def build_retrain_sensors(policy: RetrainPolicy = RetrainPolicy(),
                          job=train_l2_model_job) -> list[dg.SensorDefinition]:
    """The three retraining sensors for one policy (tests build their own)."""

    @dg.sensor(job=job, name="retrain_on_new_partitions", minimum_interval_seconds=600,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"retrain after {policy.new_partitions} new l2_features days since "
               "the champion's data end (cursor: the last day a retrain was requested for)")
    def retrain_on_new_partitions(context: dg.SensorEvaluationContext,
                                  pipeline: PipelineResource, mlflow: MlflowResource):
        settings = pipeline.settings()
        champ = _champion(settings, mlflow, policy)
        if champ is None:
            return dg.SkipReason("no champion yet")
        since = max(champ["data_end_date"], context.cursor or "")
        new_days = [d for d in _feature_days(settings) if d > since]
        if len(new_days) < policy.new_partitions:
            return dg.SkipReason(f"{len(new_days)} new day(s) after {since}; "
                                 f"need {policy.new_partitions}")
        latest = new_days[-1]
        context.update_cursor(latest)
        return _run_request(policy, latest, f"new_partitions:{latest}",
                            f"{len(new_days)} new feature days after {since}")

    @dg.sensor(job=job, name="retrain_on_drift", minimum_interval_seconds=3600,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"retrain when the PSI of the champion's top "
               f"{policy.psi_top_features} features between its training window and the "
               f"latest day exceeds {policy.psi_threshold} (cursor: the last day checked)")
    def retrain_on_drift(context: dg.SensorEvaluationContext,
                         pipeline: PipelineResource, mlflow: MlflowResource):
        from trade_pipeline.monitoring.drift import (
            DriftError,
            champion_drift_spec,
            measure_drift,
        )

        settings = pipeline.settings()
        champ = _champion(settings, mlflow, policy)
        if champ is None:
            return dg.SkipReason("no champion yet")
        days = _feature_days(settings)
        latest = days[-1] if days else None
        if latest is None or latest <= champ["data_end_date"]:
            return dg.SkipReason("no feature day after the champion's training window")
        if context.cursor == latest:
            return dg.SkipReason(f"{latest} already checked")
        top = list(champ.get("top_features") or [])[: policy.psi_top_features]
        if not top:
            return dg.SkipReason("the champion records no top features")
        # The monitor's rule (monitoring/drift.py): the exact training window vs the whole
        # latest day, same bins and sampling, so both report the same PSI.
        try:
            report = measure_drift(settings.lake_dir, settings.exchange, settings.symbol,
                                   champion_drift_spec(champ, latest, top))
        except DriftError as exc:
            return dg.SkipReason(f"drift not measurable on {latest}: {exc}")
        context.update_cursor(latest)
        worst, value = report.worst()
        if value <= policy.psi_threshold:
            return dg.SkipReason(f"max PSI {value:.4f} ({worst}) on {latest} "
                                 f"<= {policy.psi_threshold}")
        run = _run_request(policy, latest, f"drift:{latest}",
                           f"PSI {value:.4f} of {worst} on {latest}")
        return run.with_replaced_attrs(tags={**run.tags, "trade_pipeline/drift_feature": worst,
                                             "trade_pipeline/drift_psi": repr(value)})

    @dg.sensor(job=job, name="retrain_on_age", minimum_interval_seconds=3600,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="retrain when the champion is older than the retraining interval "
               "walk-forward recommended for its model name (registered-model tag "
               f"recommended_retrain_every), or {policy.max_age} without one (cursor: "
               "champion version and time of the last request, so one request per period)")
    def retrain_on_age(context: dg.SensorEvaluationContext,
                       pipeline: PipelineResource, mlflow: MlflowResource):
        from trade_pipeline.models.walkforward import WalkForwardError, parse_duration

        settings = pipeline.settings()
        champ = _champion(settings, mlflow, policy)
        if champ is None:
            return dg.SkipReason("no champion yet")
        max_age, basis = policy.max_age, "policy"
        if champ.get("recommended_retrain_every"):
            try:
                max_age = parse_duration(champ["recommended_retrain_every"])
                basis = "walk-forward recommendation"
            except WalkForwardError:
                context.log.warning(f"ignoring an unreadable recommendation "
                                    f"{champ['recommended_retrain_every']!r}")
        now = dt.datetime.now(dt.UTC)
        age = now - champ["created"]
        if age <= max_age:
            return dg.SkipReason(f"champion v{champ['version']} is {age} old "
                                 f"(retrain after {max_age}: {basis})")
        last_version, _, last_time = (context.cursor or "").partition("@")
        if last_version == champ["version"] and last_time and (
            now - dt.datetime.fromisoformat(last_time) < max_age
        ):
            return dg.SkipReason(f"retrain already requested at {last_time}")
        context.update_cursor(f"{champ['version']}@{now.isoformat()}")
        days = _feature_days(settings)
        if not days:
            return dg.SkipReason("no feature days to train on")
        return _run_request(policy, days[-1], f"age:{champ['version']}:{now:%Y%m%dT%H%M}",
                            f"champion v{champ['version']} is {age} old (> {max_age}: {basis})")

    return [retrain_on_new_partitions, retrain_on_drift, retrain_on_age]


retrain_on_new_partitions, retrain_on_drift, retrain_on_age = build_retrain_sensors()
