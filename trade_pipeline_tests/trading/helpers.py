"""Small LightGBM models on real features for trading tests, and their registration in a
home's MLflow registry in the format the serving module reads."""

import polars as pl


def train_booster(features: pl.DataFrame, seed: int, trees: int):
    import lightgbm as lgb

    from trade_pipeline.features.catalog import FEATURE_NAMES

    mid = (pl.col("bid_price_1") + pl.col("ask_price_1")) / 2
    data = features.with_columns(
        (mid.shift(-10).over("session_id") / mid - 1).alias("y")).drop_nulls("y")
    x = data.select(FEATURE_NAMES).to_numpy()
    params = {"objective": "regression", "num_leaves": 15, "learning_rate": 0.1, "verbose": -1,
              "seed": seed, "bagging_fraction": 0.8, "bagging_freq": 1, "feature_fraction": 0.8,
              "num_threads": 1}
    ds = lgb.Dataset(x, data["y"].to_numpy(), feature_name=list(FEATURE_NAMES))
    return lgb.train(params, ds, num_boost_round=trees)


def model_metadata(features: pl.DataFrame, booster) -> dict:
    """What the models area records with a version trained on `features` (1 s horizon,
    regression): feature spec, task, decision rule priced with the default execution config,
    and the training range (the out-of-sample guard reads it)."""
    import numpy as np

    from trade_pipeline.market.execution_config import ExecutionConfig
    from trade_pipeline.models.contract import feature_spec
    from trade_pipeline.models.decision import fit_rule

    spread = (features["ask_price_1"] - features["bid_price_1"]) / (
        (features["ask_price_1"] + features["bid_price_1"]) / 2)
    rule = fit_rule("regression", ExecutionConfig(), np.asarray(spread.to_numpy()))
    ts = features["timestamp"]
    return {**feature_spec(list(booster.feature_name())), "horizon": "1s", "task": "regression",
            "decision_rule": rule.to_dict(), "data_start": ts.min().isoformat(),
            "data_end": ts.max().isoformat()}


def register(settings, booster, name: str, alias: str, features: pl.DataFrame) -> str:
    """Log and register `booster` as the models area does (metadata = `model_metadata` of
    its training rows `features`) and point `alias` at the new version; returns it."""
    import mlflow
    import mlflow.lightgbm

    from trade_pipeline.models.registry import MlflowTarget, ensure_experiment

    target = MlflowTarget.from_settings(settings)
    client = target.client()
    exp = ensure_experiment(client, f"test/{name}", target.artifact_uri)
    with target.active(), mlflow.start_run(experiment_id=exp):
        info = mlflow.lightgbm.log_model(
            booster, name="model", pip_requirements=["lightgbm==4.7.0"],
            metadata=model_metadata(features, booster), registered_model_name=name)
    version = str(info.registered_model_version)
    client.set_registered_model_alias(name, alias, version)
    return version
