"""Walk-forward, traded: the stitched out-of-sample predictions through the backtest engine.

`models/walkforward.py` retrains window by window and stitches the predictions; here they are
traded exactly like a backtest (`backtest.run_signals`: latency, book walking, taker fees
from the same `ExecutionConfig`), each row with the thresholds of the decision rule of the
model that predicted it (or an explicit `[strategy] entry_threshold`). Then:

- the stitched predictions go to the lake table `walkforward_predictions` (one partition per
  UTC day of the tested rows; the latest run covering a day replaces it), with the window
  id, the run id and the time the window's model was trained to;
- the traded run is recorded like a backtest (`backtest_results`, `trades`; model
  `walkforward:<run id>`), and an MLflow run (experiment `walkforward/<exchange>/<symbol>`)
  holds the configuration, the figures and the plots (IC per window, cumulative net PnL,
  IC decay against model age);
- the recommended retraining interval is set as the tag `recommended_retrain_every` of the
  registered model of that horizon and task (when it exists): the staleness sensor reads it.

`walkforward_command` is what the CLI and the `walkforward_results` asset run; its summary
holds the output contract of `trade-pipeline walkforward --json`.
"""

import io

import numpy as np
import polars as pl

from trade_pipeline.settings import Settings, SettingsError
from trade_pipeline.storage import tables
from trade_pipeline.trading.backtest import BacktestResult, run_signals
from trade_pipeline.trading.engine import TradingConfig
from trade_pipeline.trading.strategy import next_signal

TABLE = tables.WALKFORWARD_PREDICTIONS
EXPERIMENT_PREFIX = "walkforward"
RETRAIN_TAG = "recommended_retrain_every"
TS = pl.Datetime("us", "UTC")


def trade_predictions(frame: pl.DataFrame, predictions: pl.DataFrame,
                      config: TradingConfig) -> BacktestResult:
    """Trade the stitched predictions on their rows of `frame` (feature or snapshot rows:
    they carry the book the engine fills against)."""
    rows = frame.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC").cast(TS)).join(
        predictions.select("timestamp", "expected_return", "entry_threshold", "exit_threshold"),
        on="timestamp", how="inner").sort("timestamp")
    if rows.height == 0:
        raise SettingsError("no feature row matches the walk-forward predictions")
    s = config.strategy
    er = rows["expected_return"].to_numpy()
    if s.entry_threshold is not None:
        entry = np.full(rows.height, float(s.entry_threshold))
        exit_ = np.full(rows.height, float(s.exit_threshold or 0.0))
        source = "config"
    else:
        entry, exit_ = rows["entry_threshold"].to_numpy(), rows["exit_threshold"].to_numpy()
        source = "model"
    signals = np.zeros(rows.height, dtype=np.int8)
    prev = 0
    for i, (e, a, b) in enumerate(zip(er.tolist(), entry.tolist(), exit_.tolist(), strict=True)):
        prev = next_signal(prev, e, a, b)
        signals[i] = prev
    result = run_signals(rows, signals, config)
    result.counts = {"rows": rows.height, "rows_with_prediction": rows.height,
                     "unmatched_predictions": predictions.height - rows.height,
                     "threshold_source": source}
    result.provenance = {"thresholds": {"source": source}, "out_of_sample": {
        "in_sample": False, "note": "every row predicted by a model trained before it"}}
    return result


def contract_figures(wf_summary: dict, bt: BacktestResult) -> dict:
    """The output contract of `walkforward --json` (plus the engine's details)."""
    m = bt.metrics
    initial = m["initial_capital"]
    gross = (m["pnl"] + m["fees_paid"] + m["funding_paid"]) / initial
    return {
        "windows": wf_summary["windows"], "oos_n": wf_summary["oos_n"],
        "oos_ic": wf_summary["oos_ic"], "oos_ic_ci": wf_summary["oos_ic_ci"],
        "trades": int(m["n_fills"]), "round_trips": int(m["n_round_trips"]),
        "gross_return": gross, "net_return": m["total_return"], "fees_paid": m["fees_paid"],
        "max_drawdown": m["max_drawdown"], "sharpe_1m": m["sharpe_1m"],
        "recommended_retrain_every": wf_summary["recommended_retrain_every"],
    }


# ---- plots -------------------------------------------------------------------------------

