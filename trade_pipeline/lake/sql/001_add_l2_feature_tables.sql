-- Phase 1: new tables and the lake views (low risk: creates only, never alters or drops).
-- DuckDB dialect; idempotent (IF NOT EXISTS / OR REPLACE). The runner
-- (trade_pipeline.lake.migrations) runs this file in one transaction and records it in
-- migration_log. It substitutes {{l2_snapshots_source}} and {{l2_features_source}} with
-- read_parquet('<lake>/<table>/*/*/*/part-*.parquet', hive_partitioning = true,
-- union_by_name = true) (final partition files only, never a writer's .tmp-*.parquet).
-- DuckDB fails on a glob without files, so the runner first writes one zero-row typed
-- placeholder per table (<table>/exchange=_schema/symbol=_SCHEMA/date=1970-01-01/
-- part-schema.parquet; list_partitions ignores it): the views bind on an empty lake and
-- pick up new partitions at query time without any refresh.
-- Timestamps are TIMESTAMPTZ in UTC everywhere.

-- Migration history, append-only: one row per attempt (apply or rollback) of a script.
-- The current state of a script is its latest row. The runner bootstraps this same table
-- before running 001 so that a failure of 001 itself is recorded too.
CREATE SEQUENCE IF NOT EXISTS migration_log_seq;
CREATE TABLE IF NOT EXISTS migration_log (
    id          BIGINT PRIMARY KEY DEFAULT nextval('migration_log_seq'),
    version     INTEGER NOT NULL,          -- 1, 2, 3 (the file's number)
    name        VARCHAR NOT NULL,          -- file name, e.g. 001_add_l2_feature_tables.sql
    checksum    VARCHAR NOT NULL,          -- sha256 of the up script as stored in sql/
    direction   VARCHAR NOT NULL,          -- 'up' | 'down'
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    status      VARCHAR NOT NULL,          -- 'applied' | 'rolled_back' | 'failed'
    error       VARCHAR                    -- the error text when status = 'failed'
);

-- The canonical snapshot stream (DATA.md), one row per grid time, read from the Parquet lake.
-- Columns: timestamp, exchange, symbol, bid/ask price/size 1..10, update_id,
-- received_timestamp, session_id, date (the hive partition).
CREATE OR REPLACE VIEW l2_snapshots AS SELECT * FROM {{l2_snapshots_source}};

-- The 118 features (FEATURES.md names) per grid time, read from the Parquet lake.
CREATE OR REPLACE VIEW l2_features AS SELECT * FROM {{l2_features_source}};

-- Trained models, one row per registered model version (MLflow holds the artifact).
CREATE TABLE IF NOT EXISTS models (
    name         VARCHAR NOT NULL,         -- registered model name
    version      INTEGER NOT NULL,         -- registry version
    alias        VARCHAR,                  -- 'champion' | 'challenger' | NULL, mirrors the MLflow
                                           -- alias (MLflow 3 aliases, not stages). Written by
                                           -- trade_pipeline.models.warehouse_log: a new version
                                           -- is 'challenger'; the gate sets the winner to
                                           -- 'champion'; a version that loses 'champion' (or is
                                           -- superseded as 'challenger') goes back to NULL, so
                                           -- at most one row per name holds each alias, as in
                                           -- MLflow.
    horizon      VARCHAR,                  -- label horizon, e.g. '1m'
    run_id       VARCHAR,                  -- MLflow run id
    feature_hash VARCHAR,                  -- hash of the feature names + versions it was trained on
    metrics      JSON,                     -- e.g. {"auc": 0.53, "logloss": 0.69}
    data_start   TIMESTAMPTZ,              -- training window
    data_end     TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (name, version)
);

-- Model outputs, from the backtest or from paper trading.
CREATE TABLE IF NOT EXISTS predictions (
    "timestamp"   TIMESTAMPTZ NOT NULL,    -- grid time of the features used
    exchange      VARCHAR NOT NULL,
    symbol        VARCHAR NOT NULL,
    model_name    VARCHAR NOT NULL,
    model_version INTEGER NOT NULL,
    prediction    DOUBLE,                  -- raw model output (probability / score)
    signal        INTEGER,                 -- -1 sell, 0 flat, 1 buy
    source        VARCHAR NOT NULL CHECK (source IN ('backtest', 'paper')),
    run_id        VARCHAR,                 -- the backtest / paper session id
    -- A/B role in a paper session: 'champion' = the model that trades, 'shadow' = the model
    -- scored beside it on the same rows (simulated, never traded). NULL for backtests (one
    -- model, no A/B).
    role          VARCHAR CHECK (role IN ('champion', 'shadow'))
);

-- Fills, simulated (backtest) or paper.
CREATE TABLE IF NOT EXISTS trades (
    trade_id       VARCHAR NOT NULL,
    run_id         VARCHAR NOT NULL,
    source         VARCHAR NOT NULL CHECK (source IN ('backtest', 'paper')),
    "timestamp"    TIMESTAMPTZ NOT NULL,
    exchange       VARCHAR NOT NULL,
    symbol         VARCHAR NOT NULL,
    side           VARCHAR NOT NULL CHECK (side IN ('buy', 'sell')),
    qty            DOUBLE NOT NULL,         -- base units
    price          DOUBLE NOT NULL,
    fee            DOUBLE NOT NULL,         -- quote units, positive = paid
    liquidity      VARCHAR CHECK (liquidity IN ('maker', 'taker')),
    position_after DOUBLE,                  -- base units after the fill
    realized_pnl   DOUBLE,                  -- quote units realised by this fill
    PRIMARY KEY (run_id, trade_id)
);

-- One row per backtest run.
CREATE TABLE IF NOT EXISTS backtest_results (
    run_id     VARCHAR PRIMARY KEY,
    model      VARCHAR NOT NULL,            -- '<name>/<version>' or '<name>@<alias>'
    "start"    TIMESTAMPTZ NOT NULL,
    "end"      TIMESTAMPTZ NOT NULL,
    metrics    JSON,                        -- e.g. {"sharpe": .., "max_drawdown": .., "pnl": ..}
    config     JSON,                        -- the execution assumptions (fees, latency, ...)
    created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- Legacy import (trade-pipeline import-legacy): rows of the old SQLite table that were not
-- imported, with the reason; `row_json` holds the original row as read.
CREATE TABLE IF NOT EXISTS legacy_quarantine (
    source_sha256 VARCHAR NOT NULL,         -- sha256 of the SQLite file
    legacy_id     BIGINT,                   -- its `id`
    reason        VARCHAR NOT NULL,         -- e.g. 'mock_or_demo_source', 'crossed_book'
    detail        VARCHAR,
    row_json      JSON NOT NULL,
    imported_at   TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- One row per lake partition the legacy import wrote (so a re-import may replace it, and
-- never a partition written by the ingestion pipeline).
CREATE TABLE IF NOT EXISTS legacy_import_log (
    exchange      VARCHAR NOT NULL,
    symbol        VARCHAR NOT NULL,
    date          DATE NOT NULL,
    source_sha256 VARCHAR NOT NULL,
    row_count     BIGINT NOT NULL,
    sessions      BIGINT NOT NULL,
    imported_at   TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (exchange, symbol, date)
);
