"""feature_stats speed: statistics of every feature for one day of 100 ms rows.

Input: the real Bybit format-2 captures in ../shared/data/bybit -> snapshots -> the 118
features (the pipeline's own code), tiled to `--rows` (default 864,000 = one day at 100 ms)
so the timing covers a full day's partition. Reports the best of `--repeat` runs of
`monitoring.feature_stats.feature_stats` (one polars pass for counts, one for moments and
quantiles). Usage: `trade-pipeline bench monitoring --json` or
`python benchmarks/bench_monitoring.py`. Measures and prints; never asserts.
"""

import argparse
import json
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def run(settings=None, argv: list[str] | None = None) -> dict:
    import polars as pl

    from trade_pipeline.features.batch import compute_features
    from trade_pipeline.features.catalog import FEATURE_NAMES
    from trade_pipeline.market.snapshots import build_snapshots
    from trade_pipeline.monitoring.feature_stats import feature_stats

    parser = argparse.ArgumentParser(prog="bench monitoring")
    parser.add_argument("--rows", type=int, default=864_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv or [])
    files = sorted(p for p in (SHARED / "bybit").glob("*.jsonl.gz") if "175705" not in p.name)
    if not files:
        raise SystemExit(f"no Bybit captures in {SHARED / 'bybit'}")
    features = compute_features(build_snapshots(files[:6]).frame)
    reps = -(-args.rows // features.height)
    day = pl.concat([features] * reps).head(args.rows)
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        stats = feature_stats(day, list(FEATURE_NAMES))
        best = min(best, time.perf_counter() - start)
    return {
        "rows": day.height,
        "features": stats.height,
        "real_rows_tiled": features.height,
        "feature_stats_seconds": round(best, 3),
        "feature_stats_rows_per_s": round(day.height / best),
        "note": "best of --repeat; shared 2-core machine, figures are noisy",
    }


if __name__ == "__main__":
    print(json.dumps(run(None, sys.argv[1:]), indent=2))
