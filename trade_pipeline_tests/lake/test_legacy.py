"""Legacy SQLite import: real books from the format-3 capture, with every DATA.md defect."""

import datetime as dt
import gzip
import json
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from trade_pipeline.cli import main
from trade_pipeline.lake import legacy, migrations, warehouse
from trade_pipeline.storage import layout
from trade_pipeline_tests.lake.test_migrations import snapshot_frame

LEGACY_DDL = (
    "CREATE TABLE l2_training_data_practical (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "timestamp DATETIME NOT NULL, symbol TEXT NOT NULL, exchange TEXT DEFAULT 'bybit', "
    + "".join(f"bid_price_{i} REAL, bid_size_{i} REAL, " for i in range(1, 11))
    + "".join(f"ask_price_{i} REAL, ask_size_{i} REAL, " for i in range(1, 11))
    + "mid_price REAL, spread REAL, spread_bps REAL, total_bid_volume_10 REAL, "
    "total_ask_volume_10 REAL, weighted_bid_price REAL, weighted_ask_price REAL, "
    "order_book_imbalance REAL, microprice REAL, price_impact_bid REAL, price_impact_ask REAL, "
    "target_return_1min REAL, target_return_5min REAL, target_volatility REAL, "
    "target_direction INTEGER, update_id INTEGER, sequence_id INTEGER, data_quality_score REAL, "
    "data_source TEXT DEFAULT 'live_trading')"
)


