"""Collector end to end against the replay server on 127.0.0.1 (real WebSockets, real files).

Faults: a server-side disconnect mid-stream, a dropped message (update-id gap), an
unreachable server, a refused subscription, SIGTERM, SIGKILL, wrong config values.
"""

import asyncio
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from trade_pipeline import cli
from trade_pipeline.market.collector import Collector, CollectorConfig, SubscribeError
from trade_pipeline.market.replay_server import Faults, ReplayServerThread
from trade_pipeline.storage import raw_store
from trade_pipeline.storage.raw_store import RawStoreWriter, read_raw_file

TRADE_PIPELINE = Path(sys.executable).parent / "trade-pipeline"


def _recorded(path) -> list[dict]:
    out = []
    try:
        with gzip.open(path, "rb") as src:
            out = [orjson.loads(line) for line in src]
    except EOFError:
        pass
    return out


def _recorded_u(path) -> list[int]:
    return [m["update_id"] for m in _recorded(path)]


def _collect(settings, url: str, until_messages: int | None = None, duration_s: float = 20.0,
             until=None, **cfg) -> tuple[Collector, RawStoreWriter]:
    """Run the collector in this process until it holds `until_messages` (or `until(stats)`
    is true, or the duration has passed)."""
    writer = RawStoreWriter(settings.raw_dir, "bybit", "BTCUSDT")
    cfg.setdefault("backoff_initial_s", 0.05)
    config = CollectorConfig(url=url, duration_s=duration_s, **cfg)
    collector = Collector(config, writer, seed=1)
    if until is None and until_messages is not None:
        def until(stats):
            return stats.messages >= until_messages

    async def main():
        async def watch():
            if until is None:
                return
            while not until(collector.stats):
                await asyncio.sleep(0.02)
            collector.stop()

        watcher = asyncio.create_task(watch())
        try:
            await collector.run()
        finally:
            watcher.cancel()

    try:
        asyncio.run(main())
    finally:
        writer.close()
    return collector, writer


def _lines(paths) -> list[tuple[int, str]]:
    return [line for p in paths for line in read_raw_file(p).lines]


def test_disconnect_and_dropped_message_end_to_end(settings, bybit_delta_files):
    from trade_pipeline.market.snapshots import build_snapshots

    path = bybit_delta_files[0]
    us = _recorded_u(path)
    drop_u, cut = us[100], 300
    faults = Faults(disconnect_after=[cut], drop_at_u={drop_u})
    with ReplayServerThread([path], speed=0, faults=faults) as srv:
        # every recorded push but the dropped one, plus the snapshot sent on reconnect
        expected = len(us) - 1 + 1
        # the gap's own resubscribe is off here: this test is about the reconnect
        collector, writer = _collect(settings, srv.url, until_messages=expected,
                                     resync_on_gap=False)
        sent = srv.stats.sent
    stats = collector.stats
    assert stats.connections == 2 and stats.reconnects == 1 and stats.acks == 2  # resubscribed
    assert stats.gaps == 1  # the dropped push
    assert stats.snapshots == 2
    assert stats.messages == expected == sent
    assert any("ConnectionClosed" in r for r in stats.disconnect_reasons)
    lines = _lines(writer.paths)
    assert len(lines) == stats.messages
    got_u = [orjson.loads(frame)["data"]["u"] for _, frame in lines]
    assert drop_u not in got_u
    assert [t for t, _ in lines] == sorted(t for t, _ in lines)  # receive times in order
    assert writer.paths[0].parent == raw_store.day_dir(
        settings.raw_dir, "bybit", "BTCUSDT", raw_store.day_of_ns(lines[0][0]))

    built = build_snapshots(writer.paths)
    report = built.report.to_dict()
    assert report["messages"] == stats.messages and report["bad_lines"] == 0
    assert report["gaps"] == 1
    assert report["sessions"] == 2  # the reconnect snapshot starts a new session
    assert built.frame["session_id"].n_unique() == 2
    assert report["skipped_after_gap"] == cut - 100  # deltas between the gap and the reconnect


