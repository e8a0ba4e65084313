"""The raw capture store: gzip member per flush, day rotation, truncation, imports."""

import datetime as dt
import gzip
import zlib
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from trade_pipeline.settings import SettingsError
from trade_pipeline.storage import raw_store
from trade_pipeline.storage.raw_store import RawStoreWriter, read_raw_file

DAY_NS = 86_400 * 10**9
T0 = int(dt.datetime(2025, 7, 7, 23, 59, 59, tzinfo=dt.UTC).timestamp()) * 10**9


def _members(path: Path) -> int:
    """Count gzip members in a file."""
    data = path.read_bytes()
    n = 0
    while data:
        d = zlib.decompressobj(wbits=31)
        d.decompress(data)
        data = d.unused_data
        n += 1
    return n


def test_one_member_per_flush_and_roundtrip(settings):
    with RawStoreWriter(settings.raw_dir, "bybit", "BTCUSDT") as w:
        w.append(T0, '{"a":1}')
        w.flush()
        w.append(T0 + 1, '{"a":2}')
        w.append(T0 + 2, b'{"a":3}')
        w.flush()
        w.flush()  # empty flush writes nothing
    assert len(w.paths) == 1
    path = w.paths[0]
    assert _members(path) == 2
    assert w.stats.flushes == 2 and w.stats.lines == 3
    assert w.stats.bytes_written == path.stat().st_size
    got = read_raw_file(path)
    assert not got.truncated
    assert got.lines == [(T0, '{"a":1}'), (T0 + 1, '{"a":2}'), (T0 + 2, '{"a":3}')]
    # contract: <raw>/exchange=/symbol=/date=<UTC day of receive time>/<HHMMSSffffff>-<hex>.raw.gz
    assert path.parent == settings.raw_dir / "exchange=bybit" / "symbol=BTCUSDT" / "date=2025-07-07"
    assert path.name.startswith("235959000000-") and path.name.endswith(".raw.gz")


def test_rotates_at_utc_midnight(settings):
    with RawStoreWriter(settings.raw_dir, "bybit", "BTCUSDT") as w:
        for i in range(4):
            w.append(T0 + i * 500_000_000, f'{{"i":{i}}}')  # 23:59:59.0 .. 00:00:00.5
    days = [p.parent.name for p in w.paths]
    assert days == ["date=2025-07-07", "date=2025-07-08"]
    assert raw_store.raw_days(settings, "bybit", "BTCUSDT") == ["2025-07-07", "2025-07-08"]
    first = read_raw_file(w.paths[0]).lines
    second = read_raw_file(w.paths[1]).lines
    assert [t for t, _ in first] == [T0, T0 + 500_000_000]
    assert [t for t, _ in second] == [T0 + 10**9, T0 + 1_500_000_000]


def test_truncated_last_member_keeps_flushed_lines(settings):
    with RawStoreWriter(settings.raw_dir, "bybit", "BTCUSDT") as w:
        for i in range(10):
            w.append(T0 + i, f'{{"i":{i}}}')
        w.flush()
        first_member = w.stats.bytes_written
        for i in range(10, 20):
            w.append(T0 + i, f'{{"i":{i}}}')
    path = w.paths[0]
    data = path.read_bytes()
    # a half-written last member (killed mid-write)
    path.write_bytes(data[: first_member + (len(data) - first_member) // 2])
    got = read_raw_file(path)
    assert got.truncated
    assert [t - T0 for t, _ in got.lines] == list(range(10))


def test_frame_with_newline_is_refused(settings):
    with RawStoreWriter(settings.raw_dir, "bybit", "BTCUSDT") as w, pytest.raises(ValueError):
        w.append(T0, '{"a":\n1}')


@pytest.mark.parametrize("symbol", ["BTC'; DROP TABLE trades; --", "../etc", "btcusdt", ""])
def test_bad_symbol_is_refused(settings, symbol):
    with pytest.raises(SettingsError):
        RawStoreWriter(settings.raw_dir, "bybit", symbol)
    with pytest.raises(SettingsError):
        raw_store.raw_files_for_day(settings, "bybit", symbol, "2025-07-07")


def test_bad_day_is_refused(settings):
    with pytest.raises(SettingsError):
        raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", "2025-13-01")


@hsettings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3 * DAY_NS), st.binary(min_size=0, max_size=40)),
                min_size=1, max_size=40),
       st.lists(st.booleans(), min_size=40, max_size=40))
