"""The canonical `l2_snapshots` table (docs/DATA_FORMATS.md): column names, order and types."""

import polars as pl

DEPTH = 10
LEVELS = range(1, DEPTH + 1)

BID_PRICE = [f"bid_price_{i}" for i in LEVELS]
BID_SIZE = [f"bid_size_{i}" for i in LEVELS]
ASK_PRICE = [f"ask_price_{i}" for i in LEVELS]
ASK_SIZE = [f"ask_size_{i}" for i in LEVELS]

# Book columns in the order of the features' raw-book group (bid p/q pairs, then ask p/q pairs).
BOOK_COLUMNS: list[str] = [c for i in LEVELS for c in (f"bid_price_{i}", f"bid_size_{i}")] + [
    c for i in LEVELS for c in (f"ask_price_{i}", f"ask_size_{i}")
]

SNAPSHOT_SCHEMA: dict[str, pl.DataType] = {
    "timestamp": pl.Datetime("us", "UTC"),
    "exchange": pl.String(),
    "symbol": pl.String(),
    **{c: pl.Float64() for c in BOOK_COLUMNS},
    "update_id": pl.Int64(),
    "received_timestamp": pl.Datetime("us", "UTC"),
    "session_id": pl.Int64(),
}
SNAPSHOT_COLUMNS: list[str] = list(SNAPSHOT_SCHEMA)

# The canonical `l2_trades` table: one row per public trade, in order of receipt.
# `side` is the taker's side ("buy" lifts asks, "sell" hits bids); `timestamp` is the
# exchange's trade time (Bybit `T`, Binance `T`); `sequence_id` is Bybit's cross sequence
# (shared with the book topic) where the source has one.
TRADE_SCHEMA: dict[str, pl.DataType] = {
    "timestamp": pl.Datetime("us", "UTC"),
    "exchange": pl.String(),
    "symbol": pl.String(),
    "trade_id": pl.String(),
    "side": pl.String(),
    "price": pl.Float64(),
    "size": pl.Float64(),
    "received_timestamp": pl.Datetime("us", "UTC"),
    "sequence_id": pl.Int64(),
}
TRADE_COLUMNS: list[str] = list(TRADE_SCHEMA)
TRADE_SIDES = ("buy", "sell")
