"""Dagster objects for monitoring: the `feature_stats` asset and asset checks for every asset.

Checks come from small factories, applied (`with_monitoring`, called by definitions.py) to
every asset the defs folder loads, chosen by the asset's `defs/tags.py` tags, never by its
name, so a new asset gets checks without editing this file:

- lake tables (`l2_snapshots`, `l2_features`, `feature_stats`): the partition's own rows are
  read back: `schema` (exact column names, order and types of the contract, blocking),
  `row_count` (> 0, blocking), `gap_rate` (share of missing grid times, warning);
- `raw_l2_captures`: `schema` (every file of the day in a format the readers detect) and
  `row_count` (non-empty files), both blocking; its gaps surface in `l2_snapshots.gap_rate`;
- migration assets: `applied` (their latest row in `migration_log`);
- `l2_model`: `schema` (the registered version's features and feature versions match the
  catalog, by serving's own `check_feature_spec`) and `row_count` from metadata;
- every other asset: `row_count` and `schema` from its materialization metadata
  (`dagster/row_count`, `dagster/column_schema`; `metadata_checks(..., has_gaps=True)` adds
  a `gap_rate` from `gaps` / `messages` metadata). Zero rows is a warning unless the
  materialization explains it in `empty_reason` (e.g. a backtest where no signal cleared the
  costs: a result, not a fault);
- freshness: Dagster's `FreshnessPolicy` (it superseded freshness checks and their sensor;
  the daemon evaluates it): daily-partitioned assets must have been updated in the day
  before 06:00 UTC (the daily run of yesterday's partition), so today's partition, still
  incomplete, is never overdue; other recurring assets at least weekly; one-off migrations
  and the legacy import (tagged one-off) have none. `apply_freshness_policies` attaches them
  to every asset.

Checks are not partitioned (Dagster's partitioned checks are a preview feature): inside a
partitioned run a check reads the run's partition, run on its own it reads the asset's
latest materialized partition, and its metadata names the partition it looked at.
"""

import base64
import datetime as dt
from collections.abc import Callable

import dagster as dg
import polars as pl

from trade_pipeline.defs import tags
from trade_pipeline.defs.partitions import DAILY
from trade_pipeline.defs.resources import PipelineResource
from trade_pipeline.market.schema import SNAPSHOT_SCHEMA
from trade_pipeline.monitoring.feature_stats import STATS_SCHEMA, feature_stats, summarize
from trade_pipeline.monitoring.freshness import day_gaps
from trade_pipeline.monitoring.plots import null_rate_png
from trade_pipeline.storage import tables
from trade_pipeline.storage.layout import (
    PartitionKey,
    partition_file,
    partition_footer,
    read_partition,
    write_partition,
)

FEATURE_STATS_TABLE = tables.FEATURE_STATS
MAX_GAP_RATE = 0.05  # warn above 5 % missing grid times in a day
DAILY_DEADLINE_CRON = "0 6 * * *"  # the daily run (yesterday's partition) done by 06:00 UTC
WEEKLY = dt.timedelta(days=7)
# Updated at some time in the 24 h before each 06:00 UTC deadline (or after it).
DAILY_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron=DAILY_DEADLINE_CRON, lower_bound_delta=dt.timedelta(days=1), timezone="UTC"
)
WEEKLY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=WEEKLY)


def feature_schema() -> dict[str, pl.DataType]:
    from trade_pipeline.features.batch import features_schema

    return features_schema()


def feature_names() -> list[str]:
    from trade_pipeline.features.catalog import FEATURE_NAMES

    return list(FEATURE_NAMES)


# table name -> (expected schema, whether it is a time series with a grid)
LAKE_TABLES: dict[str, tuple[Callable[[], dict], bool]] = {
    tables.SNAPSHOTS: (lambda: dict(SNAPSHOT_SCHEMA), True),
    tables.FEATURES: (feature_schema, True),
    FEATURE_STATS_TABLE: (lambda: dict(STATS_SCHEMA), False),
}


