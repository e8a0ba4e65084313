"""CLI subcommands for the features area.

`trade-pipeline features --input SNAPSHOTS.parquet --output FEATURES.parquet
[--engine batch|online]` (a stable interface: automated checks call it) and
`trade-pipeline features-reference` (regenerates docs/FEATURES_REFERENCE.md).
"""

import argparse
import json
import sys
from pathlib import Path

from trade_pipeline.commands.argtypes import json_object


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "features",
        help="compute the 118 L2 features of a snapshots Parquet file",
        description="Read l2_snapshots rows (docs/DATA_FORMATS.md schema) from a Parquet file, compute the "
        "118 features of docs/FEATURES_REFERENCE.md and write them as Parquet (zstd): columns timestamp, "
        "exchange, symbol, session_id, then the features in training order. Both engines "
        "give the same values; 'online' feeds rows one at a time like the live path.",
    )
    p.add_argument("--input", required=True, type=Path, help="snapshots Parquet file")
    p.add_argument("--output", required=True, type=Path, help="features Parquet file to write")
    p.add_argument("--engine", choices=("batch", "online"), default="batch",
                   help="batch (default, fast) or online (row by row, the live engine)")
    p.add_argument("--params", type=json_object, default={},
                   help='feature parameters as JSON, e.g. \'{"impact_qty": 2.0}\' '
                   "(default: the catalog's)")
    p.set_defaults(func=handle)

    r = sub.add_parser(
        "features-reference",
        help="write docs/FEATURES_REFERENCE.md from the feature catalog",
        description="Generate the feature reference page (names, groups, definitions, "
        "params, versions, catalog hash) from trade_pipeline.features.catalog.",
    )
    r.add_argument("--output", type=Path, default=None,
                   help="where to write (default: docs/FEATURES_REFERENCE.md in the repo)")
    r.set_defaults(func=handle_reference)


def handle(args: argparse.Namespace, settings) -> int:
    import time

    from trade_pipeline.features.batch import PARQUET_OPTIONS
    from trade_pipeline.features.catalog import KEY_COLUMNS, resolve_params
    from trade_pipeline.features.provenance import stamped
    from trade_pipeline.market.schema import BOOK_COLUMNS, SNAPSHOT_SCHEMA
    from trade_pipeline.storage.atomic import OutputError, exclusive, write_parquet_atomic
    from trade_pipeline.storage.input_files import read_parquet_input

    try:
        params = resolve_params(args.params)
    except ValueError as exc:
        print(f"trade-pipeline: error: --params: {exc}", file=sys.stderr)
        return 2
    if args.output.resolve() == args.input.resolve():
        raise OutputError(f"--output {args.output} is the --input file; write elsewhere")
    start = time.perf_counter()
    expected = {c: SNAPSHOT_SCHEMA[c] for c in (*KEY_COLUMNS, *BOOK_COLUMNS)}
    snapshots = read_parquet_input(args.input, "--input", expected, "an l2_snapshots table")
    # One writer per output from here to the rename: a second run on the same --output is
    # refused at once, and a killed run leaves the previous output whole.
    with exclusive(args.output, "--output"):
        try:
            if args.engine == "batch":
                from trade_pipeline.features.batch import compute_features

                features = compute_features(snapshots, params)
            else:
                features = _online(snapshots, params)
        except ValueError as exc:
            print(f"trade-pipeline: error: {exc}", file=sys.stderr)
            return 1
        write_parquet_atomic(stamped(features, params), args.output, "--output", **PARQUET_OPTIONS)
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": features.height, "columns": features.width,
                      "engine": args.engine, "output": str(args.output),
                      "seconds": round(seconds, 3)}))
    return 0


def _online(snapshots, params):
    """The online engine over a frame: one OnlineFeatures per (exchange, symbol) stream."""
    import numpy as np
    import polars as pl
    from rich.progress import Progress

    from trade_pipeline.features.batch import _prepare, _streams, nan_to_null
    from trade_pipeline.features.catalog import FEATURE_NAMES, KEY_COLUMNS
    from trade_pipeline.features.online import OnlineFeatures
    from trade_pipeline.market.schema import BOOK_COLUMNS

    df, streams = _streams(_prepare(snapshots))
    out = np.empty((df.height, len(FEATURE_NAMES)))
    ts = df["timestamp"].dt.epoch("us").to_numpy()
    sess = df["session_id"].to_numpy()
    book = df.select(BOOK_COLUMNS).to_numpy()
    with Progress(transient=True, console=None) as progress:
        task = progress.add_task("online features", total=df.height)
        for lo, hi in streams:
            engine = OnlineFeatures(params)
            for i in range(lo, hi):
                out[i] = engine.update_book(int(ts[i]), int(sess[i]), book[i])
                if i % 10_000 == 0:
                    progress.update(task, completed=i)
    cols = [nan_to_null(name, out[:, k]) for k, name in enumerate(FEATURE_NAMES)]
    return df.select(KEY_COLUMNS).with_columns(cols).select(*KEY_COLUMNS, *FEATURE_NAMES) \
        if df.height else pl.DataFrame(schema={**df.select(KEY_COLUMNS).schema,
                                               **{n: pl.Float64 for n in FEATURE_NAMES}})


def handle_reference(args: argparse.Namespace, settings) -> int:
    from trade_pipeline.features.reference import write_reference

    path = write_reference(args.output)
    print(json.dumps({"output": str(path)}))
    return 0
