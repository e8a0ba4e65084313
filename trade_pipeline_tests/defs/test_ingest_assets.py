"""Dagster layer of the ingest area: raw_l2_captures -> l2_snapshots, on an ephemeral instance."""

import datetime as dt

import dagster as dg
import polars as pl
import pydantic
import pytest

from trade_pipeline.defs.ingest import l2_snapshots, load_checkpoint, raw_l2_captures
from trade_pipeline.defs.resources import build_resources
from trade_pipeline.market.schema import SNAPSHOT_SCHEMA
from trade_pipeline.settings import Settings
from trade_pipeline.storage import raw_store
from trade_pipeline.storage.layout import PartitionKey, read_partition

DAY = "2025-07-07"


def _run(home, partition, raw_config=None, selection=None, raise_on_error=True):
    run_config = {"ops": {"raw_l2_captures": {"config": raw_config}}} if raw_config else None
    return dg.materialize(
        [raw_l2_captures, l2_snapshots],
        partition_key=partition,
        resources=build_resources(str(home)),
        instance=dg.DagsterInstance.ephemeral(),
        run_config=run_config,
        selection=selection,
        raise_on_error=raise_on_error,
    )


def _meta(result, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey(asset)]
    assert len(events) == 1
    return {k: v.value for k, v in events[0].materialization.metadata.items()}


