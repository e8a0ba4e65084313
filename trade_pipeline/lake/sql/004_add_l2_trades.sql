-- Phase 4: the public trade feed. DuckDB dialect; idempotent (OR REPLACE); creates views
-- only, so applying or rolling it back never touches data.
-- The runner substitutes {{l2_trades_source}} with read_parquet('<lake>/l2_trades/*/*/*/
-- part-*.parquet', hive_partitioning = true, union_by_name = true), over a zero-row typed
-- placeholder like the other lake tables, and re-points the view on every run once this
-- script is applied.

-- One row per public trade, in order of receipt within a day (the l2_trades asset writes a
-- Parquet partition per exchange/symbol/day). Columns: timestamp (the exchange's trade
-- time, UTC), exchange, symbol, trade_id (unique per exchange and symbol), side (the
-- taker's side: 'buy' lifted asks, 'sell' hit bids), price, size, received_timestamp (local
-- receive time, nullable), sequence_id (Bybit's cross sequence, nullable), date (the hive
-- partition).
CREATE OR REPLACE VIEW l2_trades AS SELECT * FROM {{l2_trades_source}};

-- One row per (exchange, symbol, UTC day): trade count, volume, taker flow and VWAP.
CREATE OR REPLACE VIEW v_l2_trades_daily_summary AS
SELECT
    exchange,
    symbol,
    date,
    count(*)                                                   AS trades,
    sum(size)                                                  AS volume,
    sum(size) FILTER (WHERE side = 'buy')                      AS taker_buy_volume,
    sum(size) FILTER (WHERE side = 'sell')                     AS taker_sell_volume,
    sum(price * size) / sum(size)                              AS vwap,
    min("timestamp")                                           AS first_trade,
    max("timestamp")                                           AS last_trade
FROM l2_trades
GROUP BY exchange, symbol, date;
