"""The l2_model asset with its blocking champion gate, the retraining sensors, the schedule."""

import datetime as dt
import shutil

import dagster as dg
import numpy as np
import polars as pl
import pytest

from trade_pipeline.defs.models import (
    GATE_CHECK,
    RetrainPolicy,
    build_retrain_sensors,
    daily_l2_features_job,
    daily_l2_features_schedule,
    l2_model,
)
from trade_pipeline.defs.resources import DUCKDB_POOL, build_resources
from trade_pipeline.defs.warehouse import WAREHOUSE_READY
from trade_pipeline.models.registry import MlflowTarget, get_by_alias
from trade_pipeline.models.warehouse_log import read_models
from trade_pipeline.settings import Settings
from trade_pipeline.storage.layout import PartitionKey, write_partition
from trade_pipeline_tests.models.synthetic import feature_frame

pytestmark = pytest.mark.slow
DAYS = ["2025-07-07", "2025-07-08"]
POLICY = RetrainPolicy(horizon="1s", new_partitions=2, psi_threshold=0.25, trials=1)


def write_day(settings: Settings, day: str, seed: int, shift: float = 0.0,
              lean: float = 0.4) -> None:
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    frame = feature_frame(2500, sessions=1, seed=seed, start=start, lean=lean)
    if shift:
        frame = frame.with_columns(pl.col("order_book_imbalance") + shift,
                                   pl.col("spread_bps") * (1 + shift))
    write_partition(frame, settings.lake_dir, "l2_features",
                    PartitionKey(settings.exchange, settings.symbol, day))


