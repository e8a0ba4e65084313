"""Everything `trade-pipeline monitor` shows, as one JSON-able dict.

Sections: freshness (per symbol), features (null / inf rates of the newest partition),
drift (PSI per feature, each champion's training window vs the newest day; champions and their
data ranges come from the MLflow registry, as for the retraining sensors), performance (IC and
hit rate of stored predictions against realized returns), paper (PnL of paper runs).
Each section carries `status`: "ok", or a plain reason why it is absent ("no champion yet",
"no warehouse yet", ...). An absent piece is said, never replaced by a number.
"""

import datetime as dt
import json
from pathlib import Path

import polars as pl

from trade_pipeline.monitoring.feature_stats import feature_stats, summarize
from trade_pipeline.monitoring.freshness import freshness_report
from trade_pipeline.settings import Settings
from trade_pipeline.storage import tables
from trade_pipeline.storage.layout import PartitionKey, list_partitions, read_partition
from trade_pipeline.storage.tables import PREDICTIONS, TRADE_LOG

FEATURES = tables.FEATURES
SNAPSHOTS = tables.SNAPSHOTS
STATS = tables.FEATURE_STATS
PERFORMANCE_DAYS = 7
ROLLING_EVERY = "1h"


def absent(reason: str, **extra) -> dict:
    return {"status": "absent", "reason": reason, **extra}


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


def _mlflow_target(settings: Settings):
    """The registry, or None when the home has no MLflow store yet (the monitor must not
    create one: a read-only view never writes)."""
    from trade_pipeline.models.registry import MlflowTarget

    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None
    return MlflowTarget(uri, settings.mlflow_artifact_uri)


def champions(settings: Settings) -> list[dict]:
    """Every registered model of this symbol (`<base>_l2_<horizon>`) holding the alias
    `champion`, with the metadata logged at training (data range, horizon, top features):
    the same `champion_info` the retraining sensors use."""
    from trade_pipeline.models.registry import champion_info, model_name

    target = _mlflow_target(settings)
    if target is None:
        return []
    prefix = model_name(settings.symbol, "1s").removesuffix("1s")  # validated symbol: [a-z0-9_]
    found = []
    for model in target.client().search_registered_models(filter_string=f"name LIKE '{prefix}%'"):
        info = champion_info(target, model.name)
        if info is not None:
            found.append({"name": model.name, **info})
    return sorted(found, key=lambda c: c["name"])


def _model_horizons(settings: Settings, pairs: list[tuple[str, int]]) -> dict:
    """(model name, version) -> horizon, from each version's logged metadata."""
    from mlflow.exceptions import MlflowException

    from trade_pipeline.models.registry import version_metadata

    target = _mlflow_target(settings)
    out = {}
    for name, version in pairs:
        try:
            meta = version_metadata(target, name, str(version)) if target else {}
        except MlflowException:  # version not in this registry: horizon stays unknown
            meta = {}
        out[(name, version)] = meta.get("horizon")
    return out


def drift_for(settings: Settings, champ: dict) -> dict:
    """PSI of every catalog feature: the champion's training window vs the newest day (the
    same `measure_drift` rule the retraining sensor applies to the top features)."""
    from trade_pipeline.features.catalog import FEATURE_NAMES
    from trade_pipeline.monitoring.drift import DriftError, champion_drift_spec, measure_drift

    head = {"model": champ["name"], "version": champ["version"],
            "horizon": champ.get("horizon")}
    latest_key = _keys(settings, FEATURES)[-1]
    try:
        spec = champion_drift_spec(champ, latest_key.date, FEATURE_NAMES)
    except DriftError as exc:
        return {**head, **absent(str(exc))}
    report = measure_drift(settings.lake_dir, settings.exchange, settings.symbol, spec)
    ranked = report.ranked()
    top = list(champ.get("top_features") or [])
    worst_top = report.worst(among=top)
    training = spec.reference
    return {
        **head,
        "status": "ok",
        "reference": {**training.as_dict(), "rows": report.reference_rows},
        "latest_date": latest_key.date,
        "latest_rows": report.current_rows,
        "latest_in_training_window": training.start.date() <= latest_key.day
        <= training.end.date(),
        "bins": spec.bins,
        "sample_rows": spec.sample_rows,
        "max_psi": ranked[0][1] if ranked else None,
        "max_psi_top_features": worst_top[1] if worst_top else None,
        "top": [{"feature": n, "psi": v, "model_top_feature": n in top} for n, v in ranked[:10]],
        "psi": report.psi,
    }


