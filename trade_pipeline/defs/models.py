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

from trade_pipeline.defs.partitions import DAILY
from trade_pipeline.defs.resources import DUCKDB_POOL, MlflowResource, PipelineResource
from trade_pipeline.defs.warehouse import WAREHOUSE_READY

MODEL_ASSET = "l2_model"
GATE_CHECK = "champion_gate"
FEATURES_TABLE = "l2_features"


class ModelConfig(dg.Config):
    """Run parameters of one training run."""

    trials: int = 10
    horizon: str = "5s"
    start_date: str | None = None  # first l2_features day (YYYY-MM-DD); None = the first
    end_date: str | None = None  # last day, inclusive; None = the latest
    task: str = "regression"
    top_k: int | None = None
    threads: int = 1
    margin: float = 0.005  # score the challenger needs over the champion to be promoted
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
    description="LightGBM model on the l2_features rows of a date range: Optuna search scored "
    "by purged walk-forward CV, final score on a held-out tail, logged and registered in "
    "MLflow as <base>_l2_<horizon> (alias challenger).",
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK, asset=MODEL_ASSET, blocking=True,
            description="champion gate: the challenger becomes champion only if it beats the "
            "champion on the same held-out tail by the configured margin",
        )
    ],
)
def l2_model(context: dg.AssetExecutionContext, config: ModelConfig,
             pipeline: PipelineResource, mlflow: MlflowResource) -> dg.MaterializeResult:
    from trade_pipeline.models.pipeline import train_and_register
    from trade_pipeline.models.training import TrainConfig, load_feature_frame

    settings = pipeline.settings().ensure_dirs()
    frame, partitions = load_feature_frame(settings, config.start_date, config.end_date,
                                           horizon=config.horizon, stride=config.stride)
    train_config = TrainConfig(horizon=config.horizon, trials=config.trials, task=config.task,
                               top_k=config.top_k, num_threads=config.threads)

    def on_trial(done: int, total: int, value, best) -> None:
        context.log.info(f"optuna trial {done}/{total}: score {value} (best {best})")

    trained = train_and_register(frame, _target(mlflow), settings.exchange, settings.symbol,
                                 train_config, margin=config.margin, partitions=partitions,
                                 on_trial=on_trial, settings=settings)
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
    )
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


train_l2_model_job = dg.define_asset_job(
    "train_l2_model", selection=dg.AssetSelection.assets(MODEL_ASSET),
    description="Train, register and gate the L2 model (run config: ops.l2_model.config).",
)

daily_l2_features_job = dg.define_asset_job(
    "daily_l2_features",
    selection=dg.AssetSelection.assets("l2_snapshots", FEATURES_TABLE),
    partitions_def=DAILY,
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
        import polars as pl

        from trade_pipeline.monitoring.drift import feature_psi
        from trade_pipeline.storage.layout import PartitionKey, read_partition

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
        window = [d for d in days if champ["data_start_date"] <= d <= champ["data_end_date"]]
        if not top or not window:
            return dg.SkipReason("the champion records no top features / training days")

        def load(day: str) -> pl.DataFrame:
            key = PartitionKey(settings.exchange, settings.symbol, day)
            return read_partition(settings.lake_dir, FEATURES_TABLE, key).select(top)

        train = pl.concat([load(d) for d in window])
        scores = feature_psi(train, load(latest), top)
        context.update_cursor(latest)
        worst = max(scores, key=scores.get)
        if scores[worst] <= policy.psi_threshold:
            return dg.SkipReason(f"max PSI {scores[worst]:.3f} ({worst}) on {latest} "
                                 f"<= {policy.psi_threshold}")
        return _run_request(policy, latest, f"drift:{latest}",
                            f"PSI {scores[worst]:.3f} of {worst} on {latest}")

    @dg.sensor(job=job, name="retrain_on_age", minimum_interval_seconds=3600,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"retrain when the champion is older than {policy.max_age} "
               "(cursor: champion version and time of the last request, so one request per "
               "age period)")
    def retrain_on_age(context: dg.SensorEvaluationContext,
                       pipeline: PipelineResource, mlflow: MlflowResource):
        settings = pipeline.settings()
        champ = _champion(settings, mlflow, policy)
        if champ is None:
            return dg.SkipReason("no champion yet")
        now = dt.datetime.now(dt.UTC)
        age = now - champ["created"]
        if age <= policy.max_age:
            return dg.SkipReason(f"champion v{champ['version']} is {age} old")
        last_version, _, last_time = (context.cursor or "").partition("@")
        if last_version == champ["version"] and last_time and (
            now - dt.datetime.fromisoformat(last_time) < policy.max_age
        ):
            return dg.SkipReason(f"retrain already requested at {last_time}")
        context.update_cursor(f"{champ['version']}@{now.isoformat()}")
        days = _feature_days(settings)
        if not days:
            return dg.SkipReason("no feature days to train on")
        return _run_request(policy, days[-1], f"age:{champ['version']}:{now:%Y%m%dT%H%M}",
                            f"champion v{champ['version']} is {age} old")

    return [retrain_on_new_partitions, retrain_on_drift, retrain_on_age]


defs = dg.Definitions(
    assets=[l2_model],
    jobs=[train_l2_model_job, daily_l2_features_job],
    schedules=[daily_l2_features_schedule],
    sensors=build_retrain_sensors(),
)
