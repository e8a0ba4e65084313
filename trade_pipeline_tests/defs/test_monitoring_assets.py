"""The feature_stats asset and the check factories, materialized on an ephemeral instance."""

import datetime as dt

import dagster as dg
import numpy as np
import polars as pl
import pytest

from trade_pipeline.defs import monitoring as mon
from trade_pipeline.defs import tags
from trade_pipeline.defs.partitions import DAILY
from trade_pipeline.defs.resources import build_resources
from trade_pipeline.features.catalog import FEATURE_NAMES
from trade_pipeline.monitoring.feature_stats import STATS_SCHEMA
from trade_pipeline.storage.layout import PartitionKey, read_partition, write_partition
from trade_pipeline_tests.monitoring.helpers import snapshot_frame

DAY = "2025-07-07"
T0 = dt.datetime(2025, 7, 7, 10, 0, tzinfo=dt.UTC)
KEY = PartitionKey("bybit", "BTCUSDT", DAY)


def _features(n: int = 500, inf_in: str | None = None) -> pl.DataFrame:
    rng = np.random.default_rng(1)
    cols = {
        "timestamp": pl.Series([T0 + dt.timedelta(milliseconds=100 * i) for i in range(n)],
                               dtype=pl.Datetime("us", "UTC")),
        "exchange": ["bybit"] * n,
        "symbol": ["BTCUSDT"] * n,
        "session_id": pl.Series([1] * n, dtype=pl.Int64),
    }
    for name in FEATURE_NAMES:
        values = rng.normal(size=n)
        if name == inf_in:
            values[3] = np.inf
        cols[name] = pl.Series(values).set(pl.Series(np.arange(n) < 10), None)  # warm-up nulls
    return pl.DataFrame(cols)


@dg.asset(name="l2_features", partitions_def=DAILY)
def fake_features():
    """Stand-in for the features area's asset: the partition is written by the test."""


@dg.asset(name="l2_snapshots", partitions_def=DAILY)
def fake_snapshots(context: dg.AssetExecutionContext):
    """Stand-in: the test writes the partition beforehand."""


def _checks_of(results, asset: str) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in results.get_asset_check_evaluations()
            if e.asset_key == dg.AssetKey(asset)}


