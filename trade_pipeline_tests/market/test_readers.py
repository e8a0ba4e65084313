"""Readers: format detection, gzip members and truncation, bad lines, empty and unknown files."""

import gzip
import json

import pytest

from trade_pipeline.market.readers import (
    EmptyFileError,
    FileStatus,
    FormatError,
    detect_format,
    iso_to_us,
    iter_line_blocks,
    parse_tz,
)
from trade_pipeline.market.snapshots import build_snapshots
from trade_pipeline_tests.market.streams import read_records, rec, to_wire_line, write_lines

SNAP = dict(bids=[(100.0, 1.0)], asks=[(100.1, 1.0)])


def all_lines(path):
    status = FileStatus(str(path))
    lines = [ln for block in iter_line_blocks(path, status) for ln in block]
    return lines, status


def test_detects_every_real_format(bybit_delta_files, bybit_ccxt_file, binance_files):
    assert detect_format(bybit_delta_files[0]) == "bybit"
    assert detect_format(bybit_ccxt_file) == "ccxt"
    assert detect_format(binance_files[0]) == "binance"


def test_real_truncated_gzip_keeps_complete_lines(bybit_truncated_file):
    lines, status = all_lines(bybit_truncated_file)
    assert status.truncated and "truncated" in status.reason
    assert status.partial_line_dropped
    assert len(lines) == 846
    for line in lines:
        json.loads(line)  # every kept line is complete
    res = build_snapshots([bybit_truncated_file])
    rep = res.report.to_dict()
    assert rep["truncated_files"] == 1
    assert rep["truncated"][0]["path"].endswith("040421.jsonl.gz")
    assert rep["messages"] == 846 and rep["bad_lines"] == 0 and rep["rows"] > 0


def test_cut_copy_keeps_every_line_before_the_break(tmp_path, bybit_delta_files):
    src = bybit_delta_files[0]
    data = src.read_bytes()
    full = gzip.decompress(data).split(b"\n")
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    lines, status = all_lines(cut)
    assert status.truncated
    assert 0 < len(lines) < len(full) - 1
    assert lines == full[: len(lines)]  # nothing lost or altered before the break
    # the cut-off file ingests with every complete line and reports the break
    res = build_snapshots([cut])
    assert res.report.to_dict()["truncated_files"] == 1
    assert res.report.messages == len(lines)


def test_multi_member_gzip_and_plain_text(tmp_path):
    msgs = [rec(1000 + 10 * i, "snapshot" if i == 0 else "delta", 5 + i, **SNAP)
            for i in range(30)]
    raw = b"".join(json.dumps(m).encode() + b"\n" for m in msgs)
    members = tmp_path / "m.jsonl.gz"
    members.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))  # split mid-line
    plain = tmp_path / "p.jsonl"
    plain.write_bytes(raw)
    a, b = build_snapshots([members]), build_snapshots([plain])
    assert a.report.messages == b.report.messages == 30
    assert a.report.truncated_files == []
    assert a.frame.equals(b.frame)


def test_invalid_json_line_is_counted_and_skipped(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl.gz", [
        rec(1000, "snapshot", 5, **SNAP),
        b'{"exchange": "bybit", "symbol": "BTCUSDT", "timest',  # broken line
        rec(1020, "delta", 6, bids=[(100.0, 2.0)]),
        {"exchange": "bybit", "symbol": "BTCUSDT"},  # JSON but not a book message
        rec(1040, "delta", 7, bids=[[100.0, "x"]]),  # size not a number
        b"",  # blank line: not a bad line
        rec(1120, "delta", 8, bids=[(100.0, 3.0)]),
    ])
    res = build_snapshots([path])
    rep = res.report.to_dict()
    assert rep["bad_lines"] == 3
    assert any("invalid JSON" in e for e in rep["bad_line_examples"])
    assert any("bad.jsonl.gz:4" in e for e in rep["bad_line_examples"])
    # message u=7 was unreadable, so u=8 is a gap: the book is not trusted after it
    assert rep["messages"] == 3 and rep["gaps"] == 1
    assert res.frame["update_id"].to_list() == [5]  # session ends at u=6 (t=1020 < grid 1100)


