"""The cost-aware decision rule: costs from ExecutionConfig, calibration, stored round trip."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trade_pipeline.market.execution_config import ExecutionConfig
from trade_pipeline.models.decision import (
    Calibration,
    DecisionError,
    DecisionRule,
    fit_rule,
    horizon_trades,
    load_execution,
)


def test_rule_prices_a_taker_round_trip_from_the_execution_config() -> None:
    exe = ExecutionConfig(taker_fee=0.0004)
    rule = fit_rule("regression", exe, np.array([1e-5, 3e-5, np.nan]), margin=2e-4)
    assert rule.round_trip_cost == pytest.approx(2 * 0.0004 + 2e-5)
    assert rule.entry_threshold == pytest.approx(rule.round_trip_cost + 2e-4)
    assert DecisionRule.from_dict(rule.to_dict()) == rule
    rule.check_execution(exe)
    with pytest.raises(DecisionError, match="taker fee"):
        rule.check_execution(ExecutionConfig())
    tampered = {**rule.to_dict(), "entry_threshold": 1e-9}
    with pytest.raises(DecisionError, match="does not match"):
        DecisionRule.from_dict(tampered)
    with pytest.raises(DecisionError):
        DecisionRule(task="regression", taker_fee=0.0, spread_cost=-1.0)
    with pytest.raises(DecisionError, match="calibration"):
        DecisionRule(task="classification", taker_fee=0.0, spread_cost=0.0)


@settings(max_examples=30, deadline=None)
@given(slope=st.floats(-2, 2), seed=st.integers(0, 1000))
def test_calibration_is_monotone_and_bounded_by_the_realized_means(slope, seed) -> None:
    rng = np.random.default_rng(seed)
    score = rng.uniform(-1, 1, 3000)
    realized = 1e-4 * slope * score + rng.normal(0, 1e-4, 3000)
    cal = Calibration.fit(score, realized)
    assert list(cal.values) == sorted(cal.values)  # monotone (pooled adjacent violators)
    assert min(cal.values) >= realized.min() and max(cal.values) <= realized.max()
    grid = np.linspace(-1.5, 1.5, 50)
    assert np.array_equal(cal(grid), np.array([cal.scalar(g) for g in grid]))
    assert np.isnan(cal(np.array([np.nan]))[0]) and np.isnan(cal.scalar(float("nan")))
    # the counts-weighted mean of the fitted values is the realized mean (PAVA keeps it)
    which = np.searchsorted(np.asarray(cal.edges), score, side="right")
    assert np.mean(np.asarray(cal.values)[which]) == pytest.approx(realized.mean(), abs=1e-12)


def test_horizon_trades_stays_flat_below_the_cost() -> None:
    ts = np.arange(20) * 1_000_000
    realized = np.full(20, 0.002)
    exe = ExecutionConfig()
    flat = horizon_trades(ts, np.full(20, 0.0005), realized, np.zeros(20), "1s", exe, 0.0011)
    assert flat["strategy_trades"] == 0 and flat["strategy_return"] == 0.0
    busy = horizon_trades(ts, np.full(20, 0.003), realized, np.zeros(20), "1s", exe, 0.0011)
    assert busy["strategy_trades"] == 20
    assert busy["strategy_return"] == pytest.approx(20 * (0.002 - 0.0011))


def test_execution_config_from_the_trading_toml(tmp_path) -> None:
    path = tmp_path / "exec.toml"
    path.write_text("taker_fee = 0.0003\n[strategy]\nentry_threshold = 0.01\n")
    assert load_execution(str(path)).taker_fee == 0.0003
    (tmp_path / "bad.toml").write_text("[execution]\nfee = 1\n")
    from trade_pipeline.settings import SettingsError

    with pytest.raises(SettingsError, match="unknown keys"):
        load_execution(str(tmp_path / "bad.toml"))
