"""Training: search on the folds, score on the unseen tail, statistics from fit rows only."""

import numpy as np
import polars as pl
import pytest

from trade_pipeline.models.training import (
    PRICE_LEVEL_FEATURES,
    TrainConfig,
    TrainingError,
    score_on_tail,
    train_model,
)
from trade_pipeline_tests.models.synthetic import feature_frame


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return feature_frame(6000, sessions=2, seed=1)


def test_regression_end_to_end(frame) -> None:
    result = train_model(frame, trials=2, horizon="1s", top_k=5)
    m = result.metrics()
    for key in ("tail_ic", "tail_rank_ic", "tail_rmse", "tail_hit_rate", "tail_strategy_return",
                "baseline_ic", "baseline_hit_rate", "cv_score", "fold0_ic", "fold2_hit_rate"):
        assert key in m, key
    assert m["tail_ic"] > 0.2  # the synthetic mid leans on order_book_imbalance
    assert not set(result.features) & PRICE_LEVEL_FEATURES
    assert result.importance[0]["feature"] == "order_book_imbalance"
    gains = [r["gain"] for r in result.importance]
    assert gains == sorted(gains, reverse=True)
    assert result.top_k["k"] == 5 and len(result.top_k["features"]) == 5
    assert result.top_k["score_diff_vs_full"] == pytest.approx(
        result.top_k["tail_score"] - result.score)
    assert result.tail_start > result.data_start and result.tail_end == result.data_end
    assert len(result.trials) == 2


def test_classification_metrics_and_dead_zone_from_fit_rows(frame) -> None:
    base = train_model(frame, trials=1, horizon="1s", task="classification")
    for key in ("log_loss", "balanced_accuracy", "auc", "hit_rate", "strategy_return"):
        assert key in base.tail_metrics
    assert base.dead_zone == pytest.approx(0.5 * 0.1 / 100_000, rel=0.01)
    # Blowing up the spread in the tail changes neither the dead zone nor the model.
    tail_from = base.tail_start
    wide = frame.with_columns(
        pl.when(pl.col("timestamp") >= tail_from).then(pl.col("spread") * 50)
        .otherwise(pl.col("spread")).alias("spread"))
    wide = wide.with_columns(
        pl.when(pl.col("timestamp") >= tail_from).then(0.0).otherwise(pl.col("spread_bps"))
        .alias("spread_bps"))
    other = train_model(wide, trials=1, horizon="1s", task="classification")
    assert other.dead_zone == base.dead_zone
    assert other.booster.model_to_string() == base.booster.model_to_string()


def test_future_rows_do_not_change_the_search(frame) -> None:
    """Scrambling the held-out tail's features leaves the searched model unchanged."""
    base = train_model(frame, trials=1, horizon="1s")
    rng = np.random.default_rng(5)
    in_tail = pl.col("timestamp") >= base.tail_start
    noisy = frame.with_columns(
        pl.when(in_tail).then(pl.lit(rng.normal(size=frame.height))).otherwise(pl.col(c)).alias(c)
        for c in ("order_book_imbalance", "ofi_10s", "l2_volatility_10")
    )
    other = train_model(noisy, trials=1, horizon="1s")
    assert other.cv_score == base.cv_score
    assert other.booster.model_to_string() == base.booster.model_to_string()
    assert other.tail_metrics["ic"] != base.tail_metrics["ic"]


def test_score_on_tail_matches_training_figures(frame) -> None:
    result = train_model(frame, trials=1, horizon="1s")
    metrics = score_on_tail(result.booster.predict, result.features, frame,
                            (result.tail_start, result.tail_end), result.config)
    assert metrics["ic"] == pytest.approx(result.tail_metrics["ic"], rel=1e-12)
    assert metrics["n"] == result.tail_metrics["n"]


def test_strategy_return_costs_and_non_overlap() -> None:
    from trade_pipeline.market.execution_config import ExecutionConfig
    from trade_pipeline.models.decision import horizon_trades

    ts = np.arange(10) * 1_000_000  # 1 s rows
    signal = np.array([1.0, -1, 1, -1, 1, -1, 1, -1, 1, -1])
    realized = np.full(10, 0.001)
    out = horizon_trades(ts, signal, realized, np.full(10, 1e-4), "2s",
                         ExecutionConfig(taker_fee=1e-4), 0.0)
    # trades at rows 0, 2, 4, 6, 8 (every 2 s), all long: 5 * (0.001 - 2e-4 - 1e-4)
    assert out["strategy_trades"] == 5
    assert out["strategy_return"] == pytest.approx(5 * (0.001 - 3e-4))


def test_bad_config_and_input() -> None:
    with pytest.raises(TrainingError):
        TrainConfig(task="ranking")
    with pytest.raises(TrainingError):
        TrainConfig(trials=0)
    tiny = feature_frame(30, sessions=1)
    with pytest.raises(ValueError):
        train_model(tiny, trials=1, horizon="1s")
