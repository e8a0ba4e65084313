"""Purged walk-forward cross-validation on time-ordered rows.

Every row `i` has a label window `[t_i, t_i + h]` (see `labels.py`). Splits are made on time:

- The **held-out tail** is the last `tail_fraction` of the rows. The search (Optuna) sees only
  the rows before it, and only those whose label window ends before the tail starts minus the
  embargo, so no label of the search region peeks into the tail.
- **Walk-forward folds** cut the search region into `n_folds + 1` consecutive blocks; fold k
  tests on block k+1 and trains on everything before it (expanding window).
- **Purge + embargo:** a training row is kept only if `t_i < T_test_start - embargo`, with
  `embargo >= h` (enforced). Its label window `[t_i, t_i + h]` then ends strictly before the
  first test row: no label window crosses a split.
- **Inner validation** (early stopping) is the last `inner_valid_fraction` of each training
  set, separated from the fit rows by the same purge + embargo. The test block is never used
  for early stopping or for any statistic.

Indices refer to the rows of the time-sorted frame the caller passes.
"""

import datetime as dt
from dataclasses import dataclass

import numpy as np

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.models.labels import parse_horizon


class CVError(TradePipelineError, ValueError):
    """The data cannot be split as asked (too few rows, unsorted times, ...)."""


@dataclass(frozen=True)
class Fold:
    fit: np.ndarray  # rows the booster is fitted on
    valid: np.ndarray  # inner validation slice (early stopping), after fit + embargo
    test: np.ndarray  # the fold's test block, after valid + embargo


@dataclass(frozen=True)
class Split:
    search: np.ndarray  # rows the search may use (purged before the tail)
    tail: np.ndarray  # the held-out tail
    folds: list[Fold]
    embargo: dt.timedelta


def _as_us(timestamps) -> np.ndarray:
    arr = np.asarray(timestamps)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[us]").astype(np.int64)
    return arr.astype(np.int64)


def _before(ts_us: np.ndarray, idx: np.ndarray, start_us: int, gap_us: int) -> np.ndarray:
    """The rows of `idx` whose time is < start - gap (so a label of length <= gap ends before
    `start`)."""
    return idx[ts_us[idx] < start_us - gap_us]


def resolve_embargo(horizon: str | dt.timedelta, embargo: dt.timedelta | None) -> dt.timedelta:
    h = parse_horizon(horizon)
    if embargo is None:
        return h
    if embargo < h:
        raise CVError(f"embargo {embargo} is shorter than the horizon {h}: labels would leak")
    return embargo


def make_split(
    timestamps,
    horizon: str | dt.timedelta,
    n_folds: int = 3,
    tail_fraction: float = 0.2,
    inner_valid_fraction: float = 0.15,
    embargo: dt.timedelta | None = None,
    min_rows: int = 50,
) -> Split:
    """Tail + walk-forward folds over time-sorted `timestamps` (datetime64 or int µs)."""
    ts = _as_us(timestamps)
    n = len(ts)
    if n_folds < 1:
        raise CVError(f"n_folds must be >= 1, got {n_folds}")
    if not 0 < tail_fraction < 1 or not 0 < inner_valid_fraction < 1:
        raise CVError("tail_fraction and inner_valid_fraction must be in (0, 1)")
    if n and np.any(np.diff(ts) < 0):
        raise CVError("timestamps must be sorted ascending")
    emb = resolve_embargo(horizon, embargo)
    gap = int(emb / dt.timedelta(microseconds=1))

    all_idx = np.arange(n)
    tail_start = int(n * (1 - tail_fraction))
    tail = all_idx[tail_start:]
    if len(tail) < min_rows:
        raise CVError(f"held-out tail has {len(tail)} rows (< {min_rows}); need more data")
    search = _before(ts, all_idx[:tail_start], int(ts[tail_start]), gap)

    folds = folds_over(ts, search, emb, n_folds, inner_valid_fraction, min_rows)
    return Split(search=search, tail=tail, folds=folds, embargo=emb)


def folds_over(
    ts: np.ndarray, search: np.ndarray, embargo: dt.timedelta, n_folds: int,
    inner_valid_fraction: float, min_rows: int,
) -> list[Fold]:
    """Walk-forward folds over the time-sorted rows `search` (expanding window, each fold
    purged and embargoed): what the Optuna search scores a parameter set on."""
    gap = int(embargo / dt.timedelta(microseconds=1))
    blocks = np.array_split(search, n_folds + 1)
    folds = []
    for k in range(n_folds):
        test = blocks[k + 1]
        if len(test) < min_rows:
            raise CVError(f"fold {k} test block has {len(test)} rows (< {min_rows})")
        train = _before(ts, np.concatenate(blocks[: k + 1]), int(ts[test[0]]), gap)
        v_start = int(len(train) * (1 - inner_valid_fraction))
        valid = train[v_start:]
        if len(valid) == 0:
            raise CVError(f"fold {k} has no inner validation rows")
        fit = _before(ts, train[:v_start], int(ts[valid[0]]), gap)
        if len(fit) < min_rows or len(valid) < max(1, min_rows // 5):
            raise CVError(
                f"fold {k} has {len(fit)} fit / {len(valid)} validation rows after purging; "
                "need more data or a shorter horizon"
            )
        folds.append(Fold(fit=fit, valid=valid, test=test))
    return folds


def final_fit_valid(
    timestamps, search: np.ndarray, horizon: str | dt.timedelta,
    inner_valid_fraction: float = 0.15, embargo: dt.timedelta | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit / early-stopping rows for the final model: the search region split the same way."""
    ts = _as_us(timestamps)
    gap = int(resolve_embargo(horizon, embargo) / dt.timedelta(microseconds=1))
    v_start = int(len(search) * (1 - inner_valid_fraction))
    valid = search[v_start:]
    if len(valid) == 0:
        raise CVError("no rows left for the final early-stopping slice")
    fit = _before(ts, search[:v_start], int(ts[valid[0]]), gap)
    if len(fit) == 0:
        raise CVError("no rows left to fit the final model after purging")
    return fit, valid
