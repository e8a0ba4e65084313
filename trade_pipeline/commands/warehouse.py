"""CLI subcommands for the warehouse area: migrate, import-legacy, archive, restore."""

import argparse
import json
import sys
from pathlib import Path

from trade_pipeline.commands.argtypes import positive_float


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "migrate",
        help="apply, roll back or show the warehouse migrations (sql/001-003)",
        description="Apply the DuckDB warehouse migrations in sql/ (each in a transaction, "
        "recorded in migration_log), then sync feature_metadata from the feature catalog and "
        "point the lake views at the Parquet lake. Running it again is a no-op. An applied "
        "script whose file changed is an error (exit 1).",
    )
    p.add_argument("--warehouse", type=Path,
                   help="DuckDB file (default: <home>/warehouse.duckdb)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--to", type=int, metavar="N", help="apply pending migrations up to N only")
    group.add_argument("--rollback", type=int, metavar="N",
                       help="run the down scripts of migration N and every later one "
                       "(newest first), leaving N-1 applied")
    group.add_argument("--status", action="store_true", help="print each migration's state")
    group.add_argument("--rebuild", action="store_true",
                       help="replace a corrupt or truncated warehouse: move it aside "
                       "(<file>.corrupt-<time>), create a new one and rebuild the views "
                       "from the lake (the lake is only read; tables kept only in the "
                       "warehouse, such as predictions and trades, start empty)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=handle_migrate)

    p = sub.add_parser(
        "import-legacy",
        help="import the old system's SQLite l2_training_data_practical into the lake",
        description="Read a legacy SQLite database (docs/DATA_FORMATS.md 'The legacy database'), write its "
        "books as l2_snapshots partitions and put the rows it cannot use (mock/demo sources, "
        "crossed books, only level 1, bad timestamps, ...) in the warehouse table "
        "legacy_quarantine with the reason. Imports accumulate: a day an earlier legacy "
        "import wrote is merged by time (rows already there are counted, not doubled). "
        "Prints the counts per reason. Applies pending migrations first.",
    )
    p.add_argument("sqlite_file", type=Path, metavar="SQLITE_FILE")
    p.add_argument("--dry-run", action="store_true", help="report the counts, write nothing")
    p.add_argument("--max-gap-seconds", type=positive_float, default=None,
                   help="a larger gap between two rows of a symbol starts a new session "
                   "(default 10)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(func=handle_import_legacy)

    p = sub.add_parser(
        "archive",
        help="archive raw captures older than N days into Parquet and delete verified hot copies",
        description="Compact raw capture files of days older than N (UTC) into "
        "<home>/archive/raw/.../<file>.parquet; the hot file is deleted only after the archive "
        "is read back and its line count and sha256 match. Truncated files are archived up "
        "to the break and kept.",
    )
    p.add_argument("--older-than-days", type=int, default=7, metavar="N",
                   help="archive days strictly older than today - N (default 7, minimum 1)")
    p.add_argument("--dry-run", action="store_true", help="list what would be archived")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(func=handle_archive)

    p = sub.add_parser(
        "restore",
        help="restore archived raw captures into the raw store",
        description="Write archived raw files back to <home>/raw (content byte-identical to "
        "what was archived, checked by sha256). Existing hot files are never overwritten.",
    )
    p.add_argument("--date", help="only this UTC day (YYYY-MM-DD)")
    p.add_argument("--symbol", help="only this symbol, e.g. BTCUSDT")
    p.add_argument("--exchange", help="only this exchange, e.g. bybit")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=handle_restore)


def _err(msg: str) -> int:
    print(f"trade-pipeline: error: {msg}", file=sys.stderr)
    return 1


def handle_migrate(args: argparse.Namespace, settings) -> int:
    from trade_pipeline.lake import migrations, warehouse

    target = args.warehouse or settings.warehouse_path
    if args.rebuild:
        return _rebuild(target, settings, args.json)
    if args.status and not Path(target).exists():
        rows = [{"version": m.version, "name": m.name, "state": "pending"}
                for m in migrations.discover()]
        return _print_status(rows, args.json)
    try:
        with warehouse.session(target) as conn:
            if args.status:
                return _print_status(migrations.status(conn), args.json)
            if args.rollback is not None:
                report = migrations.rollback(conn, args.rollback)
            else:
                report = migrations.migrate(conn, settings.lake_dir, to=args.to)
    except migrations.MigrationError as exc:
        return _err(str(exc))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        if not report.steps:
            print("migrations: nothing to do", file=sys.stderr)
        for step in report.steps:
            print(f"{step.name}: {step.action} in {step.seconds:.2f}s", file=sys.stderr)
        if report.feature_sync is not None:
            print(f"feature_metadata sync: {report.feature_sync}", file=sys.stderr)
    return 0


def _rebuild(target, settings, as_json: bool) -> int:
    from trade_pipeline.lake import warehouse

    report = warehouse.rebuild(target, settings.lake_dir)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    for moved in report.moved_aside:
        print(f"moved aside: {moved}", file=sys.stderr)
    for step in report.steps:
        print(step, file=sys.stderr)
    print(f"rebuilt {report.warehouse}: views over the lake {settings.lake_dir}", file=sys.stderr)
    return 0


def _print_status(rows: list[dict], as_json: bool) -> int:
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    for r in rows:
        extra = f"  last error: {r['last_error']}" if r.get("last_error") else ""
        print(f"{r['version']:03d} {r['name']:40s} {r['state']:12s} {r.get('at') or ''}{extra}")
    return 0


def handle_import_legacy(args: argparse.Namespace, settings) -> int:
    from trade_pipeline.lake import legacy, migrations, warehouse
    from trade_pipeline.storage.input_files import check_input_file

    # Missing, a directory, unreadable, empty: one line, exit 2 (before any warehouse work).
    check_input_file(args.sqlite_file, "SQLITE_FILE")
    settings.ensure_dirs()
    kwargs = {} if args.max_gap_seconds is None else {"max_gap_s": args.max_gap_seconds}
    try:
        with warehouse.session(settings) as conn:
            migrations.migrate(conn, settings.lake_dir)
            report = legacy.import_legacy(settings, args.sqlite_file, conn,
                                          dry_run=args.dry_run, **kwargs)
    except migrations.MigrationError as exc:
        return _err(str(exc))
    # A LegacyImportError (not a SQLite file, no legacy table, ...) reaches the CLI's one
    # line and exit 2 like every other bad input.
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    verb = "would import" if report.dry_run else "imported"
    print(f"read {report.rows_read} rows; {verb} {report.rows_imported} rows in "
          f"{report.sessions} sessions, {len(report.partitions)} partitions")
    if report.already_in_lake or report.merged_partitions:
        print(f"{report.already_in_lake} rows already in the lake (skipped); merged with "
              f"earlier imports: {', '.join(report.merged_partitions) or 'none'}")
    quarantined = sum(report.quarantined.values())
    print(f"quarantined {quarantined} rows" + (" (table legacy_quarantine)" if not args.dry_run else ""))
    for reason, count in report.quarantined.items():
        print(f"  {reason:24s} {count}")
    return 0


def handle_archive(args: argparse.Namespace, settings) -> int:
    from trade_pipeline.lake import retention

    report = retention.archive_old(settings, args.older_than_days, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(f"cutoff {report.cutoff}: {report.counts() or 'nothing to archive'}")
        for f in report.files:
            if f.detail:
                print(f"  {f.action}: {f.path}: {f.detail}")
    return 1 if any(f.action == "error" for f in report.files) else 0


def handle_restore(args: argparse.Namespace, settings) -> int:
    from trade_pipeline.lake import retention

    outcomes = retention.restore(settings, day=args.date, symbol=args.symbol,
                                 exchange=args.exchange)
    if args.json:
        print(json.dumps([o.__dict__ for o in outcomes], indent=2))
    else:
        if not outcomes:
            print("no archived files match")
        for o in outcomes:
            print(f"{o.action:14s} {o.path} ({o.lines} lines){': ' + o.detail if o.detail else ''}")
    return 1 if any(o.action == "error" for o in outcomes) else 0