def test_feature_stats_asset_writes_the_lake_and_passes_its_checks(settings):
    write_partition(_features(), settings.lake_dir, "l2_features", KEY)
    checks = mon.lake_table_checks("feature_stats", "feature_stats")
    result = dg.materialize(
        [mon.feature_stats_asset, *checks],
        resources=build_resources(str(settings.home)),
        partition_key=DAY,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    stats = read_partition(settings.lake_dir, "feature_stats", KEY)
    assert stats.schema == pl.Schema(STATS_SCHEMA)
    assert stats["feature"].to_list() == list(FEATURE_NAMES)
    assert stats["null_rate"].to_list() == pytest.approx([10 / 500] * len(FEATURE_NAMES))
    meta = result.asset_materializations_for_node("feature_stats")[0].metadata
    assert meta["dagster/row_count"].value == len(FEATURE_NAMES)
    assert meta["null_rate"].value == pytest.approx(10 / 500)
    assert "data:image/png;base64," in meta["null_rate_plot"].value
    evals = _checks_of(result, "feature_stats")
    assert evals["schema"].passed and evals["row_count"].passed


def test_feature_stats_fails_clearly_without_features(settings):
    result = dg.materialize(
        [mon.feature_stats_asset],
        resources=build_resources(str(settings.home)),
        partition_key=DAY,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("feature_stats")
    assert "l2_features has no partition" in str(failure.error)


def test_feature_schema_check_catches_a_wrong_type(settings):
    bad = _features().with_columns(pl.col("session_id").cast(pl.Int32))
    write_partition(bad, settings.lake_dir, "l2_features", KEY)
    result = dg.materialize(
        [fake_features, *mon.lake_table_checks("l2_features", "l2_features")],
        resources=build_resources(str(settings.home)),
        partition_key=DAY,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    evals = _checks_of(result, "l2_features")
    assert not evals["schema"].passed
    assert "session_id" in evals["schema"].description
    assert evals["row_count"].passed and evals["gap_rate"].passed


def test_snapshot_gap_rate_and_missing_partition(settings):
    # 10 rows, then a 2 s hole: 19 of 30 grid times missing -> warns.
    offsets = [100 * i for i in range(10)] + [2900]
    write_partition(snapshot_frame(T0, offsets), settings.lake_dir, "l2_snapshots", KEY)
    checks = mon.lake_table_checks("l2_snapshots", "l2_snapshots")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([fake_snapshots, *checks],
                            resources=build_resources(str(settings.home)),
                            partition_key=DAY, instance=instance, raise_on_error=False)
    evals = _checks_of(result, "l2_snapshots")
    assert evals["schema"].passed and evals["row_count"].passed
    gap = evals["gap_rate"]
    assert not gap.passed and gap.severity == dg.AssetCheckSeverity.WARN
    assert gap.metadata["missing_grid_times"].value == 19
    # A day that was never written: blocking checks fail and say which file is missing.
    result = dg.materialize([fake_snapshots, *checks],
                            resources=build_resources(str(settings.home)),
                            partition_key="2025-07-08", instance=instance, raise_on_error=False)
    evals = _checks_of(result, "l2_snapshots")
    assert not evals["row_count"].passed and "no partition file" in evals["row_count"].description


def test_metadata_checks_read_the_materialization():
    @dg.asset(partitions_def=DAILY)
    def captured():
        return dg.MaterializeResult(metadata={"messages": 1000, "gaps": 200, "files": 2})

    @dg.asset
    def empty_table():
        return dg.MaterializeResult(metadata={"dagster/row_count": 0})

    checks = mon.metadata_checks(dg.AssetKey("captured"), DAILY, has_gaps=True)
    checks += mon.metadata_checks(dg.AssetKey("empty_table"), None, has_gaps=False)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([captured, *checks[:3]], partition_key=DAY, instance=instance)
    evals = _checks_of(result, "captured")
    assert evals["row_count"].passed  # messages = 1000
    assert not evals["gap_rate"].passed and evals["gap_rate"].metadata["gap_rate"].value == 0.2
    assert not evals["schema"].passed  # publishes no column schema
    result = dg.materialize([empty_table, *checks[3:]], instance=instance)
    evals = _checks_of(result, "empty_table")
    assert not evals["row_count"].passed


def test_every_asset_has_checks_and_freshness():
    """Whatever assets the areas define, each gets checks (discovered, not listed)."""
    from trade_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    materializable = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    checked: dict[dg.AssetKey, set[str]] = {}
    for check_key in graph.asset_check_keys:
        checked.setdefault(check_key.asset_key, set()).add(check_key.name)
    assert dg.AssetKey("feature_stats") in materializable
    for key in materializable:
        names = checked.get(key, set())
        assert names, f"asset {key.to_user_string()} has no checks"
        if key.path[0].startswith("migration_"):
            assert "applied" in names
            continue
        # The owning area's own check of a kind (e.g. `schema_matches_catalog`) counts.
        assert any("schema" in n for n in names), (key, names)
        assert any("row" in n for n in names), (key, names)
        # Freshness is Dagster's FreshnessPolicy now (it superseded freshness checks and
        # their sensor): every recurring asset has one.
        if graph.get(key).tags.get(tags.FRESHNESS) != "none":  # one-off imports: none
            policy = graph.get(key).freshness_policy
            assert policy is not None, f"{key.to_user_string()}: no freshness policy"
            daily = isinstance(graph.get(key).partitions_def, dg.TimeWindowPartitionsDefinition)
            assert policy == (mon.DAILY_FRESHNESS if daily else mon.WEEKLY_FRESHNESS), key
    assert graph.get(dg.AssetKey("migration_001_add_l2_feature_tables")).freshness_policy is None
    assert "freshness_checks_sensor" not in {s.name for s in defs.sensors or []}


@dg.asset(name="raw_l2_captures", partitions_def=DAILY)
def fake_raw():
    """Stand-in: the test writes the day's capture files."""


def test_raw_capture_checks_detect_formats(settings):
    import gzip

    import orjson

    folder = settings.raw_dir / "exchange=bybit" / "symbol=BTCUSDT" / f"date={DAY}"
    folder.mkdir(parents=True)
    record = {"exchange": "bybit", "symbol": "BTCUSDT", "timestamp_ms": 1751882400000,
              "received_timestamp_ms": 1751882400100, "type": "snapshot",
              "bids": [[100.0, 1.0]], "asks": [[100.1, 1.0]], "update_id": 1, "sequence_id": 1}
    (folder / "l2_data_BTC_USDT_USDT_20250707_100000.jsonl.gz").write_bytes(
        gzip.compress(orjson.dumps(record) + b"\n"))
    checks = mon.raw_capture_checks("raw_l2_captures")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([fake_raw, *checks], resources=build_resources(str(settings.home)),
                            partition_key=DAY, instance=instance, raise_on_error=False)
    evals = _checks_of(result, "raw_l2_captures")
    assert evals["schema"].passed, evals["schema"].description
    assert evals["row_count"].passed and evals["row_count"].metadata["files"].value == 1
    (folder / "zz_notes.txt.gz").write_bytes(gzip.compress(b"hello, not a capture\n"))
    result = dg.materialize([fake_raw, *checks], resources=build_resources(str(settings.home)),
                            partition_key=DAY, instance=instance, raise_on_error=False)
    evals = _checks_of(result, "raw_l2_captures")
    assert not evals["schema"].passed and "zz_notes.txt.gz" in evals["schema"].description


def _register(settings, meta: dict) -> str:
    import mlflow
    import mlflow.pyfunc

    from trade_pipeline.models.registry import MlflowTarget

    class Identity(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    target = MlflowTarget.from_settings(settings)
    client = target.client()
    found = client.get_experiment_by_name("checks-test")
    exp = found.experiment_id if found else client.create_experiment(
        "checks-test", artifact_location=settings.mlflow_artifact_uri)
    with target.active(), mlflow.start_run(experiment_id=exp):
        info = mlflow.pyfunc.log_model(name="model", python_model=Identity(), metadata=meta,
                                       registered_model_name="btc_l2_5s", pip_requirements=[])
    return str(info.registered_model_version)


def test_model_schema_check_uses_the_serving_contract(settings):
    from trade_pipeline.features.catalog import SPECS, catalog_hash

    features = ["mid_price", "spread"]
    good = {"features": features, "feature_versions": {f: SPECS[f].version for f in features},
            "feature_catalog_hash": catalog_hash()}
    stale = {**good, "feature_versions": {"mid_price": SPECS["mid_price"].version + 7,
                                          "spread": SPECS["spread"].version}}
    versions = [_register(settings, good), _register(settings, stale)]
    resources = build_resources(str(settings.home))
    checks = mon.model_checks(dg.AssetKey("l2_model"))
    outcomes = []

    def fake_model_for(version: str) -> dg.AssetsDefinition:
        @dg.asset(name="l2_model")
        def fake_model():
            return dg.MaterializeResult(metadata={"model_name": "btc_l2_5s",
                                                  "model_version": version, "rows": 10})

        return fake_model

    for version in versions:
        result = dg.materialize([fake_model_for(version), *checks], resources=resources,
                                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        outcomes.append(_checks_of(result, "l2_model")["schema"])
    assert outcomes[0].passed and "2 features match" in outcomes[0].description
    assert not outcomes[1].passed and "mid_price" in outcomes[1].description


def test_unpartitioned_asset_checked_inside_a_partitioned_run():
    """The demo runs every asset with the day's partition key: a check of an unpartitioned
    asset must still find that asset's (partition-less) materialization."""

    @dg.asset(partitions_def=DAILY)
    def daily_part():
        return dg.MaterializeResult(metadata={"rows": 3})

    @dg.asset(deps=[daily_part])
    def whole():
        return dg.MaterializeResult(metadata={"dagster/row_count": 5})

    checks = mon.metadata_checks(dg.AssetKey("whole"), None, has_gaps=False)
    result = dg.materialize([daily_part, whole, *checks], partition_key=DAY,
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    row_count = _checks_of(result, "whole")["row_count"]
    assert row_count.passed and row_count.metadata["rows"].value == 5


def _freshness_at(instance, asset: dg.AssetsDefinition, when: dt.datetime):
    """Dagster's own evaluator of the asset's policy, as the freshness daemon runs it."""
    import asyncio

    from dagster._core.definitions.freshness_evaluator import (
        FRESHNESS_EVALUATORS_BY_POLICY_TYPE,
    )
    from dagster._core.loader import LoadingContextForTest
    from dagster._core.test_utils import freeze_time

    node = mon.apply_freshness_policies(dg.Definitions(assets=[asset])) \
        .resolve_asset_graph().get(asset.key)
    evaluator = FRESHNESS_EVALUATORS_BY_POLICY_TYPE[type(node.freshness_policy)]()
    with freeze_time(when):
        return asyncio.run(evaluator.evaluate_freshness(LoadingContextForTest(instance), node))


def test_a_daily_asset_is_fresh_until_a_whole_day_is_missed():
    """The demo materializes yesterday's partition at any hour: fresh at once and all of the
    next day (today's partition, still incomplete, is never due); overdue only once the 06:00
    deadline of a day passes without any run since the previous deadline."""
    from dagster._core.definitions.freshness import FreshnessState

    @dg.asset(name="l2_features", partitions_def=DAILY)
    def daily_features():
        return dg.MaterializeResult(metadata={"dagster/row_count": 1})

    instance = dg.DagsterInstance.ephemeral()
    assert _freshness_at(instance, daily_features, dt.datetime.now(dt.UTC)) \
        == FreshnessState.UNKNOWN  # never materialized: not claimed overdue
    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    assert dg.materialize([daily_features], partition_key=yesterday, instance=instance).success
    done = dt.datetime.now(dt.UTC)
    first_deadline = done.replace(hour=6, minute=0, second=0, microsecond=0)
    if first_deadline <= done:
        first_deadline += dt.timedelta(days=1)
    second_deadline = first_deadline + dt.timedelta(days=1)
    for when, state in [
        (done + dt.timedelta(seconds=1), FreshnessState.PASS),
        (first_deadline + dt.timedelta(minutes=1), FreshnessState.PASS),
        (second_deadline - dt.timedelta(minutes=1), FreshnessState.PASS),
        (second_deadline + dt.timedelta(minutes=1), FreshnessState.FAIL),
    ]:
        assert _freshness_at(instance, daily_features, when) == state, when


def test_a_backtest_without_trades_is_a_result_when_it_says_why():
    """Zero rows with `empty_reason` (no signal cleared the costs) passes and says so; zero
    rows without a reason still warns (a real problem, e.g. signals that never filled)."""

    def backtest(meta: dict) -> dg.AssetsDefinition:
        @dg.asset(name="backtest_results", partitions_def=DAILY)
        def fake_backtest():
            return dg.MaterializeResult(metadata={"rows": 18000, **meta})

        return fake_backtest

    checks = mon.metadata_checks(dg.AssetKey("backtest_results"), DAILY, has_gaps=False)
    instance = dg.DagsterInstance.ephemeral()
    honest = {"dagster/row_count": 0, "empty_reason": "no trade: no signal cleared the costs"}
    result = dg.materialize([backtest(honest), *checks], partition_key=DAY, instance=instance)
    row_count = _checks_of(result, "backtest_results")["row_count"]
    assert row_count.passed
    assert row_count.description == "dagster/row_count = 0: no trade: no signal cleared the costs"
    result = dg.materialize([backtest({"dagster/row_count": 0}), *checks], partition_key=DAY,
                            instance=instance)
    row_count = _checks_of(result, "backtest_results")["row_count"]
    assert not row_count.passed and row_count.severity == dg.AssetCheckSeverity.WARN


def test_a_check_run_on_its_own_reads_the_latest_partition(settings):
    """Checks are not partitioned (a Dagster preview feature): executed without a partition
    (e.g. from the UI's checks tab) they check the asset's latest materialized partition."""
    write_partition(_features(), settings.lake_dir, "l2_features", KEY)
    checks = mon.lake_table_checks("l2_features", "l2_features")
    resources = build_resources(str(settings.home))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(checks, resources=resources, instance=instance,
                            selection=dg.AssetSelection.all_asset_checks(), raise_on_error=False)
    evals = _checks_of(result, "l2_features")
    assert not evals["row_count"].passed
    assert "has no materialized partition" in evals["row_count"].description
    assert dg.materialize([fake_features], partition_key=DAY, instance=instance).success
    result = dg.materialize(checks, resources=resources, instance=instance,
                            selection=dg.AssetSelection.all_asset_checks())
    evals = _checks_of(result, "l2_features")
    assert evals["row_count"].passed and evals["row_count"].metadata["partition"].value == DAY
    assert evals["schema"].passed, evals["schema"].description
