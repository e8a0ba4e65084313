"""Batch engine: `l2_snapshots` rows -> `l2_features` rows (polars in, polars out).

The maths is `kernels.process_rows`, the same code the online engine runs. Polars does the
I/O-side work (validation, ordering, zero-copy assembly); the kernel runs over each
(exchange, symbol) stream with one state, on numpy views of the input's memory chunks (no
copy of the book columns) and writes one (78, n) array whose rows become the output
columns without a copy. Why a kernel and not polars' rolling-by expressions: the per-row
state (quote lifetimes, consecutive-row OFI, windows that restart at each session) and the
need for ONE implementation shared with the online engine.
"""

import itertools

import numpy as np
import polars as pl
import pyarrow as pa

from trade_pipeline.features import kernels
from trade_pipeline.features.catalog import FEATURE_NAMES, KEY_COLUMNS, N_RAW, resolve_params
from trade_pipeline.market.schema import BOOK_COLUMNS, SNAPSHOT_SCHEMA

DERIVED_NAMES = FEATURE_NAMES[N_RAW:]
SIZE_COLUMNS = [c for c in BOOK_COLUMNS if "_size_" in c]
_TS = SNAPSHOT_SCHEMA["timestamp"]

# Parquet writer options for l2_features (passed to write_partition). Measured on the real
# captures (benchmarks/bench_features.py): dictionaries only cost here (values rarely
# repeat exactly, the writer falls back after filling a page), so floats are PLAIN + zstd,
# except the long-window statistics whose low mantissa bits are noise, where byte-stream-split
# (each byte position of the float64 stored together) compresses better. Both are bit-exact.
_BYTE_STREAM_SPLIT = [
    *(f"ofi_normalized_{w}" for w in ("10s", "30s", "1m", "5m")),
    *(f"ofi_weighted_{w}" for w in ("30s", "1m", "5m")),
    "book_resilience", "spread_stability_50", "spread_stability_norm_50",
    "spread_stability_100", "spread_stability_norm_100", "book_shape_stability",
]
# Compression level by measurement on a simulated full day (864,000 rows; `trade-pipeline
# bench day --parquet`): zstd 1 writes in about a fifth of the CPU time of level 9 for +11 %
# bytes (390 against 352 bytes per row); level 3 costs a fifth more CPU than 1 for -6 %.
PARQUET_OPTIONS: dict = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": ["exchange", "symbol"],
    "use_byte_stream_split": _BYTE_STREAM_SPLIT,
}


def features_schema() -> dict[str, pl.DataType]:
    """Output columns and types: keys, then the 118 features (float64)."""
    return {
        "timestamp": _TS,
        "exchange": pl.String(),
        "symbol": pl.String(),
        "session_id": pl.Int64(),
        **{n: pl.Float64() for n in FEATURE_NAMES},
    }