def materialize(settings: Settings, margin: float = 0.0, raise_on_error: bool = True,
                days: list[str] = DAYS):
    config = {"trials": 1, "horizon": "1s", "start_date": days[0], "end_date": days[-1],
              "margin": margin}
    return dg.materialize(
        [l2_model], resources=build_resources(str(settings.home)),
        run_config={"ops": {"l2_model": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=raise_on_error,
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Settings, dg.ExecuteInProcessResult]:
    settings = Settings.load(home=tmp_path_factory.mktemp("models") / "home").ensure_dirs()
    for i, day in enumerate(DAYS):
        write_day(settings, day, seed=i)
    return settings, materialize(settings)


@pytest.fixture
def home(template, tmp_path) -> Settings:
    """A private copy of the template home (lake + MLflow store with a champion)."""
    src, _ = template
    shutil.copytree(src.home, tmp_path / "home")
    return Settings.load(home=tmp_path / "home")


def sensors() -> dict:
    return {s.name: s for s in build_retrain_sensors(POLICY)}


def evaluate(settings: Settings, name: str, cursor: str | None = None):
    sensor = sensors()[name]
    with dg.build_sensor_context(cursor=cursor, resources=build_resources(str(settings.home)),
                                 instance=dg.DagsterInstance.ephemeral()) as context:
        result = sensor.evaluate_tick(context)
    return result


def test_materialize_registers_and_gates(template) -> None:
    settings, result = template
    assert result.success
    mat = result.asset_materializations_for_node("l2_model")[0]
    md = mat.metadata
    assert md["model_name"].value == "btc_l2_1s" and md["promoted"].value is True
    assert md["gate_p_value"].value < 0.05 and "promoted" in md["gate_reason"].value
    for key in ("tail_ic", "tail_hit_rate", "baseline_ic", "cv_score", "tail_strategy_return"):
        assert key in md, key
    checks = result.get_asset_check_evaluations()
    assert [c.check_name for c in checks] == [GATE_CHECK] and checks[0].passed
    client = MlflowTarget.from_settings(settings).client()
    assert str(get_by_alias(client, "btc_l2_1s", "champion").version) == md["model_version"].value
    rows = read_models(settings, "btc_l2_1s")
    assert [(r["version"], r["alias"], r["horizon"]) for r in rows] == [(1, "champion", "1s")]
    assert rows[0]["run_id"] == md["run_id"].value and len(rows[0]["feature_hash"]) == 64
    assert l2_model.op.pool == DUCKDB_POOL
    spec = l2_model.get_asset_spec(dg.AssetKey("l2_model"))
    assert WAREHOUSE_READY in [d.asset_key for d in spec.deps]


def test_not_promoted_is_a_passed_gate_with_the_reason(home) -> None:
    """A challenger trained on the champion's own days has no row neither model saw: it is
    not promoted, and that is the gate working (its blocking check passes)."""
    result = materialize(home, margin=10.0)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 1 and checks[0].passed
    md = result.asset_materializations_for_node("l2_model")[0].metadata
    assert md["promoted"].value is False and "neither model" in md["gate_reason"].value
    assert md["gate_p_value"].value == 1.0
    client = MlflowTarget.from_settings(home).client()
    assert str(get_by_alias(client, "btc_l2_1s", "champion").version) == "1"
    assert str(get_by_alias(client, "btc_l2_1s", "challenger").version) == "2"
    aliases = [(r["version"], r["alias"]) for r in read_models(home, "btc_l2_1s")]
    assert aliases == [(1, "champion"), (2, "challenger")]


def test_promotion_moves_the_champion_alias_in_the_warehouse(home) -> None:
    """Two later days where the market leans the other way: the champion's IC turns
    negative, the new model's difference is significant on rows neither saw."""
    later = ["2025-07-09", "2025-07-10"]
    for i, day in enumerate(later):
        write_day(home, day, seed=10 + i, lean=-0.4)
    result = materialize(home, days=later)
    assert result.get_asset_check_evaluations()[0].passed
    md = result.asset_materializations_for_node("l2_model")[0].metadata
    assert md["promoted"].value is True, md["gate_reason"].value
    aliases = [(r["version"], r["alias"]) for r in read_models(home, "btc_l2_1s")]
    # v2 holds both MLflow aliases: the column shows the strongest; v1 lost champion -> NULL
    assert aliases == [(1, None), (2, "champion")]


def test_new_partitions_sensor(home) -> None:
    r = evaluate(home, "retrain_on_new_partitions")
    assert not r.run_requests and "0 new day" in r.skip_message
    write_day(home, "2025-07-09", seed=3)
    assert not evaluate(home, "retrain_on_new_partitions").run_requests
    write_day(home, "2025-07-10", seed=4)
    r = evaluate(home, "retrain_on_new_partitions")
    assert len(r.run_requests) == 1 and r.cursor == "2025-07-10"
    config = r.run_requests[0].run_config["ops"]["l2_model"]["config"]
    assert config["end_date"] == "2025-07-10" and config["horizon"] == "1s"
    again = evaluate(home, "retrain_on_new_partitions", cursor=r.cursor)
    assert not again.run_requests


def test_drift_sensor(home) -> None:
    r = evaluate(home, "retrain_on_drift")
    assert not r.run_requests and "no feature day after" in r.skip_message
    write_day(home, "2025-07-09", seed=5)  # same distribution
    r = evaluate(home, "retrain_on_drift")
    assert not r.run_requests and r.cursor == "2025-07-09" and "PSI" in r.skip_message
    write_day(home, "2025-07-10", seed=6, shift=1.5)  # the top feature moves
    r = evaluate(home, "retrain_on_drift", cursor="2025-07-09")
    assert len(r.run_requests) == 1 and r.cursor == "2025-07-10"
    assert not evaluate(home, "retrain_on_drift", cursor="2025-07-10").run_requests


def test_age_sensor(home) -> None:
    import time

    assert not evaluate(home, "retrain_on_age").run_requests  # 7 days: the champion is fresh
    old = {s.name: s for s in build_retrain_sensors(
        RetrainPolicy(horizon="1s", max_age=dt.timedelta(seconds=3)))}["retrain_on_age"]

    def tick(cursor=None):
        with dg.build_sensor_context(cursor=cursor, resources=build_resources(str(home.home)),
                                     instance=dg.DagsterInstance.ephemeral()) as ctx:
            return old.evaluate_tick(ctx)

    time.sleep(3.1)
    r = tick()
    assert len(r.run_requests) == 1 and r.cursor.startswith("1@")
    again = tick(r.cursor)  # the same champion, requested less than max_age ago
    assert not again.run_requests and "already requested" in again.skip_message


def test_sensors_skip_without_champion(tmp_path) -> None:
    settings = Settings.load(home=tmp_path / "empty").ensure_dirs()
    for name in sensors():
        r = evaluate(settings, name)
        assert not r.run_requests and "no champion" in r.skip_message


def test_daily_schedule_targets_snapshots_and_features() -> None:
    from trade_pipeline.definitions import build_definitions

    repo = build_definitions(home="/tmp/unused").get_repository_def()
    job = repo.get_job(daily_l2_features_job.name)
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert keys == {"l2_snapshots", "l2_features"}
    assert daily_l2_features_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.build_schedule_context(
        repository_def=repo,
        scheduled_execution_time=dt.datetime(2025, 7, 8, 0, 20, tzinfo=dt.UTC),
    ) as ctx:
        requests = list(daily_l2_features_schedule.evaluate_tick(ctx).run_requests)
    assert [r.partition_key for r in requests] == ["2025-07-07"]
    assert np.all([s.default_status == dg.DefaultSensorStatus.RUNNING
                   for s in build_retrain_sensors()])


def test_walkforward_asset_over_the_lake(home) -> None:
    from trade_pipeline.defs.models import walkforward_results
    from trade_pipeline.storage.layout import list_partitions

    config = {"start_date": DAYS[0], "end_date": DAYS[-1], "train": "2m", "test": "1m",
              "horizon": "1s", "max_age": 2}
    result = dg.materialize(
        [walkforward_results], resources=build_resources(str(home.home)),
        run_config={"ops": {"walkforward_results": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral())
    assert result.success
    md = result.asset_materializations_for_node("walkforward_results")[0].metadata
    assert md["windows"].value >= 4 and md["dagster/row_count"].value == md["oos_n"].value > 0
    assert md["oos_ic"].value > 0.2 and len(md["oos_ic_ci"].value) == 2
    for plot in ("ic_per_window", "cumulative_net_pnl", "ic_decay"):
        assert md[plot].value.startswith(f"![{plot}](data:image/png;base64,")
    days = [k.date for k in list_partitions(home.lake_dir, "walkforward_predictions")]
    assert days == DAYS  # one lake partition per tested day
    assert walkforward_results.op.pool == DUCKDB_POOL
