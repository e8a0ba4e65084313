"""Dagster objects for the features area: the daily `l2_features` asset and its checks.

Thin: reading/writing partitions and metadata here; the maths in trade_pipeline.features.
"""

import datetime as dt
import json

import dagster as dg

from trade_pipeline.defs import tags
from trade_pipeline.defs.partitions import DAILY
from trade_pipeline.defs.resources import PipelineResource
from trade_pipeline.defs.stage_metadata import bytes_per_row, stage_metadata
from trade_pipeline.market.stage_timer import StageTimer
from trade_pipeline.storage import tables
from trade_pipeline.storage.layout import PartitionKey, read_partition, write_partition

SNAPSHOTS_TABLE = tables.SNAPSHOTS
FEATURES_TABLE = tables.FEATURES

CHECK_SCHEMA = "schema_matches_catalog"
CHECK_INF = "no_infinities"
CHECK_NULLS = "null_rates_within_warmup"


class FeaturesConfig(dg.Config):
    """Feature parameters for this run (empty: the catalog defaults)."""

    params_json: str = "{}"


@dg.asset(
    partitions_def=DAILY,
    deps=[dg.AssetKey(SNAPSHOTS_TABLE)],
    group_name="features",
    kinds={"python", "parquet"},
    tags=tags.LAKE_TABLE,
    description="The 118 L2 features (docs/FEATURES_REFERENCE.md) of one UTC day, warmed up exactly from "
    "the previous days' snapshots of the session open at midnight.",
    check_specs=[
        dg.AssetCheckSpec(CHECK_SCHEMA, asset=FEATURES_TABLE, blocking=True,
                          description="columns, order and types are the catalog's"),
        dg.AssetCheckSpec(CHECK_INF, asset=FEATURES_TABLE, blocking=True,
                          description="no feature value is +/-inf"),
        dg.AssetCheckSpec(CHECK_NULLS, asset=FEATURES_TABLE, blocking=True,
                          description="nulls only where a window is still filling after a "
                          "session start (or where the book makes a feature undefined)"),
    ],
)
def l2_features(context: dg.AssetExecutionContext, config: FeaturesConfig,
                pipeline: PipelineResource) -> dg.MaterializeResult:
    from trade_pipeline.features import quality
    from trade_pipeline.features.batch import PARQUET_OPTIONS
    from trade_pipeline.features.catalog import catalog_hash, resolve_params
    from trade_pipeline.features.provenance import stamped
    from trade_pipeline.features.warmup import compute_partition

    settings = pipeline.settings().ensure_dirs()
    key = PartitionKey(settings.exchange, settings.symbol, context.partition_key)
    params = resolve_params(json.loads(config.params_json))
    timer = StageTimer(("read", "features", "write"))
    with timer.stage("read"):
        snapshots = read_partition(settings.lake_dir, SNAPSHOTS_TABLE, key)
    if snapshots is None:
        raise dg.Failure(f"l2_snapshots has no partition {key.relpath(SNAPSHOTS_TABLE)}: "
                         "materialize l2_snapshots for this day first")

    def read_previous(k: int):
        day = (key.day - dt.timedelta(days=k)).isoformat()
        with timer.stage("read"):
            return read_partition(settings.lake_dir, SNAPSHOTS_TABLE,
                                  PartitionKey(key.exchange, key.symbol, day))

    with timer.stage("features"):  # the warm-up's reads inside count as `read` only
        features, warm = compute_partition(snapshots, read_previous, params)
    with timer.stage("write"):
        # Stamped with its parameters: training records them, backtests compare them.
        path = write_partition(stamped(features, params), settings.lake_dir, FEATURES_TABLE,
                               key, **PARQUET_OPTIONS)
    nulls = quality.null_report(features)
    problems = quality.schema_problems(features)
    infinities = quality.infinity_counts(features)
    violations = quality.null_violations(nulls)
    with_nulls = {n: e for n, e in nulls.items() if e["nulls"]}
    context.log.info(f"{key.date}: {features.height} rows, warm-up {warm.n_rows} rows")
    return dg.MaterializeResult(
        metadata={
            "rows": features.height,
            "dagster/row_count": features.height,
            "path": dg.MetadataValue.path(path),
            "bytes_per_row": bytes_per_row(path, features.height),
            **stage_metadata(timer),
            "catalog_hash": catalog_hash(params),
            "warmup_rows": warm.n_rows,
            "warmup_complete": warm.complete,
            "warmup_notes": "; ".join(warm.notes),
            "max_null_rate": max((e["rate"] for e in nulls.values()), default=0.0),
            "null_rates": dg.MetadataValue.json(
                {n: round(e["rate"], 6) for n, e in with_nulls.items()}),
        },
        check_results=[
            dg.AssetCheckResult(check_name=CHECK_SCHEMA, passed=not problems,
                                metadata={"problems": dg.MetadataValue.json(problems)}),
            dg.AssetCheckResult(check_name=CHECK_INF, passed=not infinities,
                                metadata={"infinities": dg.MetadataValue.json(infinities)}),
            dg.AssetCheckResult(check_name=CHECK_NULLS, passed=not violations,
                                metadata={"violations": dg.MetadataValue.json(violations)}),
        ],
    )
