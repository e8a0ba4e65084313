"""The trade feed's data side: readers of every trade source, bad trades, duplicates, the
book readers skipping trade lines, and the `trades` command."""

import gzip
import json

import orjson
import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from trade_pipeline.cli import main
from trade_pipeline.market.readers import FileStatus, detect_format, iter_line_blocks
from trade_pipeline.market.schema import TRADE_SCHEMA
from trade_pipeline.market.snapshots import build_snapshots
from trade_pipeline.market.trades import BAD_REASONS, read_trades, write_trades
from trade_pipeline_tests.market.streams import (
    interleave_trades,
    read_records,
    rec,
    to_wire_line,
    trade_rec,
    wire_trade_line,
    write_lines,
)

T0 = 1_751_865_309_000  # ms, July 2025
SNAP = dict(bids=[(100.0, 1.0)], asks=[(100.1, 1.0)])


def _reference_binance(paths) -> pl.DataFrame:
    """The Binance trades parsed the plain way, line by line (an independent reader)."""
    rows = []
    for path in paths:
        with gzip.open(path, "rb") as src:
            for line in src:
                head, _, rest = line.partition(b" ")
                obj = orjson.loads(rest)
                if obj.get("stream", "").endswith("@trade"):
                    d = obj["data"]
                    rows.append({"t": d["T"] * 1000, "id": str(d["t"]),
                                 "side": "sell" if d["m"] else "buy", "price": float(d["p"]),
                                 "size": float(d["q"]), "recv": int(head) // 1000})
    return pl.DataFrame(rows)


def test_binance_real_trades_equal_an_independent_parse(binance_files):
    res = read_trades(binance_files)
    frame, rep = res.frame, res.report.to_dict()
    ref = _reference_binance(binance_files)
    assert frame.schema == pl.Schema(TRADE_SCHEMA)
    assert frame.height == ref.height == rep["trades"] == 19_904  # the data's README count
    assert rep["bad_trades"] == rep["duplicates"] == rep["other_symbol"] == 0
    assert frame["trade_id"].to_list() == ref["id"].to_list()
    assert frame["side"].to_list() == ref["side"].to_list()
    assert frame["price"].to_list() == ref["price"].to_list()
    assert frame["size"].to_list() == ref["size"].to_list()
    assert frame["timestamp"].dt.epoch("us").to_list() == ref["t"].to_list()
    assert frame["received_timestamp"].dt.epoch("us").to_list() == ref["recv"].to_list()
    assert frame["sequence_id"].null_count() == frame.height
    assert set(frame["exchange"]) == {"binance"} and set(frame["symbol"]) == {"BTCUSDT"}
    assert rep["non_trade_lines"] == rep["lines"] - 19_904


def test_recorded_trades_interleaved_with_a_real_capture(tmp_path, bybit_delta_files):
    src = bybit_delta_files[0]
    records = read_records(src)
    lines, trades = interleave_trades(records, every=3)
    mixed = write_lines(tmp_path / "mixed.jsonl.gz", lines)
    assert detect_format(mixed) == "bybit"
    res = read_trades([mixed])
    assert res.frame.height == len(trades) > 100
    assert res.frame["trade_id"].to_list() == [t["trade_id"] for t in trades]
    assert res.frame["price"].to_list() == [t["price"] for t in trades]
    assert res.frame["sequence_id"].to_list() == [t["sequence_id"] for t in trades]
    assert res.report.counters.bad_trades == 0
    # the book readers skip the trade lines and count them as trades, not as bad lines
    book, plain = build_snapshots([mixed]), build_snapshots([src])
    assert book.frame.equals(plain.frame)
    rep = book.report.to_dict()
    assert rep["bad_lines"] == 0 and rep["non_book"] == {"trade": len(trades)}
    assert rep["messages"] == plain.report.messages


def test_raw_store_publictrade_pushes_beside_the_book(tmp_path, bybit_delta_files):
    records = read_records(bybit_delta_files[1])
    lines, trades = interleave_trades(records, every=4)
    raw = []
    for item in lines:  # book lines as wire pushes, each trade line as a push of 1-2 trades
        if item["type"] == "trade":
            raw.append(wire_trade_line(item["received_timestamp_ms"] * 1_000_000, [item]))
        else:
            raw.append(to_wire_line(item))
    raw.insert(1, b'1751865309000000000 {"success":true,"ret_msg":"","conn_id":"x","op":"subscribe"}')
    path = write_lines(tmp_path / "103000000000-0000abcd.raw.gz", raw)
    assert detect_format(path) == "bybit_raw"
    res = read_trades([path])
    assert res.frame["trade_id"].to_list() == [t["trade_id"] for t in trades]
    assert res.frame["side"].to_list() == [t["side"] for t in trades]
    assert res.frame["received_timestamp"].dt.epoch("ms").to_list() == [
        t["received_timestamp_ms"] for t in trades]
    book = build_snapshots([path])
    assert book.frame.equals(build_snapshots([bybit_delta_files[1]]).frame)
    assert book.report.bad_lines == 0 and book.report.non_book == {"trade": len(trades)}


def test_a_file_that_starts_with_trades_is_detected(tmp_path):
    f2b = write_lines(tmp_path / "a.jsonl.gz", [trade_rec(T0, "x1"), rec(T0, "snapshot", 1, **SNAP)])
    assert detect_format(f2b) == "bybit"
    wire = write_lines(tmp_path / "b.raw.gz",
                       [wire_trade_line(T0 * 1_000_000, [trade_rec(T0, "x1")])])
    assert detect_format(wire) == "bybit_raw"


BAD_CASES = [
    ("bad_price", dict(price="abc")),
    ("bad_price", dict(price=True)),
    ("bad_price", dict(price=None)),
    ("bad_price", dict(price=-1.0)),
    ("bad_price", dict(price=0)),
    ("bad_size", dict(size=False)),
    ("bad_size", dict(size="1e999")),
    ("bad_size", dict(size="nan")),
    ("bad_side", dict(side="Buy")),
    ("bad_side", dict(side="long")),
    ("missing_id", dict(trade_id=None)),
    ("missing_id", dict(trade_id="")),
    ("missing_id", dict(trade_id=True)),
    ("bad_time", dict(t_ms=1_000)),
    ("bad_time", dict(t_ms=5_000_000_000_000)),
    ("bad_received_time", dict(recv_ms=-5)),
    ("bad_sequence", dict(seq=2**63)),
    ("bad_sequence", dict(seq="7")),
]


@pytest.mark.parametrize(("reason", "change"), BAD_CASES)
def test_each_bad_trade_is_counted_by_reason_never_kept(tmp_path, reason, change):
    good = [trade_rec(T0 + i, f"g{i}", price=100.0 + i) for i in range(3)]
    kw = dict(t_ms=T0 + 1, trade_id="bad", side="sell", price=101.0, size=2.0)
    kw.update(change)
    t_ms = kw.pop("t_ms")
    bad = trade_rec(t_ms, **kw)
    if "seq" in change:
        bad["sequence_id"] = change["seq"]
        bad.pop("seq", None)
    path = write_lines(tmp_path / "f.jsonl.gz", [good[0], bad, good[1], good[2]])
    res = read_trades([path])
    rep = res.report.to_dict()
    assert res.frame["trade_id"].to_list() == ["g0", "g1", "g2"]
    assert rep["bad_by_reason"] == {reason: 1}, rep["bad_examples"]
    assert rep["trade_lines"] == 4 and rep["trades_read"] == 4
    assert reason in BAD_REASONS
    # the same trade inside a wire push costs only that trade
    # (2b-only fields; "Buy" is the wire's own spelling)
    if reason not in ("bad_received_time", "bad_sequence") and change != {"side": "Buy"}:
        push = wire_trade_line(T0 * 1_000_000, [good[0], bad, good[1]])
        wire = write_lines(tmp_path / "w.raw.gz", [push])
        wres = read_trades([wire])
        assert wres.frame["trade_id"].to_list() == ["g0", "g1"]
        assert wres.report.counters.bad == {reason: 1}


def test_unreadable_lines_and_other_symbols(tmp_path):
    lines = [trade_rec(T0, "a"), b'{"type": "trade", "symbol": "BTCUSDT", "price": 1.0,',
             trade_rec(T0 + 1, "b", symbol="ETHUSDT"), b"[1, 2, \"trade\"]",
             {"type": "trade", "symbol": "BTCUSDT", "timestamp_ms": T0, "side": "buy"},
             trade_rec(T0 + 2, "c")]
    res = read_trades([write_lines(tmp_path / "u.jsonl.gz", lines)])
    rep = res.report.to_dict()
    assert res.frame["trade_id"].to_list() == ["a", "c"]
    assert rep["other_symbol"] == 1
    assert rep["bad_by_reason"] == {"invalid_json": 2, "bad_price": 1}


def test_repeated_trade_ids_are_counted_and_kept_once(tmp_path):
    a = [trade_rec(T0 + i, f"id{i}", price=100.0 + i) for i in range(5)]
    first = write_lines(tmp_path / "1.jsonl.gz", [a[0], a[1], a[1], a[2]])
    second = write_lines(tmp_path / "2.jsonl.gz", [a[2], a[3], a[0], a[4]])  # overlap
    res = read_trades([first, second])
    assert res.frame["trade_id"].to_list() == ["id0", "id1", "id2", "id3", "id4"]
    assert res.report.counters.duplicates == 3
    assert res.frame["trade_id"].is_unique().all()


def test_truncated_file_keeps_every_trade_before_the_break(tmp_path):
    trades = [trade_rec(T0 + i, f"k{i}", price=100.0 + i % 5) for i in range(4000)]
    data = gzip.compress(b"".join(orjson.dumps(t) + b"\n" for t in trades))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    status = FileStatus(str(cut))
    kept = sum(len(b) for b in iter_line_blocks(cut, status))
    res = read_trades([cut])
    rep = res.report.to_dict()
    assert 0 < res.frame.height == kept < 4000
    assert res.frame["trade_id"].to_list() == [f"k{i}" for i in range(kept)]
    assert rep["truncated_files"] == 1 and rep["bad_trades"] == 0


_prices = st.one_of(st.floats(0.01, 1e6, allow_nan=False), st.integers(1, 10**6),
                    st.sampled_from(["abc", "nan", "-1", True, None, 0]))
_sides = st.sampled_from(["buy", "sell", "buy", "sell", "Buy", "x"])
_ids = st.one_of(st.sampled_from([f"t{i}" for i in range(12)]), st.just(None))


@hsettings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(_ids, _sides, _prices, _prices), min_size=1, max_size=30))
def test_property_every_trade_line_is_a_row_a_duplicate_or_a_counted_bad_trade(items):
    """Accounting identity: trades read = rows + duplicates + bad trades + other symbol, and
    the rows are exactly the first good occurrence of each id, in order."""
    import tempfile
    from pathlib import Path

    lines = [trade_rec(T0 + i, tid, side, price, size) for i, (tid, side, price, size)
             in enumerate(items)]
    with tempfile.TemporaryDirectory() as tmp:
        res = read_trades([write_lines(Path(tmp) / "p.jsonl.gz", lines)])
    c = res.report.counters
    assert c.trades_read == len(items) == c.trades + c.duplicates + c.bad_trades + c.other_symbol
    seen, want = set(), []
    for tid, side, price, size in items:
        ok = (tid is not None and side in ("buy", "sell")
              and all(type(v) in (int, float) and v > 0 for v in (price, size)))
        if ok and tid not in seen:
            seen.add(tid)
            want.append(tid)
    assert res.frame["trade_id"].to_list() == want