def real_books(path: Path) -> list[tuple[dt.datetime, list, list]]:
    """60 real 10-level books from the capture, put on a test-controlled clock: two runs (40
    rows then 20, 1.1 s apart) with a 30 s hole. The capture's first line is a whole book;
    most later lines carry only changed levels (size 0 = removed), so the book is rebuilt and
    its top 10 taken every 40 lines."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    books = []
    with gzip.open(path, "rt") as src:
        for i, line in enumerate(src):
            obj = json.loads(line)
            for side, key in ((bids, "b"), (asks, "a")):
                for p, q in obj[key]:
                    if float(q) == 0:
                        side.pop(float(p), None)
                    else:
                        side[float(p)] = float(q)
            if i % 40 == 0:
                top_b = sorted(bids.items(), reverse=True)[:10]
                top_a = sorted(asks.items())[:10]
                assert len(top_b) == len(top_a) == 10 and top_b[0][0] < top_a[0][0]
                books.append((top_b, top_a))
            if len(books) == 60:
                break
    t0 = dt.datetime(2025, 7, 7, 17, 57, 6, 605795)
    out = []
    for n, (bids, asks) in enumerate(books):
        ts = t0 + dt.timedelta(seconds=1.1 * n + (30 if n >= 40 else 0), microseconds=137 * n)
        out.append((ts, bids, asks))
    return out


def insert(conn, ts: str, symbol: str, bids, asks, source="live_trading", update_id=None):
    cols = ["timestamp", "symbol", "data_source", "update_id", "mid_price", "spread",
            "target_return_1min", "target_direction"]
    vals = [ts, symbol, source, update_id, 1.0, -5.0, 99.0, 1]  # derived columns are garbage
    for side, levels in (("bid", bids), ("ask", asks)):
        for i, (p, q) in enumerate(levels, start=1):
            cols += [f"{side}_price_{i}", f"{side}_size_{i}"]
            vals += [p, q]
    conn.execute(f"INSERT INTO l2_training_data_practical ({', '.join(cols)}) VALUES "
                 f"({', '.join('?' * len(vals))})", vals)


def build_legacy_db(path: Path, ccxt_file: Path) -> dict:
    """The DB and what a correct import must produce."""
    books = real_books(ccxt_file)
    conn = sqlite3.connect(path)
    conn.execute(LEGACY_DDL)
    expected = []
    for n, (ts, bids, asks) in enumerate(books):
        if n % 5 == 0:
            ts = ts.replace(microsecond=0)
            text = ts.strftime("%Y-%m-%d %H:%M:%S")  # no fraction
        else:
            text = ts.isoformat(sep="T" if n % 2 else " ")
        symbol = "BTC/USDT:USDT" if n % 2 else "BTCUSDT"
        insert(conn, text, symbol, bids, asks, update_id=1000 + n)
        expected.append((ts.replace(tzinfo=dt.UTC), bids, asks, 1000 + n))
    t0, bids0, asks0 = books[3]
    defects = {"mock_or_demo_source": 3, "crossed_book": 2, "only_level_1": 2,
               "bad_timestamp": 1, "duplicate_timestamp": 1, "bad_symbol": 1}
    insert(conn, (t0 + dt.timedelta(milliseconds=300)).isoformat(), "BTCUSDT", bids0, asks0, "mock_data")
    insert(conn, (t0 + dt.timedelta(milliseconds=400)).isoformat(), "BTC/USDT:USDT", bids0, asks0, "mock_data")
    insert(conn, (t0 + dt.timedelta(milliseconds=500)).isoformat(), "BTCUSDT", bids0, asks0, "demo_trading")
    crossed_bids = [(asks0[0][0] + 1.0, bids0[0][1]), *bids0[1:]]
    insert(conn, (t0 + dt.timedelta(milliseconds=600)).isoformat(), "BTCUSDT", crossed_bids, asks0)
    locked_bids = [(asks0[0][0], bids0[0][1]), *bids0[1:]]
    insert(conn, (t0 + dt.timedelta(milliseconds=700)).isoformat(), "BTCUSDT", locked_bids, asks0)
    insert(conn, (t0 + dt.timedelta(milliseconds=800)).isoformat(), "BTCUSDT", bids0[:1], asks0[:1])
    insert(conn, (t0 + dt.timedelta(milliseconds=900)).isoformat(), "BTC/USDT:USDT", bids0[:1], asks0[:1])
    insert(conn, "07/07/2025 17:57 yesterday-ish", "BTCUSDT", bids0, asks0)
    insert(conn, books[7][0].isoformat(), "BTCUSDT", bids0, asks0)  # same time as row 7
    insert(conn, (t0 + dt.timedelta(milliseconds=950)).isoformat(), "BTC USDT!", bids0, asks0)
    conn.commit()
    conn.close()
    return {"rows": expected, "defects": defects, "runs": (40, 20)}


@pytest.fixture
def legacy_db(tmp_path: Path, bybit_ccxt_file: Path) -> tuple[Path, dict]:
    path = tmp_path / "trading_bot_live.db"
    return path, build_legacy_db(path, bybit_ccxt_file)


@pytest.fixture
def conn(settings):
    c = warehouse.connect(settings)
    migrations.migrate(c, settings.lake_dir)
    yield c
    c.close()


def lake_rows(settings) -> pl.DataFrame:
    frames = [layout.read_partition(settings.lake_dir, "l2_snapshots", k)
              for k in layout.list_partitions(settings.lake_dir, "l2_snapshots")]
    return pl.concat(frames).sort("timestamp")


def test_import_keeps_real_rows_and_quarantines_defects(settings, conn, legacy_db) -> None:
    path, truth = legacy_db
    report = legacy.import_legacy(settings, path, conn)
    assert report.quarantined == dict(sorted(truth["defects"].items()))
    assert report.rows_imported == len(truth["rows"])
    assert report.rows_read == report.rows_imported + sum(report.quarantined.values())
    assert report.sessions == 2 and report.partitions == ["bybit/BTCUSDT/2025-07-07"]

    got = lake_rows(settings)
    assert got["symbol"].unique().to_list() == ["BTCUSDT"]
    assert got["timestamp"].to_list() == [r[0] for r in truth["rows"]]
    assert got["update_id"].to_list() == [r[3] for r in truth["rows"]]
    for lvl in (1, 5, 10):
        assert got[f"bid_price_{lvl}"].to_list() == [r[1][lvl - 1][0] for r in truth["rows"]]
        assert got[f"ask_size_{lvl}"].to_list() == [r[2][lvl - 1][1] for r in truth["rows"]]
    # Sessions: the first row's time in us, one per contiguous run.
    sessions = got.group_by("session_id", maintain_order=True).agg(pl.len(), pl.col("timestamp").min())
    assert sessions["len"].to_list() == list(truth["runs"])
    assert sessions["session_id"].to_list() == [
        int(t.timestamp() * 1_000_000) for t in sessions["timestamp"]]

    quarantine = dict(conn.execute(
        "SELECT reason, count(*) FROM legacy_quarantine GROUP BY reason").fetchall())
    assert quarantine == truth["defects"]
    raw = conn.execute("SELECT row_json->>'data_source' FROM legacy_quarantine "
                       "WHERE reason = 'mock_or_demo_source' ORDER BY legacy_id").fetchall()
    assert raw == [("mock_data",), ("mock_data",), ("demo_trading",)]
    # The old queries keep working over the imported rows; the garbage derived columns of
    # the old table are not used (no feature rows yet: null).
    old = conn.execute("SELECT count(*), count(mid_price), min(symbol) FROM l2_training_data_practical").fetchone()
    assert old == (len(truth["rows"]), 0, "BTCUSDT")


def test_reimport_is_idempotent_and_dry_run_writes_nothing(settings, conn, legacy_db) -> None:
    path, _ = legacy_db
    dry = legacy.import_legacy(settings, path, conn, dry_run=True)
    assert layout.list_partitions(settings.lake_dir, "l2_snapshots") == []
    assert conn.execute("SELECT count(*) FROM legacy_quarantine").fetchone() == (0,)
    first = legacy.import_legacy(settings, path, conn)
    assert (dry.rows_imported, dry.quarantined) == (first.rows_imported, first.quarantined)
    rows1 = lake_rows(settings)
    second = legacy.import_legacy(settings, path, conn)
    assert second.quarantined == first.quarantined
    assert lake_rows(settings).equals(rows1)
    n = conn.execute("SELECT count(*) FROM legacy_quarantine").fetchone()[0]
    assert n == sum(first.quarantined.values())


def test_partition_written_by_ingestion_is_never_overwritten(settings, conn, legacy_db) -> None:
    path, truth = legacy_db
    key = layout.PartitionKey("bybit", "BTCUSDT", "2025-07-07")
    ours = snapshot_frame("2025-07-07", 5)
    layout.write_partition(ours, settings.lake_dir, "l2_snapshots", key)
    report = legacy.import_legacy(settings, path, conn)
    assert report.rows_imported == 0
    assert report.quarantined["lake_partition_exists"] == len(truth["rows"])
    assert layout.read_partition(settings.lake_dir, "l2_snapshots", key).equals(ours)


def test_not_a_legacy_db_is_a_clear_error(settings, conn, tmp_path: Path) -> None:
    bad = tmp_path / "other.db"
    sqlite3.connect(bad).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(legacy.LegacyImportError, match="no table l2_training_data_practical"):
        legacy.import_legacy(settings, bad, conn)


@pytest.mark.parametrize("text, expected", [
    ("2025-07-07 17:57:06", dt.datetime(2025, 7, 7, 17, 57, 6, tzinfo=dt.UTC)),
    ("2025-07-07T17:57:06.605795", dt.datetime(2025, 7, 7, 17, 57, 6, 605795, tzinfo=dt.UTC)),
    ("2025-07-07 17:57:06.6", dt.datetime(2025, 7, 7, 17, 57, 6, 600000, tzinfo=dt.UTC)),
    ("2025-07-07T17:57:06Z", dt.datetime(2025, 7, 7, 17, 57, 6, tzinfo=dt.UTC)),
    ("2025-07-08T03:57:06+10:00", dt.datetime(2025, 7, 7, 17, 57, 6, tzinfo=dt.UTC)),
    ("yesterday", None),
])
def test_timestamp_forms(text: str, expected: dt.datetime | None) -> None:
    us = legacy.parse_timestamp_us(text, "text")
    got = None if us is None else dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    assert got == expected


def test_cli_prints_counts_per_reason(tmp_path: Path, legacy_db, capsys) -> None:
    path, truth = legacy_db
    assert main(["--home", str(tmp_path / "h"), "import-legacy", str(path)]) == 0
    out = capsys.readouterr().out
    for reason, count in truth["defects"].items():
        assert f"{reason}" in out and str(count) in out
    assert f"imported {len(truth['rows'])} rows in 2 sessions" in out


def test_text_in_a_book_column_is_quarantined(settings, conn, tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    db = sqlite3.connect(path)
    db.execute(LEGACY_DDL)
    bids = [(100.0 - i, 1.0) for i in range(10)]
    asks = [(101.0 + i, 1.0) for i in range(10)]
    insert(db, "2025-07-07 00:00:00", "BTCUSDT", bids, asks)
    insert(db, "2025-07-07 00:00:01", "BTCUSDT", bids, asks)
    db.execute("UPDATE l2_training_data_practical SET bid_size_3 = 'lots' WHERE id = 2")
    db.commit()
    db.close()
    report = legacy.import_legacy(settings, path, conn)
    assert (report.rows_imported, report.quarantined) == (1, {"non_numeric_book": 1})
    row = conn.execute("SELECT row_json->>'bid_size_3' FROM legacy_quarantine").fetchall()
    assert row == [("lots",)]


HOSTILE_COLUMNS = [
    'x", (SELECT sqlite_version()) AS "y',  # would break out of a quoted identifier
    "evil) FROM l2_training_data_practical; --",
    "extra_column",  # a plain identifier, but not a legacy column
    "ID\n",  # the pattern must match the whole name (no trailing newline)
]


@pytest.mark.parametrize("column", HOSTILE_COLUMNS)
def test_hostile_column_name_is_refused(settings, conn, tmp_path: Path, column: str) -> None:
    path = tmp_path / "hostile.db"
    db = sqlite3.connect(path)
    quoted = '"' + column.replace('"', '""') + '"'
    db.execute(LEGACY_DDL[:-1] + f", {quoted} TEXT)")
    db.execute("INSERT INTO l2_training_data_practical (timestamp, symbol, bid_price_1, "
               "ask_price_1) VALUES ('2025-07-07 00:00:00', 'BTCUSDT', 1.0, 2.0)")
    db.commit()
    db.close()
    before = path.read_bytes()
    for call in (lambda: legacy.read_legacy(path), lambda: legacy.legacy_rows_json(path, [1]),
                 lambda: legacy.import_legacy(settings, path, conn)):
        with pytest.raises(legacy.LegacyImportError, match="not legacy columns") as err:
            call()
        assert repr(column) in str(err.value)
    assert path.read_bytes() == before
    assert not layout.list_partitions(settings.lake_dir, "l2_snapshots")


@pytest.mark.parametrize("name", ["bid_price_1", "data_source", "id"])
def test_quote_column_accepts_legacy_columns(name: str) -> None:
    assert legacy.quote_column(name) == f'"{name}"'


@pytest.mark.parametrize("name", ['bid_price_1"', "a" * 64, "1abc", "", "spread bps", "Bid_Price_1"])
def test_quote_column_refuses_anything_else(name: str) -> None:
    with pytest.raises(legacy.LegacyImportError, match="refusing column name"):
        legacy.quote_column(name)
