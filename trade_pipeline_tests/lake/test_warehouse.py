"""The connection helper waits for another process's file lock instead of failing."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from trade_pipeline.lake import warehouse

HOLDER = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("INSERT INTO t VALUES (1)")
conn.close()
"""


def hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_connect_waits_for_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    proc = hold_lock(db, 1.5)
    start = time.monotonic()
    conn = warehouse.connect(db, timeout_s=30)
    waited = time.monotonic() - start
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)  # the holder finished
    assert waited > 0.5
    conn.close()
    assert proc.wait(10) == 0


def test_connect_gives_up_with_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    proc = hold_lock(db, 3)
    with pytest.raises(warehouse.WarehouseLockTimeout, match="stayed locked"):
        warehouse.connect(db, timeout_s=0.5)
    proc.wait(10)


def test_read_only_on_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="trade-pipeline migrate"):
        warehouse.connect(tmp_path / "none.duckdb", read_only=True)


def test_session_closes(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with warehouse.session(db) as conn:
        conn.execute("CREATE TABLE a (x INTEGER)")
    # Closed: another process can take the lock at once.
    out = subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(db)!r})"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
