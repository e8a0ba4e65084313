"""Quality gates of a features table: schema, infinities, null rates vs the warm-up."""

import polars as pl

from trade_pipeline.features.batch import features_schema
from trade_pipeline.features.catalog import FEATURE_NAMES, SPECS

# Null only while a window fills after the session start (window in seconds; 0: first row).
WARMUP_NULLS: dict[str, float] = {"mid_price_return": 0.0}
WARMUP_NULLS.update({n: SPECS[n].params["window_s"] for n in FEATURE_NAMES
                     if n.startswith(("l2_volatility_", "spread_stability_"))})
# Null where the book itself says so (a thin side for Q, a missing level 5, missing deep
# levels in the raw columns): reported, not gated.
BOOK_NULLS = {"price_impact_buy", "price_impact_sell", "book_shape_1_5", "book_shape_stability",
              *(n for n in FEATURE_NAMES if n.startswith(("bid_price_", "ask_price_")))}


def schema_problems(df: pl.DataFrame) -> list[str]:
    expected = features_schema()
    problems = []
    if df.columns != list(expected):
        missing = [c for c in expected if c not in df.columns]
        extra = [c for c in df.columns if c not in expected]
        problems.append(f"columns differ from the catalog: missing {missing}, extra {extra}"
                        if missing or extra else "columns are not in catalog order")
    for name, dtype in expected.items():
        if name in df.columns and df.schema[name] != dtype:
            problems.append(f"{name}: {df.schema[name]} != {dtype}")
    return problems


def infinity_counts(df: pl.DataFrame) -> dict[str, int]:
    counts = df.select(pl.col(FEATURE_NAMES).is_infinite().sum()).row(0, named=True)
    return {k: v for k, v in counts.items() if v}


def null_report(df: pl.DataFrame) -> dict[str, dict]:
    """Per feature: nulls, and for warm-up features the allowed nulls (rows within the window
    of their session's first row in this table)."""
    nulls = df.select(pl.col(FEATURE_NAMES).null_count()).row(0, named=True)
    since_start = (
        df.select((pl.col("timestamp") - pl.col("timestamp").min().over("session_id"))
                  .dt.total_microseconds().alias("age"))["age"]
    ) if df.height else pl.Series("age", [], pl.Int64)
    report = {}
    for name in FEATURE_NAMES:
        entry = {"nulls": int(nulls[name]), "rate": nulls[name] / df.height if df.height else 0.0}
        if name in WARMUP_NULLS:
            window_us = WARMUP_NULLS[name] * 1e6
            entry["allowed"] = int((since_start <= window_us).sum()) if window_us else int(
                df["session_id"].n_unique() if df.height else 0)
        elif name in BOOK_NULLS:
            entry["allowed"] = None
        else:
            entry["allowed"] = 0
        report[name] = entry
    return report


def null_violations(report: dict[str, dict]) -> dict[str, dict]:
    return {n: e for n, e in report.items() if e["allowed"] is not None
            and e["nulls"] > e["allowed"]}
