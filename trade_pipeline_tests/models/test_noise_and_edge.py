"""What a user must be able to trust, on order books whose truth is known (`synthetic.book_frame`).

- A pure random walk (mid a +/-1-tick iid walk, iid sizes, 400,000 rows): `train` does not
  promote, and the walk-forward out-of-sample IC stays within 4 standard errors of 0
  (standard error 1 / sqrt(n / horizon rows)).
- A planted edge (the next move's probability tilted by a persistent level-1 imbalance, the
  oracle being that imbalance): the model is promoted, its walk-forward IC is at least half
  the oracle's; where the expected move is far below the fees the strategy stays flat and
  loses nothing, where it is above them the strategy trades and earns after costs.

Everything runs through the real feature engine, training, registry, gate and backtest engine.
"""

import numpy as np
import pytest

from trade_pipeline.models.pipeline import train_and_register
from trade_pipeline.models.registry import MlflowTarget, get_by_alias
from trade_pipeline.models.significance import corr
from trade_pipeline.models.training import TrainConfig
from trade_pipeline.models.walkforward import WalkForwardConfig, parse_duration, run_walkforward
from trade_pipeline.settings import Settings
from trade_pipeline.trading.engine import TradingConfig
from trade_pipeline.trading.walkforward import contract_figures, trade_predictions
from trade_pipeline_tests.models.synthetic import TEST_FEATURES, book_features

pytestmark = pytest.mark.slow

CONFIG = TrainConfig(horizon="1s", trials=1, features=TEST_FEATURES, n_folds=1)
EDGE = {"tilt": 0.3, "move_prob": 0.5, "phi": 0.98, "seed": 11}


@pytest.fixture(scope="module")
def random_walk():
    return book_features(400_000, seed=1, move_prob=0.3)  # move = one tick, tilt 0


@pytest.fixture(scope="module")
def small_edge():
    return book_features(150_000, move=0.1, **EDGE)  # moves of one tick: 0.01 bp


@pytest.fixture(scope="module")
def large_edge():
    return book_features(150_000, move=100.0, **EDGE)  # moves of 100 USD: about 10 bp


def _target(tmp_path) -> MlflowTarget:
    return MlflowTarget.from_settings(Settings.load(home=tmp_path / "home").ensure_dirs())


def _oracle_ic(frame, imbalance, predictions) -> float:
    """IC of the truth's driver (the imbalance) on the walk-forward's scored rows."""
    ts = frame["timestamp"].dt.epoch("us").to_numpy()
    rows = np.searchsorted(ts, predictions["timestamp"].dt.epoch("us").to_numpy())
    real = predictions["realized_return"].to_numpy()
    ok = np.isfinite(real)
    return corr(imbalance[rows][ok], real[ok])


def test_random_walk_is_not_promoted(random_walk, tmp_path) -> None:
    frame, _ = random_walk
    target = _target(tmp_path)
    trained = train_and_register(frame, target, "bybit", "BTCUSDT", CONFIG)
    gate = trained.gate
    assert gate.passed and not gate.promoted, gate.reason
    assert gate.p_value >= 0.05 and "not significantly above 0" in gate.reason
    assert gate.independent_returns == pytest.approx(gate.rows / 10, rel=0.01)
    assert get_by_alias(target.client(), trained.ref.name, "champion") is None


def test_random_walk_walkforward_ic_is_noise(random_walk) -> None:
    frame, _ = random_walk
    wf = run_walkforward(frame, WalkForwardConfig(train=parse_duration("3h"),
                                                  test=parse_duration("1h"), model=CONFIG))
    se = 1 / np.sqrt(wf.oos.n / CONFIG.horizon_rows)
    assert len(wf.windows) >= 8 and wf.oos.n > 250_000  # 11.1 h: 3 h train, 1 h tests
    assert abs(wf.oos.ic) < 4 * se, (wf.oos.ic, se)
    assert wf.oos.ci_low < 0 < wf.oos.ci_high or abs(wf.oos.ic) < 2 * se
    assert wf.recommended_retrain_every is None  # no reliable edge, nothing to schedule
    # No expected return beats a taker round trip: nothing is traded.
    assert wf.horizon_strategy["strategy_trades"] == 0


def test_planted_edge_is_promoted(small_edge, tmp_path) -> None:
    frame, _ = small_edge
    trained = train_and_register(frame, _target(tmp_path), "bybit", "BTCUSDT", CONFIG)
    gate = trained.gate
    assert gate.promoted and gate.p_value < 0.05, gate.reason
    assert gate.challenger_score > 0.3
    assert gate.strategy_trades == 0 and gate.strategy_net_return == 0.0  # below the fees
    assert gate.baseline_ic is not None and gate.baseline_ic_ci[0] < gate.baseline_ic


def test_below_the_fees_the_strategy_stays_flat(small_edge) -> None:
    frame, imbalance = small_edge
    wf = run_walkforward(frame, WalkForwardConfig(train=parse_duration("1h"),
                                                  test=parse_duration("30m"), model=CONFIG))
    oracle = _oracle_ic(frame, imbalance, wf.predictions)
    assert oracle > 0.3 and wf.oos.ic >= 0.5 * oracle, (wf.oos.ic, oracle)
    assert wf.oos.p_value < 0.01
    out = contract_figures(wf.summary(), trade_predictions(frame, wf.predictions,
                                                           TradingConfig()))
    assert out["trades"] <= 2 and out["net_return"] >= 0.0, out


def test_above_the_fees_the_strategy_trades_and_earns(large_edge) -> None:
    frame, imbalance = large_edge
    wf = run_walkforward(frame, WalkForwardConfig(train=parse_duration("1h"),
                                                  test=parse_duration("30m"), model=CONFIG))
    assert wf.oos.ic >= 0.5 * _oracle_ic(frame, imbalance, wf.predictions)
    bt = trade_predictions(frame, wf.predictions, TradingConfig())
    out = contract_figures(wf.summary(), bt)
    assert out["trades"] > 100 and out["net_return"] > 0, out
    assert out["gross_return"] > out["net_return"]  # the fees were paid
    assert bt.metrics["fees_paid"] == pytest.approx(
        sum(t.fee for t in bt.trades)) and all(t.liquidity == "taker" for t in bt.trades)
