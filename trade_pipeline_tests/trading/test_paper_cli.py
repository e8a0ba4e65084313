"""`trade-pipeline paper` and `backtest --model` with models from the MLflow registry
(loaded through the serving module), on the replay server."""

import json
import signal

import pytest

from trade_pipeline.cli import main
from trade_pipeline.market.replay_server import ReplayServerThread

from .helpers import register


@pytest.fixture
def registered(settings, test_boosters, train_features):
    champion, challenger = test_boosters
    register(settings, champion, "btc_l2_1s", "champion", train_features)
    register(settings, challenger, "btc_l2_1s", "challenger", train_features)
    return settings


@pytest.mark.slow
def test_paper_cli_champion_with_shadow(registered, bybit_delta_files, redis_target, capsys):
    settings = registered
    path = next(p for p in bybit_delta_files if "20250706_064238" in p.name)
    old = signal.getsignal(signal.SIGUSR1)
    try:
        with ReplayServerThread([path], speed=0) as srv:
            rc = main(["--home", str(settings.home), "paper", "--duration", "3", "--url", srv.url,
                       "--model", "btc_l2_1s@champion", "--shadow", "btc_l2_1s@challenger",
                       "--redis-url", redis_target.url, "--redis-prefix", redis_target.prefix,
                       "--json"])
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stop_reason"] == "duration" and out["rows"] > 100
    assert out["model"] == "btc_l2_1s@champion" and out["ab"]["shadow"] == "btc_l2_1s@challenger"
    assert out["ab"]["champion_version"] == 1 and out["ab"]["shadow_version"] == 2
    assert out["tick_to_signal_p50_us"] > 0 and out["written"]["predictions"] == 2 * out["rows"]
    assert out["online_store_writes"] > 0


@pytest.mark.slow
def test_backtest_cli_with_registered_model(registered, bybit_delta_files, tmp_path, capsys):
    from trade_pipeline.market.snapshots import build_snapshots
    from trade_pipeline.trading.store import read_run

    settings = registered
    path = next(p for p in bybit_delta_files if "20250707_104036" in p.name)
    build_snapshots([path]).frame.write_parquet(tmp_path / "s.parquet")
    (tmp_path / "exec.toml").write_text("[strategy]\nentry_threshold = 0.00001\nexit_threshold = 0.0\n")
    rc = main(["--home", str(settings.home), "backtest", "--model", "btc_l2_1s@champion",
               "--snapshots", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "exec.toml"),
               "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "btc_l2_1s@champion" and out["metrics"]["n_fills"] > 0
    stored = read_run(settings, out["run_id"])
    assert stored["predictions"].height == out["metrics"]["rows"]
    assert set(stored["predictions"]["signal"].unique().to_list()) <= {-1, 0, 1}
    assert stored["predictions"]["source"].unique().to_list() == ["backtest"]
    assert stored["predictions"]["role"].unique().to_list() == [None]  # no A/B in a backtest


@pytest.mark.slow
def test_backtest_refuses_the_training_rows_unless_allowed(registered, bybit_delta_files,
                                                          tmp_path, capsys):
    """The registered models were trained on the 05:26 capture: backtesting it is refused,
    --allow-in-sample runs it and says so."""
    from trade_pipeline.market.snapshots import build_snapshots

    settings = registered
    path = next(p for p in bybit_delta_files if "20250707_052632" in p.name)
    frame = build_snapshots([path]).frame
    frame.write_parquet(tmp_path / "s.parquet")
    args = ["--home", str(settings.home), "backtest", "--model", "btc_l2_1s@champion",
            "--snapshots", str(tmp_path / "s.parquet"), "--json"]
    assert main([*args, "--no-store"]) == 2
    err = capsys.readouterr().err
    assert "inside the training range" in err and "--allow-in-sample" in err
    assert len(err.strip().splitlines()) == 1
    assert main([*args, "--allow-in-sample"]) == 0
    out = json.loads(capsys.readouterr().out)
    oos = out["provenance"]["out_of_sample"]
    assert oos["in_sample"] and oos["in_sample_rows"] == frame.height == out["metrics"]["rows"]
    assert out["provenance"]["thresholds"]["source"] == "model"
    from trade_pipeline.trading.store import read_run

    stored = json.loads(read_run(settings, out["run_id"])["result"]["metrics"][0])
    assert stored["in_sample"] is True


@pytest.mark.slow
def test_paper_refuses_a_replay_of_its_training_data(registered, bybit_delta_files, capsys):
    settings = registered
    path = next(p for p in bybit_delta_files if "20250707_052632" in p.name)
    old = signal.getsignal(signal.SIGUSR1)
    try:
        with ReplayServerThread([path], speed=0) as srv:
            rc = main(["--home", str(settings.home), "paper", "--duration", "5", "--url",
                       srv.url, "--model", "btc_l2_1s@champion", "--no-redis"])
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert rc == 2
    assert "inside the training range" in capsys.readouterr().err


@pytest.mark.slow
def test_paper_cli_stream_never_up_is_the_summary_and_one_line(registered, capsys):
    """No server at the URL: the default reconnect policy's attempts, then the JSON summary
    (connections 0, the refusals counted) and one line on stderr saying why, exit 1."""
    import socket

    settings = registered
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    old = signal.getsignal(signal.SIGUSR1)
    try:
        rc = main(["--home", str(settings.home), "paper", "--duration", "20", "--url",
                   f"ws://127.0.0.1:{port}", "--model", "btc_l2_1s@champion", "--no-redis",
                   "--json"])
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert rc == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"trade-pipeline: error: connect_failed: stream never connected: "
                             f"ws://127.0.0.1:{port}: 5 connection attempts failed in a row"), err
    out = json.loads(captured.out)
    assert out["stop_reason"] == "connect_failed" and out["connections"] == 0
    assert out["disconnects"] == {"ConnectionRefusedError": 5} and out["rows"] == 0
