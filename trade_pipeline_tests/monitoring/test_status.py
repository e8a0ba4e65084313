"""The monitor's data from a real migrated warehouse and lake; the CLI prints the same dict."""

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from trade_pipeline.cli import main
from trade_pipeline.lake.migrations import migrate
from trade_pipeline.lake.warehouse import session
from trade_pipeline.monitoring.status import collect
from trade_pipeline.storage.layout import PartitionKey, write_partition
from trade_pipeline_tests.defs.test_monitoring_assets import _features

from .helpers import random_walk_mids, snapshot_frame

DAY1, DAY2 = "2025-07-06", "2025-07-07"
T1 = dt.datetime(2025, 7, 6, 10, 0, tzinfo=dt.UTC)
T2 = dt.datetime(2025, 7, 7, 10, 0, tzinfo=dt.UTC)
N = 600


def _lake(settings):
    for day, t0, shift in ((DAY1, T1, 0.0), (DAY2, T2, 3.0)):
        key = PartitionKey("bybit", "BTCUSDT", day)
        mids = random_walk_mids(N, seed=len(day) + int(shift))
        write_partition(snapshot_frame(t0, [100 * i for i in range(N)], mids=mids),
                        settings.lake_dir, "l2_snapshots", key)
        feats = _features(N).with_columns(
            pl.col("timestamp").dt.offset_by(f"{(t0 - T2).days}d"),
            pl.col("mid_price") + shift,  # the newest day's mid_price drifts far away
        )
        write_partition(feats, settings.lake_dir, "l2_features", key)


def _register_champion(settings) -> None:
    """A registered model version with the metadata training logs (data range, horizon, top
    features) and the alias `champion`, in the home's real MLflow store."""
    import mlflow
    import mlflow.pyfunc

    from trade_pipeline.models.registry import MlflowTarget

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    target = MlflowTarget.from_settings(settings)
    client = target.client()
    exp = client.create_experiment("monitor-test", artifact_location=settings.mlflow_artifact_uri)
    meta = {"data_start": T1.isoformat(), "data_end": (T1 + dt.timedelta(hours=1)).isoformat(),
            "horizon": "1s", "top_features": ["mid_price", "spread"]}
    with target.active(), mlflow.start_run(experiment_id=exp):
        info = mlflow.pyfunc.log_model(name="model", python_model=Constant(), metadata=meta,
                                       registered_model_name="btc_l2_1s", pip_requirements=[])
    client.set_registered_model_alias("btc_l2_1s", "champion", info.registered_model_version)


def _warehouse(settings, with_champion: bool):
    with session(settings) as conn:
        migrate(conn, settings.lake_dir)
        if with_champion:
            mids = np.array(random_walk_mids(N, seed=len(DAY2) + 3))
            # A prediction that knows the future return: IC must come out near 1.
            fwd = np.append(mids[10:] / mids[:-10] - 1, [np.nan] * 10)
            conn.executemany(
                "INSERT INTO predictions (timestamp, exchange, symbol, model_name, model_version, "
                "prediction, signal, source, run_id) "
                "VALUES (?, 'bybit', 'BTCUSDT', 'btc_l2_1s', 1, ?, 1, 'paper', 'run-1')",
                [[T2 + dt.timedelta(milliseconds=100 * i), float(fwd[i]) if np.isfinite(fwd[i])
                  else None] for i in range(N)],
            )
            conn.executemany(
                "INSERT INTO trades (trade_id, run_id, source, timestamp, exchange, symbol, side, "
                "qty, price, fee, liquidity, position_after, realized_pnl) "
                "VALUES (?, 'run-1', 'paper', ?, 'bybit', 'BTCUSDT', ?, 0.01, 100000, 0.5, "
                "'taker', ?, ?)",
                [["t1", T2, "buy", 0.01, 0.0], ["t2", T2 + dt.timedelta(seconds=5), "sell", 0.0,
                                               12.0]],
            )


def test_everything_absent_on_an_empty_home(settings):
    data = collect(settings)
    for section in ("freshness", "features", "drift", "performance", "paper"):
        assert data[section]["status"] == "absent", section
    assert data["drift"]["reason"] == "no champion yet"


def test_without_champion_the_rest_still_reports(settings):
    _lake(settings)
    _warehouse(settings, with_champion=False)
    data = collect(settings, now=T2 + dt.timedelta(hours=2))
    assert data["features"]["status"] == "ok" and data["features"]["date"] == DAY2
    assert data["features"]["null_rate"] == pytest.approx(10 / N)
    assert data["drift"] == {"status": "absent", "reason": "no champion yet"}
    assert not (settings.home / "mlflow" / "mlflow.db").exists()  # the monitor created nothing
    assert data["performance"]["reason"].startswith("no predictions")
    assert data["paper"]["reason"].startswith("no paper trades")
    (btc,) = data["freshness"]["symbols"]
    assert btc["l2_snapshots"]["last_date"] == DAY2 and btc["gaps"][-1]["gap_rate"] == 0.0


def test_full_report_with_champion_predictions_and_trades(settings, capsys):
    _lake(settings)
    _warehouse(settings, with_champion=True)
    _register_champion(settings)
    data = collect(settings, now=T2 + dt.timedelta(hours=2))
    assert data["drift"]["status"] == "ok"
    (drift,) = data["drift"]["champions"]
    assert drift["status"] == "ok" and drift["latest_date"] == DAY2
    assert (drift["model"], drift["version"], drift["horizon"]) == ("btc_l2_1s", "1", "1s")
    assert drift["top"][0]["feature"] == "mid_price" and drift["top"][0]["psi"] > 1.0
    assert drift["top"][0]["model_top_feature"] and drift["max_psi_top_features"] > 1.0
    assert drift["psi"]["spread"] < 0.1  # same distribution on both days
    (model,) = data["performance"]["models"]
    assert model["status"] == "ok" and model["horizon"] == "1s"
    assert model["ic"] == pytest.approx(1.0, abs=1e-6) and model["hit_rate"] == 1.0
    assert model["unmatched"] == 0
    (run,) = data["paper"]["runs"]
    assert run["trades"] == 2 and run["net_pnl"] == pytest.approx(12.0 - 1.0)
    # The CLI prints the same data as JSON.
    assert main(["--home", str(settings.home), "monitor", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["drift"]["champions"][0]["top"][0]["feature"] == "mid_price"
    assert printed["paper"]["total_net_pnl"] == pytest.approx(11.0)
    # And the dashboard renders it.
    assert main(["--home", str(settings.home), "monitor", "--once"]) == 0
    out = capsys.readouterr().out
    assert "Paper PnL" in out and "mid_price" in out