def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def plots(wf_summary: dict, bt: BacktestResult) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    per = wf_summary["per_window"]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar([w["window"] for w in per], [w["ic"] if w["ic"] is not None else np.nan for w in per])
    ax.axhline(wf_summary["oos_ic"] or 0.0, color="tab:red", lw=1,
               label=f"pooled OOS IC {wf_summary['oos_ic'] or 0:.4f}")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("window")
    ax.set_ylabel("out-of-sample IC")
    ax.set_title("IC per walk-forward window")
    ax.legend()
    fig.tight_layout()
    out["ic_per_window.png"] = _png(fig)

    times = np.asarray(bt.ts_us, dtype="datetime64[us]")
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(times, bt.equity - bt.metrics["initial_capital"], lw=0.8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("cumulative net PnL (quote)")
    ax.set_title(f"walk-forward, traded after costs: {bt.metrics['n_fills']} fills")
    fig.autofmt_xdate()
    fig.tight_layout()
    out["cumulative_net_pnl.png"] = _png(fig)

    decay = wf_summary["ic_decay"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ages = [d["age"] for d in decay]
    ic = np.array([d["ic"] if d["ic"] is not None else np.nan for d in decay])
    lo = np.array([d["ci_low"] if d["ci_low"] is not None else np.nan for d in decay])
    hi = np.array([d["ci_high"] if d["ci_high"] is not None else np.nan for d in decay])
    ax.plot(ages, ic, marker="o")
    ax.fill_between(ages, lo, hi, alpha=0.25)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("model age (test periods after its training)")
    ax.set_ylabel("IC (95% block-bootstrap CI)")
    ax.set_title(f"IC decay; retrain every: {wf_summary['recommended_retrain_every']}")
    fig.tight_layout()
    out["ic_decay.png"] = _png(fig)
    return out


# ---- storage -----------------------------------------------------------------------------

def write_predictions(settings: Settings, predictions: pl.DataFrame, run_id: str) -> list[str]:
    """The stitched predictions as `walkforward_predictions` partitions (one per UTC day)."""
    from trade_pipeline.storage.layout import PartitionKey, write_partition

    frame = predictions.with_columns(
        pl.lit(settings.exchange).alias("exchange"), pl.lit(settings.symbol).alias("symbol"),
        pl.lit(run_id).alias("run_id"))
    paths = []
    for (day,), part in frame.with_columns(
            pl.col("timestamp").dt.date().cast(pl.String).alias("_day")).partition_by(
            "_day", as_dict=True, maintain_order=True).items():
        key = PartitionKey(settings.exchange, settings.symbol, day)
        paths.append(write_partition(part.drop("_day"), settings.lake_dir, TABLE, key))
    return paths


def tag_recommendation(settings: Settings, model_name: str, value: str | None,
                       run_id: str, tracking_uri: str | None = None) -> bool:
    """Set the registered model's retraining recommendation (False: no such model)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or settings.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        client.get_registered_model(model_name)
    except MlflowException:
        return False
    if value is None:  # no reliable recommendation: the sensor falls back to its policy
        if RETRAIN_TAG in (client.get_registered_model(model_name).tags or {}):
            client.delete_registered_model_tag(model_name, RETRAIN_TAG)
    else:
        client.set_registered_model_tag(model_name, RETRAIN_TAG, value)
    client.set_registered_model_tag(model_name, f"{RETRAIN_TAG}_source", run_id)
    return True


# ---- the command -------------------------------------------------------------------------

def load_frame(settings: Settings, features_path: str | None, start: str | None,
               end: str | None) -> tuple[pl.DataFrame, dict, list[str]]:
    """The feature rows to walk over: a Parquet file, or the lake's `l2_features` days
    (inclusive). Returns (frame, feature stamp, sources)."""
    from trade_pipeline.features.provenance import read_stamp
    from trade_pipeline.models.training import feature_stamp_of_partitions, load_feature_frame

    if features_path:
        from pathlib import Path

        if not Path(features_path).is_file():
            raise SettingsError(f"--features: no such file {features_path}")
        frame = pl.read_parquet(features_path).sort("timestamp", maintain_order=True)
        if start or end:
            days = pl.col("timestamp").dt.date().cast(pl.String)
            frame = frame.filter((days >= (start or "0000")) & (days <= (end or "9999")))
        return frame, read_stamp(features_path), [str(features_path)]
    frame, partitions = load_feature_frame(settings, start, end)
    return frame, feature_stamp_of_partitions(settings, partitions), partitions


def book_rows(settings: Settings, frame: pl.DataFrame, sources: list[str]) -> pl.DataFrame:
    """The rows the engine fills against: the grid book (float64 prices and sizes) at the
    frame's times. A lake frame is streamed with the model's columns only (float32, no price
    levels: models/dataset.py), so its book is read from the same partitions, two dozen
    columns at a time; a file frame carries its own."""
    from trade_pipeline.market.schema import BOOK_COLUMNS
    from trade_pipeline.storage.layout import PART_FILE

    if all(c in frame.columns and frame.schema[c] == pl.Float64 for c in BOOK_COLUMNS):
        return frame
    root = settings.lake_dir.rstrip("/")
    parts = [pl.read_parquet(f"{root}/{p}/{PART_FILE}", columns=["timestamp", *BOOK_COLUMNS])
             for p in sources]
    book = pl.concat(parts, how="vertical_relaxed").unique("timestamp", keep="last")
    return frame.select("timestamp").join(book, on="timestamp", how="left")


def walkforward_command(
    settings: Settings, *, wf_config, trading: TradingConfig, features_path: str | None = None,
    start: str | None = None, end: str | None = None, store: bool = True,
    on_window=None, tracking_uri: str | None = None, artifact_uri: str | None = None,
    plots_out: dict | None = None,
) -> dict:
    """Walk-forward end to end (see the module docstring); returns the summary (the JSON
    contract's keys first). `plots_out`: filled with the plots' PNG bytes by name."""
    from trade_pipeline.models.registry import model_name
    from trade_pipeline.models.walkforward import run_walkforward
    from trade_pipeline.trading.service import new_run_id

    frame, stamp, sources = load_frame(settings, features_path, start, end)
    if frame.height == 0:
        raise SettingsError("no feature rows in the requested range")
    wf = run_walkforward(frame, wf_config, on_window=on_window)
    bt = trade_predictions(book_rows(settings, frame, sources), wf.predictions, trading)
    summary = wf.summary()
    out = {**contract_figures(summary, bt), **{k: v for k, v in summary.items()
                                                if k not in ("windows", "oos_n", "oos_ic",
                                                             "oos_ic_ci",
                                                             "recommended_retrain_every")}}
    out["engine"] = {k: bt.metrics[k] for k in ("rows", "pnl", "fees_paid", "turnover",
                                                 "n_round_trips", "hit_rate")}
    out["threshold_source"] = bt.counts["threshold_source"]
    out["feature_stamp"] = {k: v for k, v in stamp.items() if k != "params"}
    out["sources"] = sources[:50]
    run_id = new_run_id("wf")
    out["run_id"] = run_id
    pngs = plots(summary, bt)
    if plots_out is not None:
        plots_out.update(pngs)
    if not store:
        return out
    from trade_pipeline.lake.warehouse import ensure_warehouse
    from trade_pipeline.trading.service import record_backtest
    from trade_pipeline.trading.tracking import log_run

    paths = write_predictions(settings, wf.predictions, run_id)
    out["lake_partitions"] = len(paths)
    ensure_warehouse(settings)
    rec = record_backtest(settings, bt, model=f"walkforward:{run_id}", run_id=run_id,
                          mlflow=False)
    out["written"] = rec.written
    figures = {k: v for k, v in out.items() if isinstance(v, int | float)
               and not isinstance(v, bool)}
    figures.update({"oos_ic_ci_low": out["oos_ic_ci"][0], "oos_ic_ci_high": out["oos_ic_ci"][1]})
    m = wf_config.model
    out["mlflow_run_id"] = log_run(
        settings, run_name=run_id, kind="walkforward",
        params=wf_config.as_dict() | {"strategy": trading.strategy.as_dict()},
        metrics={k: v for k, v in figures.items() if v is not None},
        pngs=pngs,
        tables={"windows.csv": pl.DataFrame(summary["per_window"]),
                "ic_decay.csv": pl.DataFrame(summary["ic_decay"]),
                "trades.csv": bt.trades_frame()},
        json_files={"walkforward.json": out},
        tags={"run_id": run_id, "horizon": m.horizon, "task": m.task,
              RETRAIN_TAG: out["recommended_retrain_every"] or "none"},
        tracking_uri=tracking_uri, artifact_uri=artifact_uri,
        experiment_prefix=EXPERIMENT_PREFIX)
    name = model_name(settings.symbol, m.horizon, m.task)
    out["recommendation_tagged_on"] = name if tag_recommendation(
        settings, name, out["recommended_retrain_every"], run_id, tracking_uri) else None
    return out
