"""Issue 15 item 8: unreachable services are checked before the work starts (seconds, URL
named, credentials masked), and a model trained while the registry went down is kept and
registered later. Real servers: an MLflow server process, PostgreSQL, Redis."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from trade_pipeline import cli
from trade_pipeline_tests.models.synthetic import feature_frame
from trade_pipeline_tests.monitoring.servers import free_port, server, wait_http

TRADE_PIPELINE = Path(sys.executable).parent / "trade-pipeline"


@pytest.fixture(scope="module")
def features_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("preflight") / "features.parquet"
    feature_frame(4000, sessions=2, seed=4).write_parquet(path)
    return path


def _train(tmp_path, capsys, features_file, uri: str, timeout: str = "3"):
    env = {"TRADE_PIPELINE_MLFLOW_TRACKING_URI": uri, "TRADE_PIPELINE_SERVICE_TIMEOUT": timeout}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        t0 = time.monotonic()
        code = cli.main(["--home", str(tmp_path / "home"), "train", "--trials", "1",
                         "--horizon", "1s", "--features", str(features_file)])
        took = time.monotonic() - t0
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    out, err = capsys.readouterr()
    return code, took, out, err


def test_http_registry_refusing_connections(tmp_path, capsys, features_file):
    url = f"http://127.0.0.1:{free_port()}"
    code, took, _, err = _train(tmp_path, capsys, features_file, url)
    assert code == 2 and took < 10, took
    assert url in err and "unreachable" in err and "training" not in err  # nothing trained
    assert len(err.strip().splitlines()) == 1


def test_http_registry_that_never_answers_times_out(tmp_path, capsys, features_file):
    """A host that accepts the connection and then says nothing (the 252 s hang)."""
    with socket.socket() as sink:
        sink.bind(("127.0.0.1", 0))
        sink.listen(8)
        url = f"http://127.0.0.1:{sink.getsockname()[1]}"
        code, took, _, err = _train(tmp_path, capsys, features_file, url, timeout="1.5")
    print(f"silent registry: refused after {took:.2f} s")
    assert code == 2 and took < 8, took
    assert url in err and "timed out" in err


def test_postgres_registry_down_or_missing(tmp_path, capsys, features_file):
    closed = f"postgresql://mlflow:s3cret@127.0.0.1:{free_port()}/mlflow"
    code, took, _, err = _train(tmp_path, capsys, features_file, closed)
    print(f"postgres down: refused after {took:.2f} s")
    assert code == 2 and took < 10, took
    assert "s3cret" not in err and "postgresql://mlflow:***@127.0.0.1" in err
    assert "unreachable" in err and "training" not in err
    missing = "postgresql+psycopg2://postgres@127.0.0.1:5432/tp_no_such_database_x"
    code, took, _, err = _train(tmp_path, capsys, features_file, missing)
    assert code == 2 and took < 10 and "tp_no_such_database_x" in err


def test_paper_with_redis_down_is_one_line(tmp_path, capsys):
    url = f"redis://127.0.0.1:{free_port()}/0"
    code = cli.main(["--home", str(tmp_path / "home"), "paper", "--duration", "1",
                     "--url", "ws://127.0.0.1:1", "--redis-url", url])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and url in err and "--no-redis" in err


def test_paper_redis_check_passes_on_the_real_redis(redis_target):
    from trade_pipeline.storage.services import check_redis

    check_redis(redis_target.url, 2.0)  # no exception


@pytest.mark.slow
def test_model_trained_while_the_registry_went_down_is_kept_and_registered_later(
        tmp_path, features_file):
    """A real MLflow server: up for the preflight, killed during training; the trained model
    is kept and `register-pending` registers it once a registry answers."""
    from mlflow import MlflowClient

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    backend = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
            backend, "--artifacts-destination", str(tmp_path / "artifacts"),
            "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "TRADE_PIPELINE_MLFLOW_TRACKING_URI": url,
           "TRADE_PIPELINE_SERVICE_TIMEOUT": "3"}
    env.pop("MLFLOW_TRACKING_URI", None)
    home = tmp_path / "home"
    train = [str(TRADE_PIPELINE), "--home", str(home), "train", "--trials", "2", "--horizon",
             "1s", "--features", str(features_file)]
    with server(args, env, tmp_path / "mlflow1.log", cwd=tmp_path) as mlflow_proc:
        wait_http(f"{url}/health", 120, mlflow_proc, tmp_path / "mlflow1.log")
        proc = subprocess.Popen(train, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        lines = []

        def read_err():
            for line in proc.stderr:
                lines.append(line)

        reader = threading.Thread(target=read_err, daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not any("training" in ln for ln in lines) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert any("training" in ln for ln in lines), lines  # the preflight passed
        os.killpg(mlflow_proc.pid, signal.SIGKILL)  # the registry dies during training
        proc.wait(timeout=120)
        reader.join(5)
    err = "".join(lines)
    assert proc.returncode == 2, err
    assert "register-pending" in err and url in err
    kept = [p for p in (home / "pending_models").iterdir() if not p.name.startswith(".")]
    assert len(kept) == 1 and (kept[0] / "result.pkl").is_file()

    listed = subprocess.run([str(TRADE_PIPELINE), "--home", str(home), "register-pending",
                             "--list", "--json"], env=env, capture_output=True, text=True)
    assert json.loads(listed.stdout)[0]["path"] == str(kept[0])

    # later, a registry answers: here a local one (a second start of the server would only
    # add its ~30 s start-up; register-pending speaks to any tracking URI the same way)
    env["TRADE_PIPELINE_MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'later.db'}"
    done = subprocess.run([str(TRADE_PIPELINE), "--home", str(home), "register-pending",
                           "--json"], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    result = json.loads(out[out.index("[\n"):])  # (MLflow prints its run links on stdout)
    assert [r["name"] for r in result] == ["btc_l2_1s"]
    assert result[0]["gate"]["promoted"] and "registered" in done.stderr
    client = MlflowClient(tracking_uri=env["TRADE_PIPELINE_MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias("btc_l2_1s", "champion")
    assert str(champion.version) == result[0]["version"] == "1"
    assert champion.run_id == result[0]["run_id"]
    assert not [p for p in (home / "pending_models").iterdir() if not p.name.startswith(".")]