def test_disconnect_without_loss_resumes_with_snapshot(settings, bybit_delta_files):
    from trade_pipeline.market.snapshots import build_snapshots

    path = bybit_delta_files[0]
    us = _recorded_u(path)
    with ReplayServerThread([path], speed=0, faults=Faults(disconnect_after=[200, 400])) as srv:
        collector, writer = _collect(settings, srv.url, until_messages=len(us) + 2)
    assert collector.stats.reconnects == 2 and collector.stats.gaps == 0
    frames = [orjson.loads(f) for _, f in _lines(writer.paths)]
    kinds = [f["type"] for f in frames]
    assert kinds.count("snapshot") == 3 and kinds[200] == "snapshot" and kinds[400] == "snapshot"  # N counts all pushes sent
    # the book rebuilt across the reconnects equals the one rebuilt from the recording
    rebuilt = build_snapshots(writer.paths).frame
    direct = build_snapshots([path]).frame
    cols = [c for c in direct.columns if c not in ("session_id", "received_timestamp")]
    assert rebuilt.select(cols).equals(direct.select(cols))


def test_paced_reconnect_skips_the_missed_pushes_into_the_snapshot(settings, bybit_delta_files):
    """Paced like a live exchange: pushes due while the client was away are not sent, the
    reconnect snapshot carries their effect, and the book rows match the recording's."""
    from trade_pipeline.market.snapshots import build_snapshots

    path = bybit_delta_files[1]  # 2 min, ~37 pushes/s
    us = _recorded_u(path)
    with ReplayServerThread([path], speed=40.0, faults=Faults(disconnect_after=[300])) as srv:
        def until(stats):
            return srv.stats.finished and stats.messages >= srv.stats.sent

        # a short backoff: at 40x, a 0.3 s wait skips 12 s of recorded time while the receive
        # clock advances 0.3 s, which DATA.md rule 7 (rightly) calls a clock fault
        collector, writer = _collect(settings, srv.url, until=until, backoff_initial_s=0.05)
        skipped = srv.stats.skipped_while_away
        assert collector.stats.messages == srv.stats.sent == len(us) - skipped + 1
    assert collector.stats.reconnects == 1 and collector.stats.gaps == 0
    assert skipped > 0
    rebuilt = build_snapshots(writer.paths)
    assert rebuilt.report.to_dict()["sessions"] == 2
    direct = build_snapshots([path]).frame
    book = [c for c in direct.columns if c.startswith(("bid_", "ask_"))] + ["update_id"]
    joined = rebuilt.frame.select("timestamp", *book).join(
        direct.select("timestamp", *book), on="timestamp", suffix="_direct")
    assert joined.height == rebuilt.frame.height > 0
    for col in book:
        assert joined[col].equals(joined[f"{col}_direct"]), col


def test_pings_are_answered(settings, bybit_delta_files):
    with ReplayServerThread([bybit_delta_files[0]], speed=1.0) as srv:
        collector, _ = _collect(settings, srv.url, duration_s=1.2, ping_interval_s=0.2)
        pongs_sent = srv.stats.pongs
    assert collector.stats.pongs >= 3 and collector.stats.pongs <= pongs_sent
    assert collector.stats.reconnects == 0


def test_duration_ends_a_busy_stream(settings, bybit_delta_files):
    """The duration stops the collector while pushes pour in at full speed."""
    big = max(bybit_delta_files, key=lambda p: p.stat().st_size)
    with ReplayServerThread([big], speed=0) as srv:
        t0 = time.monotonic()
        collector, writer = _collect(settings, srv.url, duration_s=1.0)
        took = time.monotonic() - t0
    assert took < 5, took
    assert collector.stats.messages > 0
    assert len(_lines(writer.paths)) == collector.stats.messages  # flushed on the way out


