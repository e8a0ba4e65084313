"""`trade-pipeline backtest` on real Bybit snapshots: JSON output, warehouse rows, MLflow run."""

import json

import numpy as np
import polars as pl
import pytest

from trade_pipeline.cli import main
from trade_pipeline.market.snapshots import build_snapshots


@pytest.fixture(scope="module")
def real_snapshots(bybit_delta_files, tmp_path_factory):
    path = next(p for p in bybit_delta_files if "20250706_064238" in p.name)
    frame = build_snapshots([path]).frame
    out = tmp_path_factory.mktemp("bt") / "snap.parquet"
    frame.write_parquet(out)
    return frame, out


def _signals(frame: pl.DataFrame, path, every: int = 20):
    rng = np.random.default_rng(7)
    sig = np.repeat(rng.integers(-1, 2, size=frame.height // every + 1), every)[: frame.height]
    pl.DataFrame({"timestamp": frame["timestamp"], "signal": sig}).write_parquet(path)
    return sig


@pytest.mark.slow
def test_backtest_json_and_store(real_snapshots, tmp_path, capsys):
    frame, snap = real_snapshots
    _signals(frame, tmp_path / "p.parquet")
    home = tmp_path / "home"
    rc = main(["--home", str(home), "backtest", "--predictions", str(tmp_path / "p.parquet"),
               "--snapshots", str(snap), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    m = out["metrics"]
    assert m["rows"] == frame.height and m["n_fills"] == len(out["trades"]) > 0
    for key in ("total_return", "sharpe_1m", "max_drawdown", "hit_rate", "profit_factor",
                "turnover", "fees_paid"):
        assert key in m
    # Every market fill is on the far side of the book (never at mid) and pays the taker fee.
    for t in out["trades"]:
        assert t["fee"] == pytest.approx(t["notional"] * 0.00055)
    fills = pl.DataFrame(out["trades"]).with_columns(
        pl.col("fill_at").str.to_datetime(time_zone="UTC").dt.cast_time_unit("us"))
    joined = fills.join(frame, left_on="fill_at", right_on="timestamp")
    assert joined.height == len(out["trades"])
    buys = joined.filter(pl.col("side") == 1)
    assert (buys["price"] >= buys["ask_price_1"]).all()
    sells = joined.filter(pl.col("side") == -1)
    assert (sells["price"] <= sells["bid_price_1"]).all()
    # Stored: result row, trades; MLflow run with the plot.
    from trade_pipeline.settings import Settings
    from trade_pipeline.trading.store import read_run

    stored = read_run(Settings.load(home=home), out["run_id"])
    assert stored["result"].height == 1 and stored["trades"].height == len(out["trades"])
    assert json.loads(stored["result"]["metrics"][0])["fees_paid"] == pytest.approx(m["fees_paid"])
    import mlflow

    s = Settings.load(home=home)
    runs = mlflow.MlflowClient(tracking_uri=s.mlflow_tracking_uri).search_runs(
        [mlflow.MlflowClient(tracking_uri=s.mlflow_tracking_uri).get_experiment_by_name(
            "trading/bybit/BTCUSDT").experiment_id])
    assert runs and runs[0].data.metrics["fees_paid"] == pytest.approx(m["fees_paid"])


def test_backtest_window_and_config(real_snapshots, tmp_path, capsys):
    frame, snap = real_snapshots
    _signals(frame, tmp_path / "p.parquet")
    t0 = frame["timestamp"][100].isoformat()
    t1 = frame["timestamp"][150].isoformat()
    (tmp_path / "exec.toml").write_text("taker_fee = 0.001\nlatency_steps = 3\n")
    rc = main(["--home", str(tmp_path / "h"), "backtest", "--predictions", str(tmp_path / "p.parquet"),
               "--snapshots", str(snap), "--start", t0, "--end", t1, "--config",
               str(tmp_path / "exec.toml"), "--json", "--no-store"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"]["rows"] == 50 and out["run_id"] is None
    assert out["config"]["execution"]["latency_steps"] == 3
    for t in out["trades"]:
        assert t["fee"] == pytest.approx(t["notional"] * 0.001)


def test_backtest_bad_inputs(real_snapshots, tmp_path, capsys):
    _, snap = real_snapshots
    rc = main(["--home", str(tmp_path / "h"), "backtest", "--predictions", str(tmp_path / "none.parquet"),
               "--snapshots", str(snap), "--no-store"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text("latency_steps = 0\n")
    rc = main(["--home", str(tmp_path / "h"), "backtest", "--predictions", str(tmp_path / "none.parquet"),
               "--snapshots", str(snap), "--config", str(tmp_path / "bad.toml")])
    assert rc == 2 and "latency_steps" in capsys.readouterr().err


def test_backtest_reads_the_lake_window(real_snapshots, tmp_path, capsys):
    from trade_pipeline.settings import Settings
    from trade_pipeline.storage.layout import PartitionKey, write_partition

    frame, _ = real_snapshots
    home = tmp_path / "home"
    settings = Settings.load(home=home).ensure_dirs()
    day = frame["timestamp"][0].date().isoformat()
    write_partition(frame, settings.lake_dir, "l2_snapshots", PartitionKey("bybit", "BTCUSDT", day))
    _signals(frame, tmp_path / "p.parquet")
    rc = main(["--home", str(home), "backtest", "--predictions", str(tmp_path / "p.parquet"),
               "--start", day, "--end", day, "--json", "--no-store"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["rows"] == frame.height
    rc = main(["--home", str(home), "backtest", "--predictions", str(tmp_path / "p.parquet"),
               "--start", "2024-01-01", "--end", "2024-01-02", "--no-store"])
    assert rc == 2 and "no l2_snapshots partitions" in capsys.readouterr().err
