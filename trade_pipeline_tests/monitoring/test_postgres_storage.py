"""deploy/dagster.yaml: a run's events land in PostgreSQL (real local server)."""

import shutil

import dagster as dg
import pytest

from trade_pipeline.defs import monitoring as mon
from trade_pipeline.defs.resources import build_resources
from trade_pipeline.storage.layout import PartitionKey, write_partition
from trade_pipeline_tests.conftest import REPO_ROOT
from trade_pipeline_tests.defs.test_monitoring_assets import _features

DEPLOY_YAML = REPO_ROOT / "deploy" / "dagster.yaml"
DAY = "2025-07-07"


def pg_env(dsn: str, password: str = "dummy-secret-7f3a") -> dict[str, str]:
    """The TRADE_PIPELINE_PG_* variables deploy/dagster.yaml reads, for one DSN."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(dsn)
    return {
        "TRADE_PIPELINE_PG_HOST": info.get("host", "127.0.0.1"),
        "TRADE_PIPELINE_PG_PORT": str(info.get("port", 5432)),
        "TRADE_PIPELINE_PG_USER": info.get("user", "postgres"),
        # The local server trusts loopback, so any password works: the value only proves
        # the secret is read from the environment (and never echoed; see test_security).
        "TRADE_PIPELINE_PG_PASSWORD": info.get("password") or password,
        "TRADE_PIPELINE_PG_DB": info["dbname"],
    }


def test_yaml_holds_no_literal_credentials():
    text = DEPLOY_YAML.read_text()
    import yaml

    conf = yaml.safe_load(text)
    db = conf["storage"]["postgres"]["postgres_db"]
    for field in ("hostname", "port", "username", "password", "db_name"):
        assert isinstance(db[field], dict) and set(db[field]) == {"env"}, field
    assert db["scheme"] == "postgresql+psycopg2"


@pytest.mark.postgres
def test_materialization_events_are_stored_in_postgres(pg_dsn, settings, tmp_path, monkeypatch):
    psycopg = pytest.importorskip("psycopg")
    for name, value in pg_env(pg_dsn).items():
        monkeypatch.setenv(name, value)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(DEPLOY_YAML, dagster_home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))

    write_partition(_features(), settings.lake_dir, "l2_features",
                    PartitionKey("bybit", "BTCUSDT", DAY))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        result = dg.materialize([mon.feature_stats_asset],
                                resources=build_resources(str(settings.home)),
                                partition_key=DAY, instance=instance)
        assert result.success
        run_id = result.run_id

    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT dagster_event_type, asset_key, partition FROM event_logs WHERE run_id = %s",
            (run_id,),
        ).fetchall()
        runs = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchall()
    types = {r[0] for r in rows}
    # Run-level events keep their legacy names in the event_logs table.
    assert {"PIPELINE_START", "ASSET_MATERIALIZATION", "PIPELINE_SUCCESS"} <= types, types
    assert any(r[0] == "ASSET_MATERIALIZATION" and "feature_stats" in r[1] and r[2] == DAY
               for r in rows)
    assert runs == [("SUCCESS",)]