def test_cli_trades_report_output_and_errors(tmp_path, capsys, binance_files):
    out = tmp_path / "t.parquet"
    assert main(["trades", "--input", *map(str, binance_files), "--output", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    frame = pl.read_parquet(out)
    assert report["trades"] == frame.height == 19_904
    assert frame.schema == pl.Schema(TRADE_SCHEMA)
    # a capture without any trade line: exit 1, nothing written
    book_only = write_lines(tmp_path / "b.jsonl.gz", [rec(T0, "snapshot", 1, **SNAP)])
    none = tmp_path / "none.parquet"
    assert main(["trades", "--input", str(book_only), "--output", str(none)]) == 1
    assert not none.exists() and "no trade line" in capsys.readouterr().err
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    assert main(["trades", "--input", str(junk), "--output", str(none)]) == 2
    assert "unknown format" in capsys.readouterr().err


def test_write_trades_streams_in_row_groups(tmp_path):
    trades = [trade_rec(T0 + i, f"r{i}", price=100.0 + i % 3) for i in range(2500)]
    path = write_lines(tmp_path / "r.jsonl.gz", trades)
    out = tmp_path / "r.parquet"
    report = write_trades([path], out, row_group_rows=1000)
    import pyarrow.parquet as pq

    assert pq.ParquetFile(out).metadata.num_row_groups == 3
    assert report.counters.trades == pl.read_parquet(out).height == 2500
