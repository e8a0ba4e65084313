"""Issue 15 items 2 and 9: legacy imports accumulate (merge by time, duplicates counted),
implausible values are quarantined, and a file name is a path (real books from the ccxt
capture in real SQLite files)."""

import datetime as dt
import shutil
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from trade_pipeline.cli import main
from trade_pipeline.lake import legacy, migrations, warehouse
from trade_pipeline_tests.lake.test_legacy import LEGACY_DDL, insert, lake_rows, real_books


def _db(path: Path, rows) -> Path:
    db = sqlite3.connect(path)
    db.execute(LEGACY_DDL)
    for ts, bids, asks, uid in rows:
        insert(db, ts.isoformat(), "BTCUSDT", bids, asks, update_id=uid)
    db.commit()
    db.close()
    return path


@pytest.fixture
def conn(settings):
    """A migrated warehouse connection."""
    c = warehouse.connect(settings)
    migrations.migrate(c, settings.lake_dir)
    yield c
    c.close()


@pytest.fixture
def books(bybit_ccxt_file):
    """60 real books of one day: two runs of 40 and 20 rows, 30 s apart."""
    return [(ts, b, a, 1000 + n) for n, (ts, b, a) in enumerate(real_books(bybit_ccxt_file))]


def test_second_import_of_the_same_day_accumulates(settings, conn, tmp_path, books):
    """Issue: 40 rows of a day, then a second file with 20 other rows of that day: the lake
    kept 20. Now 60, with the sessions of one import of all 60."""
    first = _db(tmp_path / "first.db", books[:40])
    again = books[5]  # already imported: same time, same book -> counted, not doubled
    t6, _, _, _ = books[6]
    other_book = books[50][1:3]  # same time as row 6 but another book -> conflict
    second = _db(tmp_path / "second.db", [*books[40:], again, (t6, *other_book, 7777)])

    r1 = legacy.import_legacy(settings, first, conn)
    assert r1.rows_imported == 40 and r1.already_in_lake == 0
    r2 = legacy.import_legacy(settings, second, conn)
    assert r2.rows_imported == 20 and r2.already_in_lake == 1
    assert r2.quarantined == {"duplicate_timestamp": 1}
    assert r2.merged_partitions == ["bybit/BTCUSDT/2025-07-07"]
    assert r2.rows_read == r2.rows_imported + r2.already_in_lake + sum(r2.quarantined.values())

    both = lake_rows(settings)
    assert both.height == 60
    assert both["timestamp"].to_list() == [ts.replace(tzinfo=dt.UTC) for ts, *_ in books]
    assert both["update_id"].to_list() == [uid for *_, uid in books]  # the conflict lost
    assert both["session_id"].n_unique() == 2  # the 30 s hole, as in one import

    # the same as importing everything at once, in another home
    whole = _db(tmp_path / "whole.db", books)
    other = settings.with_(home=tmp_path / "other").ensure_dirs()
    c2 = warehouse.connect(other)
    migrations.migrate(c2, other.lake_dir)
    legacy.import_legacy(other, whole, c2)
    c2.close()
    assert lake_rows(other).equals(both)
    # importing the second file again changes nothing
    r3 = legacy.import_legacy(settings, second, conn)
    assert r3.rows_imported == 0 and r3.already_in_lake == 21
    assert lake_rows(settings).equals(both)
    log = conn.execute("SELECT row_count, sessions FROM legacy_import_log").fetchall()
    assert log == [(60, 2)]


@pytest.mark.parametrize("ts_text, reason", [
    ("0001-01-01T00:00:00", "bad_timestamp"),
    ("9999-12-31T23:59:59", "bad_timestamp"),
    ("2008-12-31T23:59:59", "bad_timestamp"),  # before 2009: DATA.md rule 8
])
def test_absurd_dates_are_quarantined(settings, conn, tmp_path, books, ts_text, reason):
    path = _db(tmp_path / "d.db", books[:3])
    c = sqlite3.connect(path)
    insert(c, ts_text, "BTCUSDT", books[3][1], books[3][2], update_id=5)
    c.commit()
    c.close()
    report = legacy.import_legacy(settings, path, conn)
    assert report.rows_imported == 3 and report.quarantined == {reason: 1}
    assert lake_rows(settings)["timestamp"].dt.year().to_list() == [2025] * 3


@pytest.mark.parametrize("side, column", [("bid", "size"), ("ask", "size"), ("bid", "price")])
def test_infinite_price_or_size_is_quarantined(settings, conn, tmp_path, books, side, column):
    path = _db(tmp_path / "inf.db", books[:4])
    c = sqlite3.connect(path)
    c.execute(f"UPDATE l2_training_data_practical SET {side}_{column}_2 = 9e999 WHERE id = 2")
    c.commit()
    assert c.execute(f"SELECT {side}_{column}_2 FROM l2_training_data_practical WHERE id = 2"
                     ).fetchone()[0] == float("inf")
    c.close()
    report = legacy.import_legacy(settings, path, conn)
    assert report.rows_imported == 3 and report.quarantined == {"invalid_level": 1}
    rows = lake_rows(settings)
    book = rows.select(pl.col(pl.Float64))
    assert all(book[c].is_finite().all() for c in book.columns if c.endswith("size_2"))


def test_file_name_with_a_hash_is_opened_as_a_path(tmp_path, books, capsys):
    """Issue: `import-legacy backup#1.db` opened an empty file named `backup` (the path was
    made into a SQLite URI, `#` starting its fragment)."""
    src = _db(tmp_path / "src.db", books[:10])
    odd = tmp_path / "backup#1 ?x=%20.db"
    shutil.copy(src, odd)
    (tmp_path / "backup").write_bytes(b"")  # the file the bug opened
    code = main(["--home", str(tmp_path / "home"), "import-legacy", str(odd), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert '"rows_imported": 10' in out


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "ten"])
def test_max_gap_seconds_must_be_positive(tmp_path, books, capsys, value):
    src = _db(tmp_path / "src.db", books[:3])
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(tmp_path / "home"), "import-legacy", str(src),
              "--max-gap-seconds", value])
    assert exc.value.code == 2 and "--max-gap-seconds" in capsys.readouterr().err


def test_max_gap_checked_in_the_domain_too(settings, conn, tmp_path, books):
    src = _db(tmp_path / "src.db", books[:3])
    with pytest.raises(legacy.LegacyImportError, match="max gap"):
        legacy.import_legacy(settings, src, conn, max_gap_s=-1)
