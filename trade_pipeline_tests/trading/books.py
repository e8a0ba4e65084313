"""Hand-made snapshot rows for worked-by-hand trading tests."""

import polars as pl

from trade_pipeline.market.schema import SNAPSHOT_COLUMNS, SNAPSHOT_SCHEMA

T0_US = 1_751_865_300_000_000  # 2025-07-07 05:15:00 UTC, on the 100 ms grid


def level_book(bid: float, ask: float, size: float = 10.0, tick: float = 1.0) -> tuple[list, list]:
    bids = [(bid - i * tick, size) for i in range(10)]
    asks = [(ask + i * tick, size) for i in range(10)]
    return bids, asks


def frame(books: list[tuple[list, list]], step_us: int = 100_000, t0_us: int = T0_US) -> pl.DataFrame:
    """One grid row per (bids, asks); each side a list of (price, size), best first."""
    rows = []
    for k, (bids, asks) in enumerate(books):
        row = {"timestamp": t0_us + k * step_us, "exchange": "bybit", "symbol": "BTCUSDT",
               "update_id": k + 1, "received_timestamp": t0_us + k * step_us, "session_id": 1}
        for i in range(10):
            bp, bq = bids[i] if i < len(bids) else (None, 0.0)
            ap, aq = asks[i] if i < len(asks) else (None, 0.0)
            row[f"bid_price_{i + 1}"], row[f"bid_size_{i + 1}"] = bp, bq
            row[f"ask_price_{i + 1}"], row[f"ask_size_{i + 1}"] = ap, aq
        rows.append(row)
    schema = dict(SNAPSHOT_SCHEMA)
    out = pl.DataFrame(rows, schema={**schema, "timestamp": pl.Int64, "received_timestamp": pl.Int64})
    return out.with_columns(
        pl.col("timestamp", "received_timestamp").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    ).select(SNAPSHOT_COLUMNS)


def signals(snap: pl.DataFrame, values: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"timestamp": snap.get_column("timestamp"), "signal": values})