def _partition(settings, partition_key: str) -> PartitionKey:
    return PartitionKey(settings.exchange, settings.symbol, partition_key)


def _check_partition(context: dg.AssetCheckExecutionContext, asset_key) -> str | None:
    """The partition a check of a daily asset looks at: the run's, or (a check run on its
    own) the asset's latest materialized partition; None if there is none."""
    if context.has_partition_key:
        return context.partition_key
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey.from_coercible(asset_key)), limit=1
    ).records
    return records[0].partition_key if records else None


def _no_partition(asset_key) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.ERROR,
        description=f"{dg.AssetKey.from_coercible(asset_key).to_user_string()} has no "
        "materialized partition to check",
    )


# ---- the asset --------------------------------------------------------------------------


@dg.asset(
    name=FEATURE_STATS_TABLE,
    partitions_def=DAILY,
    deps=[tables.FEATURES],
    group_name="monitoring",
    tags=tags.LAKE_TABLE,
    # Follows l2_features: a new or re-materialized feature day gets its stats (the
    # automation daemon does it; backfills may select both assets as well).
    automation_condition=dg.AutomationCondition.eager(),
    kinds={"polars", "parquet"},
    description="Per-day statistics of each of the 118 features (count, mean, std, "
    "quantiles, null / NaN / inf rates): the monitor and the drift sensor read it.",
)
def feature_stats_asset(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    settings = pipeline.settings()
    key = _partition(settings, context.partition_key)
    frame = read_partition(settings.lake_dir, tables.FEATURES, key)
    if frame is None:
        raise dg.Failure(
            f"l2_features has no partition {key.relpath('l2_features')}: materialize it first"
        )
    names = [n for n in feature_names() if n in frame.columns]
    missing = sorted(set(feature_names()) - set(names))
    if missing:
        raise dg.Failure(f"l2_features partition lacks catalog features: {missing[:10]}")
    stats = feature_stats(frame, names)
    path = write_partition(stats, settings.lake_dir, FEATURE_STATS_TABLE, key)
    summary = summarize(stats, top=10)
    png = null_rate_png(stats, f"{key.exchange}/{key.symbol} {key.date}: null / NaN / inf rates")
    worst = "\n".join(
        f"| {r['feature']} | {r['null_rate']:.4%} |" for r in summary["worst_null_rates"]
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(path),
            "dagster/row_count": stats.height,
            "feature_rows": summary["rows"],
            "null_rate": summary["null_rate"],
            "inf_rate": summary["inf_rate"],
            "nan_rate": summary["nan_rate"],
            "features_with_inf_or_nan": dg.MetadataValue.json(summary["features_with_inf_or_nan"]),
            "worst_null_rates": dg.MetadataValue.md(
                "| feature | null rate |\n|---|---|\n" + worst if worst else "no nulls"
            ),
            "null_rate_plot": dg.MetadataValue.md(
                f"![null rates](data:image/png;base64,{base64.b64encode(png).decode()})"
            ),
            "dagster/column_schema": _table_schema(STATS_SCHEMA),
        }
    )


def _table_schema(schema: dict[str, pl.DataType]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(n, str(t)) for n, t in schema.items()])


# ---- check factories --------------------------------------------------------------------


def _schema_diff(actual: pl.Schema, expected: dict[str, pl.DataType]) -> list[str]:
    problems = []
    got, want = list(actual.names()), list(expected)
    if missing := [c for c in want if c not in actual]:
        problems.append(f"missing columns {missing[:10]}")
    if extra := [c for c in got if c not in expected]:
        problems.append(f"unexpected columns {extra[:10]}")
    wrong = [f"{c}: {actual[c]} != {expected[c]}" for c in want if c in actual and actual[c] != expected[c]]
    if wrong:
        problems.append(f"wrong types {wrong[:10]}")
    if not problems and got != want:
        problems.append("column order differs from the contract")
    return problems


