"""A code location for the backfill test: the project's definitions plus one probe asset.

`warehouse_probe` stands for a daily step that writes the DuckDB warehouse: it runs in the
`duckdb_writer` pool like the project's warehouse writers, opens the file WITHOUT the lock
retry of `lake.warehouse.connect` (so a second writer at the same moment fails the run
instead of waiting), and records when it held the file.
"""

import time

import dagster as dg
import duckdb

from trade_pipeline.definitions import build_definitions
from trade_pipeline.defs.partitions import DAILY
from trade_pipeline.defs.resources import DUCKDB_POOL, PipelineResource

PROBE_TABLE = "backfill_probe"


@dg.asset(partitions_def=DAILY, deps=["l2_features"], pool=DUCKDB_POOL, group_name="test")
def warehouse_probe(context: dg.AssetExecutionContext,
                    pipeline: PipelineResource) -> dg.MaterializeResult:
    settings = pipeline.settings().ensure_dirs()
    started = time.time()
    conn = duckdb.connect(str(settings.warehouse_path))  # no retry: a held lock fails here
    try:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} "
                     "(day VARCHAR, started DOUBLE, ended DOUBLE)")
        time.sleep(1.0)  # hold the file long enough for an overlap to show
        conn.execute(f"INSERT INTO {PROBE_TABLE} VALUES (?, ?, ?)",
                     [context.partition_key, started, time.time()])
    finally:
        conn.close()
    return dg.MaterializeResult(metadata={"held_s": round(time.time() - started, 3)})


defs = dg.Definitions.merge(build_definitions(), dg.Definitions(assets=[warehouse_probe]))
