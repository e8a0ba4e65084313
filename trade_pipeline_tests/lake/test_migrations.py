"""The migration runner against a real DuckDB file: apply, no-op, checksum, rollback, views."""

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from trade_pipeline.cli import main
from trade_pipeline.lake import migrations, warehouse
from trade_pipeline.market.schema import SNAPSHOT_SCHEMA
from trade_pipeline.storage import layout

EXPECTED_TABLES = {"migration_log", "models", "predictions", "trades", "backtest_results",
                   "feature_metadata", "feature_metadata_history", "legacy_quarantine",
                   "legacy_import_log"}
EXPECTED_VIEWS = {"l2_snapshots", "l2_features", "v_latest_l2_features",
                  "v_l2_feature_timeseries", "v_l2_daily_summary", "l2_training_data_practical"}
N_SCRIPTS = len(migrations.discover())  # every phase in sql/ (001-003, then later ones)


def objects(conn, kind: str) -> set[str]:
    table = "duckdb_tables()" if kind == "table" else "duckdb_views()"
    col = "table_name" if kind == "table" else "view_name"
    return {r[0] for r in conn.execute(
        f"SELECT {col} FROM {table} WHERE schema_name = 'main' AND NOT internal").fetchall()}


def snapshot_frame(day: str, n: int, start_mid: float = 100_000.0) -> pl.DataFrame:
    t0 = dt.datetime.fromisoformat(f"{day}T00:00:00+00:00")
    rows = []
    for i in range(n):
        mid = start_mid + i
        row = {"timestamp": t0 + dt.timedelta(milliseconds=100 * i), "exchange": "bybit",
               "symbol": "BTCUSDT", "update_id": i, "received_timestamp": None, "session_id": 7}
        for lvl in range(1, 11):
            row[f"bid_price_{lvl}"] = mid - 0.05 - (lvl - 1) * 0.1
            row[f"bid_size_{lvl}"] = float(lvl)
            row[f"ask_price_{lvl}"] = mid + 0.05 + (lvl - 1) * 0.1
            row[f"ask_size_{lvl}"] = float(lvl) + 0.5
        rows.append(row)
    return pl.DataFrame(rows, schema=SNAPSHOT_SCHEMA)


def feature_frame(snap: pl.DataFrame) -> pl.DataFrame:
    mid = (pl.col("bid_price_1") + pl.col("ask_price_1")) / 2
    return snap.select(
        "timestamp", "exchange", "symbol", "session_id",
        mid.alias("mid_price"),
        (pl.col("ask_price_1") - pl.col("bid_price_1")).alias("spread"),
        pl.lit(1.0).alias("spread_bps"), pl.lit(2.0).alias("total_bid_volume_10"),
        pl.lit(3.0).alias("total_ask_volume_10"), pl.lit(4.0).alias("weighted_bid_price"),
        pl.lit(5.0).alias("weighted_ask_price"), pl.lit(0.1).alias("order_book_imbalance"),
        mid.alias("microprice"), pl.lit(0.0).alias("price_impact_bid"),
        pl.lit(0.0).alias("price_impact_ask"), pl.lit(9.0).alias("ofi_10s"),
    )


@pytest.fixture
def conn(settings):
    c = warehouse.connect(settings)
    yield c
    c.close()


def test_apply_all_then_noop(settings, conn) -> None:
    report = migrations.migrate(conn, settings.lake_dir)
    assert [s.action for s in report.steps] == ["applied"] * N_SCRIPTS
    assert objects(conn, "table") >= EXPECTED_TABLES
    assert objects(conn, "view") >= EXPECTED_VIEWS
    # The empty lake: every view binds and returns no rows.
    for view in EXPECTED_VIEWS:
        assert conn.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,), view
    n_log = conn.execute("SELECT count(*) FROM migration_log").fetchone()[0]
    again = migrations.migrate(conn, settings.lake_dir)
    assert again.steps == []
    assert conn.execute("SELECT count(*) FROM migration_log").fetchone()[0] == n_log
    assert again.feature_sync["created"] == 0
    assert [r["state"] for r in migrations.status(conn)] == ["applied"] * N_SCRIPTS


def test_log_records_name_checksum_times_status(settings, conn) -> None:
    migrations.migrate(conn, settings.lake_dir)
    rows = conn.execute(
        "SELECT name, checksum, started_at, finished_at, status, error FROM migration_log ORDER BY id"
    ).fetchall()
    files = migrations.discover()
    assert [r[0] for r in rows] == [m.name for m in files]
    assert [r[1] for r in rows] == [m.checksum for m in files]
    assert all(r[2] <= r[3] and r[4] == "applied" and r[5] is None for r in rows)


