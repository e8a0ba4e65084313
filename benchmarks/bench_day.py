"""Day-scale ingest: a simulated full day through the assets, against gunzip + orjson.

1. `raw_l2_captures` (simulator, `--duration` seconds of the day, default 86,400: ~4.2 million
   pushes) fills a home's raw store; not timed (skipped with `--reuse` when the day's raw
   files exist).
2. `l2_snapshots` then `l2_features` for that day (`dg.materialize`, ephemeral instance): wall
   and CPU seconds of each call, and the per-stage seconds both assets publish in their
   metadata (read, parse, book, sample, write; read, features, write).
3. The reference, measured in the same run on the same raw files: stdlib gzip + `orjson.loads`
   of every line (what a user's own script would do), best of `--repeat`.

Figures: seconds per stage (wall and CPU), msg/s, the reference, and the ratio
(snapshots + features) / reference (target <= 1.5), bytes per row of both tables, peak RSS,
load average. `--parquet` also measures candidate Parquet settings on the day's tables (how
the settings in market/snapshots.py and features/batch.py were chosen).
Usage: trade-pipeline bench day --json [--home DIR --reuse] [--duration S] [--parquet]
Measures only; never asserts.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

DAY = "2025-07-07"
TARGET_RATIO = 1.5


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> dict:
    wall, cpu = _clock()
    return {"wall": round(wall - start[0], 3), "cpu": round(cpu - start[1], 3)}


def reference(files: list[Path], repeat: int) -> dict:
    """gunzip + orjson.loads of every line (the JSON after the receive-time prefix)."""
    import gzip

    import orjson

    best = None
    lines = 0
    for _ in range(max(repeat, 1)):
        start = _clock()
        lines = 0
        loads = orjson.loads
        for path in files:
            with gzip.open(path, "rb") as src:
                for line in src:
                    loads(line.partition(b" ")[2])
                    lines += 1
        took = _since(start)
        if best is None or took["wall"] < best["wall"]:
            best = took
    return {**best, "lines": lines}


def _gunzip_only(files: list[Path]) -> dict:
    import zlib

    start = _clock()
    for path in files:
        d = zlib.decompressobj(31)
        with open(path, "rb") as src:
            while chunk := src.read(1 << 20):
                while chunk:
                    d.decompress(chunk)
                    chunk = d.unused_data
                    if chunk:
                        d = zlib.decompressobj(31)
    return _since(start)


def _materialize(assets, home: str, selection, run_config=None):
    import dagster as dg

    from trade_pipeline.defs.resources import build_resources

    start = _clock()
    result = dg.materialize(assets, partition_key=DAY, resources=build_resources(home),
                            instance=dg.DagsterInstance.ephemeral(), selection=selection,
                            run_config=run_config)
    took = _since(start)
    meta = {}
    for event in result.get_asset_materialization_events():
        meta[event.asset_key.to_user_string()] = {
            k: v.value for k, v in event.materialization.metadata.items()}
    return took, meta


def _parquet_matrix(home: str) -> dict:
    """Write the day's tables with candidate settings: seconds (wall, CPU) and bytes per row."""
    import pyarrow.parquet as pq

    from trade_pipeline.features.batch import PARQUET_OPTIONS as FEATURES
    from trade_pipeline.market.snapshots import PARQUET_OPTIONS as SNAPSHOTS
    from trade_pipeline.settings import Settings
    from trade_pipeline.storage.layout import PartitionKey, read_partition

    settings = Settings.load(home=home)
    key = PartitionKey(settings.exchange, settings.symbol, DAY)
    candidates = {
        "l2_snapshots": (SNAPSHOTS, [("zstd", 1), ("zstd", 3), ("zstd", 6), ("zstd", 9)]),
        "l2_features": (FEATURES, [("zstd", -1), ("zstd", 1), ("zstd", 3), ("zstd", 9),
                                   ("lz4", None), ("snappy", None)]),
    }
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "t.parquet"
        for table, (base, options) in candidates.items():
            frame = read_partition(settings.lake_dir, table, key)
            arrow = frame.to_arrow()
            rows = {}
            for codec, level in options:
                opts = {**base, "compression": codec, "compression_level": level}
                start = _clock()
                pq.write_table(arrow, target, **opts)
                took = _since(start)
                chosen = codec == base["compression"] and level == base["compression_level"]
                rows[f"{codec}{'' if level is None else level}"] = {
                    **took, "bytes_per_row": round(target.stat().st_size / frame.height, 1),
                    "chosen": chosen}
            out[table] = rows
    return out


