"""Throwaway PostgreSQL, Redis and nginx servers on loopback for the storage and scale-out tests.

Each runs from Debian's packages (`.ci/run` installs them) in a temporary folder and is stopped afterwards; a test
that needs one is skipped with the reason when the package is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def wait_ready(base: str, process: subprocess.Popen, seconds: float = 30) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base} did not become ready")


def postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return str(Path(found[-1]).parent) if found else None


def as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    command = args if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


@contextmanager
def postgres(tmp: Path):
    """A PostgreSQL cluster of its own; yields the SQLAlchemy URL."""
    bindir = postgres_bin()
    # Its own folder under /tmp: the postgres user cannot enter pytest's root-only temporary folders.
    home = Path(tempfile.mkdtemp(prefix="cds-pg-"))
    data = home / "pgdata"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    as_postgres([f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    as_postgres(
        [
            f"{bindir}/pg_ctl",
            "-D",
            str(data),
            "-l",
            str(data / "log"),
            "-w",
            "-o",
            f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=on",
            "start",
        ]
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres([f"{bindir}/pg_ctl", "-D", str(data), "-m", "fast", "stop"])
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def redis_server(tmp: Path):
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def nginx(tmp: Path, upstreams: list[int], port: int, certificate: tuple[Path, Path] | None = None):
    """nginx on ``port`` in front of ``upstreams``, as deploy/nginx.conf says; yields its base URL.

    With ``certificate`` (cert, key) it terminates TLS as the file does; without, it speaks plain HTTP."""
    template = (Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf").read_text()
    # The upstream block of the real file, with its two hosts replaced by the instances on loopback.
    lines = [line for line in template.splitlines() if not line.strip().startswith("server cds-")]
    first = next(i for i, line in enumerate(lines) if line.strip() == "upstream cds {")
    lines[first + 1 : first + 1] = [f"        server 127.0.0.1:{p} max_fails=2 fail_timeout=2s;" for p in upstreams]
    conf = "\n".join(lines)
    if certificate is None:  # plain HTTP on loopback: the retry rules are what is under test
        conf = "\n".join(line for line in conf.splitlines() if not line.strip().startswith("ssl_"))
        conf = conf.replace("listen 8443 ssl;", f"listen 127.0.0.1:{port};")
    else:
        conf = conf.replace("listen 8443 ssl;", f"listen 127.0.0.1:{port} ssl;")
        conf = conf.replace("/etc/cds/tls/tls.crt", str(certificate[0])).replace(
            "/etc/cds/tls/tls.key", str(certificate[1])
        )
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = f"{user}pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n" + conf.replace(
        "/var/log/nginx/cds-access.log", f"{tmp}/access.log"
    )
    conf = conf.replace("client_body_temp_path /tmp;", f"client_body_temp_path {tmp};")
    (tmp / "nginx.conf").write_text(conf)
    process = subprocess.Popen(
        ["nginx", "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_port(port)
        yield f"{'https' if certificate else 'http'}://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def missing(*programs: str) -> str | None:
    """Why a test cannot run here, or None."""
    absent = [p for p in programs if p != "initdb" and not shutil.which(p)]
    if "initdb" in programs and postgres_bin() is None:
        absent.append("postgresql")
    return f"not installed: {', '.join(absent)} (.ci/run installs them)" if absent else None


@contextmanager
def gunicorn(tmp: Path, port: int, env: dict[str, str], name: str, workers: int = 1, threads: int = 4):
    """One service instance (``workers`` x ``threads``) on ``port``, ready (its /readyz answers) when yielded."""
    import sys

    binary = str(Path(sys.executable).with_name("gunicorn"))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")} | env | {"CDS_INSTANCE_NAME": name}
    process = subprocess.Popen(
        [
            binary,
            "-c",
            "python:cds.gunicorn_conf",
            "cds.wsgi:app",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            "30",
            "--graceful-timeout",
            "10",
        ],
        cwd=tmp,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / f"{name}.log", "w"),  # noqa: SIM115
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
