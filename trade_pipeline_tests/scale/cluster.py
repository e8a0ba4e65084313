"""Real processes on loopback for the scale-out tests: an S3 server (moto's standalone server),
a fault-injecting proxy in front of it, and a Dask cluster (`dask scheduler` + `dask worker`s).

Everything binds 127.0.0.1 on a free port and is stopped (its whole process group) at exit.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from trade_pipeline_tests.monitoring.servers import free_port, server, wait_http

BIN = Path(sys.executable).parent
S3_ENV_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
               "AWS_ENDPOINT_URL", "AWS_EC2_METADATA_DISABLED")


def s3_env(endpoint: str) -> dict[str, str]:
    """Dummy credentials (moto accepts any) and the endpoint, as a deployment sets them."""
    return {
        "AWS_ACCESS_KEY_ID": "test-key-id", "AWS_SECRET_ACCESS_KEY": "test-secret-9c1e",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen
    env: dict[str, str]

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"])

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                        Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@contextlib.contextmanager
def moto_s3(log_dir: Path) -> Iterator[S3Server]:
    """moto's standalone S3 server (`moto_server`) on a free loopback port."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, **s3_env(endpoint)}
    log = log_dir / f"moto-{port}.log"
    with server([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env, log) as proc:
        wait_http(f"{endpoint}/moto-api/", timeout=60, proc=proc, log=log)
        yield S3Server(endpoint, proc, s3_env(endpoint))


class S3FaultProxy:
    """A TCP proxy on loopback in front of the S3 server that can refuse chosen requests.

    It reads each HTTP request head (keep-alive connections carry several) and, when
    `refuse(head)` says so, closes the connection instead of forwarding it: the client sees
    the server vanish at exactly that request. Bodies are forwarded by Content-Length."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.refuse: Callable[[bytes], bool] = lambda head: False
        self.refused: list[str] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = client.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                head += b"\r\n\r\n"
                if self.refuse(head):
                    self.refused.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                    return
                upstream.sendall(head)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while length:
                    if not buf:
                        buf = client.recv(min(65536, length))
                        if not buf:
                            return
                    chunk, buf = buf[:length], buf[length:]
                    upstream.sendall(chunk)
                    length -= len(chunk)
        except OSError:
            return
        finally:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_RDWR)


def is_copy(head: bytes) -> bool:
    """S3 CopyObject: a PUT carrying `x-amz-copy-source` (the lake's publish step)."""
    return head.startswith(b"PUT ") and b"\r\nx-amz-copy-source:" in head.lower()


@dataclass
class DaskCluster:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=60)

    def worker_pids(self, client) -> dict[str, int]:
        """Dask worker address -> pid of the worker process (the nanny's child)."""
        return client.run(os.getpid)


@contextlib.contextmanager
def dask_cluster(tmp: Path, env: dict[str, str], n_workers: int = 2,
                 memory_limit: str = "3GiB", port: int | None = None) -> Iterator[DaskCluster]:
    """`dask scheduler` and `n_workers` `dask worker` processes (each with a nanny that
    restarts its worker if it dies), all on loopback with free ports, sharing `env`."""
    sched_file = tmp / "scheduler.json"
    port = port or free_port()
    common = {**os.environ, **env, "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
              "PYTHONUNBUFFERED": "1"}
    with contextlib.ExitStack() as stack:
        sched = stack.enter_context(server(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard", "--scheduler-file", str(sched_file)],
            common, tmp / "scheduler.log"))
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            if sched.poll() is not None:
                raise AssertionError((tmp / "scheduler.log").read_text()[-3000:])
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        cluster = DaskCluster(address, sched)
        for i in range(n_workers):
            cluster.workers.append(stack.enter_context(server(
                [str(BIN / "dask"), "worker", address, "--host", "127.0.0.1",
                 "--nthreads", "1", "--nworkers", "1", "--memory-limit", memory_limit,
                 "--no-dashboard", "--name", f"w{i}", "--death-timeout", "60",
                 "--local-directory", str(tmp / f"w{i}")],
                common, tmp / f"worker{i}.log")))
        with cluster.client() as client:
            client.wait_for_workers(n_workers, timeout=90)
        yield cluster
