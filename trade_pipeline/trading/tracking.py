"""MLflow logging of backtests and paper runs (explicit tracking and artifact URIs)."""

import json
import math
import tempfile
from pathlib import Path

from trade_pipeline.settings import Settings

EXPERIMENT_PREFIX = "trading"


def _flat(prefix: str, d: dict, out: dict) -> dict:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            _flat(f"{key}.", v, out)
        else:
            out[key] = v
    return out


def _numeric(d: dict) -> dict:
    return {k: float(v) for k, v in d.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def _client(settings: Settings, tracking_uri: str | None):
    # Only the client API: the fluent one (mlflow.set_tracking_uri) exports
    # MLFLOW_TRACKING_URI process-wide, which would redirect other homes' settings.
    from mlflow import MlflowClient

    uri = tracking_uri or settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(client, settings: Settings, artifact_uri: str | None = None,
                  prefix: str = EXPERIMENT_PREFIX, *, exchange: str | None = None,
                  symbol: str | None = None) -> str:
    """The experiment `prefix/exchange/symbol` (created if new); exchange and symbol default
    to the settings' (a run on data of another market names its own)."""
    name = f"{prefix}/{exchange or settings.exchange}/{symbol or settings.symbol}"
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    base = (artifact_uri or settings.mlflow_artifact_uri).rstrip("/")
    return client.create_experiment(name, artifact_location=f"{base}/{name.replace('/', '_')}")


def log_run(settings: Settings, *, run_name: str, kind: str, params: dict, metrics: dict,
            pngs: dict[str, bytes] | None = None, tables: dict | None = None,
            tags: dict | None = None, tracking_uri: str | None = None,
            artifact_uri: str | None = None, experiment_prefix: str = EXPERIMENT_PREFIX,
            json_files: dict | None = None, exchange: str | None = None,
            symbol: str | None = None) -> str:
    """One MLflow run holding a backtest's or a paper session's figures; returns its id.
    `json_files`: name -> JSON-able object, logged as artifacts. `exchange` / `symbol`: the
    market the run traded, for its experiment (default: the settings')."""
    import time

    from mlflow.entities import Metric, Param, RunTag

    client = _client(settings, tracking_uri)
    exp = experiment_id(client, settings, artifact_uri, experiment_prefix, exchange=exchange,
                        symbol=symbol)
    run = client.create_run(exp, run_name=run_name,
                            tags={"kind": kind, **{k: str(v) for k, v in (tags or {}).items()}})
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        flat = {k: str(v)[:500] for k, v in _flat("", params, {}).items()}
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in _numeric(metrics).items()],
            params=[Param(k, v) for k, v in flat.items()],
            tags=[RunTag("mlflow.runName", run_name)],
        )
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in (pngs or {}).items():
                path = Path(tmp) / name
                path.write_bytes(data)
                client.log_artifact(run_id, str(path), artifact_path="plots")
            for name, frame in (tables or {}).items():
                path = Path(tmp) / name
                frame.write_csv(path)
                client.log_artifact(run_id, str(path), artifact_path="tables")
            for name, obj in (json_files or {}).items():
                path = Path(tmp) / name
                path.write_text(json.dumps(obj, indent=1, default=str))
                client.log_artifact(run_id, str(path))
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id
