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
