"""The `backtest_results` asset: one day's snapshots, the registered champion, the warehouse
rows, the MLflow run and the equity/drawdown plot in the metadata."""

import json

import dagster as dg
import pytest

from trade_pipeline.defs.resources import build_resources
from trade_pipeline.defs.trading import backtest_results
from trade_pipeline.settings import Settings
from trade_pipeline_tests.trading.helpers import register, train_booster

DAY = "2025-07-07"


@pytest.fixture(autouse=True)
def _no_mlflow_env(monkeypatch):
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which Settings.load reads.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


@pytest.mark.slow
def test_backtest_results_asset(bybit_delta_files, tmp_path):
    from trade_pipeline.features.batch import compute_features
    from trade_pipeline.market.snapshots import build_snapshots
    from trade_pipeline.storage.layout import PartitionKey, write_partition
    from trade_pipeline.trading.store import read_run

    home = tmp_path / "home"
    settings = Settings.load(home=home).ensure_dirs()
    train = build_snapshots([next(p for p in bybit_delta_files if "20250707_052632" in p.name)]).frame
    train_features = compute_features(train)
    register(settings, train_booster(train_features, 1, 40), "btc_l2_1s", "champion",
             train_features)
    day = build_snapshots([next(p for p in bybit_delta_files if "20250707_104036" in p.name)]).frame
    write_partition(day, settings.lake_dir, "l2_snapshots", PartitionKey("bybit", "BTCUSDT", DAY))
    exec_toml = tmp_path / "exec.toml"
    exec_toml.write_text("latency_steps = 2\n[strategy]\nentry_threshold = 0.00001\n")

    result = dg.materialize(
        [backtest_results], resources=build_resources(str(home)), partition_key=DAY,
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"backtest_results": {"config": {
            "model": "btc_l2_1s@champion", "exec_config": str(exec_toml)}}}},
    )
    assert result.success
    meta = result.asset_materializations_for_node("backtest_results")[0].metadata
    assert meta["rows"].value == day.height
    assert meta["equity_curve"].value.startswith("![equity and drawdown](data:image/png;base64,")
    run_id = meta["run_id"].value
    stored = read_run(settings, run_id)
    assert stored["result"]["model"][0] == "btc_l2_1s/1"
    assert json.loads(stored["result"]["config"][0])["execution"]["latency_steps"] == 2
    assert stored["trades"].height == meta["dagster/row_count"].value > 0
    assert stored["predictions"].height == day.height
    import mlflow

    run = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_run(meta["mlflow_run_id"].value)
    assert run.data.tags["run_id"] == run_id
    artifacts = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri).list_artifacts(
        run.info.run_id, "plots")
    assert [a.path for a in artifacts] == ["plots/equity_drawdown.png"]


def test_backtest_results_fails_without_snapshots(tmp_path):
    home = tmp_path / "home"
    Settings.load(home=home).ensure_dirs()
    with pytest.raises(dg.Failure, match="l2_snapshots has no rows"):
        dg.materialize([backtest_results], resources=build_resources(str(home)), partition_key=DAY,
                       instance=dg.DagsterInstance.ephemeral())


@pytest.mark.slow
def test_event_backtest_results_asset(bybit_delta_files, tmp_path):
    """The day's raw captures on the event engine under the GLFT maker (touch arrivals):
    fills with markouts in the metadata, the MLflow run with the equity/inventory/markout plot."""
    from trade_pipeline.defs.trading import event_backtest_results
    from trade_pipeline.storage.raw_store import import_capture

    home = tmp_path / "home"
    settings = Settings.load(home=home).ensure_dirs()
    capture = next(p for p in bybit_delta_files if "20250707_051509" in p.name)
    import_capture(settings, capture, "bybit", "BTCUSDT", day=DAY)
    run_toml = tmp_path / "run.toml"
    run_toml.write_text(
        "[event_execution]\nfeed_latency_ms = 5.0\nmaker_fee = -0.00005\n"
        "[event_run]\nstrategy = \"market_maker\"\ndrawdown_stop = 0.5\n"
        "[market_maker]\narrival = \"touch\"\nwindow = 600\nadj1 = 0.05\n")
    result = dg.materialize(
        [event_backtest_results], resources=build_resources(str(home)), partition_key=DAY,
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"event_backtest_results": {"config": {"run_config": str(run_toml)}}}})
    assert result.success
    meta = result.asset_materializations_for_node("event_backtest_results")[0].metadata
    assert meta["strategy"].value == "market_maker" and meta["messages"].value == 44077
    assert meta["trade_events"].value == 0  # a recording of the book topic alone
    assert meta["dagster/row_count"].value == meta["metric_fills"].value > 0
    assert meta["plots"].value.startswith("![equity, inventory, markouts](data:image/png;base64,")
    assert {"metric_pnl_spread_capture", "metric_pnl_fees", "metric_pnl_inventory_pnl",
            "metric_fill_ratio_qty", "metric_markout_5s_mean_bp"} <= set(meta)
    # the PnL split adds up
    assert meta["metric_pnl_total"].value == pytest.approx(
        meta["metric_pnl_spread_capture"].value + meta["metric_pnl_inventory_pnl"].value
        - meta["metric_pnl_fees"].value)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    run = client.get_run(meta["mlflow_run_id"].value)
    assert run.data.tags["mode"] == "market_maker"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == ["plots/event_backtest.png"]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "tables")} == {
        "tables/fills.csv", "tables/orders.csv", "tables/equity.csv"}


@pytest.mark.slow
def test_event_backtest_results_asset_fills_on_the_days_trades(tmp_path):
    """A raw day with both topics (the simulator writes book and publicTrade pushes, as the
    collector does): the asset's engine gets the trades, and the GLFT maker's resting quotes
    fill on them."""
    from trade_pipeline.defs.ingest import raw_l2_captures
    from trade_pipeline.defs.trading import event_backtest_results

    home = tmp_path / "home"
    run_toml = tmp_path / "run.toml"
    run_toml.write_text(
        "[event_execution]\nfeed_latency_ms = 5.0\nmaker_fee = -0.00005\n"
        "[event_run]\nstrategy = \"market_maker\"\ndrawdown_stop = 0.5\n"
        "[market_maker]\nwindow = 600\n")
    result = dg.materialize(
        [raw_l2_captures, event_backtest_results], resources=build_resources(str(home)),
        partition_key=DAY, instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {
            "raw_l2_captures": {"config": {"source": "simulator", "duration_s": 300}},
            "event_backtest_results": {"config": {"run_config": str(run_toml)}}}})
    assert result.success
    meta = result.asset_materializations_for_node("event_backtest_results")[0].metadata
    assert meta["trade_events"].value > 300  # the simulator trades every second or so
    assert meta["dagster/row_count"].value == meta["metric_fills"].value > 0
