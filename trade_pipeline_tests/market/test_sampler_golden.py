"""Hand-made streams with exact expected grid rows, session ids and counters (DATA.md rules)."""

import datetime as dt

import polars as pl
import pytest

from trade_pipeline.market.schema import SNAPSHOT_SCHEMA
from trade_pipeline.market.snapshots import build_snapshots
from trade_pipeline_tests.market.streams import T0_MS, T0_US, rec, write_lines

SNAP = dict(bids=[(100.0, 1.0), (99.9, 2.0)], asks=[(100.1, 1.0), (100.2, 3.0)])


def ts(ms: int) -> dt.datetime:
    """The UTC time T0_MS + ms (the streams' times are relative to T0_MS)."""
    return dt.datetime.fromtimestamp((T0_MS + ms) / 1000, tz=dt.UTC)


def top(frame: pl.DataFrame) -> list[tuple]:
    """Best levels per row, with the timestamp (ms) and session id (us) relative to T0."""
    return frame.select(
        pl.col("timestamp").dt.epoch("ms") - T0_MS, "bid_price_1", "bid_size_1", "ask_price_1",
        "ask_size_1", "update_id", pl.col("session_id") - T0_US,
    ).rows()


@pytest.fixture
def golden(tmp_path):
    msgs = [
        rec(1000, "snapshot", 10, **SNAP),
        rec(1050, "delta", 11, bids=[(100.0, 5.0)]),
        rec(1100, "delta", 12, asks=[(100.1, 0.0)]),  # delete best ask
        rec(1230, "delta", 13, bids=[(100.1, 1.0)]),
        rec(1300, "delta", 15, bids=[(100.1, 2.0)]),  # u 13 -> 15: gap
        rec(1350, "delta", 16, bids=[(100.1, 3.0)]),  # book invalid: skipped
        rec(1420, "snapshot", 20, **SNAP),  # new session
        rec(1500, "delta", 21, asks=[(100.15, 0.5)]),
    ]
    return write_lines(tmp_path / "golden.jsonl.gz", msgs)


def test_golden_grid_rows_and_sessions(golden):
    res = build_snapshots([golden])
    assert top(res.frame) == [
        (1000, 100.0, 1.0, 100.1, 1.0, 10, 1_000_000),
        (1100, 100.0, 5.0, 100.2, 3.0, 12, 1_000_000),
        (1200, 100.0, 5.0, 100.2, 3.0, 12, 1_000_000),
        # 1300: gap, no rows until the snapshot at 1420 (first grid time 1500)
        (1500, 100.0, 1.0, 100.1, 1.0, 21, 1_420_000),
    ]
    rep = res.report.to_dict()
    assert rep["messages"] == 8
    assert rep["rows"] == 4
    assert rep["sessions"] == 2
    assert rep["gaps"] == 1
    assert rep["skipped_after_gap"] == 2
    assert rep["applied"] == 6
    assert res.frame.schema == pl.Schema(SNAPSHOT_SCHEMA)
    # second level and received time of the first row
    first = res.frame.row(0, named=True)
    assert (first["bid_price_2"], first["bid_size_2"]) == (99.9, 2.0)
    assert first["bid_price_3"] is None and first["bid_size_3"] == 0.0
    assert first["received_timestamp"] == ts(1005)


def test_golden_event_cadence(golden):
    res = build_snapshots([golden], cadence="event")
    assert [r[0] for r in top(res.frame)] == [1000, 1050, 1100, 1230, 1420, 1500]
    assert [r[5] for r in top(res.frame)] == [10, 11, 12, 13, 20, 21]
    assert res.report.to_dict()["rows"] == 6


def test_depth_option_keeps_n_levels(golden):
    res = build_snapshots([golden], depth=1)
    row = res.frame.row(0, named=True)
    assert row["bid_price_1"] == 100.0
    assert row["bid_price_2"] is None and row["bid_size_2"] == 0.0
    assert row["ask_price_2"] is None and row["ask_size_2"] == 0.0


