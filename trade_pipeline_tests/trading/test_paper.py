"""Paper trading on the replay server (loopback) against the backtest on the same file:
same trades and PnL; predictions and trades in the warehouse, features in Redis, A/B shadow,
kill switch and stale-data halt."""

import asyncio
import json
import threading
import time

import numpy as np
import pytest
import redis

from trade_pipeline.market.replay_server import ReplayServerThread
from trade_pipeline.market.snapshots import build_snapshots
from trade_pipeline.trading.backtest import run_backtest
from trade_pipeline.trading.engine import TradingConfig
from trade_pipeline.trading.execution import ExecutionConfig
from trade_pipeline.trading.inputs import model_predictions
from trade_pipeline.trading.paper import build_trader, run_paper, run_stream
from trade_pipeline.trading.paper_config import PaperConfig
from trade_pipeline.trading.risk import KillSwitch, StaleDataGuard
from trade_pipeline.trading.store import read_run
from trade_pipeline.trading.strategy import StrategyConfig


def _file(files, stamp):
    return next(p for p in files if stamp in p.name)


def _config(preds: np.ndarray, q: float = 0.8, **exe) -> TradingConfig:
    entry = float(np.nanquantile(np.abs(preds), q))
    return TradingConfig(ExecutionConfig(latency_steps=2, **exe),
                         StrategyConfig(entry_threshold=entry, exit_threshold=entry / 4,
                                        order_qty=0.01, max_position=0.02, drawdown_stop=None,
                                        cooldown_steps=5))


@pytest.mark.slow
def test_paper_equals_backtest_on_replayed_data(bybit_delta_files, test_models, settings, redis_target):
    champion, challenger = test_models
    path = _file(bybit_delta_files, "20250706_070028")
    # Batch: file -> snapshots -> batch features -> predictions -> backtest.
    snaps = build_snapshots([path]).frame
    preds = model_predictions(champion, snaps)
    config = _config(preds["prediction"].to_numpy())
    bt = run_backtest(snaps, preds, config)
    assert len(bt.trades) >= 4, "the test needs a few trades to compare"
    # Live: replay server on loopback -> paper trading (champion + challenger in shadow).
    # Paced (2 minutes of data in ~4 s) so the periodic warehouse flush runs mid-stream
    # however fast the machine is.
    with ReplayServerThread([path], speed=30) as srv:
        out = run_paper(settings, PaperConfig(url=srv.url, duration_s=60, stale_after_s=30,
                                              redis_url=redis_target.url,
                                              redis_prefix=redis_target.prefix, ttl_s=60,
                                              flush_every_s=0.5),
                        trading=config, model=champion, shadow=challenger,
                        end_of_stream=lambda: srv.finished.is_set())
    assert out["stop_reason"] == "end_of_stream"
    assert out["rows"] == snaps.height
    assert out["trades"] == [t.as_dict() for t in bt.trades]
    assert out["metrics"]["final_equity"] == bt.metrics["final_equity"]
    assert out["metrics"]["fees_paid"] == bt.metrics["fees_paid"]
    assert out["tick_to_signal_rows"] == snaps.height and out["tick_to_signal_p99_us"] > 0

    # Warehouse: the run row (with latency figures), the trades, both models' predictions.
    stored = read_run(settings, out["run_id"])
    metrics = json.loads(stored["result"]["metrics"][0])
    assert metrics["source"] == "paper" and metrics["tick_to_signal_p99_us"] == out["tick_to_signal_p99_us"]
    assert metrics["ab"]["shadow"] == "btc_l2_1s@challenger"
    assert out["written"]["flushes_before_end"] >= 1  # rows reach the warehouse while running
    assert stored["trades"].height == len(bt.trades) == out["written"]["trades"]
    assert stored["trades"]["trade_id"].to_list() == [f"{i:07d}" for i in range(len(bt.trades))]
    assert stored["trades"]["price"].to_list() == [t.price for t in bt.trades]
    by_version = stored["predictions"].partition_by("model_version", as_dict=True)
    assert set(by_version) == {(1,), (2,)}
    assert by_version[(1,)]["role"].unique().to_list() == ["champion"]
    assert by_version[(2,)]["role"].unique().to_list() == ["shadow"]
    live = by_version[(1,)]["prediction"].to_numpy()
    np.testing.assert_allclose(live, preds["prediction"].to_numpy(), rtol=0, atol=1e-12)
    # Online store: the latest row's 118 features, timestamp and model version, with a TTL.
    r = redis.Redis.from_url(redis_target.url)
    key = f"{redis_target.prefix}:features:bybit:BTCUSDT"
    assert 0 < r.ttl(key) <= 60
    h = r.hgetall(key)
    feats = json.loads(h[b"features"])
    assert len(feats) == 118 and h[b"model_version"] == b"1"
    assert int(h[b"timestamp_us"]) == int(snaps["timestamp"][-1].timestamp() * 1e6)
    assert feats["bid_price_1"] == snaps["bid_price_1"][-1]
    # MLflow: the paper run with the A/B comparison and the latency figures.
    import mlflow

    run = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_run(out["mlflow_run_id"])
    assert "ab_prediction_corr" in run.data.metrics and "tick_to_signal_p99_us" in run.data.metrics


