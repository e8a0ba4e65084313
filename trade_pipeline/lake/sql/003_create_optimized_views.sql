-- Phase 3: query views over the lake views of phase 1. DuckDB dialect; idempotent.
-- Views bind by name at query time, so re-pointing l2_snapshots / l2_features (runner's
-- refresh_views) needs no change here.

-- The newest feature row per (exchange, symbol).
CREATE OR REPLACE VIEW v_latest_l2_features AS
SELECT *
FROM l2_features
QUALIFY row_number() OVER (PARTITION BY exchange, symbol ORDER BY "timestamp" DESC) = 1;

-- Features per grid time in a fixed key order: keys, the session (continuity id: windows
-- restart at a session start), then the 118 features. Filter on exchange/symbol/date to
-- prune partitions.
CREATE OR REPLACE VIEW v_l2_feature_timeseries AS
SELECT
    "timestamp",
    exchange,
    symbol,
    date,
    session_id,
    epoch_ms("timestamp") AS timestamp_ms,
    * EXCLUDE ("timestamp", exchange, symbol, date, session_id)
FROM l2_features;

-- One row per (exchange, symbol, UTC day): coverage and a mid-price summary.
CREATE OR REPLACE VIEW v_l2_daily_summary AS
WITH snap AS (
    SELECT
        exchange,
        symbol,
        date,
        count(*)                                                   AS snapshot_rows,
        count(DISTINCT session_id)                                 AS sessions,
        min("timestamp")                                           AS first_timestamp,
        max("timestamp")                                           AS last_timestamp,
        arg_min((bid_price_1 + ask_price_1) / 2, "timestamp")      AS open_mid_price,
        max((bid_price_1 + ask_price_1) / 2)                       AS high_mid_price,
        min((bid_price_1 + ask_price_1) / 2)                       AS low_mid_price,
        arg_max((bid_price_1 + ask_price_1) / 2, "timestamp")      AS close_mid_price,
        avg((ask_price_1 - bid_price_1) / ((bid_price_1 + ask_price_1) / 2) * 1e4)
                                                                   AS avg_spread_bps,
        count(*) FILTER (WHERE bid_price_10 IS NULL OR ask_price_10 IS NULL)
                                                                   AS rows_with_missing_levels
    FROM l2_snapshots
    GROUP BY exchange, symbol, date
),
feat AS (
    SELECT exchange, symbol, date, count(*) AS feature_rows
    FROM l2_features
    GROUP BY exchange, symbol, date
)
SELECT
    snap.*,
    -- a count: 0 means no feature row was written for that day
    coalesce(feat.feature_rows, 0) AS feature_rows
FROM snap
LEFT JOIN feat USING (exchange, symbol, date);

-- Backward compatibility: the old system's table layout (DATA.md "Legacy database"), so old
-- queries keep running. Book columns come from l2_snapshots; the derived columns are the
-- FEATURES.md features of the same names (one implementation: the feature code), null where
-- no feature row exists yet. Labels are not stored in the lake (the models area computes
-- them per training run), so the target_* columns are typed NULLs; sequence_id (Bybit's
-- cross sequence) is not kept by the canonical stream and is NULL too.
-- `id` is a row number in (timestamp, exchange, symbol) order: stable only while the lake
-- does not change.
CREATE OR REPLACE VIEW l2_training_data_practical AS
SELECT
    row_number() OVER (ORDER BY s."timestamp", s.exchange, s.symbol) AS id,
    timezone('UTC', s."timestamp")                                  AS "timestamp",
    s.symbol,
    s.exchange,
    s.bid_price_1,  s.bid_size_1,  s.bid_price_2,  s.bid_size_2,
    s.bid_price_3,  s.bid_size_3,  s.bid_price_4,  s.bid_size_4,
    s.bid_price_5,  s.bid_size_5,  s.bid_price_6,  s.bid_size_6,
    s.bid_price_7,  s.bid_size_7,  s.bid_price_8,  s.bid_size_8,
    s.bid_price_9,  s.bid_size_9,  s.bid_price_10, s.bid_size_10,
    s.ask_price_1,  s.ask_size_1,  s.ask_price_2,  s.ask_size_2,
    s.ask_price_3,  s.ask_size_3,  s.ask_price_4,  s.ask_size_4,
    s.ask_price_5,  s.ask_size_5,  s.ask_price_6,  s.ask_size_6,
    s.ask_price_7,  s.ask_size_7,  s.ask_price_8,  s.ask_size_8,
    s.ask_price_9,  s.ask_size_9,  s.ask_price_10, s.ask_size_10,
    f.mid_price,
    f.spread,
    f.spread_bps,
    f.total_bid_volume_10,
    f.total_ask_volume_10,
    f.weighted_bid_price,
    f.weighted_ask_price,
    f.order_book_imbalance,
    f.microprice,
    f.price_impact_bid,
    f.price_impact_ask,
    CAST(NULL AS DOUBLE)  AS target_return_1min,
    CAST(NULL AS DOUBLE)  AS target_return_5min,
    CAST(NULL AS DOUBLE)  AS target_volatility,
    CAST(NULL AS INTEGER) AS target_direction,
    s.update_id,
    CAST(NULL AS BIGINT)  AS sequence_id,
    CAST(NULL AS DOUBLE)  AS data_quality_score,
    'lake'                AS data_source
FROM l2_snapshots AS s
LEFT JOIN l2_features AS f
    ON f.exchange = s.exchange AND f.symbol = s.symbol AND f.date = s.date
   AND f."timestamp" = s."timestamp";
