"""Metrics: max drawdown in one pass against brute force, Sharpe on 1-minute returns by hand."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trade_pipeline.trading.accounting import Account
from trade_pipeline.trading.metrics import compute_metrics, max_drawdown, minute_returns, sharpe_1m


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(1.0, 1e6), min_size=1, max_size=200))
def test_max_drawdown_matches_brute_force(values):
    eq = np.asarray(values)
    brute = max(((eq[i] - eq[j]) / eq[i] for i in range(len(eq)) for j in range(i, len(eq))), default=0.0)
    frac, amount = max_drawdown(eq)
    assert frac == pytest.approx(max(brute, 0.0), abs=1e-12)
    assert amount >= 0


def test_sharpe_on_minute_closes_by_hand():
    m = 60_000_000
    # Three minutes with data, several rows each: closes 101, 102.01, 100.99 after 100 initial.
    ts = np.array([0, 10, m + 5, m + 6, 2 * m + 1]) * 1 + 10 * m
    eq = np.array([100.5, 101.0, 101.5, 102.01, 100.99])
    r = minute_returns(ts, eq, 100.0)
    assert r == pytest.approx([0.01, 0.01, 100.99 / 102.01 - 1])
    expected = np.mean(r) / np.std(r, ddof=1) * math.sqrt(365 * 24 * 60)
    assert sharpe_1m(ts, eq, 100.0) == pytest.approx(expected)
    assert sharpe_1m(ts[:1], eq[:1], 100.0) is None  # one return: undefined, not 0


def test_hit_rate_profit_factor_turnover():
    acc = Account(1000.0)
    acc.apply_fill(0, 1, 1.0, 100.0, 0.0)
    acc.apply_fill(1, -1, 1.0, 110.0, 0.0)  # +10
    acc.apply_fill(2, -1, 1.0, 110.0, 0.0)
    acc.apply_fill(3, 1, 1.0, 115.0, 0.0)  # -5
    acc.apply_fill(4, 1, 1.0, 100.0, 0.0)
    acc.apply_fill(5, -1, 1.0, 120.0, 0.0)  # +20
    m = compute_metrics(np.arange(6), np.array([1000, 1010, 1010, 1005, 1005, 1025.0]), acc, 6)
    assert m["n_round_trips"] == 3 and m["hit_rate"] == pytest.approx(2 / 3)
    assert m["profit_factor"] == pytest.approx(30 / 5)
    assert m["turnover"] == pytest.approx((100 + 110 + 110 + 115 + 100 + 120) / 1000)
    assert m["total_return"] == pytest.approx(0.025)
    assert m["max_drawdown"] == pytest.approx(5 / 1010)
