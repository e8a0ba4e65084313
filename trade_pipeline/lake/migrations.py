"""The migration runner for the DuckDB warehouse (`sql/NNN_*.sql`, down scripts in `sql/down/`).

- Each script runs in one transaction and is recorded in `migration_log` (append-only: one
  row per attempt; a script's state is its latest row).
- Running again is a no-op. An applied script whose file changed since (checksum) is an
  error: fix the file or write a new migration; never edit an applied one.
- `migrate(to=N)` applies pending scripts up to N; `rollback(n)` runs the down scripts of N
  and every later applied one, newest first.
- The lake views read `<lake>/<table>/exchange=*/symbol=*/date=*/part-*.parquet` (only the
  final files: `write_partition`'s temp files are `.tmp-*.parquet`). DuckDB fails on a glob
  without files, so each lake table holds one empty typed placeholder file,
  `<table>/exchange=_schema/symbol=_SCHEMA/date=1970-01-01/part-schema.parquet` (zero rows;
  `list_partitions` ignores it: its symbol is not a valid one). `refresh_views()` writes the
  placeholders if missing and re-creates the lake views of the applied migrations
  (`l2_snapshots` / `l2_features` from 001, `l2_trades` from 004); the runner calls it on
  every run.
- After phase 2's DDL the runner syncs `feature_metadata` from the feature catalog.
"""

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.lake import object_views
from trade_pipeline.market.schema import SNAPSHOT_SCHEMA, TRADE_SCHEMA
from trade_pipeline.storage import lake_fs, layout, tables
from trade_pipeline.storage.atomic import write_parquet_atomic

SQL_DIR = Path(__file__).resolve().parent / "sql"  # package data: it ships in the wheel
LAKE_TABLES = (tables.SNAPSHOTS, tables.FEATURES, tables.TRADES)
# The migration that creates each lake table's view (refresh_views re-points only those).
LAKE_VIEW_VERSION = {tables.SNAPSHOTS: 1, tables.FEATURES: 1, tables.TRADES: 4}
PLACEHOLDER_RELPATH = "exchange=_schema/symbol=_SCHEMA/date=1970-01-01/part-schema.parquet"
FEATURE_METADATA_VERSION = 2  # the migration after which the catalog is synced

# The l2_features placeholder: the keys the features code writes, then every catalog feature
# (float64), so the phase-3 views bind before the first feature partition exists. The legacy
# view's derived columns (docs/FEATURES_REFERENCE.md names) are always included.
FEATURE_KEY_SCHEMA = {
    "timestamp": pl.Datetime("us", "UTC"),
    "exchange": pl.String(),
    "symbol": pl.String(),
    "session_id": pl.Int64(),
}
LEGACY_DERIVED_FEATURES = (
    "mid_price", "spread", "spread_bps", "total_bid_volume_10", "total_ask_volume_10",
    "weighted_bid_price", "weighted_ask_price", "order_book_imbalance", "microprice",
    "price_impact_bid", "price_impact_ask",
)

# Same DDL as the top of 001 (kept identical): the runner needs the log before 001 runs, so
# that a failure of 001 itself is recorded.
BOOTSTRAP_SQL = """
CREATE SEQUENCE IF NOT EXISTS migration_log_seq;
CREATE TABLE IF NOT EXISTS migration_log (
    id          BIGINT PRIMARY KEY DEFAULT nextval('migration_log_seq'),
    version     INTEGER NOT NULL,
    name        VARCHAR NOT NULL,
    checksum    VARCHAR NOT NULL,
    direction   VARCHAR NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    status      VARCHAR NOT NULL,
    error       VARCHAR
);
"""

NAME_RE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class MigrationError(TradePipelineError, RuntimeError):
    """A migration failed or the warehouse's history disagrees with the scripts."""