def test_changed_checksum_is_a_clear_error(settings, conn, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrations.SQL_DIR, sql_dir)
    migrations.migrate(conn, settings.lake_dir, migrations=migrations.discover(sql_dir))
    path = sql_dir / "002_add_feature_metadata.sql"
    path.write_text(path.read_text() + "\n-- edited after it was applied\n")
    with pytest.raises(migrations.ChecksumMismatch, match=r"002_add_feature_metadata\.sql"):
        migrations.migrate(conn, settings.lake_dir, migrations=migrations.discover(sql_dir))


def test_failed_script_rolls_back_is_logged_and_blocks_later(settings, conn, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrations.SQL_DIR, sql_dir)
    path = sql_dir / "002_add_feature_metadata.sql"
    path.write_text(path.read_text() + "\nCREATE TABLE half_done (x INTEGER);\nSELECT * FROM no_such_table;\n")
    steps = migrations.discover(sql_dir)
    with pytest.raises(migrations.MigrationError, match=r"002_add_feature_metadata\.sql.*no_such_table"):
        migrations.migrate(conn, settings.lake_dir, migrations=steps)
    # 001 stays applied; nothing of 002 survived (transaction); 003 never ran.
    assert "half_done" not in objects(conn, "table")
    assert "feature_metadata" not in objects(conn, "table")
    assert "v_latest_l2_features" not in objects(conn, "view")
    state = {r["version"]: r for r in migrations.status(conn, steps)}
    assert state[1]["state"] == "applied" and state[2]["state"] == "pending"
    assert "no_such_table" in state[2]["last_error"]


def test_to_and_rollback(settings, conn) -> None:
    migrations.migrate(conn, settings.lake_dir, to=1)
    assert [r["state"] for r in migrations.status(conn)] == ["applied"] + ["pending"] * (N_SCRIPTS - 1)
    assert "feature_metadata" not in objects(conn, "table")
    migrations.migrate(conn, settings.lake_dir)
    conn.execute("INSERT INTO models (name, version) VALUES ('m', 1)")
    report = migrations.rollback(conn, 2)
    assert [s.name for s in report.steps] == [m.name for m in migrations.discover()[:0:-1]]
    assert [s.name for s in report.steps][-2:] == ["003_create_optimized_views.sql",
                                                   "002_add_feature_metadata.sql"]
    assert [r["state"] for r in migrations.status(conn)] == ["applied"] + ["rolled_back"] * (N_SCRIPTS - 1)
    assert "feature_metadata" not in objects(conn, "table")
    assert "v_latest_l2_features" not in objects(conn, "view")
    assert conn.execute("SELECT count(*) FROM models").fetchone() == (1,)  # 001 untouched
    again = migrations.migrate(conn, settings.lake_dir)
    assert [s.version for s in again.steps] == list(range(2, N_SCRIPTS + 1))
    assert objects(conn, "view") >= EXPECTED_VIEWS


def test_rollback_of_004_drops_the_trade_views(settings, conn) -> None:
    """004's down script drops l2_trades and v_l2_trades_daily_summary (in the DuckDB file,
    not only the session), leaves the earlier phases' views and the lake's trade files."""
    trade_views = {"l2_trades", "v_l2_trades_daily_summary"}
    migrations.migrate(conn, settings.lake_dir)
    assert objects(conn, "view") >= trade_views | EXPECTED_VIEWS
    lake_trades = sorted(p.relative_to(settings.lake_dir)
                         for p in (Path(settings.lake_dir) / "l2_trades").rglob("*") if p.is_file())
    assert lake_trades, "the migration's placeholder for l2_trades"
    report = migrations.rollback(conn, 4)
    assert report.steps[-1].name == "004_add_l2_trades.sql"  # (after any later phase's)
    assert not objects(conn, "view") & trade_views
    assert objects(conn, "view") >= EXPECTED_VIEWS  # 001-003 untouched
    assert {r["version"]: r["state"] for r in migrations.status(conn)}[4] == "rolled_back"
    conn.close()
    reopened = warehouse.connect(settings)
    try:
        assert not objects(reopened, "view") & trade_views
        assert objects(reopened, "view") >= EXPECTED_VIEWS
        assert sorted(p.relative_to(settings.lake_dir) for p in (Path(settings.lake_dir) / "l2_trades")
                      .rglob("*") if p.is_file()) == lake_trades
        migrations.migrate(reopened, settings.lake_dir)  # and it comes back
        assert objects(reopened, "view") >= trade_views
    finally:
        reopened.close()