def nan_to_null(name: str, values: np.ndarray) -> pl.Series:
    """A float64 Series over `values` (no copy of the data) with NaN marked as null."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    valid = ~np.isnan(values)
    n_null = len(values) - int(valid.sum())
    if n_null == 0:
        return pl.Series(name, values)
    bitmap = np.packbits(valid, bitorder="little")
    arr = pa.Array.from_buffers(
        pa.float64(), len(values), [pa.py_buffer(bitmap), pa.py_buffer(values)], null_count=n_null
    )
    return pl.Series(name, arr)


def validate_snapshots(df: pl.DataFrame) -> None:
    """Raise ValueError naming what is wrong; features are only defined on valid rows."""
    missing = [c for c in (*KEY_COLUMNS, *BOOK_COLUMNS) if c not in df.columns]
    if missing:
        raise ValueError(f"snapshots lack columns {missing}")
    must_have = ["timestamp", "exchange", "symbol", "session_id", "bid_price_1", "ask_price_1",
                 *SIZE_COLUMNS]
    nulls = df.select(pl.col(must_have).null_count()).row(0)
    bad = {c: n for c, n in zip(must_have, nulls, strict=True) if n}
    if bad:
        raise ValueError(f"snapshots have nulls where the book needs values: {bad}")
    nans = df.select(pl.col(["bid_price_1", "ask_price_1", *SIZE_COLUMNS]).is_nan().sum()).row(0)
    if any(nans):
        raise ValueError("snapshots have NaN in level-1 prices or in sizes")


def _prepare(snapshots: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    lf = snapshots.lazy() if isinstance(snapshots, pl.DataFrame) else snapshots
    names = lf.collect_schema().names()
    missing = [c for c in (*KEY_COLUMNS, *BOOK_COLUMNS) if c not in names]
    if missing:
        raise ValueError(f"snapshots lack columns {missing}")
    df = lf.select(
        pl.col("timestamp").cast(_TS),
        pl.col("exchange").cast(pl.String),
        pl.col("symbol").cast(pl.String),
        pl.col("session_id").cast(pl.Int64),
        pl.col(BOOK_COLUMNS).cast(pl.Float64),
    ).collect()
    validate_snapshots(df)
    return df


def _streams(df: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[int, int]]]:
    """Rows ordered by (exchange, symbol) stream then time, and each stream's row range.

    Input already in that order (the usual case: one partition) is used as is."""
    if df.height == 0:
        return df, []
    ts = df["timestamp"].dt.epoch("us").to_numpy()
    one_stream = df.select(
        (pl.col("exchange") == pl.col("exchange").first()).all()
        & (pl.col("symbol") == pl.col("symbol").first()).all()
    ).item()
    if one_stream:
        if not bool(np.all(np.diff(ts) >= 0)):
            df = df.sort("timestamp", maintain_order=True)
        return df, [(0, df.height)]
    run = df.select(pl.struct("exchange", "symbol").rle_id().alias("r"))["r"].to_numpy()
    n_runs = int(run[-1]) + 1
    n_streams = df.select(pl.struct("exchange", "symbol").n_unique()).item()
    in_order = n_runs == n_streams and bool(np.all((np.diff(ts) >= 0) | (np.diff(run) != 0)))
    if not in_order:
        df = df.sort(["exchange", "symbol", "timestamp"], maintain_order=True)
        run = df.select(pl.struct("exchange", "symbol").rle_id().alias("r"))["r"].to_numpy()
    bounds = np.flatnonzero(np.diff(run)) + 1
    edges = [0, *bounds.tolist(), df.height]
    return df, list(itertools.pairwise(edges))


def _readonly(values: np.ndarray) -> np.ndarray:
    """A contiguous read-only float64 view: the kernel's column tuple must be homogeneous
    (polars hands out read-only views, or writable copies where a column has nulls)."""
    view = np.ascontiguousarray(values, dtype=np.float64).view()
    view.flags.writeable = False
    return view


def _chunk_edges(df: pl.DataFrame) -> list[int]:
    """Row offsets where a memory chunk of some book column ends (concatenated inputs)."""
    edges: set[int] = set()
    for c in BOOK_COLUMNS:
        s = df[c]
        if s.n_chunks() > 1:
            edges.update(itertools.accumulate(len(ch) for ch in s.get_chunks()))
    return sorted(edges)


def compute_features(
    snapshots: pl.DataFrame | pl.LazyFrame, params: dict | None = None
) -> pl.DataFrame:
    """The 118 features of every snapshot row.

    Columns: timestamp, exchange, symbol, session_id, then FEATURE_NAMES (float64), one row
    per input row, ordered by (exchange, symbol, timestamp) (input order when it already is).
    Each (exchange, symbol) stream starts from empty state; windows restart at each session.
    """
    p = resolve_params(params)
    df, streams = _streams(_prepare(snapshots))
    n = df.height
    out = np.empty((kernels.N_DERIVED, n), dtype=np.float64)
    nans = np.zeros(kernels.N_DERIVED, dtype=np.int64)
    if n:
        ts = df["timestamp"].dt.epoch("us").to_numpy()
        sess = df["session_id"].to_numpy()
        pv = kernels.params_vector(p)
        edges = _chunk_edges(df)
        if len(edges) > n // 4096:  # many small chunks: one contiguous copy is cheaper
            df = df.rechunk()
            edges = []
        for lo, hi in streams:
            state = kernels.KernelState()
            # one stream in pieces that lie within one memory chunk of every column, so the
            # book columns are numpy views, not copies (the kernel state carries over)
            cuts = [lo, *(e for e in edges if lo < e < hi), hi]
            for a, b in itertools.pairwise(cuts):
                part = df.slice(a, b - a)
                columns = tuple(_readonly(part[c].to_numpy()) for c in BOOK_COLUMNS)
                nans += kernels.process_batch(ts[a:b], sess[a:b], columns, out[:, a:b], state, pv)
    derived = [
        nan_to_null(name, out[k]) if nans[k] else pl.Series(name, out[k])
        for k, name in enumerate(DERIVED_NAMES)
    ]
    return df.select(*KEY_COLUMNS, *BOOK_COLUMNS).with_columns(derived)
