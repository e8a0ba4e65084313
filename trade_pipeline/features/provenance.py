"""Which parameters computed a feature file: a stamp in the Parquet schema metadata.

Training records the stamp of the `l2_features` rows it read (parameters and catalog hash)
with the model version; the backtest and paper trading compare it with the features they
feed the model, so a model never sees features computed differently from its training rows.
A file without a stamp (written before stamps existed, or by another tool) is read as
computed with the catalog defaults, and reported as `unstamped`.
"""

import json
import os

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trade_pipeline.features.catalog import catalog_hash, resolve_params

PARAMS_KEY = b"trade_pipeline.feature_params"
HASH_KEY = b"trade_pipeline.feature_catalog_hash"


def stamp_of(params: dict | None) -> dict:
    """The stamp of features computed with `params` (defaults filled in)."""
    merged = resolve_params(params)
    return {"params": merged, "catalog_hash": catalog_hash(merged), "stamped": True}


def stamped(frame: pl.DataFrame | pa.Table, params: dict | None) -> pa.Table:
    """`frame` as an Arrow table carrying the stamp of `params` in its schema metadata."""
    table = frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame
    st = stamp_of(params)
    meta = dict(table.schema.metadata or {})
    meta[PARAMS_KEY] = json.dumps(st["params"], sort_keys=True).encode()
    meta[HASH_KEY] = st["catalog_hash"].encode()
    return table.replace_schema_metadata(meta)


def _from_metadata(meta: dict | None) -> dict:
    if not meta or PARAMS_KEY not in meta:
        out = stamp_of(None)
        out["stamped"] = False
        return out
    params = json.loads(meta[PARAMS_KEY])
    return {"params": resolve_params(params), "catalog_hash": meta[HASH_KEY].decode(),
            "stamped": True}


def read_stamp(path: str) -> dict:
    """The stamp of one Parquet file (local path or URI); unstamped -> the defaults'."""
    if "://" in path:
        fs, inner = pafs.FileSystem.from_uri(path)
    else:
        fs, inner = pafs.LocalFileSystem(), os.path.abspath(path)
    with fs.open_input_file(inner) as src:
        return _from_metadata(pq.read_schema(src).metadata)


def combine(stamps: list[dict], what: str = "feature partitions") -> dict:
    """One stamp for several files; ValueError when they were computed differently."""
    if not stamps:
        return stamp_of(None) | {"stamped": False}
    hashes = {s["catalog_hash"] for s in stamps}
    if len(hashes) > 1:
        raise ValueError(f"{what} were computed with different feature parameters or catalog "
                         f"versions ({len(hashes)} catalog hashes): recompute them alike")
    return {**stamps[0], "stamped": all(s["stamped"] for s in stamps)}