def test_empty_file_is_reported(tmp_path):
    empty = tmp_path / "empty.jsonl.gz"
    empty.write_bytes(gzip.compress(b""))
    with pytest.raises(EmptyFileError):
        detect_format(empty)
    zero = tmp_path / "zero.jsonl"
    zero.write_bytes(b"")
    res = build_snapshots([empty, zero])
    rep = res.report.to_dict()
    assert rep["empty_files"] == [str(empty), str(zero)]
    assert rep["messages"] == 0 and res.frame.height == 0


def test_unknown_format_names_what_was_detected(tmp_path):
    path = write_lines(tmp_path / "odd.jsonl.gz", [{"price": 1, "qty": 2}])
    with pytest.raises(FormatError, match=r"detected: JSON with keys \['price', 'qty'\]"):
        detect_format(path)
    text = tmp_path / "notes.txt"
    text.write_text("hello world\n")
    with pytest.raises(FormatError, match="not JSON: b'hello world'"):
        build_snapshots([text])


def test_format_mismatch_is_an_error(bybit_delta_files):
    with pytest.raises(FormatError, match="looks like bybit"):
        build_snapshots([bybit_delta_files[0]], fmt="binance")


def test_raw_store_lines_give_the_same_rows_as_format2(tmp_path, bybit_delta_files):
    src = bybit_delta_files[0]
    records = read_records(src)
    raw = write_lines(tmp_path / "120000000000-abcdef01.raw.gz",
                      [to_wire_line(m) for m in records])
    assert detect_format(raw) == "bybit_raw"
    a = build_snapshots([src])
    b = build_snapshots([raw], fmt="bybit")
    assert a.report.messages == b.report.messages == len(records)
    assert a.frame.equals(b.frame)


def test_ccxt_timestamps_default_utc_and_tz_option():
    assert iso_to_us("2025-07-07T17:57:06.605795", None) == 1751911026605795
    tz = parse_tz("+10:00")
    assert iso_to_us("2025-07-08T03:57:06.605795", tz) == 1751911026605795
    assert iso_to_us("2025-07-08T03:57:06.605795", parse_tz("Australia/Brisbane")) == 1751911026605795


def test_ccxt_real_file_one_session_symbol_normalized(bybit_ccxt_file, tmp_path):
    # first 3000 lines: one 50-level book, then deltas
    lines = []
    with gzip.open(bybit_ccxt_file, "rb") as f:
        for i, line in enumerate(f):
            if i >= 3000:
                break
            lines.append(line.rstrip(b"\n"))
    part = write_lines(tmp_path / "ccxt.jsonl.gz", lines)
    res = build_snapshots([part])
    rep = res.report.to_dict()
    assert rep["symbol"] == "BTCUSDT" and rep["exchange"] == "bybit"
    assert rep["sessions"] == 1 and rep["crossed_skipped"] == 0 and rep["messages"] == 3000
    assert res.frame["update_id"].null_count() == res.frame.height  # ccxt has no update ids
    shifted = build_snapshots([part], tz="+10:00")
    delta = res.frame["timestamp"][0] - shifted.frame["timestamp"][0]
    assert delta.total_seconds() == pytest.approx(36000, abs=0.1)


