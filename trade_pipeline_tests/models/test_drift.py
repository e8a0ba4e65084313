"""PSI: quantile bins of the expected sample, epsilon floor, clear errors."""

import numpy as np
import polars as pl
import pytest

from trade_pipeline.monitoring.drift import EPSILON, DriftError, feature_psi, psi


def test_same_distribution_is_near_zero_and_shift_is_large() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20_000), rng.normal(size=20_000)
    assert psi(a, b) < 0.01
    assert psi(a, b + 1.0) > 0.25
    assert psi(a, a) == pytest.approx(0.0, abs=1e-12)


def test_known_value_and_epsilon() -> None:
    expected = np.repeat(np.arange(10.0), 100)  # quantile edges split the 10 values
    actual = np.repeat(np.arange(10.0), 100)[:500]  # only values 0..4
    e, a = np.full(10, 0.1), np.array([0.2] * 5 + [EPSILON] * 5)
    want = float(np.sum((a - e) * np.log(a / e)))
    assert psi(expected, actual) == pytest.approx(want, rel=1e-9)


def test_nonfinite_values_dropped_and_empty_sample_refused() -> None:
    assert psi(np.array([1.0, 2, 3, np.nan] * 50), np.array([1.0, 2, 3, np.inf] * 50)) < 1e-9
    with pytest.raises(DriftError):
        psi(np.array([np.nan, np.nan]), np.array([1.0]))


def test_feature_psi_names_the_feature() -> None:
    rng = np.random.default_rng(1)
    train = pl.DataFrame({"x": rng.normal(size=1000), "y": rng.normal(size=1000)})
    latest = pl.DataFrame({"x": rng.normal(size=1000) + 2, "y": rng.normal(size=1000)})
    out = feature_psi(train, latest, ["x", "y"])
    assert out["x"] > 0.25 > out["y"]
    with pytest.raises(DriftError, match="'z'"):
        feature_psi(train, latest, ["z"])
