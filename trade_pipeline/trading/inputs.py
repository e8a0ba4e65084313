"""Inputs of a backtest: snapshot rows (a Parquet file or the lake) and predictions
(a Parquet file of signals, or a registered model run over the batch features)."""

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from trade_pipeline.settings import Settings, SettingsError, check_date

TS = pl.Datetime("us", "UTC")


def parse_bound(text: str | None, *, end: bool) -> dt.datetime | None:
    """`YYYY-MM-DD` (a whole UTC day: an end date is inclusive) or an ISO 8601 time (UTC if
    no zone; an end time is exclusive)."""
    if text is None:
        return None
    if len(text) == 10:
        day = dt.date.fromisoformat(check_date(text))
        start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        return start + dt.timedelta(days=1) if end else start
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SettingsError(f"invalid time {text!r}: expected YYYY-MM-DD or ISO 8601") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def window(frame: pl.DataFrame, start: dt.datetime | None, end: dt.datetime | None) -> pl.DataFrame:
    ts = pl.col("timestamp")
    if start is not None:
        frame = frame.filter(ts >= start)
    if end is not None:
        frame = frame.filter(ts < end)
    return frame


def read_snapshots_file(path: str | Path) -> pl.DataFrame:
    """`--snapshots`: l2_snapshots rows (at least the time and the book columns)."""
    from trade_pipeline.market.schema import BOOK_COLUMNS, SNAPSHOT_SCHEMA
    from trade_pipeline.storage.input_files import read_parquet_input

    expected = {c: SNAPSHOT_SCHEMA[c] for c in ("timestamp", *BOOK_COLUMNS)}
    frame = read_parquet_input(path, "--snapshots", expected, "an l2_snapshots table")
    return frame.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC").cast(TS))


def read_lake_snapshots(settings: Settings, start: dt.datetime | None, end: dt.datetime | None) -> pl.DataFrame:
    """The lake's `l2_snapshots` partitions of the settings' exchange/symbol in the window."""
    from trade_pipeline.storage.layout import list_partitions, read_partition

    keys = [k for k in list_partitions(settings.lake_dir, "l2_snapshots")
            if k.exchange == settings.exchange and k.symbol == settings.symbol
            and (start is None or k.day >= (start - dt.timedelta(days=1)).date())
            and (end is None or k.day <= end.date())]
    if not keys:
        raise SettingsError(
            f"no l2_snapshots partitions for {settings.exchange}/{settings.symbol} in the lake "
            f"{settings.lake_dir} for that window; pass --snapshots FILE or build them first")
    frames = [read_partition(settings.lake_dir, "l2_snapshots", k) for k in keys]
    frame = pl.concat([f for f in frames if f is not None], how="diagonal_relaxed")
    frame = frame.drop([c for c in ("date",) if c in frame.columns])
    return frame.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC").cast(TS)).sort("timestamp")


def read_predictions_file(path: str | Path) -> pl.DataFrame:
    """`--predictions`: a time and a `signal` (-1/0/+1) or `prediction` per row."""
    from trade_pipeline.storage.input_files import read_parquet_input

    return read_parquet_input(
        path, "--predictions", {"timestamp": TS}, "a predictions table (timestamp, signal)",
        one_of=[("signal", "prediction")],
    )


def model_predictions(model, snapshots: pl.DataFrame) -> pl.DataFrame:
    """Batch features of the snapshot rows (the same kernels as the online engine) and the
    model's prediction for each row: columns timestamp, prediction."""
    from trade_pipeline.features.batch import compute_features

    feats = compute_features(snapshots)
    preds = np.asarray(model.predict_frame(feats), dtype=np.float64)
    return pl.DataFrame({"timestamp": feats.get_column("timestamp"), "prediction": preds})
