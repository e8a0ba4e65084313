"""Model performance after the fact: rolling IC and hit rate, and paper PnL.

- Realized returns come from the labels module (`forward_returns`: same session, last row at
  or before t+h, null when the session ends first): one definition for training and
  monitoring. A prediction without a grid row at its time, or whose return is still unknown,
  is counted as unmatched, never scored.
- IC is Pearson's correlation of prediction and realized return; rank IC is Spearman's.
  Hit rate is the share of rows where the prediction's sign equals the realized sign, over
  rows where both are non-zero. A window with fewer than `min_rows` scored rows has null
  statistics (too few values), not 0.
"""

import datetime as dt

import polars as pl

from trade_pipeline.models.labels import forward_returns

MIN_ROWS = 30


def _stats_exprs() -> list[pl.Expr]:
    p, r = pl.col("prediction"), pl.col("realized")
    both = (p != 0) & (r != 0)
    return [
        pl.len().alias("rows"),
        pl.corr(p, r, method="pearson").alias("ic"),
        pl.corr(p, r, method="spearman").alias("rank_ic"),
        both.sum().alias("directional_rows"),
        ((p.sign() == r.sign()) & both).sum().alias("_hits"),
    ]


def _finish(frame: pl.DataFrame, min_rows: int) -> pl.DataFrame:
    few = pl.col("rows") < min_rows
    # A correlation with a constant side is NaN: undefined, reported as null.
    return frame.with_columns(
        pl.when(few).then(None).otherwise(pl.col("ic").fill_nan(None)).alias("ic"),
        pl.when(few).then(None).otherwise(pl.col("rank_ic").fill_nan(None)).alias("rank_ic"),
        pl.when(few | (pl.col("directional_rows") == 0))
        .then(None)
        .otherwise(pl.col("_hits") / pl.col("directional_rows"))
        .alias("hit_rate"),
    ).drop("_hits")


def scored(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows with a finite prediction and a finite realized return."""
    return frame.filter(
        pl.col("prediction").is_finite().fill_null(False)
        & pl.col("realized").is_finite().fill_null(False)
    )


def overall(frame: pl.DataFrame, min_rows: int = MIN_ROWS) -> dict:
    """IC, rank IC and hit rate over all scored rows of `frame` (prediction, realized)."""
    rows = scored(frame)
    stats = _finish(rows.select(_stats_exprs()), min_rows).row(0, named=True)
    return {k: (float(v) if isinstance(v, float) else v) for k, v in stats.items()}


def rolling_ic(
    frame: pl.DataFrame, every: str = "1h", min_rows: int = MIN_ROWS
) -> pl.DataFrame:
    """IC, rank IC and hit rate per time window of `every` (polars duration string)."""
    rows = scored(frame).sort("timestamp")
    if rows.is_empty():
        return pl.DataFrame(
            schema={"window_start": pl.Datetime("us", "UTC"), "rows": pl.UInt32,
                    "ic": pl.Float64, "rank_ic": pl.Float64,
                    "directional_rows": pl.UInt32, "hit_rate": pl.Float64}
        )
    windows = rows.group_by_dynamic("timestamp", every=every).agg(_stats_exprs())
    return _finish(windows.rename({"timestamp": "window_start"}), min_rows)


def with_realized(
    predictions: pl.DataFrame, snapshots: pl.DataFrame, horizon: str | dt.timedelta
) -> tuple[pl.DataFrame, int]:
    """Predictions joined with the realized forward return of their grid row.

    `predictions`: timestamp, prediction (+ exchange, symbol when the snapshots hold several).
    `snapshots`: the canonical l2_snapshots rows. Returns (frame with `realized`, unmatched
    count): predictions with no grid row at their exact time are unmatched."""
    keys = [c for c in ("exchange", "symbol") if c in predictions.columns and c in snapshots.columns]
    book = snapshots.select(
        *keys, "timestamp", "session_id",
        ((pl.col("bid_price_1") + pl.col("ask_price_1")) / 2).alias("mid_price"),
    )
    book = book.with_columns(forward_returns(book, horizon).alias("realized"))
    joined = predictions.join(
        book.select(*keys, "timestamp", "realized"), on=[*keys, "timestamp"], how="left",
        coalesce=True,
    )
    unmatched = predictions.height - predictions.join(
        book.select(*keys, "timestamp"), on=[*keys, "timestamp"], how="semi"
    ).height
    return joined, unmatched


def pnl_summary(trades: pl.DataFrame, pnl_col: str, fee_col: str | None, group: list[str]) -> list[dict]:
    """Per group (e.g. run, model): trades, realized PnL, fees, net, last trade time."""
    if trades.is_empty():
        return []
    aggs = [pl.len().alias("trades"), pl.col(pnl_col).sum().alias("pnl")]
    if fee_col:
        aggs.append(pl.col(fee_col).sum().alias("fees"))
    if "timestamp" in trades.columns:
        aggs.append(pl.col("timestamp").max().alias("last_trade"))
    out = trades.group_by(group).agg(aggs).sort(group)
    rows = out.to_dicts()
    for row in rows:
        if isinstance(row.get("last_trade"), dt.datetime):
            row["last_trade"] = row["last_trade"].isoformat()
    return rows
