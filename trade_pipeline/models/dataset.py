"""Training rows streamed from the lake with bounded memory.

A week of `l2_features` is 6 million rows x 122 columns of float64 (5.9 GB) on the 100 ms
grid; loading it whole, labelling the copy and casting it to a float64 matrix took 22 GB.
`load_training_frame` builds the same training rows one day at a time instead:

1. **Plan first.** The partitions of the range are listed and their row counts read from the
   Parquet footers (no data). The memory the request needs is estimated from the rows kept and
   the columns (`estimate_bytes`, calibrated by `benchmarks/bench_training.py`); a request over
   the budget (`Settings.train_memory_gb`, and never more than the memory the machine has free
   right now) is refused with both figures and the stride that would fit, before anything is
   loaded. The OS never has to kill a training run.
2. **Labels per session, per day, without crossing partitions wrongly.** For each day only
   `timestamp`, `session_id`, `mid_price` are read and labelled with `labels.forward_returns`
   over the day plus a look-ahead from the next day of the range: its rows up to
   `midnight + h` and, per session, its first row after that (which settles only whether the
   session reaches `t + h`; it is never the price used). A session crossing midnight therefore
   gets exactly the label the whole range would give it, and no label comes from another
   session or from a day outside the requested range (the range end is a hard edge, like an
   embargo). `trade_pipeline_tests/models/test_dataset.py` checks equality with labelling the
   concatenated range, with hypothesis.
3. **Stride.** Rows 100 ms apart with a 5 s label share most of their label window: n rows
   hold about n / (h / 100 ms) independent returns. With `stride = k` only rows whose time is a
   multiple of `k x cadence` are kept (time-aligned, so the same rows are kept whatever the
   partitioning). Labels are computed at full resolution first, so a strided row has exactly
   the label it has unstrided. Thinning is not free: with a known signal the out-of-sample
   IC falls by ~1 % at stride 2, ~3 % at 5 and ~6 % at 10 (docs/CAPACITY_PLAN.md), so
   `auto_stride` keeps every row whenever the request fits the memory budget and otherwise
   takes the smallest stride that fits (never more than one row per label window).
4. **Only the needed columns, float32.** Feature columns are read a group at a time, cast to
   float32 (a null becomes NaN, which LightGBM and the metrics read as missing) and filtered
   to the kept rows, so a day never exists as float64 in memory. Unlabelled rows (a session
   ends before `t + h`) are dropped here and counted in the report.

The frame that comes out (timestamp, session_id, mid_price float64, the features float32 and
the label column `fwd_return_<h>`) goes to `training.train_model` unchanged: `prepare` uses the
label column when it is there, and reads the feature matrix through `FeatureMatrix`, which
gathers only the rows a step asks for instead of copying the whole frame into a second matrix.
LightGBM Datasets over many rows are built from chunks (`lgb_rows` -> `lightgbm.Sequence`).
"""

import dataclasses
import datetime as dt
import math
import time

import lightgbm as lgb
import numpy as np
import polars as pl

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.models.labels import forward_returns, parse_horizon, return_column
from trade_pipeline.storage import tables

TABLE = tables.FEATURES
# Columns the training step needs besides the model features (labels, costs, time order).
CARRIED = ("timestamp", "session_id", "mid_price", "spread")
COLUMN_GROUP = 8  # feature columns decoded at once: bounds the per-day transient memory
STRIDES = (1, 2, 3, 4, 5, 10, 20, 25, 50, 100, 200, 300, 600)  # what auto_stride tries
# Memory model (bytes): the frame, a share for what training holds besides it (returns,
# times, split indices, fit gathers and LightGBM's binned copy, prediction chunks, allocator
# slack) and the process itself (Python, polars, LightGBM, MLflow). Conservative against
# benchmarks/bench_training.py: a week at stride 1 estimated 3.78 GB, measured 3.53 GB peak;
# a month at stride 2 estimated 7.10 GB, measured 6.42 GB.
GATHER_SHARE = 0.30
FIXED_BYTES = 900 * 2**20
SEQUENCE_BATCH = 65_536  # rows per chunk when LightGBM builds a Dataset from a Sequence


class DatasetError(TradePipelineError, ValueError):
    """The training rows cannot be built as asked; the message says why."""