def _always_in(preds) -> TradingConfig:
    return TradingConfig(ExecutionConfig(), StrategyConfig(entry_threshold=0.0, exit_threshold=0.0,
                                                           order_qty=0.01, max_position=0.01,
                                                           drawdown_stop=None))


def test_stale_data_flattens_and_stops(bybit_delta_files, test_models, settings):
    champion, _ = test_models
    path = _file(bybit_delta_files, "20250707_034621")
    with ReplayServerThread([path], speed=0) as srv:
        t = time.monotonic()
        out = run_paper(settings, PaperConfig(url=srv.url, duration_s=30, stale_after_s=0.5,
                                              store=False, mlflow=False),
                        trading=_always_in(None), model=champion)
    assert out["stop_reason"] == "stale_data" and time.monotonic() - t < 10
    assert out["trades"][-1]["reason"] == "stale_data"
    assert out["metrics"]["final_position"] == 0.0 and out["halted"] == "stale_data"


def _when_positioned(trader, action):
    """A watcher thread: runs `action` once the trader holds a position."""
    def watch():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if trader.engine.account.position != 0.0:
                action()
                return
            time.sleep(0.01)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def _run_with_kill(settings, champion, path, kill: KillSwitch, trigger):
    trader = build_trader(settings, _always_in(None), champion)
    watcher = _when_positioned(trader, trigger)
    with ReplayServerThread([path], speed=2) as srv:
        # The stale guard is not under test here: a generous limit keeps a slow CI machine
        # (kernel compile, load) from halting the run before the kill switch fires.
        loop = asyncio.run(run_stream(trader, srv.url, "BTCUSDT", 30,
                                      stale=StaleDataGuard(20), kill=kill))
    watcher.join(1)
    return trader, loop


def test_kill_switch_redis_key_flattens_and_stops(bybit_delta_files, test_models, settings, redis_target):
    champion, _ = test_models
    path = _file(bybit_delta_files, "20250707_034621")
    r = redis.Redis.from_url(redis_target.url)
    key = f"{redis_target.prefix}:kill"
    kill = KillSwitch(redis_client=r, redis_key=key)
    trader, loop = _run_with_kill(settings, champion, path, kill, lambda: r.set(key, "1"))
    assert loop.stop_reason == f"kill_switch:redis:{key}"
    assert trader.engine.trades[-1].reason == loop.stop_reason
    assert trader.engine.account.position == 0.0 and trader.engine.halted == loop.stop_reason
    assert loop.seconds < 15


def test_kill_switch_file(bybit_delta_files, test_models, settings):
    champion, _ = test_models
    path = _file(bybit_delta_files, "20250707_034621")
    kill_file = settings.home / "KILL"
    trader, loop = _run_with_kill(settings, champion, path, KillSwitch(path=kill_file), kill_file.touch)
    assert loop.stop_reason == f"kill_switch:file:{kill_file}"
    assert trader.engine.trades[-1].reason == loop.stop_reason
    assert trader.engine.account.position == 0.0


