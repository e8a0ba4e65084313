"""The warehouse `models` table: one row per registered model version, its alias mirrored.

MLflow stays the source of truth (artifacts, aliases); the table lets SQL users join
predictions / backtests to what a model was trained on. Alias rule (documented in
sql/001_add_l2_feature_tables.sql): the column holds the strongest MLflow alias the version
has, 'champion' over 'challenger'; every other version of the same name gets NULL, so a
version that loses `champion` (or is superseded as `challenger`) goes back to NULL.
"""

import datetime as dt
import hashlib
import json
import math

from trade_pipeline.settings import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"

_UPSERT = """
INSERT INTO models (name, version, horizon, run_id, feature_hash, metrics, data_start, data_end)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name, version) DO UPDATE SET
    horizon = excluded.horizon, run_id = excluded.run_id,
    feature_hash = excluded.feature_hash, metrics = excluded.metrics,
    data_start = excluded.data_start, data_end = excluded.data_end
"""
_ALIASES = """
UPDATE models SET alias = CASE
    WHEN version = ? THEN 'champion'
    WHEN version = ? THEN 'challenger'
    ELSE NULL END
WHERE name = ?
"""


def feature_hash(features: list[str], versions: dict[str, int]) -> str:
    """sha256 of the ordered feature list and each feature's catalog version (the model's
    input contract; the whole-catalog hash would change when an unused feature changes)."""
    payload = json.dumps([[f, versions[f]] for f in features])
    return hashlib.sha256(payload.encode()).hexdigest()


def scalar_metrics(metrics: dict) -> dict:
    """The finite numeric metrics (per-fold lists and undefined values left out, not faked)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def _version(value) -> int | None:
    return None if value is None else int(value)


def record_version(
    settings: Settings, *, name: str, version: str | int, horizon: str, run_id: str,
    features_hash: str, metrics: dict, data_start: dt.datetime, data_end: dt.datetime,
    champion_version: str | int | None, challenger_version: str | int | None,
) -> None:
    """Upsert one version's row and set the alias column of every version of `name` from the
    current MLflow aliases, in one transaction (migrating the warehouse first if needed)."""
    from trade_pipeline.lake.warehouse import ensure_warehouse, session

    ensure_warehouse(settings)
    with session(settings) as conn:
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(_UPSERT, [name, int(version), horizon, run_id, features_hash,
                                   json.dumps(scalar_metrics(metrics)), data_start, data_end])
            conn.execute(_ALIASES, [_version(champion_version), _version(challenger_version),
                                    name])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def read_models(settings: Settings, name: str) -> list[dict]:
    """The rows of one model name, by version (for checks and tests)."""
    from trade_pipeline.lake.warehouse import session

    with session(settings, read_only=True) as conn:
        cur = conn.execute("SELECT * FROM models WHERE name = ? ORDER BY version", [name])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
