"""Per-partition statistics of each feature: counts, moments, quantiles, null and inf rates.

One row per feature. The moments and quantiles are over the finite values only, so a
single infinity cannot hide behind a mean of `inf`; nulls, NaNs and infinities are counted
separately (a feature with no finite value gets null statistics, never a made-up 0).
Everything is one polars `select` over the frame, so a day of 864,000 rows takes well under
a second per few dozen features.
"""

from collections.abc import Sequence

import polars as pl

# Columns of l2_features that identify a row rather than measure the book.
KEY_COLUMNS = ("timestamp", "exchange", "symbol", "session_id", "date")
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

STATS_SCHEMA: dict[str, pl.DataType] = {
    "feature": pl.String(),
    "rows": pl.Int64(),
    "count": pl.Int64(),  # finite values
    "nulls": pl.Int64(),
    "nans": pl.Int64(),
    "infs": pl.Int64(),
    "null_rate": pl.Float64(),
    "nan_rate": pl.Float64(),
    "inf_rate": pl.Float64(),
    "mean": pl.Float64(),
    "std": pl.Float64(),
    "min": pl.Float64(),
    **{f"q{round(q * 100):02d}": pl.Float64() for q in QUANTILES},
    "max": pl.Float64(),
}
QUANTILE_COLUMNS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)
_SEP = "\x1f"  # joins feature and statistic names in the one-row intermediate frame


def default_feature_columns(df: pl.DataFrame) -> list[str]:
    """Every numeric column that is not a key column."""
    return [
        name
        for name, dtype in df.schema.items()
        if name not in KEY_COLUMNS and dtype.is_numeric()
    ]


def _count_exprs(name: str) -> list[pl.Expr]:
    col = pl.col(name)
    return [
        col.null_count().alias(f"{name}{_SEP}nulls"),
        col.is_nan().sum().alias(f"{name}{_SEP}nans"),
        col.is_infinite().sum().alias(f"{name}{_SEP}infs"),
    ]


def _stat_exprs(name: str) -> list[pl.Expr]:
    # Applied to the finite-only frame: null there means null, NaN or inf in the input.
    col = pl.col(name)
    out = [
        col.count().alias(f"{name}{_SEP}count"),
        col.mean().alias(f"{name}{_SEP}mean"),
        col.std(ddof=1).alias(f"{name}{_SEP}std"),
        col.min().alias(f"{name}{_SEP}min"),
        col.max().alias(f"{name}{_SEP}max"),
    ]
    # All quantiles in one call: one selection pass per column instead of one per quantile
    # (measured 10x faster on a day of real features).
    out.append(
        col.quantile(list(QUANTILES), interpolation="linear").alias(f"{name}{_SEP}quantiles")
    )
    return out


def feature_stats(df: pl.DataFrame, features: Sequence[str] | None = None) -> pl.DataFrame:
    """Statistics of each feature column of `df` (default: every numeric non-key column).

    Returns one row per feature, columns as `STATS_SCHEMA`. An empty frame gives rows=0,
    rates null (a rate of nothing is undefined, not 0)."""
    names = list(features) if features is not None else default_feature_columns(df)
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise KeyError(f"feature columns not in the frame: {missing[:5]}{'...' if len(missing) > 5 else ''}")
    rows = df.height
    if not names:
        return pl.DataFrame(schema=STATS_SCHEMA)
    # Cast to Float64 once: NaN/inf checks need a float dtype, ints have neither.
    floats = df.select([pl.col(n).cast(pl.Float64) for n in names])
    counts = floats.select([e for n in names for e in _count_exprs(n)])
    finite = floats.select(
        [pl.when(pl.col(n).is_finite()).then(pl.col(n)).alias(n) for n in names]
    )
    moments = finite.select([e for n in names for e in _stat_exprs(n)])
    record = {**counts.row(0, named=True), **moments.row(0, named=True)}
    out = []
    for n in names:
        get = lambda stat, n=n: record[f"{n}{_SEP}{stat}"]  # noqa: E731
        quantiles = get("quantiles") or [None] * len(QUANTILES)  # null: no finite value
        nulls, nans, infs = int(get("nulls")), int(get("nans") or 0), int(get("infs") or 0)
        out.append(
            {
                "feature": n,
                "rows": rows,
                "count": int(get("count")),
                "nulls": nulls,
                "nans": nans,
                "infs": infs,
                "null_rate": nulls / rows if rows else None,
                "nan_rate": nans / rows if rows else None,
                "inf_rate": infs / rows if rows else None,
                "mean": get("mean"),
                "std": get("std"),
                "min": get("min"),
                **dict(zip(QUANTILE_COLUMNS, quantiles, strict=True)),
                "max": get("max"),
            }
        )
    return pl.DataFrame(out, schema=STATS_SCHEMA)


def summarize(stats: pl.DataFrame, top: int = 5) -> dict:
    """The monitor's view of a stats table: overall rates and the worst features."""
    if stats.is_empty():
        return {"features": 0, "rows": 0}
    rows = int(stats["rows"][0])
    worst_null = (
        stats.filter(pl.col("nulls") > 0)
        .sort(["null_rate", "feature"], descending=[True, False])
        .head(top)
        .select("feature", "null_rate")
    )
    with_inf = stats.filter((pl.col("infs") + pl.col("nans")) > 0).sort("feature")
    cells = rows * stats.height
    return {
        "features": stats.height,
        "rows": rows,
        "null_rate": float(stats["nulls"].sum()) / cells if cells else None,
        "inf_rate": float(stats["infs"].sum()) / cells if cells else None,
        "nan_rate": float(stats["nans"].sum()) / cells if cells else None,
        "worst_null_rates": worst_null.to_dicts(),
        "features_with_inf_or_nan": with_inf["feature"].to_list(),
    }
