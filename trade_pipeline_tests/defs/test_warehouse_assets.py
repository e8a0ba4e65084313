"""The warehouse's Dagster layer: phased migration assets, legacy import, retention, and two
concurrent warehouse-writing partition runs sharing the duckdb_writer pool."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from trade_pipeline.defs import warehouse as wh
from trade_pipeline.defs.resources import DUCKDB_POOL, build_resources
from trade_pipeline.lake import migrations
from trade_pipeline.lake import warehouse as wconn
from trade_pipeline_tests.lake.test_legacy import build_legacy_db

REPO_ROOT = Path(__file__).resolve().parents[2]
POOL_SETTINGS = {"concurrency": {"pools": {"default_limit": 1, "granularity": "op"}}}
PHASE_KEYS = [dg.AssetKey(name) for _, name, _ in wh.PHASES]


def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral(settings=POOL_SETTINGS)


def test_phases_run_in_order_and_are_upstream_of_writers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = dg.materialize(wh.migration_assets, resources=build_resources(str(home)),
                            instance=instance())
    assert result.success
    assert [e.asset_key for e in result.get_asset_materialization_events()] == PHASE_KEYS
    mats = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert mats[PHASE_KEYS[1]]["feature_sync"].data["created"] == 118
    assert PHASE_KEYS[-1] == wh.WAREHOUSE_READY  # the last phase, however many sql/ holds
    graph = dg.Definitions(assets=[*wh.migration_assets, wh.legacy_import],
                           resources=build_resources(str(home))).resolve_asset_graph()
    for later, earlier in zip(PHASE_KEYS[1:], PHASE_KEYS, strict=False):
        assert graph.get(later).parent_keys == {earlier}
    assert graph.get(PHASE_KEYS[1]).parent_keys == {PHASE_KEYS[0]}
    assert wh.WAREHOUSE_READY in graph.get(dg.AssetKey("legacy_import")).parent_keys
    for a in [*wh.migration_assets, wh.legacy_import]:
        assert a.op.pool == DUCKDB_POOL
    # Again: a no-op, still successful.
    again = dg.materialize(wh.migration_assets, resources=build_resources(str(home)), instance=instance())
    actions = {e.asset_key: e.materialization.metadata["action"].value
               for e in again.get_asset_materialization_events()}
    assert set(actions.values()) == {"already applied"}


def test_failed_phase_blocks_the_rest_and_shows_its_error(tmp_path: Path, monkeypatch) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrations.SQL_DIR, sql_dir)
    bad = sql_dir / "002_add_feature_metadata.sql"
    bad.write_text(bad.read_text() + "\nSELECT * FROM table_that_is_not_there;\n")
    monkeypatch.setattr(migrations, "SQL_DIR", sql_dir)
    result = dg.materialize(wh.migration_assets, resources=build_resources(str(tmp_path / "h")),
                            instance=instance(), raise_on_error=False)
    assert not result.success
    done = {e.asset_key for e in result.get_asset_materialization_events()}
    assert done == {PHASE_KEYS[0]}
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    info = failure.step_failure_data.user_failure_data
    assert "table_that_is_not_there" in info.description
    assert info.metadata["script"].value == "002_add_feature_metadata.sql"
    # 003 and later never ran: blocked by the failed 002.
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert all(k.path[-1] not in started for k in PHASE_KEYS[2:])
    with wconn.session(tmp_path / "h" / "warehouse.duckdb") as conn:
        states = [r["state"] for r in migrations.status(conn)]
    assert states == ["applied"] + ["pending"] * (len(PHASE_KEYS) - 1)


def test_legacy_import_asset(tmp_path: Path, bybit_ccxt_file: Path) -> None:
    home = tmp_path / "home"
    db = tmp_path / "legacy.db"
    truth = build_legacy_db(db, bybit_ccxt_file)
    result = dg.materialize(
        [*wh.migration_assets, wh.legacy_import], resources=build_resources(str(home)),
        instance=instance(),
        run_config=dg.RunConfig({"legacy_import": wh.LegacyImportConfig(sqlite_path=str(db))}),
    )
    assert result.success
    meta = result.asset_materializations_for_node("legacy_import")[0].metadata
    assert meta["rows_imported"].value == len(truth["rows"])
    assert meta["quarantined_by_reason"].data == truth["defects"]


def test_retention_asset_and_schedule(tmp_path: Path, bybit_delta_files) -> None:
    home = tmp_path / "home"
    day = home / "raw" / "exchange=bybit" / "symbol=BTCUSDT" / "date=2020-01-02"
    day.mkdir(parents=True)
    shutil.copy(bybit_delta_files[0], day / bybit_delta_files[0].name)
    result = dg.materialize([wh.raw_retention], resources=build_resources(str(home)),
                            instance=instance(),
                            run_config=dg.RunConfig({"raw_retention": wh.RetentionConfig(older_than_days=30)}))
    assert result.success
    meta = result.asset_materializations_for_node("raw_retention")[0].metadata
    assert meta["counts"].data == {"archived_deleted": 1}
    assert not day.exists()
    assert wh.raw_retention_schedule.cron_schedule == "30 2 * * *"


WRITER = textwrap.dedent("""
    import sys, time
    import dagster as dg
    from trade_pipeline.defs.partitions import DAILY
    from trade_pipeline.defs.resources import DUCKDB_POOL, PipelineResource, build_resources
    from trade_pipeline.defs.warehouse import WAREHOUSE_READY
    from trade_pipeline.lake import warehouse

    @dg.asset(partitions_def=DAILY, pool=DUCKDB_POOL, deps=[WAREHOUSE_READY])
    def warehouse_writer(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> None:
        started = time.time()
        with warehouse.session(pipeline.settings()) as conn:
            time.sleep(1.5)  # hold the file while writing, like a real partition load
            conn.execute("INSERT INTO predictions (timestamp, exchange, symbol, model_name,"
                         " model_version, source) VALUES (?::DATE, 'bybit', 'BTCUSDT', 'm', 1,"
                         " 'backtest')", [context.partition_key])
            conn.execute("CREATE TABLE IF NOT EXISTS test_windows (k VARCHAR, s DOUBLE, e DOUBLE)")
            conn.execute("INSERT INTO test_windows VALUES (?, ?, ?)",
                         [context.partition_key, started, time.time()])

    home, key, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start_at - time.time()))  # both runs start together
    result = dg.materialize([warehouse_writer], resources=build_resources(home),
                            partition_key=key, instance=dg.DagsterInstance.get())
    sys.exit(0 if result.success else 1)
