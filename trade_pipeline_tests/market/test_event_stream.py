"""Event-stream builders: captures -> EVENT_DTYPE arrays (hftbacktest's layout).

The central check: replaying the depth events through a simple book gives, at every grid
time, exactly the top-10 book of the `l2_snapshots` row the grid sampler built from the same
capture (real Bybit deltas, the ccxt full books, Binance with its REST sync, damaged copies,
the simulator)."""

import dataclasses
import datetime as dt
import gzip
import json

import numpy as np
import orjson
import pytest

from trade_pipeline.cli import main
from trade_pipeline.market.event_stream import (
    EVENT_COUNTER_NAMES,
    build_event_stream,
    build_event_stream_from_lines,
    event_type,
    hftbacktest_order,
    read_event_npz,
    simulated_event_stream,
    write_event_npz,
)
from trade_pipeline.market.events import (
    BOTH_CLOCKS,
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_DTYPE,
    EXCH_EVENT,
    LOCAL_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
)
from trade_pipeline.market.schema import BOOK_COLUMNS
from trade_pipeline.market.simulator import SimulatorConfig, simulate
from trade_pipeline.market.snapshots import build_snapshots
from trade_pipeline_tests.market.event_book import SimpleBook, book_rows_at
from trade_pipeline_tests.market.streams import (
    T0_MS,
    interleave_trades,
    read_records,
    rec,
    trade_rec,
    write_lines,
)

T0 = 1_751_865_309_000
MS = 1_000_000


def brec(t_ms: int, *args, recv_ms: int, **kwargs) -> dict:
    """`streams.rec` at absolute times (rec counts from streams.T0_MS)."""
    return rec(t_ms - T0_MS, *args, recv_ms=recv_ms - T0_MS, **kwargs)


def assert_grid_equal(events: np.ndarray, snapshot_frame) -> int:
    """Every l2_snapshots row equals the simple book replayed to its grid time."""
    times = snapshot_frame["timestamp"].dt.epoch("us").to_numpy() * 1000
    got = book_rows_at(events, times)
    want = snapshot_frame.select(BOOK_COLUMNS).to_numpy()
    bad = np.flatnonzero(~np.all((got == want) | (np.isnan(got) & np.isnan(want)), axis=1))
    assert bad.size == 0, (f"{bad.size} of {len(times)} grid rows differ, first at "
                           f"{times[bad[0]]}: {got[bad[0]][:4]} vs {want[bad[0]][:4]}")
    return len(times)


