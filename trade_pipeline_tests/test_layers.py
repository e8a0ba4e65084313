"""The package's layers import only downward and no package holds an import cycle.

The contracts live in pyproject.toml ([tool.importlinter]); `lint-imports` reads the real
import graph (function-level imports included).
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken" in out.stdout


def test_a_cycle_breaks_the_contract(tmp_path):
    """The contract is not vacuous: a copy of the package with one back-import fails it."""
    import shutil

    shutil.copytree(ROOT / "trade_pipeline", tmp_path / "trade_pipeline",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "trade_pipeline" / "storage" / "layout.py", "a") as fh:
        fh.write("\nfrom trade_pipeline.models import registry  # noqa: E402,F401\n")
    lint = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(lint), "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0
    assert "trade_pipeline.storage.layout -> trade_pipeline.models.registry" in out.stdout
