"""The compiled evaluator matches LightGBM's own predict."""

import lightgbm as lgb
import numpy as np
import pytest

from trade_pipeline.models.compiled import CompiledBooster, CompileError, compile_model_text


def _data(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[rng.random(x.shape) < 0.08] = np.nan
    x[:, 2] = np.where(rng.random(n) < 0.3, 0.0, x[:, 2])  # exact zeros
    y = 0.5 * np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) ** 2 + rng.normal(size=n)
    return x, y


def _rows(n: int, d: int, seed: int) -> np.ndarray:
    x, _ = _data(n, d, seed)
    x[::7, 3] = 1e-40  # LightGBM reads |x| <= 1e-35 as 0
    x[::11] = np.nan
    return x


@pytest.mark.parametrize("extra", [{}, {"zero_as_missing": True}, {"use_missing": False}])
def test_regression_parity(extra) -> None:
    x, y = _data(4000, 30)
    booster = lgb.train({"objective": "regression", "num_leaves": 57, "min_data_in_leaf": 5,
                         "verbose": -1, "num_threads": 1, **extra},
                        lgb.Dataset(x, y), num_boost_round=80)
    compiled = CompiledBooster.from_booster(booster)
    rows = _rows(3000, 30, seed=1)
    want = booster.predict(rows)
    assert np.max(np.abs(compiled.predict(rows) - want)) < 1e-9
    one = np.array([compiled.predict_row(r) for r in rows[:500]])
    assert np.max(np.abs(one - want[:500])) < 1e-9


def test_multiclass_parity_and_signed_score() -> None:
    x, y = _data(3000, 12, seed=2)
    classes = np.digitize(y, [-0.5, 0.5])
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "num_leaves": 15,
                         "verbose": -1, "num_threads": 1}, lgb.Dataset(x, classes),
                        num_boost_round=30)
    compiled = CompiledBooster.from_booster(booster)
    rows = _rows(1000, 12, seed=3)
    want = booster.predict(rows)
    assert np.max(np.abs(compiled.predict(rows) - want)) < 1e-9
    assert compiled.predict_row(rows[0]) == pytest.approx(want[0, 2] - want[0, 0], abs=1e-12)
    assert np.allclose(compiled.predict_proba_row(rows[0]), want[0])


def test_single_leaf_trees() -> None:
    x = np.zeros((100, 3))
    y = np.ones(100)
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1},
                        lgb.Dataset(x, y), num_boost_round=3)
    compiled = CompiledBooster.from_booster(booster)
    assert compiled.predict_row(np.zeros(3)) == pytest.approx(booster.predict(np.zeros((1, 3)))[0])


def test_unsupported_models_are_refused() -> None:
    rng = np.random.default_rng(0)
    x = np.c_[rng.integers(0, 5, 500), rng.normal(size=500)]
    y = x[:, 0] + rng.normal(size=500)
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1,
                         "min_data_per_group": 5, "cat_smooth": 1},
                        lgb.Dataset(x, y, categorical_feature=[0]), num_boost_round=5)
    with pytest.raises(CompileError, match="categorical"):
        compile_model_text(booster.model_to_string())
    binary = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1},
                       lgb.Dataset(x, (y > 2).astype(int)), num_boost_round=2)
    with pytest.raises(CompileError, match="objective"):
        compile_model_text(binary.model_to_string())
