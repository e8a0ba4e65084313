"""Is an IC real? Block-bootstrap tests sized for overlapping labels.

A forward return over `h` on a 100 ms grid overlaps the next `h / 100 ms` rows' returns, so n
rows hold about `n / h_rows` independent returns and a naive standard error is far too small.
Every test here resamples whole blocks of rows with `arch`'s stationary bootstrap (Politis &
Romano: blocks of geometric length), whose mean block length is at least the label horizon in
rows (`block_rows`), so the resampled series keeps the overlap structure.

- `ic_test(signal, realized)`: Pearson IC, its percentile confidence interval and the one-sided
  p-value of H0 "IC <= 0" (bootstrap centred on the estimate: p = P*(IC* - IC >= IC)).
- `ic_difference_test(a, b, realized)`: the paired difference IC(a) - IC(b) on the same rows
  and the same resampled blocks, with its interval and the p-value of H0 "difference <= 0".

An undefined IC (a constant signal: the model found nothing) is reported as IC 0 with p = 1,
never as a number it does not have.
"""

from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_ALPHA = 0.05
DEFAULT_REPS = 500
# Mean block length = BLOCK_FACTOR x horizon rows: under H0 the product signal x return
# decorrelates after one horizon; twice that leaves room for persistent features.
BLOCK_FACTOR = 2
MIN_ROWS = 30


@dataclass(frozen=True)
class ICTest:
    ic: float | None  # None: undefined (constant input or too few rows)
    ci_low: float | None
    ci_high: float | None
    p_value: float  # one-sided, H0: IC <= 0 (1.0 when untestable)
    n: int
    n_independent: float  # rows / horizon rows: what the test really has
    block_rows: int
    reps: int

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def ci(self) -> list[float | None]:
        return [self.ci_low, self.ci_high]


@dataclass(frozen=True)
class DifferenceTest:
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float  # one-sided, H0: IC(a) - IC(b) <= 0
    n: int
    block_rows: int
    reps: int

    def as_dict(self) -> dict:
        return asdict(self)


def block_rows_for(horizon_rows: int, factor: int = BLOCK_FACTOR) -> int:
    """Mean bootstrap block length: at least the label horizon in rows."""
    return max(int(factor) * max(int(horizon_rows), 1), 2)


def _corr_many(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.size < 3:
        return None
    sx, sy = x.std(), y.std()
    if not (sx > 0 and sy > 0) or not np.isfinite(sx * sy):
        return None
    return float(((x - x.mean()) * (y - y.mean())).mean() / (sx * sy))


def _clean(*arrays: np.ndarray) -> list[np.ndarray]:
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    ok = np.ones(arrays[0].shape[0], dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a)
    return [a[ok] for a in arrays]


def _indices(n: int, block_rows: int, reps: int, seed: int):
    from arch.bootstrap import StationaryBootstrap

    bs = StationaryBootstrap(block_rows, np.empty(n), seed=seed)
    for _ in range(reps):
        yield bs.update_indices()


def _p_upper(estimate: float, draws: np.ndarray) -> float:
    """One-sided p of H0 'true value <= 0' from bootstrap draws centred on the estimate."""
    return float((1 + np.sum(draws - estimate >= estimate)) / (1 + draws.size))


def ic_test(
    signal: np.ndarray, realized: np.ndarray, horizon_rows: int, *, reps: int = DEFAULT_REPS,
    seed: int = 0, block_rows: int | None = None, level: float = 0.95,
) -> ICTest:
    """IC of `signal` vs `realized` (rows in time order) with its block-bootstrap interval
    and one-sided p-value; non-finite pairs are left out."""
    x, y = _clean(signal, realized)
    n = int(x.size)
    block = block_rows or block_rows_for(horizon_rows)
    n_ind = n / max(int(horizon_rows), 1)
    ic = _corr_many(x, y) if n >= MIN_ROWS else None
    if ic is None:
        return ICTest(None, None, None, 1.0, n, n_ind, block, 0)
    draws = []
    for idx in _indices(n, block, reps, seed):
        value = _corr_many(x[idx], y[idx])
        draws.append(0.0 if value is None else value)
    d = np.asarray(draws)
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    return ICTest(ic, float(lo), float(hi), _p_upper(ic, d), n, n_ind, block, reps)


def ic_difference_test(
    signal_a: np.ndarray, signal_b: np.ndarray, realized: np.ndarray, horizon_rows: int, *,
    reps: int = DEFAULT_REPS, seed: int = 0, block_rows: int | None = None, level: float = 0.95,
) -> DifferenceTest:
    """IC(a) - IC(b) on the same rows, both resampled with the same blocks."""
    a, b, y = _clean(signal_a, signal_b, realized)
    n = int(y.size)
    block = block_rows or block_rows_for(horizon_rows)
    if n < MIN_ROWS:
        return DifferenceTest(None, None, None, 1.0, n, block, 0)
    ic_a, ic_b = _corr_many(a, y) or 0.0, _corr_many(b, y) or 0.0
    diff = ic_a - ic_b
    draws = np.empty(reps)
    for k, idx in enumerate(_indices(n, block, reps, seed)):
        yy = y[idx]
        draws[k] = (_corr_many(a[idx], yy) or 0.0) - (_corr_many(b[idx], yy) or 0.0)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return DifferenceTest(diff, float(lo), float(hi), _p_upper(diff, draws), n, block, reps)