def test_paper_survives_a_server_disconnect_and_a_gap(bybit_delta_files, test_models, settings):
    """A dropped connection is reconnected (new session from the server's snapshot); a
    dropped push is a sequence gap the sampler reports; trading goes on."""
    from trade_pipeline.market.replay_server import Faults

    champion, _ = test_models
    path = _file(bybit_delta_files, "20250707_034621")
    trader = build_trader(settings, _always_in(None), champion)
    with ReplayServerThread([path], speed=0, faults=Faults(disconnect_after=[200], drop_every=400)) as srv:
        loop = asyncio.run(run_stream(trader, srv.url, "BTCUSDT", 30, stale=StaleDataGuard(5),
                                      kill=KillSwitch(), end_of_stream=lambda: srv.finished.is_set()))
        assert srv.stats.disconnects_injected == 1
    assert loop.stop_reason == "end_of_stream" and loop.connections == 2
    assert srv.stats.subscribes == 2  # the new connection subscribed again
    assert loop.stream["disconnects"] == {"ConnectionClosedError": 1}
    report = trader.sampler.report()
    assert report["gaps"] >= 1
    ts = np.asarray(trader.main.ts_us)
    assert trader.rows > 30 and (np.diff(ts) > 0).all()
    assert trader.engine.trades, "trading continued"
    assert loop.seconds < 10, loop.seconds


def test_paper_reconnects_resubscribes_and_reports_disconnects_by_reason(
        bybit_delta_files, test_models, settings):
    """The server drops the connection twice mid-stream (no close frame: a network failure).
    Each time the session reconnects, subscribes again, restarts from the server's fresh
    snapshot and goes on trading to the end of the stream; the summary, the warehouse row
    and the MLflow run count the connections and the disconnects by reason."""
    import mlflow

    from trade_pipeline.market.replay_server import Faults

    champion, _ = test_models
    path = _file(bybit_delta_files, "20250707_034621")
    snaps = build_snapshots([path]).frame
    # in and out around the median prediction: trades all along the stream
    preds = model_predictions(champion, snaps)["prediction"].to_numpy()
    mid = float(np.nanmedian(np.abs(preds)))
    config = TradingConfig(ExecutionConfig(), StrategyConfig(
        entry_threshold=mid, exit_threshold=0.99 * mid, order_qty=0.01, max_position=0.01,
        drawdown_stop=None))
    # records 1-100 on the first connection; the second gets a snapshot and records 101-199
    # (the model's signal changes often in the first 10 s of this capture)
    drops = [100, 200]
    with ReplayServerThread([path], speed=0, faults=Faults(disconnect_after=drops)) as srv:
        out = run_paper(settings, PaperConfig(url=srv.url, duration_s=30, stale_after_s=10),
                        trading=config, model=champion,
                        end_of_stream=lambda: srv.finished.is_set())
        server = srv.stats
    assert server.disconnects_injected == 2 and server.connections == server.subscribes == 3
    assert out["stop_reason"] == "end_of_stream" and out["error"] is None
    assert out["connections"] == 3 and out["disconnects"] == {"ConnectionClosedError": 2}
    stream = out["stream"]
    assert stream["reconnects"] == 2 and stream["healthy_connections"] == 3
    assert stream["attempts"] == 3 and len(stream["last_errors"]) == 2

    # Trading went on after the second drop, to the last row of the stream.
    second_drop_us = json.loads(_lines(path)[drops[1] - 1])["timestamp_ms"] * 1000
    stored = read_run(settings, out["run_id"])
    last_row_us = int(snaps["timestamp"][-1].timestamp() * 1e6)
    assert int(stored["predictions"]["timestamp"].max().timestamp() * 1e6) == last_row_us
    assert out["rows"] > 0.9 * snaps.height, (out["rows"], snaps.height)
    later = [t for t in out["trades"] if second_drop_us < t["fill_us"] <= last_row_us]
    assert len(later) >= 2, "trades after the last reconnect"
    metrics = json.loads(stored["result"]["metrics"][0])
    assert metrics["stream"]["disconnects"] == {"ConnectionClosedError": 2}
    assert metrics["stream"]["connections"] == 3
    run = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_run(out["mlflow_run_id"])
    assert run.data.metrics["stream_connections"] == 3
    assert run.data.metrics["stream_disconnects"] == 2
    assert run.data.metrics["stream_disconnects.ConnectionClosedError"] == 2


def _lines(path) -> list[str]:
    import gzip

    with gzip.open(path, "rt") as f:
        return f.read().splitlines()


