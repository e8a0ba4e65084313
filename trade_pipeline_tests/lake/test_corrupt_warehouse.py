"""A truncated or corrupt DuckDB warehouse: every opener says so in one line, names the file
and the way out; `migrate --rebuild` rebuilds it from the lake; the lake is never touched."""

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import dagster as dg
import pytest

from trade_pipeline.cli import main
from trade_pipeline.lake import warehouse
from trade_pipeline.storage.layout import PartitionKey, write_partition
from trade_pipeline_tests.monitoring.helpers import snapshot_frame

T0 = dt.datetime(2025, 7, 7, 10, 0, tzinfo=dt.UTC)
ROWS = 250


def _lake_digest(lake: Path) -> dict[str, str]:
    return {str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(lake.rglob("*")) if p.is_file()}


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "overwritten":
        path.write_bytes(b"not a database\n" * 1000)
    else:  # a damaged block after an intact header
        damaged = bytearray(data)
        for i in range(4096, 8192):
            damaged[i] ^= 0xFF
        path.write_bytes(bytes(damaged))


@pytest.fixture
def broken_home(settings):
    """A home with two lake partitions and a migrated warehouse."""
    for day in ("2025-07-07", "2025-07-08"):
        start = dt.datetime.fromisoformat(day).replace(hour=10, tzinfo=dt.UTC)
        write_partition(snapshot_frame(start, [100 * i for i in range(ROWS)]), settings.lake_dir,
                        "l2_snapshots", PartitionKey("bybit", "BTCUSDT", day))
    warehouse.ensure_warehouse(settings)
    return settings


def _one_line(err: str, path: Path) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(path) in lines[0] and "corrupt or truncated" in lines[0], err
    assert "restore it from a backup" in lines[0] and "migrate --rebuild" in lines[0], err
    return lines[0]


@pytest.mark.parametrize("how", ["truncated", "overwritten", "damaged_block"])
def test_every_opener_says_so_and_rebuild_restores_the_views(broken_home, how, capsys):
    settings = broken_home
    lake = Path(settings.lake_dir)
    before = _lake_digest(lake)
    _damage(settings.warehouse_path, how)
    home = ["--home", str(settings.home)]

    # migrate --status (and a plain migrate): one line, exit 2.
    for argv in (["migrate", "--status"], ["migrate"]):
        assert main([*home, *argv]) == 2
        _one_line(capsys.readouterr().err, settings.warehouse_path)

    # Every asset that opens it: the migration phases and the legacy import fail with that
    # line; the assets writing the warehouse through ensure_warehouse (l2_model,
    # backtest_results) get the same error first.
    from trade_pipeline.defs import warehouse as warehouse_area
    from trade_pipeline.defs.resources import build_resources

    result = dg.materialize(warehouse_area.migration_assets[:1],
                            resources=build_resources(str(settings.home)),
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    failure = result.get_step_failure_events()[0].step_failure_data
    _one_line(failure.user_failure_data.description, settings.warehouse_path)
    with pytest.raises(warehouse.WarehouseCorrupt) as caught:
        warehouse.ensure_warehouse(settings)
    _one_line(str(caught.value), settings.warehouse_path)

    # The monitor names it instead of a number.
    assert main([*home, "monitor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "corrupt or truncated" in report["performance"]["reason"]

    assert _lake_digest(lake) == before  # the lake is untouched

    # Rebuild: the damaged file is moved aside (kept), the views read the lake again.
    assert main([*home, "migrate", "--rebuild", "--json"]) == 0
    rebuilt = json.loads(capsys.readouterr().out)
    assert [Path(p).name.split(".corrupt-")[0] for p in rebuilt["moved_aside"]] \
        == ["warehouse.duckdb"]
    assert all(Path(p).exists() for p in rebuilt["moved_aside"])
    with warehouse.session(settings, read_only=True) as conn:
        days = conn.execute("SELECT count(*), count(DISTINCT timestamp::DATE) "
                            "FROM l2_snapshots").fetchone()
    assert days == (2 * ROWS, 2)
    assert main([*home, "migrate", "--status", "--json"]) == 0
    assert {r["state"] for r in json.loads(capsys.readouterr().out)} == {"applied"}
    assert _lake_digest(lake) == before


def test_rebuild_refuses_a_healthy_warehouse(broken_home, capsys):
    settings = broken_home
    stat = os.stat(settings.warehouse_path)
    assert main(["--home", str(settings.home), "migrate", "--rebuild"]) == 2
    assert "reads fine: nothing to rebuild" in capsys.readouterr().err
    assert os.stat(settings.warehouse_path).st_ino == stat.st_ino


def test_a_corrupt_write_ahead_log_is_named_too(broken_home, capsys):
    """A crash can leave a damaged WAL beside an intact file: replaying it fails the same way."""
    import subprocess
    import sys

    settings = broken_home
    writer = ("import duckdb, os, sys\n"
              "c = duckdb.connect(sys.argv[1])\n"
              "c.execute(\"SET wal_autocheckpoint = '1TB'\")\n"
              "c.execute('CREATE TABLE scratch AS SELECT range AS i FROM range(1000)')\n"
              "os._exit(0)\n")  # no checkpoint: the table lives only in the WAL
    subprocess.run([sys.executable, "-c", writer, str(settings.warehouse_path)], check=True)
    wal = settings.warehouse_path.with_name(settings.warehouse_path.name + ".wal")
    data = bytearray(wal.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    wal.write_bytes(bytes(data))
    assert main(["--home", str(settings.home), "migrate", "--status"]) == 2
    _one_line(capsys.readouterr().err, settings.warehouse_path)
    assert main(["--home", str(settings.home), "migrate", "--rebuild", "--json"]) == 0
    moved = json.loads(capsys.readouterr().out)["moved_aside"]
    assert sorted(Path(p).name.split(".corrupt-")[0] for p in moved) \
        == ["warehouse.duckdb", "warehouse.duckdb.wal"]
