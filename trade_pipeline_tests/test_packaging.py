"""The package installs whole: a wheel built from the repository migrates a fresh warehouse
when it runs outside the repository.

The wheel is built (`python -m build --wheel`, isolated as a user's build is) from a copy of
the repository's files, so the build leaves nothing in the worktree. It is installed into a
fresh venv outside the repository; the dependencies come from this project's `.venv` through
a `.pth` line (offline and fast). A `.pth` line only appends a folder to `sys.path`, so
`.venv`'s own `.pth` files, among them the editable install's finder, are not run: the
`trade_pipeline` the commands import is the wheel's, which the test checks.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SQL_IN_REPO = sorted(p.name for p in (ROOT / "trade_pipeline" / "lake" / "sql").glob("*.sql"))




def _repo_files() -> list[Path]:
    """What a clone holds: tracked files plus new, not ignored ones (the worktree's state)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True, timeout=60,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot tell the repository's files from build output")
    return [ROOT / name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def _clean_env(**extra: str) -> dict:
    """No PYTHONPATH, no pipeline settings from the caller's environment."""
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith(("TRADE_PIPELINE_", "MLFLOW_", "VIRTUAL_ENV"))}
    return {**env, **extra}


def _run(args: list, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, f"{args}: exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for path in _repo_files():
        target = src / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, src], cwd=src,
         env=_clean_env())
    (found,) = dist.glob("trade_pipeline-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv (outside the repository) holding the wheel; returns its bin folder."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    site = Path(subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True).stdout.strip())
    (site / "project_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    uv = Path(sys.executable).parent / "uv"
    _run([uv, "pip", "install", "--quiet", "--python", venv / "bin" / "python", "--no-deps",
          wheel], cwd=venv, env=_clean_env())
    return venv / "bin"


def test_the_wheel_ships_the_sql_and_the_catalog_lock(wheel) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    up = sorted(n.rsplit("/", 1)[1] for n in names
                if n.startswith("trade_pipeline/lake/sql/") and n.count("/") == 3
                and n.endswith(".sql"))
    down = sorted(n.rsplit("/", 1)[1] for n in names
                  if n.startswith("trade_pipeline/lake/sql/down/") and n.endswith(".sql"))
    assert up == SQL_IN_REPO and len(up) >= 3
    assert down == up  # every script with its down script
    assert "trade_pipeline/features/catalog.lock.json" in names
    assert "trade_pipeline/dg.toml" in names  # the defs-folder loader's project config
    assert not any(n.startswith("trade_pipeline_tests/") for n in names)


def test_the_installed_wheel_migrates_a_fresh_warehouse_outside_the_repo(
        installed, tmp_path) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    home = tmp_path / "home"
    env = _clean_env()
    origin = _run([installed / "python", "-c",
                   "import trade_pipeline, trade_pipeline.lake.migrations as m; "
                   "print(trade_pipeline.__file__); print(len(m.discover()))"],
                  cwd=cwd, env=env).stdout.split()
    site = installed.parent / "lib"
    assert Path(origin[0]).is_relative_to(site), f"imported {origin[0]}, not the wheel"
    assert not Path(origin[0]).is_relative_to(ROOT)
    discovered = int(origin[1])
    assert discovered == len(SQL_IN_REPO) >= 3

    cli = installed / "trade-pipeline"
    report = json.loads(_run([cli, "--home", home, "migrate", "--json"], cwd=cwd, env=env).stdout)
    applied = [s for s in report["steps"] if s["action"] == "applied"]
    assert len(applied) == len(report["steps"]) == discovered
    assert [s["name"] for s in applied] == SQL_IN_REPO
    assert report["feature_sync"]  # the catalog lock was found and synced

    status = json.loads(_run([cli, "--home", home, "migrate", "--status", "--json"], cwd=cwd,
                             env=env).stdout)
    assert [(r["name"], r["state"]) for r in status] == [(n, "applied") for n in SQL_IN_REPO]
    again = _run([cli, "--home", home, "migrate"], cwd=cwd, env=env)
    assert "nothing to do" in again.stderr
    assert (home / "warehouse.duckdb").is_file()
    assert list(cwd.iterdir()) == []  # nothing written where the command ran

    # The feature reference has no repository docs/ to go to: it asks for a path.
    refused = subprocess.run([cli, "features-reference"], cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "--output" in refused.stderr
    _run([cli, "features-reference", "--output", tmp_path / "ref.md"], cwd=cwd, env=env)
    assert "## Conventions" in (tmp_path / "ref.md").read_text()

    # The Dagster layer builds one migration asset per shipped script.
    phases = _run([installed / "python", "-c",
                   "from trade_pipeline.defs.warehouse import PHASES; print(len(PHASES))"],
                  cwd=cwd, env=_clean_env(DAGSTER_HOME=str(home / "dagster"))).stdout
    assert int(phases.split()[-1]) == discovered

    # The definitions load from the defs folder as in the checkout (the packaged dg.toml).
    loaded = _run([installed / "python", "-c",
                   "import trade_pipeline.definitions as d; "
                   "g = d.defs.resolve_asset_graph(); "
                   "print(len(list(g.get_all_asset_keys())), len(list(g.asset_check_keys)))"],
                  cwd=cwd, env=_clean_env(TRADE_PIPELINE_HOME=str(home),
                                          DAGSTER_HOME=str(home / "dagster"))).stdout
    n_assets, n_checks = (int(v) for v in loaded.split()[-2:])
    assert n_assets >= 10 and n_checks > n_assets


def test_the_dg_project_config_is_one() -> None:
    """pyproject.toml's [tool.dg] (the `dg` CLI) and the packaged dg.toml (what the loader
    reads, also from a wheel) name the same project and defs folder."""
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dg"]
    packaged = tomllib.loads((ROOT / "trade_pipeline" / "dg.toml").read_text())
    assert pyproject["directory_type"] == packaged["directory_type"] == "project"
    assert pyproject["project"] == packaged["project"]