class ChecksumMismatch(MigrationError):
    """An applied script was edited afterwards."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up_sql: str
    down_sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.up_sql.encode()).hexdigest()

    @property
    def asset_name(self) -> str:
        """`001_add_l2_feature_tables.sql` -> `migration_001_add_l2_feature_tables`."""
        return "migration_" + self.name.removesuffix(".sql")

    @property
    def summary(self) -> str:
        """The script's leading comment block, as one paragraph (the asset's description)."""
        lines = []
        for line in self.up_sql.splitlines():
            if not line.startswith("--"):
                break
            lines.append(line.removeprefix("--").strip())
        return " ".join(lines) or self.name


@dataclass
class StepResult:
    version: int
    name: str
    action: str  # 'applied' | 'rolled_back' | 'failed'
    seconds: float
    error: str | None = None


@dataclass
class RunReport:
    steps: list[StepResult] = field(default_factory=list)
    feature_sync: dict | None = None  # counts of the catalog sync, when it ran
    views: dict | None = None

    def as_dict(self) -> dict:
        return {
            "steps": [s.__dict__ for s in self.steps],
            "feature_sync": self.feature_sync,
            "views": self.views,
        }


def discover(sql_dir: Path | None = None) -> list[Migration]:
    """The scripts in `sql_dir` (default `SQL_DIR`), by number; each must have its down script."""
    sql_dir = SQL_DIR if sql_dir is None else sql_dir
    found = []
    for path in sorted(Path(sql_dir).glob("*.sql")):
        match = NAME_RE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration names look like 001_some_name.sql")
        down = Path(sql_dir) / "down" / path.name
        if not down.exists():
            raise MigrationError(f"{path.name}: its down script {down} is missing")
        found.append(Migration(int(match.group(1)), path.name, path.read_text(), down.read_text()))
    if not found:
        # An install without its SQL (a wheel built without package data) must not look like
        # an up-to-date warehouse.
        raise MigrationError(f"no migration scripts found in {sql_dir}")
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration numbers must be 1..n without gaps, got {versions}")
    return found


# ---- lake views ------------------------------------------------------------------------------

def _placeholder_frame(table: str) -> pl.DataFrame:
    if table == tables.SNAPSHOTS:
        schema = dict(SNAPSHOT_SCHEMA)
    elif table == tables.TRADES:
        schema = dict(TRADE_SCHEMA)
    else:
        from trade_pipeline.features.catalog import metadata_rows

        schema = dict(FEATURE_KEY_SCHEMA)
        schema.update({r["name"]: pl.Float64() for r in metadata_rows()})
        schema.update({name: pl.Float64() for name in LEGACY_DERIVED_FEATURES if name not in schema})
    return pl.DataFrame(schema=schema)


def ensure_placeholders(lake_dir: str) -> list[str]:
    """Write the zero-row typed placeholder of each lake table if missing; returns new paths."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    written = []
    for table in LAKE_TABLES:
        fs, base = layout._fs(lake_dir)
        path = f"{base}/{table}/{PLACEHOLDER_RELPATH}"
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            continue
        if "://" in lake_dir:
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            with fs.open_output_stream(path) as sink:
                pq.write_table(_placeholder_frame(table).to_arrow(), sink, compression="zstd")
        else:  # DuckDB reads it: never half-written (another migrate may be writing it too)
            write_parquet_atomic(_placeholder_frame(table), path, what="lake placeholder",
                                 wait_s=30.0, compression="zstd")
        written.append(path)
    return written


def lake_glob(lake_dir: str, table: str) -> str:
    """The table's final partition files (`part-*.parquet`, never writers' `.tmp-*` files)."""
    return layout.table_glob(lake_dir, table)


def lake_source(lake_dir: str, table: str) -> str:
    if lake_fs.is_object_store(lake_dir):  # no httpfs offline: pyarrow datasets (object_views)
        return object_views.relation(table)
    glob = lake_glob(lake_dir, table).replace("'", "''")
    return f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"


