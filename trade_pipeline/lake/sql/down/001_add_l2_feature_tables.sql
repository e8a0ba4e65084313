-- Undo phase 1. Drops the pipeline's tables (their rows are lost) and the lake views (the
-- Parquet files stay). migration_log stays: it records this rollback.
DROP VIEW IF EXISTS l2_features;
DROP VIEW IF EXISTS l2_snapshots;
DROP TABLE IF EXISTS legacy_import_log;
DROP TABLE IF EXISTS legacy_quarantine;
DROP TABLE IF EXISTS backtest_results;
DROP TABLE IF EXISTS trades;
DROP TABLE IF EXISTS predictions;
DROP TABLE IF EXISTS models;