def test_unreachable_server_backs_off_and_stops(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nobody listens there
    t0 = time.monotonic()
    collector, writer = _collect(settings, f"ws://127.0.0.1:{port}", duration_s=1.5)
    assert time.monotonic() - t0 < 5
    assert collector.stats.messages == 0 and collector.stats.connections == 0
    # backoff 0.05, 0.1, 0.2, 0.4, 0.8 s (+-50 % jitter): a handful of attempts, not thousands
    assert 2 <= collector.stats.reconnects <= 10
    assert writer.paths == []


def test_refused_subscription_is_a_clear_error(settings, bybit_delta_files):
    with ReplayServerThread([bybit_delta_files[0]], speed=0) as srv:
        writer = RawStoreWriter(settings.raw_dir, "bybit", "ETHUSDT")
        collector = Collector(CollectorConfig(url=srv.url, symbol="ETHUSDT", duration_s=5), writer)
        with pytest.raises(SubscribeError, match="ETHUSDT"):
            asyncio.run(collector.run())
        writer.close()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["collect", "--duration", "-5"], "positive"),
        (["collect", "--duration", "nan"], "positive"),
        (["collect", "--duration", "5", "--symbol", "BTC'; DROP TABLE trades; --"], "invalid symbol"),
        (["collect", "--duration", "5", "--url", "http://127.0.0.1:1"], "ws://"),
        (["replay-server", "/nonexistent.jsonl.gz", "--port", "0"], "no such file"),
        (["replay-server", "x.gz", "--port", "70000"], "port"),
        (["simulate", "--duration", "0"], "positive"),
        (["simulate", "--start", "yesterday"], "invalid --start"),
        (["import-captures", "/nonexistent.gz"], "no such file"),
    ],
)
def test_wrong_config_values_exit_2(tmp_path, capsys, argv, message):
    try:
        code = cli.main(["--home", str(tmp_path / "home"), *argv])
    except SystemExit as exc:  # argparse's own validation
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err


def _spawn_collect(home: Path, url: str, duration: float) -> subprocess.Popen:
    return subprocess.Popen(
        [str(TRADE_PIPELINE), "--home", str(home), "collect", "--duration", str(duration),
         "--url", url, "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_lines(home: Path, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted((home / "raw").rglob("*.raw.gz"))
        if files and len(_lines(files)) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"collector wrote fewer than {n} lines in {timeout} s")


def test_sigkill_loses_at_most_the_last_second(tmp_path, bybit_delta_files):
    """A collector killed with SIGKILL leaves every flushed push readable."""
    big = max(bybit_delta_files, key=lambda p: p.stat().st_size)  # 21 min, ~35 pushes/s
    speed = 4.0  # ~140 pushes/s
    home = tmp_path / "home"
    with ReplayServerThread([big], speed=speed) as srv:
        proc = _spawn_collect(home, srv.url, duration=60)
        try:
            _wait_for_lines(home, 200, timeout=30)
            time.sleep(0.7)
            sent_before = srv.stats.sent
            killed_ns = time.time_ns()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            sent_after = srv.stats.sent
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == -signal.SIGKILL
    files = sorted(home.rglob("*.raw.gz"))
    lines = _lines(files)
    got_u = [orjson.loads(f)["data"]["u"] for _, f in lines]
    recorded = _recorded(big)
    us = [m["update_id"] for m in recorded]
    assert got_u == us[: len(got_u)]  # a clean prefix of the stream, nothing reordered
    span_s = (recorded[-1]["timestamp_ms"] - recorded[0]["timestamp_ms"]) / 1000
    rate = speed * len(us) / span_s  # mean pushes per wall second
    # what the collector received before its last flush is on disk: the newest readable
    # push was received at most ~1 s (the flush interval) before the kill
    assert (killed_ns - lines[-1][0]) / 1e9 < 1.6, (killed_ns - lines[-1][0]) / 1e9
    # and, counted on the server's side, about a second of pushes is missing at most (plus
    # what was still in flight in the socket buffers)
    lost = sent_before - len(lines)
    assert lost <= rate * 2 + 50, (sent_before, sent_after, len(lines), rate)
    assert len(lines) <= sent_after


def test_sigterm_closes_cleanly_with_summary(tmp_path, bybit_delta_files):
    home = tmp_path / "home"
    with ReplayServerThread([bybit_delta_files[1]], speed=2.0) as srv:
        proc = _spawn_collect(home, srv.url, duration=60)
        try:
            _wait_for_lines(home, 50, timeout=30)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    files = [Path(p) for p in summary["files"]]
    lines = _lines(files)
    assert summary["messages"] == len(lines) > 0  # nothing buffered was lost
    assert summary["bytes"] == sum(p.stat().st_size for p in files)
    assert summary["gaps"] == 0 and summary["reconnects"] == 0
    assert not any(read_raw_file(p).truncated for p in files)