def test_hand_worked_stream(tmp_path):
    lines = [
        brec(T0, "snapshot", 10, bids=[(100.0, 1.0), (99.9, 2.0)],
            asks=[(100.1, 3.0), (100.2, 4.0)], recv_ms=T0 + 5),
        brec(T0 + 20, "delta", 11, bids=[(100.0, 0.5)], asks=[(100.2, 0.0)], recv_ms=T0 + 25),
        trade_rec(T0 + 30, "a", "sell", 100.0, 0.5, recv_ms=T0 + 32),
        brec(T0 + 40, "delta", 12, bids=[(100.0, 0.0)], recv_ms=T0 + 45),
        brec(T0 + 60, "delta", 14, bids=[(99.8, 1.0)], recv_ms=T0 + 65),  # u 13 missing: gap
        trade_rec(T0 + 70, "b", "buy", 100.1, 1.0, recv_ms=T0 + 72),
        brec(T0 + 80, "delta", 15, asks=[(100.3, 1.0)], recv_ms=T0 + 85),  # book invalid
        brec(T0 + 100, "snapshot", 20, bids=[(99.5, 1.0)], asks=[(99.6, 2.0)], recv_ms=T0 + 105),
        trade_rec(T0 + 100, "a", "sell", 99.5, 0.1, recv_ms=T0 + 106),  # repeated id
    ]
    events, report = build_event_stream(write_lines(tmp_path / "h.jsonl.gz", lines))
    B, S = BUY_EVENT, SELL_EVENT
    want = [
        (DEPTH_CLEAR_EVENT | B, T0, T0 + 5, 99.9, 0.0),
        (DEPTH_CLEAR_EVENT | S, T0, T0 + 5, 100.2, 0.0),
        (DEPTH_SNAPSHOT_EVENT | B, T0, T0 + 5, 100.0, 1.0),
        (DEPTH_SNAPSHOT_EVENT | B, T0, T0 + 5, 99.9, 2.0),
        (DEPTH_SNAPSHOT_EVENT | S, T0, T0 + 5, 100.1, 3.0),
        (DEPTH_SNAPSHOT_EVENT | S, T0, T0 + 5, 100.2, 4.0),
        (DEPTH_EVENT | B, T0 + 20, T0 + 25, 100.0, 0.5),
        (DEPTH_EVENT | S, T0 + 20, T0 + 25, 100.2, 0.0),
        (TRADE_EVENT | S, T0 + 30, T0 + 32, 100.0, 0.5),
        (DEPTH_EVENT | B, T0 + 40, T0 + 45, 100.0, 0.0),
        (DEPTH_CLEAR_EVENT | B, T0 + 60, T0 + 65, 99.9, 0.0),  # the gap: both sides cleared
        (DEPTH_CLEAR_EVENT | S, T0 + 60, T0 + 65, 100.2, 0.0),
        (TRADE_EVENT | B, T0 + 70, T0 + 72, 100.1, 1.0),  # trades go on through a gap
        (DEPTH_CLEAR_EVENT | B, T0 + 100, T0 + 105, 99.5, 0.0),
        (DEPTH_CLEAR_EVENT | S, T0 + 100, T0 + 105, 99.6, 0.0),
        (DEPTH_SNAPSHOT_EVENT | B, T0 + 100, T0 + 105, 99.5, 1.0),
        (DEPTH_SNAPSHOT_EVENT | S, T0 + 100, T0 + 105, 99.6, 2.0),
    ]
    got = [(int(e["ev"]), int(e["exch_ts"]), int(e["local_ts"]), float(e["px"]),
            float(e["qty"])) for e in events]
    assert got == [(ev | BOTH_CLOCKS, t * MS, r * MS, px, q) for ev, t, r, px, q in want]
    assert events.dtype == EVENT_DTYPE and not events["order_id"].any()
    rep = report.to_dict()
    assert rep["book"]["gaps"] == 1 and rep["book"]["skipped_after_gap"] == 2
    assert rep["book"]["snapshots"] == 2 and rep["book"]["sessions"] == 2
    assert rep["trades"] == 2 and rep["duplicate_trades"] == 1
    assert rep["events"] == len(events) == sum(rep[k] for k in EVENT_COUNTER_NAMES[:4])
    assert rep["non_book"] == {"trade": 3}


def test_real_bybit_deltas_equal_the_grid_reconstruction(bybit_delta_files):
    events, report = build_event_stream(bybit_delta_files)
    snap = build_snapshots(bybit_delta_files)
    assert assert_grid_equal(events, snap.frame) == snap.frame.height > 20_000
    rep, srep = report.to_dict(), snap.report.to_dict()
    for key in ("applied", "sessions", "gaps", "duplicates", "snapshots"):
        assert rep["book"][key] == srep[key], key
    assert rep["messages"] == srep["messages"]
    assert rep["truncated_files"] == 1  # the real broken capture, reported
    assert np.all(np.diff(events["local_ts"]) >= 0)
    assert np.all(np.diff(events["exch_ts"]) >= 0)  # book only: the clamped time of record
    assert np.all(events["ev"] & BOTH_CLOCKS == BOTH_CLOCKS)


def test_real_ccxt_full_books_equal_the_grid_reconstruction(bybit_ccxt_file):
    events, report = build_event_stream([bybit_ccxt_file])
    snap = build_snapshots([bybit_ccxt_file])
    assert assert_grid_equal(events, snap.frame) > 25_000
    assert report.events["no_receive_time"] == report.messages  # local_ts = exch_ts
    assert np.array_equal(events["local_ts"], events["exch_ts"])