def test_server_never_up_is_one_connect_failed_line_after_the_policy_attempts(test_models, settings):
    from trade_pipeline.market.ws_reconnect import ReconnectPolicy

    champion, _ = test_models
    policy = ReconnectPolicy(initial_s=0.05, cap_s=0.1, max_failures=3)
    out = run_paper(settings, PaperConfig(url=f"ws://127.0.0.1:{_free_port()}", duration_s=30,
                                          store=False, mlflow=False, reconnect=policy),
                    trading=_always_in(None), model=champion)
    assert out["stop_reason"] == "connect_failed" and out["seconds"] < 5
    err = out["error"]
    assert err.startswith("connect_failed: stream never connected: ws://127.0.0.1:"), err
    assert "3 connection attempts failed in a row" in err and "ConnectionRefusedError" in err
    assert "\n" not in err
    assert out["stream"]["attempts"] == 3 and out["connections"] == 0
    assert out["disconnects"] == {"ConnectionRefusedError": 3}
    assert out["rows"] == 0 and out["trades"] == []


def test_kill_switch_and_deadline_act_while_waiting_to_reconnect(test_models, settings):
    """Housekeeping goes on between attempts: with 3 s backoff waits, the kill switch and the
    end of the duration stop the session within a tick, not after the wait."""
    from trade_pipeline.market.ws_reconnect import ReconnectPolicy

    champion, _ = test_models
    slow = ReconnectPolicy(initial_s=3.0, cap_s=3.0, jitter=0.0, max_failures=3)
    url = f"ws://127.0.0.1:{_free_port()}"
    kill_file = settings.home / "KILL"
    timer = threading.Timer(0.5, kill_file.touch)
    timer.start()
    try:
        out = run_paper(settings, PaperConfig(url=url, duration_s=30, store=False, mlflow=False,
                                              reconnect=slow, kill_file=kill_file),
                        trading=_always_in(None), model=champion)
    finally:
        timer.cancel()
    assert out["stop_reason"] == f"kill_switch:file:{kill_file}" and out["seconds"] < 2
    assert out["stream"]["attempts"] == 1 and out["error"] is None
    kill_file.unlink()
    out = run_paper(settings, PaperConfig(url=url, duration_s=0.5, store=False, mlflow=False,
                                          reconnect=slow, kill_file=kill_file),
                    trading=_always_in(None), model=champion)
    assert out["stop_reason"] == "duration" and out["seconds"] < 1.5
    assert out["stream"]["attempts"] == 1


def test_default_policy_gives_up_on_an_unreachable_url_before_the_stale_halt(test_models, settings):
    champion, _ = test_models
    out = run_paper(settings, PaperConfig(url="ws://127.0.0.1:1", duration_s=10, store=False,
                                          mlflow=False),
                    trading=_always_in(None), model=champion)
    assert out["stop_reason"] == "connect_failed" and out["seconds"] < 5
    assert out["stream"]["attempts"] == PaperConfig.reconnect.max_failures == 5
    assert out["rows"] == 0


def test_stream_lost_for_good_flattens_with_a_disconnected_line(bybit_delta_files, test_models,
                                                                settings):
    """A healthy stream whose server goes away: the policy's attempts fail, the session
    flattens its position and says `disconnected` (not a connect failure, not stale data)."""
    from trade_pipeline.market.ws_reconnect import ReconnectPolicy

    champion, _ = test_models
    path = _file(bybit_delta_files, "20250707_034621")
    server = ReplayServerThread([path], speed=2)
    srv = server.__enter__()

    def go_away():
        deadline = time.monotonic() + 20
        while srv.stats.sent < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.__exit__(None, None, None)

    thread = threading.Thread(target=go_away, daemon=True)
    thread.start()
    try:
        out = run_paper(settings, PaperConfig(
            url=srv.url, duration_s=30, stale_after_s=30, store=False, mlflow=False,
            reconnect=ReconnectPolicy(initial_s=0.05, cap_s=0.2, max_failures=3)),
            trading=_always_in(None), model=champion)
    finally:
        thread.join(30)  # go_away() stops the server in any case
    assert out["stop_reason"] == "disconnected" and out["seconds"] < 15
    assert out["error"].startswith("disconnected: stream lost after 1 connection(s) and not "
                                   "restored: ws://127.0.0.1:"), out["error"]
    assert out["connections"] == 1 and out["stream"]["attempts"] == 3
    reasons = out["disconnects"]
    assert reasons.get("ConnectionRefusedError") == 2 and sum(reasons.values()) == 3, reasons
    assert out["trades"][-1]["reason"] == "disconnected"
    assert out["metrics"]["final_position"] == 0.0 and out["halted"] == "disconnected"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
