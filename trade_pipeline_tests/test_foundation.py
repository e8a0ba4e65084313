"""The foundation: settings, the CLI and the Dagster definitions load."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trade_pipeline.cli import build_parser, main
from trade_pipeline.settings import Settings, SettingsError

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_two_homes_never_share_a_path(tmp_path: Path) -> None:
    a = Settings.load(home=tmp_path / "a")
    b = Settings.load(home=tmp_path / "b")
    for attr in ("raw_dir", "archive_dir", "lake_dir", "warehouse_path", "dagster_home",
                 "mlflow_tracking_uri", "mlflow_artifact_uri"):
        assert str(getattr(a, attr)) != str(getattr(b, attr)), attr
        assert str(tmp_path / "a") in str(getattr(a, attr)), attr


def test_home_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADE_PIPELINE_HOME", str(tmp_path / "envhome"))
    assert Settings.load().home == (tmp_path / "envhome").resolve()
    # The argument wins over the environment.
    assert Settings.load(home=tmp_path / "arg").home == (tmp_path / "arg").resolve()


@pytest.mark.parametrize("symbol", ["BTC'; DROP TABLE trades; --", "btc usdt", "../etc", ""])
def test_hostile_symbol_is_rejected(tmp_path: Path, symbol: str) -> None:
    with pytest.raises(SettingsError, match="invalid symbol"):
        Settings.load(home=tmp_path, symbol=symbol)


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices, "no subcommands registered"
    for name, subparser in sub.choices.items():
        text = subparser.format_help()
        assert "usage:" in text and len(text) > 40, name


def test_cli_help_runs_as_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "trade_pipeline", "--help"], capture_output=True, text=True, check=True
    )
    assert "trade-pipeline" in out.stdout


def test_cli_unknown_benchmark_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no benchmark 'no-such-benchmark'"):
        main(["--home", str(tmp_path), "bench", "no-such-benchmark", "--json"])


def test_dagster_definitions_validate(tmp_path: Path) -> None:
    env = {**os.environ, "TRADE_PIPELINE_HOME": str(tmp_path / "home"),
           "DAGSTER_HOME": str(tmp_path / "dagster")}
    (tmp_path / "dagster").mkdir()
    dagster = Path(sys.executable).parent / "dagster"
    out = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(REPO_ROOT / "workspace.yaml")],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", ["in_process", "multiprocess", "k8s"])
def test_executor_is_chosen_by_settings(tmp_path: Path, name: str) -> None:
    from trade_pipeline.definitions import build_definitions

    defs = build_definitions(home=str(tmp_path), executor=name)
    assert defs.executor is not None and defs.executor.name == name
    # Every job runs on it (the k8s one launches one pod per step on a cluster).
    assert defs.resolve_job_def("demo").executor_def.name == name


def test_invalid_executor_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADE_PIPELINE_EXECUTOR", "threads")
    with pytest.raises(SettingsError, match="invalid executor 'threads'"):
        Settings.load(home=tmp_path)