def test_session_end_inclusive_and_grid_alignment(tmp_path):
    # last message exactly on a grid time: that grid time gets a row (inclusive end)
    msgs = [rec(950, "snapshot", 1, **SNAP), rec(1200, "delta", 2, bids=[(99.8, 1.0)])]
    res = build_snapshots([write_lines(tmp_path / "a.jsonl.gz", msgs)])
    assert [r[0] for r in top(res.frame)] == [1000, 1100, 1200]
    assert [r[5] for r in top(res.frame)] == [1, 1, 2]


def test_duplicate_message_is_counted_and_skipped(tmp_path):
    msgs = [
        rec(1000, "snapshot", 1, **SNAP),
        rec(1010, "delta", 2, bids=[(100.0, 7.0)]),
        rec(1010, "delta", 2, bids=[(100.0, 7.0)]),
        rec(1100, "delta", 3, bids=[(100.0, 8.0)]),
    ]
    res = build_snapshots([write_lines(tmp_path / "a.jsonl.gz", msgs)])
    rep = res.report.to_dict()
    assert rep["duplicates"] == 1 and rep["gaps"] == 0 and rep["sessions"] == 1
    assert top(res.frame) == [(1000, 100.0, 1.0, 100.1, 1.0, 1, 1_000_000),
                              (1100, 100.0, 8.0, 100.1, 1.0, 3, 1_000_000)]


def test_timestamp_backwards_is_clamped_and_counted(tmp_path):
    msgs = [
        rec(1000, "snapshot", 1, **SNAP),
        rec(1180, "delta", 2, bids=[(100.0, 7.0)]),
        rec(1090, "delta", 3, bids=[(100.0, 9.0)]),  # goes back: applied at 1180
        rec(1250, "delta", 4, bids=[(100.0, 4.0)]),
    ]
    res = build_snapshots([write_lines(tmp_path / "a.jsonl.gz", msgs)])
    assert res.report.to_dict()["time_backwards"] == 1
    # grid 1100 sees only the snapshot; 1200 sees u=3 (its time clamped to 1180)
    assert [(r[0], r[2], r[5]) for r in top(res.frame)] == [(1000, 1.0, 1), (1100, 1.0, 1),
                                                            (1200, 9.0, 3)]


def test_other_symbol_and_delta_before_snapshot(tmp_path):
    msgs = [
        rec(900, "delta", 7, bids=[(100.0, 1.0)]),  # before any snapshot (u=1 would be a restart)
        rec(1000, "snapshot", 2, **SNAP),
        rec(1010, "delta", 3, bids=[(100.0, 2.0)], symbol="ETHUSDT"),
        rec(1050, "delta", 3, bids=[(100.0, 3.0)]),
        rec(1100, "delta", 4, asks=[(100.1, 2.0)]),
    ]
    res = build_snapshots([write_lines(tmp_path / "a.jsonl.gz", msgs)])
    rep = res.report.to_dict()
    assert rep["deltas_before_snapshot"] == 1
    assert rep["other_symbol"] == 1
    assert rep["messages"] == 4 and rep["applied"] == 3 and rep["gaps"] == 0
    assert top(res.frame)[-1] == (1100, 100.0, 3.0, 100.1, 2.0, 4, 1_000_000)


def test_crossed_and_empty_grid_times_are_skipped_and_counted(tmp_path):
    msgs = [
        rec(1000, "snapshot", 1, **SNAP),
        rec(1150, "delta", 2, bids=[(100.1, 1.0)]),  # locked: bid == ask
        rec(1350, "delta", 3, bids=[(100.1, 0.0)]),  # unlocked again
        rec(1420, "delta", 4, asks=[(100.1, 0.0), (100.2, 0.0)]),  # ask side empty
        rec(1610, "delta", 5, asks=[(100.3, 1.0)]),
    ]
    res = build_snapshots([write_lines(tmp_path / "a.jsonl.gz", msgs)])
    rep = res.report.to_dict()
    assert [r[0] for r in top(res.frame)] == [1000, 1100, 1400]
    assert rep["crossed_skipped"] == 2  # 1200, 1300 (locked)
    assert rep["empty_side_skipped"] == 2  # 1500, 1600 (no asks); the session ends at 1610
    assert rep["rows"] == 3