def _check_days(context: dg.AssetCheckExecutionContext, asset_key) -> list[str]:
    """The days a check of a daily asset looks at: the run's partition, every day of a
    backfill run's range, or (a check run on its own) the asset's latest materialized
    partition; none if there is none."""
    if context.has_partition_key or context.has_partition_key_range:
        return list(context.partition_keys)
    day = _check_partition(context, asset_key)
    return [] if day is None else [day]


def _per_day(context, asset_key, check) -> dg.AssetCheckResult:
    """`check(day)` for each of `_check_days` (one result: passed when every day passes; the
    days' verdicts in the metadata)."""
    days = _check_days(context, asset_key)
    if not days:
        return _no_partition(asset_key)
    results = {day: check(day) for day in days}
    if len(results) == 1:
        return next(iter(results.values()))
    failed = [day for day, r in results.items() if not r.passed]
    first = results[failed[0]] if failed else next(iter(results.values()))
    return dg.AssetCheckResult(
        passed=not failed,
        severity=first.severity,
        description=(f"{len(failed)} of {len(results)} days fail; {failed[0]}: {first.description}"
                     if failed else f"all {len(results)} days pass"),
        metadata={"days": dg.MetadataValue.json(
            {day: {"passed": r.passed, "description": r.description} for day, r in results.items()})},
    )


def lake_table_checks(asset_key: str, table: str) -> list[dg.AssetChecksDefinition]:
    """Schema, row count (both blocking) and, for grid tables, gap rate: read from the
    partition's own Parquet file (each day of a ranged backfill run)."""
    schema_of, has_grid = LAKE_TABLES[table]

    def _absent(settings, key) -> dg.AssetCheckResult:
        if key is None:
            return _no_partition(asset_key)
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"no partition file {partition_file(settings.lake_dir, table, key)}",
            metadata={"partition": key.date},
        )

    @dg.asset_check(
        asset=asset_key, name="schema", blocking=True,
        description=f"{table}: exact column names, order and types of the contract",
    )
    def schema_check(context: dg.AssetCheckExecutionContext, pipeline: PipelineResource):
        settings = pipeline.settings()

        def check(day: str) -> dg.AssetCheckResult:
            # schema and row count come from the Parquet footer: no values read
            key = _partition(settings, day)
            footer = partition_footer(settings.lake_dir, table, key)
            if footer is None:
                return _absent(settings, key)
            schema, _ = footer
            problems = _schema_diff(schema, schema_of())
            return dg.AssetCheckResult(
                passed=not problems,
                description="; ".join(problems) or "matches the contract",
                metadata={"columns": len(schema), "partition": day},
            )

        return _per_day(context, asset_key, check)

    @dg.asset_check(
        asset=asset_key, name="row_count", blocking=True,
        description=f"{table}: the partition has rows",
    )
    def row_count_check(context: dg.AssetCheckExecutionContext, pipeline: PipelineResource):
        settings = pipeline.settings()

        def check(day: str) -> dg.AssetCheckResult:
            key = _partition(settings, day)
            footer = partition_footer(settings.lake_dir, table, key)
            if footer is None:
                return _absent(settings, key)
            rows = footer[1]
            return dg.AssetCheckResult(
                passed=rows > 0, metadata={"rows": rows, "partition": day},
                description=f"{day}: {rows} rows",
            )

        return _per_day(context, asset_key, check)

    checks = [schema_check, row_count_check]
    if has_grid:

        @dg.asset_check(
            asset=asset_key, name="gap_rate",
            description=f"{table}: share of grid times without a row between the day's first "
            f"and last row (warns above {MAX_GAP_RATE:.0%})",
        )
        def gap_rate_check(context: dg.AssetCheckExecutionContext, pipeline: PipelineResource):
            settings = pipeline.settings()

            def check(day: str) -> dg.AssetCheckResult:
                key = _partition(settings, day)
                footer = partition_footer(settings.lake_dir, table, key)
                if footer is None:
                    return _absent(settings, key)
                columns = [c for c in ("timestamp", "session_id") if c in footer[0]]
                frame = read_partition(settings.lake_dir, table, key, columns=columns)
                gaps = day_gaps(frame, settings.cadence_ms, key.date)
                return dg.AssetCheckResult(
                    passed=gaps.gap_rate is not None and gaps.gap_rate <= MAX_GAP_RATE,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=(
                        "no rows" if gaps.gap_rate is None
                        else f"{gaps.gap_rate:.2%} of grid times missing in {gaps.gaps} gaps"
                    ),
                    metadata={
                        "partition": day,
                        "gap_rate": gaps.gap_rate, "gaps": gaps.gaps, "sessions": gaps.sessions,
                        "missing_grid_times": gaps.missing_grid_times,
                        "longest_gap_s": gaps.longest_gap_s, "rows": gaps.rows,
                    },
                )

            return _per_day(context, asset_key, check)

        checks.append(gap_rate_check)
    return checks


