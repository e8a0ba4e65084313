"""Population stability index (PSI) between a reference sample and a recent one.

`PSI = sum_b (a_b - e_b) * ln(a_b / e_b)` over bins `b`, where `e_b` / `a_b` are the shares of
the expected (reference, e.g. the training window) and actual (e.g. the latest day) values in
bin `b`. Rules of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift.

- Bins are quantiles of the **expected** sample only (never of the actual one), with open
  outer edges, so every actual value lands in some bin. Duplicate edges (a feature with few
  distinct values) are merged, so there may be fewer than `bins` bins.
- Non-finite values (NaN, null, inf) are dropped from both samples before binning; the share
  of missing values is a separate concern (freshness / quality checks), not a PSI input.
- Epsilon: an empty bin would make `ln(a/e)` infinite, so each share is floored at
  `EPSILON = 1e-4` before the formula (the shares are not renormalised; the floor only matters
  for empty bins). An empty sample after dropping non-finite values raises `DriftError`
  instead of returning a made-up number.

One drift measurement, `measure_drift(lake, exchange, symbol, DriftSpec)`, serves both the
retraining sensor (`defs/models.py`, the champion's top features) and the monitor
(`monitoring/status.py`, every feature). The spec names everything that determines the
figure, so the two cannot disagree on the same data:

- reference window and current window: closed time ranges of `l2_features` rows (for a
  model, `champion_drift_spec`: its logged training range vs the whole newest UTC day);
- the features compared (the PSI of one feature does not depend on which others are asked);
- `bins` quantile bins of the reference (default 10);
- `sample_rows`: each side is cut to at most this many rows (default 200,000) by keeping
  every k-th row of the window in time order, k = ceil(rows / sample_rows).
"""

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.storage import layout, tables
from trade_pipeline.storage.layout import PartitionKey

EPSILON = 1e-4


class DriftError(TradePipelineError, ValueError):
    """The samples cannot be compared (empty after removing non-finite values, ...)."""


