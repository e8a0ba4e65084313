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
"""

import numpy as np
import polars as pl

from trade_pipeline.errors import TradePipelineError

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
