"""deploy/mlflow/run-server.sh: MLflow with a PostgreSQL backend, bound to loopback."""

import os

import pytest

from trade_pipeline_tests.conftest import REPO_ROOT

from .servers import free_port, listening_addresses, server, wait_http

SCRIPT = REPO_ROOT / "deploy" / "mlflow" / "run-server.sh"


def _backend_uri(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(dsn)
    return (f"postgresql+psycopg2://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}"
            f":{info.get('port', 5432)}/{info['dbname']}")


def test_script_refuses_a_password_in_the_uri(tmp_path):
    import subprocess

    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": "postgresql://u:secret@h:5432/db"}
    done = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "PGPASSWORD" in done.stderr
    assert "secret" not in done.stderr


@pytest.mark.postgres
@pytest.mark.slow
def test_mlflow_server_on_postgres_binds_loopback(pg_dsn, tmp_path):
    psycopg = pytest.importorskip("psycopg")
    from mlflow import MlflowClient

    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": _backend_uri(pg_dsn),
        "PGPASSWORD": "dummy-secret-7f3a",
        "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "artifacts"),
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
    }
    env.pop("MLFLOW_HOST", None)
    log = tmp_path / "mlflow.log"
    with server(["sh", str(SCRIPT)], env, log, cwd=tmp_path) as proc:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc, log)
        addrs = {a for a in listening_addresses(proc.pid) if a[1] == port}
        assert addrs and all(ip == "127.0.0.1" for ip, _ in addrs), addrs
        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        exp = client.create_experiment("monitoring-test")
        run = client.create_run(exp)
        client.log_param(run.info.run_id, "horizon", "5s")
    with psycopg.connect(pg_dsn) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM experiments").fetchall()]
        params = conn.execute("SELECT key, value FROM params").fetchall()
    assert "monitoring-test" in names and ("horizon", "5s") in params
    assert "dummy-secret-7f3a" not in log.read_text()
