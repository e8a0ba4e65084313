"""Everything `trade-pipeline monitor` shows, as one JSON-able dict.

Sections: freshness (per symbol), features (null / inf rates of the newest partition),
drift (PSI per feature, champion's training window vs the newest day), performance (IC and
hit rate of stored predictions against realized returns), paper (PnL of paper runs).
Each section carries `status`: "ok", or a plain reason why it is absent ("no champion yet",
"no warehouse yet", ...). An absent piece is said, never replaced by a number.
"""

import datetime as dt
import json
from collections.abc import Callable

import polars as pl

from trade_pipeline.lake.layout import PartitionKey, list_partitions, read_partition
from trade_pipeline.monitoring.feature_stats import feature_stats, summarize
from trade_pipeline.monitoring.freshness import freshness_report
from trade_pipeline.settings import Settings

FEATURES = "l2_features"
SNAPSHOTS = "l2_snapshots"
STATS = "feature_stats"
DRIFT_SAMPLE_ROWS = 200_000  # cap on each PSI sample (every k-th row, deterministic)
PERFORMANCE_DAYS = 7
ROLLING_EVERY = "1h"


def absent(reason: str, **extra) -> dict:
    return {"status": "absent", "reason": reason, **extra}


def _guard(section: Callable[[], dict], *expected: type[BaseException]) -> dict:
    """Run a section; the listed (expected, explainable) errors become an absent section
    naming the error. Anything else propagates: a bug is not a monitor state."""
    try:
        return section()
    except expected as exc:
        return absent(f"{type(exc).__name__}: {exc}")


def _keys(settings: Settings, table: str) -> list[PartitionKey]:
    return [
        k for k in list_partitions(settings.lake_dir, table)
        if (k.exchange, k.symbol) == (settings.exchange, settings.symbol)
    ]


# ---- features ----------------------------------------------------------------------------


def features_section(settings: Settings) -> dict:
    """Null / inf rates of the newest day: from the stored feature_stats partition when it
    exists for that day, else computed on the fly (the same function the asset runs)."""
    keys = _keys(settings, FEATURES)
    if not keys:
        return absent(f"no {FEATURES} partition for {settings.exchange}/{settings.symbol}")
    latest = keys[-1]
    stats = read_partition(settings.lake_dir, STATS, latest)
    source = STATS
    if stats is None:
        from trade_pipeline.features.catalog import FEATURE_NAMES

        frame = read_partition(settings.lake_dir, FEATURES, latest)
        stats = feature_stats(frame, [n for n in FEATURE_NAMES if n in frame.columns])
        source = f"{FEATURES} (computed now; feature_stats not materialized for this day)"
    return {"status": "ok", "date": latest.date, "source": source, **summarize(stats, top=5)}


# ---- warehouse-backed sections ------------------------------------------------------------


def _warehouse(settings: Settings):
    from trade_pipeline.lake.warehouse import connect

    if not settings.warehouse_path.exists():
        return None
    # Short lock wait: the monitor must not hang behind a long writer.
    return connect(settings, read_only=True, timeout_s=10)


def _query(conn, sql: str, params: list) -> pl.DataFrame:
    """A parameterized query as a polars frame (the relation API: no open cursor is left)."""
    return conn.sql(sql, params=params).pl()


def _has_table(conn, name: str) -> bool:
    found = _query(
        conn, "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ?", [name]
    )
    return bool(found["n"][0])


def champion(conn, settings: Settings) -> dict | None:
    """The newest model version with the alias `champion` in the warehouse's models table."""
    if not _has_table(conn, "models"):
        return None
    rows = _query(
        conn,
        "SELECT name, version, horizon, data_start, data_end, feature_hash, created_at "
        "FROM models WHERE alias = ? ORDER BY created_at DESC, version DESC LIMIT 1",
        ["champion"],
    )
    return rows.row(0, named=True) if rows.height else None