def test_views_follow_the_lake(settings, conn) -> None:
    migrations.migrate(conn, settings.lake_dir)
    snap = snapshot_frame("2025-07-07", 50)
    key = layout.PartitionKey("bybit", "BTCUSDT", "2025-07-07")
    layout.write_partition(snap, settings.lake_dir, "l2_snapshots", key)
    # A writer's temp file in the partition folder is never read.
    tmp = Path(layout.partition_dir(settings.lake_dir, "l2_snapshots", key)) / ".tmp-x.parquet"
    snap.write_parquet(tmp)
    assert conn.execute("SELECT count(*) FROM l2_snapshots").fetchone() == (50,)
    assert conn.execute("SELECT count(*) FROM l2_features").fetchone() == (0,)
    legacy = conn.execute("SELECT symbol, bid_price_1, mid_price FROM l2_training_data_practical "
                          "ORDER BY id LIMIT 1").fetchone()
    assert legacy == ("BTCUSDT", snap["bid_price_1"][0], None)  # no feature row yet: null
    layout.write_partition(feature_frame(snap), settings.lake_dir, "l2_features", key)
    latest = conn.execute("SELECT timestamp, mid_price FROM v_latest_l2_features").fetchall()
    assert len(latest) == 1 and latest[0][1] == pytest.approx(100_049.0)
    ts = conn.execute("SELECT count(*), count(session_id), max(ofi_10s), min(timestamp_ms) "
                      "FROM v_l2_feature_timeseries").fetchone()
    assert ts == (50, 50, 9.0, 1_751_846_400_000)
    summary = conn.execute("SELECT snapshot_rows, feature_rows, sessions, open_mid_price, "
                           "close_mid_price FROM v_l2_daily_summary").fetchall()
    assert summary == [(50, 50, 1, 100_000.0, 100_049.0)]
    legacy = conn.execute("SELECT mid_price, target_return_1min FROM l2_training_data_practical "
                          "ORDER BY id LIMIT 1").fetchone()
    assert legacy == (100_000.0, None)
    # The placeholder is not a partition.
    assert layout.list_partitions(settings.lake_dir, "l2_snapshots") == [key]


def test_feature_sync_insert_update_deactivate(settings, conn) -> None:
    base = [{"name": "a", "group": "g", "description": "d", "calculation_params": "{}",
             "version": 1, "active": True},
            {"name": "b", "group": "g", "description": "d", "calculation_params": '{"k": 2}',
             "version": 1, "active": True}]
    rows = list(base)
    migrations.migrate(conn, settings.lake_dir, feature_rows=lambda: rows)
    assert conn.execute("SELECT count(*) FROM feature_metadata WHERE active").fetchone() == (2,)
    rows[:] = [{**base[0], "description": "better words"},
               {"name": "c", "group": "g", "description": "new", "calculation_params": "{}",
                "version": 1, "active": True}]
    counts = migrations.migrate(conn, settings.lake_dir, feature_rows=lambda: rows).feature_sync
    assert counts == {"created": 1, "updated": 1, "deactivated": 1, "reactivated": 0, "unchanged": 0}
    state = dict(conn.execute("SELECT name, active FROM feature_metadata").fetchall())
    assert state == {"a": True, "b": False, "c": True}
    history = conn.execute("SELECT name, change FROM feature_metadata_history ORDER BY id").fetchall()
    assert history[-3:] == [("a", "updated"), ("c", "created"), ("b", "deactivated")]
    # Params changed without a version bump: refused, nothing changes.
    rows[:] = [{**base[0], "calculation_params": '{"k": 3}'}, rows[1]]
    with pytest.raises(migrations.MigrationError, match="bump the version"):
        migrations.migrate(conn, settings.lake_dir, feature_rows=lambda: rows)
    rows[0]["version"] = 2
    counts = migrations.migrate(conn, settings.lake_dir, feature_rows=lambda: rows).feature_sync
    assert counts["updated"] == 1
    assert conn.execute("SELECT version, calculation_params::VARCHAR FROM feature_metadata "
                        "WHERE name = 'a'").fetchone() == (2, '{"k": 3}')


