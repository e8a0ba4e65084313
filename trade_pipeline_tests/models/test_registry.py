"""MLflow registry, champion gate and serving, against real MLflow stores (SQLite, PostgreSQL)."""

import dataclasses

import numpy as np
import polars as pl
import pytest

from trade_pipeline.models import contract, registry, serving
from trade_pipeline.models import gate as gatekeeper
from trade_pipeline.models.training import train_model
from trade_pipeline.settings import Settings
from trade_pipeline_tests.models.synthetic import feature_frame


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return feature_frame(5000, sessions=2, seed=2)


@pytest.fixture(scope="module")
def results(frame):
    return [train_model(frame, trials=1, horizon="1s", seed=s) for s in (1, 2)]


@pytest.fixture(scope="module")
def store(tmp_path_factory, frame, results):
    """One SQLite store with v1 (champion) and v2 (challenger, gated with a huge margin)."""
    settings = Settings.load(home=tmp_path_factory.mktemp("mlflow") / "home").ensure_dirs()
    target = registry.MlflowTarget.from_settings(settings)
    example = frame.select(results[0].features).to_numpy()[:5]
    refs, gates = [], []
    for result, margin in zip(results, (0.0, 10.0), strict=True):
        ref = registry.log_and_register(result, target, "bybit", "BTCUSDT", example)
        refs.append(ref)
        gates.append(gatekeeper.champion_gate(target, ref.name, ref.version, frame, margin=margin))
    return settings, target, refs, gates, results


def store_results(store):
    return store[4]


def test_names() -> None:
    assert registry.model_name("BTCUSDT", "5s") == "btc_l2_5s"
    assert registry.model_name("ETHUSDC", "30s") == "eth_l2_30s"
    assert registry.experiment_name("bybit", "BTCUSDT", "5000ms") == "l2_bybit_BTCUSDT_5s"


@pytest.mark.slow
def test_logged_run_and_aliases(store) -> None:
    settings, target, refs, gates, _ = store
    client = target.client()
    assert [r.name for r in refs] == ["btc_l2_1s", "btc_l2_1s"]
    assert str(client.get_model_version_by_alias("btc_l2_1s", "challenger").version) == refs[1].version
    assert str(client.get_model_version_by_alias("btc_l2_1s", "champion").version) == refs[0].version
    # The first model is promoted only because its held-out IC is significant (there is
    # no champion to beat); the second saw the same rows as the champion: nothing to score.
    assert gates[0].promoted and gates[0].reason.startswith("promoted (no serving champion)")
    assert gates[0].p_value < 0.05 and gates[0].rows == store_results(store)[0].tail_metrics["n"]
    assert not gates[1].promoted and gates[1].champion_version == refs[0].version
    assert "neither model was trained on" in gates[1].reason and gates[1].p_value == 1.0
    assert client.get_model_version(refs[1].name, refs[1].version).tags["gate"] == "rejected"
    run = client.get_run(refs[0].run_id)
    assert run.data.tags["feature_catalog_hash"]
    assert "cv_ic" in run.data.metrics and "tail_ic" in run.data.metrics
    defined = sum(fm["ic"] is not None for fm in store_results(store)[0].fold_metrics)
    assert len(client.get_metric_history(refs[0].run_id, "cv_ic")) == defined  # one per fold
    assert len(client.get_metric_history(refs[0].run_id, "cv_rmse")) == 3
    files = {f.path for f in client.list_artifacts(refs[0].run_id, "plots")}
    assert files == {"plots/importance.png", "plots/predicted_vs_realized.png",
                     "plots/calibration.png"}
    exp = client.get_experiment(refs[0].experiment_id)
    assert exp.name == "l2_bybit_BTCUSDT_1s"
    assert exp.artifact_location.startswith(settings.mlflow_artifact_uri)
    meta = registry.version_metadata(target, "btc_l2_1s", refs[0].version)
    assert meta["features"] == [*contract.feature_spec(meta["features"])["features"]]
    assert set(meta["feature_versions"]) == set(meta["features"])