def _sample(frame: pl.DataFrame, limit: int) -> pl.DataFrame:
    step = max(1, -(-frame.height // limit))
    return frame.gather_every(step) if step > 1 else frame


def drift_section(settings: Settings, conn) -> dict:
    from trade_pipeline.features.catalog import FEATURE_NAMES
    from trade_pipeline.monitoring.drift import feature_psi

    champ = champion(conn, settings) if conn is not None else None
    if champ is None:
        return absent("no champion yet")
    start, end = champ["data_start"], champ["data_end"]
    if start is None or end is None:
        return absent(f"champion {champ['name']} v{champ['version']} has no recorded data range")
    keys = _keys(settings, FEATURES)
    if not keys:
        return absent(f"no {FEATURES} partition to compare")
    window = [k for k in keys if start.date() <= k.day <= end.date()]
    if not window:
        return absent(f"no {FEATURES} partition inside the training window {start}..{end}")
    reference = pl.concat(
        [read_partition(settings.lake_dir, FEATURES, k) for k in window], how="vertical_relaxed"
    ).filter(pl.col("timestamp").is_between(start, end))
    latest_key = keys[-1]
    latest = read_partition(settings.lake_dir, FEATURES, latest_key)
    names = [n for n in FEATURE_NAMES if n in reference.columns and n in latest.columns]
    psi = feature_psi(
        _sample(reference, DRIFT_SAMPLE_ROWS), _sample(latest, DRIFT_SAMPLE_ROWS), names
    )
    ranked = sorted(psi.items(), key=lambda kv: kv[1], reverse=True)
    return {
        "status": "ok",
        "champion": {k: (str(v) if isinstance(v, dt.datetime) else v) for k, v in champ.items()},
        "reference": {"start": start.isoformat(), "end": end.isoformat(),
                      "rows": reference.height},
        "latest_date": latest_key.date,
        "latest_in_training_window": start.date() <= latest_key.day <= end.date(),
        "max_psi": ranked[0][1] if ranked else None,
        "top": [{"feature": n, "psi": v} for n, v in ranked[:10]],
        "psi": psi,
    }


def _snapshots_for(settings: Settings, exchange: str, symbol: str, days: list[str]) -> pl.DataFrame | None:
    frames = []
    for day in days:
        frame = read_partition(settings.lake_dir, SNAPSHOTS, PartitionKey(exchange, symbol, day))
        if frame is not None:
            frames.append(frame)
    return pl.concat(frames, how="vertical_relaxed") if frames else None


def performance_section(settings: Settings, conn, now: dt.datetime) -> dict:
    from trade_pipeline.monitoring.performance import overall, rolling_ic, with_realized

    if conn is None:
        return absent("no warehouse yet (run `trade-pipeline migrate`)")
    if not _has_table(conn, "predictions"):
        return absent("the warehouse has no predictions table (migrations not applied)")
    since = now - dt.timedelta(days=PERFORMANCE_DAYS)
    preds = _query(
        conn,
        "SELECT p.timestamp, p.exchange, p.symbol, p.model_name, p.model_version, p.source, "
        "p.prediction, m.horizon FROM predictions p LEFT JOIN models m "
        "ON m.name = p.model_name AND m.version = p.model_version "
        "WHERE p.timestamp >= ? AND p.exchange = ? AND p.symbol = ?",
        [since, settings.exchange, settings.symbol],
    )
    if preds.is_empty():
        return absent(f"no predictions in the last {PERFORMANCE_DAYS} days")
    preds = preds.with_columns(pl.col("timestamp").dt.convert_time_zone("UTC").cast(pl.Datetime("us", "UTC")))
    days = sorted({t.date().isoformat() for t in preds["timestamp"].to_list()})
    snaps = _snapshots_for(settings, settings.exchange, settings.symbol, days)
    models = []
    for (name, version, source, horizon), group in preds.group_by(
        ["model_name", "model_version", "source", "horizon"], maintain_order=True
    ):
        entry = {"model": name, "version": version, "source": source, "horizon": horizon,
                 "predictions": group.height}
        if horizon is None:
            models.append({**entry, **absent("model horizon unknown (no row in models)")})
            continue
        if snaps is None:
            models.append({**entry, **absent(f"no {SNAPSHOTS} rows for days {days}")})
            continue
        joined, unmatched = with_realized(
            group.select("timestamp", "exchange", "symbol", "prediction"), snaps, horizon
        )
        windows = rolling_ic(joined, every=ROLLING_EVERY).tail(24).with_columns(
            pl.col("window_start").dt.to_string()
        )
        models.append({**entry, "status": "ok", "unmatched": unmatched, **overall(joined),
                       "rolling": windows.to_dicts()})
    return {"status": "ok", "since": since.isoformat(), "models": models}


def paper_section(conn) -> dict:
    if conn is None:
        return absent("no warehouse yet (run `trade-pipeline migrate`)")
    if not _has_table(conn, "trades"):
        return absent("the warehouse has no trades table (migrations not applied)")
    runs = _query(
        conn,
        "SELECT run_id, exchange, symbol, count(*) AS trades, sum(realized_pnl) AS realized_pnl, "
        "sum(fee) AS fees, sum(realized_pnl) - sum(fee) AS net_pnl, "
        "arg_max(position_after, timestamp) AS position, min(timestamp) AS first_trade, "
        "max(timestamp) AS last_trade FROM trades WHERE source = ? "
        "GROUP BY run_id, exchange, symbol ORDER BY last_trade DESC LIMIT 20",
        ["paper"],
    )
    if runs.is_empty():
        return absent("no paper trades yet (run `trade-pipeline paper`)")
    runs = runs.with_columns(pl.col("first_trade", "last_trade").cast(pl.String))
    return {
        "status": "ok",
        "runs": runs.to_dicts(),
        "total_net_pnl": float(runs["net_pnl"].sum()),
    }


# ---- all together -----------------------------------------------------------------------


def collect(settings: Settings, now: dt.datetime | None = None) -> dict:
    """The monitor's data: see the module docstring. Read-only on every store."""
    from trade_pipeline.lake.warehouse import WarehouseLockTimeout
    from trade_pipeline.monitoring.drift import DriftError

    now = now or dt.datetime.now(dt.UTC)
    fresh = freshness_report(settings, now=now)
    data: dict = {
        "generated_at": now.isoformat(),
        "home": str(settings.home),
        "exchange": settings.exchange,
        "symbol": settings.symbol,
        "freshness": {"status": "ok" if fresh["symbols"] else "absent", **fresh}
        if fresh["symbols"] else absent("no raw captures and no lake partitions yet"),
        "features": features_section(settings),
    }
    try:
        conn = _warehouse(settings)
    except WarehouseLockTimeout as exc:
        busy = absent(f"warehouse busy: {exc}")
        data.update(drift=busy, performance=busy, paper=busy)
        return data
    try:
        data["drift"] = _guard(lambda: drift_section(settings, conn), DriftError)
        data["performance"] = performance_section(settings, conn, now)
        data["paper"] = paper_section(conn)
    finally:
        if conn is not None:
            conn.close()
    return data


def to_json(data: dict) -> str:
    return json.dumps(data, indent=2, default=str, allow_nan=False)