def drift_section(settings: Settings) -> dict:
    from trade_pipeline.monitoring.drift import DriftError

    champs = champions(settings)
    if not champs:
        return absent("no champion yet")
    if not _keys(settings, FEATURES):
        return absent(f"no {FEATURES} partition to compare")
    out = []
    for champ in champs:
        try:
            out.append(drift_for(settings, champ))
        except DriftError as exc:  # e.g. a feature with no finite value on one side
            out.append({"model": champ["name"], "version": champ["version"],
                        **absent(f"DriftError: {exc}")})
    return {"status": "ok", "champions": out}


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
    if not _has_table(conn, tables.PREDICTIONS):
        return absent("the warehouse has no predictions table (migrations not applied)")
    since = now - dt.timedelta(days=PERFORMANCE_DAYS)
    preds = _query(
        conn,
        "SELECT timestamp, exchange, symbol, model_name, model_version, source, role, prediction "
        f"FROM {PREDICTIONS} WHERE timestamp >= ? AND exchange = ? AND symbol = ?",
        [since, settings.exchange, settings.symbol],
    )
    if preds.is_empty():
        return absent(f"no predictions in the last {PERFORMANCE_DAYS} days")
    pairs = preds.select("model_name", "model_version").unique().rows()
    horizons = _model_horizons(settings, pairs)
    preds = preds.with_columns(
        pl.struct("model_name", "model_version")
        .map_elements(lambda r: horizons[(r["model_name"], r["model_version"])],
                      return_dtype=pl.String)
        .alias("horizon")
    )
    preds = preds.with_columns(pl.col("timestamp").dt.convert_time_zone("UTC").cast(pl.Datetime("us", "UTC")))
    days = sorted({t.date().isoformat() for t in preds["timestamp"].to_list()})
    snaps = _snapshots_for(settings, settings.exchange, settings.symbol, days)
    models = []
    # role (champion / shadow of a paper A/B; None for backtests) tells the two arms apart
    # even when both run the same version.
    for (name, version, source, role, horizon), group in preds.group_by(
        ["model_name", "model_version", "source", "role", "horizon"], maintain_order=True
    ):
        entry = {"model": name, "version": version, "source": source, "role": role,
                 "horizon": horizon, "predictions": group.height}
        if horizon is None:
            models.append({**entry, **absent("model horizon unknown (version not in the registry)")})
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
    if not _has_table(conn, tables.TRADE_LOG):
        return absent("the warehouse has no trades table (migrations not applied)")
    runs = _query(
        conn,
        "SELECT run_id, exchange, symbol, count(*) AS trades, sum(realized_pnl) AS realized_pnl, "
        "sum(fee) AS fees, sum(realized_pnl) - sum(fee) AS net_pnl, "
        "arg_max(position_after, timestamp) AS position, min(timestamp) AS first_trade, "
        f"max(timestamp) AS last_trade FROM {TRADE_LOG} WHERE source = ? "
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
    from trade_pipeline.lake.warehouse import (
        WarehouseCorrupt,
        WarehouseLockTimeout,
        corrupt_error,
        is_corrupt,
    )

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
        "drift": drift_section(settings),
    }
    try:
        conn = _warehouse(settings)
    except WarehouseLockTimeout as exc:
        busy = absent(f"warehouse busy: {exc}")
        data.update(performance=busy, paper=busy)
        return data
    except WarehouseCorrupt as exc:
        data.update(performance=absent(str(exc)), paper=absent(str(exc)))
        return data
    try:
        data["performance"] = performance_section(settings, conn, now)
        data["paper"] = paper_section(conn)
    except Exception as exc:
        if not is_corrupt(exc):
            raise
        broken = absent(str(corrupt_error(settings.warehouse_path, exc)))
        data.update(performance=broken, paper=broken)
    finally:
        if conn is not None:
            conn.close()
    return data


def to_json(data: dict) -> str:
    return json.dumps(data, indent=2, default=str, allow_nan=False)
