"""Block-bootstrap IC tests: exact resample sums, calibration under the null, power."""

import numpy as np
import pytest

from trade_pipeline.models import significance as sig


def _overlapping(rng, n: int, h: int) -> np.ndarray:
    """Forward returns over h rows of an iid walk: consecutive labels overlap h-fold."""
    steps = rng.normal(size=n + h)
    return np.convolve(steps, np.ones(h), "valid")[1:n + 1]


def test_resample_sums_equal_the_direct_computation() -> None:
    from arch.bootstrap import StationaryBootstrap

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=5000), rng.normal(size=5000)
    moments = sig._Moments([x, y])
    bs = StationaryBootstrap(40, np.empty(5000), seed=3)
    for _ in range(5):
        idx = bs.update_indices()
        assert moments.corr(moments.sums(idx), 0, 1) == pytest.approx(
            sig.corr(x[idx], y[idx]), rel=1e-9)


def test_null_p_values_are_calibrated_with_overlapping_labels() -> None:
    """A persistent signal with no information, 10-row overlapping returns: about 5 % of
    p-values below 0.05 (40 runs: at most 6 expected by chance at 99.9 %)."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(7)
    p = []
    for k in range(40):
        x = lfilter([1.0], [1.0, -0.99], rng.normal(size=20_000))
        p.append(sig.ic_test(x, _overlapping(rng, 20_000, 10), 10, reps=150, seed=k).p_value)
    assert np.mean(np.array(p) < 0.05) <= 0.15
    assert 0.2 < np.mean(p) < 0.8


def test_a_real_edge_is_significant_and_its_interval_covers_it() -> None:
    rng = np.random.default_rng(3)
    r = _overlapping(rng, 30_000, 10)
    x = r + rng.normal(scale=8.0, size=r.size)  # IC about 0.37
    t = sig.ic_test(x, r, 10, reps=200)
    assert t.p_value < 0.01 and t.ci_low < t.ic < t.ci_high and t.ci_low > 0.3
    assert t.n_independent == pytest.approx(3000) and t.block_rows == 10 * sig.BLOCK_FACTOR
    tests, diffs = sig.joint_tests({"good": x, "noise": rng.normal(size=r.size)}, r, 10,
                                   pairs=(("good", "noise"),), reps=200)
    assert diffs[("good", "noise")].p_value < 0.01
    assert tests["noise"].p_value > 0.01


def test_undefined_ic_is_never_a_number() -> None:
    t = sig.ic_test(np.zeros(1000), np.ones(1000), 10)
    assert t.ic is None and t.p_value == 1.0
    assert sig.ic_test(np.ones(10), np.ones(10), 1).ic is None  # too few rows
    nan_rows = np.full(100, np.nan)
    assert sig.ic_test(nan_rows, nan_rows, 1).n == 0


def test_mean_of_overlapping_values_is_calibrated_under_the_null() -> None:
    """Markout-like series: zero-mean values overlapping 20-fold (each shares 19/20 of its
    neighbour's moves). With blocks sized for the overlap about 5 % of p-values fall below
    0.05, and the 95 % interval covers the true mean 0 about 95 % of the time; iid-sized
    blocks (1) would be far too confident."""
    rng = np.random.default_rng(11)
    p, covered, naive_covered = [], [], []
    for k in range(40):
        v = _overlapping(rng, 4000, 20)
        t = sig.mean_test(v, sig.block_rows_for(20), reps=200, seed=k)
        p.append(t.p_value)
        covered.append(t.ci_low <= 0.0 <= t.ci_high)
        naive = sig.mean_test(v, 1, reps=200, seed=k)
        naive_covered.append(naive.ci_low <= 0.0 <= naive.ci_high)
    assert np.mean(np.array(p) < 0.05) <= 0.15
    assert np.mean(covered) >= 0.85
    assert np.mean(naive_covered) < 0.6  # what sizing the blocks is for


def test_mean_test_detects_a_real_mean_and_refuses_too_few_blocks() -> None:
    rng = np.random.default_rng(4)
    v = 0.5 + _overlapping(rng, 5000, 5) / np.sqrt(5)
    t = sig.mean_test(v, sig.block_rows_for(5), reps=300)
    assert t.p_value < 0.01 and t.ci_low < t.mean < t.ci_high and t.ci_low > 0.3
    short = sig.mean_test(v[:400], 50)  # 8 blocks: the interval would be too narrow
    assert short.mean == pytest.approx(float(v[:400].mean()))
    assert (short.ci_low, short.ci_high, short.p_value) == (None, None, 1.0)
    assert sig.mean_test(np.array([np.nan, 1.0]), 1).n == 1
