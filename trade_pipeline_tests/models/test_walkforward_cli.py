"""`trade-pipeline walkforward`: the JSON contract, the lake table, the warehouse, MLflow, the
registered model's retraining recommendation and the staleness sensor reading it."""

import datetime as dt
import json
import time

import dagster as dg
import polars as pl
import pytest

from trade_pipeline.cli import main
from trade_pipeline.models.walkforward import (
    WalkForwardConfig,
    WalkForwardError,
    duration_name,
    parse_duration,
    plan_windows,
    recommend,
)
from trade_pipeline.settings import Settings
from trade_pipeline_tests.models.synthetic import feature_frame

CONTRACT = {"windows": int, "oos_n": int, "oos_ic": float, "oos_ic_ci": list, "trades": int,
            "gross_return": float, "net_return": float}


@pytest.fixture(scope="module")
def features_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("wf") / "features.parquet"
    feature_frame(30_000, sessions=2, seed=3).write_parquet(path)  # ~50 min of 100 ms rows
    return path


@pytest.fixture(scope="module")
def run(features_file, tmp_path_factory):
    """A registered model of the same horizon, then the walk-forward through the CLI."""
    home = tmp_path_factory.mktemp("wfhome") / "home"
    assert main(["--home", str(home), "train", "--trials", "1", "--horizon", "1s",
                 "--features", str(features_file), "--folds", "1"]) == 0
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["--home", str(home), "walkforward", "--features", str(features_file),
                     "--train", "15m", "--test", "5m", "--horizon", "1s", "--trials", "1",
                     "--json"])
    assert code == 0
    return Settings.load(home=home), json.loads(buf.getvalue())


def test_json_contract(run) -> None:
    _settings, out = run
    for key, kind in CONTRACT.items():
        assert isinstance(out[key], kind), (key, out[key])
    lo, hi = out["oos_ic_ci"]
    assert isinstance(lo, float) and isinstance(hi, float) and lo <= out["oos_ic"] <= hi
    rec = out["recommended_retrain_every"]
    assert rec is None or parse_duration(rec) >= parse_duration("5m")
    assert out["windows"] == 8 and out["oos_n"] > 0.9 * 7 * 3000  # 50 min: 15 m train, 5 m tests
    assert out["oos_ic"] > 0.2  # the synthetic mid leans on the imbalance
    assert [d["age"] for d in out["ic_decay"]][:3] == [0, 1, 2]
    assert out["gross_return"] == pytest.approx(out["net_return"] + out["fees_paid"] / 10_000)


def test_stitched_predictions_in_the_lake_and_the_run_recorded(run) -> None:
    from trade_pipeline.storage.layout import list_partitions, read_partition
    from trade_pipeline.trading.store import read_run

    settings, out = run
    keys = list_partitions(settings.lake_dir, "walkforward_predictions")
    assert len(keys) == 1 == out["lake_partitions"]
    preds = read_partition(settings.lake_dir, "walkforward_predictions", keys[0])
    assert preds["run_id"].unique().to_list() == [out["run_id"]]
    assert sorted(preds["window_id"].unique().to_list()) == [w["window"] for w in out["per_window"]]
    assert preds.height == sum(w["test_rows"] for w in out["per_window"])
    # every prediction comes from a model trained before it, purged by the horizon
    assert (preds["timestamp"] - preds["trained_to"] > dt.timedelta(seconds=1)).all()
    assert preds["timestamp"].is_sorted()
    stored = read_run(settings, out["run_id"])
    metrics = json.loads(stored["result"]["metrics"][0])
    assert metrics["in_sample"] is False and stored["result"]["model"][0].startswith("walkforward:")
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    mlrun = client.get_run(out["mlflow_run_id"])
    assert mlrun.data.metrics["oos_ic"] == pytest.approx(out["oos_ic"])
    plots = {a.path for a in client.list_artifacts(mlrun.info.run_id, "plots")}
    assert plots == {"plots/ic_per_window.png", "plots/cumulative_net_pnl.png",
                     "plots/ic_decay.png"}