class MemoryBudgetError(DatasetError):
    """The request needs more memory than the budget allows; the message gives the figures."""


@dataclasses.dataclass(frozen=True)
class DatasetPlan:
    keys: tuple  # PartitionKey of each day, in date order
    rows_in: int  # rows in those partitions (Parquet footers)
    rows_planned: int  # rows expected after the stride (before dropping unlabelled rows)
    stride: int
    features: tuple[str, ...]
    horizon: str | None
    estimated_bytes: int
    budget_bytes: int


@dataclasses.dataclass
class DatasetReport:
    partitions: list[str]
    rows_read: int = 0
    rows_kept: int = 0
    unlabelled: int = 0  # rows whose session ends before t + h (dropped, never filled)
    stride: int = 1
    features: int = 0
    frame_bytes: int = 0
    estimated_bytes: int = 0
    budget_bytes: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["partitions"] = len(self.partitions)
        return out


# ---- sizing -------------------------------------------------------------------------------

def bytes_per_row(n_features: int, labelled: bool = True) -> int:
    """Bytes of one kept row in the frame: features float32, timestamp, session, mid (8 each),
    and the label."""
    return 4 * n_features + 8 * 3 + (8 if labelled else 0)


def estimate_bytes(rows: int, n_features: int, labelled: bool = True) -> int:
    """Peak memory of training on `rows` kept rows (see the model's constants above)."""
    frame = rows * bytes_per_row(n_features, labelled)
    gather = int(rows * GATHER_SHARE * 4 * n_features)
    return frame + gather + FIXED_BYTES


def auto_stride(horizon: str | dt.timedelta | None, cadence_ms: int, rows: int,
                n_features: int, budget_bytes: int) -> int:
    """The smallest stride whose estimate fits `budget_bytes` (1 when it all fits), never
    coarser than one row per label window; without a horizon, 1. Chosen from the configured
    budget only, so the same request always gets the same stride (the memory free at the
    moment can still refuse it)."""
    if horizon is None:
        return 1
    window_rows = max(1, int(parse_horizon(horizon) / dt.timedelta(milliseconds=cadence_ms)))
    candidates = [s for s in STRIDES if s <= window_rows] or [1]
    for s in candidates:
        if estimate_bytes(math.ceil(rows / s), n_features) <= budget_bytes:
            return s
    return candidates[-1]


def available_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def _gb(n: float) -> str:
    return f"{n / 2**30:.2f} GB"


def plan_dataset(
    settings, start: str | None, end: str | None, *, features: list[str],
    horizon: str | None = None, stride: int | None = None, budget_bytes: int | None = None,
    check_free: bool = True,
) -> DatasetPlan:
    """List the range's partitions, count their rows from the footers, choose the stride and
    check the memory budget (and, with `check_free`, this machine's available memory).
    Raises MemoryBudgetError with the figures when over budget."""
    from trade_pipeline.settings import check_date
    from trade_pipeline.storage.layout import list_partitions, open_parquet

    for day in (start, end):
        if day:
            check_date(day)
    if stride is not None and stride < 1:
        raise DatasetError(f"stride must be >= 1, got {stride}")
    if stride not in (None, 1) and horizon is None:
        raise DatasetError("a stride needs the label horizon (labels come before the stride)")
    keys = tuple(
        k for k in list_partitions(settings.lake_dir, TABLE)
        if k.exchange == settings.exchange and k.symbol == settings.symbol
        and (start is None or k.date >= start) and (end is None or k.date <= end)
    )
    if not keys:
        raise DatasetError(
            f"no {TABLE} partitions for {settings.exchange}/{settings.symbol} between "
            f"{start or 'the start'} and {end or 'the end'} in {settings.lake_dir}"
        )
    rows_in = 0
    for key in keys:
        pf = open_parquet(settings.lake_dir, TABLE, key)
        rows_in += pf.metadata.num_rows if pf is not None else 0
    n_features = len(set(features) | {"spread"})
    configured = int(settings.train_memory_gb * 2**30)
    budget = configured if budget_bytes is None else int(budget_bytes)
    chosen = stride or auto_stride(horizon, settings.cadence_ms, rows_in, n_features, budget)
    rows_planned = math.ceil(rows_in / chosen)
    estimate = estimate_bytes(rows_planned, n_features, labelled=horizon is not None)
    free = available_bytes() if check_free else budget
    limit = min(budget, free)
    if estimate > limit:
        per_row = max(1, (estimate - FIXED_BYTES) / max(rows_planned, 1) * chosen)
        need = math.ceil(rows_in * per_row / max(limit - FIXED_BYTES, 1)) if limit > FIXED_BYTES else None
        hint = (f"use a stride >= {need} (--stride), fewer days, or a larger budget "
                "(TRADE_PIPELINE_TRAIN_MEMORY_GB)" if horizon is not None and need
                else "use fewer days or a larger budget (TRADE_PIPELINE_TRAIN_MEMORY_GB)")
        which = (f"the budget {_gb(budget)}" if budget <= free
                 else f"the memory available now {_gb(free)} (budget {_gb(budget)})")
        raise MemoryBudgetError(
            f"training on {len(keys)} day(s) of {TABLE} ({rows_in:,} rows, stride {chosen} -> "
            f"{rows_planned:,} rows x {n_features} features) needs about {_gb(estimate)}, more "
            f"than {which}; {hint}"
        )
    return DatasetPlan(keys=keys, rows_in=rows_in, rows_planned=rows_planned, stride=chosen,
                       features=tuple(features), horizon=horizon, estimated_bytes=estimate,
                       budget_bytes=limit)