def _finite(values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """PSI of `actual` against `expected` with `bins` quantile bins of `expected`."""
    if bins < 2:
        raise DriftError(f"bins must be >= 2, got {bins}")
    exp = _finite(expected)
    act = _finite(actual)
    if exp.size == 0 or act.size == 0:
        raise DriftError(
            f"cannot compute PSI: {exp.size} expected and {act.size} actual finite values"
        )
    inner = np.unique(np.quantile(exp, np.linspace(0, 1, bins + 1)[1:-1]))
    # Bin b holds values in (edge_{b-1}, edge_b]; the outer bins are open-ended.
    e_counts = np.bincount(np.searchsorted(inner, exp, side="left"), minlength=inner.size + 1)
    a_counts = np.bincount(np.searchsorted(inner, act, side="left"), minlength=inner.size + 1)
    e_share = np.maximum(e_counts / exp.size, EPSILON)
    a_share = np.maximum(a_counts / act.size, EPSILON)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def feature_psi(
    train_frame: pl.DataFrame, latest_frame: pl.DataFrame, features, bins: int = 10
) -> dict[str, float]:
    """PSI per feature (train window as expected, latest frame as actual).

    A feature with no finite values on either side raises `DriftError` naming it."""
    out: dict[str, float] = {}
    for name in features:
        for frame, side in ((train_frame, "training"), (latest_frame, "latest")):
            if name not in frame.columns:
                raise DriftError(f"feature {name!r} missing from the {side} frame")
        try:
            out[name] = psi(
                train_frame.get_column(name).cast(pl.Float64).to_numpy(),
                latest_frame.get_column(name).cast(pl.Float64).to_numpy(),
                bins=bins,
            )
        except DriftError as exc:
            raise DriftError(f"feature {name!r}: {exc}") from None
    return out


# ---- one drift measurement: windows, features, binning and sampling all explicit -------------

FEATURES_TABLE = tables.FEATURES
DEFAULT_BINS = 10
DEFAULT_SAMPLE_ROWS = 200_000  # cap on each side's sample (every k-th row, deterministic)
_US = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class Window:
    """A closed time range `[start, end]` (UTC) of lake rows."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            if getattr(self, name).tzinfo is None:
                raise DriftError(f"window {name} {getattr(self, name)} has no time zone")
        if self.end < self.start:
            raise DriftError(f"window ends ({self.end}) before it starts ({self.start})")

    @classmethod
    def of_day(cls, day: str) -> "Window":
        """The whole UTC day `YYYY-MM-DD`."""
        start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
        return cls(start, start + dt.timedelta(days=1) - _US)

    @classmethod
    def parse(cls, start: str, end: str) -> "Window":
        """From ISO strings (a time without a zone is UTC)."""
        def utc(text: str) -> dt.datetime:
            when = dt.datetime.fromisoformat(text)
            return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        return cls(utc(start), utc(end))

    def days(self) -> list[str]:
        """The UTC days (partition dates) the window touches."""
        first = self.start.astimezone(dt.UTC).date()
        last = self.end.astimezone(dt.UTC).date()
        return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]

    def as_dict(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class DriftSpec:
    """Everything that determines a drift figure: two windows of one stream's feature rows,
    the features compared, the number of quantile bins and the per-side sample cap."""

    reference: Window  # the expected distribution (e.g. the model's training window)
    current: Window  # the actual one (e.g. the newest day)
    features: tuple[str, ...]
    bins: int = DEFAULT_BINS
    sample_rows: int = DEFAULT_SAMPLE_ROWS

    def __post_init__(self) -> None:
        if not self.features:
            raise DriftError("no feature to compare")
        if self.sample_rows < 1:
            raise DriftError(f"sample_rows must be >= 1, got {self.sample_rows}")


@dataclass(frozen=True)
class DriftReport:
    spec: DriftSpec
    psi: dict[str, float]  # per feature of spec.features
    reference_rows: int  # rows inside each window, before sampling
    current_rows: int

    def ranked(self) -> list[tuple[str, float]]:
        """(feature, PSI), largest first."""
        return sorted(self.psi.items(), key=lambda kv: kv[1], reverse=True)

    def worst(self, among=None) -> tuple[str, float] | None:
        """The feature with the largest PSI (only among `among` when given), or None."""
        names = self.psi if among is None else [n for n in among if n in self.psi]
        return max(((n, self.psi[n]) for n in names), key=lambda kv: kv[1], default=None)


def champion_drift_spec(champion: dict, current_day: str, features,
                        bins: int = DEFAULT_BINS,
                        sample_rows: int = DEFAULT_SAMPLE_ROWS) -> DriftSpec:
    """The drift rule of a registered model, shared by the retraining sensor and the monitor:
    reference = the exact training window the model logged (`data_start` .. `data_end`),
    current = the whole UTC day `current_day`."""
    if not champion.get("data_start") or not champion.get("data_end"):
        raise DriftError("the champion records no training data range")
    return DriftSpec(Window.parse(champion["data_start"], champion["data_end"]),
                     Window.of_day(current_day), tuple(features), bins, sample_rows)


def _read_columns(lake_dir: str, table: str, key: PartitionKey, columns: list[str]):
    """One partition's `columns`, or None when the partition does not exist."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs, base = layout._fs(lake_dir)
    path = f"{base}/{key.relpath(table)}/{layout.PART_FILE}"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_file(path) as src:
        parquet = pq.ParquetFile(src)
        missing = [c for c in columns if c not in parquet.schema_arrow.names]
        if missing:
            raise DriftError(f"{table} partition {key.date} lacks column(s) {missing}")
        return pl.from_arrow(parquet.read(columns=columns))


def window_sample(lake_dir: str, exchange: str, symbol: str, window: Window, features,
                  sample_rows: int, table: str = FEATURES_TABLE) -> tuple[pl.DataFrame, int]:
    """The rows of `window` (features only), sampled to at most `sample_rows` rows by taking
    every k-th row of the window in time-partition order; returns (sample, rows in window).

    Reads one partition at a time (the timestamps first, to size k), so memory holds one
    partition plus the sample, however long the window."""
    keys = [PartitionKey(exchange, symbol, day) for day in window.days()]
    inside = pl.col("timestamp").is_between(window.start, window.end, closed="both")
    counts = []
    for key in keys:
        stamps = _read_columns(lake_dir, table, key, ["timestamp"])
        counts.append(0 if stamps is None else stamps.filter(inside).height)
    total = sum(counts)
    step = max(1, -(-total // sample_rows))
    parts, seen = [], 0
    for key, n in zip(keys, counts, strict=True):
        if n == 0:
            continue
        rows = _read_columns(lake_dir, table, key, ["timestamp", *features]).filter(inside)
        # global row index seen + i is kept when divisible by step
        parts.append(rows.drop("timestamp").gather_every(step, offset=(-seen) % step))
        seen += n
    if not parts:
        return pl.DataFrame(schema={f: pl.Float64 for f in features}), 0
    return pl.concat(parts, how="vertical_relaxed"), total


def measure_drift(lake_dir: str, exchange: str, symbol: str, spec: DriftSpec,
                  table: str = FEATURES_TABLE) -> DriftReport:
    """PSI per feature of `spec.current` against `spec.reference`: the one drift computation
    (the retraining sensor and `trade-pipeline monitor` both call it). Raises `DriftError`
    when a window has no rows or a feature has no finite value on one side."""
    features = list(dict.fromkeys(spec.features))
    samples = {}
    for side, window in (("reference", spec.reference), ("current", spec.current)):
        frame, rows = window_sample(lake_dir, exchange, symbol, window, features,
                                    spec.sample_rows, table)
        if rows == 0:
            raise DriftError(f"no {table} rows of {exchange}/{symbol} in the {side} window "
                             f"{window.start.isoformat()} .. {window.end.isoformat()}")
        samples[side] = (frame, rows)
    (ref, ref_rows), (cur, cur_rows) = samples["reference"], samples["current"]
    return DriftReport(spec, feature_psi(ref, cur, features, bins=spec.bins), ref_rows, cur_rows)