def render(sql: str, lake_dir: str) -> str:
    out = sql
    for table in LAKE_TABLES:
        out = out.replace("{{" + table + "_source}}", lake_source(lake_dir, table))
    if "{{" in out:
        raise MigrationError(f"unknown placeholder in script: {re.findall(r'{{[^}]*}}', out)}")
    return out


def refresh_views(conn: duckdb.DuckDBPyConnection, lake_dir: str) -> dict:
    """Point the lake views of the applied migrations at `lake_dir` (writing the placeholders
    if they are missing). A no-op before migration 001 is applied. Returns what it did."""
    placeholders = ensure_placeholders(lake_dir)
    object_views.register(conn, lake_dir, LAKE_TABLES)
    applied = _applied(conn)
    if 1 not in applied:
        return {"placeholders_written": placeholders, "views": "not created (001 not applied)"}
    tables = [t for t in LAKE_TABLES if LAKE_VIEW_VERSION[t] in applied]
    for table in tables:
        conn.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM {lake_source(lake_dir, table)}")
    return {"placeholders_written": placeholders, "views": tables}


# ---- history ---------------------------------------------------------------------------------

def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _bootstrap(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(BOOTSTRAP_SQL)


def _has_log(conn: duckdb.DuckDBPyConnection) -> bool:
    return bool(conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main'"
        " AND table_name = 'migration_log'").fetchall()[0][0])


def _latest_rows(conn: duckdb.DuckDBPyConnection) -> dict[int, dict]:
    """version -> latest successful log row (applied or rolled_back); failures are history.
    Read-only: a warehouse without migration_log has nothing applied."""
    if not _has_log(conn):
        return {}
    rows = conn.execute(
        """
        SELECT version, name, checksum, status, finished_at
        FROM migration_log
        WHERE status IN ('applied', 'rolled_back')
        QUALIFY row_number() OVER (PARTITION BY version ORDER BY id DESC) = 1
        """
    ).fetchall()
    return {
        r[0]: {"name": r[1], "checksum": r[2], "status": r[3], "finished_at": r[4]} for r in rows
    }


def _applied(conn: duckdb.DuckDBPyConnection) -> dict[int, dict]:
    return {v: r for v, r in _latest_rows(conn).items() if r["status"] == "applied"}


def _check_history(migrations: list[Migration], applied: dict[int, dict]) -> None:
    by_version = {m.version: m for m in migrations}
    unknown = sorted(set(applied) - set(by_version))
    if unknown:
        raise MigrationError(
            f"the warehouse has migrations {unknown} applied that this code does not know "
            "(a newer version wrote it?)"
        )
    changed = [
        f"{m.name} (applied {applied[m.version]['checksum'][:12]}, file {m.checksum[:12]})"
        for m in migrations
        if m.version in applied and applied[m.version]["checksum"] != m.checksum
    ]
    if changed:
        raise ChecksumMismatch(
            "applied migration scripts were edited afterwards: "
            + "; ".join(changed)
            + ". Restore the applied text, or roll back first and re-apply."
        )


def _log(conn, m: Migration, direction: str, started: dt.datetime, status: str,
         error: str | None = None) -> None:
    conn.execute(
        "INSERT INTO migration_log (version, name, checksum, direction, started_at, finished_at,"
        " status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [m.version, m.name, m.checksum, direction, started, _now(), status, error],
    )


def _run_step(conn, m: Migration, direction: str, sql: str,
              after: Callable[[], None] | None = None) -> StepResult:
    started = _now()
    clock = dt.datetime.now().timestamp()
    status = "applied" if direction == "up" else "rolled_back"
    try:
        conn.execute("BEGIN TRANSACTION")
        conn.execute(sql)
        if after is not None:
            after()
        _log(conn, m, direction, started, status)
        conn.execute("COMMIT")
    except Exception as exc:
        conn.execute("ROLLBACK")
        error = f"{type(exc).__name__}: {exc}"
        _log(conn, m, direction, started, "failed", error)
        raise MigrationError(f"{m.name} ({direction}) failed and was rolled back: {error}") from exc
    return StepResult(m.version, m.name, status, dt.datetime.now().timestamp() - clock)