@pytest.mark.slow
def test_gate_scores_rows_neither_model_saw_and_needs_a_significant_difference(
        store, frame) -> None:
    import datetime as dt

    _settings, target, refs, _gates, _ = store
    client = target.client()
    start = frame["timestamp"].max() + dt.timedelta(hours=1)
    later = feature_frame(5000, sessions=2, seed=9, start=start)
    both = pl.concat([frame, later])
    # A model of the same market trained on later rows only: its whole tail lies after the
    # champion's data end, so the gate scores both models on exactly that tail.
    result = train_model(later, trials=1, horizon="1s", seed=3)
    ref = registry.log_and_register(result, target, "bybit", "BTCUSDT")
    decision = gatekeeper.champion_gate(target, ref.name, ref.version, both)
    assert decision.rows == result.tail_metrics["n"]
    assert decision.challenger_score == pytest.approx(result.tail_metrics["ic"], rel=1e-9)
    assert decision.champion_score is not None and decision.champion_version == refs[0].version
    assert decision.p_value == max(decision.p_value_ic, decision.p_value_vs_champion)
    assert decision.p_value_ic < 0.05  # it predicts...
    assert not decision.promoted and "not significant" in decision.reason  # ...but not better
    assert str(get_champion(client).version) == refs[0].version

    # Against a champion that learned nothing (noise features), the same challenger's IC
    # difference is significant: it replaces it.
    weak = train_model(frame, trials=1, horizon="1s", seed=5,
                       features=("ofi_10s", "l2_volatility_10", "spread_bps"))
    weak_ref = registry.log_and_register(weak, target, "bybit", "BTCUSDT")
    client.set_registered_model_alias("btc_l2_1s", "champion", weak_ref.version)
    decision = gatekeeper.champion_gate(target, ref.name, ref.version, both)
    assert decision.promoted and decision.champion_version == weak_ref.version
    assert decision.p_value_vs_champion < 0.05 and decision.ic_difference > 0.2
    assert decision.baseline_ic is not None and len(decision.baseline_ic_ci) == 2
    assert str(get_champion(client).version) == ref.version
    # restore the fixture's state for the other tests
    client.set_registered_model_alias("btc_l2_1s", "champion", refs[0].version)


def get_champion(client):
    return registry.get_by_alias(client, "btc_l2_1s", "champion")


@pytest.mark.slow
def test_serving_loads_by_alias_and_matches_lightgbm(store, frame, results) -> None:
    settings, _target, refs, _gates, _ = store
    model = serving.load(settings, "btc_l2_1s@champion")
    assert model.version == refs[0].version and model.feature_names == results[0].features
    x = frame.select(model.feature_names).to_numpy()[:2000]
    want = results[0].booster.predict(x)
    got = np.array([model.predict_row(row) for row in x])
    assert np.max(np.abs(got - want)) < 1e-9
    with pytest.raises(serving.ServingError, match="no model version"):
        serving.load(settings, "btc_l2_1s@nonexistent")


@pytest.mark.slow
def test_serving_refuses_changed_feature_versions(store, monkeypatch) -> None:
    from trade_pipeline.features import catalog

    settings, target, refs, _gates, _ = store
    first = registry.version_metadata(target, "btc_l2_1s", refs[0].version)["features"][0]
    specs = dict(catalog.SPECS)
    specs[first] = dataclasses.replace(specs[first], version=specs[first].version + 1)
    monkeypatch.setattr(catalog, "SPECS", specs)
    with pytest.raises(serving.ServingError, match=first):
        serving.load(settings, "btc_l2_1s@champion")


def test_feature_spec_check_without_mlflow() -> None:
    from trade_pipeline.features.catalog import SPECS

    good = contract.feature_spec(["order_book_imbalance", "spread_bps"])
    contract.check_feature_spec(good)
    for bad in (
        {**good, "features": ["order_book_imbalance", "not_a_feature"]},
        {**good, "feature_versions": {"order_book_imbalance": 99, "spread_bps": 1}},
        {**good, "feature_versions": {"order_book_imbalance": SPECS["order_book_imbalance"].version}},
        {"features": []},
    ):
        with pytest.raises(serving.ServingError):
            contract.check_feature_spec(bad)


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_backend(pg_dsn, tmp_path, frame, results) -> None:
    """The same logging + registry + serving path on the local PostgreSQL server."""
    uri = pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    target = registry.MlflowTarget(uri, (tmp_path / "artifacts").as_uri())
    ref = registry.log_and_register(results[0], target, "bybit", "BTCUSDT")
    gate = gatekeeper.champion_gate(target, ref.name, ref.version, frame)
    assert gate.promoted
    model = serving.load(ref=f"{ref.name}@champion", target=target)
    x = frame.select(model.feature_names).to_numpy()[:100]
    assert np.max(np.abs(model.predict(x) - results[0].booster.predict(x))) < 1e-9


@pytest.mark.slow
def test_serving_refuses_a_fee_the_threshold_was_not_priced_with(store) -> None:
    from trade_pipeline.market.execution_config import ExecutionConfig

    settings = store[0]
    with pytest.raises(serving.ServingError, match="taker fee"):
        serving.load(settings, "btc_l2_1s@champion", execution=ExecutionConfig(taker_fee=0.001))
    model = serving.load(settings, "btc_l2_1s@champion", execution=ExecutionConfig())
    rule = model.rule
    assert rule.task == "regression" and rule.calibration is None
    assert rule.entry_threshold == pytest.approx(2 * 0.00055 + rule.spread_cost)
    meta = model.metadata
    assert meta["data_start"] < meta["tail_start"] < meta["data_end"]
    assert meta["feature_params"] and meta["execution"]["taker_fee"] == 0.00055


