"""deploy/k8s/values.yaml: the settings the deployment relies on, checked without a cluster."""

from pathlib import Path

import yaml

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "values.yaml"


def _values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def test_runs_and_steps_get_their_own_pods() -> None:
    values = _values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (location,) = values["dagster-user-deployments"]["deployments"]
    env = {e["name"]: e.get("value") for e in location["env"]}
    assert env["TRADE_PIPELINE_EXECUTOR"] == "k8s"
    assert env["TRADE_PIPELINE_LAKE"].startswith("s3://")
    assert "trade_pipeline.definitions" in location["dagsterApiGrpcArgs"]


def test_storage_is_postgres_and_writers_share_one_slot() -> None:
    values = _values()
    assert values["postgresql"]["enabled"] is False  # an external, managed PostgreSQL
    assert values["global"]["postgresqlSecretName"]
    assert values["concurrency"]["pools"]["defaultLimit"] == 1


def test_no_credential_values_in_the_file() -> None:
    text = VALUES.read_text().lower()
    for line in text.splitlines():
        body = line.split("#", 1)[0]
        if "password" in body or "secret_access_key" in body:
            # Names of secrets are fine; a value after a colon that is not a reference is not.
            _, _, value = body.partition(":")
            assert value.strip() in ("", "dagster-postgresql-secret", "false"), line