ROW_COUNT_KEYS = ("dagster/row_count", "row_count", "rows", "messages", "files")
# Metadata an asset sets when zero rows is its correct result, saying why.
EMPTY_REASON = "empty_reason"


def _latest_metadata(
    context: dg.AssetCheckExecutionContext, asset_key: dg.AssetKey, partitioned: bool
) -> dict | None:
    # An unpartitioned asset can run inside a partitioned run (e.g. the demo job): only a
    # partitioned check filters by the run's partition.
    partition = context.partition_key if partitioned and context.has_partition_key else None
    record = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=asset_key, asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    if not record:
        return None
    return {k: v.value for k, v in record[0].asset_materialization.metadata.items()}


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def metadata_checks(
    asset_key: dg.AssetKey, partitions_def: dg.PartitionsDefinition | None, has_gaps: bool
) -> list[dg.AssetChecksDefinition]:
    """Row count, schema and (optionally) gap rate from the latest materialization's metadata."""
    name = asset_key.to_user_string()

    @dg.asset_check(
        asset=asset_key, name="row_count",
        description=f"{name} reports a positive row count ({' / '.join(ROW_COUNT_KEYS)}), "
        "or zero with the reason (`empty_reason`)",
    )
    def row_count_check(context: dg.AssetCheckExecutionContext):
        meta = _latest_metadata(context, asset_key, partitions_def is not None)
        if meta is None:
            return dg.AssetCheckResult(passed=False, description="never materialized")
        for k in ROW_COUNT_KEYS:
            if (n := _number(meta.get(k))) is not None:
                reason = str(meta.get(EMPTY_REASON) or "").strip()
                if n == 0 and reason:
                    # An empty result the asset explains (e.g. no signal cleared the costs).
                    return dg.AssetCheckResult(
                        passed=True, metadata={"key": k, "rows": n, EMPTY_REASON: reason},
                        description=f"{k} = 0: {reason}",
                    )
                # Zero rows without a reason is suspicious: a warning; the lake tables' own
                # checks are errors.
                return dg.AssetCheckResult(
                    passed=n > 0, metadata={"key": k, "rows": n}, description=f"{k} = {n:g}",
                    severity=dg.AssetCheckSeverity.WARN,
                )
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN,
            description=f"the materialization reports none of {ROW_COUNT_KEYS}",
        )

    @dg.asset_check(
        asset=asset_key, name="schema",
        description=f"{name} publishes dagster/column_schema and it did not change since the "
        "previous materialization",
    )
    def schema_check(context: dg.AssetCheckExecutionContext):
        partition = context.partition_key if context.has_partition_key else None
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key), limit=2
        ).records
        if not records:
            return dg.AssetCheckResult(passed=False, description="never materialized")
        schemas = [
            r.asset_materialization.metadata.get("dagster/column_schema") for r in records
        ]
        if schemas[0] is None:
            return dg.AssetCheckResult(
                passed=False, severity=dg.AssetCheckSeverity.WARN,
                description="the materialization publishes no dagster/column_schema",
            )
        current = [(c.name, c.type) for c in schemas[0].value.columns]
        meta = {"columns": len(current), "partition": partition or ""}
        if len(schemas) > 1 and schemas[1] is not None:
            previous = [(c.name, c.type) for c in schemas[1].value.columns]
            if previous != current:
                return dg.AssetCheckResult(
                    passed=False, metadata=meta,
                    description=f"schema changed: was {previous[:5]}..., now {current[:5]}...",
                )
        return dg.AssetCheckResult(passed=True, metadata=meta, description="schema stable")

    checks = [row_count_check, schema_check]
    if has_gaps:

        @dg.asset_check(
            asset=asset_key, name="gap_rate",
            description=f"{name}: sequence gaps per message (warns above {MAX_GAP_RATE:.0%})",
        )
        def gap_rate_check(context: dg.AssetCheckExecutionContext):
            meta = _latest_metadata(context, asset_key, partitions_def is not None)
            if meta is None:
                return dg.AssetCheckResult(passed=False, description="never materialized")
            gaps, messages = _number(meta.get("gaps")), _number(meta.get("messages"))
            if gaps is None or not messages:
                return dg.AssetCheckResult(
                    passed=False, severity=dg.AssetCheckSeverity.WARN,
                    description="the materialization reports no `gaps` and `messages`",
                )
            rate = gaps / messages
            return dg.AssetCheckResult(
                passed=rate <= MAX_GAP_RATE, severity=dg.AssetCheckSeverity.WARN,
                metadata={"gap_rate": rate, "gaps": gaps, "messages": messages},
                description=f"{gaps:g} gaps in {messages:g} messages",
            )

        checks.append(gap_rate_check)
    return checks


