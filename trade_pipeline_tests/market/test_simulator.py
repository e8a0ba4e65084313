"""Simulator: deterministic, Bybit wire format, consistent deltas, readable by the book code."""

import datetime as dt
import itertools

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from trade_pipeline.market.bybit_ws import FrameKind, SequenceTracker, classify
from trade_pipeline.market.simulator import Simulation, SimulatorConfig, simulate, simulate_to_store
from trade_pipeline.settings import SettingsError
from trade_pipeline.storage import raw_store

START = dt.datetime(2025, 7, 7, tzinfo=dt.UTC)


def _config(seed: int = 1, duration_s: float = 30.0, start: dt.datetime = START) -> SimulatorConfig:
    return SimulatorConfig(start=start, duration_s=duration_s, seed=seed)


def _apply(book: dict, rows: list) -> None:
    for price, size in rows:
        if float(size) == 0.0:
            assert price in book, f"delete of a level the client does not hold: {price}"
            del book[price]
        else:
            book[price] = size


def test_same_seed_same_bytes_other_seed_differs():
    a = list(simulate(_config(seed=3)))
    b = list(simulate(_config(seed=3)))
    c = list(simulate(_config(seed=4)))
    assert a == b
    assert a != c


def test_wire_format_snapshot_first_u_plus_one_and_20ms_grid():
    frames = list(simulate(_config(seed=11, duration_s=60)))
    assert len(frames) > 60 * 20  # most 20 ms steps change something
    tracker = SequenceTracker()
    recv_prev = 0
    start_ms = int(START.timestamp() * 1000)
    for i, (recv_ns, text) in enumerate(frames):
        info = classify(text)
        assert info.kind is FrameKind.DATA and info.topic == "orderbook.50.BTCUSDT"
        assert info.push_type == ("snapshot" if i == 0 else "delta")
        assert info.u == i + 1
        assert not tracker.observe(info.push_type, info.u)
        obj = orjson.loads(text)
        assert list(obj) == ["topic", "type", "ts", "data", "cts"]
        assert list(obj["data"]) == ["s", "b", "a", "u", "seq"]
        assert (obj["ts"] - start_ms) % 20 == 0 and obj["cts"] < obj["ts"]
        assert recv_ns > obj["ts"] * 1_000_000 and recv_ns > recv_prev  # after the push, in order
        recv_prev = recv_ns
        for price, size in obj["data"]["b"] + obj["data"]["a"]:
            assert isinstance(price, str) and isinstance(size, str)
            assert round(float(price) * 10) == pytest.approx(float(price) * 10)  # 0.1 tick
            assert round(float(size) * 1000) == pytest.approx(float(size) * 1000)  # 0.001 lot
    first = orjson.loads(frames[0][1])["data"]
    assert len(first["b"]) == 50 and len(first["a"]) == 50
    assert 100_000 < float(first["b"][0][0]) < 116_000


@hsettings(max_examples=6, deadline=None)
@given(st.integers(0, 2**32), st.integers(5, 40))
def test_property_client_book_equals_simulator_top50(seed, seconds):
    """Applying the deltas as Bybit says (size 0 deletes) yields exactly the simulator's
    published top 50, never crossed, always 50 levels a side."""
    sim = Simulation(_config(seed=seed, duration_s=seconds))
    bids: dict = {}
    asks: dict = {}
    for _, text in sim.frames():
        data = orjson.loads(text)["data"]
        _apply(bids, data["b"])
        _apply(asks, data["a"])
        assert max(map(float, bids)) < min(map(float, asks))
    assert len(bids) == 50 and len(asks) == 50
    want_b = dict(orjson.loads(f"[{sim._levels_text(0)}]"))
    want_a = dict(orjson.loads(f"[{sim._levels_text(1)}]"))
    assert bids == want_b and asks == want_a


def test_bad_config_is_refused():
    with pytest.raises(SettingsError):
        SimulatorConfig(start=START, duration_s=-1)
    with pytest.raises(SettingsError):
        SimulatorConfig(start=START, symbol="BTC'; DROP TABLE trades; --")
    with pytest.raises(SettingsError):
        SimulatorConfig(start=dt.datetime(2025, 7, 7), duration_s=10)  # naive time


