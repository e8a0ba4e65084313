-- Undo phase 2 (the catalog is the source of the rows: a re-apply restores the current ones,
-- the history is lost).
DROP TABLE IF EXISTS feature_metadata_history;
DROP SEQUENCE IF EXISTS feature_metadata_history_seq;
DROP TABLE IF EXISTS feature_metadata;