def raw_capture_checks(asset_key: str) -> list[dg.AssetChecksDefinition]:
    """The day's raw capture folder: every file in a known format (the readers' own format
    detection, which names what it saw otherwise), and at least one non-empty file."""

    def _files(context, pipeline: PipelineResource):
        from trade_pipeline.storage import raw_store

        settings = pipeline.settings()
        day = _check_partition(context, asset_key)
        if day is None:
            return None, []
        return day, raw_store.raw_files_for_day(settings, settings.exchange, settings.symbol, day)

    @dg.asset_check(
        asset=asset_key, name="schema", blocking=True,
        description="every capture file of the day is in a format the readers recognise",
    )
    def schema_check(context: dg.AssetCheckExecutionContext, pipeline: PipelineResource):
        from trade_pipeline.market.readers import FormatError, detect_format

        day, files = _files(context, pipeline)
        if day is None:
            return _no_partition(asset_key)
        formats, problems = {}, []
        for path in files:
            try:
                fmt = detect_format(path)
                formats[fmt] = formats.get(fmt, 0) + 1
            except FormatError as exc:  # the check's verdict, with the reader's reason
                problems.append(f"{path.name}: {exc}")
        return dg.AssetCheckResult(
            passed=not problems and bool(formats),
            description="; ".join(problems[:5]) or (f"formats {formats}" if formats else "no files"),
            metadata={"formats": dg.MetadataValue.json(formats), "bad_files": len(problems),
                      "partition": day},
        )

    @dg.asset_check(
        asset=asset_key, name="row_count", blocking=True,
        description="the day has at least one non-empty capture file",
    )
    def row_count_check(context: dg.AssetCheckExecutionContext, pipeline: PipelineResource):
        day, files = _files(context, pipeline)
        if day is None:
            return _no_partition(asset_key)
        size = sum(p.stat().st_size for p in files)
        return dg.AssetCheckResult(
            passed=bool(files) and size > 0,
            metadata={"files": len(files), "bytes": size, "partition": day},
            description=f"{day}: {len(files)} files, {size} bytes",
        )

    return [schema_check, row_count_check]


