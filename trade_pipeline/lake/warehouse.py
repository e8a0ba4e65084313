"""The DuckDB warehouse: one connection helper that waits for the file lock.

DuckDB lets one process hold a database file for writing (and readers need the lock too), so
two pipeline processes that open the warehouse at the same moment would fail with "Could not
set lock on file". `connect()` retries that one error with a capped backoff until `timeout_s`
and then raises `WarehouseLockTimeout` naming the holder DuckDB reports; any other error
surfaces at once. Within Dagster, writers additionally share the `duckdb_writer` pool
(limit 1), so the retry is the second line of defence (CLI runs, readers, other homes).
"""

import contextlib
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.settings import Settings

LOCK_MARKER = "Could not set lock on file"
DEFAULT_TIMEOUT_S = float(120)


class WarehouseLockTimeout(TradePipelineError, TimeoutError):
    """The warehouse file stayed locked by another process for longer than the timeout."""


def _path_of(target: Settings | str | os.PathLike) -> Path:
    return target.warehouse_path if isinstance(target, Settings) else Path(target)


def connect(
    target: Settings | str | os.PathLike,
    read_only: bool = False,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse (`settings.warehouse_path`, or an explicit file path).

    Retries while another process holds the file lock; raises `WarehouseLockTimeout` after
    `timeout_s`. A read-only open of a file that does not exist yet is a clear error
    (DuckDB cannot create a database read-only)."""
    path = _path_of(target)
    if read_only and not path.exists():
        raise FileNotFoundError(
            f"warehouse {path} does not exist yet: run `trade-pipeline migrate` first"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only)
            # Views store TIMESTAMPTZ maths; pin the zone so results never depend on the host.
            conn.execute("SET TimeZone = 'UTC'")
            if isinstance(target, Settings):  # an object-store lake: its tables per connection
                _register_lake(conn, target)
            return conn
        except duckdb.IOException as exc:
            if LOCK_MARKER not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseLockTimeout(
                    f"warehouse {path} stayed locked for {timeout_s:.0f}s: {exc}"
                ) from exc
            # Jitter so two waiting processes do not retry in lock-step.
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)


def _register_lake(conn: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Register an object-store lake's tables on `conn` (lake/object_views.py). An
    unreachable store must not block the warehouse's own tables (models, predictions): the
    lake views then fail when queried, naming `_lake_<table>`, and the lake's readers report
    the store itself (`LakeUnavailableError`)."""
    from trade_pipeline.lake import object_views
    from trade_pipeline.storage.lake_fs import LakeUnavailableError

    with contextlib.suppress(LakeUnavailableError):
        object_views.register(conn, settings.lake_dir, ("l2_snapshots", "l2_features"))


@contextlib.contextmanager
def session(
    target: Settings | str | os.PathLike,
    read_only: bool = False,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """`with session(settings) as conn:` opens with `connect()` and always closes (releasing
    the file lock as early as possible)."""
    conn = connect(target, read_only=read_only, timeout_s=timeout_s)
    try:
        yield conn
    finally:
        conn.close()


def ensure_warehouse(settings: Settings) -> None:
    """Apply pending migrations (idempotent) so the pipeline's tables exist before a write."""
    from trade_pipeline.lake.migrations import migrate

    with session(settings) as conn:
        migrate(conn, settings.lake_dir)
