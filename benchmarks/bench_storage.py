"""Storage per snapshot, by layer: raw capture share, snapshot row, feature row (target: <= 600
bytes all together; the old plan budgeted ~3 KB).

Input: the recorded Bybit format-2 captures in ../shared/data/bybit (the format the raw store
keeps as received). Each layer goes through the real write path into a temporary home:
- raw, hot: the capture files as stored in the raw store (gzip as recorded);
- raw, archived: `lake.retention.write_archive` (what the store keeps after retention);
- snapshot rows: `market.snapshots.build_snapshots` -> `layout.write_partition` with the
  ingestion's Parquet options, one partition per UTC day;
- feature rows: `features.batch.compute_features` -> `write_partition` with the features'
  Parquet options.
- raw, collector layout: the same messages as `<receive_ns> <json>` lines through the raw
  store's writer (`RawStoreWriter`), one gzip member per second as a live capture flushes,
  then archived (no real live capture is in ../shared/data).
Bytes per snapshot = layer bytes on disk / snapshot rows. The target total uses the larger
archived raw share of the two layouts (hot copies live `older_than_days` only); the total
with the hot share is reported too. Usage: `trade-pipeline bench storage --json [--files N]` or `python benchmarks/bench_storage.py`.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TARGET_BYTES = 600


def _inputs(limit: int | None) -> list[Path]:
    files = sorted(p for p in (SHARED / "bybit").glob("*.jsonl.gz") if "175705" not in p.name)
    if not files:
        raise SystemExit(f"bench storage: no format-2 captures in {SHARED / 'bybit'}")
    return files[:limit] if limit else files


def _collector_style(files: list[Path], tmp: Path) -> tuple[int, int]:
    """The same messages as a live collector stores them: `<receive_ns> <json>` lines through
    the raw store's writer, one gzip member per second of receive time; then archived.
    Returns (hot bytes, archived bytes)."""
    import orjson

    from trade_pipeline.lake import retention
    from trade_pipeline.market.readers import iter_line_blocks
    from trade_pipeline.storage.raw_store import RawStoreWriter

    raw_dir = tmp / "collector-raw"
    writer = RawStoreWriter(raw_dir, "bybit", "BTCUSDT", flush_interval=1e9)
    second = None
    for path in files:
        for block in iter_line_blocks(path):
            for line in block:
                recv_ms = orjson.loads(line)["received_timestamp_ms"]
                if second is not None and recv_ms // 1000 != second:
                    writer.flush()  # the collector flushes at least once a second
                second = recv_ms // 1000
                writer.append(recv_ms * 1_000_000, line)
    writer.close()
    hot = archived = 0
    for p in writer.paths:
        hot += p.stat().st_size
        dest = tmp / "collector-archive" / f"{p.name}.parquet"
        retention.write_archive(p, dest)
        archived += dest.stat().st_size
    return hot, archived


def run(settings, argv: list[str]) -> dict:
    import polars as pl

    from trade_pipeline.features.batch import PARQUET_OPTIONS as FEATURE_OPTIONS
    from trade_pipeline.features.batch import compute_features
    from trade_pipeline.lake import retention
    from trade_pipeline.market.snapshots import PARQUET_OPTIONS as SNAPSHOT_OPTIONS
    from trade_pipeline.market.snapshots import build_snapshots
    from trade_pipeline.storage import layout

    parser = argparse.ArgumentParser(prog="bench storage")
    parser.add_argument("--files", type=int, default=None, help="use only the first N captures")
    # `trade-pipeline bench storage --json` passes its own --json through to us.
    args = parser.parse_args([a for a in argv if a not in ("--", "--json")])
    files = _inputs(args.files)

    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        lake = str(Path(tmp) / "lake")
        t0 = time.perf_counter()
        result = build_snapshots(files)
        frame = result.frame
        t_snap = time.perf_counter() - t0
        rows = frame.height
        if rows == 0:
            raise SystemExit("bench storage: the captures produced no snapshot rows")

        t0 = time.perf_counter()
        features = compute_features(frame)
        t_feat = time.perf_counter() - t0

        day = pl.col("timestamp").dt.date().cast(pl.String)
        for (exchange, symbol, date), part in frame.group_by(
                "exchange", "symbol", day.alias("d"), maintain_order=True):
            key = layout.PartitionKey(exchange, symbol, date)
            layout.write_partition(part, lake, "l2_snapshots", key, **SNAPSHOT_OPTIONS)
        for (exchange, symbol, date), part in features.group_by(
                "exchange", "symbol", day.alias("d"), maintain_order=True):
            key = layout.PartitionKey(exchange, symbol, date)
            layout.write_partition(part, lake, "l2_features", key, **FEATURE_OPTIONS)
        snap_bytes = layout.bytes_on_disk(lake, "l2_snapshots")
        feat_bytes = layout.bytes_on_disk(lake, "l2_features")

        hot_bytes = sum(p.stat().st_size for p in files)
        archive_bytes = 0
        t0 = time.perf_counter()
        for p in files:
            dest = Path(tmp) / "archive" / f"{p.name}.parquet"
            retention.write_archive(p, dest)
            archive_bytes += dest.stat().st_size
        t_arch = time.perf_counter() - t0

        collector_hot, collector_archived = _collector_style(files, Path(tmp))

    per = {
        "raw_hot": hot_bytes / rows,
        "raw_archived": archive_bytes / rows,
        "raw_hot_collector": collector_hot / rows,
        "raw_archived_collector": collector_archived / rows,
        "snapshot_row": snap_bytes / rows,
        "feature_row": feat_bytes / rows,
    }
    # Conservative: the larger archived raw share of the two layouts.
    raw_share = max(per["raw_archived"], per["raw_archived_collector"])
    total = raw_share + per["snapshot_row"] + per["feature_row"]
    total_hot = max(per["raw_hot"], per["raw_hot_collector"]) + per["snapshot_row"] + per["feature_row"]
    return {
        "input_files": len(files),
        "input_messages": result.report.messages,
        "snapshot_rows": rows,
        "feature_columns": features.width,
        "bytes_per_snapshot_raw_hot": round(per["raw_hot"], 1),
        "bytes_per_snapshot_raw_archived": round(per["raw_archived"], 1),
        "bytes_per_snapshot_raw_hot_collector_layout": round(per["raw_hot_collector"], 1),
        "bytes_per_snapshot_raw_archived_collector_layout": round(per["raw_archived_collector"], 1),
        "bytes_per_snapshot_snapshot_row": round(per["snapshot_row"], 1),
        "bytes_per_snapshot_feature_row": round(per["feature_row"], 1),
        "bytes_per_snapshot_total": round(total, 1),
        "bytes_per_snapshot_total_with_hot_raw": round(total_hot, 1),
        "target_bytes_per_snapshot": TARGET_BYTES,
        "meets_target": total <= TARGET_BYTES,
        "raw_archive_ratio_vs_hot": round(archive_bytes / hot_bytes, 3),
        "raw_archive_ratio_vs_hot_collector_layout": round(collector_archived / collector_hot, 3),
        "gb_per_month_at_10_per_s": round(total * 10 * 86_400 * 30 / 1e9, 2),
        "seconds_build_snapshots": round(t_snap, 2),
        "seconds_compute_features": round(t_feat, 2),
        "seconds_archive_raw": round(t_arch, 2),
    }


if __name__ == "__main__":
    from trade_pipeline.settings import Settings

    print(json.dumps(run(Settings.load(), sys.argv[1:]), indent=2))