def run(settings=None, argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="bench day")
    parser.add_argument("--home", default=None,
                        help="pipeline home to use (default: a temporary one, removed after)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the day's raw files if the home has them (no simulation)")
    parser.add_argument("--duration", type=float, default=86_400.0,
                        help="simulated seconds of the day (default 86400: a full day)")
    parser.add_argument("--seed", type=int, default=20250707)
    parser.add_argument("--repeat", type=int, default=2, help="reference runs (best of)")
    parser.add_argument("--parquet", action="store_true", help="also measure Parquet settings")
    args, _ = parser.parse_known_args(argv or [])

    from trade_pipeline.defs.features import l2_features
    from trade_pipeline.defs.ingest import l2_snapshots, raw_l2_captures
    from trade_pipeline.settings import Settings
    from trade_pipeline.storage import raw_store

    tmp = None
    home = args.home
    if home is None:
        tmp = tempfile.mkdtemp(prefix="bench-day-")
        home = tmp
    try:
        day_settings = Settings.load(home=home)
        files = raw_store.raw_files_for_day(day_settings, day_settings.exchange,
                                            day_settings.symbol, DAY)
        simulated = None
        if not (args.reuse and files):
            config = {"source": "simulator", "duration_s": args.duration, "seed": args.seed}
            simulated, _ = _materialize([raw_l2_captures], home, None,
                                        {"ops": {"raw_l2_captures": {"config": config}}})
            files = raw_store.raw_files_for_day(day_settings, day_settings.exchange,
                                                day_settings.symbol, DAY)
        assets = [raw_l2_captures, l2_snapshots, l2_features]
        # compile / load the numba caches outside the timing (a first run on a machine
        # compiles them once; the cache lives beside the package)
        from trade_pipeline.features.batch import compute_features
        from trade_pipeline.market.snapshots import build_snapshots

        compute_features(build_snapshots(files[:1]).frame.head(2000))

        snap_took, snap_meta = _materialize(assets, home, [l2_snapshots])
        feat_took, feat_meta = _materialize(assets, home, [l2_features])
        ref = reference(files, args.repeat)
        gunzip = _gunzip_only(files)
        snap = snap_meta["l2_snapshots"]
        feat = feat_meta["l2_features"]
        messages = snap["messages"]
        pipeline = {"wall": round(snap_took["wall"] + feat_took["wall"], 3),
                    "cpu": round(snap_took["cpu"] + feat_took["cpu"], 3)}
        out = {
            "day": DAY,
            "messages": messages,
            "rows": snap["rows"],
            "raw_bytes": sum(p.stat().st_size for p in files),
            "l2_snapshots": {**snap_took, "stages": snap["stage_seconds"],
                             "msgs_per_s": round(messages / snap_took["wall"]),
                             "bytes_per_row": snap["bytes_per_row"]},
            "l2_features": {**feat_took, "stages": feat["stage_seconds"],
                            "rows_per_s": round(feat["rows"] / feat_took["wall"]),
                            "bytes_per_row": feat["bytes_per_row"]},
            "pipeline": {**pipeline, "msgs_per_s": round(messages / pipeline["wall"])},
            "reference_gunzip_orjson": ref,
            "reference_gunzip_only": gunzip,
            "ratio_wall": round(pipeline["wall"] / ref["wall"], 3),
            "ratio_cpu": round(pipeline["cpu"] / ref["cpu"], 3),
            "target_ratio": TARGET_RATIO,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
            "note": "wall/cpu of dg.materialize per asset (Dagster overhead included); "
                    "stage seconds from the assets' metadata; cpu = process CPU time",
        }
        if simulated is not None:
            out["simulate"] = simulated
        if args.parquet:
            out["parquet"] = _parquet_matrix(home)
        return out
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(None, sys.argv[1:]), indent=2))