# ---- feature catalog sync ------------------------------------------------------------------

def catalog_rows() -> list[dict]:
    from trade_pipeline.features.catalog import metadata_rows

    return metadata_rows()


def sync_feature_metadata(conn: duckdb.DuckDBPyConnection, rows: list[dict]) -> dict:
    """Make `feature_metadata` match the catalog rows: insert new features, update changed
    ones, deactivate those gone (never delete), and append each change to the history.

    The catalog's version is the truth: a changed calculation_params (or a lower version)
    without a higher version is an error, since models record the versions they were trained
    on. Description/group edits at the same version are recorded as 'updated'."""
    now = _now()
    current = {
        r[0]: {"feature_group": r[1], "description": r[2], "calculation_params": r[3],
               "version": r[4], "active": r[5]}
        for r in conn.execute(
            "SELECT name, feature_group, description, calculation_params::VARCHAR, version, active"
            " FROM feature_metadata"
        ).fetchall()
    }
    counts = {"created": 0, "updated": 0, "deactivated": 0, "reactivated": 0, "unchanged": 0}
    seen = set()
    changes: list[tuple[dict, str]] = []
    for row in rows:
        name = row["name"]
        if name in seen:
            raise MigrationError(f"feature catalog lists {name!r} twice")
        seen.add(name)
        params = json.dumps(json.loads(row["calculation_params"] or "{}"), sort_keys=True)
        new = {"feature_group": row["group"], "description": row["description"],
               "calculation_params": params, "version": int(row["version"]),
               "active": bool(row["active"])}
        old = current.get(name)
        if old is None:
            changes.append(({"name": name, **new}, "created"))
            continue
        old_params = json.dumps(json.loads(old["calculation_params"] or "{}"), sort_keys=True)
        if new["version"] < old["version"]:
            raise MigrationError(
                f"feature {name!r}: catalog version {new['version']} is lower than the "
                f"warehouse's {old['version']}"
            )
        if old_params != params and new["version"] == old["version"]:
            raise MigrationError(
                f"feature {name!r}: calculation_params changed ({old_params} -> {params}) but "
                f"its version stayed {old['version']}: bump the version in the catalog"
            )
        same = {**old, "calculation_params": old_params} == new
        if same:
            counts["unchanged"] += 1
            continue
        kind = "reactivated" if new["active"] and not old["active"] else (
            "deactivated" if old["active"] and not new["active"] else "updated")
        changes.append(({"name": name, **new}, kind))
    for name, old in current.items():
        if name not in seen and old["active"]:
            changes.append(({"name": name, **old, "active": False}, "deactivated"))
    for state, kind in changes:
        counts[kind] += 1
        values = [state["name"], state["feature_group"], state["description"],
                  state["calculation_params"], state["version"], state["active"]]
        if kind == "created":
            conn.execute(
                "INSERT INTO feature_metadata (name, feature_group, description,"
                " calculation_params, version, active, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [*values, now, now])
        else:
            conn.execute(
                "UPDATE feature_metadata SET feature_group = ?, description = ?,"
                " calculation_params = ?, version = ?, active = ?, updated_at = ? WHERE name = ?",
                [*values[1:], now, state["name"]])
        conn.execute(
            "INSERT INTO feature_metadata_history (name, feature_group, description,"
            " calculation_params, version, active, change, changed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [*values, kind, now])
    return counts


# ---- public entry points ---------------------------------------------------------------------

def status(conn: duckdb.DuckDBPyConnection, migrations: list[Migration] | None = None) -> list[dict]:
    """One dict per script: version, name, state ('applied' | 'pending' | 'rolled_back' |
    'changed'), checksums, when; plus the last failure if it is newer than the last success."""
    migrations = discover() if migrations is None else migrations
    latest = _latest_rows(conn)
    if not _has_log(conn):
        return [{"version": m.version, "name": m.name, "state": "pending", "checksum": m.checksum,
                 "applied_checksum": None, "at": None} for m in migrations]
    failures = {
        r[0]: {"error": r[1], "at": r[2]}
        for r in conn.execute(
            "SELECT version, error, finished_at FROM migration_log WHERE status = 'failed'"
            " QUALIFY row_number() OVER (PARTITION BY version ORDER BY id DESC) = 1"
        ).fetchall()
    }
    out = []
    for m in migrations:
        row = latest.get(m.version)
        state = "pending" if row is None else row["status"]
        if row is not None and row["status"] == "applied" and row["checksum"] != m.checksum:
            state = "changed"
        entry = {
            "version": m.version, "name": m.name, "state": state,
            "checksum": m.checksum, "applied_checksum": row["checksum"] if row else None,
            "at": row["finished_at"].isoformat() if row and row["finished_at"] else None,
        }
        fail = failures.get(m.version)
        if fail and (row is None or (fail["at"] and row["finished_at"] and fail["at"] > row["finished_at"])):
            entry["last_error"] = fail["error"]
        out.append(entry)
    return out


def migrate(
    conn: duckdb.DuckDBPyConnection,
    lake_dir: str,
    *,
    to: int | None = None,
    migrations: list[Migration] | None = None,
    feature_rows: Callable[[], list[dict]] = catalog_rows,
) -> RunReport:
    """Apply pending migrations up to `to` (default: all), then sync the feature catalog
    (when 002 is applied) and refresh the lake views. Raises MigrationError on the first
    failure (which is rolled back and logged); earlier steps stay applied."""
    migrations = discover() if migrations is None else migrations
    target = len(migrations) if to is None else to
    if not 0 <= target <= len(migrations):
        raise MigrationError(f"--to {to}: expected 0..{len(migrations)}")
    ensure_placeholders(lake_dir)
    object_views.register(conn, lake_dir, LAKE_TABLES)
    _bootstrap(conn)
    applied = _applied(conn)
    _check_history(migrations, applied)
    report = RunReport()
    for m in migrations:
        if m.version > target:
            break
        if m.version in applied:
            continue
        missing_below = [v for v in range(1, m.version) if v not in applied]
        if missing_below:
            raise MigrationError(f"cannot apply {m.name}: migrations {missing_below} are not applied")
        after = None
        if m.version == FEATURE_METADATA_VERSION:
            def after() -> None:
                report.feature_sync = sync_feature_metadata(conn, feature_rows())
        report.steps.append(_run_step(conn, m, "up", render(m.up_sql, lake_dir), after))
        applied[m.version] = {"checksum": m.checksum}
    if FEATURE_METADATA_VERSION in applied and report.feature_sync is None:
        # Re-sync on every run: a no-op unless the catalog changed since.
        conn.execute("BEGIN TRANSACTION")
        try:
            report.feature_sync = sync_feature_metadata(conn, feature_rows())
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
    report.views = refresh_views(conn, lake_dir)
    return report


def rollback(
    conn: duckdb.DuckDBPyConnection,
    version: int,
    *,
    migrations: list[Migration] | None = None,
) -> RunReport:
    """Run the down scripts of migration `version` and every later applied one, newest first
    (the schema ends at `version - 1`)."""
    migrations = discover() if migrations is None else migrations
    if not 1 <= version <= len(migrations):
        raise MigrationError(f"--rollback {version}: expected 1..{len(migrations)}")
    _bootstrap(conn)
    applied = _applied(conn)
    _check_history(migrations, applied)
    report = RunReport()
    for m in reversed(migrations):
        if m.version < version or m.version not in applied:
            continue
        report.steps.append(_run_step(conn, m, "down", m.down_sql))
    return report