def test_recommendation_tagged_and_read_by_the_staleness_sensor(run) -> None:
    from trade_pipeline.defs.models import RetrainPolicy, build_retrain_sensors
    from trade_pipeline.defs.resources import build_resources
    from trade_pipeline.models.registry import MlflowTarget, champion_info
    from trade_pipeline.trading.walkforward import tag_recommendation

    settings, out = run
    assert out["recommendation_tagged_on"] == "btc_l2_1s"
    target = MlflowTarget.from_settings(settings)
    assert champion_info(target, "btc_l2_1s")["recommended_retrain_every"] == \
        out["recommended_retrain_every"]
    sensor = {s.name: s for s in build_retrain_sensors(
        RetrainPolicy(horizon="1s", max_age=dt.timedelta(days=30)))}["retrain_on_age"]

    def tick():
        with dg.build_sensor_context(resources=build_resources(str(settings.home)),
                                     instance=dg.DagsterInstance.ephemeral()) as ctx:
            return sensor.evaluate_tick(ctx)

    if out["recommended_retrain_every"]:
        assert "walk-forward recommendation" in tick().skip_message
    # A short recommendation overrides the policy's 30 days (a retrain needs a feature day).
    from trade_pipeline.storage.layout import PartitionKey, write_partition

    write_partition(feature_frame(100, sessions=1), settings.lake_dir, "l2_features",
                    PartitionKey("bybit", "BTCUSDT", "2025-07-07"))
    tag_recommendation(settings, "btc_l2_1s", "1s", "test-run")
    time.sleep(1.2)
    r = tick()
    assert len(r.run_requests) == 1
    assert "walk-forward recommendation" in r.run_requests[0].tags["trade_pipeline/retrain_reason"]
    # No recommendation: back to the policy.
    tag_recommendation(settings, "btc_l2_1s", None, "test-run")
    assert "(retrain after 30 days, 0:00:00: policy)" in tick().skip_message


def test_windows_are_purged_and_anchored() -> None:
    import numpy as np

    ts = np.arange(0, 3600 * 10, 1) * 100_000  # 1 h of 100 ms rows, in µs
    ts = ts[: 36_000]
    cfg = WalkForwardConfig(train=parse_duration("20m"), test=parse_duration("10m"),
                            step=parse_duration("5m"))
    windows, skipped = plan_windows(ts, np.ones(ts.size, bool), cfg)
    assert [w.test_start_us for w in windows][:2] == [1_200_000_000, 1_500_000_000]
    for w in windows:
        assert ts[w.train_rows].max() + 5_000_000 < w.test_start_us  # embargo = horizon 5 s
        assert ts[w.test_rows].min() >= w.test_start_us and ts[w.test_rows].max() < w.test_end_us
    assert not skipped or all(s["reason"] == "too few rows" for s in skipped)


def test_durations_and_recommendation_rule() -> None:
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert duration_name(dt.timedelta(minutes=90)) == "1h30m"
    assert duration_name(parse_duration("2d")) == "2d"
    for bad in ("3 hours", "h", "-1h", "0s"):
        with pytest.raises(WalkForwardError):
            parse_duration(bad)
    decay = [{"age": 0, "ic": 0.1, "ci_low": 0.08}, {"age": 1, "ic": 0.08, "ci_low": 0.06},
             {"age": 2, "ic": 0.05, "ci_low": 0.03}, {"age": 3, "ic": 0.09, "ci_low": 0.07}]
    assert recommend(decay, 0.5, dt.timedelta(hours=1)) == dt.timedelta(hours=2)
    assert recommend([{"age": 0, "ic": 0.01, "ci_low": -0.01}], 0.5, dt.timedelta(hours=1)) is None
    assert recommend([{"age": 0, "ic": -0.1, "ci_low": -0.2}], 0.5, dt.timedelta(hours=1)) is None


def test_bad_arguments_are_one_line_errors(features_file, tmp_path, capsys) -> None:
    home = str(tmp_path / "home")
    assert main(["--home", home, "walkforward", "--features", str(features_file),
                 "--train", "3 hours", "--test", "1h", "--no-store"]) == 2
    assert "invalid duration" in capsys.readouterr().err
    assert main(["--home", home, "walkforward", "--features", str(features_file),
                 "--train", "3h", "--test", "1h", "--horizon", "1s", "--no-store"]) == 2
    assert "no walk-forward window fits" in capsys.readouterr().err
    assert main(["--home", home, "walkforward", "--train", "3h", "--test", "1h",
                 "--no-store"]) == 2  # empty lake
    assert "no l2_features partitions" in capsys.readouterr().err
    frame = pl.read_parquet(features_file).head(10)
    assert frame.height == 10