def test_ccxt_time_break_invalidates_until_next_full_book(tmp_path):
    full = {"b": [[str(100 - k / 10), "1"] for k in range(50)],
            "a": [[str(100.1 + k / 10), "1"] for k in range(50)]}

    def line(ts, b, a):
        return {"timestamp": ts, "exchange": "bybit", "symbol": "BTC/USDT:USDT", "b": b, "a": a}

    path = write_lines(tmp_path / "c.jsonl.gz", [
        line("2025-07-07T00:00:00.000", full["b"], full["a"]),
        line("2025-07-07T00:00:00.150", [["100", "2"]], []),
        line("2025-07-07T00:00:09.000", [["100", "3"]], []),  # 8.85 s of silence: break
        line("2025-07-07T00:00:09.100", [["100", "4"]], []),
        line("2025-07-07T00:00:09.200", full["b"], full["a"]),  # full book: new session
    ])
    res = build_snapshots([path])
    rep = res.report.to_dict()
    assert rep["time_breaks"] == 1 and rep["sessions"] == 2 and rep["skipped_after_gap"] == 2
    assert res.frame["session_id"].n_unique() == 2


def _delta_file(path, n):
    lines = [rec(1000, "snapshot", 5, bids=[(100.0 - k / 10, 1.0) for k in range(50)],
                 asks=[(100.1 + k / 10, 1.0) for k in range(50)])]
    lines += [rec(1000 + i, "delta", 6 + i, bids=[(99.0 - (i % 40) / 10, 1.0 + i % 3)],
                  asks=[(101.0 + (i % 40) / 10, 2.0)]) for i in range(n)]
    return write_lines(path, lines)


def test_readers_stream_with_flat_memory(tmp_path):
    import tracemalloc

    from trade_pipeline.market.readers import ParseContext, read_messages

    def peak(path):
        tracemalloc.start()
        ctx = ParseContext()
        for buf in read_messages(path, "bybit", ctx, FileStatus(str(path)), chunk_messages=4096):
            buf.arrays()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top, ctx.messages

    small, n_small = peak(_delta_file(tmp_path / "s.jsonl.gz", 10_000))
    big, n_big = peak(_delta_file(tmp_path / "b.jsonl.gz", 40_000))
    assert n_big == 4 * n_small - 3
    assert big < 1.5 * small + 1_000_000, (small, big)  # not proportional to the file


def _parse_both(lines):
    from trade_pipeline.market.messages import MessageBuffer
    from trade_pipeline.market.readers import ParseContext, _block_generic, parse_block

    out = []
    for fn in (lambda b, c: parse_block("bybit", lines, b, c, "f", 0),
               lambda b, c: _block_generic("bybit", lines, b, c, "f", 0)):
        buf, ctx = MessageBuffer(), ParseContext(symbol="BTCUSDT")
        fn(buf, ctx)
        msgs, levels = buf.arrays()
        out.append((msgs.tolist(), levels.tolist(), ctx.bad_lines, ctx.other_symbol))
    return out


def test_fast_block_parser_equals_careful_parser_on_good_and_bad_lines():
    import orjson

    good = [orjson.dumps(rec(1000 + i, "snapshot" if i == 0 else "delta", 5 + i,
                             bids=[(100.0, 1.0 + i)], asks=[(100.1, 2.0)] * (i % 3)))
            for i in range(20)]
    fast, careful = _parse_both(good)
    assert fast == careful and fast[2] == 0 and len(fast[0]) == 20
    variants = [
        b"{broken",
        orjson.dumps(rec(2000, "delta", 99, bids=[(1.0, 1.0)], symbol="ETHUSDT")),
        orjson.dumps(rec(2000, "weird", 99)),
        orjson.dumps(rec(2000, "delta", 99, bids=[[1.0, 2.0, 3.0]])),
        orjson.dumps(rec(2000, "delta", 99, bids=[[1.0]])),
        orjson.dumps(rec(2000, "delta", 99) | {"received_timestamp_ms": None}),
        orjson.dumps(rec(2000.5, "delta", 99)),
        orjson.dumps({k: v for k, v in rec(2000, "delta", 99).items() if k != "update_id"}),
        b"",
    ]
    for bad in variants:
        lines = [*good[:10], bad, *good[10:]]
        fast, careful = _parse_both(lines)
        assert fast == careful, bad
