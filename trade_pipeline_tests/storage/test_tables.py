"""The table-name constants and the SQL migrations name the same tables."""

import re

from trade_pipeline.lake.migrations import LAKE_TABLES, SQL_DIR
from trade_pipeline.storage import tables

CREATED = re.compile(r"CREATE (?:OR REPLACE )?(TABLE|VIEW)(?: IF NOT EXISTS)? ([a-z_0-9]+)")


def _created() -> dict[str, str]:
    out = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        for kind, name in CREATED.findall(path.read_text()):
            out[name] = kind
    return out


def test_every_warehouse_constant_is_a_table_of_the_migrations():
    created = _created()
    for name in (tables.MIGRATION_LOG, tables.MODELS, tables.PREDICTIONS, tables.TRADE_LOG,
                 tables.BACKTEST_RESULTS, tables.FEATURE_METADATA, tables.LEGACY_QUARANTINE):
        assert created.get(name) == "TABLE", name


def test_every_lake_table_with_a_view_is_a_view_of_the_migrations():
    created = _created()
    assert set(LAKE_TABLES) == {tables.SNAPSHOTS, tables.FEATURES, tables.TRADES}
    for name in LAKE_TABLES:
        assert created.get(name) == "VIEW", name
