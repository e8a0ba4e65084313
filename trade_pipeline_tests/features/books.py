"""Hand-made snapshot frames for the feature tests."""

import numpy as np
import polars as pl

from trade_pipeline.market.schema import SNAPSHOT_SCHEMA

T0_US = 1_720_000_000_000_000  # an arbitrary epoch-aligned start


def frame(rows: list[dict], exchange: str = "bybit", symbol: str = "BTCUSDT") -> pl.DataFrame:
    """rows: {"t": seconds after T0, "s": session id, "bids": [(p, q), ...], "asks": [...]}.

    Levels not given are missing (null price, size 0), as in l2_snapshots."""
    data: dict[str, list] = {c: [] for c in SNAPSHOT_SCHEMA}
    for i, row in enumerate(rows):
        ts = T0_US + round(row["t"] * 1e6)
        data["timestamp"].append(ts)
        data["exchange"].append(exchange)
        data["symbol"].append(symbol)
        for side, key in (("bid", "bids"), ("ask", "asks")):
            levels = row[key]
            for lvl in range(1, 11):
                p, q = levels[lvl - 1] if lvl <= len(levels) else (None, 0.0)
                data[f"{side}_price_{lvl}"].append(p)
                data[f"{side}_size_{lvl}"].append(float(q))
        data["update_id"].append(i)
        data["received_timestamp"].append(ts)
        data["session_id"].append(row.get("s", 0))
    return pl.DataFrame(data, schema={
        **SNAPSHOT_SCHEMA, "timestamp": pl.Int64, "received_timestamp": pl.Int64,
    }).with_columns(pl.col("timestamp", "received_timestamp").cast(SNAPSHOT_SCHEMA["timestamp"]))


def l1(t: float, bp: float, bq: float, ap: float, aq: float, s: int = 0) -> dict:
    """A one-level row."""
    return {"t": t, "s": s, "bids": [(bp, bq)], "asks": [(ap, aq)]}


def random_frame(rng: np.random.Generator, n: int, n_sessions: int = 1, step_ms: int = 100,
                 gap_prob: float = 0.0, depth_missing_prob: float = 0.0,
                 tick: float = 0.5) -> pl.DataFrame:
    """A random-walk book on a grid, with optional missing rows and missing deep levels."""
    rows = []
    mid = 50_000.0
    t = 0.0
    bounds = set(rng.choice(np.arange(1, n), size=min(n_sessions - 1, n - 1), replace=False)
                 ) if n_sessions > 1 else set()
    s = 0
    for i in range(n):
        if i in bounds:
            s += 1
        t += step_ms / 1000 * (1 + (rng.integers(1, 20) if rng.random() < gap_prob else 0))
        mid += tick * int(rng.integers(-1, 2)) * (rng.random() < 0.3)
        spread_ticks = int(rng.integers(1, 4))
        bp1 = mid - tick * (spread_ticks // 2 + 0.5 * (spread_ticks % 2)) if False else mid
        bp1 = round(mid / tick) * tick
        ap1 = bp1 + tick * spread_ticks
        depth = 10 if rng.random() >= depth_missing_prob else int(rng.integers(1, 10))
        bids = [(bp1 - tick * k, float(rng.integers(1, 50)) / 10) for k in range(depth)]
        depth = 10 if rng.random() >= depth_missing_prob else int(rng.integers(1, 10))
        asks = [(ap1 + tick * k, float(rng.integers(1, 50)) / 10) for k in range(depth)]
        rows.append({"t": round(t, 3), "s": s, "bids": bids, "asks": asks})
    return frame(rows)