def model_checks(asset_key: dg.AssetKey) -> list[dg.AssetChecksDefinition]:
    """The registered model version of the latest materialization: its feature list and
    feature versions match the catalog (serving's own `check_feature_spec`, so a model that
    serving would refuse fails here first)."""
    from trade_pipeline.defs.resources import MlflowResource

    @dg.asset_check(
        asset=asset_key, name="schema",
        description="the registered version's features and feature versions match the catalog",
    )
    def schema_check(context: dg.AssetCheckExecutionContext, mlflow: MlflowResource):
        from trade_pipeline.models.contract import ServingError, check_feature_spec
        from trade_pipeline.models.registry import MlflowTarget, version_metadata

        meta = _latest_metadata(context, asset_key, partitioned=False)
        if meta is None or not meta.get("model_name") or not meta.get("model_version"):
            return dg.AssetCheckResult(passed=False, description="no registered version recorded")
        name, version = str(meta["model_name"]), str(meta["model_version"])
        target = MlflowTarget(mlflow.resolved_tracking_uri(), mlflow.resolved_artifact_uri())
        spec = version_metadata(target, name, version)
        try:
            check_feature_spec(spec)
        except ServingError as exc:  # the check's verdict, with serving's reason
            return dg.AssetCheckResult(passed=False, description=str(exc)[:500],
                                       metadata={"model": f"{name}/{version}"})
        return dg.AssetCheckResult(
            passed=True, description=f"{name}/{version}: {len(spec['features'])} features match",
            metadata={"model": f"{name}/{version}", "features": len(spec["features"]),
                      "feature_catalog_hash": spec.get("feature_catalog_hash", "")},
        )

    return [schema_check]


def migration_checks(asset_key: dg.AssetKey, version: int) -> list[dg.AssetChecksDefinition]:
    """A migration asset's phase is recorded as applied in migration_log (read-only query)."""

    @dg.asset_check(
        asset=asset_key, name="applied",
        description=f"migration {version:03d} is applied according to migration_log",
    )
    def applied_check(context: dg.AssetCheckExecutionContext, pipeline: PipelineResource):
        from trade_pipeline.lake.warehouse import WarehouseCorrupt, session

        settings = pipeline.settings()
        if not settings.warehouse_path.exists():
            return dg.AssetCheckResult(passed=False, description="no warehouse file yet")
        try:
            with session(settings, read_only=True) as conn:
                rows = conn.sql(
                    "SELECT status, direction, finished_at FROM migration_log WHERE version = ? "
                    "ORDER BY id DESC LIMIT 1",
                    params=[version],
                ).fetchall()
        except WarehouseCorrupt as exc:
            return dg.AssetCheckResult(passed=False, description=str(exc))
        if not rows:
            return dg.AssetCheckResult(passed=False, description="not in migration_log")
        status, direction, finished = rows[0]
        return dg.AssetCheckResult(
            passed=status == "applied" and direction == "up",
            metadata={"status": status, "direction": direction, "finished_at": str(finished)},
            description=f"latest entry: {direction} {status}",
        )

    return [applied_check]


def freshness_policy(spec: dg.AssetSpec) -> dg.FreshnessPolicy | None:
    """Daily assets: updated in the day before 06:00 UTC; other recurring assets: weekly;
    assets tagged one-off (migrations, imports): none."""
    if spec.tags.get(tags.FRESHNESS) == "none":
        return None
    if isinstance(spec.partitions_def, dg.TimeWindowPartitionsDefinition):
        return DAILY_FRESHNESS
    return WEEKLY_FRESHNESS


