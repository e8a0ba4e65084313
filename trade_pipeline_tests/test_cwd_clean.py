"""No command writes into the current directory.

Everything a command writes belongs under `--home` or at the paths its options name; MLflow
is the usual culprit (`mlruns/`, `mlflow.db`, `mlartifacts/` when its URIs are not set). Each
command runs as its own process (fresh MLflow and numba state, as a user runs it) from an
empty directory, the whole chain from migrations to the monitor, on a small simulated day.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # eleven commands as processes: ~25-60 s

CLI = Path(sys.executable).parent / "trade-pipeline"
DAY = "2025-07-07"


def _env() -> dict:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("TRADE_PIPELINE_", "MLFLOW_")) and k != "PYTHONPATH"}


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_commands_leave_the_working_directory_empty(tmp_path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    home, out = tmp_path / "home", tmp_path / "out"
    out.mkdir()
    env = _env()

    def run(*args) -> str:
        done = subprocess.run([str(CLI), "--home", str(home), *map(str, args)], cwd=cwd,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
        assert _tree(cwd) == [], f"`trade-pipeline {args[0]}` wrote into the cwd"
        return done.stdout

    run("migrate")
    run("migrate", "--status")
    run("simulate", "--duration", 180, "--start", f"{DAY}T00:00:00")
    (raw,) = (home / "raw").rglob("*.raw.gz")
    run("snapshots", "--input", raw, "--output", out / "snap.parquet", "--no-progress")
    run("features", "--input", out / "snap.parquet", "--output", out / "features.parquet")
    trained = json.loads(run("train", "--trials", 1, "--horizon", "1s",
                             "--features", out / "features.parquet", "--json"))
    assert trained["rows"] > 0
    # The gate refuses a model without a significant edge: trade the challenger, on the rows
    # it was trained on (labelled in-sample); only what the command writes matters here.
    run("backtest", "--model", "btc_l2_1s@challenger", "--snapshots", out / "snap.parquet",
        "--allow-in-sample", "--json")
    run("monitor", "--once")
    run("monitor", "--once", "--json")
    run("archive", "--older-than-days", 1, "--dry-run")
    run("features-reference", "--output", out / "FEATURES_REFERENCE.md")
    # The stores did land in the home.
    assert (home / "warehouse.duckdb").is_file() and (home / "mlflow" / "mlflow.db").is_file()
