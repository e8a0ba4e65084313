"""MLflow logging of backtests and paper runs (explicit tracking and artifact URIs)."""

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


def experiment_id(settings: Settings, tracking_uri: str | None = None,
                  artifact_uri: str | None = None) -> str:
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri or settings.mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    name = f"{EXPERIMENT_PREFIX}/{settings.exchange}/{settings.symbol}"
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    base = (artifact_uri or settings.mlflow_artifact_uri).rstrip("/")
    return client.create_experiment(name, artifact_location=f"{base}/{name.replace('/', '_')}")


def log_run(settings: Settings, *, run_name: str, kind: str, params: dict, metrics: dict,
            pngs: dict[str, bytes] | None = None, tables: dict | None = None,
            tags: dict | None = None, tracking_uri: str | None = None,
            artifact_uri: str | None = None) -> str:
    """One MLflow run holding a backtest's or a paper session's figures; returns its id."""
    import mlflow

    exp = experiment_id(settings, tracking_uri, artifact_uri)
    with mlflow.start_run(experiment_id=exp, run_name=run_name) as run:
        mlflow.set_tags({"kind": kind, **(tags or {})})
        flat = {k: str(v) for k, v in _flat("", params, {}).items()}
        mlflow.log_params({k: v[:500] for k, v in flat.items()})
        mlflow.log_metrics(_numeric(metrics))
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in (pngs or {}).items():
                path = Path(tmp) / name
                path.write_bytes(data)
                mlflow.log_artifact(str(path), artifact_path="plots")
            for name, frame in (tables or {}).items():
                path = Path(tmp) / name
                frame.write_csv(path)
                mlflow.log_artifact(str(path), artifact_path="tables")
        return run.info.run_id
