"""DuckDB over an object-store lake, through pyarrow datasets.

DuckDB reads `s3://` itself only with its `httpfs` extension, which is downloaded on first use
and is not available offline (the pinned DuckDB 2.0.0 has no bundled build). So for a lake on
object storage the warehouse's lake views (`l2_snapshots`, `l2_features` and the views built
on them) read a pyarrow dataset over the same files instead: pyarrow speaks S3 natively with
the same credentials and endpoint as every other lake reader (storage/lake_fs.py).

A registered dataset lives in one connection, so `register` runs on every connection that
queries the lake: `migrations.migrate` (which creates the views) and `warehouse.connect`
do it. The persistent views refer to the registered names (`_lake_<table>`); a connection
that did not register them gets DuckDB's "Table with name _lake_l2_features does not exist".
A local lake keeps DuckDB's own `read_parquet` (faster, no registration needed).
"""

import pyarrow as pa
import pyarrow.dataset as pads

from trade_pipeline.storage import lake_fs

PREFIX = "_lake_"


def relation(table: str) -> str:
    """The name the lake table is registered under on a connection."""
    return f"{PREFIX}{table}"


def dataset(lake_dir: str, table: str) -> pads.Dataset | None:
    """A pyarrow dataset over the table's committed partition files (hidden `.tmp-*` files of
    running or killed writers are skipped: pyarrow ignores names starting with '.' or '_');
    None while the table has no folder yet (migrations write its typed placeholder)."""
    import pyarrow.fs as pafs

    with lake_fs.errors(lake_dir, f"listing {table}"):
        fs, base = lake_fs.resolve(lake_dir)
        if fs.get_file_info(f"{base}/{table}").type == pafs.FileType.NotFound:
            return None
        partitioning = pads.partitioning(pa.schema([("date", pa.date32())]), flavor="hive")
        return pads.dataset(f"{base}/{table}", filesystem=fs, format="parquet",
                            partitioning=partitioning)


def register(conn, lake_dir: str, tables) -> list[str]:
    """Register the lake tables on `conn` when the lake is an object store; returns names."""
    if not lake_fs.is_object_store(lake_dir):
        return []
    names = []
    for table in tables:
        data = dataset(lake_dir, table)
        if data is not None:
            conn.register(relation(table), data)
            names.append(relation(table))
    return names
