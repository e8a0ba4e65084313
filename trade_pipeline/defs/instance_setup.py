"""Setting up a Dagster instance the way a deployment does (docs/DEPLOYMENT.md)."""

import subprocess
import sys
from pathlib import Path

from trade_pipeline.defs.resources import DUCKDB_POOL
from trade_pipeline.errors import TradePipelineError


def pin_duckdb_pool(env: dict) -> None:
    """`dagster instance concurrency set duckdb_writer 1` on the instance of `env`
    (DAGSTER_HOME): it also creates the instance's storage once. Left to `default_limit`,
    Dagster inserts the pool's row when the first steps claim it, and two runs doing so at
    once on PostgreSQL fail one of them (UniqueViolation, then an aborted transaction)."""
    dagster_cli = Path(sys.executable).parent / "dagster"
    out = subprocess.run([str(dagster_cli), "instance", "concurrency", "set", DUCKDB_POOL, "1"],
                         env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise TradePipelineError(f"could not pin the {DUCKDB_POOL} pool: {last}")
