"""Replay server: Bybit v5 protocol on loopback, a real WebSocket client, injected faults."""

import datetime as dt
import gzip
import time

import orjson
import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect as _connect

from trade_pipeline.market.bybit_ws import ping_request, subscribe_request
from trade_pipeline.market.replay_server import (
    Faults,
    ReplayServer,
    ReplayServerThread,
    ReplaySourceError,
)
from trade_pipeline.market.simulator import SimulatorConfig, simulate
from trade_pipeline.storage.raw_store import RawStoreWriter

TOPIC = "orderbook.50.BTCUSDT"


def connect(url):
    # An unbounded client queue: the client keeps reading, so its close handshake is
    # answered at once even while the server is still pushing at full speed.
    return _connect(url, max_queue=None)


def _recorded(path):
    """The capture's messages as dicts (format 2)."""
    out = []
    try:
        with gzip.open(path, "rb") as src:
            for line in src:
                out.append(orjson.loads(line))
    except EOFError:
        pass
    return out


def _pushes(ws, n, timeout=10.0):
    """Read n data pushes (skipping control frames)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        frame = orjson.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
        if "topic" in frame:
            got.append(frame)
    return got


def _drain(ws, idle=1.0):
    """Read data pushes until the server stays quiet for `idle` seconds."""
    got = []
    while True:
        try:
            frame = orjson.loads(ws.recv(timeout=idle))
        except TimeoutError:
            return got
        if "topic" in frame:
            got.append(frame)


def _book_after(messages):
    bids, asks = {}, {}
    for m in messages:
        if m["type"] == "snapshot":
            bids.clear()
            asks.clear()
        for book, rows in ((bids, m["bids"]), (asks, m["asks"])):
            for p, q in rows:
                if q == 0:
                    book.pop(float(p), None)
                else:
                    book[float(p)] = float(q)
    return bids, asks


def test_protocol_ack_pong_and_full_stream(bybit_delta_files):
    path = bybit_delta_files[0]
    recorded = _recorded(path)
    with ReplayServerThread([path], speed=0) as srv, connect(srv.url) as ws:
        ws.send(ping_request("p1"))
        pong = orjson.loads(ws.recv(timeout=5))
        assert pong["op"] == "ping" and pong["ret_msg"] == "pong" and pong["success"] is True
        assert pong["req_id"] == "p1" and pong["conn_id"]
        ws.send(subscribe_request(["orderbook.50.ETHUSDT"], "bad"))
        nack = orjson.loads(ws.recv(timeout=5))
        assert nack["success"] is False and "ETHUSDT" in nack["ret_msg"]
        ws.send(subscribe_request([TOPIC], "s1"))
        ack = orjson.loads(ws.recv(timeout=5))
        assert ack == {"success": True, "ret_msg": "", "conn_id": pong["conn_id"],
                       "req_id": "s1", "op": "subscribe"}
        pushes = _pushes(ws, len(recorded))
    assert [p["data"]["u"] for p in pushes] == [m["update_id"] for m in recorded]
    assert [p["type"] for p in pushes] == [m["type"] for m in recorded]
    assert [p["ts"] for p in pushes] == [m["timestamp_ms"] for m in recorded]
    for p, m in zip(pushes, recorded, strict=True):
        assert p["topic"] == TOPIC and p["data"]["s"] == "BTCUSDT"
        assert [[float(a), float(b)] for a, b in p["data"]["b"]] == m["bids"]
        assert [[float(a), float(b)] for a, b in p["data"]["a"]] == m["asks"]


def test_reconnect_gets_snapshot_of_current_book(bybit_delta_files):
    path = bybit_delta_files[0]
    recorded = _recorded(path)
    cut = 150
    with ReplayServerThread([path], speed=0, faults=Faults(disconnect_after=[cut])) as srv:
        with connect(srv.url) as ws:
            ws.send(subscribe_request([TOPIC]))
            first = _pushes(ws, cut)
            with pytest.raises(ConnectionClosedError):  # the server aborts the TCP connection
                while True:
                    ws.recv(timeout=5)
        with connect(srv.url) as ws:
            ws.send(subscribe_request([TOPIC]))
            snap, nxt = _pushes(ws, 2)
        assert srv.stats.disconnects_injected == 1 and srv.stats.connections == 2
    assert first[-1]["data"]["u"] == recorded[cut - 1]["update_id"]
    assert snap["type"] == "snapshot" and snap["data"]["u"] == recorded[cut - 1]["update_id"]
    assert nxt["type"] == "delta" and nxt["data"]["u"] == recorded[cut]["update_id"]
    bids, asks = _book_after(recorded[:cut])
    top_b = dict(sorted(bids.items(), reverse=True)[:50])
    top_a = dict(sorted(asks.items())[:50])
    assert {float(p): float(q) for p, q in snap["data"]["b"]} == top_b
    assert {float(p): float(q) for p, q in snap["data"]["a"]} == top_a


def test_drop_at_u_and_drop_every_leave_gaps(bybit_delta_files):
    path = bybit_delta_files[0]
    us = [m["update_id"] for m in _recorded(path)]
    drop = us[40]
    with ReplayServerThread([path], speed=0, faults=Faults(drop_at_u={drop}, drop_every=100)) as srv, \
            connect(srv.url) as ws:
        ws.send(subscribe_request([TOPIC]))
        pushes = _drain(ws)
        assert srv.stats.finished
        dropped = srv.stats.dropped_u
    got = [p["data"]["u"] for p in pushes]
    assert drop in dropped and drop not in got
    assert len(dropped) == 1 + (len(us) - 1) // 100  # deltas only: the snapshot is never dropped
    assert sorted(set(got) | set(dropped)) == us
    assert len(dropped) == len(us) - len(got)


def test_paced_replay_takes_recorded_time_over_speed(bybit_delta_files):
    path = bybit_delta_files[0]
    recorded = _recorded(path)[:200]
    span_s = (recorded[-1]["timestamp_ms"] - recorded[0]["timestamp_ms"]) / 1000
    speed = 10.0
    with ReplayServerThread([path], speed=speed) as srv, connect(srv.url) as ws:
        ws.send(subscribe_request([TOPIC]))
        t0 = time.monotonic()
        _pushes(ws, 200, timeout=60)
        elapsed = time.monotonic() - t0
    assert elapsed >= span_s / speed * 0.9  # never faster than the recorded pace allows


def test_raw_store_source_is_replayed_verbatim(tmp_path):
    cfg = SimulatorConfig(start=dt.datetime(2025, 7, 7, tzinfo=dt.UTC), duration_s=10, seed=2)
    frames = list(simulate(cfg))
    with RawStoreWriter(tmp_path / "raw", "bybit", "BTCUSDT") as w:
        for ts, frame in frames:
            w.append(ts, frame)
    with ReplayServerThread(w.paths, speed=0) as srv, connect(srv.url) as ws:
        ws.send(subscribe_request([TOPIC]))
        got = []
        while len(got) < len(frames):
            text = ws.recv(timeout=10)
            if '"topic"' in text:
                got.append(text)
    assert got == [f for _, f in frames]


def test_truncated_capture_replays_lines_before_the_break(bybit_truncated_file):
    recorded = _recorded(bybit_truncated_file)
    with ReplayServerThread([bybit_truncated_file], speed=0) as srv, connect(srv.url) as ws:
        ws.send(subscribe_request([TOPIC]))
        pushes = _drain(ws)
        assert srv.stats.finished
        assert srv.read_stats.truncated_files == [str(bybit_truncated_file)]
    assert len(pushes) == len(recorded)


def test_unknown_or_empty_source_is_refused(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ReplaySourceError):
        ReplayServer([empty])
    with pytest.raises(ValueError):
        ReplayServer([empty], speed=-1)


def test_cli_replay_server_serves_and_reports(tmp_path, bybit_delta_files):
    """`trade-pipeline replay-server` in a subprocess: url on stdout, Bybit protocol, SIGINT
    stops it with a JSON report."""
    import json
    import signal
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "trade-pipeline"
    path = bybit_delta_files[0]
    n = len(_recorded(path))
    proc = subprocess.Popen(
        [str(exe), "--home", str(tmp_path / "home"), "replay-server", str(path), "--port", "0",
         "--speed", "0", "--drop-every", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        hello = json.loads(proc.stdout.readline())
        assert hello["url"].startswith("ws://127.0.0.1:") and hello["topic"] == TOPIC
        with connect(hello["url"]) as ws:
            ws.send(subscribe_request([TOPIC]))
            pushes = _drain(ws)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["dropped"] == (n - 1) // 50 and report["sent"] == len(pushes) == n - report["dropped"]
