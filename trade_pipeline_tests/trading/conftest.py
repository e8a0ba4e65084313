"""Trading-test fixtures: a small LightGBM model trained on real features, compiled with the
serving evaluator (used where a registered model is not needed)."""

import pytest

from .helpers import model_metadata, train_booster


@pytest.fixture(autouse=True)
def _no_mlflow_env(monkeypatch):
    """`mlflow.set_tracking_uri` exports MLFLOW_TRACKING_URI, which `Settings.load` reads:
    without this, one test's MLflow store would leak into the next test's home."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


@pytest.fixture(scope="session")
def train_features(bybit_delta_files):
    from trade_pipeline.features.batch import compute_features
    from trade_pipeline.market.snapshots import build_snapshots

    path = next(p for p in bybit_delta_files if "20250707_052632" in p.name)
    return compute_features(build_snapshots([path]).frame)


@pytest.fixture(scope="session")
def test_boosters(train_features):
    """(champion, challenger): two small LightGBM boosters trained on real features."""
    return train_booster(train_features, 1, 60), train_booster(train_features, 2, 40)


@pytest.fixture(scope="session")
def test_models(test_boosters, train_features):
    """The two boosters compiled with the serving evaluator, wrapped for trading, with the
    metadata a registered version carries (training range, decision rule)."""
    from trade_pipeline.trading.model_adapter import wrap_booster

    return (wrap_booster(test_boosters[0], "btc_l2_1s", 1, "champion",
                         model_metadata(train_features, test_boosters[0])),
            wrap_booster(test_boosters[1], "btc_l2_1s", 2, "challenger",
                         model_metadata(train_features, test_boosters[1])))
