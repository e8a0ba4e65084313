"""The DuckDB warehouse: one connection helper that waits for the file lock.

DuckDB lets one process hold a database file for writing (and readers need the lock too), so
two pipeline processes that open the warehouse at the same moment would fail with "Could not
set lock on file". `connect()` retries that one error with a capped backoff until `timeout_s`
and then raises `WarehouseLockTimeout` naming the holder DuckDB reports; any other error
surfaces at once. Within Dagster, writers additionally share the `duckdb_writer` pool
(limit 1), so the retry is the second line of defence (CLI runs, readers, other homes).

A truncated or corrupt file (or write-ahead log) is `WarehouseCorrupt`, raised by `connect()`
when DuckDB refuses to open it and by `session()` when a query meets a damaged block: one
line naming the file and the way out (restore a backup, or `trade-pipeline migrate
--rebuild`, which moves the file aside and rebuilds the views from the lake, the source of
truth for the data tables; `rebuild()` below).
"""

import contextlib
import os
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.settings import Settings

LOCK_MARKER = "Could not set lock on file"
DEFAULT_TIMEOUT_S = float(120)
# What DuckDB 2 says about a truncated or damaged database file or write-ahead log.
CORRUPT_MARKERS = (
    "Corrupt database file",
    "Corrupt WAL file",
    "Failure while replaying WAL",
    "Could not read enough bytes from file",
    "not a valid DuckDB database file",
)


class WarehouseLockTimeout(TradePipelineError, TimeoutError):
    """The warehouse file stayed locked by another process for longer than the timeout."""


class WarehouseCorrupt(TradePipelineError, RuntimeError):
    """The warehouse file is truncated or corrupt: restore it or rebuild it from the lake."""


def is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.Error) and any(m in str(exc) for m in CORRUPT_MARKERS)


def corrupt_error(path: Path, exc: BaseException) -> WarehouseCorrupt:
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return WarehouseCorrupt(
        f"warehouse {path} is corrupt or truncated (DuckDB: {detail}); restore it from a "
        "backup, or rebuild it from the lake with `trade-pipeline migrate --rebuild` (moves "
        "the file aside; the lake is not touched)"
    )


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
            # Blocks replayed from a write-ahead log need not be in the file yet.
            had_wal = path.with_name(path.name + ".wal").exists()
            conn = duckdb.connect(str(path), read_only=read_only)
            # Views store TIMESTAMPTZ maths; pin the zone so results never depend on the host.
            conn.execute("SET TimeZone = 'UTC'")
            if not had_wal:
                _check_length(conn, path)
            if isinstance(target, Settings):  # an object-store lake: its tables per connection
                _register_lake(conn, target)
            return conn
        except duckdb.Error as exc:
            if is_corrupt(exc):
                raise corrupt_error(path, exc) from exc
            if not isinstance(exc, duckdb.IOException) or LOCK_MARKER not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseLockTimeout(
                    f"warehouse {path} stayed locked for {timeout_s:.0f}s: {exc}"
                ) from exc
            # Jitter so two waiting processes do not retry in lock-step.
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)


HEADER_BYTES = 3 * 4096  # DuckDB's file header and its two database headers


def _check_length(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    """A file cut short can still open (read-only, its catalog may sit in the part that is
    left): its blocks end past the end of the file. Say so before anything reads it. (Only
    without a write-ahead log: blocks replayed from one may not be written to the file yet.)"""
    # Used blocks each need a slot in the file (free ones at its end may be cut off by
    # DuckDB itself): a file shorter than that is certainly truncated.
    ((block_size, blocks),) = conn.execute(
        "SELECT block_size, used_blocks FROM pragma_database_size()").fetchall()
    expected = HEADER_BYTES + int(block_size) * int(blocks)
    size = path.stat().st_size
    if size < expected:
        conn.close()
        raise corrupt_error(path, RuntimeError(
            f"the file holds {size} bytes, its {blocks} used blocks need at least {expected}"))


def _register_lake(conn: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Register an object-store lake's tables on `conn` (lake/object_views.py). An
    unreachable store must not block the warehouse's own tables (models, predictions): the
    lake views then fail when queried, naming `_lake_<table>`, and the lake's readers report
    the store itself (`LakeUnavailableError`)."""
    from trade_pipeline.lake import object_views
    from trade_pipeline.lake.migrations import LAKE_TABLES
    from trade_pipeline.storage.lake_fs import LakeUnavailableError

    with contextlib.suppress(LakeUnavailableError):
        object_views.register(conn, settings.lake_dir, LAKE_TABLES)


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
    except duckdb.Error as exc:
        if is_corrupt(exc):  # a damaged block met by a query
            raise corrupt_error(_path_of(target), exc) from exc
        raise
    finally:
        conn.close()


def ensure_warehouse(settings: Settings) -> None:
    """Apply pending migrations (idempotent) so the pipeline's tables exist before a write."""
    from trade_pipeline.lake.migrations import migrate

    with session(settings) as conn:
        migrate(conn, settings.lake_dir)


@dataclass
class RebuildReport:
    warehouse: str
    moved_aside: list[str]  # the damaged file (and its WAL), renamed, never deleted
    steps: list[str]  # migrations applied to the new file

    def as_dict(self) -> dict:
        return asdict(self)


def check_readable(path: Path) -> None:
    """Open the file and read every table through; `WarehouseCorrupt` if DuckDB cannot."""
    with session(path, read_only=True, timeout_s=10) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()
        for (name,) in tables:
            for _ in conn.table(name).to_arrow_reader(1 << 16):  # the relation API: no SQL text
                pass


def rebuild(target: Settings | str | os.PathLike, lake_dir: str) -> RebuildReport:
    """Replace a corrupt warehouse: move it (and its WAL) aside as
    `<name>.corrupt-<UTC time>`, create a new one, apply every migration (the lake views
    point at the Parquet lake again). The lake is only read. Tables that live only in the
    warehouse (models, predictions, trades, backtest_results, legacy_quarantine) start empty:
    the moved file keeps whatever is still readable in it.

    Refuses (WarehouseCorrupt is not raised) when the file reads fine: nothing to rebuild."""
    import datetime as dt

    from trade_pipeline.lake.migrations import migrate

    path = _path_of(target)
    if path.exists():
        try:
            check_readable(path)
        except WarehouseCorrupt:
            pass
        else:
            raise WarehouseRebuildRefused(
                f"warehouse {path} reads fine: nothing to rebuild (back it up and delete it "
                "yourself to start over)")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for part in (path, path.with_name(path.name + ".wal")):
        if part.exists():
            aside = part.with_name(f"{part.name}.corrupt-{stamp}")
            os.replace(part, aside)
            moved.append(str(aside))
    with session(path) as conn:
        report = migrate(conn, lake_dir)
    return RebuildReport(str(path), moved, [f"{s.name}: {s.action}" for s in report.steps])


class WarehouseRebuildRefused(TradePipelineError, RuntimeError):
    """`rebuild` on a warehouse that reads fine."""
