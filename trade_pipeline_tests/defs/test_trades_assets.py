"""The trade feed's Dagster layer: raw_l2_captures -> l2_trades (+ checks), the migration-004
view over the partitions, on an ephemeral instance."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from trade_pipeline.defs import warehouse as wh
from trade_pipeline.defs.ingest import raw_l2_captures
from trade_pipeline.defs.resources import build_resources
from trade_pipeline.defs.trades import l2_trades
from trade_pipeline.lake import warehouse
from trade_pipeline.market.schema import TRADE_SCHEMA
from trade_pipeline.market.trades import read_trades
from trade_pipeline.settings import Settings
from trade_pipeline.storage import raw_store
from trade_pipeline.storage.layout import PartitionKey, read_partition
from trade_pipeline_tests.market.streams import T0_MS, rec, trade_rec, write_lines

DAY = "2025-07-07"
DAY2 = "2025-07-08"
T0 = int(dt.datetime(2025, 7, 7, 12, tzinfo=dt.UTC).timestamp() * 1000)


def _run(home, partition, raw_config=None, selection=None, instance=None):
    run_config = {"ops": {"raw_l2_captures": {"config": raw_config}}} if raw_config else None
    return dg.materialize(
        [raw_l2_captures, l2_trades],
        partition_key=partition,
        resources=build_resources(str(home)),
        instance=instance or dg.DagsterInstance.ephemeral(),
        run_config=run_config,
        selection=selection,
    )


def _meta(result) -> dict:
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey("l2_trades")]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_simulated_day_trades_checks_and_view(tmp_path):
    home = tmp_path / "home"
    result = _run(home, DAY, {"source": "simulator", "duration_s": 120})
    assert result.success
    settings = Settings.load(home=home)
    files = raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", DAY)
    direct = read_trades(files).frame
    meta = _meta(result)
    assert meta["rows"] == direct.height > 1000
    assert meta["bad_trades"] == meta["duplicates"] == meta["other_symbol"] == 0
    assert meta["trades_before_day"] == meta["trades_after_day"] == 0
    assert 0.3 < meta["buy_share"] < 0.7 and meta["volume"] > 0
    stored = read_partition(settings.lake_dir, "l2_trades", PartitionKey("bybit", "BTCUSDT", DAY))
    assert dict(stored.schema) == TRADE_SCHEMA and stored.equals(direct)
    checks = _checks(result)
    assert set(checks) == {"schema", "row_count", "duplicates", "bad_lines"}
    assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}
    # the DuckDB view of migration 004 reads the partition
    assert dg.materialize(wh.migration_assets, resources=build_resources(str(home)),
                          instance=dg.DagsterInstance.ephemeral()).success
    with warehouse.session(settings) as conn:
        n, vol = conn.execute("SELECT count(*), sum(size) FROM l2_trades").fetchone()
        summary = conn.execute("SELECT trades, date FROM v_l2_trades_daily_summary").fetchall()
    assert n == stored.height and vol == pytest.approx(stored["size"].sum())
    assert summary == [(stored.height, dt.date(2025, 7, 7))]


def test_book_only_captures_warn_and_damaged_trades_are_counted(tmp_path, bybit_delta_files):
    home = tmp_path / "home"
    capture = next(p for p in bybit_delta_files if "20250707_104036" in p.name)
    result = _run(home, DAY, {"source": "recorded", "files": [str(capture)]})
    assert result.success
    assert _meta(result)["rows"] == 0
    row_count = _checks(result)["row_count"]
    assert not row_count.passed and row_count.severity == dg.AssetCheckSeverity.WARN
    assert "no trade feed" in row_count.description
    # a capture with trades, some of them bad or repeated
    home2 = tmp_path / "home2"
    lines = [rec(T0 - T0_MS, "snapshot", 1, bids=[(100.0, 1.0)], asks=[(100.1, 1.0)]),
             trade_rec(T0 + 1, "a"), trade_rec(T0 + 2, "b", price="x"),
             trade_rec(T0 + 3, "c", side="up"), trade_rec(T0 + 4, "a"), trade_rec(T0 + 5, "d")]
    path = write_lines(tmp_path / "l2_data_BTC_USDT_USDT_20250707_120000.jsonl.gz", lines)
    result = _run(home2, DAY, {"source": "recorded", "files": [str(path)]})
    meta = _meta(result)
    assert meta["rows"] == 2 and meta["duplicates"] == 1
    assert meta["bad_by_reason"] == {"bad_price": 1, "bad_side": 1}
    checks = _checks(result)
    assert checks["duplicates"].passed and checks["row_count"].passed
    assert not checks["bad_lines"].passed
    assert checks["bad_lines"].severity == dg.AssetCheckSeverity.WARN
    assert "bad_price 1" in checks["bad_lines"].description


def test_midnight_trades_land_in_exactly_one_day(tmp_path):
    """A simulated stream 23:59 -> 00:01: every trade is in exactly one partition (the day it
    was received), and a reconnect that replays the last trades into the next day's file is
    de-duplicated against the previous day."""
    home = tmp_path / "home"
    first = _run(home, DAY, {"source": "simulator", "start_offset_s": 86_400 - 60,
                             "duration_s": 120})
    assert first.success
    settings = Settings.load(home=home)
    day2_files = raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", DAY2)
    all_files = raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", DAY) + day2_files
    # a replayed tail: the last 5 trades of day 1 again, received after midnight
    key1 = PartitionKey("bybit", "BTCUSDT", DAY)
    p1 = read_partition(settings.lake_dir, "l2_trades", key1)
    replay = [trade_rec(int(r["timestamp"].timestamp() * 1000), r["trade_id"], r["side"],
                        r["price"], r["size"], recv_ms=T0 + 86_400_000)
              for r in p1.tail(5).iter_rows(named=True)]
    from trade_pipeline_tests.market.streams import wire_trade_line

    folder = raw_store.day_dir(settings.raw_dir, "bybit", "BTCUSDT", DAY2)
    recv_ns = int(dt.datetime(2025, 7, 8, 0, 0, 30, tzinfo=dt.UTC).timestamp() * 1e9)
    write_lines(folder / "000030000000-ffffffff.raw.gz", [wire_trade_line(recv_ns, replay)])
    second = _run(home, DAY2, selection=[l2_trades])
    assert second.success
    meta2 = _meta(second)
    assert meta2["duplicates_of_previous_day"] == 5
    p2 = read_partition(settings.lake_dir, "l2_trades", PartitionKey("bybit", "BTCUSDT", DAY2))
    whole = read_trades(all_files).frame
    both = pl.concat([p1, p2])
    assert both.height == whole.height and both["trade_id"].is_unique().all()
    assert sorted(both["trade_id"]) == sorted(whole["trade_id"])
    assert p1["received_timestamp"].max() < dt.datetime(2025, 7, 8, tzinfo=dt.UTC)