def test_simulate_to_store_then_build_snapshots(settings):
    from trade_pipeline.market.snapshots import build_snapshots

    start = dt.datetime(2025, 7, 7, 23, 59, 30, tzinfo=dt.UTC)  # crosses midnight
    cfg = _config(seed=5, duration_s=60, start=start)
    result = simulate_to_store(settings, cfg)
    assert result["days"] == ["2025-07-07", "2025-07-08"]
    day1 = raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", "2025-07-07")
    day2 = raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", "2025-07-08")
    assert len(day1) == 1 and len(day2) == 1
    lines = [line for p in day1 + day2 for line in raw_store.read_raw_file(p).lines]
    assert len(lines) == result["messages"]
    assert lines == list(itertools.islice(simulate(cfg), len(lines)))
    built = build_snapshots(day1 + day2)
    rep = built.report.to_dict()
    assert rep["messages"] == result["messages"]
    assert rep["gaps"] == 0 and rep["bad_lines"] == 0 and rep["crossed_skipped"] == 0
    assert rep["sessions"] == 1
    assert built.frame.height == 600  # 60 s at 100 ms, first and last grid times included
    # deterministic names: a second run without replace refuses to overwrite
    with pytest.raises(FileExistsError):
        simulate_to_store(settings, cfg)
    again = simulate_to_store(settings, cfg, replace=True)
    assert again["files"] == result["files"]


def test_cli_simulate_writes_the_raw_store(tmp_path, capsys):
    import json

    from trade_pipeline import cli
    from trade_pipeline.settings import Settings

    home = tmp_path / "home"
    argv = ["--home", str(home), "simulate", "--start", "2025-07-07T12:00:00", "--duration", "20",
            "--seed", "9"]
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    files = raw_store.raw_files_for_day(Settings.load(home=home), "bybit", "BTCUSDT", "2025-07-07")
    assert [str(p) for p in files] == summary["files"]
    assert files[0].name.startswith("120000")
    assert len(raw_store.read_raw_file(files[0]).lines) == summary["messages"] > 500
    assert cli.main(argv) == 2  # refuses to overwrite without --replace
    assert "exists" in capsys.readouterr().err
    assert cli.main([*argv, "--replace"]) == 0


def test_window_recentring_keeps_the_client_book_exact():
    """Huge, frequent jumps drive the price across the in-memory tick window, which is then
    recentred; the deltas must stay exact through it."""
    from trade_pipeline.market.simulator import I_BASE, SimulatorParams

    params = SimulatorParams(jump_rate=20, jump_mean_ticks=400)
    sim = Simulation(SimulatorConfig(start=START, duration_s=60, seed=0, params=params))
    bases = set()
    bids: dict = {}
    asks: dict = {}
    for _, text in sim.frames():
        bases.add(int(sim.st[I_BASE]))
        data = orjson.loads(text)["data"]
        _apply(bids, data["b"])
        _apply(asks, data["a"])
        assert max(map(float, bids)) < min(map(float, asks))
    assert len(bases) >= 2  # the window moved
    assert bids == dict(orjson.loads(f"[{sim._levels_text(0)}]"))
    assert asks == dict(orjson.loads(f"[{sim._levels_text(1)}]"))


_HASH_SCRIPT = """
import datetime as dt, hashlib
from trade_pipeline.market.simulator import Simulation, SimulatorConfig, SimulatorParams
cfg = SimulatorConfig(start=dt.datetime(2025, 7, 7, tzinfo=dt.UTC), duration_s=60, seed=0,
                      params=SimulatorParams(jump_rate=20, jump_mean_ticks=400))
h = hashlib.sha1()
for _, frame in Simulation(cfg).frames():
    h.update(frame.encode())
print(h.hexdigest())
"""


def test_same_bytes_in_another_process():
    """No dependence on memory layout (an out-of-range index in the numba core would show up
    as a stream that differs between processes)."""
    import subprocess
    import sys

    here: dict = {}
    exec(compile(_HASH_SCRIPT.replace("print(h.hexdigest())", "out = h.hexdigest()"),
                 "<hash>", "exec"), here)
    other = subprocess.run([sys.executable, "-c", _HASH_SCRIPT], capture_output=True, text=True,
                           check=True, timeout=120).stdout.strip()
    assert here["out"] == other


def test_replace_touches_only_this_seeds_files(settings):
    from trade_pipeline.market.simulator import SimulationConflict

    cfg = _config(seed=5, duration_s=5)
    first = simulate_to_store(settings, cfg)
    again = simulate_to_store(settings, cfg, replace=True)  # same seed: replaced
    assert again["files"] == first["files"]
    with pytest.raises(SimulationConflict, match="not mixed"):  # another seed: refused
        simulate_to_store(settings, _config(seed=6, duration_s=5), replace=True)
    assert [str(p) for p in raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT",
                                                          "2025-07-07")] == first["files"]
