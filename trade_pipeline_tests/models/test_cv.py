"""Purged walk-forward CV: no label window crosses a split; the tail stays unseen."""

import datetime as dt
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trade_pipeline.models.cv import CVError, final_fit_valid, make_split


def _check_no_overlap(ts: np.ndarray, train: np.ndarray, test: np.ndarray, h_us: int) -> None:
    if len(train) and len(test):
        # every training label window [t, t + h] ends strictly before the first test row
        assert ts[train].max() + h_us < ts[test].min()


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 30), min_size=600, max_size=900),
    horizon_ms=st.sampled_from([100, 500, 1000, 5000]),
    extra_embargo_ms=st.sampled_from([0, 200, 3000]),
    n_folds=st.integers(1, 4),
)
def test_purged_walk_forward_never_leaks(gaps, horizon_ms, extra_embargo_ms, n_folds) -> None:
    ts = np.cumsum(np.array(gaps) * 100_000)  # µs, irregular 100 ms multiples
    h = dt.timedelta(milliseconds=horizon_ms)
    emb = h + dt.timedelta(milliseconds=extra_embargo_ms)
    try:
        split = make_split(ts, h, n_folds=n_folds, embargo=emb, min_rows=10)
    except CVError:
        return  # too few rows after purging: refusing is the correct outcome
    h_us = horizon_ms * 1000
    emb_us = int(emb / dt.timedelta(microseconds=1))
    assert split.embargo >= h
    assert ts[split.search].max() + emb_us < ts[split.tail].min()
    _check_no_overlap(ts, split.search, split.tail, h_us)
    for fold in split.folds:
        assert not set(fold.test) & set(split.tail)
        _check_no_overlap(ts, fold.fit, fold.valid, h_us)
        _check_no_overlap(ts, fold.valid, fold.test, h_us)
        _check_no_overlap(ts, fold.fit, fold.test, h_us)
        assert ts[fold.valid].max() + emb_us < ts[fold.test].min()
        assert set(fold.fit) <= set(split.search) and set(fold.test) <= set(split.search)
    fit, valid = final_fit_valid(ts, split.search, h, embargo=emb)
    _check_no_overlap(ts, fit, valid, h_us)
    assert not set(valid) & set(split.tail)


def test_embargo_shorter_than_horizon_is_refused() -> None:
    ts = np.arange(1000) * 100_000
    with pytest.raises(CVError, match="shorter than the horizon"):
        make_split(ts, "5s", embargo=dt.timedelta(seconds=1))


def test_unsorted_or_tiny_input_is_refused() -> None:
    with pytest.raises(CVError, match="sorted"):
        make_split(np.array([3, 2, 1] * 100), "1s")
    with pytest.raises(CVError):
        make_split(np.arange(40) * 100_000, "1s")


def test_folds_walk_forward() -> None:
    ts = np.arange(5000) * 100_000
    split = make_split(ts, "1s", n_folds=3)
    tests = [f.test for f in split.folds]
    assert all(a.max() < b.min() for a, b in itertools.pairwise(tests))
    assert all(len(f.fit) < len(g.fit) for f, g in zip(split.folds, split.folds[1:], strict=False))
    assert split.tail.min() == 4000