# ---- labels across partitions --------------------------------------------------------------

def lookahead_rows(next_day: pl.DataFrame, day_end: dt.datetime,
                   horizon: str | dt.timedelta) -> pl.DataFrame:
    """The rows of the next day that labels of this day can need: every row up to
    `day_end + h`, and per session the first row after it (it only tells that the session
    reaches t + h; the price used is always the last row at or before t + h)."""
    cutoff = day_end + parse_horizon(horizon)
    head = next_day.filter(pl.col("timestamp") <= cutoff)
    after = (next_day.filter(pl.col("timestamp") > cutoff)
             .sort("timestamp").group_by("session_id", maintain_order=True).first())
    return pl.concat([head, after.select(head.columns)], how="vertical")


def day_labels(day: pl.DataFrame, next_day: pl.DataFrame | None, day_end: dt.datetime,
               horizon: str | dt.timedelta) -> pl.Series:
    """Forward returns of `day`'s rows (aligned with them), exactly as over the whole range."""
    if next_day is None or next_day.height == 0:
        return forward_returns(day, horizon)
    extra = lookahead_rows(next_day, day_end, horizon)
    # Rows of the next day already present in this partition (a writer's overlap) would be
    # duplicates; the next day's own copy is the one the range holds.
    both = pl.concat([day, extra.select(day.columns)], how="vertical")
    return forward_returns(both, horizon).head(day.height)


# ---- loading ------------------------------------------------------------------------------

def _read(pf, columns: list[str]) -> pl.DataFrame:
    return pl.from_arrow(pf.read(columns=columns, use_threads=False))


def _read_float32(pf, columns: list[str], keep: np.ndarray | None) -> list[pl.Series]:
    """Columns as float32 Series over numpy memory (null -> NaN, which LightGBM and the
    metrics read as missing), only the `keep` rows. Through numpy rather than polars casts
    of Arrow buffers: those left ~100 MB per day of Arrow memory alive (measured), and the
    numpy copies are released to the OS as soon as they die."""
    table = pf.read(columns=columns, use_threads=False)
    out = []
    for name in columns:
        values = table.column(name).to_numpy(zero_copy_only=False)
        if keep is not None:
            values = values[keep]
        out.append(pl.Series(name, values.astype(np.float32)))
        del values
    return out


def feature_columns(features: list[str]) -> list[str]:
    """The feature columns read besides the carried ones (spread is always needed)."""
    return [f for f in dict.fromkeys([*features, "spread"]) if f not in CARRIED[:3]]


def read_label_inputs(lake_dir: str, key) -> pl.DataFrame | None:
    """One day's `timestamp`, `session_id`, `mid_price` (what labels need), or None."""
    from trade_pipeline.storage.layout import open_parquet

    pf = open_parquet(lake_dir, TABLE, key)
    return None if pf is None else _read(pf, list(CARRIED[:3]))


