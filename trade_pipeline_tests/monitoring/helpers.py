"""Small hand-made canonical snapshot frames for the monitoring tests."""

import datetime as dt

import numpy as np
import polars as pl

from trade_pipeline.market.schema import SNAPSHOT_SCHEMA


def snapshot_frame(
    start: dt.datetime,
    offsets_ms: list[int],
    sessions: list[int] | None = None,
    mids: list[float] | None = None,
    exchange: str = "bybit",
    symbol: str = "BTCUSDT",
) -> pl.DataFrame:
    """Canonical rows at `start + offset`; book levels around `mid` with a 0.1 spread."""
    n = len(offsets_ms)
    sessions = sessions or [1] * n
    mids = mids or [100_000.0 + 0.1 * i for i in range(n)]
    rows: dict[str, list] = {
        "timestamp": [start + dt.timedelta(milliseconds=o) for o in offsets_ms],
        "exchange": [exchange] * n,
        "symbol": [symbol] * n,
    }
    for i in range(1, 11):
        rows[f"bid_price_{i}"] = [m - 0.05 - 0.1 * (i - 1) for m in mids]
        rows[f"bid_size_{i}"] = [1.0 + i] * n
        rows[f"ask_price_{i}"] = [m + 0.05 + 0.1 * (i - 1) for m in mids]
        rows[f"ask_size_{i}"] = [2.0 + i] * n
    rows["update_id"] = list(range(1, n + 1))
    rows["received_timestamp"] = rows["timestamp"]
    rows["session_id"] = sessions
    return pl.DataFrame(rows).select(
        [pl.col(c).cast(t) for c, t in SNAPSHOT_SCHEMA.items()]
    )


def random_walk_mids(n: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(100_000.0 + np.cumsum(rng.normal(0, 1.0, n)).round(1))
