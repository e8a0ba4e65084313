"""feature_stats: counts, rates and moments on hand-made frames, plus invariants."""

import itertools
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trade_pipeline.monitoring.feature_stats import (
    QUANTILE_COLUMNS,
    QUANTILES,
    STATS_SCHEMA,
    feature_stats,
    summarize,
)


def test_counts_rates_and_moments_by_hand():
    df = pl.DataFrame(
        {
            "timestamp": [1, 2, 3, 4, 5],
            "session_id": [1, 1, 1, 1, 1],
            "a": [1.0, 2.0, None, math.inf, 3.0],
            "b": [float("nan"), 1.0, 1.0, 1.0, 1.0],
        }
    )
    stats = feature_stats(df)
    assert stats.schema == pl.Schema(STATS_SCHEMA)
    assert stats["feature"].to_list() == ["a", "b"]  # key columns excluded
    a = stats.row(0, named=True)
    assert (a["rows"], a["count"], a["nulls"], a["infs"], a["nans"]) == (5, 3, 1, 1, 0)
    assert a["null_rate"] == pytest.approx(0.2) and a["inf_rate"] == pytest.approx(0.2)
    # Moments over the finite values only: 1, 2, 3.
    assert a["mean"] == pytest.approx(2.0) and a["std"] == pytest.approx(1.0)
    assert (a["min"], a["q50"], a["max"]) == (1.0, 2.0, 3.0)
    b = stats.row(1, named=True)
    assert (b["nans"], b["count"], b["std"]) == (1, 4, 0.0)


def test_all_null_feature_has_null_statistics_not_zero():
    df = pl.DataFrame({"x": pl.Series([None, None], dtype=pl.Float64)})
    row = feature_stats(df).row(0, named=True)
    assert row["null_rate"] == 1.0
    assert row["mean"] is None and row["std"] is None and row["q50"] is None


def test_empty_frame_rates_are_null():
    row = feature_stats(pl.DataFrame(schema={"x": pl.Float64})).row(0, named=True)
    assert row["rows"] == 0 and row["null_rate"] is None


def test_missing_feature_is_a_clear_error():
    with pytest.raises(KeyError, match="not in the frame"):
        feature_stats(pl.DataFrame({"x": [1.0]}), ["x", "nope"])


def test_summary_names_the_worst_features():
    df = pl.DataFrame({"x": [1.0, None, None, 2.0], "y": [1.0, math.inf, 2.0, 3.0], "z": [1.0] * 4})
    summary = summarize(feature_stats(df))
    assert summary["worst_null_rates"] == [{"feature": "x", "null_rate": 0.5}]
    assert summary["features_with_inf_or_nan"] == ["y"]
    assert summary["null_rate"] == pytest.approx(2 / 12)
    assert summary["inf_rate"] == pytest.approx(1 / 12)


finite_or_not = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=-1e6, max_value=1e6),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite_or_not, min_size=1, max_size=60))
def test_invariants(values):
    row = feature_stats(pl.DataFrame({"x": pl.Series(values, dtype=pl.Float64)})).row(0, named=True)
    assert row["count"] + row["nulls"] + row["nans"] + row["infs"] == row["rows"] == len(values)
    finite = np.array([v for v in values if v is not None and math.isfinite(v)])
    if finite.size:
        qs = [row[c] for c in QUANTILE_COLUMNS]
        assert row["min"] <= qs[0] and qs[-1] <= row["max"]
        assert all(q1 <= q2 + 1e-9 * (1 + abs(q2)) for q1, q2 in itertools.pairwise(qs))
        assert row["mean"] == pytest.approx(float(finite.mean()), rel=1e-9, abs=1e-6)
        expected = np.quantile(finite, QUANTILES)  # numpy's default: linear interpolation
        assert qs == pytest.approx(list(expected), rel=1e-9, abs=1e-9)
    else:
        assert row["mean"] is None