# 23:59:59.99999936 is still the old day (a float day computation rounded it into the next)
@example(items=[(0, b""), (999_999_360, b"")], flushes=[False] * 40)
def test_property_every_appended_line_reads_back(tmp_path_factory, items, flushes):
    """Whatever the flush pattern and day crossings, files hold exactly what was appended."""
    raw = tmp_path_factory.mktemp("raw")
    items = sorted(items)
    frames = [(T0 + t, b.replace(b"\n", b" ").hex()) for t, b in items]
    with RawStoreWriter(raw, "bybit", "BTCUSDT") as w:
        for (ts, frame), flush in zip(frames, flushes, strict=False):
            w.append(ts, frame)
            if flush:
                w.flush()
    got = [line for p in w.paths for line in read_raw_file(p).lines]
    assert got == frames
    for p in w.paths:  # each file holds one UTC day only
        days = {raw_store.day_of_ns(ts) for ts, _ in read_raw_file(p).lines}
        assert days == {p.parent.name.split("=")[1]}


def test_import_capture_places_file_by_first_line(settings, bybit_delta_files):
    src = bybit_delta_files[0]  # 2025-07-06 06:42
    target = raw_store.import_capture(settings, src, "bybit", "BTCUSDT")
    assert target.parent.name == "date=2025-07-06"
    assert target.read_bytes() == src.read_bytes()  # copied unchanged, name kept
    assert target.name == src.name
    # idempotent
    assert raw_store.import_capture(settings, src, "bybit", "BTCUSDT") == target
    assert raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", "2025-07-06") == [target]


def test_import_ccxt_and_binance_first_line(settings, bybit_ccxt_file, binance_files):
    assert raw_store.day_of_ns(raw_store.first_record_ns(bybit_ccxt_file)) == "2025-07-07"
    assert raw_store.day_of_ns(raw_store.first_record_ns(binance_files[0])) == "2024-08-08"


def test_import_refuses_empty_and_unknown(settings, tmp_path):
    empty = tmp_path / "empty.jsonl.gz"
    with gzip.open(empty, "wb"):
        pass
    with pytest.raises(raw_store.CaptureImportError, match="empty"):
        raw_store.import_capture(settings, empty, "bybit", "BTCUSDT")
    junk = tmp_path / "junk.txt"
    junk.write_text("hello world\n")
    with pytest.raises(raw_store.CaptureImportError, match="neither JSON"):
        raw_store.import_capture(settings, junk, "bybit", "BTCUSDT")
    other = tmp_path / "other.jsonl"
    other.write_text('{"foo": 1}\n')
    with pytest.raises(raw_store.CaptureImportError, match="unknown capture format"):
        raw_store.import_capture(settings, other, "bybit", "BTCUSDT")


def test_files_for_day_order(settings, bybit_delta_files):
    day = "2025-07-07"
    for src in reversed(bybit_delta_files):
        if "20250707" in src.name:
            raw_store.import_capture(settings, src, "bybit", "BTCUSDT")
    files = raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", day)
    assert [p.name for p in files] == sorted(p.name for p in files)
    assert len(files) == sum("20250707" in p.name for p in bybit_delta_files)
    hidden = files[0].parent / ".partial.tmp"  # an import in progress is not listed
    hidden.write_bytes(b"")
    assert raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", day) == files


def test_cli_import_captures(tmp_path, capsys, bybit_delta_files):
    import json

    from trade_pipeline import cli
    from trade_pipeline.settings import Settings

    home = tmp_path / "home"
    srcs = [str(p) for p in bybit_delta_files[:2]]
    assert cli.main(["--home", str(home), "import-captures", *srcs]) == 0
    imported = json.loads(capsys.readouterr().out)["imported"]
    settings = Settings.load(home=home)
    assert [Path(p) for p in imported] == raw_store.raw_files_for_day(
        settings, "bybit", "BTCUSDT", "2025-07-06")


def _frame(i: int) -> bytes:
    return b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":%d,"data":{"u":%d}}' % (i, i)