""")


@pytest.mark.slow
@pytest.mark.postgres
def test_two_concurrent_partition_runs_share_the_pool(tmp_path: Path, pg_dsn: str) -> None:
    """The deployment's instance (deploy/dagster.yaml: PostgreSQL storage, the duckdb_writer
    pool at 1) serializes two partition runs that start together. (Dagster's SQLite storage
    cannot: its slot claim is a select then an update without a row lock, and two runs
    starting in the same few ms both got the slot: seen here now and then under load.)"""
    import shutil

    from trade_pipeline.defs.instance_setup import pin_duckdb_pool
    from trade_pipeline_tests.monitoring.test_postgres_storage import pg_env

    home = tmp_path / "home"
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), **pg_env(pg_dsn)}
    pin_duckdb_pool(env)  # creates the instance's storage once, as a deployment does
    with wconn.session(home / "warehouse.duckdb") as conn:
        migrations.migrate(conn, str(home / "lake"))
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    start_at = time.time() + 12  # after both processes imported dagster (slow under load)
    procs = [subprocess.Popen([sys.executable, str(script), str(home), day, str(start_at)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for day in ("2025-07-06", "2025-07-07")]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], json.dumps([o[1][-2000:] for o in outs])
    with wconn.session(home / "warehouse.duckdb", read_only=True) as conn:
        windows = conn.execute("SELECT k, s, e FROM test_windows ORDER BY s").fetchall()
        n = conn.execute("SELECT count(*) FROM predictions").fetchone()[0]
    assert n == 2 and {w[0] for w in windows} == {"2025-07-06", "2025-07-07"}
    # The pool (limit 1) ran the writers one after the other: the second step started only
    # after the first had finished, so neither had to wait for the file lock.
    assert windows[1][1] >= windows[0][2] - 0.05, windows
