"""Inputs of a backtest: snapshot rows (a Parquet file or the lake) and predictions
(a Parquet file of signals, or a registered model run over its features).

A model is fed the features it was trained on: the lake's `l2_features` (warmed up across
days, stamped with their parameters, checked against the model's), or, where a day has no
feature partition, features computed from its `l2_snapshots` with the model's recorded
parameters and the same warm-up from the days before. A snapshot file has no earlier days:
its features are computed with the model's parameters, each session starting cold."""

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from trade_pipeline.settings import Settings, SettingsError, check_date
from trade_pipeline.storage import tables

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

    keys = [k for k in list_partitions(settings.lake_dir, tables.SNAPSHOTS)
            if k.exchange == settings.exchange and k.symbol == settings.symbol
            and (start is None or k.day >= (start - dt.timedelta(days=1)).date())
            and (end is None or k.day <= end.date())]
    if not keys:
        raise SettingsError(
            f"no l2_snapshots partitions for {settings.exchange}/{settings.symbol} in the lake "
            f"{settings.lake_dir} for that window; pass --snapshots FILE or build them first")
    frames = [read_partition(settings.lake_dir, tables.SNAPSHOTS, k) for k in keys]
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


def model_predictions(model, snapshots: pl.DataFrame, features: pl.DataFrame | None = None
                      ) -> pl.DataFrame:
    """The model's expected return for each row: columns timestamp, prediction. `features`:
    the rows' features (e.g. from the lake); None computes them from `snapshots` with the
    model's feature parameters (the same kernels as the online engine)."""
    if features is None:
        from trade_pipeline.features.batch import compute_features

        features = compute_features(snapshots, getattr(model, "feature_params", None))
    preds = np.asarray(model.predict_frame(features), dtype=np.float64)
    return pl.DataFrame({"timestamp": features.get_column("timestamp"), "prediction": preds})


def _days(start: dt.datetime | None, end: dt.datetime | None, available: list[str]) -> list[str]:
    lo = start.date().isoformat() if start else None
    hi = (end - dt.timedelta(microseconds=1)).date().isoformat() if end else None
    return [d for d in available if (lo is None or d >= lo) and (hi is None or d <= hi)]


def read_lake_features(settings: Settings, start: dt.datetime | None, end: dt.datetime | None,
                       params: dict | None = None) -> tuple[pl.DataFrame, dict]:
    """The feature rows (with their book columns) of the settings' exchange/symbol in the
    window, one day at a time: the `l2_features` partition when it exists, else the day's
    `l2_snapshots` through the feature engine with `params` and the warm-up of the days
    before. Returns (frame, provenance {stamp, days_from_lake, days_computed})."""
    from trade_pipeline.features.provenance import combine, read_stamp, stamp_of
    from trade_pipeline.features.warmup import compute_partition
    from trade_pipeline.storage.layout import (
        PartitionKey,
        list_partitions,
        partition_file,
        read_partition,
    )

    def days_of(table: str) -> list[str]:
        return [k.date for k in list_partitions(settings.lake_dir, table)
                if k.exchange == settings.exchange and k.symbol == settings.symbol]

    feature_days = set(days_of(tables.FEATURES))
    days = _days(start, end, sorted(feature_days | set(days_of(tables.SNAPSHOTS))))
    if not days:
        raise SettingsError(
            f"no l2_features or l2_snapshots partitions for {settings.exchange}/"
            f"{settings.symbol} in the lake {settings.lake_dir} for that window")
    frames, stamps, from_lake, computed = [], [], [], []
    for day in days:
        key = PartitionKey(settings.exchange, settings.symbol, day)
        if day in feature_days:
            frames.append(read_partition(settings.lake_dir, tables.FEATURES, key))
            stamps.append(read_stamp(partition_file(settings.lake_dir, tables.FEATURES, key)))
            from_lake.append(day)
            continue
        snaps = read_partition(settings.lake_dir, tables.SNAPSHOTS, key).drop("date", strict=False)

        def previous(k: int, key=key):
            back = (key.day - dt.timedelta(days=k)).isoformat()
            prev = read_partition(settings.lake_dir, "l2_snapshots",
                                  PartitionKey(key.exchange, key.symbol, back))
            return None if prev is None else prev.drop("date", strict=False)

        feats, _warm = compute_partition(snaps, previous, params)
        frames.append(feats)
        stamps.append(stamp_of(params))
        computed.append(day)
    frame = pl.concat([f.drop("date", strict=False) for f in frames], how="diagonal_relaxed")
    frame = frame.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC").cast(TS))
    frame = window(frame.sort("timestamp"), start, end)
    try:
        stamp = combine(stamps)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return frame, {"stamp": stamp, "days_from_lake": from_lake, "days_computed": computed}
