"""Binance format 4: spot and USD-M sync rules; the rebuilt top of book equals bookTicker."""

import gzip

import orjson
import polars as pl
import pytest

from trade_pipeline.market.readers import read_binance_book_tickers
from trade_pipeline.market.snapshots import build_snapshots
from trade_pipeline_tests.market.streams import T0_MS, write_lines


@pytest.fixture(scope="module")
def binance_event(binance_files):
    return build_snapshots(binance_files, cadence="event")


def test_book_ticker_equals_rebuilt_best_levels(binance_files, binance_event):
    res = binance_event
    rep = res.report.to_dict()
    # the two files join without a gap: one session, every diff after the sync applied
    assert rep["gaps"] == 0 and rep["sessions"] == 1 and rep["resyncs"] == 1
    assert rep["crossed_skipped"] == 0 and rep["bad_lines"] == 0
    assert rep["messages"] == 6495 + 1  # diffs + the REST snapshot
    tickers = pl.DataFrame(
        [(t.update_id, t.bid, t.bid_size, t.ask, t.ask_size)
         for f in binance_files for t in read_binance_book_tickers(f)],
        schema=["update_id", "bt_bid", "bt_bid_size", "bt_ask", "bt_ask_size"], orient="row",
    )
    assert tickers.height == 73174
    rows = res.frame.select("update_id", "bid_price_1", "bid_size_1", "ask_price_1", "ask_size_1")
    assert rows["update_id"].is_unique().all()
    joined = rows.join(tickers.unique("update_id"), on="update_id", how="inner")
    assert joined.height > 1000  # every bookTicker with the update id of an applied diff
    bad = joined.filter(
        (pl.col("bid_price_1") != pl.col("bt_bid")) | (pl.col("ask_price_1") != pl.col("bt_ask"))
        | (pl.col("bid_size_1") != pl.col("bt_bid_size"))
        | (pl.col("ask_size_1") != pl.col("bt_ask_size"))
    )
    assert bad.height == 0, bad.head()


def test_files_in_order_match_one_concatenated_file(tmp_path, binance_files, binance_event):
    cat = tmp_path / "both.gz"
    cat.write_bytes(b"".join(f.read_bytes() for f in binance_files))  # two gzip members
    res = build_snapshots([cat], cadence="event")
    assert res.frame.equals(binance_event.frame)


def _lines(path, limit):
    out = []
    with gzip.open(path, "rb") as f:
        for line in f:
            if b"@depth" in line or b"lastUpdateId" in line:
                out.append(line.rstrip(b"\n"))
            if len(out) >= limit:
                break
    return out


def test_dropped_diff_is_a_gap(tmp_path, binance_files):
    lines = _lines(binance_files[0], 200)
    del lines[50]
    res = build_snapshots([write_lines(tmp_path / "g.gz", lines)])
    rep = res.report.to_dict()
    assert rep["gaps"] == 1 and rep["sessions"] == 1
    assert rep["skipped_after_gap"] == 200 - 1 - 50  # the gap message and all after it


def _diff(ns, t, first, last, pu=None, bids=(), asks=()):
    """A depth diff received at T0 + ns (ns), with exchange time T0_MS + t (ms)."""
    ns, t = T0_MS * 1_000_000 + ns, T0_MS + t
    data = {"e": "depthUpdate", "E": t, "T": t, "s": "BTCUSDT", "U": first, "u": last,
            "b": [[str(p), str(s)] for p, s in bids], "a": [[str(p), str(s)] for p, s in asks]}
    if pu is not None:
        data["pu"] = pu
    return f"{ns} ".encode() + orjson.dumps({"stream": "btcusdt@depth@0ms", "data": data})


def _rest(ns, lid):
    ns = T0_MS * 1_000_000 + ns
    return f"{ns} ".encode() + orjson.dumps(
        {"lastUpdateId": lid, "bids": [["100.0", "1"]], "asks": [["100.5", "1"]]})


def test_usdm_sync_rules(tmp_path):
    lines = [
        _rest(1, 100),
        _diff(2, 1000, 90, 99, pu=89),  # u < lastUpdateId: dropped
        _diff(3, 1010, 95, 105, pu=94, bids=[(100.1, 2)]),  # U <= 100 <= u: first applied
        _diff(4, 1020, 106, 110, pu=105, asks=[(100.4, 3)]),  # pu == previous u
        _diff(5, 1030, 111, 115, pu=112, asks=[(100.3, 1)]),  # pu != 110: gap
    ]
    res = build_snapshots([write_lines(tmp_path / "f.gz", lines)], cadence="event")
    rep = res.report.to_dict()
    assert rep["stale_before_sync"] == 1 and rep["gaps"] == 1 and rep["applied"] == 2
    assert res.frame.select("update_id", "bid_price_1", "ask_price_1").rows() == [
        (105, 100.1, 100.5), (110, 100.1, 100.4)]


def test_spot_sync_rules(tmp_path):
    lines = [
        _rest(1, 100),
        _diff(2, 1000, 90, 100),  # u <= lastUpdateId: dropped
        _diff(3, 1010, 101, 104, bids=[(100.1, 2)]),  # U <= 101 <= u: first applied
        _diff(4, 1020, 105, 107, asks=[(100.4, 3)]),  # U == previous u + 1
        _diff(5, 1030, 109, 111),  # gap
    ]
    res = build_snapshots([write_lines(tmp_path / "s.gz", lines)], cadence="event")
    rep = res.report.to_dict()
    assert rep["stale_before_sync"] == 1 and rep["gaps"] == 1 and rep["applied"] == 2
    assert res.frame["update_id"].to_list() == [104, 107]
    # a first diff that starts after lastUpdateId + 1 cannot sync: a gap, no rows
    bad = [_rest(1, 100), _diff(2, 1000, 103, 104)]
    res = build_snapshots([write_lines(tmp_path / "b.gz", bad)], cadence="event")
    assert res.report.to_dict()["gaps"] == 1 and res.frame.height == 0