def test_real_catalog_is_synced(settings, conn) -> None:
    from trade_pipeline.features.catalog import metadata_rows

    migrations.migrate(conn, settings.lake_dir)
    n = conn.execute("SELECT count(*) FROM feature_metadata WHERE active").fetchone()[0]
    assert n == len(metadata_rows()) == 118


def test_cli_migrate_status_and_rollback(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    db = tmp_path / "elsewhere.duckdb"
    assert main(["--home", str(home), "migrate", "--warehouse", str(db), "--status", "--json"]) == 0
    assert {r["state"] for r in json.loads(capsys.readouterr().out)} == {"pending"}
    assert main(["--home", str(home), "migrate", "--warehouse", str(db), "--to", "2"]) == 0
    assert main(["--home", str(home), "migrate", "--warehouse", str(db), "--status", "--json"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "migrate", "--warehouse", str(db), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["version"] for s in out["steps"]] == list(range(3, N_SCRIPTS + 1))
    assert main(["--home", str(home), "migrate", "--warehouse", str(db), "--rollback", "3"]) == 0
    assert main(["--home", str(home), "migrate", "--warehouse", str(db), "--status"]) == 0
    text = capsys.readouterr().out
    assert "rolled_back" in text and "003_create_optimized_views.sql" in text
    assert db.exists() and not (home / "warehouse.duckdb").exists()
    with duckdb.connect(str(db)) as c:
        # --rollback 3 undoes 003 and every later phase
        assert c.execute("SELECT count(*) FROM migration_log WHERE status = 'rolled_back'").fetchone() == (N_SCRIPTS - 2,)


def test_views_over_real_pipeline_output(settings, conn, bybit_delta_files) -> None:
    """The views bind to what the ingestion and feature code really write (their Parquet
    options, the 118 features + keys), and agree with the frames they wrote."""
    from trade_pipeline.features.batch import PARQUET_OPTIONS as FEATURE_OPTIONS
    from trade_pipeline.features.batch import compute_features
    from trade_pipeline.market.snapshots import PARQUET_OPTIONS as SNAPSHOT_OPTIONS
    from trade_pipeline.market.snapshots import build_snapshots

    migrations.migrate(conn, settings.lake_dir)
    snap = build_snapshots(bybit_delta_files[:2]).frame
    feats = compute_features(snap)
    day = snap["timestamp"].dt.date().cast(pl.String)
    for d in day.unique().to_list():
        key = layout.PartitionKey("bybit", "BTCUSDT", d)
        layout.write_partition(snap.filter(day == d), settings.lake_dir, "l2_snapshots", key,
                               **SNAPSHOT_OPTIONS)
        layout.write_partition(feats.filter(day == d), settings.lake_dir, "l2_features", key,
                               **FEATURE_OPTIONS)
    assert conn.execute("SELECT count(*) FROM l2_snapshots").fetchall() == [(snap.height,)]
    latest = conn.execute("SELECT timestamp, mid_price FROM v_latest_l2_features").fetchall()
    last = feats.sort("timestamp").tail(1)
    assert latest == [(last["timestamp"][0], last["mid_price"][0])]
    summary = conn.execute("SELECT sum(snapshot_rows), sum(feature_rows), sum(sessions) "
                           "FROM v_l2_daily_summary").fetchall()
    assert summary[0] == (snap.height, feats.height, snap["session_id"].n_unique())
    old = conn.sql("SELECT timestamp, mid_price, microprice, bid_price_3 FROM "
                   "l2_training_data_practical ORDER BY id").pl()
    assert old["mid_price"].to_list() == feats.sort("timestamp")["mid_price"].to_list()
    assert old["microprice"].to_list() == feats.sort("timestamp")["microprice"].to_list()
    assert old["bid_price_3"].to_list() == snap.sort("timestamp")["bid_price_3"].to_list()
    width = len(conn.execute("DESCRIBE v_l2_feature_timeseries").fetchall())
    assert width == feats.width + 2  # + date, timestamp_ms


def test_status_works_read_only(settings) -> None:
    with warehouse.session(settings) as c:
        c.execute("CREATE TABLE unrelated (x INTEGER)")
    with warehouse.session(settings, read_only=True) as c:
        assert {r["state"] for r in migrations.status(c)} == {"pending"}
    with warehouse.session(settings) as c:
        migrations.migrate(c, settings.lake_dir)
    with warehouse.session(settings, read_only=True) as c:
        assert {r["state"] for r in migrations.status(c)} == {"applied"}