def _with_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
    policy = freshness_policy(spec)
    if policy is None or spec.freshness_policy is not None:  # the owning area's own wins
        return spec
    return dg.apply_freshness_policy(spec, policy)


def apply_freshness_policies(defs: dg.Definitions) -> dg.Definitions:
    """`defs` with each asset's freshness policy attached (see `freshness_policy`)."""
    assets = [
        dg.map_asset_specs(_with_policy, [a])[0]
        if isinstance(a, dg.AssetsDefinition | dg.AssetSpec) else a
        for a in defs.assets or []
    ]
    return dg.Definitions(
        assets=assets, asset_checks=defs.asset_checks, jobs=defs.jobs,
        schedules=defs.schedules, sensors=defs.sensors, resources=defs.resources,
        executor=defs.executor, loggers=defs.loggers, metadata=defs.metadata,
    )


# ---- apply them to every asset the defs folder loads ----------------------------------------


def _existing_checks(defs: dg.Definitions) -> set[tuple[dg.AssetKey, str]]:
    # A check the owning area defines already (same asset, same name) is not duplicated.
    keys = set()
    for item in [*(defs.asset_checks or []), *(defs.assets or [])]:
        if isinstance(item, dg.AssetsDefinition):
            keys |= {(k.asset_key, k.name) for k in item.check_keys}
    return keys


def _covered(key: dg.AssetKey, name: str, existing: set[tuple[dg.AssetKey, str]]) -> bool:
    """The owning area already has a check of this kind on the asset (e.g. the features
    area's `schema_matches_catalog`): one implementation, so ours is not added."""
    words = {"schema": ("schema",), "row_count": ("row_count", "rows"), "gap_rate": ("gap",)}
    mine = [n for k, n in existing if k == key]
    return any(w in n for n in mine for w in words.get(name, (name,)))


def checks_for(spec: dg.AssetSpec) -> list[dg.AssetChecksDefinition]:
    """The generic checks of one asset, chosen by its `tags.CHECKS` tag (see defs/tags.py
    and the module docstring)."""
    kind = spec.tags.get(tags.CHECKS)
    name = spec.key.to_user_string()
    if kind == "lake_table":
        if name not in LAKE_TABLES:
            raise ValueError(f"{name} is tagged a lake table but has no contract in LAKE_TABLES")
        return lake_table_checks(name, name)
    if kind == "raw_captures":
        return raw_capture_checks(name)
    if kind == "migration":
        return migration_checks(spec.key, int(spec.tags[tags.MIGRATION]))
    if kind == "model":
        # Row count from metadata (rows trained on); schema = the feature contract.
        return [metadata_checks(spec.key, None, has_gaps=False)[0], *model_checks(spec.key)]
    return metadata_checks(spec.key, spec.partitions_def, has_gaps=False)


def generic_checks(defs: dg.Definitions) -> list[dg.AssetChecksDefinition]:
    """The checks for every materializable asset of `defs` that its own area does not
    already define. Freshness is not a check: see `apply_freshness_policies`."""
    existing = _existing_checks(defs)
    checks: list[dg.AssetChecksDefinition] = []
    for item in defs.assets or []:
        if not isinstance(item, dg.AssetsDefinition) or not item.is_executable:
            continue
        for spec in item.specs:
            checks += [c for c in checks_for(spec)
                       if not _covered(spec.key, next(iter(c.check_keys)).name, existing)]
    return checks


def with_monitoring(defs: dg.Definitions) -> dg.Definitions:
    """`defs` (what the defs folder loaded) with the generic checks and freshness policies."""
    checked = dg.Definitions.merge(defs, dg.Definitions(asset_checks=generic_checks(defs)))
    return apply_freshness_policies(checked)


# Runs the assets' automation conditions (feature_stats follows l2_features). Dagster's own
# default sensor for them starts stopped, which would leave feature_stats' condition dead.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_condition_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates every asset's automation condition (e.g. feature_stats follows "
    "l2_features)",
)
