"""Invariants on random books and sessions (hypothesis)."""

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trade_pipeline.features.batch import compute_features
from trade_pipeline.features.catalog import FEATURE_NAMES
from trade_pipeline_tests.features.books import random_frame

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
IMBALANCES = ["order_book_imbalance", "order_book_imbalance_2", "order_book_imbalance_3",
              "order_book_imbalance_5", "pressure_imbalance", "pressure_imbalance_weighted",
              "book_depth_asymmetry"]


@st.composite
def books(draw, max_rows=160):
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(2, max_rows))
    return random_frame(
        np.random.default_rng(seed), n,
        n_sessions=draw(st.integers(1, 3)),
        step_ms=draw(st.sampled_from([100, 500, 1000])),
        gap_prob=draw(st.sampled_from([0.0, 0.1, 0.5])),
        depth_missing_prob=draw(st.sampled_from([0.0, 0.3])),
    )


@SETTINGS
@given(books())
def test_imbalances_stay_within_unit_interval(snaps):
    f = compute_features(snaps)
    for name in IMBALANCES:
        values = f[name].drop_nulls()
        assert ((values >= -1) & (values <= 1)).all(), name


@SETTINGS
@given(books(max_rows=120), st.data())
def test_no_feature_reads_a_later_row(snaps, data):
    k = data.draw(st.integers(1, snaps.height))
    full = compute_features(snaps).head(k)
    part = compute_features(snaps.head(k))
    # the same rows in the same order through the same kernel: bit-identical
    assert full.equals(part)


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 2))
def test_ofi_sums_telescope_across_adjacent_windows(seed, n_sessions):
    # a gapless 1 s grid: the rows at t - 10 s, t - 20 s ... exist
    snaps = random_frame(np.random.default_rng(seed), 150, n_sessions=n_sessions, step_ms=1000,
                         depth_missing_prob=0.2)
    f = compute_features(snaps).with_row_index("i")
    ts = f["timestamp"].dt.epoch("s").to_list()
    sess = f["session_id"].to_list()
    start = {}
    for t, s in zip(ts, sess, strict=True):
        start.setdefault(s, t)
    at = {(s, t): i for i, (t, s) in enumerate(zip(ts, sess, strict=True))}
    ofi10, ofi30, ofi1m, ofi5m = (f[c].to_list() for c in ("ofi_10s", "ofi_30s", "ofi_1m",
                                                           "ofi_5m"))
    w10, w30 = f["ofi_weighted_10s"].to_list(), f["ofi_weighted_30s"].to_list()
    checked = 0
    for i, (t, s) in enumerate(zip(ts, sess, strict=True)):
        if (s, t - 20) in at:
            j, k = at[(s, t - 10)], at[(s, t - 20)]
            assert np.isclose(ofi30[i], ofi10[i] + ofi10[j] + ofi10[k], rtol=1e-9, atol=1e-9)
            assert np.isclose(w30[i], w10[i] + w10[j] + w10[k], rtol=1e-9, atol=1e-9)
            checked += 1
        if (s, t - 30) in at:
            assert np.isclose(ofi1m[i], ofi30[i] + ofi30[at[(s, t - 30)]], rtol=1e-9, atol=1e-9)
        # within 5 minutes of the session start the 5 m window holds the whole session, so
        # the 10 s window is a difference of two cumulative sums
        if t - start[s] < 300:
            if (s, t - 10) in at:
                assert np.isclose(ofi10[i], ofi5m[i] - ofi5m[at[(s, t - 10)]], rtol=1e-9,
                                  atol=1e-9)
            else:
                assert np.isclose(ofi10[i], ofi5m[i], rtol=1e-9, atol=1e-9)
    assert checked > 0 or snaps.height < 21


def test_every_feature_is_finite_or_null():
    snaps = random_frame(np.random.default_rng(3), 2000, n_sessions=4, gap_prob=0.1,
                         depth_missing_prob=0.3)
    f = compute_features(snaps)
    arr = f.select(FEATURE_NAMES).to_numpy()
    assert np.isfinite(arr[~np.isnan(arr)]).all()
    assert f.select(pl.col(FEATURE_NAMES).is_nan().sum()).sum_horizontal().item() == 0
