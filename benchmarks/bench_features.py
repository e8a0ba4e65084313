"""Feature engine figures on the real captures (../shared/data): batch rows/s on one core,
online latency per row, bytes per row on disk, batch peak memory vs the output's size.

Batch and memory run in fresh subprocesses with POLARS_MAX_THREADS=1 / NUMBA_NUM_THREADS=1
(thread pools are fixed at first use, so the parent cannot switch them). The real snapshots
(~64k rows) are tiled to >= 1M rows for the batch timing (timestamps shifted, a new session
per copy). Measures and prints; never asserts. Figures are noisy on a shared machine.

Usage: trade-pipeline bench features --json [-- --rows 1000000 --repeat 3]
       python benchmarks/bench_features.py [--rows N]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "trade_pipeline_bench_features"


def _real_snapshots():
    """All real captures as l2_snapshots frames (cached as Parquet between runs)."""
    import polars as pl

    CACHE.mkdir(parents=True, exist_ok=True)
    groups = {
        "bybit_format2": sorted(p for p in (SHARED / "bybit").glob("*.jsonl.gz")
                                if "175705" not in p.name),
        "bybit_format3": sorted((SHARED / "bybit").glob("*175705.jsonl.gz")),
        "binance": sorted((SHARED / "binance").glob("*.gz")),
    }
    frames = {}
    for name, files in groups.items():
        cached = CACHE / f"{name}.parquet"
        if not cached.exists():
            from trade_pipeline.market.snapshots import build_snapshots

            build_snapshots(files).frame.write_parquet(cached)
        frames[name] = pl.read_parquet(cached)
    return frames


def _tiled(rows: int):
    """The real Bybit snapshots repeated to >= rows (one stream; new session per copy)."""
    import polars as pl

    frames = _real_snapshots()
    base = pl.concat([frames["bybit_format2"], frames["bybit_format3"]]).sort("timestamp")
    span = base["timestamp"].max() - base["timestamp"].min()
    copies = []
    i = 0
    while sum(c.height for c in copies) < rows:
        copies.append(base.with_columns(
            pl.col("timestamp") + (span + pl.duration(seconds=1)) * i,
            pl.col("session_id") + 1_000_000 * i,
        ))
        i += 1
    return pl.concat(copies).head(rows)


def _worker_batch(rows: int, repeat: int) -> dict:
    import psutil

    from trade_pipeline.features.batch import compute_features

    snaps = _tiled(rows)
    compute_features(snaps.head(5000))  # load the compiled kernel
    proc = psutil.Process()
    times, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = compute_features(snaps)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        del out
    return {"rows": snaps.height, "best_wall_s": min(times), "best_cpu_s": min(cpu),
            "rows_per_s_wall": snaps.height / min(times), "rows_per_s_cpu": snaps.height / min(cpu),
            "rss_mb": proc.memory_info().rss / 2**20}


def _worker_memory(rows: int) -> dict:
    """Peak RSS of one compute_features call (fresh process) vs the output's size."""
    import resource

    import psutil

    from trade_pipeline.features.batch import compute_features

    snaps = _tiled(rows)
    compute_features(snaps.head(5000))
    proc = psutil.Process()
    before = proc.memory_info().rss
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = compute_features(snaps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out_size = out.estimated_size()
    in_size = snaps.estimated_size()
    increase = peak - max(before, peak_before) if peak > peak_before else 0
    return {
        "rows": snaps.height,
        "output_mb": out_size / 2**20,
        "input_mb": in_size / 2**20,
        "rss_before_mb": before / 2**20,
        "peak_rss_mb": peak / 2**20,
        "peak_increase_mb": (peak - before) / 2**20,
        "peak_increase_over_output": (peak - before) / out_size,
        "peak_over_output_incl_input": (peak - before + in_size) / out_size,
        "_unused": increase,
    }


def _subprocess(kind: str, rows: int, repeat: int) -> dict:
    env = {**os.environ, "POLARS_MAX_THREADS": "1", "NUMBA_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", kind, "--rows", str(rows), "--repeat",
           str(repeat)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return {"error": res.stderr[-2000:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _online() -> dict:
    import numpy as np

    from trade_pipeline.features.online import OnlineFeatures
    from trade_pipeline.market.schema import BOOK_COLUMNS

    lat = []
    rows = 0
    for snaps in _real_snapshots().values():
        ts = snaps["timestamp"].dt.epoch("us").to_numpy()
        sess = snaps["session_id"].to_numpy()
        book = snaps.select(BOOK_COLUMNS).to_numpy()
        engine = OnlineFeatures()
        engine.update_book(int(ts[0]), int(sess[0]), book[0])  # compile / load
        engine = OnlineFeatures()
        clock = time.perf_counter_ns
        for i in range(len(ts)):
            t = clock()
            engine.update_book(int(ts[i]), int(sess[i]), book[i])
            lat.append(clock() - t)
        rows += len(ts)
    us = np.array(lat) / 1000
    # the dict path (what a caller with a polars row dict pays)
    snaps = _real_snapshots()["bybit_format3"].head(5000)
    engine = OnlineFeatures()
    dicts = snaps.to_dicts()
    t = time.perf_counter()
    for d in dicts:
        engine.update(d)
    dict_us = (time.perf_counter() - t) / len(dicts) * 1e6
    return {"rows": rows, "p50_us": float(np.percentile(us, 50)),
            "p99_us": float(np.percentile(us, 99)), "max_us": float(us.max()),
            "mean_update_dict_us": dict_us}


def _storage() -> dict:
    import tempfile

    from trade_pipeline.features.batch import PARQUET_OPTIONS, compute_features
    from trade_pipeline.storage.layout import PartitionKey, bytes_on_disk, write_partition

    out = {}
    total_rows = total_bytes = 0
    for name, snaps in _real_snapshots().items():
        feats = compute_features(snaps)
        with tempfile.TemporaryDirectory() as root:
            key = PartitionKey(feats["exchange"][0], feats["symbol"][0], "2025-07-07")
            write_partition(feats, root, "l2_features", key, **PARQUET_OPTIONS)
            size = bytes_on_disk(root, "l2_features")
            # the default writer options, for comparison
            write_partition(feats, root, "plain", key)
            plain = bytes_on_disk(root, "plain")
        out[f"{name}_bytes_per_row"] = size / feats.height
        out[f"{name}_default_options_bytes_per_row"] = plain / feats.height
        total_rows += feats.height
        total_bytes += size
    out["all_bytes_per_row"] = total_bytes / total_rows
    return out


def run(settings=None, argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="bench features")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args, _ = ap.parse_known_args([a for a in (argv or []) if a != "--"])
    if not SHARED.exists():
        return {"error": f"real data not found at {SHARED}"}
    _real_snapshots()  # build the cache once, before the subprocesses
    batch = _subprocess("batch", args.rows, args.repeat)
    memory = _subprocess("memory", args.rows, 1)
    memory.pop("_unused", None)
    online = _online()
    storage = _storage()
    figures = {
        "batch_rows": batch.get("rows"),
        "batch_rows_per_s_one_core_wall": batch.get("rows_per_s_wall"),
        "batch_rows_per_s_one_core_cpu": batch.get("rows_per_s_cpu"),
        "batch_target_rows_per_s": 1_000_000,
        "online_p50_us": online["p50_us"],
        "online_p99_us": online["p99_us"],
        "online_max_us": online["max_us"],
        "online_update_dict_mean_us": online["mean_update_dict_us"],
        "online_target_p99_us": 30,
        **{f"storage_{k}": v for k, v in storage.items()},
        "storage_target_bytes_per_row": 500,
        **{f"memory_{k}": v for k, v in memory.items()},
        "memory_target_peak_over_output": 2.0,
        "cpu_count": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }
    if "error" in batch:
        figures["batch_error"] = batch["error"]
    return figures


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    if "--worker" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--worker", choices=("batch", "memory"))
        ap.add_argument("--rows", type=int, default=1_000_000)
        ap.add_argument("--repeat", type=int, default=3)
        a = ap.parse_args()
        result = _worker_batch(a.rows, a.repeat) if a.worker == "batch" else _worker_memory(a.rows)
        print(json.dumps(result))
    else:
        print(json.dumps(run(None, sys.argv[1:]), indent=2, default=str))
