"""Dagster objects for the warehouse area: thin wrappers over trade_pipeline.lake.

- One asset per migration phase, chained; a failed phase raises `dg.Failure` (its error and
  the script in the metadata), so later phases and everything downstream are blocked.
- `WAREHOUSE_READY`: add it as a dep of every asset that writes the warehouse.
- `legacy_import` (config: the SQLite path) and `raw_retention` (+ a daily schedule, stopped
  by default: enable it in the UI once the raw days you still reprocess are older than the
  configured age; `trade-pipeline restore` brings archived days back).
"""

import dagster as dg

from trade_pipeline.defs import tags
from trade_pipeline.defs.resources import DUCKDB_POOL, PipelineResource

GROUP = "warehouse"


def _phases():
    """One phase per script the runner discovers (it raises when there is none)."""
    from trade_pipeline.lake import migrations

    return [(m.version, m.asset_name, m.summary) for m in migrations.discover()]


PHASES = _phases()
WAREHOUSE_READY = dg.AssetKey(PHASES[-1][1])


def _migration_asset(version: int, name: str, description: str, deps: list[dg.AssetKey]):
    @dg.asset(name=name, deps=deps, pool=DUCKDB_POOL, group_name=GROUP, description=description,
              kinds={"duckdb"}, tags=tags.migration(version))
    def _phase(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> dg.MaterializeResult:
        from trade_pipeline.lake import migrations, warehouse

        settings = pipeline.settings().ensure_dirs()
        scripts = migrations.discover()
        script = scripts[version - 1]
        try:
            with warehouse.session(settings) as conn:
                state = {r["version"]: r["state"] for r in migrations.status(conn, scripts)}
                missing = [v for v in range(1, version) if state[v] != "applied"]
                if missing:
                    raise migrations.MigrationError(
                        f"{script.name} needs migrations {missing} applied first")
                report = migrations.migrate(conn, settings.lake_dir, to=version, migrations=scripts)
        except (migrations.MigrationError, warehouse.WarehouseCorrupt) as exc:
            raise dg.Failure(
                description=f"{script.name}: {exc}",
                metadata={"script": script.name, "checksum": script.checksum,
                          "error": dg.MetadataValue.text(str(exc)),
                          "warehouse": str(settings.warehouse_path)},
            ) from exc
        applied = [s for s in report.steps if s.version == version]
        metadata = {
            "script": script.name,
            "checksum": script.checksum,
            "action": applied[0].action if applied else "already applied",
            "seconds": applied[0].seconds if applied else 0.0,
            "warehouse": str(settings.warehouse_path),
        }
        if report.feature_sync is not None:
            metadata["feature_sync"] = dg.MetadataValue.json(report.feature_sync)
        context.log.info(f"{script.name}: {metadata['action']}")
        return dg.MaterializeResult(metadata=metadata)

    return _phase


migration_assets = []
_previous: list[dg.AssetKey] = []
for _version, _name, _doc in PHASES:
    migration_assets.append(_migration_asset(_version, _name, _doc, _previous))
    _previous = [dg.AssetKey(_name)]


class LegacyImportConfig(dg.Config):
    sqlite_path: str
    dry_run: bool = False
    max_gap_seconds: float = 10.0


@dg.asset(deps=[WAREHOUSE_READY], pool=DUCKDB_POOL, group_name=GROUP, kinds={"duckdb", "parquet"},
          tags=tags.ONE_OFF,
          description="Import an old system's SQLite l2_training_data_practical into the lake "
          "(l2_snapshots partitions); unusable rows go to legacy_quarantine with the reason.")
def legacy_import(context: dg.AssetExecutionContext, config: LegacyImportConfig,
                  pipeline: PipelineResource) -> dg.MaterializeResult:
    from trade_pipeline.lake import legacy, warehouse

    settings = pipeline.settings().ensure_dirs()
    try:
        with warehouse.session(settings) as conn:
            report = legacy.import_legacy(settings, config.sqlite_path, conn,
                                          dry_run=config.dry_run, max_gap_s=config.max_gap_seconds)
    except (legacy.LegacyImportError, warehouse.WarehouseCorrupt) as exc:
        raise dg.Failure(description=str(exc), metadata={"sqlite_path": config.sqlite_path}) from exc
    for reason, count in report.quarantined.items():
        context.log.info(f"quarantined {count} rows: {reason}")
    return dg.MaterializeResult(metadata={
        "sqlite_path": config.sqlite_path,
        "source_sha256": report.source_sha256,
        "rows_read": report.rows_read,
        "rows_imported": report.rows_imported,
        "sessions": report.sessions,
        "rows_quarantined": sum(report.quarantined.values()),
        "quarantined_by_reason": dg.MetadataValue.json(report.quarantined),
        "partitions": dg.MetadataValue.json(report.partitions),
        "dry_run": report.dry_run,
    })


class RetentionConfig(dg.Config):
    older_than_days: int = 7


@dg.asset(group_name=GROUP, kinds={"parquet"},
          description="Compact raw capture days older than N days into archive Parquet files; "
          "hot copies are deleted only after the archive is verified (line count + sha256).")
def raw_retention(context: dg.AssetExecutionContext, config: RetentionConfig,
                  pipeline: PipelineResource) -> dg.MaterializeResult:
    from trade_pipeline.lake import retention

    settings = pipeline.settings().ensure_dirs()
    report = retention.archive_old(settings, config.older_than_days)
    for f in report.files:
        if f.detail:
            context.log.warning(f"{f.action}: {f.path}: {f.detail}")
    metadata = {
        "cutoff": report.cutoff,
        "counts": dg.MetadataValue.json(report.counts()),
        "lines_archived": sum(f.lines for f in report.files if f.action.startswith("archived")),
    }
    errors = [f for f in report.files if f.action == "error"]
    if errors:
        raise dg.Failure(
            description=f"{len(errors)} raw files could not be archived (hot copies kept)",
            metadata={**metadata, "errors": dg.MetadataValue.json(
                [{"path": f.path, "detail": f.detail} for f in errors])},
        )
    return dg.MaterializeResult(metadata=metadata)


raw_retention_job = dg.define_asset_job("raw_retention_job", selection=[raw_retention])
raw_retention_schedule = dg.ScheduleDefinition(
    job=raw_retention_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