def test_import_splits_raw_capture_at_midnight_and_keeps_the_break(settings, tmp_path):
    """`<ns> <frame>` lines 23:59:59 -> 00:00:01 (one line back in time just after midnight,
    one line without a time) in several gzip members, the last one truncated: one part per
    day, lines verbatim and in order, the break kept at the end of the last part."""
    times = [T0, T0 + 5 * 10**8, T0 + 10**9 + 1, T0 + 9 * 10**8, T0 + 2 * 10**9]
    lines = [b"%d %s\n" % (t, _frame(i)) for i, t in enumerate(times)]
    lines.insert(2, b"garbage without a time\n")
    src = tmp_path / "123456000000-0badcafe.raw.gz"
    full = gzip.compress(b"".join(lines[4:]) + b"%d partial" % (T0 + 3 * 10**9), mtime=0)
    src.write_bytes(gzip.compress(b"".join(lines[:2]), mtime=0)
                    + gzip.compress(b"".join(lines[2:4]), mtime=0) + full[:-8])
    parts = raw_store.import_capture_parts(settings, src, "bybit", "BTCUSDT")
    assert [(p.parent.name, p.name) for p in parts] == [
        ("date=2025-07-07", "123456000000-0badcafe.part01.raw.gz"),
        ("date=2025-07-08", "123456000000-0badcafe.part02.raw.gz"),
    ]
    # the time-less line stays with the line before it; the line back before midnight stays in
    # file order after the first line of the new day (readers clamp it, as over the whole file)
    assert gzip.decompress(parts[0].read_bytes()) == b"".join(lines[:3])
    second = read_raw_file(parts[1])
    assert second.truncated
    assert [b"%d %s\n" % (t, f.encode()) for t, f in second.lines] == lines[3:]
    assert raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", "2025-07-08") == [parts[1]]
    # re-import: the same parts, nothing new
    assert raw_store.import_capture_parts(settings, src, "bybit", "BTCUSDT") == parts
    assert raw_store.import_capture(settings, src, "bybit", "BTCUSDT") == parts[0]
    assert sorted(p.name for p in settings.raw_dir.rglob("*")) == sorted(
        ["exchange=bybit", "symbol=BTCUSDT", "date=2025-07-07", "date=2025-07-08",
         *(p.name for p in parts)])


def test_import_splits_plain_ccxt_capture_and_refuses_conflicts(settings, tmp_path):
    """Format 3 (ISO `timestamp`, plain text, last line without a newline) over two midnights."""
    stamps = ["2025-07-07T23:59:59.900000", "2025-07-08T00:00:00.000001",
              "2025-07-08T12:00:00", "2025-07-09T00:00:00.5"]
    rows = [b'{"timestamp": "%s", "symbol": "BTC/USDT:USDT", "b": [], "a": []}' % s.encode()
            for s in stamps]
    src = tmp_path / "book_capture.jsonl"
    src.write_bytes(b"\n".join(rows))  # no final newline: kept as it was
    parts = raw_store.import_capture_parts(settings, src, "bybit", "BTCUSDT")
    assert [p.parent.name for p in parts] == ["date=2025-07-07", "date=2025-07-08", "date=2025-07-09"]
    assert [p.name for p in parts] == [f"book_capture.part0{k}.jsonl" for k in (1, 2, 3)]
    assert [p.read_bytes() for p in parts] == [rows[0] + b"\n", rows[1] + b"\n" + rows[2] + b"\n",
                                               rows[3]]
    # a different file of the same name: refused before any part is placed
    parts[1].unlink()
    parts[2].write_bytes(b"something else\n")
    with pytest.raises(raw_store.CaptureImportError, match="different content"):
        raw_store.import_capture_parts(settings, src, "bybit", "BTCUSDT")
    assert not parts[1].exists()
    assert not [p for p in settings.raw_dir.rglob(".*")]  # no temporary file left


def test_import_of_a_one_day_capture_is_an_unchanged_copy(settings, binance_files):
    for src in binance_files:
        parts = raw_store.import_capture_parts(settings, src, "binance", "BTCUSDT")
        assert len(parts) == 1 and parts[0].name == src.name
        assert parts[0].read_bytes() == src.read_bytes()


@given(st.lists(st.tuples(st.integers(-3, 3), st.booleans()), min_size=1, max_size=30))
@hsettings(max_examples=40, deadline=None)
def test_split_parts_rejoin_to_the_capture(tmp_path_factory, steps):
    """Property: the parts, in day order, are the capture's bytes; every part's first timed line
    is of its day; each later part starts on a later day."""
    from trade_pipeline.settings import Settings

    home = tmp_path_factory.mktemp("home")
    settings = Settings.load(home=home).ensure_dirs()
    t, lines = T0, []
    for hours, timed in steps:
        t += hours * 3600 * 10**9
        lines.append(b"%d %s\n" % (t, _frame(len(lines))) if timed else b"no time here\n")
    lines[0] = b"%d %s\n" % (T0, _frame(0))
    src = home / "cap.raw.gz"
    src.write_bytes(gzip.compress(b"".join(lines), mtime=0))
    parts = raw_store.import_capture_parts(settings, src, "bybit", "BTCUSDT")
    assert b"".join(gzip.decompress(p.read_bytes()) for p in parts) == b"".join(lines)
    days = [p.parent.name.removeprefix("date=") for p in parts]
    assert days == sorted(set(days))
    for part, day in zip(parts, days, strict=True):
        first = next(ln for ln in gzip.decompress(part.read_bytes()).splitlines() if ln[:1].isdigit())
        assert raw_store.day_of_ns(int(first.split(b" ")[0])) == day