def test_damaged_copy_gap_clears_then_waits_for_the_next_snapshot(tmp_path, bybit_delta_files):
    a, b = read_records(bybit_delta_files[1]), read_records(bybit_delta_files[2])
    k = len(a) // 2
    holed = write_lines(tmp_path / "holed.jsonl.gz", a[:k] + a[k + 1:])  # one delta lost
    dup = write_lines(tmp_path / "dup.jsonl.gz", b[:50] + b[40:60] + b[60:])  # repeated part
    paths = [holed, dup]
    events, report = build_event_stream(paths)
    snap = build_snapshots(paths)
    assert assert_grid_equal(events, snap.frame) > 1000
    assert report.book["gaps"] == snap.report.to_dict()["gaps"] == 1
    assert report.book["duplicates"] == snap.report.to_dict()["duplicates"] == 10
    # at the gap: both sides cleared, then no book event until the next file's snapshot
    gap_local = a[k + 1]["received_timestamp_ms"] * MS
    kinds = event_type(events)
    at = np.flatnonzero((events["local_ts"] == gap_local) & (kinds == DEPTH_CLEAR_EVENT))
    assert len(at) == 2
    nxt = np.flatnonzero(events["local_ts"] == b[0]["received_timestamp_ms"] * MS)[0]
    assert at[-1] + 1 == nxt and kinds[nxt] == DEPTH_CLEAR_EVENT
    assert kinds[nxt + 2] == DEPTH_SNAPSHOT_EVENT


def test_real_capture_with_interleaved_trades(tmp_path, bybit_delta_files):
    lines, trades = interleave_trades(read_records(bybit_delta_files[0]), every=2)
    path = write_lines(tmp_path / "mixed.jsonl.gz", lines)
    events, report = build_event_stream([path])
    plain, _ = build_event_stream([bybit_delta_files[0]])
    is_trade = event_type(events) == TRADE_EVENT
    assert np.array_equal(events[~is_trade], plain)  # the book part is untouched
    tr = events[is_trade]
    assert tr["px"].tolist() == [t["price"] for t in trades]
    assert tr["qty"].tolist() == [t["size"] for t in trades]
    assert tr["exch_ts"].tolist() == [t["timestamp_ms"] * MS for t in trades]
    assert (tr["ev"] & BUY_EVENT != 0).tolist() == [t["side"] == "buy" for t in trades]
    # order of receipt: each trade comes right after the events of the line before it
    positions = np.flatnonzero(is_trade)
    for i, t in zip(positions[:200].tolist(), trades[:200], strict=False):
        assert events["local_ts"][i - 1] == t["received_timestamp_ms"] * MS
    assert report.to_dict()["trades"] == len(trades)


def test_binance_with_rest_sync_trades_and_hftbacktest(tmp_path, binance_files):
    events, report = build_event_stream(binance_files)
    snap = build_snapshots(binance_files)
    assert assert_grid_equal(events, snap.frame) > 6000
    rep = report.to_dict()
    assert rep["trades"] == rep["trade_events"] == 19_904
    assert rep["book"]["resyncs"] == 1 and rep["book"]["gaps"] == 0
    # Binance's local clock runs behind its exchange clock in this capture: reported
    assert rep["negative_feed_latency"] == len(events)
    # hftbacktest's order: exchange events by exch_ts, local events by local_ts
    from hftbacktest.data.validation import validate_event_order

    ordered = hftbacktest_order(events)
    validate_event_order(ordered)
    assert len(ordered) >= len(events)
    exch = ordered[ordered["ev"] & EXCH_EVENT != 0]
    local = ordered[ordered["ev"] & LOCAL_EVENT != 0]
    assert len(exch) == len(local) == len(events)
    path = write_event_npz(tmp_path / "bn.npz", events, report)
    back, meta = read_event_npz(path)
    assert np.array_equal(back, ordered) and meta["trades"] == 19_904
    # hftbacktest reads the file; its local book equals ours at the same local times
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    asset = (BacktestAsset().data([str(path)]).linear_asset(1.0)
             .constant_order_latency(1_000_000, 1_000_000).risk_adverse_queue_model()
             .no_partial_fill_exchange().trading_value_fee_model(0.0, 0.0)
             .tick_size(0.01).lot_size(0.00001))
    hbt = HashMapMarketDepthBacktest([asset])
    seen = []
    try:
        while hbt.elapse(30_000_000_000) == 0:
            d = hbt.depth(0)
            seen.append((hbt.current_timestamp, d.best_bid, d.best_bid_qty, d.best_ask,
                         d.best_ask_qty))
    finally:
        hbt.close()
    assert len(seen) > 15
    ours = book_rows_at(events, np.array([s[0] for s in seen]), clock="local_ts")
    for (_, bid, bid_q, ask, ask_q), row in zip(seen, ours, strict=True):
        assert bid == pytest.approx(row[0]) and bid_q == pytest.approx(row[1])
        assert ask == pytest.approx(row[20]) and ask_q == pytest.approx(row[21])


