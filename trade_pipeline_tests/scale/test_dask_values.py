"""deploy/k8s/dask-values.yaml: the Dask cluster beside the Dagster chart, checked without a
cluster: workers run our steps with the code location's image and environment, secrets only
by reference, nothing exposed."""

from pathlib import Path

import yaml

from trade_pipeline.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def _values(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_workers_use_the_code_location_image_and_settings() -> None:
    dask_values, dagster_values = _values("dask-values.yaml"), _values("values.yaml")
    (location,) = dagster_values["dagster-user-deployments"]["deployments"]
    for part in ("scheduler", "worker"):
        image = dask_values[part]["image"]
        assert (image["repository"], image["tag"]) == (location["image"]["repository"],
                                                       location["image"]["tag"])
    env = {e["name"]: e for e in dask_values["worker"]["env"]}
    plain = {name: e["value"] for name, e in env.items() if "value" in e}
    assert plain["TRADE_PIPELINE_EXECUTOR"] == "dask"
    assert plain["TRADE_PIPELINE_LAKE"].startswith("s3://")
    scheduler = plain["TRADE_PIPELINE_DASK_SCHEDULER"]
    assert scheduler.endswith(f":{dask_values['scheduler']['servicePort']}")
    # the worker environment is a valid configuration for the one settings reader
    settings = Settings.load(home=plain["TRADE_PIPELINE_HOME"], executor=plain[
        "TRADE_PIPELINE_EXECUTOR"], dask_scheduler=scheduler,
        train_memory_gb=float(plain["TRADE_PIPELINE_TRAIN_MEMORY_GB"]))
    assert settings.executor == "dask"
    args = dask_values["worker"]["extraArgs"]
    assert args[args.index("--nthreads") + 1] == "1"
    limit = args[args.index("--memory-limit") + 1]
    assert float(plain["TRADE_PIPELINE_TRAIN_MEMORY_GB"]) < float(limit.removesuffix("GiB"))


def test_secrets_only_by_reference_and_nothing_exposed() -> None:
    values = _values("dask-values.yaml")
    for e in values["worker"]["env"]:
        if any(w in e["name"] for w in ("SECRET", "PASSWORD", "KEY_ID", "REDIS_URL")):
            assert "value" not in e and "secretKeyRef" in e["valueFrom"], e
    assert values["scheduler"]["serviceType"] == "ClusterIP"
    assert values["webUI"]["ingress"]["enabled"] is False
    assert values["jupyter"]["enabled"] is False