def test_overlapping_capture_is_skipped_as_duplicates(tmp_path):
    a = [rec(1000, "snapshot", 1, **SNAP)] + [rec(1000 + 20 * i, "delta", 1 + i,
                                                  bids=[(99.0, float(i))]) for i in range(1, 20)]
    b = [rec(1100, "snapshot", 6, **SNAP), *a[6:]]
    res = build_snapshots([write_lines(tmp_path / "a.jsonl.gz", a),
                           write_lines(tmp_path / "b.jsonl.gz", b)])
    rep = res.report.to_dict()
    assert rep["sessions"] == 1 and rep["duplicates"] == len(b)
    alone = build_snapshots([tmp_path / "a.jsonl.gz"])
    assert res.frame.equals(alone.frame)


def test_update_id_one_is_a_restart_snapshot(tmp_path):
    msgs = [
        rec(1000, "snapshot", 500, **SNAP),
        rec(1050, "delta", 501, bids=[(100.0, 2.0)]),
        rec(1150, "delta", 1, bids=[(99.0, 1.0)], asks=[(99.5, 1.0)]),  # service restart
        rec(1250, "delta", 2, bids=[(99.1, 1.0)]),
    ]
    res = build_snapshots([write_lines(tmp_path / "r.jsonl.gz", msgs)])
    rep = res.report.to_dict()
    assert rep["sessions"] == 2 and rep["gaps"] == 0 and rep["snapshots"] == 2
    assert top(res.frame) == [
        (1000, 100.0, 1.0, 100.1, 1.0, 500, 1_000_000),
        (1200, 99.0, 1.0, 99.5, 1.0, 1, 1_150_000),  # the restart replaced the whole book
    ]


def test_session_ids_unique_when_sessions_start_at_the_same_time(tmp_path):
    msgs = [
        rec(1000, "snapshot", 10, **SNAP),
        rec(1000, "delta", 12, bids=[(100.0, 2.0)]),  # gap at the same ms
        rec(1000, "snapshot", 20, **SNAP),  # new session, same start time
        rec(1100, "delta", 21, bids=[(100.0, 3.0)]),
    ]
    res = build_snapshots([write_lines(tmp_path / "s.jsonl.gz", msgs)], cadence="event")
    assert (res.frame["session_id"] - T0_US).to_list() == [1_000_000, 1_000_001, 1_000_001]


def test_unusable_levels_are_counted_not_applied(tmp_path):
    raw = tmp_path / "n.jsonl"
    lines = [
        rec(1000, "snapshot", 5, **SNAP),
        # NaN is not JSON: write the line by hand; then a negative price and a negative size
        b'{"exchange": "bybit", "symbol": "BTCUSDT", "timestamp_ms": %d, "type": "delta", '
        b'"received_timestamp_ms": %d, "bids": [[100.0, NaN]], "asks": [], "update_id": 6}'
        % (T0_MS + 1010, T0_MS + 1011),
        rec(1020, "delta", 6, bids=[(-5.0, 1.0), (100.0, -1.0), (99.5, 1.0)]),
        rec(1100, "delta", 7, asks=[(100.1, 4.0)]),
    ]
    res = build_snapshots([write_lines(raw, lines, gz=False)])
    rep = res.report.to_dict()
    assert rep["bad_lines"] == 1 and rep["bad_levels"] == 2 and rep["gaps"] == 0
    row = res.frame.row(-1, named=True)
    assert (row["bid_price_1"], row["bid_size_1"]) == (100.0, 1.0)
    assert (row["bid_price_2"], row["bid_price_3"]) == (99.9, 99.5)
    assert row["ask_size_1"] == 4.0
