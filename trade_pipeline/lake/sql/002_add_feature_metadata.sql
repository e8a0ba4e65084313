-- Phase 2: feature versioning. DuckDB dialect; idempotent.
-- Rows are NOT inserted here: after this DDL the runner syncs them from the feature catalog
-- (trade_pipeline.features.catalog.metadata_rows()): new features are inserted, changed ones
-- updated with a history row, features gone from the catalog deactivated (never deleted).

-- The current definition of each feature.
CREATE TABLE IF NOT EXISTS feature_metadata (
    name               VARCHAR PRIMARY KEY,  -- FEATURES.md name, e.g. 'spread_bps'
    feature_group      VARCHAR NOT NULL,     -- the catalog's `group` (reserved word in SQL)
    description        VARCHAR,
    calculation_params JSON,                 -- e.g. {"window_rows": 50}
    version            INTEGER NOT NULL,     -- the catalog's version of the definition
    active             BOOLEAN NOT NULL,     -- false once the feature left the catalog
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

-- Every state a feature's definition has had, appended on each change (including creation).
CREATE SEQUENCE IF NOT EXISTS feature_metadata_history_seq;
CREATE TABLE IF NOT EXISTS feature_metadata_history (
    id                 BIGINT PRIMARY KEY DEFAULT nextval('feature_metadata_history_seq'),
    name               VARCHAR NOT NULL,
    feature_group      VARCHAR NOT NULL,
    description        VARCHAR,
    calculation_params JSON,
    version            INTEGER NOT NULL,
    active             BOOLEAN NOT NULL,
    change             VARCHAR NOT NULL,     -- 'created' | 'updated' | 'deactivated' | 'reactivated'
    changed_at         TIMESTAMPTZ NOT NULL
);
