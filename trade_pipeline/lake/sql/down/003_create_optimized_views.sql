-- Undo phase 3 (views only; no data is lost).
DROP VIEW IF EXISTS l2_training_data_practical;
DROP VIEW IF EXISTS v_l2_daily_summary;
DROP VIEW IF EXISTS v_l2_feature_timeseries;
DROP VIEW IF EXISTS v_latest_l2_features;