def test_simulator_trades_are_consistent_with_its_book(tmp_path):
    cfg = SimulatorConfig(start=dt.datetime(2025, 7, 7, tzinfo=dt.UTC), duration_s=120,
                          seed=31, trades=True)
    events, report = simulated_event_stream(cfg)
    kinds = event_type(events)
    n_trades = int((kinds == TRADE_EVENT).sum())
    assert n_trades > 1000 and report.to_dict()["bad_trades"] == 0
    # every trade takes liquidity the client's book shows: the opposite side, at a price
    # the taker would pay (at or beyond the touch), never more than the level holds
    book = SimpleBook()
    taken: dict[tuple[bool, float], float] = {}
    for e in events.tolist():
        ev, px, qty = e[0], e[3], e[4]
        if ev & 0xFF == TRADE_EVENT:
            buy = bool(ev & BUY_EVENT)
            side = book.asks if buy else book.bids
            assert px in side, (buy, px)
            # every better level was emptied by the push's earlier fills (a walk)
            better = [p for p in side if (p < px if buy else p > px)]
            assert all(taken.get((buy, p), 0.0) == pytest.approx(side[p]) for p in better)
            taken[(buy, px)] = taken.get((buy, px), 0.0) + qty
            assert taken[(buy, px)] <= side[px] + 1e-9
        else:
            taken.clear()  # the push's fills are over: the book delta follows
            book.apply(ev, px, qty)
    # and the depth events rebuild the grid reconstruction of the same pushes
    path = write_lines(tmp_path / "120000000000-0000beef.raw.gz",
                       [b"%d %s" % (ns, f.encode()) for ns, f in simulate(cfg)])
    snap = build_snapshots([path])
    assert snap.report.non_book == {"trade": report.to_dict()["trade_report"]["trade_lines"]}
    assert assert_grid_equal(events, snap.frame) == 1200
    again, _ = build_event_stream([path])
    assert np.array_equal(again, events)


def test_simulator_book_frames_do_not_depend_on_trades():
    cfg = SimulatorConfig(start=dt.datetime(2025, 7, 7, tzinfo=dt.UTC), duration_s=30, seed=3)
    plain = [f for _, f in simulate(cfg)]
    mixed = [f for _, f in simulate(dataclasses.replace(cfg, trades=True))]
    assert [f for f in mixed if f.startswith('{"topic":"orderbook')] == plain
    pushes = [orjson.loads(f) for f in mixed if '"publicTrade.' in f]
    assert pushes and all(p["type"] == "snapshot" and p["data"] for p in pushes)
    ids = [t["i"] for p in pushes for t in p["data"]]
    assert len(set(ids)) == len(ids)


def test_from_lines_equals_from_file_and_npz_roundtrip(tmp_path, bybit_delta_files):
    src = bybit_delta_files[0]
    with gzip.open(src, "rb") as f:
        lines = f.read().splitlines()
    a, _ = build_event_stream([src])
    b, _ = build_event_stream_from_lines(lines, "bybit")
    assert np.array_equal(a, b)
    path = write_event_npz(tmp_path / "x.npz", a, for_hftbacktest=False)
    back, meta = read_event_npz(path)
    assert np.array_equal(back, a) and meta == {}
    with pytest.raises(ValueError, match="npz"):
        write_event_npz(tmp_path / "x.bin", a)