def test_simulator_source_default_day(tmp_path):
    home = tmp_path / "home"
    result = _run(home, DAY, {"source": "simulator", "duration_s": 120})
    assert result.success
    raw_meta = _meta(result, "raw_l2_captures")
    assert raw_meta["source"] == "simulator" and raw_meta["files"] == 1
    assert raw_meta["messages"] > 120 * 20
    meta = _meta(result, "l2_snapshots")
    assert meta["rows"] == 1200 and meta["sessions"] == 1
    assert meta["gaps"] == 0 and meta["crossed"] == 0 and meta["bad_lines"] == 0
    assert meta["messages"] == raw_meta["messages"]
    assert "| timestamp |" in meta["preview"] and "bid_price_1" in meta["preview"]
    settings = Settings.load(home=home)
    key = PartitionKey("bybit", "BTCUSDT", DAY)
    frame = read_partition(settings.lake_dir, "l2_snapshots", key)
    assert meta["path"].endswith("l2_snapshots/exchange=bybit/symbol=BTCUSDT/date=2025-07-07/part-0.parquet")
    assert dict(frame.schema) == SNAPSHOT_SCHEMA
    assert frame.height == 1200
    assert frame["timestamp"].min() == dt.datetime(2025, 7, 7, tzinfo=dt.UTC)
    assert load_checkpoint(settings, key)["valid"] is True
    # re-materializing replaces the day (same seed: same rows), never appends
    again = _run(home, DAY, {"source": "simulator", "duration_s": 120})
    assert _meta(again, "l2_snapshots")["rows"] == 1200
    assert len(raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", DAY)) == 1
    assert read_partition(settings.lake_dir, "l2_snapshots", key).equals(frame)


def test_recorded_source_equals_build_snapshots(tmp_path, bybit_delta_files):
    from trade_pipeline.market.snapshots import build_snapshots

    capture = next(p for p in bybit_delta_files if "20250707_104036" in p.name)
    home = tmp_path / "home"
    result = _run(home, DAY, {"source": "recorded", "files": [str(capture)]})
    assert result.success
    assert _meta(result, "raw_l2_captures")["files"] == 1
    settings = Settings.load(home=home)
    stored = read_partition(settings.lake_dir, "l2_snapshots", PartitionKey("bybit", "BTCUSDT", DAY))
    direct = build_snapshots([capture]).frame
    day = dt.datetime(2025, 7, 7, tzinfo=dt.UTC)
    direct = direct.filter(pl.col("timestamp").is_between(day, day + dt.timedelta(days=1), closed="left"))
    assert stored.height > 1000
    assert stored.equals(direct)
    meta = _meta(result, "l2_snapshots")
    assert meta["rows"] == stored.height and meta["sessions"] == 1


def test_session_continues_across_midnight(tmp_path):
    """A simulated stream 23:59 -> 00:01: day 2 continues day 1's session via the checkpoint,
    and the two partitions together equal one build over all the raw files."""
    from trade_pipeline.market.snapshots import build_snapshots

    home = tmp_path / "home"
    day2 = "2025-07-08"
    first = _run(home, DAY, {"source": "simulator", "start_offset_s": 86_400 - 60, "duration_s": 120})
    assert first.success
    assert _meta(first, "raw_l2_captures")["simulated_days"] == [DAY, day2]
    second = _run(home, day2, selection=[l2_snapshots])
    assert second.success
    meta2 = _meta(second, "l2_snapshots")
    assert meta2["continued_from_previous_day"] is True and meta2["sessions"] == 1
    settings = Settings.load(home=home)
    p1 = read_partition(settings.lake_dir, "l2_snapshots", PartitionKey("bybit", "BTCUSDT", DAY))
    p2 = read_partition(settings.lake_dir, "l2_snapshots", PartitionKey("bybit", "BTCUSDT", day2))
    assert p1["session_id"].n_unique() == 1
    assert p2["session_id"].unique().to_list() == p1["session_id"].unique().to_list()
    assert p1["timestamp"].max() < dt.datetime(2025, 7, 8, tzinfo=dt.UTC) <= p2["timestamp"].min()
    files = (raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", DAY)
             + raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", day2))
    whole = build_snapshots(files).frame
    assert pl.concat([p1, p2]).equals(whole)
    assert whole.height == 1200


def test_day_two_without_checkpoint_reports_the_skips(tmp_path):
    """Without day 1's checkpoint, day 2's deltas have no snapshot: no rows, every skip counted."""
    home = tmp_path / "home"
    assert _run(home, DAY, {"source": "simulator", "start_offset_s": 86_400 - 30, "duration_s": 60},
                selection=[raw_l2_captures]).success
    result = _run(home, "2025-07-08", selection=[l2_snapshots])
    meta = _meta(result, "l2_snapshots")
    assert meta["rows"] == 0 and meta["continued_from_previous_day"] is False
    assert meta["report"]["deltas_before_snapshot"] == meta["messages"] > 0


def test_collected_source_without_files_fails_clearly(tmp_path):
    result = _run(tmp_path / "home", DAY, {"source": "collected"}, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "no raw captures" in failure.event_specific_data.error.message


def test_collected_source_uses_what_the_collector_wrote(tmp_path, bybit_delta_files):
    home = tmp_path / "home"
    settings = Settings.load(home=home).ensure_dirs()
    capture = next(p for p in bybit_delta_files if "20250707_104036" in p.name)
    raw_store.import_capture(settings, capture, "bybit", "BTCUSDT")  # as if collected
    result = _run(home, DAY, {"source": "collected"})
    assert result.success and _meta(result, "l2_snapshots")["rows"] > 1000


def test_recorded_file_of_another_day_is_refused(tmp_path, bybit_delta_files):
    good = next(p for p in bybit_delta_files if "20250707_104036" in p.name)
    other_day = bybit_delta_files[0]  # 2025-07-06
    files = [str(good), str(other_day)]
    result = _run(tmp_path / "home", DAY, {"source": "recorded", "files": files},
                  raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "2025-07-06" in failure.event_specific_data.error.message
    assert not list((tmp_path / "home" / "raw").rglob("*.gz"))  # nothing half-imported


@pytest.mark.parametrize("bad", [{"duration_s": -1}, {"source": "ftp"}, {"start_offset_s": 90_000},
                                 {"seed": "x"}])
def test_bad_config_is_rejected(tmp_path, bad):
    # the schema (types, enum) is checked before the run; value bounds when the step starts
    with pytest.raises((dg.DagsterInvalidConfigError, pydantic.ValidationError)) as exc:
        _run(tmp_path / "home", DAY, bad)
    assert next(iter(bad)) in str(exc.value)
    assert not (tmp_path / "home" / "raw").exists() or not any((tmp_path / "home" / "raw").rglob("*.gz"))


def test_simulator_never_deletes_collected_captures(tmp_path, bybit_delta_files):
    home = tmp_path / "home"
    settings = Settings.load(home=home).ensure_dirs()
    capture = next(p for p in bybit_delta_files if "20250707_104036" in p.name)
    kept = raw_store.import_capture(settings, capture, "bybit", "BTCUSDT")
    result = _run(home, DAY, {"source": "simulator", "duration_s": 30}, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "not mixed" in failure.event_specific_data.error.message
    assert raw_store.raw_files_for_day(settings, "bybit", "BTCUSDT", DAY) == [kept]
    assert kept.read_bytes() == capture.read_bytes()


def _shift_capture(src, dest, midnight_after_s: float) -> int:
    """Copy a format-2 capture with every time moved so that UTC midnight 2025-07-08 falls
    `midnight_after_s` seconds (receive time) after its first line; update ids untouched.
    Returns the shift in ms."""
    import gzip

    import orjson

    with gzip.open(src, "rb") as f:
        objs = [orjson.loads(line) for line in f if line.strip()]
    midnight_ms = int(dt.datetime(2025, 7, 8, tzinfo=dt.UTC).timestamp() * 1000)
    shift = midnight_ms - int(midnight_after_s * 1000) - objs[0]["received_timestamp_ms"]
    with gzip.open(dest, "wb") as f:
        for obj in objs:
            obj["timestamp_ms"] += shift
            obj["received_timestamp_ms"] += shift
            f.write(orjson.dumps(obj) + b"\n")
    return shift


def test_recorded_capture_spanning_midnight_loses_no_row(tmp_path, bybit_delta_files):
    """A recorded capture running past midnight is split per day at import; day 2 continues
    day 1's session, and the two partitions together equal one build over the whole file -
    including the rows just before midnight whose messages were received just after it."""
    from trade_pipeline.market.snapshots import build_snapshots

    src = next(p for p in bybit_delta_files if "20250707_104036" in p.name)
    capture = tmp_path / "l2_data_BTC_USDT_USDT_20250707_235900.jsonl.gz"
    _shift_capture(src, capture, midnight_after_s=60.0)
    home = tmp_path / "home"
    day2 = "2025-07-08"
    first = _run(home, DAY, {"source": "recorded", "files": [str(capture)]})
    assert first.success
    imported = _meta(first, "raw_l2_captures")["imported"]
    assert [p.rsplit("/", 2)[-2:] for p in imported] == [
        ["date=2025-07-07", "l2_data_BTC_USDT_USDT_20250707_235900.part01.jsonl.gz"],
        ["date=2025-07-08", "l2_data_BTC_USDT_USDT_20250707_235900.part02.jsonl.gz"],
    ]
    second = _run(home, day2, selection=[l2_snapshots])
    assert second.success
    meta1, meta2 = _meta(first, "l2_snapshots"), _meta(second, "l2_snapshots")
    assert meta2["continued_from_previous_day"] is True and meta2["sessions"] == 1
    settings = Settings.load(home=home)
    p1 = read_partition(settings.lake_dir, "l2_snapshots", PartitionKey("bybit", "BTCUSDT", DAY))
    p2 = read_partition(settings.lake_dir, "l2_snapshots", PartitionKey("bybit", "BTCUSDT", day2))
    whole = build_snapshots([capture]).frame
    assert whole["session_id"].n_unique() == 1 and whole.height > 1000
    assert p1.height > 500 and p2.height > 500
    assert pl.concat([p1, p2]).equals(whole)
    assert meta1["rows"] + meta2["rows"] == whole.height
    # messages received after midnight with times before it settle day 1's last rows: day 1
    # writes them (read ahead), day 2 derives the same rows and names them as day 1's
    assert meta1["rows_from_next_day_files"] > 0 and meta1["next_day_lines_read"] > 0
    assert meta2["rows_of_previous_day"] == meta1["rows_from_next_day_files"]
    assert meta1["rows_of_next_day"] + meta2["rows_of_next_day"] == 0
    assert p1["timestamp"].max() < dt.datetime(2025, 7, 8, tzinfo=dt.UTC) <= p2["timestamp"].min()
    # every message was read once by one of the two days (none hidden, none twice)
    assert meta1["messages"] + meta2["messages"] == build_snapshots([capture]).report.to_dict()["messages"]
    # the raw parts hold the original lines verbatim, in order
    import gzip
    from pathlib import Path

    parts = b"".join(gzip.decompress(Path(p).read_bytes()) for p in imported)
    assert parts == gzip.decompress(capture.read_bytes())
