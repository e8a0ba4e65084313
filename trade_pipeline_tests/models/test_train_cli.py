"""`trade-pipeline train`: the stable command automated checks call."""

import json

import pytest

from trade_pipeline.cli import main
from trade_pipeline.models.warehouse_log import read_models
from trade_pipeline.settings import Settings
from trade_pipeline_tests.models.synthetic import feature_frame


@pytest.fixture(scope="module")
def features_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "features.parquet"
    feature_frame(4000, sessions=2, seed=4).write_parquet(path)
    return path


def test_train_no_register_prints_json(features_file, tmp_path, capsys) -> None:
    code = main(["--home", str(tmp_path / "home"), "train", "--trials", "1", "--horizon", "1s",
                 "--features", str(features_file), "--top-k", "5", "--no-register", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["horizon"] == "1s" and out["trials"] == 1
    for key in ("tail_ic", "tail_rank_ic", "tail_rmse", "tail_hit_rate", "tail_strategy_return",
                "baseline_ic", "top_k_score_diff_vs_full", "top_features"):
        assert key in out, key
    assert not (tmp_path / "home" / "mlflow" / "mlflow.db").exists()


@pytest.mark.slow
def test_train_registers_and_promotes(features_file, tmp_path, capsys) -> None:
    code = main(["--home", str(tmp_path / "home"), "train", "--trials", "1", "--horizon", "1s",
                 "--features", str(features_file), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"]["name"] == "btc_l2_1s" and out["model"]["gate"]["promoted"]
    # the output contract scripts rely on: passed, reason and the p-value (a float)
    gate = out["model"]["gate"]
    assert gate["passed"] is True and isinstance(gate["reason"], str) and gate["reason"]
    assert isinstance(gate["p_value"], float) and 0.0 < gate["p_value"] < 0.05
    assert (tmp_path / "home" / "mlflow" / "mlflow.db").exists()
    rows = read_models(Settings.load(home=tmp_path / "home"), "btc_l2_1s")
    assert [(r["version"], r["alias"]) for r in rows] == [(1, "champion")]
    assert rows[0]["run_id"] == out["model"]["run_id"]
    assert rows[0]["data_start"] is not None and rows[0]["data_end"] >= rows[0]["data_start"]
    assert json.loads(rows[0]["metrics"])["tail_score"] == pytest.approx(out["tail_score"])


def test_bad_arguments_are_clear_errors(features_file, tmp_path, capsys) -> None:
    home = str(tmp_path / "home")
    assert main(["--home", home, "train", "--horizon", "5 sec", "--features",
                 str(features_file), "--no-register"]) == 2
    assert "invalid horizon" in capsys.readouterr().err
    assert main(["--home", home, "train", "--start", "2025-13-01", "--no-register"]) == 2
    assert main(["--home", home, "train", "--no-register"]) == 2  # empty lake
    assert "no l2_features partitions" in capsys.readouterr().err


def test_training_records_the_feature_parameters_of_the_lake(tmp_path, capsys) -> None:
    """l2_features partitions carry their parameters; training records them with the version
    and refuses to mix partitions computed differently."""
    import datetime as dt

    from trade_pipeline.features.catalog import catalog_hash
    from trade_pipeline.features.provenance import stamped
    from trade_pipeline.models.registry import MlflowTarget, version_metadata
    from trade_pipeline.storage.layout import PartitionKey, write_partition

    settings = Settings.load(home=tmp_path / "home").ensure_dirs()
    params = {"impact_qty": 2.0}
    for i, day in enumerate(("2025-07-07", "2025-07-08")):
        start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
        frame = feature_frame(2500, sessions=1, seed=i, start=start)
        write_partition(stamped(frame, params), settings.lake_dir, "l2_features",
                        PartitionKey("bybit", "BTCUSDT", day))
    args = ["--home", str(settings.home), "train", "--trials", "1", "--horizon", "1s",
            "--folds", "1", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    meta = version_metadata(MlflowTarget.from_settings(settings), out["model"]["name"],
                            out["model"]["version"])
    assert meta["feature_params"]["impact_qty"] == 2.0 and meta["feature_params_stamped"]
    assert meta["feature_catalog_hash"] == catalog_hash(params) != catalog_hash()
    # a day computed with other parameters cannot join the training set
    frame = feature_frame(2500, sessions=1, seed=3,
                          start=dt.datetime(2025, 7, 9, tzinfo=dt.UTC))
    write_partition(stamped(frame, {"impact_qty": 3.0}), settings.lake_dir, "l2_features",
                    PartitionKey("bybit", "BTCUSDT", "2025-07-09"))
    assert main(args) == 2
    assert "different feature parameters" in capsys.readouterr().err