def test_cli_events(tmp_path, capsys, bybit_delta_files):
    out = tmp_path / "e.npz"
    assert main(["events", "--input", str(bybit_delta_files[0]), "--output", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    data, meta = read_event_npz(out)
    assert report["events"] == len(data) == meta["events"] > 1000
    assert main(["events", "--input", str(bybit_delta_files[0]), "--output",
                 str(tmp_path / "e.parquet")]) == 2
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["events", "--input", str(empty), "--output", str(tmp_path / "n.npz")]) == 1
    assert not (tmp_path / "n.npz").exists()


def test_damaged_binance_copy(tmp_path, binance_files):
    """Bad lines, another symbol and a second REST snapshot in the middle: every message
    keeps its place (the line-by-line fallback), the grid equality still holds."""
    with gzip.open(binance_files[0], "rb") as f:
        lines = f.read().splitlines()
    rest = next(ln for ln in lines if b"lastUpdateId" in ln)
    k = len(lines) // 2
    j = next(i for i in range(k, len(lines)) if b"@trade" in lines[i])
    other = lines[j].replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"')  # a trade of another symbol
    resync = lines[k + 500].split(b" ")[0] + b" " + rest.split(b" ", 1)[1]
    damaged = [*lines[:k], b"1723161500000000000 {not json", *lines[k:j], other,
               *lines[j + 1:k + 500], resync, *lines[k + 500:]]
    path = write_lines(tmp_path / "bn.gz", damaged)
    events, report = build_event_stream([path])
    snap = build_snapshots([path])
    assert assert_grid_equal(events, snap.frame) > 100
    rep, srep = report.to_dict(), snap.report.to_dict()
    assert rep["bad_lines"] == srep["bad_lines"] == 1
    for key in ("applied", "resyncs", "gaps", "stale_before_sync"):
        assert rep["book"][key] == srep[key], key
    assert rep["book"]["replayed"] == srep["replayed_after_rest"]
    assert rep["book"]["resyncs"] == 2
    assert rep["trade_report"]["other_symbol"] == 1


def test_raw_store_with_control_frames_bad_lines_and_trades(tmp_path, bybit_delta_files):
    from trade_pipeline_tests.market.streams import to_wire_line, wire_trade_line

    lines, trades = interleave_trades(read_records(bybit_delta_files[2]), every=3)
    raw = [wire_trade_line(t["received_timestamp_ms"] * MS, [t]) if t["type"] == "trade"
           else to_wire_line(t) for t in lines]
    k = len(raw) // 3
    raw[k:k] = [b'1751865309000000000 {"success":true,"ret_msg":"pong","op":"ping"}',
                b"1751865309000000001 {broken"]
    path = write_lines(tmp_path / "000000000000-0badc0de.raw.gz", raw)
    events, report = build_event_stream([path])
    snap = build_snapshots([path])
    assert assert_grid_equal(events, snap.frame) > 100
    rep = report.to_dict()
    assert rep["bad_lines"] == 1 and rep["control_messages"] == 1
    tr = events[event_type(events) == TRADE_EVENT]
    assert tr["px"].tolist() == [t["price"] for t in trades]
    # each trade right after the events of the line before it
    for i, t in zip(np.flatnonzero(event_type(events) == TRADE_EVENT).tolist(), trades,
                    strict=True):
        assert events["local_ts"][i - 1] <= t["received_timestamp_ms"] * MS
        assert events["local_ts"][i] == t["received_timestamp_ms"] * MS


def _bybit_clock_faults(tmp_path, shared_data):
    """A real Bybit capture with three bad times of record: one an hour behind, one a little
    behind the previous message, one an hour ahead of the receive clock."""
    recs = read_records(shared_data / "bybit" / "l2_data_BTC_USDT_USDT_20250706_070028.jsonl.gz")
    n = len(recs)
    recs[n // 4]["timestamp_ms"] -= 3_600_000
    recs[n // 2]["timestamp_ms"] = recs[n // 2 - 1]["timestamp_ms"] - 40
    recs[3 * n // 4]["timestamp_ms"] += 3_600_000
    return [write_lines(tmp_path / "clock.jsonl.gz", recs)], 3


def _binance_clock_faults(tmp_path, binance_files):
    """The Binance capture (REST sync, trades) with a depth diff's `E` an hour back and
    another's an hour ahead (its receive clock goes on as recorded)."""
    with gzip.open(binance_files[0], "rb") as f:
        lines = f.read().splitlines()
    diffs = [i for i, ln in enumerate(lines) if b"@depth" in ln]
    for i, shift in ((diffs[len(diffs) // 3], -3_600_000), (diffs[2 * len(diffs) // 3], 3_600_000)):
        head, _, body = lines[i].partition(b" ")
        msg = orjson.loads(body)
        msg["data"]["E"] += shift
        lines[i] = head + b" " + orjson.dumps(msg)
    return [write_lines(tmp_path / "clock.gz", lines), binance_files[1]], 2


@pytest.mark.parametrize("damage", [_bybit_clock_faults, _binance_clock_faults])
def test_clock_faults_follow_the_grid_sampler(tmp_path, shared_data, binance_files, damage):
    """Rule 7 (docs/DATA_FORMATS.md) in the event stream: a time of record that goes back or
    jumps ahead is applied at the previous time plus the receive clock's advance, as the grid
    sampler applies it (the same code), so the replayed book equals every l2_snapshots row
    of the damaged capture, and no row is created or lost."""
    paths, faults = (damage(tmp_path, shared_data) if damage is _bybit_clock_faults
                     else damage(tmp_path, binance_files))
    events, report = build_event_stream(paths)
    snap = build_snapshots(paths)
    srep = snap.report.to_dict()
    assert srep["clock_faults"] == faults and srep["gaps"] == 0
    assert assert_grid_equal(events, snap.frame) == snap.frame.height > 1000
    for key in ("clock_faults", "time_backwards", "applied", "sessions", "gaps"):
        assert report.book[key] == srep[key], key
    book = events[event_type(events) != TRADE_EVENT]
    assert np.all(np.diff(book["exch_ts"]) >= 0)
    # no book event strays an hour from its neighbours: the faults were re-timed
    assert np.diff(book["exch_ts"]).max() < 60 * 1000 * MS


@pytest.mark.parametrize("source", ["simulator", "binance"])
def test_line_by_line_equals_the_whole_build(tmp_path, binance_files, source):
    """`EventStreamBuilder.on_line` (paper trading's entry, one frame at a time) gives exactly
    the events and counts of building the capture whole: book, trades, REST sync, and the
    engine's clock order carried across lines."""
    from trade_pipeline.market.event_stream import EventStreamBuilder, monotone_exchange_clock

    if source == "simulator":
        cfg = SimulatorConfig(start=dt.datetime(2025, 7, 7, tzinfo=dt.UTC), duration_s=60,
                              seed=8, trades=True)
        lines = [b"%d %s" % (ns, f.encode()) for ns, f in simulate(cfg)]
        path, fmt = write_lines(tmp_path / "000000000000-00000008.raw.gz", lines), "bybit_raw"
    else:
        with gzip.open(binance_files[0], "rb") as f:
            lines = f.read().splitlines()[:30_000]
        path, fmt = write_lines(tmp_path / "bn.gz", lines), "binance"
    whole, report = build_event_stream([path])
    builder = EventStreamBuilder(fmt=fmt)
    parts, last, raised = [], None, 0
    for line in lines:
        ev = builder.on_line(line)
        if len(ev):
            raised += monotone_exchange_clock(ev, last)
            last = int(ev["exch_ts"][-1])
            parts.append(ev)
    live = np.concatenate(parts)
    ordered = whole.copy()
    assert monotone_exchange_clock(ordered) == raised
    assert np.array_equal(live, ordered)
    assert report.events["trade_events"] > 500
    assert source == "simulator" or report.book["resyncs"] == 1  # the REST sync, line by line
    got = builder.current_report()
    assert got.events == report.events and got.book == report.book
    assert got.trades == report.trades


def test_out_of_range_lines_and_receive_times_are_counted_as_in_the_snapshot_report(
        tmp_path, shared_data):
    """Rule 8 (docs/DATA_FORMATS.md) in the event stream: implausible times of record and ids
    are counted bad lines, an implausible receive time is dropped and counted (its message
    kept), with the same counts as the snapshot report of the same damaged capture. The bad
    lines sit in blocks that the builder first parses whole and then undoes, which must not
    count them twice."""
    recs = read_records(shared_data / "bybit" / "l2_data_BTC_USDT_USDT_20250706_070028.jsonl.gz")
    n = len(recs)
    recs[n // 3]["timestamp_ms"] = 9 * 10**15
    recs[n // 2]["update_id"] = 2**63
    recs[2 * n // 3]["received_timestamp_ms"] = 9 * 10**15
    path = write_lines(tmp_path / "range.jsonl.gz", recs)
    _events, report = build_event_stream([path])
    rep = report.to_dict()
    srep = build_snapshots([path]).report.to_dict()
    assert (srep["out_of_range_lines"], srep["bad_receive_times"], srep["bad_lines"]) == (2, 1, 2)
    for key in ("out_of_range_lines", "bad_receive_times", "bad_lines", "messages"):
        assert rep[key] == srep[key], key
    assert rep["messages"] == n - 2