@dataclasses.dataclass
class DayRows:
    frame: pl.DataFrame
    rows_read: int
    unlabelled: int


def day_rows(lake_dir: str, key, *, features: list[str], horizon: str | None,
             stride_ms: int | None, label_inputs: pl.DataFrame | None = None,
             next_label_inputs: pl.DataFrame | None = None) -> DayRows | None:
    """The training rows of one day (see the module docstring); `next_label_inputs` are the
    next day's label columns when that day is in the range (None at the range's end).
    The one implementation the local loader and the distributed trainer share."""
    from trade_pipeline.storage.layout import open_parquet

    pf = open_parquet(lake_dir, TABLE, key)
    if pf is None:
        return None
    cols = feature_columns(features)
    _check_columns(pf, [*CARRIED[:3], *cols], key)
    current = label_inputs if label_inputs is not None else _read(pf, list(CARRIED[:3]))
    if current.height == 0:
        return DayRows(current, 0, 0)
    keep = pl.Series(np.ones(current.height, dtype=bool))
    out, unlabelled = current, 0
    if horizon is not None:
        day_end = dt.datetime.combine(key.day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        ret = day_labels(current, next_label_inputs, day_end, horizon)
        keep = ret.is_not_null()
        unlabelled = int(current.height - keep.sum())
        if stride_ms:
            keep = keep & ((current.get_column("timestamp").dt.epoch("ms") % stride_ms) == 0)
        out = current.with_columns(ret.alias(return_column(horizon)))
    mask = None if keep.all() else keep.to_numpy()
    # Copy the carried columns out of the Arrow buffers they were read into (see _read_float32).
    series = [pl.Series(c.name, c.to_numpy()[mask] if mask is not None else c.to_numpy().copy())
              .cast(c.dtype) for c in out.iter_columns()]
    for g in range(0, len(cols), COLUMN_GROUP):
        series.extend(_read_float32(pf, cols[g:g + COLUMN_GROUP], mask))
    return DayRows(pl.DataFrame(series), current.height, unlabelled)


def load_training_frame(
    settings, start: str | None = None, end: str | None = None, *, features: list[str],
    horizon: str | None = None, stride: int | None = None, budget_bytes: int | None = None,
    on_day=None,
) -> tuple[pl.DataFrame, DatasetReport]:
    """The training rows of `[start, end]` for the settings' exchange + symbol, built a day
    at a time (see the module docstring). With `horizon`, the frame carries the label column
    `fwd_return_<h>` and only labelled rows, thinned by `stride` (None: `auto_stride`).
    `on_day(done, total)` reports progress."""
    started = time.perf_counter()
    plan = plan_dataset(settings, start, end, features=features, horizon=horizon,
                        stride=stride, budget_bytes=budget_bytes)
    lake = settings.lake_dir
    stride_ms = plan.stride * settings.cadence_ms if plan.stride > 1 else None
    report = DatasetReport(partitions=[k.relpath(TABLE) for k in plan.keys], stride=plan.stride,
                           features=len(feature_columns(features)),
                           estimated_bytes=plan.estimated_bytes, budget_bytes=plan.budget_bytes)
    chunks: list[pl.DataFrame] = []
    current = read_label_inputs(lake, plan.keys[0]) if horizon else None
    for i, key in enumerate(plan.keys):
        nxt = plan.keys[i + 1] if i + 1 < len(plan.keys) else None
        adjacent = nxt is not None and nxt.day == key.day + dt.timedelta(days=1)
        following = read_label_inputs(lake, nxt) if horizon and nxt is not None else None
        day = day_rows(lake, key, features=features, horizon=horizon, stride_ms=stride_ms,
                       label_inputs=current,
                       next_label_inputs=following if adjacent else None)
        current = following
        if day is None or day.frame.height == 0:
            continue
        chunks.append(day.frame)
        report.rows_read += day.rows_read
        report.unlabelled += day.unlabelled
        report.rows_kept += day.frame.height
        report.frame_bytes += int(day.frame.estimated_size())
        if report.frame_bytes > plan.budget_bytes:  # the footers lied: stop before the OS does
            raise MemoryBudgetError(
                f"training rows reached {_gb(report.frame_bytes)} after {i + 1} of "
                f"{len(plan.keys)} day(s), over the budget {_gb(plan.budget_bytes)}"
            )
        if on_day is not None:
            on_day(i + 1, len(plan.keys))
    if not chunks:
        raise DatasetError(f"the {TABLE} partitions between {start} and {end} hold no rows")
    # Days are concatenated without a copy (one chunk per day); rows are in time order.
    frame = pl.concat(chunks, how="vertical", rechunk=False)
    if not frame.get_column("timestamp").is_sorted():
        raise DatasetError(f"{TABLE} rows are not in time order across the range's partitions")
    report.seconds = round(time.perf_counter() - started, 3)
    return frame, report


def _check_columns(pf, needed: list[str], key) -> None:
    names = set(pf.schema_arrow.names)
    missing = [c for c in needed if c not in names]
    if missing:
        raise DatasetError(
            f"{key.relpath(TABLE)} lacks column(s) {missing[:5]} needed for training"
        )


# ---- the feature matrix, gathered on demand ---------------------------------------------------

class FeatureMatrix:
    """A read-only [rows, features] view of a polars frame's feature columns.

    Indexing (`m[rows]`, `m[rows, cols]`, `m[np.ix_(rows, cols)]`, slices, boolean masks)
    gathers just those cells into a new C-ordered numpy array (float32 when every feature
    column is float32, else float64; null -> NaN), column by column, so the full matrix is
    never a second copy of the frame. `np.asarray(m)` materializes everything (avoid it on
    large frames)."""

    def __init__(self, frame: pl.DataFrame, features: list[str]):
        self._columns = [frame.get_column(f) for f in features]
        self.features = list(features)
        floats32 = all(c.dtype == pl.Float32 for c in self._columns)
        self.dtype = np.dtype(np.float32 if floats32 else np.float64)
        self.shape = (frame.height, len(features))
        self.ndim = 2
        # Zero-copy numpy views of each column's chunks when every column allows them (the
        # frames models.dataset builds: float32, NaN not null, one chunk per day): gathers
        # then index numpy directly and allocate nothing but their result.
        self._views = self._chunk_views()

    def _chunk_views(self) -> tuple[list[list[np.ndarray]], np.ndarray] | None:
        views = []
        try:
            for column in self._columns:
                if column.dtype != (pl.Float32 if self.dtype == np.float32 else pl.Float64):
                    return None
                views.append([chunk.to_numpy(allow_copy=False) for chunk in column.get_chunks()])
        except (RuntimeError, ValueError, TypeError):
            return None  # nulls or another layout: gather through polars
        lengths = [[v.size for v in col] for col in views]
        if any(lens != lengths[0] for lens in lengths):
            return None
        starts = np.concatenate([[0], np.cumsum(lengths[0])]) if lengths else np.zeros(1, int)
        return views, starts

    def _take_views(self, r: np.ndarray, c: list[int]) -> np.ndarray:
        views, starts = self._views
        out = np.empty((r.size, len(c)), dtype=self.dtype)
        chunk = np.searchsorted(starts, r, side="right") - 1
        for k in np.unique(chunk):
            at = np.flatnonzero(chunk == k) if len(starts) > 2 else slice(None)
            local = r[at] - starts[k]
            for j, col in enumerate(c):
                out[at, j] = views[col][k][local]
        return out

    def __len__(self) -> int:
        return self.shape[0]

    def _rows(self, rows) -> np.ndarray | slice:
        if isinstance(rows, slice):
            return rows
        if isinstance(rows, int | np.integer):
            return np.asarray([rows], dtype=np.int64)
        arr = np.asarray(rows)
        if arr.dtype == bool:
            return np.flatnonzero(arr)
        return arr.reshape(-1).astype(np.int64, copy=False)

    def _cols(self, cols) -> list[int]:
        if cols is None or (isinstance(cols, slice) and cols == slice(None)):
            return list(range(self.shape[1]))
        if isinstance(cols, slice):
            return list(range(self.shape[1]))[cols]
        if isinstance(cols, int | np.integer):
            return [int(cols)]
        return [int(c) for c in np.asarray(cols).reshape(-1)]

    def take(self, rows, cols=None) -> np.ndarray:
        r = self._rows(rows)
        c = self._cols(cols)
        if self._views is not None:
            if isinstance(r, slice):
                r = np.arange(self.shape[0], dtype=np.int64)[r]
            if r.size and (r.min() < -self.shape[0] or r.max() >= self.shape[0]):
                raise IndexError(f"row index out of range for {self.shape[0]} rows")
            return self._take_views(np.where(r < 0, r + self.shape[0], r), c)
        n = len(range(self.shape[0])[r]) if isinstance(r, slice) else r.size
        out = np.empty((n, len(c)), dtype=self.dtype)
        for j, col in enumerate(c):
            series = self._columns[col]
            part = series.slice(*_slice_bounds(r, self.shape[0])) if isinstance(r, slice) \
                else series.gather(r)
            if isinstance(r, slice) and r.step not in (None, 1):
                part = part.gather_every(r.step)
            out[:, j] = part.cast(pl.Float64 if self.dtype == np.float64 else pl.Float32) \
                .to_numpy(allow_copy=True)
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            rows, cols = key
            if isinstance(rows, np.ndarray) and rows.ndim == 2:  # np.ix_ output
                rows = rows.reshape(-1)
            return self.take(rows, cols)
        return self.take(key)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.take(slice(None))
        return out if dtype is None else out.astype(dtype, copy=False)


def _slice_bounds(s: slice, n: int) -> tuple[int, int]:
    start, stop, _ = s.indices(n)
    return start, max(0, stop - start)


PREDICT_CHUNK = 262_144  # rows gathered per prediction call (~100 MB of float32 features)


def predict_rows(predict, x, rows: np.ndarray, cols: list[int] | None = None) -> np.ndarray:
    """`predict(x[rows, cols])`, gathered and predicted PREDICT_CHUNK rows at a time, so
    scoring a week's tail never holds its whole feature block (LightGBM predicts row by row:
    the result is the same)."""
    rows = np.asarray(rows)
    if rows.size <= PREDICT_CHUNK:
        return predict(x[np.ix_(rows, cols)] if cols is not None else x[rows])
    parts = [predict(x[np.ix_(chunk, cols)] if cols is not None else x[chunk])
             for chunk in np.array_split(rows, -(-rows.size // PREDICT_CHUNK))]
    return np.concatenate(parts, axis=0)


def lgb_rows(x, rows: np.ndarray, cols: list[int] | None = None):
    """What `lightgbm.Dataset` should be built from for `x[rows, cols]`: the gathered array
    when it is small, else a `lightgbm.Sequence` that gathers SEQUENCE_BATCH rows at a time,
    so the fit rows never exist as one more float copy next to LightGBM's binned one."""
    if not isinstance(x, FeatureMatrix) or rows.size <= 4 * SEQUENCE_BATCH:
        if cols is None:
            return x[rows]
        return x[np.ix_(rows, cols)]
    return RowSequence(x, rows, cols)


class RowSequence(lgb.Sequence):
    """`lightgbm.Sequence` over chosen rows (and columns) of a FeatureMatrix.

    LightGBM reads it twice: single rows for its bin sample (in increasing order), then
    consecutive batches. Single rows come from a cached block of `batch_size` rows, so the
    sample costs one pass over the data instead of one gather per row."""

    batch_size = SEQUENCE_BATCH

    def __init__(self, matrix: FeatureMatrix, rows: np.ndarray, cols: list[int] | None):
        self.matrix, self.rows, self.cols = matrix, np.asarray(rows, dtype=np.int64), cols
        self._block_start, self._block = -1, None

    def __len__(self) -> int:
        return int(self.rows.size)

    def __getitem__(self, idx):
        if isinstance(idx, int | np.integer):
            i = int(idx)
            start = self._block_start
            if self._block is None or not start <= i < start + len(self._block):
                start = (i // self.batch_size) * self.batch_size
                self._block = self.matrix.take(self.rows[start:start + self.batch_size],
                                               self.cols)
                self._block_start = start
            return self._block[i - start].astype(np.float64)  # LightGBM samples in double
        if isinstance(idx, slice):
            return self.matrix.take(self.rows[idx], self.cols)
        return self.matrix.take(self.rows[np.asarray(idx, dtype=np.int64)], self.cols)