def test_contract_refusals_without_mlflow(monkeypatch) -> None:
    from trade_pipeline.features import catalog
    from trade_pipeline.features.provenance import stamp_of

    meta = {**contract.feature_spec(["order_book_imbalance", "spread"]), "task": "regression",
            "feature_params": stamp_of(None)["params"]}
    serving.check_contract("btc_l2_1s", meta)
    with pytest.raises(serving.ServingError, match="two tasks never share"):
        serving.check_contract("btc_l2_1s", {**meta, "task": "classification"})
    with pytest.raises(serving.ServingError, match="two tasks never share"):
        serving.check_contract("btc_l2_1s_cls", meta)
    contract.check_feature_source(meta, stamp_of(None))
    with pytest.raises(serving.ServingError, match="impact_qty"):
        contract.check_feature_source(meta, stamp_of({"impact_qty": 7.0}))
    changed = tuple(dataclasses.replace(s, definition=s.definition + " (changed)")
                    if s.name == "ofi_10s" else s for s in catalog.CATALOG)
    monkeypatch.setattr(catalog, "CATALOG", changed)
    with pytest.raises(serving.ServingError, match="catalog changed"):
        contract.check_feature_source(meta)


@pytest.mark.slow
def test_classifier_trades_its_calibrated_expected_return(tmp_path, frame) -> None:
    from trade_pipeline.trading.model_adapter import load_model

    settings = Settings.load(home=tmp_path / "home").ensure_dirs()
    target = registry.MlflowTarget.from_settings(settings)
    result = train_model(frame, trials=1, horizon="1s", task="classification", n_folds=1)
    ref = registry.log_and_register(result, target, "bybit", "BTCUSDT")
    assert ref.name == "btc_l2_1s_cls"  # never shares the regression name
    cal = result.rule.calibration
    assert list(cal.values) == sorted(cal.values) and len(cal.values) >= 2
    model = load_model(settings, f"{ref.name}/{ref.version}")
    x = frame.select(model.feature_names).to_numpy()[:500]
    score = np.array([model.evaluator.predict_row(r) for r in x])
    expected = model.predict_frame(frame.head(500))
    assert np.allclose(expected, cal(score)) and set(np.unique(expected)) <= set(cal.values)
    # what the strategy compares with its cost: the calibrated return, not P(up) - P(down)
    assert np.abs(expected).max() < 0.01 < np.abs(score).max()


@pytest.mark.slow
def test_importance_table_shap_and_top_k_report_in_mlflow(tmp_path, frame) -> None:
    settings = Settings.load(home=tmp_path / "home").ensure_dirs()
    target = registry.MlflowTarget.from_settings(settings)
    result = train_model(frame, trials=1, horizon="1s", top_k=(2, 5), n_folds=1)
    assert [r["k"] for r in result.top_k_report] == [2, 5, len(result.features)]
    assert all(r["inference_p50_us"] > 0 and r["tail_ic"] is not None
               for r in result.top_k_report)
    assert max(result.importance, key=lambda r: r["shap"])["feature"] == "order_book_imbalance"
    assert result.top_k["k"] == 5 and result.top_k["features"][0] == "order_book_imbalance"
    ref = registry.log_and_register(result, target, "bybit", "BTCUSDT")
    client = target.client()
    tables = {a.path for a in client.list_artifacts(ref.run_id, "tables")}
    assert tables == {"tables/importance.json", "tables/top_k.json"}
    plots = {a.path for a in client.list_artifacts(ref.run_id, "plots")}
    assert {"plots/importance.png", "plots/top_k.png"} <= plots
    import json
    from pathlib import Path

    path = client.download_artifacts(ref.run_id, "tables/importance.json", str(tmp_path))
    table = json.loads(Path(path).read_text())
    assert {"feature", "gain", "split", "shap"} <= set(table["columns"])
    assert len(table["data"]) == len(result.features)


def test_undefined_metrics_are_tagged_not_faked(store):
    """A metric with no value (NaN, None: an IC over a constant prediction, say) is not logged
    as a number; the run names it in `undefined_metrics`. An `ic_ci` pair becomes two metrics."""
    import mlflow

    _settings, target, refs, _gates, _results = store
    with target.active(), mlflow.start_run(experiment_id=refs[0].experiment_id) as run:
        registry._log_metric_groups([
            ("tail_", registry._split_ci({"ic": 0.12, "ic_ci": (0.05, 0.2), "hit_rate": float("nan")})),
            ("baseline_", {"ic": None, "rows": 10}),
        ])
    logged = target.client().get_run(run.info.run_id).data
    assert logged.metrics == {"tail_ic": 0.12, "tail_ic_ci_low": 0.05, "tail_ic_ci_high": 0.2,
                              "baseline_rows": 10.0}
    assert logged.tags["undefined_metrics"] == "baseline_ic,tail_hit_rate"
