-- Undo phase 4 (views only; the l2_trades Parquet files stay in the lake).
DROP VIEW IF EXISTS v_l2_trades_daily_summary;
DROP VIEW IF EXISTS l2_trades;
